//! A cap on how many processes a scenario may have at once, so a fork bomb stops at the cap
//! (and then at the scenario's timeout) instead of exhausting the machine.
//!
//! Where cgroup v2 already delegates the `pids` controller to the harness's cgroup, the cap
//! is `pids.max` of the scenario's own cgroup. Otherwise, on machines whose `pids` controller
//! lives in a cgroup v1 hierarchy, the supervisor makes a `nsconform-<pid>` cgroup there and
//! the scenario runs in both. Without either, only the timeout bounds a fork bomb (the harness
//! never enables a controller on the machine's cgroups: that would change host-wide state).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How many processes a scenario may have unless it says otherwise.
pub(crate) const DEFAULT_MAX_PROCESSES: u32 = 1024;

/// A process cap in force for one scenario run.
#[derive(Debug)]
pub(crate) enum PidsLimit {
    /// `pids.max` of the scenario's cgroup v2 (removed with that cgroup).
    V2 {
        /// The scenario's cgroup.
        dir: PathBuf,
    },
    /// A cgroup of its own in the v1 `pids` hierarchy.
    V1 {
        /// The cgroup made for the scenario.
        dir: PathBuf,
    },
}

impl PidsLimit {
    /// Make a cap of `max` processes, which a process enters with [`PidsLimit::join`].
    /// `scenario_cgroup` is the scenario's cgroup v2 directory, when there is one (its
    /// processes are then capped as soon as they are in it); else the cap is a v1 cgroup
    /// under `v1_home` (this process's, [`v1_pids_cgroup`]). `None` when no cap can be set.
    pub(crate) fn apply(
        scenario_cgroup: Option<&Path>,
        v1_home: Option<&Path>,
        max: u32,
    ) -> Option<PidsLimit> {
        if let Some(dir) = scenario_cgroup {
            let delegated = dir
                .parent()
                .and_then(|parent| {
                    std::fs::read_to_string(parent.join("cgroup.subtree_control")).ok()
                })
                .is_some_and(|controllers| controllers.split_whitespace().any(|c| c == "pids"));
            if delegated && std::fs::write(dir.join("pids.max"), max.to_string()).is_ok() {
                return Some(PidsLimit::V2 {
                    dir: dir.to_path_buf(),
                });
            }
        }
        let dir = v1_home?.join(format!("nsconform-{}", std::process::id()));
        if dir.exists() {
            // Left by a supervisor that was killed before it could clean up, whose PID is
            // ours now: empty it and take its place.
            let stale = PidsLimit::V1 { dir: dir.clone() };
            stale.destroy().ok()?;
        }
        std::fs::create_dir(&dir).ok()?;
        let limit = PidsLimit::V1 { dir: dir.clone() };
        if std::fs::write(dir.join("pids.max"), max.to_string()).is_ok() {
            Some(limit)
        } else {
            let _ = limit.destroy();
            None
        }
    }

    /// The v1 cap a supervisor with PID `pid`, started from this process's cgroup, made and
    /// left (it was killed), if there is one.
    pub(crate) fn left_by(pid: u32) -> Option<PidsLimit> {
        let dir = v1_pids_cgroup()?.join(format!("nsconform-{pid}"));
        dir.is_dir().then_some(PidsLimit::V1 { dir })
    }

    /// Put the calling thread under the cap (for `V1`; under `V2` the scenario's cgroup is
    /// the cap). Call it single-threaded, where the thread is the whole process: moving one
    /// thread (`tasks`) skips the kernel's global migration lock, which moving a process
    /// (`cgroup.procs`) takes and which waits for an RCU grace period.
    pub(crate) fn join(&self) -> std::io::Result<()> {
        match self {
            PidsLimit::V1 { dir } => std::fs::write(dir.join("tasks"), "0"),
            PidsLimit::V2 { .. } => Ok(()),
        }
    }

    /// Change the cap to `max`.
    pub(crate) fn set_max(&self, max: u32) -> std::io::Result<()> {
        let (PidsLimit::V1 { dir } | PidsLimit::V2 { dir }) = self;
        std::fs::write(dir.join("pids.max"), max.to_string())
    }

    /// Kill what is left under the cap and remove the v1 cgroup.
    pub(crate) fn destroy(self) -> Result<(), String> {
        let PidsLimit::V1 { dir } = &self else {
            return Ok(());
        };
        // Usually it is empty by now: removing it is all there is to do.
        if std::fs::remove_dir(dir).is_ok() {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            if pids.is_empty() {
                // Tasks that were just killed may still hold the cgroup for a moment.
                match std::fs::remove_dir(dir) {
                    Ok(()) => return Ok(()),
                    Err(err)
                        if err.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    }
                    Err(err) => return Err(format!("could not remove {}: {err}", dir.display())),
                }
            }
            if Instant::now() > deadline {
                return Err(format!("processes {pids:?} survived in {}", dir.display()));
            }
            for pid in &pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(*pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// This process's cgroup in a mounted v1 `pids` hierarchy.
pub(crate) fn v1_pids_cgroup() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let after: Vec<&str> = after.split_whitespace().collect();
        let is_pids =
            after.first() == Some(&"cgroup") && after.get(2)?.split(',').any(|o| o == "pids");
        is_pids.then(|| PathBuf::from(before.split_whitespace().nth(4).unwrap_or("/")))
    })?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == "pids")
            .then(|| path.to_string())
    })?;
    Some(mount.join(path.trim_start_matches('/')))
}
