//! How processes are scheduled: the background (nice 19) for work done ahead, idle for
//! brief clean-ups, and back to normal.

use nix::unistd::Pid;

/// How a process (or thread) is scheduled, see [`set_scheduling`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheduling {
    /// `SCHED_OTHER` at nice 0: the usual.
    Normal,
    /// `SCHED_OTHER` at nice 19: work done ahead (warm supervisors), which yields to the
    /// scenario in flight yet still gets its share on a loaded machine.
    Background,
    /// `SCHED_IDLE`: it runs only on CPU time nothing else wants, and any normal process
    /// that wakes up preempts it at once (for brief work only: load can starve it).
    Idle,
}

/// The nice value a [`Scheduling::Background`] process has.
const BACKGROUND_NICE: i32 = 19;

/// The scheduling of process or thread `pid` (0: the calling thread); `None` for anything
/// else (another policy or nice value), which callers leave alone.
pub(crate) fn scheduling_of(pid: Pid) -> nix::Result<Option<Scheduling>> {
    // SAFETY: sched_getscheduler takes a plain integer and touches no memory of ours.
    let policy = unsafe { libc::sched_getscheduler(pid.as_raw()) };
    if policy == -1 {
        return Err(nix::errno::Errno::last());
    }
    if policy == libc::SCHED_IDLE {
        return Ok(Some(Scheduling::Idle));
    }
    if policy != libc::SCHED_OTHER {
        return Ok(None);
    }
    nix::errno::Errno::clear();
    // SAFETY: getpriority takes plain integers and touches no memory of ours.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, pid.as_raw() as libc::id_t) };
    // -1 is a valid nice value: only errno tells an error.
    if nice == -1 && nix::errno::Errno::last_raw() != 0 {
        return Err(nix::errno::Errno::last());
    }
    Ok(match nice {
        0 => Some(Scheduling::Normal),
        BACKGROUND_NICE => Some(Scheduling::Background),
        _ => None,
    })
}

/// Bring process `pid` back to [`Scheduling::Normal`] if it is in the background or idle;
/// anything else (e.g. the nice value the harness itself was started with) is left alone.
pub(crate) fn bring_back(pid: Pid) -> nix::Result<()> {
    match scheduling_of(pid)? {
        Some(Scheduling::Background | Scheduling::Idle) => set_scheduling(pid, Scheduling::Normal),
        _ => Ok(()),
    }
}

/// Put process or thread `pid` (0: the calling thread) in `to` for a while, when it is in
/// the normal scheduling and this process is root: only root can come back ([`bring_back`]),
/// and any other scheduling is the user's choice, left alone. Whether it did.
pub(crate) fn step_aside(pid: Pid, to: Scheduling) -> bool {
    nix::unistd::geteuid().is_root()
        && scheduling_of(pid).is_ok_and(|s| s == Some(Scheduling::Normal))
        && set_scheduling(pid, to).is_ok()
}

/// Set the scheduling of process or thread `pid` (0: the calling thread). Coming back to
/// `Normal` needs `CAP_SYS_NICE` (or a high enough `RLIMIT_NICE`).
pub(crate) fn set_scheduling(pid: Pid, scheduling: Scheduling) -> nix::Result<()> {
    let (policy, nice) = match scheduling {
        Scheduling::Normal => (libc::SCHED_OTHER, Some(0)),
        Scheduling::Background => (libc::SCHED_OTHER, Some(BACKGROUND_NICE)),
        Scheduling::Idle => (libc::SCHED_IDLE, None),
    };
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param that outlives the call, which only reads it.
    if unsafe { libc::sched_setscheduler(pid.as_raw(), policy, &param) } == -1 {
        return Err(nix::errno::Errno::last());
    }
    if let Some(nice) = nice {
        // SAFETY: setpriority takes plain integers and touches no memory of ours.
        let ret =
            unsafe { libc::setpriority(libc::PRIO_PROCESS, pid.as_raw() as libc::id_t, nice) };
        if ret == -1 {
            return Err(nix::errno::Errno::last());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{scheduling_of, set_scheduling, Scheduling};
    use nix::unistd::Pid;

    #[test]
    fn the_scheduling_of_this_thread_goes_there_and_back() {
        // Per thread: only this test's thread changes, and it ends soon.
        let this_thread = Pid::from_raw(0);
        assert_eq!(scheduling_of(this_thread), Ok(Some(Scheduling::Normal)));
        if !nix::unistd::geteuid().is_root() {
            // Only root can come back to nice 0 and from SCHED_IDLE.
            return;
        }
        for scheduling in [Scheduling::Background, Scheduling::Idle, Scheduling::Normal] {
            set_scheduling(this_thread, scheduling).expect("set");
            assert_eq!(scheduling_of(this_thread), Ok(Some(scheduling)));
        }
    }
}
