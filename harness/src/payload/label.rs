//! Turning what the probe printed into an observation: keep the kinds a step asked for and
//! the mounts under its `mounts_under`, and replace raw namespace ids with the labels an
//! `observe` step gives (`host`, an actor's name, `other`, `outside`).

use serde_json::{json, Map, Value};

use super::{NamespaceIds, ProbeOutput, FORMAT};
use crate::observe::host::{label, Candidate};
use crate::observe::{kind_of_field, subject};
use crate::scenario::model::{NsKind, ObservationKind};

/// Why a command's output is not a probe's.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LabelError {
    /// Not JSON of the probe's shape.
    #[error(
        "the command did not print the probe's observation ({cause}); its output began: {start:?}"
    )]
    NotProbeOutput {
        /// What the decoder said.
        cause: String,
        /// The first 200 characters of the output.
        start: String,
    },
    /// A probe of another format version.
    #[error("the probe printed format {0:?}, expected {FORMAT:?}")]
    Format(String),
}

/// Parse the probe's line from a command's standard output (the last line that is a JSON
/// object: a tool may print its own lines first).
pub(crate) fn parse(stdout: &str) -> Result<ProbeOutput, LabelError> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or(stdout);
    let output: ProbeOutput =
        serde_json::from_str(line).map_err(|err| LabelError::NotProbeOutput {
            cause: err.to_string(),
            start: stdout.chars().take(200).collect(),
        })?;
    if output.format != FORMAT {
        return Err(LabelError::Format(output.format));
    }
    Ok(output)
}

/// The observation of `kinds` in `output`: fields of other kinds dropped, mounts kept only
/// under `mounts_under`, namespaces labelled against `candidates`.
pub(crate) fn observation(
    output: &ProbeOutput,
    kinds: &[ObservationKind],
    mounts_under: &[String],
    candidates: &[Candidate],
) -> Value {
    let mut out = Map::new();
    for (field, value) in &output.observation {
        if !kind_of_field(field).is_some_and(|kind| kinds.contains(&kind)) {
            continue;
        }
        let value = match (field.as_str(), value) {
            ("capabilities", raw) => named_capabilities(raw),
            ("mounts", Value::Array(mounts)) => Value::Array(
                mounts
                    .iter()
                    .filter(|m| {
                        m["mount_point"]
                            .as_str()
                            .is_some_and(|p| subject::is_under(p, mounts_under))
                    })
                    .cloned()
                    .collect(),
            ),
            _ => value.clone(),
        };
        out.insert(field.clone(), value);
    }
    if kinds.contains(&ObservationKind::Namespaces) {
        let (labels, owners, parents) = namespaces(&output.namespace_ids, candidates);
        out.insert("namespaces".into(), labels);
        out.insert("namespace_owners".into(), owners);
        out.insert("namespace_parents".into(), parents);
    }
    Value::Object(out)
}

/// Name the probe's raw capability masks as `observe` does (`full`, `none` or the mask),
/// against this process's own bounding set.
fn named_capabilities(raw: &Value) -> Value {
    let mask = |set: &str| raw[set].as_str().unwrap_or("");
    crate::observe::host::named_capabilities(mask("effective"), mask("permitted"), mask("bounding"))
}

fn namespaces(
    ids: &std::collections::BTreeMap<String, NamespaceIds>,
    candidates: &[Candidate],
) -> (Value, Value, Value) {
    let mut labels = Map::new();
    let mut owners = Map::new();
    let mut parents = Map::new();
    let name = |kind: NsKind, id: Option<(u64, u64)>| {
        id.map_or_else(|| "outside".to_string(), |id| label(kind, id, candidates))
    };
    for kind in NsKind::ALL {
        let Some(found) = ids.get(&kind.to_string()) else {
            continue;
        };
        labels.insert(kind.to_string(), json!(label(kind, found.id, candidates)));
        if kind != NsKind::User {
            owners.insert(kind.to_string(), json!(name(NsKind::User, found.owner)));
        }
        if matches!(kind, NsKind::User | NsKind::Pid) {
            parents.insert(kind.to_string(), json!(name(kind, found.parent)));
        }
    }
    (
        Value::Object(labels),
        Value::Object(owners),
        Value::Object(parents),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> Vec<Candidate> {
        vec![("host".to_string(), std::process::id() as i32)]
    }

    #[test]
    fn the_probe_in_this_process_is_labelled_host() {
        let output = super::super::look_around();
        let text = format!("tool noise\n{}\n", serde_json::to_string(&output).unwrap());
        let parsed = parse(&text).expect("parse");
        let seen = observation(
            &parsed,
            &[ObservationKind::Namespaces, ObservationKind::Identity],
            &[],
            &own(),
        );
        assert_eq!(seen["namespaces"]["uts"], "host");
        assert_eq!(seen["namespaces"]["mount"], "host");
        assert!(seen.get("hostname").is_some());
        assert!(seen.get("uid_map").is_none(), "maps were not asked for");
    }

    #[test]
    fn unknown_namespaces_are_other_and_unreachable_relatives_outside() {
        let mut output = super::super::look_around();
        output.namespace_ids.insert(
            "uts".into(),
            NamespaceIds {
                id: (1, 2),
                owner: None,
                parent: None,
            },
        );
        let seen = observation(&output, &[ObservationKind::Namespaces], &[], &own());
        assert_eq!(seen["namespaces"]["uts"], "other");
        assert_eq!(seen["namespace_owners"]["uts"], "outside");
    }

    #[test]
    fn mounts_are_kept_under_the_given_paths() {
        let mut output = super::super::look_around();
        output.observation.insert(
            "mounts".into(),
            json!([{"mount_point": "/"}, {"mount_point": "/proc"}, {"mount_point": "/tmp"}]),
        );
        let seen = observation(
            &output,
            &[ObservationKind::Mounts],
            &["/proc".to_string()],
            &own(),
        );
        assert_eq!(seen["mounts"], json!([{"mount_point": "/proc"}]));
    }

    #[test]
    fn capabilities_are_named_against_the_harness_own_set_not_the_probe_s() {
        let mut output = super::super::look_around();
        output.observation.insert(
            "capabilities".into(),
            json!({"effective": "0000000000000420", "permitted": "0000000000000000", "bounding": "0000000020000420"}),
        );
        let seen = observation(&output, &[ObservationKind::Identity], &[], &own());
        assert_eq!(
            seen["capabilities"],
            json!({"effective": "0000000000000420", "permitted": "none", "bounding": "0000000020000420"})
        );
    }

    #[test]
    fn other_output_is_a_clear_error() {
        let err = parse("bwrap: Can't mount proc\n").unwrap_err();
        assert!(err
            .to_string()
            .contains("did not print the probe's observation"));
        let mut output = super::super::look_around();
        output.format = "nsconform-probe/9".into();
        let text = serde_json::to_string(&output).unwrap();
        assert!(matches!(parse(&text), Err(LabelError::Format(_))));
    }
}
