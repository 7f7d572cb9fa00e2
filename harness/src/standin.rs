//! The stand-in host: what the orchestrator does first, as PID 1 of the fresh uts, net,
//! mount, ipc, pid and cgroup namespaces the supervisor made for it.
//!
//! It cuts mount propagation with the machine, then gives the scenario a host that looks
//! like a real one (shared mounts, its own `/proc`, `/sys`, cgroup2, `/tmp`, `/run`,
//! `/dev/shm`, `/dev/mqueue`, loopback up) while nothing it changes can reach the machine.

use nix::mount::{mount, MsFlags};

/// Why the stand-in host could not be made.
#[derive(Debug, thiserror::Error)]
#[error("stand-in host: {what}: {source}")]
pub(crate) struct StandInError {
    what: String,
    source: std::io::Error,
}

fn step(what: &str, result: nix::Result<()>) -> Result<(), StandInError> {
    result.map_err(|errno| StandInError {
        what: what.to_string(),
        source: errno.into(),
    })
}

fn mount_fs(fstype: &str, target: &str, data: Option<&str>) -> Result<(), StandInError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    step(
        &format!("mount {fstype} on {target}"),
        mount(Some(fstype), target, Some(fstype), flags, data),
    )
}

/// What a supervisor needs to know of the machine to make stand-in hosts: read once, before
/// the first (no scenario writes host-wide state, and the host guard checks that).
#[derive(Debug, Clone, Default)]
pub(crate) struct MachineFacts {
    /// The machine's `kernel.pid_max`, which the stand-in copies.
    pid_max: Option<String>,
    /// Where the scenarios' cgroups go.
    pub(crate) cgroups: crate::cgroup::CgroupHomes,
}

impl MachineFacts {
    /// Read them (in the machine's namespaces).
    pub(crate) fn read() -> MachineFacts {
        MachineFacts {
            pid_max: std::fs::read_to_string(PID_MAX).ok(),
            cgroups: crate::cgroup::CgroupHomes::of_this_process(),
        }
    }
}

/// The stand-in host's hostname (`{{hostname}}` in a stand-in scenario).
pub(crate) const STANDIN_HOSTNAME: &str = "nsconform-host";

const PID_MAX: &str = "/proc/sys/kernel/pid_max";

/// Prepare the stand-in host as far as it does not depend on the scenario. Must run in the
/// new mount, pid and net namespaces; [`finish`] completes it.
pub(crate) fn prepare_base(cgroup2: bool, machine: &MachineFacts) -> Result<(), StandInError> {
    let root = |flags: MsFlags| {
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | flags,
            None::<&str>,
        )
    };
    // First of all: nothing mounted from now on may propagate to the machine.
    step("make / private", root(MsFlags::MS_PRIVATE))?;
    // Then look like a systemd host, whose mounts are shared (new peer groups, ours alone).
    step("make / shared", root(MsFlags::MS_SHARED))?;
    let proc_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    step(
        "mount proc on /proc",
        mount(
            Some("proc"),
            "/proc",
            Some("proc"),
            proc_flags,
            None::<&str>,
        ),
    )?;
    mount_fs("sysfs", "/sys", None)?;
    if cgroup2 {
        mount_fs("cgroup2", "/sys/fs/cgroup", None)?;
    }
    if std::path::Path::new("/dev/shm").is_dir() {
        mount_fs("tmpfs", "/dev/shm", Some("mode=1777"))?;
    }
    if std::path::Path::new("/dev/mqueue").is_dir() {
        mount_fs("mqueue", "/dev/mqueue", None)?;
    }
    copy_pid_max(machine)?;
    // The same names on every machine, so observations and snapshots compare across them.
    step(
        "set the hostname",
        nix::unistd::sethostname(STANDIN_HOSTNAME),
    )?;
    step("set the domain name", crate::sys::setdomainname("(none)"))?;
    crate::sys::set_loopback_up().map_err(|source| StandInError {
        what: "set lo up".into(),
        source,
    })
}

/// Finish the stand-in host once the scenario is loaded (it, and what it is offered, may
/// be in a checkout under the machine's `/run` or `/tmp`): a fresh `/run`, what the scenario
/// is offered under `/run/nsconform` (`offer` binds it; its value is returned), a fresh
/// `/tmp`.
pub(crate) fn finish<T>(offer: impl FnOnce() -> Result<T, String>) -> Result<T, StandInError> {
    mount_fs("tmpfs", "/run", Some("mode=755"))?;
    for (dir, mode) in [
        ("/run/netns", 0o755),
        ("/run/lock", 0o1777),
        ("/run/mount", 0o755),
    ] {
        create_dir(dir, mode)?;
    }
    let offered = offer().map_err(|cause| StandInError {
        what: "offer the probe, fixtures and root filesystems under /run/nsconform".into(),
        source: std::io::Error::other(cause),
    })?;
    mount_fs("tmpfs", "/tmp", Some("mode=1777"))?;
    Ok(offered)
}

/// Kernels from 6.14 keep `pid_max` per PID namespace, and a new one starts at the default
/// rather than the machine's value (which changes `ps` column widths, for one). Copy the
/// machine's value in — only when the stand-in's differs, which proves the value is
/// per-namespace: on older kernels it is global, and writing it would change the machine.
fn copy_pid_max(machine: &MachineFacts) -> Result<(), StandInError> {
    let Some(wanted) = &machine.pid_max else {
        return Ok(());
    };
    let ours = std::fs::read_to_string(PID_MAX).unwrap_or_default();
    if ours.trim() == wanted.trim() {
        return Ok(());
    }
    match std::fs::write(PID_MAX, wanted.trim()) {
        // A rootless stand-in may not set it; the stand-in then keeps the kernel's default.
        Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => Ok(()),
        other => other.map_err(|source| StandInError {
            what: format!("copy pid_max {} into the stand-in", wanted.trim()),
            source,
        }),
    }
}

fn create_dir(dir: &str, mode: u32) -> Result<(), StandInError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .mode(mode)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)))
        .map_err(|source| StandInError {
            what: format!("create {dir}"),
            source,
        })
}
