//! What the orchestrator adds from the host's namespaces: the subject's PIDs and ids as the
//! host sees them, its capabilities, its cgroup from the host, its time offsets, and which
//! namespaces it shares with the host or with other actors (with owners and parents).
//!
//! Namespaces get stable labels instead of inode numbers: `host` (the host's, i.e. the
//! orchestrator's), the name of the first actor — in start order — found in it, `outside`
//! when the kernel will not say (a parent beyond the host, `EPERM`), or `other` when no
//! actor is in it.

use std::fs::File;
use std::os::unix::fs::MetadataExt;

use serde_json::{json, Map, Value};

use super::subject::cgroup_v2_path;
use super::ObserveError;
use crate::scenario::model::{NsKind, ObservationKind};

/// A process whose namespaces give labels: `(label, PID as the host sees it)`.
pub(crate) type Candidate = (String, i32);

/// The host's part of every kind in `kinds` for the process `pid` (a host PID).
/// `candidates` are the labelled processes, in order; `pid_label` names host PIDs.
pub(crate) fn observe(
    kinds: &[ObservationKind],
    pid: i32,
    candidates: &[Candidate],
    pid_label: &dyn Fn(i32) -> String,
) -> Result<Value, ObserveError> {
    let mut out = Map::new();
    let read = |file: &str| {
        let path = format!("/proc/{pid}/{file}");
        std::fs::read_to_string(&path).map_err(|e| ObserveError::Read {
            path,
            source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })
    };
    for kind in kinds {
        match kind {
            ObservationKind::Identity => {
                let status = read("status")?;
                let stat = read("stat")?;
                let ppid = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
                    .unwrap_or(0);
                out.insert("pid".into(), json!({ "host": pid_label(pid) }));
                out.insert("ppid".into(), json!({ "host": pid_label(ppid) }));
                out.insert(
                    "uid".into(),
                    json!({ "host": status_field(&status, "Uid:") }),
                );
                out.insert(
                    "gid".into(),
                    json!({ "host": status_field(&status, "Gid:") }),
                );
                out.insert("capabilities".into(), capabilities(&status));
                let no_new_privs = status_field(&status, "NoNewPrivs:").is_some_and(|v| v == 1);
                out.insert("no_new_privs".into(), json!(no_new_privs));
            }
            ObservationKind::Cgroup => {
                out.insert(
                    "cgroup".into(),
                    json!({ "host": cgroup_v2_path(&read("cgroup")?) }),
                );
            }
            ObservationKind::Time => {
                out.insert(
                    "time_offsets".into(),
                    time_offsets(&read("timens_offsets")?),
                );
            }
            ObservationKind::Namespaces => {
                let (labels, owners, parents) = namespaces(pid, candidates);
                out.insert("namespaces".into(), labels);
                out.insert("namespace_owners".into(), owners);
                out.insert("namespace_parents".into(), parents);
            }
            _ => {}
        }
    }
    Ok(Value::Object(out))
}

/// The first number of a `/proc/PID/status` line (the real id for `Uid:`/`Gid:`).
pub(crate) fn status_field(status: &str, name: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Effective, permitted and bounding sets: `full`, `none`, or the hexadecimal mask.
///
/// `full` is every capability this kernel has, or every one this machine allows (the
/// kernel's set less what the harness's own bounding set lacks: on some machines even root
/// lacks a capability), so the same behaviour reads the same on every machine.
pub(crate) fn capabilities(status: &str) -> Value {
    let hex = |name: &str| mask(status, name).0;
    named_capabilities(&hex("CapEff:"), &hex("CapPrm:"), &hex("CapBnd:"))
}

/// The effective, permitted and bounding masks (hexadecimal text) named as in
/// [`capabilities`], against this process's own bounding set.
pub(crate) fn named_capabilities(effective: &str, permitted: &str, bounding: &str) -> Value {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(40);
    let kernel: u64 = if last >= 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    };
    let own = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let machine = mask(&own, "CapBnd:").1.unwrap_or(kernel) & kernel;
    let set = |hex: &str| match u64::from_str_radix(hex, 16).ok() {
        Some(0) => "none".to_string(),
        Some(value) if value == kernel || value == machine => "full".to_string(),
        _ => hex.to_string(),
    };
    json!({ "effective": set(effective), "permitted": set(permitted), "bounding": set(bounding) })
}

/// A capability line of `/proc/PID/status`: its hex text and value.
pub(crate) fn mask(status: &str, name: &str) -> (String, Option<u64>) {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim)
        .unwrap_or("");
    (hex.to_string(), u64::from_str_radix(hex, 16).ok())
}

/// `timens_offsets` text as `{monotonic, boottime}` in seconds.
pub(crate) fn time_offsets(text: &str) -> Value {
    let mut out = Map::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [name, seconds, ..] = fields.as_slice() {
            let name = match *name {
                "1" => "monotonic",
                "7" => "boottime",
                other => other,
            };
            out.insert(name.to_string(), json!(seconds.parse::<i64>().unwrap_or(0)));
        }
    }
    Value::Object(out)
}

/// Device and inode of a namespace file.
fn identity_of(path: &str) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The label of the namespace `(dev, ino)` of type `kind` among `candidates`.
pub(crate) fn label(kind: NsKind, id: (u64, u64), candidates: &[Candidate]) -> String {
    candidates
        .iter()
        .find(|(_, pid)| identity_of(&format!("/proc/{pid}/ns/{}", kind.proc_name())) == Some(id))
        .map_or_else(|| "other".to_string(), |(label, _)| label.clone())
}

fn namespaces(pid: i32, candidates: &[Candidate]) -> (Value, Value, Value) {
    let mut labels = Map::new();
    let mut owners = Map::new();
    let mut parents = Map::new();
    for kind in NsKind::ALL {
        let path = format!("/proc/{pid}/ns/{}", kind.proc_name());
        let Some(id) = identity_of(&path) else {
            continue;
        };
        labels.insert(kind.to_string(), json!(label(kind, id, candidates)));
        let Ok(file) = File::open(&path) else {
            continue;
        };
        let related = |result: nix::Result<std::os::fd::OwnedFd>, as_kind: NsKind| match result {
            Ok(fd) => {
                let meta = File::from(fd).metadata().ok();
                meta.map_or_else(
                    || "other".to_string(),
                    |m| label(as_kind, (m.dev(), m.ino()), candidates),
                )
            }
            Err(_) => "outside".to_string(),
        };
        if kind != NsKind::User {
            owners.insert(
                kind.to_string(),
                json!(related(crate::sys::namespace_owner(&file), NsKind::User)),
            );
        }
        if matches!(kind, NsKind::User | NsKind::Pid) {
            parents.insert(
                kind.to_string(),
                json!(related(crate::sys::namespace_parent(&file), kind)),
            );
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

    #[test]
    fn reads_time_offsets() {
        assert_eq!(
            time_offsets("monotonic 0 0\nboottime 86400 0\n"),
            json!({"monotonic": 0, "boottime": 86400})
        );
    }

    #[test]
    fn reads_status_ids() {
        let status = "Name:\tx\nUid:\t1000\t1000\t1000\t1000\nGid:\t5\t5\t5\t5\n";
        assert_eq!(status_field(status, "Uid:"), Some(1000));
        assert_eq!(status_field(status, "Gid:"), Some(5));
    }

    #[test]
    fn names_capability_sets() {
        let caps = capabilities(
            "CapEff:\t0000000000000000\nCapPrm:\t0000000000000400\nCapBnd:\t0000000000000400\n",
        );
        assert_eq!(caps["effective"], "none");
        assert_eq!(caps["permitted"], "0000000000000400");
    }
}
