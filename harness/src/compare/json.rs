//! The report as JSON, for programs (schema `nsconform-report/1`, described in
//! `docs/report.md`). Columns are referred to by label everywhere; observations are
//! included as data, next to the unified diff of their pretty-printed form.

use serde_json::{json, Map, Value};

use super::model::{Comparison, Figures, ScenarioDifference, Setting, StepDifference};

/// The schema identifier of a JSON report.
pub(crate) const SCHEMA: &str = "nsconform-report/1";

/// Render `comparison` as pretty JSON.
pub(crate) fn render(comparison: &Comparison) -> String {
    let c = comparison;
    let value = json!({
        "schema": SCHEMA,
        "compared": {
            "outcomes": true,
            "observations": true,
            "command_output": c.command_output,
        },
        "columns": c.columns.iter().map(column).collect::<Vec<_>>(),
        "scenarios": {
            "total": c.scenarios,
            "identical": c.identical(),
            "different": c.different.len(),
        },
        "differences": c.different.iter().map(|s| scenario(c, s)).collect::<Vec<_>>(),
        "tools": settings(c, &c.tools),
        "features": settings(c, &c.features),
    });
    // Printing a `Value` cannot fail: its keys are strings and it has no custom types.
    serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
}

fn column(f: &Figures) -> Value {
    json!({
        "label": f.label,
        "file": f.file,
        "kernel_release": f.kernel_release,
        "distribution": f.distribution,
        "architecture": f.architecture,
        "harness_version": f.harness_version,
        "started_at": f.started_at,
        "summary": f.summary,
        "boot_ms": f.vm.as_ref().and_then(|vm| vm.boot_ms),
        "round_trip_ms": f.vm.as_ref().and_then(|vm| vm.round_trip_ms),
    })
}

fn scenario(c: &Comparison, s: &ScenarioDifference) -> Value {
    let outcomes: Map<String, Value> = c
        .columns
        .iter()
        .zip(&s.outcomes)
        .map(|(f, outcome)| {
            let value = match outcome {
                Some(outcome) => serde_json::to_value(outcome).unwrap_or(Value::Null),
                None => json!({"outcome": "absent"}),
            };
            (f.label.clone(), value)
        })
        .collect();
    json!({
        "name": s.name,
        "outcome_differs": s.outcome_differs,
        "outcomes": outcomes,
        "steps": s.steps.iter().map(|step| step_value(c, step)).collect::<Vec<_>>(),
    })
}

fn step_value(c: &Comparison, step: &StepDifference) -> Value {
    let labels = |indexes: &[usize]| -> Vec<String> {
        indexes
            .iter()
            .filter_map(|&i| c.columns.get(i).map(|f| f.label.clone()))
            .collect()
    };
    json!({
        "number": step.number,
        "actor": step.actor,
        "action": step.action,
        "compared": step.what.word(),
        "not_run": labels(&step.not_run),
        "variants": step.variants.iter().map(|v| json!({
            "columns": labels(&v.columns),
            "value": v.value,
            "diff": v.diff,
        })).collect::<Vec<_>>(),
    })
}

fn settings(c: &Comparison, settings: &[Setting]) -> Vec<Value> {
    settings
        .iter()
        .map(|setting| {
            let values: Map<String, Value> = c
                .columns
                .iter()
                .zip(&setting.values)
                .map(|(f, v)| (f.label.clone(), json!(v)))
                .collect();
            json!({"name": setting.name, "values": values})
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::model::Options;
    use crate::compare::testdata;

    #[test]
    fn machine_readable_differences() {
        let text = render(&testdata::comparison(Options::default()));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(
            v["scenarios"],
            json!({"total": 9, "identical": 5, "different": 4})
        );
        assert_eq!(v["columns"][1]["label"], "5.10.0-32-amd64");
        assert_eq!(v["columns"][1]["summary"]["duration_ms"], 3120);
        assert_eq!(v["columns"][1]["boot_ms"], 2310);
        assert_eq!(v["columns"][0]["boot_ms"], Value::Null);
        let names: Vec<&str> = v["differences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "mount/rootless-overlay-writes-to-upper",
                "net/new-netns-observed",
                "time/offsets-observed",
                "user/root-map-observed"
            ]
        );
        let offsets = &v["differences"][2];
        assert_eq!(
            offsets["outcomes"]["5.10.0-32-amd64"],
            json!({"outcome": "failed", "step": 5, "reason": "step 5 did not behave as expected"})
        );
        let step = &v["differences"][1]["steps"][0];
        assert_eq!(step["number"], 6);
        assert_eq!(step["compared"], "observation");
        let variants = step["variants"].as_array().unwrap();
        assert_eq!(variants[0]["columns"], json!(["6.18.44-fc-v595"]));
        assert_eq!(variants[0]["diff"], Value::Null);
        assert_eq!(
            variants[1]["columns"],
            json!(["5.10.0-32-amd64", "6.1.0-27-cloud-amd64"])
        );
        assert_eq!(variants[1]["value"]["addresses"][1]["address"], "::1/128");
        assert!(variants[1]["diff"]
            .as_str()
            .unwrap()
            .contains("+      \"address\": \"::1/128\","));
        assert_eq!(v["tools"][0]["name"], "ip");
        assert_eq!(
            v["features"][0]["values"]["6.18.44-fc-v595"],
            json!("available")
        );
    }
}
