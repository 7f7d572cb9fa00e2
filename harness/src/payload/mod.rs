//! The probe: `nsconform probe`, a payload that a container tool runs *inside* whatever it
//! creates, and that prints what it sees there as JSON.
//!
//! A tool scenario runs, say, `bwrap --unshare-all ... {{probe}}` with `probe = [...]` on
//! the step. The probe reads the same fields as an `observe` step (identity, maps,
//! namespaces, network, mounts, cgroup, time, ipc) from its own point of view and prints one
//! [`ProbeOutput`]. The harness then turns the raw namespace ids into the same stable labels
//! as `observe` (`host`, an actor's name, `other`, `outside`) and checks `expect.*` against
//! the result ([`label`]).
//!
//! Inside a stand-in host the probe is at `/run/nsconform/probe/probe` ([`kit`]), so that a
//! container's root filesystem can bind-mount the directory and run it without a libc of
//! its own.

pub(crate) mod kit;
pub(crate) mod label;
pub(crate) mod offers;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::observe::{self, host, subject, viewer, SubjectQuery};
use crate::scenario::model::{NsKind, ObservationKind};

/// The `format` of every probe output.
pub(crate) const FORMAT: &str = "nsconform-probe/1";

/// What the probe prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ProbeOutput {
    /// Always [`FORMAT`].
    pub(crate) format: String,
    /// Fields as documented in `docs/observations.md`, as the probe sees them; namespace
    /// fields are left out (see `namespace_ids`).
    pub(crate) observation: Map<String, Value>,
    /// For each namespace type (`uts`, `mount`, ...): the probe's namespace, its owning user
    /// namespace and, for `user` and `pid`, its parent, as `(device, inode)` pairs.
    pub(crate) namespace_ids: BTreeMap<String, NamespaceIds>,
    /// What could not be read (e.g. no `/proc` mounted), one line each.
    pub(crate) errors: Vec<String>,
}

/// The identity of one namespace and of its relatives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NamespaceIds {
    /// `(st_dev, st_ino)` of `/proc/self/ns/TYPE`.
    pub(crate) id: (u64, u64),
    /// The owning user namespace; `None` when the kernel refuses to say (`EPERM`: beyond
    /// the probe's reach) or for `user` itself.
    pub(crate) owner: Option<(u64, u64)>,
    /// The parent namespace (for `user` and `pid` only); `None` likewise.
    pub(crate) parent: Option<(u64, u64)>,
}

