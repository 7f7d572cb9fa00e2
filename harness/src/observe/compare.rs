//! Checking `expect.*` against an observation.
//!
//! Only what the scenario gives is compared: a table checks the keys it lists, a list must
//! have the same length and match element by element, and text may use the `[..]`
//! wildcard. In a list, a plain string stands for an object's identifying field — `name`
//! (links), `address` (addresses), `destination` (routes), `mount_point` (mounts),
//! `key` (IPC objects), so `expect.links = ["lo"]` says "exactly one link, named lo".

use serde_json::Value;

use crate::report::Mismatch;

/// The identifying fields a string may stand for, in the order they are tried.
const IDENTIFYING: &[&str] = &["name", "address", "destination", "mount_point", "key"];

/// Compare `expected` (from the scenario, placeholders already expanded) with `actual`;
/// one mismatch per top-level field that differs, named `expect.FIELD`.
pub(crate) fn compare(expected: &serde_json::Map<String, Value>, actual: &Value) -> Vec<Mismatch> {
    expected
        .iter()
        .filter_map(|(field, want)| {
            let got = actual.get(field).unwrap_or(&Value::Null);
            (!matches(want, got)).then(|| Mismatch {
                what: format!("expect.{field}"),
                expected: pretty(want),
                actual: pretty(got),
            })
        })
        .collect()
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// Whether `actual` satisfies `expected`.
pub(crate) fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(want), Value::Object(got)) => want
            .iter()
            .all(|(key, value)| got.get(key).is_some_and(|g| matches(value, g))),
        (Value::Array(want), Value::Array(got)) => {
            want.len() == got.len() && want.iter().zip(got).all(|(w, g)| matches(w, g))
        }
        (Value::String(_), Value::Object(got)) => IDENTIFYING
            .iter()
            .find_map(|key| got.get(*key))
            .is_some_and(|id| matches(expected, id)),
        (Value::String(want), Value::String(got)) => crate::matcher::matches(want, got),
        (Value::String(want), Value::Number(got)) => want == &got.to_string(),
        (Value::Number(want), Value::Number(got)) => want.as_f64() == got.as_f64(),
        (want, got) => want == got,
    }
}

/// A TOML table from the scenario as JSON, for comparison.
pub(crate) fn to_json(table: &toml::Table) -> serde_json::Map<String, Value> {
    match serde_json::to_value(table) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[rstest]
    #[case(json!("newname"), json!("newname"), true)]
    #[case(json!("newname"), json!("vm"), false)]
    #[case(json!("uts:[..]"), json!("uts:[4026531838]"), true)]
    #[case(json!(["lo"]), json!([{"name": "lo", "state": "down"}]), true)]
    #[case(json!(["lo"]), json!([{"name": "lo"}, {"name": "veth0"}]), false)]
    #[case(json!([{"name": "lo", "state": "up"}]), json!([{"name": "lo", "state": "down"}]), false)]
    #[case(json!({"uts": "new"}), json!({"uts": "new", "net": "host"}), true)]
    #[case(json!({"uts": "host"}), json!({"uts": "new"}), false)]
    #[case(json!({"missing": 1}), json!({}), false)]
    #[case(json!(["0 1000 1"]), json!(["0 1000 1"]), true)]
    #[case(json!(["192.0.2.1/24"]), json!([{"link": "v", "address": "192.0.2.1/24"}]), true)]
    #[case(json!(1), json!(1), true)]
    #[case(json!("1"), json!(1), true)]
    #[case(json!(true), json!(false), false)]
    fn matching(#[case] expected: Value, #[case] actual: Value, #[case] result: bool) {
        assert_eq!(
            matches(&expected, &actual),
            result,
            "{expected} vs {actual}"
        );
    }

    #[test]
    fn names_the_field_that_differs() {
        let expected = to_json(&toml::from_str("hostname = \"a\"\nuid_map = [\"0 0 1\"]").unwrap());
        let actual = json!({"hostname": "a", "uid_map": ["0 1000 1"]});
        let mismatches = compare(&expected, &actual);
        assert_eq!(mismatches.len(), 1);
        assert_eq!(mismatches[0].what, "expect.uid_map");
        assert!(mismatches[0].actual.contains("0 1000 1"));
    }
}
