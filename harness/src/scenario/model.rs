//! The scenario file format, version 1, as Rust types.
//!
//! Every struct rejects unknown keys, so a typo is an error with a position, never a silently
//! ignored setting. `docs/scenario-format.md` is the user-facing reference; each field's doc
//! comment here states its default.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Scenario {
    /// One sentence saying what the scenario shows. Required.
    pub(crate) description: String,
    /// Where the spec or the article says this behaviour is defined. Default: none.
    #[serde(default)]
    pub(crate) reference: Option<String>,
    /// The program whose promises the scenario checks (e.g. `"bwrap"`, `"crun"`, `"ip"`):
    /// the results file records its version, so reports can put tool versions side by
    /// side. It must also be in `requires.commands`. Default: none (a kernel scenario).
    #[serde(default)]
    pub(crate) tool: Option<Spanned<String>>,
    /// Record the observations of every `observe` step as an insta snapshot in
    /// `snapshots/` (compared by `cargo test`). Default: false.
    #[serde(default)]
    pub(crate) snapshot: bool,
    /// Wall-clock limit for the whole scenario, e.g. `"10s"` or `"500ms"`.
    /// Default: 10 seconds. Multiplied by `NSCONFORM_TIMEOUT_SCALE` when set.
    #[serde(default)]
    pub(crate) timeout: Option<Spanned<String>>,
    /// At most this many processes at once (a fork bomb stops there, then at the timeout).
    /// Default: 1024. Enforced with the `pids` cgroup controller where the machine offers it.
    #[serde(default)]
    pub(crate) max_processes: Option<u32>,
    /// Which "host" the scenario sees. Default: `stand-in`.
    #[serde(default)]
    pub(crate) host: HostMode,
    /// What the machine must offer; unmet means skipped. Default: nothing.
    #[serde(default)]
    pub(crate) requires: Requires,
    /// Named processes. The actor `host` exists implicitly (the "other terminal").
    #[serde(default)]
    pub(crate) actors: BTreeMap<Spanned<String>, Actor>,
    /// The experiment, in order. At least one step is required.
    #[serde(default)]
    pub(crate) steps: Vec<Spanned<Step>>,
}

/// Which namespaces the scenario's "host" lives in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum HostMode {
    /// Fresh uts, net, mount, ipc, pid and cgroup namespaces made by the harness around the
    /// whole scenario (the default): nothing the scenario does can reach the machine.
    #[default]
    StandIn,
    /// The machine's real namespaces. Only for scenarios that must see them.
    Real,
}

/// Requirements on the machine. Unmet requirements skip the scenario with the reason.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Requires {
    /// The harness must run as uid 0. Default: false.
    #[serde(default)]
    pub(crate) root: bool,
    /// A semver range on the running kernel's version, e.g. `">=5.6"`. Default: any.
    #[serde(default)]
    pub(crate) kernel: Option<Spanned<String>>,
    /// Kernel or machine features, probed at run time (see `nsconform features`). Default: none.
    #[serde(default)]
    pub(crate) features: Vec<Spanned<String>>,
    /// Programs that must be on `PATH`. Default: none (the commands steps run are not
    /// inferred: list them here so a missing tool skips instead of failing).
    #[serde(default)]
    pub(crate) commands: Vec<Spanned<String>>,
    /// Root filesystems the scenario uses (`{{rootfs.NAME}}`, an actor's `rootfs`), by
    /// name (see `nsconform rootfs`). `busybox` is built on demand; the others must have
    /// been built, or the scenario is skipped. Default: none.
    #[serde(default)]
    pub(crate) rootfs: Vec<Spanned<String>>,
}

/// The eight namespace types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum NsKind {
    /// User namespace (`CLONE_NEWUSER`).
    User,
    /// Cgroup namespace (`CLONE_NEWCGROUP`).
    Cgroup,
    /// IPC namespace (`CLONE_NEWIPC`).
    Ipc,
    /// UTS namespace (`CLONE_NEWUTS`).
    Uts,
    /// Network namespace (`CLONE_NEWNET`).
    Net,
    /// PID namespace (`CLONE_NEWPID`).
    Pid,
    /// Mount namespace (`CLONE_NEWNS`).
    Mount,
    /// Time namespace (`CLONE_NEWTIME`).
    Time,
}

impl NsKind {
    /// All kinds, in the order `nsenter(1)` enters them (user first, mount and time last).
    pub(crate) const ALL: [NsKind; 8] = [
        NsKind::User,
        NsKind::Cgroup,
        NsKind::Ipc,
        NsKind::Uts,
        NsKind::Net,
        NsKind::Pid,
        NsKind::Mount,
        NsKind::Time,
    ];

