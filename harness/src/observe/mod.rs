//! Observations: namespace state read by the harness itself, with system calls and `/proc`,
//! instead of parsing what tools print (which differs across versions).
//!
//! An `observe` step names kinds ([`ObservationKind`]). Each kind's fields are read by the
//! process that can see them correctly:
//! - the **subject** (the observed actor) reads what only its own namespaces show
//!   ([`subject`]: hostname, its ids, links, mounts, its cgroup view, IPC objects, sysctls);
//! - the **viewpoint** (the step's actor) reads the maps, whose outside ids depend on the
//!   reader ([`viewer`]);
//! - the **orchestrator**, in the host's namespaces, adds the host's view ([`host`]: host
//!   PIDs and ids, capabilities, cgroup from the host, time offsets, namespace identity).
//!
//! The result is one JSON object with stable, sorted keys, documented in
//! `docs/observations.md`; [`compare`] checks `expect.*` against it.

pub(crate) mod compare;
pub(crate) mod host;
pub(crate) mod network;
pub(crate) mod subject;
pub(crate) mod viewer;

use crate::scenario::model::ObservationKind;

/// The top-level fields each kind provides, for validation of `expect.*` keys.
pub(crate) const FIELDS: &[(ObservationKind, &[&str])] = &[
    (
        ObservationKind::Identity,
        &[
            "hostname",
            "domainname",
            "pid",
            "ppid",
            "uid",
            "gid",
            "groups",
            "capabilities",
            "no_new_privs",
        ],
    ),
    (ObservationKind::Maps, &["uid_map", "gid_map", "setgroups"]),
    (
        ObservationKind::Namespaces,
        &["namespaces", "namespace_owners", "namespace_parents"],
    ),
    (ObservationKind::Network, &["links", "addresses", "routes"]),
    (ObservationKind::Mounts, &["mounts", "proc_is_own"]),
    (ObservationKind::Cgroup, &["cgroup"]),
    (ObservationKind::Time, &["time_offsets"]),
    (ObservationKind::Ipc, &["ipc"]),
    (ObservationKind::Sysctl, &["sysctl"]),
];

/// The kind that provides top-level field `field`.
pub(crate) fn kind_of_field(field: &str) -> Option<ObservationKind> {
    FIELDS
        .iter()
        .find(|(_, fields)| fields.contains(&field))
        .map(|(kind, _)| *kind)
}

/// The mount points kept by `mounts` unless the step says otherwise.
pub(crate) const DEFAULT_MOUNTS_UNDER: &str = "/tmp";

/// What the subject is asked to read about itself.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct SubjectQuery {
    /// The kinds asked for (the subject reads its part of each).
    pub(crate) kinds: Vec<ObservationKind>,
    /// For mounts: prefixes of the mount points kept.
    pub(crate) mounts_under: Vec<String>,
    /// For sysctl: dotted names.
    pub(crate) sysctls: Vec<String>,
}

/// Why an observation could not be taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ObserveError {
    /// A file under `/proc` could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: nix::Error,
    },
    /// Netlink failed.
    #[error("network observation failed: {0}")]
    Network(String),
}

/// Read a file relative to a `/proc/PID` directory descriptor, with the caller's credentials.
pub(crate) fn read_at(dir: &std::os::fd::OwnedFd, path: &str) -> Result<String, ObserveError> {
    use nix::fcntl::{openat, OFlag};
    use nix::sys::stat::Mode;
    let fail = |source| ObserveError::Read {
        path: path.to_string(),
        source,
    };
    let fd = openat(dir, path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(fail)?;
    let mut file = std::fs::File::from(fd);
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text)
        .map_err(|e| fail(nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))?;
    Ok(text)
}
