//! What holds a scenario's processes: its own cgroup v2 (the root of the stand-in's cgroup
//! namespace) and its process cap. The supervisor makes them; only the orchestrator enters.
//!
//! The supervisor never moves itself. Moving a whole process between cgroups takes the
//! kernel's global migration lock, whose write side waits for an RCU grace period: a
//! supervisor that moved in and back out paid that several times per scenario. Instead the
//! orchestrator is born in the scenario's cgroup (`clone3` with `CLONE_INTO_CGROUP`, Linux
//! 5.7), or on older kernels joins it as its first act, and enters a v1 `pids` cap as a single
//! thread, which skips the lock.

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::ForkResult;

use crate::cgroup::{CgroupHomes, ScenarioCgroup};
use crate::pids_limit::PidsLimit;
use crate::sys;

/// The cgroups of one scenario run.
#[derive(Debug)]
pub(crate) struct Containment {
    cgroup: Option<ScenarioCgroup>,
    pids: Option<PidsLimit>,
    /// In the orchestrator: whether it was born in `cgroup` (else it joins it).
    born_inside: bool,
}

impl Containment {
    /// Make them, under `homes` (this process's cgroups): the scenario's own cgroup when
    /// `own_cgroup` (a stand-in host) and the machine allows it, and a cap of
    /// `max_processes` where one can be set.
    pub(crate) fn create(homes: &CgroupHomes, own_cgroup: bool, max_processes: u32) -> Containment {
        let cgroup = homes
            .v2
            .as_deref()
            .filter(|_| own_cgroup)
            .and_then(ScenarioCgroup::create);
        let pids = PidsLimit::apply(
            cgroup.as_ref().map(ScenarioCgroup::dir),
            homes.v1_pids.as_deref(),
            max_processes,
        );
        Containment {
            cgroup,
            pids,
            born_inside: false,
        }
    }

    /// Whether the scenario has its own cgroup v2 (the stand-in then mounts it).
    pub(crate) fn has_cgroup(&self) -> bool {
        self.cgroup.is_some()
    }

    /// Fork the orchestrator into new namespaces `flags` (none: a plain fork), straight into
    /// the scenario's cgroup where the kernel can.
    pub(crate) fn fork(&mut self, flags: CloneFlags) -> nix::Result<ForkResult> {
        if let Some(handle) = self.cgroup.as_ref().and_then(ScenarioCgroup::handle) {
            match sys::fork_into_cgroup(flags, handle) {
                Ok(ForkResult::Child) => {
                    self.born_inside = true;
                    return Ok(ForkResult::Child);
                }
                Ok(parent) => return Ok(parent),
                // Before 5.7 (no clone3, or no CLONE_INTO_CGROUP): the child joins instead.
                Err(Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL) => {}
                Err(err) => return Err(err),
            }
        }
        if flags.is_empty() {
            sys::fork()
        } else {
            sys::fork_into_new_namespaces(flags)
        }
    }

    /// In the orchestrator, before anything else: enter the cgroups it was not born in,
    /// then, with `new_namespace`, a new cgroup namespace rooted where it now is.
    pub(crate) fn enter(&self, new_namespace: bool) -> Result<(), String> {
        if let Some(cgroup) = self.cgroup.as_ref().filter(|_| !self.born_inside) {
            cgroup
                .join()
                .map_err(|e| format!("join {}: {e}", cgroup.dir().display()))?;
        }
        if let Some(pids) = &self.pids {
            pids.join()
                .map_err(|e| format!("enter the process cap: {e}"))?;
        }
        if new_namespace {
            nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
                .map_err(|e| format!("unshare the cgroup namespace: {e}"))?;
        }
        Ok(())
    }

    /// Change the process cap to `max` (no cap in force: nothing to change).
    pub(crate) fn set_max_processes(&self, max: u32) -> std::io::Result<()> {
        self.pids.as_ref().map_or(Ok(()), |pids| pids.set_max(max))
    }

    /// Remove what a supervisor with PID `pid` (started by this process, in its cgroup)
    /// left when it was killed before its cleanup: the processes in its cgroups, and them.
    pub(crate) fn remove_left_by(pid: u32) -> Result<(), String> {
        Containment {
            cgroup: ScenarioCgroup::left_by(pid),
            pids: PidsLimit::left_by(pid),
            born_inside: false,
        }
        .destroy()
    }

    /// Kill whatever is left in them and remove them.
    pub(crate) fn destroy(self) -> Result<(), String> {
        let capped = self.pids.map(PidsLimit::destroy).unwrap_or(Ok(()));
        let own = self.cgroup.map(ScenarioCgroup::destroy).unwrap_or(Ok(()));
        own.and(capped)
    }
}

#[cfg(test)]
mod tests {
    use super::Containment;

    /// What a supervisor killed before its cleanup leaves (its cgroups, named for its PID)
    /// is found from its PID and removed. Needs root and cgroups; else there is nothing to
    /// check.
    #[test]
    fn what_a_killed_supervisor_left_is_removed() {
        // A PID no process has: above the default pid_max of this machine's range in use.
        let pid = 4_194_301;
        let Some(made) = crate::cgroup::CgroupHomes::of_this_process()
            .v2
            .map(|home| home.join(format!("nsconform-{pid}")))
            .filter(|dir| std::fs::create_dir_all(dir.join("child")).is_ok())
        else {
            return;
        };
        assert!(crate::cgroup::ScenarioCgroup::left_by(pid).is_some());
        assert_eq!(Containment::remove_left_by(pid), Ok(()));
        assert!(!made.exists(), "{} is left", made.display());
        assert_eq!(
            Containment::remove_left_by(pid),
            Ok(()),
            "nothing left: nothing to do"
        );
    }
}