    /// The file name under `/proc/PID/ns/`.
    pub(crate) fn proc_name(self) -> &'static str {
        match self {
            NsKind::User => "user",
            NsKind::Cgroup => "cgroup",
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
            NsKind::Net => "net",
            NsKind::Pid => "pid",
            NsKind::Mount => "mnt",
            NsKind::Time => "time",
        }
    }
}

impl fmt::Display for NsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            NsKind::Mount => "mount",
            other => other.proc_name(),
        };
        f.write_str(name)
    }
}

/// A named, long-lived process. It starts just before the first step that needs it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Actor {
    /// Namespaces this actor creates, like `unshare(1)`. Default: none.
    #[serde(default)]
    pub(crate) unshare: Vec<Spanned<NsKind>>,
    /// Another actor whose namespaces this one enters first, like `nsenter -t PID`.
    /// Default: none (the actor starts in its parent's namespaces).
    #[serde(default)]
    pub(crate) join: Option<Spanned<Join>>,
    /// The actor this one is created from, so it inherits that actor's namespaces before
    /// creating its own (nesting). Default: the host.
    #[serde(default)]
    pub(crate) parent: Option<Spanned<String>>,
    /// Run as this uid, with every capability dropped and no-new-privs set. Default: the
    /// harness's own uid, unchanged.
    #[serde(default)]
    pub(crate) user: Option<u32>,
    /// Run as this gid. Default: the same number as `user` when `user` is set.
    #[serde(default)]
    pub(crate) group: Option<u32>,
    /// Supplementary groups when `user` is set. Default: none.
    #[serde(default)]
    pub(crate) groups: Vec<u32>,
    /// User and group mapping of a new user namespace. Default: `"none"` (like `unshare -U`).
    #[serde(default)]
    pub(crate) map: Option<Spanned<Mapping>>,
    /// Mount a fresh `/proc` for a new PID namespace, like `unshare --mount-proc`.
    /// Implies a new mount namespace. Default: false.
    #[serde(default)]
    pub(crate) mount_proc: bool,
    /// Propagation applied to `/` in a new mount namespace. Default: `private` (as `unshare`).
    #[serde(default)]
    pub(crate) propagation: Option<Propagation>,
    /// Clock offsets of a new time namespace, in seconds. Default: zero.
    #[serde(default)]
    pub(crate) time_offsets: Option<TimeOffsets>,
    /// Place the actor in this child cgroup of the scenario's cgroup before it creates its
    /// namespaces (needs cgroup v2). Default: the scenario's cgroup.
    #[serde(default)]
    pub(crate) cgroup: Option<Spanned<String>>,
    /// A root filesystem (a name in `requires.rootfs`) the actor enters with `pivot_root`
    /// in its new mount namespace, after its other setup: its commands then run with that
    /// tree's programs and libraries (read-only; `/tmp` and `/run` are fresh tmpfs,
    /// `/proc` its own, `/dev` and `/sys` the host's). Needs `mount` in `unshare` and the
    /// stand-in host. Default: none (the host's tree).
    #[serde(default)]
    pub(crate) rootfs: Option<Spanned<String>>,
    /// Working directory of the actor's commands. Default: `/tmp` (private to the scenario).
    #[serde(default)]
    pub(crate) cwd: Option<String>,
    /// Extra environment for the actor's commands. Default: none beyond the harness's fixed
    /// `PATH`, `HOME=/tmp` and `LC_ALL=C`.
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
}

/// Joining another actor's namespaces.
///
/// Untagged enums buffer their input, which loses positions: spans live on the field that
/// holds the whole value instead.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(
    untagged,
    expecting = "an actor name, or a table { actor = \"NAME\", namespaces = [...] }"
)]
pub(crate) enum Join {
    /// Every namespace of that actor that differs from the joiner's, like `nsenter -a`.
    All(String),
    /// Only the listed namespaces, like `nsenter -u -n`.
    Some(JoinSome),
}

/// The table form of [`Join`].
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JoinSome {
    /// The actor to join.
    pub(crate) actor: String,
    /// Which of its namespaces. Required and non-empty.
    pub(crate) namespaces: Vec<NsKind>,
}

impl Join {
    /// The joined actor's name.
    pub(crate) fn actor(&self) -> &str {
        match self {
            Join::All(name) => name,
            Join::Some(some) => &some.actor,
        }
    }
}

