//! Reading results files for a report.
//!
//! A file must be JSON with `"schema": "nsconform-results/1"` and otherwise match
//! [`Results`] exactly, including its optional `vm` object (the VM runner's timings), which
//! becomes the column's [`VmFigures`].

use std::path::Path;

use serde_json::Value;

use super::model::VmFigures;
use crate::results::{Results, SCHEMA};

/// A results file that was read, not yet labelled.
#[derive(Debug, Clone)]
pub(crate) struct Input {
    /// The file, as given.
    pub(crate) file: String,
    /// Its content.
    pub(crate) results: Results,
    /// Its `vm` object, if any.
    pub(crate) vm: Option<VmFigures>,
}

/// Why a results file cannot be read. Every message starts with the file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    /// The file cannot be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{file}: not JSON: {source}")]
    Json {
        /// The file.
        file: String,
        /// The cause, with line and column.
        source: serde_json::Error,
    },
    /// The file is JSON but not a results file of the schema this harness reads.
    #[error("{file}: not an {SCHEMA} results file: `schema` is {found}")]
    Schema {
        /// The file.
        file: String,
        /// What `schema` holds, or `missing`.
        found: String,
    },
    /// The file claims the schema but does not match it.
    #[error("{file}: does not match {SCHEMA}: {source}")]
    Shape {
        /// The file.
        file: String,
        /// The cause.
        source: serde_json::Error,
    },
}

/// Read the results file at `path`.
pub(crate) fn load(path: &Path) -> Result<Input, LoadError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        file: file.clone(),
        source,
    })?;
    parse(&file, &text)
}

/// Read results-file `text`; `file` names it in errors.
pub(crate) fn parse(file: &str, text: &str) -> Result<Input, LoadError> {
    let json = |source| LoadError::Json {
        file: file.to_string(),
        source,
    };
    let shape = |source| LoadError::Shape {
        file: file.to_string(),
        source,
    };
    let value: Value = serde_json::from_str(text).map_err(json)?;
    let found = match value.get("schema") {
        Some(Value::String(s)) if s == SCHEMA => None,
        Some(other) => Some(other.to_string()),
        None if value.is_object() => Some("missing".to_string()),
        None => Some(format!("missing (the file holds {})", kind(&value))),
    };
    if let Some(found) = found {
        return Err(LoadError::Schema {
            file: file.to_string(),
            found,
        });
    }
    // Read the text itself so errors carry line and column.
    let results: Results = serde_json::from_str(text).map_err(shape)?;
    let vm = results.vm.clone();
    Ok(Input {
        file: file.to_string(),
        results,
        vm,
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r##"{
        "schema": "nsconform-results/1", "started_at": "2026-11-29T11:50:19Z",
        "harness_version": "0.1.0",
        "machine": {"kernel_release": "6.1.0", "kernel_version": "#1", "architecture": "x86_64",
                    "distribution": {"id": "debian", "version_id": "12", "pretty_name": ""}},
        "tools": {}, "features": {},
        "summary": {"passed": 0, "failed": 0, "skipped": 0, "invalid": 0, "duration_ms": 5},
        "scenarios": []
    }"##;

    fn with(extra: &str) -> String {
        MINIMAL.replacen('{', &format!("{{ {extra}"), 1)
    }

    #[test]
    fn reads_a_file_with_and_without_vm_figures() {
        let input = parse("a.json", MINIMAL).unwrap();
        assert_eq!(input.results.machine.kernel_release, "6.1.0");
        assert!(input.vm.is_none());
        let input = parse(
            "b.json",
            &with(r#""vm": {"boot_ms": 2310, "round_trip_ms": 15873, "later": 1},"#),
        )
        .unwrap();
        let vm = input.vm.unwrap();
        assert_eq!((vm.boot_ms, vm.round_trip_ms), (Some(2310), Some(15873)));
    }

    #[test]
    fn reads_the_fixtures() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/results");
        for name in ["host-6.18.json", "fake-5.10.json", "fake-6.1.json"] {
            let input = load(&dir.join(name)).unwrap();
            assert!(!input.results.scenarios.is_empty(), "{name}");
        }
    }

    #[test]
    fn names_the_file_and_the_cause() {
        let err = |text: &str| parse("r.json", text).unwrap_err().to_string();
        assert!(
            err("{").starts_with("r.json: not JSON: EOF"),
            "{}",
            err("{")
        );
        assert_eq!(
            err(&MINIMAL.replace("nsconform-results/1", "nsconform-results/9")),
            "r.json: not an nsconform-results/1 results file: `schema` is \"nsconform-results/9\""
        );
        assert_eq!(
            err("[1]"),
            "r.json: not an nsconform-results/1 results file: `schema` is missing (the file holds an array)"
        );
        let shape = err(&with(r#""extra": true,"#));
        assert!(
            shape.starts_with("r.json: does not match nsconform-results/1: unknown field `extra`"),
            "{shape}"
        );
        let vm = err(&with(r#""vm": {"boot_ms": "slow"},"#));
        assert!(vm.contains("invalid type: string \"slow\""), "{vm}");
        let missing = load(Path::new("/nonexistent/r.json"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("/nonexistent/r.json: cannot read: "),
            "{missing}"
        );
    }
}
