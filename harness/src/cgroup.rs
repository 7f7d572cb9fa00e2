//! The scenario's own cgroup (v2): a child of the harness's cgroup, made before the stand-in
//! host and removed after it. It becomes the root of the stand-in's cgroup namespace, holds
//! the actors' child cgroups (`cgroup = "..."`), and lets the supervisor kill every process
//! the scenario started even without a PID namespace. The supervisor never enters it: the
//! orchestrator is born in it or joins it (see `containment`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A cgroup made for one scenario run.
#[derive(Debug)]
pub(crate) struct ScenarioCgroup {
    dir: PathBuf,
    /// The directory, open for `CLONE_INTO_CGROUP`.
    handle: Option<std::os::fd::OwnedFd>,
}

/// Where a process makes its scenarios' cgroups: under its own cgroup, in the v2 hierarchy
/// and in a mounted v1 `pids` one. A supervisor reads them once (it never moves, nor
/// changes its mount namespace), rather than read `mountinfo` for every scenario.
#[derive(Debug, Clone, Default)]
pub(crate) struct CgroupHomes {
    /// This process's cgroup v2 directory, when cgroup v2 is mounted.
    pub(crate) v2: Option<PathBuf>,
    /// This process's cgroup in a mounted v1 `pids` hierarchy, if there is one.
    pub(crate) v1_pids: Option<PathBuf>,
}

impl CgroupHomes {
    /// Read them for this process.
    pub(crate) fn of_this_process() -> CgroupHomes {
        CgroupHomes {
            v2: own_v2_dir(),
            v1_pids: crate::pids_limit::v1_pids_cgroup(),
        }
    }
}

/// This process's cgroup v2 directory.
fn own_v2_dir() -> Option<PathBuf> {
    Some(cgroup2_mount()?.join(own_cgroup()?.trim_start_matches('/')))
}

/// Where cgroup v2 is mounted, from `/proc/self/mountinfo`.
pub(crate) fn cgroup2_mount() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mountinfo.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let mount_point = before.split_whitespace().nth(4)?;
        (after.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(mount_point))
    })
}

/// This process's cgroup v2 path (the `0::` line of `/proc/self/cgroup`).
fn own_cgroup() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_string))
}

impl ScenarioCgroup {
    /// Make `nsconform-<pid>` under `home`, this process's cgroup (this process stays where
    /// it is). `None` when the new cgroup would not be writable here.
    pub(crate) fn create(home: &Path) -> Option<ScenarioCgroup> {
        let dir = home.join(format!("nsconform-{}", std::process::id()));
        if dir.exists() {
            // Left by a supervisor that was killed before it could clean up, whose PID is
            // ours now. Reusing it would be wrong, and failing here would silently leave the
            // scenario without a cgroup (its namespace rooted where other scenarios are).
            ScenarioCgroup {
                dir: dir.clone(),
                handle: None,
            }
            .destroy()
            .ok()?;
        }
        std::fs::create_dir(&dir).ok()?;
        let procs = dir.join("cgroup.procs");
        let mut cgroup = ScenarioCgroup { dir, handle: None };
        if nix::unistd::access(&procs, nix::unistd::AccessFlags::W_OK).is_err() {
            cgroup.remove_tree();
            return None;
        }
        cgroup.handle = std::fs::File::open(&cgroup.dir).ok().map(Into::into);
        Some(cgroup)
    }

    /// The cgroup a supervisor with PID `pid`, started from this process's cgroup, made and
    /// left (it was killed), if there is one.
    pub(crate) fn left_by(pid: u32) -> Option<ScenarioCgroup> {
        let dir = own_v2_dir()?.join(format!("nsconform-{pid}"));
        dir.is_dir().then_some(ScenarioCgroup { dir, handle: None })
    }

    /// The cgroup's directory (as the machine sees it).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The open directory, for `clone3(CLONE_INTO_CGROUP)`.
    pub(crate) fn handle(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.handle.as_ref().map(AsFd::as_fd)
    }

    /// Move the calling process into the cgroup.
    pub(crate) fn join(&self) -> std::io::Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), "0")
    }

    /// Kill every process left in the cgroup tree, wait until it is empty, and remove it.
    pub(crate) fn destroy(self) -> Result<(), String> {
        // Usually it is empty by now, without children: removing it is all there is to do.
        if std::fs::remove_dir(&self.dir).is_ok() {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = pids_in_tree(&self.dir);
            if pids.is_empty() {
                break;
            }
            if !self.dir.join("cgroup.kill").exists()
                || std::fs::write(self.dir.join("cgroup.kill"), "1").is_err()
            {
                for pid in &pids {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(*pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "processes {pids:?} survived in {}",
                    self.dir.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.remove_tree() {
            Ok(())
        } else {
            Err(format!("could not remove {}", self.dir.display()))
        }
    }

    /// Remove the cgroup directories bottom-up; true when gone.
    fn remove_tree(&self) -> bool {
        remove_dirs(&self.dir);
        !self.dir.exists()
    }
}

fn pids_in_tree(dir: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for child in subdirs(dir) {
        pids.extend(pids_in_tree(&child));
    }
    pids
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn remove_dirs(dir: &Path) {
    for child in subdirs(dir) {
        remove_dirs(&child);
    }
    // cgroupfs removes a cgroup with rmdir; its control files go with it.
    let _ = std::fs::remove_dir(dir);
}