/// How a new user namespace is mapped.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(
    untagged,
    expecting = "\"root\", \"current\", \"none\" or a table { uid = [...], gid = [...] }"
)]
pub(crate) enum Mapping {
    /// `"root"` (like `unshare -r`), `"current"` (like `unshare --map-current-user`) or
    /// `"none"` (like `unshare -U`: everything shows as the overflow id 65534).
    Preset(MapPreset),
    /// Explicit map lines.
    Explicit(ExplicitMap),
}

/// The named mappings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MapPreset {
    /// The actor's uid and gid appear as 0; setgroups is denied; the actor writes its own maps.
    Root,
    /// The actor's uid and gid appear unchanged; setgroups is denied; self-written.
    Current,
    /// No map is written.
    None,
}

/// Map lines written to `uid_map` / `gid_map`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExplicitMap {
    /// Lines `"INSIDE OUTSIDE COUNT"`. Default: none (uid_map left unwritten).
    #[serde(default)]
    pub(crate) uid: Vec<String>,
    /// Lines `"INSIDE OUTSIDE COUNT"`. Default: none (gid_map left unwritten).
    #[serde(default)]
    pub(crate) gid: Vec<String>,
    /// What to write to `setgroups` before `gid_map`. Default: leave it as the kernel made it
    /// (`allow`), unless the writer is `self`, where it must be `deny`.
    #[serde(default)]
    pub(crate) setgroups: Option<SetGroups>,
    /// Who writes the maps. Default: `parent`.
    #[serde(default)]
    pub(crate) writer: MapWriter,
    /// Once the maps are written, switch to this uid inside the namespace
    /// (`setresuid`), as a container runtime does. Default: stay as created (an id the map
    /// does not cover shows as 65534, and commands lose their capabilities at `exec`).
    #[serde(default)]
    pub(crate) become_uid: Option<u32>,
    /// Likewise for the gid (`setresgid`, and no supplementary groups). Default: unchanged.
    #[serde(default)]
    pub(crate) become_gid: Option<u32>,
}

/// Contents of `/proc/PID/setgroups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SetGroups {
    /// `setgroups(2)` stays permitted.
    Allow,
    /// `setgroups(2)` is refused in the namespace (needed for an unprivileged `gid_map`).
    Deny,
}

/// Which process writes a new user namespace's maps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MapWriter {
    /// The process that created the actor, through a handshake after the unshare.
    #[default]
    Parent,
    /// The actor itself, from inside the new namespace (only its own ids can be mapped).
    #[serde(rename = "self")]
    Itself,
}

/// Mount propagation applied recursively to `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Propagation {
    /// `MS_REC | MS_PRIVATE`.
    Private,
    /// `MS_REC | MS_SLAVE`.
    Slave,
    /// `MS_REC | MS_SHARED`.
    Shared,
    /// Leave propagation as copied from the parent namespace.
    Unchanged,
}

/// Offsets of a new time namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TimeOffsets {
    /// Seconds added to `CLOCK_MONOTONIC`. Default: 0.
    #[serde(default)]
    pub(crate) monotonic: i64,
    /// Seconds added to `CLOCK_BOOTTIME` (and so `/proc/uptime`). Default: 0.
    #[serde(default)]
    pub(crate) boottime: i64,
}

