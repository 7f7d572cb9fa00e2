//! Comparing one step across columns.
//!
//! A step is compared between the columns that ran it: the `observation` of an `observe`
//! step as canonical JSON (object keys sorted), or, when asked, the exit status, errno,
//! stdout and stderr of another step. Columns with equal results form one [`Variant`]; the
//! first variant (holding the first column that ran the step) is the baseline, and every
//! other one carries a unified diff from it.

use serde_json::{json, Map, Value};
use similar::TextDiff;

use super::model::{Options, StepDifference, Variant, What};
use crate::report::StepRecord;

/// The difference in one step between the columns that ran it, or `None`.
pub(crate) fn step_difference(
    number: usize,
    records: &[Option<&StepRecord>],
    labels: &[&str],
    options: Options,
) -> Option<StepDifference> {
    let first = records.iter().flatten().next()?;
    let what = if records.iter().flatten().any(|r| r.observation.is_some()) {
        What::Observation
    } else if options.command_output {
        What::Output
    } else {
        return None;
    };
    let mut variants: Vec<Variant> = Vec::new();
    let mut not_run = Vec::new();
    for (column, record) in records.iter().enumerate() {
        let Some(record) = record else {
            not_run.push(column);
            continue;
        };
        let value = match what {
            What::Observation => canonical(record.observation.as_ref().unwrap_or(&Value::Null)),
            What::Output => output(record),
        };
        match variants.iter_mut().find(|v| v.value == value) {
            Some(variant) => variant.columns.push(column),
            None => variants.push(Variant {
                columns: vec![column],
                text: text(&value, what),
                value,
                diff: None,
            }),
        }
    }
    if variants.len() < 2 {
        return None;
    }
    let name = |variant: &Variant| {
        variant
            .columns
            .iter()
            .filter_map(|&c| labels.get(c).copied())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (baseline, others) = variants.split_at_mut(1);
    for variant in others {
        variant.diff = Some(unified_diff(
            &baseline[0].text,
            &variant.text,
            &name(&baseline[0]),
            &name(variant),
        ));
    }
    Some(StepDifference {
        number,
        actor: first.actor.clone(),
        action: first.action.clone(),
        what,
        variants,
        not_run,
    })
}

/// `value` with every object's keys sorted, so that equal data compares and prints equal.
pub(crate) fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), canonical(v)))
                    .collect::<Map<String, Value>>(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// A command step's result as data.
fn output(record: &StepRecord) -> Value {
    json!({
        "exit": record.exit.map(|e| e.to_string()),
        "error": record.error,
        "stdout": record.stdout,
        "stderr": record.stderr,
    })
}

/// The text that is diffed: pretty JSON for an observation; for output, the exit status
/// and errno on a line each, then stdout and stderr as they were.
fn text(value: &Value, what: What) -> String {
    match what {
        What::Observation => match value {
            Value::Null => "(no observation)\n".to_string(),
            _ => serde_json::to_string_pretty(value).unwrap_or_default() + "\n",
        },
        What::Output => {
            let field = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or("");
            let mut text = format!(
                "exit: {}\n",
                value.get("exit").and_then(Value::as_str).unwrap_or("none")
            );
            if let Some(error) = value.get("error").and_then(Value::as_str) {
                text.push_str(&format!("error: {error}\n"));
            }
            for key in ["stdout", "stderr"] {
                text.push_str(&format!("{key}:\n"));
                for line in field(key).lines() {
                    text.push_str(&format!("  {line}\n"));
                }
            }
            text
        }
    }
}

/// A unified diff from `old` to `new`, with three lines of context.
pub(crate) fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(old_name, new_name)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::testdata::{self, names};

    #[test]
    fn groups_columns_with_the_same_observation() {
        let c = testdata::comparison(Options::default());
        let step = &c.different[1].steps[0];
        assert_eq!((step.number, step.actor.as_str()), (6, "host"));
        assert_eq!(step.variants.len(), 2);
        assert_eq!(step.variants[0].columns, [0]);
        assert_eq!(step.variants[1].columns, [1, 2]);
        assert!(step.variants[0].diff.is_none());
        let diff = step.variants[1].diff.as_deref().unwrap();
        assert!(
            diff.starts_with("--- 6.18.44-fc-v595\n+++ 5.10.0-32-amd64, 6.1.0-27-cloud-amd64\n@@")
        );
        assert!(diff.contains("+      \"address\": \"::1/128\","), "{diff}");
        let root_map = &c.different[3].steps[0];
        assert_eq!(root_map.variants[1].columns, [2]);
        assert!(root_map.variants[1]
            .diff
            .as_deref()
            .unwrap()
            .contains("-    \"bounding\": \"none\",\n+    \"bounding\": \"000001ffffffffff\","));
    }

    #[test]
    fn command_output_only_when_asked() {
        let c = testdata::comparison(Options {
            command_output: true,
        });
        assert!(names(&c).contains(&"uts/join-sees-hostname"));
        let join = c
            .different
            .iter()
            .find(|d| d.name == "uts/join-sees-hostname");
        let step = &join.unwrap().steps[0];
        assert_eq!((step.number, step.what), (6, What::Output));
        let diff = step.variants[1].diff.as_deref().unwrap();
        assert!(diff.contains("-  nsconform-host\n+  debian\n"), "{diff}");
        let offsets = c
            .different
            .iter()
            .find(|d| d.name == "time/offsets-observed");
        assert_eq!(offsets.unwrap().summary(), "outcome, step 5 output");
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let value = json!({"b": [{"d": 1, "c": 2}], "a": null});
        assert_eq!(
            canonical(&value).to_string(),
            r#"{"a":null,"b":[{"c":2,"d":1}]}"#
        );
    }
}