/// `nsconform probe`: print what this process sees, as one line of JSON.
pub(crate) fn main() -> ExitCode {
    let output = look_around();
    match serde_json::to_string(&output) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("nsconform probe: cannot encode the observation: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Read everything the probe reports.
pub(crate) fn look_around() -> ProbeOutput {
    let mut errors = Vec::new();
    let mut observation = Map::new();
    let proc_self = open_proc_self().map_err(|err| errors.push(err)).ok();

    let kinds = vec![
        ObservationKind::Identity,
        ObservationKind::Network,
        ObservationKind::Cgroup,
        ObservationKind::Ipc,
    ];
    // Each kind on its own, so that one unreadable file costs only its own fields.
    for kind in kinds {
        let query = SubjectQuery {
            kinds: vec![kind],
            mounts_under: Vec::new(),
            sysctls: Vec::new(),
        };
        let part = match &proc_self {
            Some(dir) => subject::observe(&query, dir),
            None if kind == ObservationKind::Identity => Ok(subject::identity()),
            None => continue,
        };
        absorb(&mut observation, &mut errors, kind, part);
    }
    if let Some(dir) = &proc_self {
        let mounts = observe::read_at(dir, "mountinfo")
            .map(|text| json!({ "mounts": subject::mounts(&text, &["/".to_string()]) }));
        absorb(
            &mut observation,
            &mut errors,
            ObservationKind::Mounts,
            mounts,
        );
        absorb(
            &mut observation,
            &mut errors,
            ObservationKind::Maps,
            viewer::maps(dir),
        );
        match observe::read_at(dir, "status") {
            Ok(status) => {
                let no_new_privs =
                    host::status_field(&status, "NoNewPrivs:").is_some_and(|v| v == 1);
                // Raw masks: "full" means the kernel's or the harness's own set, which
                // only the harness can tell ([`label::observation`] names them).
                observation.insert("capabilities".into(), raw_capabilities(&status));
                observation.insert("no_new_privs".into(), json!(no_new_privs));
            }
            Err(err) => errors.push(format!("identity: {err}")),
        }
        if let Ok(offsets) = observe::read_at(dir, "timens_offsets") {
            observation.insert("time_offsets".into(), host::time_offsets(&offsets));
        }
    }
    observation.insert("proc_is_own".into(), json!(subject::proc_is_own()));
    ProbeOutput {
        format: FORMAT.to_string(),
        observation,
        namespace_ids: namespace_ids(&mut errors),
        errors,
    }
}

/// The capability sets of a `/proc/PID/status` text as hex masks.
fn raw_capabilities(status: &str) -> Value {
    let hex = |name: &str| host::mask(status, name).0;
    json!({ "effective": hex("CapEff:"), "permitted": hex("CapPrm:"), "bounding": hex("CapBnd:") })
}

fn open_proc_self() -> Result<OwnedFd, String> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::Mode;
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    open("/proc/self", flags, Mode::empty())
        .map_err(|err| format!("cannot open /proc/self (is /proc mounted?): {err}"))
}

fn absorb(
    into: &mut Map<String, Value>,
    errors: &mut Vec<String>,
    kind: ObservationKind,
    part: Result<Value, observe::ObserveError>,
) {
    match part {
        Ok(Value::Object(fields)) => into.extend(fields),
        Ok(_) => {}
        Err(err) => errors.push(format!("{}: {err}", kind_name(kind))),
    }
}

fn kind_name(kind: ObservationKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn namespace_ids(errors: &mut Vec<String>) -> BTreeMap<String, NamespaceIds> {
    let mut ids = BTreeMap::new();
    for kind in NsKind::ALL {
        let path = format!("/proc/self/ns/{}", kind.proc_name());
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(err) => {
                // A kernel without time namespaces has no ns/time; anything else is news.
                if !(kind == NsKind::Time && err.kind() == std::io::ErrorKind::NotFound) {
                    errors.push(format!("namespaces: cannot open {path}: {err}"));
                }
                continue;
            }
        };
        let Ok(meta) = file.metadata() else { continue };
        let of = |fd: nix::Result<OwnedFd>| {
            let meta = File::from(fd.ok()?).metadata().ok()?;
            Some((meta.dev(), meta.ino()))
        };
        let owner = (kind != NsKind::User).then(|| of(crate::sys::namespace_owner(&file)));
        let parent = matches!(kind, NsKind::User | NsKind::Pid)
            .then(|| of(crate::sys::namespace_parent(&file)));
        ids.insert(
            kind.to_string(),
            NamespaceIds {
                id: (meta.dev(), meta.ino()),
                owner: owner.flatten(),
                parent: parent.flatten(),
            },
        );
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_sees_its_own_namespaces_and_identity() {
        let output = look_around();
        assert_eq!(output.format, FORMAT);
        let own = std::fs::metadata("/proc/self/ns/uts").expect("ns/uts");
        assert_eq!(output.namespace_ids["uts"].id, (own.dev(), own.ino()));
        assert_eq!(
            output.observation["pid"]["inside"],
            json!(std::process::id())
        );
        assert!(output.observation.contains_key("uid_map"));
        assert_eq!(output.observation["proc_is_own"], json!(true));
    }

    #[test]
    fn the_output_round_trips_as_json() {
        let output = look_around();
        let text = serde_json::to_string(&output).expect("encode");
        let back: ProbeOutput = serde_json::from_str(&text).expect("decode");
        assert_eq!(back.namespace_ids, output.namespace_ids);
    }
}