/// One step of the experiment.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Step {
    /// The actor that performs the step. Default: `host`.
    #[serde(default)]
    pub(crate) actor: Option<Spanned<String>>,
    /// Shell text, run with `/bin/sh -c`.
    #[serde(default)]
    pub(crate) run: Option<Spanned<String>>,
    /// A command as argv, run without a shell.
    #[serde(default)]
    pub(crate) argv: Option<Spanned<Vec<String>>>,
    /// A file to write (one `write(2)` call), e.g. `/proc/{{pid.child}}/uid_map`.
    #[serde(default)]
    pub(crate) write: Option<Spanned<String>>,
    /// Content for `write`. Default: empty.
    #[serde(default)]
    pub(crate) content: Option<String>,
    /// Start this actor now, checking `error`. Default: actors start at first use.
    #[serde(default)]
    pub(crate) start: Option<Spanned<String>>,
    /// Text fed to the command's standard input. Default: `/dev/null`.
    #[serde(default)]
    pub(crate) stdin: Option<String>,
    /// Expected exit status: a number, `"nonzero"` or `"any"`. Default: 0.
    #[serde(default)]
    pub(crate) status: Option<Spanned<StatusExpectation>>,
    /// Expected standard output, with `...` and `[..]` wildcards. Default: unchecked.
    #[serde(default)]
    pub(crate) stdout: Option<Spanned<String>>,
    /// Expected standard error, with wildcards. Default: unchecked.
    #[serde(default)]
    pub(crate) stderr: Option<Spanned<String>>,
    /// For `write` and `start`: the expected errno name (e.g. `"EPERM"`). Default: success.
    #[serde(default)]
    pub(crate) error: Option<Spanned<String>>,
    /// Keep the command's standard output (trailing newlines removed) as `{{var.NAME}}`.
    #[serde(default)]
    pub(crate) capture: Option<Spanned<String>>,
    /// Observations to take, read by the harness with system calls and `/proc` rather than
    /// from tool output (see `docs/observations.md`). Default: none.
    #[serde(default)]
    pub(crate) observe: Option<Spanned<Vec<ObservationKind>>>,
    /// Read the command's standard output as what the probe saw (`nsconform probe`, run
    /// inside a tool's sandbox as `{{probe}}`), keeping these kinds: `expect.*`,
    /// `mounts_under` and snapshots then apply as for `observe`. See `docs/probe.md`.
    /// Default: none (the output is plain text).
    #[serde(default)]
    pub(crate) probe: Option<Spanned<Vec<ObservationKind>>>,
    /// The actor observed. The step's `actor` is the viewpoint (it matters for `maps`).
    /// Default: the step's actor.
    #[serde(default)]
    pub(crate) of: Option<Spanned<String>>,
    /// For `mounts`: keep mounts at or below these paths. Default: `["/tmp"]` for
    /// `observe`, `["/"]` for `probe`.
    #[serde(default)]
    pub(crate) mounts_under: Option<Vec<String>>,
    /// For `sysctl`: the sysctls to read, e.g. `["net.ipv4.ip_forward"]`. Default: none.
    #[serde(default)]
    pub(crate) sysctls: Vec<String>,
    /// Expected observed values, by field: `expect.hostname = "newname"`. Only the fields
    /// given are compared. Default: nothing expected.
    #[serde(default)]
    pub(crate) expect: Option<Spanned<toml::Table>>,
    /// Only on kernels in this semver range (e.g. `"<5.11"`); elsewhere the step is
    /// skipped and says so. For behaviour that legitimately differs between kernels: give
    /// each kernel range its own step. Default: every kernel.
    #[serde(default)]
    pub(crate) kernel: Option<Spanned<String>>,
    /// Why the step is there, shown in failures. Default: none.
    #[serde(default)]
    pub(crate) note: Option<String>,
}

impl Step {
    /// Every text of the step that may hold placeholders (commands, written content,
    /// expected output), each with the span of its own value where it has one.
    pub(crate) fn template_texts(&self) -> Vec<(&str, Option<std::ops::Range<usize>>)> {
        let mut texts: Vec<(&str, Option<std::ops::Range<usize>>)> = Vec::new();
        for field in [&self.run, &self.write, &self.stdout, &self.stderr]
            .into_iter()
            .flatten()
        {
            texts.push((field.get_ref(), Some(field.span())));
        }
        if let Some(argv) = &self.argv {
            for arg in argv.get_ref() {
                texts.push((arg, Some(argv.span())));
            }
        }
        for text in [&self.content, &self.stdin].into_iter().flatten() {
            texts.push((text, None));
        }
        texts
    }
}

/// What an `observe` step can record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ObservationKind {
    /// Hostname, domain name, PIDs, ids, groups and capabilities.
    Identity,
    /// `uid_map`, `gid_map` and `setgroups`, as the viewpoint actor reads them.
    Maps,
    /// Which namespaces are shared with the host or other actors, with owners and parents.
    Namespaces,
    /// Links, addresses and routes, by rtnetlink.
    Network,
    /// Mounts from `mountinfo`, under `mounts_under`.
    Mounts,
    /// The cgroup path, inside and from the host.
    Cgroup,
    /// Time-namespace offsets.
    Time,
    /// System V IPC objects (and POSIX queues when `/dev/mqueue` is mounted).
    Ipc,
    /// The sysctls listed in `sysctls`.
    Sysctl,
}

/// The expected exit status of a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged, expecting = "an exit status number, \"nonzero\" or \"any\"")]
pub(crate) enum StatusExpectation {
    /// Exactly this exit code.
    Code(i32),
    /// A keyword.
    Word(StatusWord),
}

/// Keyword forms of [`StatusExpectation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StatusWord {
    /// Any status other than 0 (including death by signal).
    Nonzero,
    /// Not checked.
    Any,
}
