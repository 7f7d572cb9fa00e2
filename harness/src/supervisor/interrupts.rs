//! The supervisor's signals: SIGINT, SIGTERM and SIGHUP, and the death of the runner, turned
//! into events it waits for, so an interrupted scenario is still cleaned up.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

/// SIGINT, SIGTERM and SIGHUP (Ctrl-C, `kill`, a closed terminal) and the death of the
/// runner, turned into events the supervisor waits for, so an interrupted scenario is still
/// killed and cleaned up before the supervisor exits.
pub(super) struct Interrupts {
    pub(super) fd: SignalFd,
    parent: Pid,
}

impl Interrupts {
    fn signals() -> SigSet {
        let mut set = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(signal);
        }
        set
    }

    /// Block the signals (they queue for the signalfd) and ask for SIGTERM if the runner
    /// that started this supervisor dies.
    pub(super) fn catch() -> nix::Result<Interrupts> {
        let signals = Self::signals();
        signals.thread_block()?;
        let fd = SignalFd::with_flags(&signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        let parent = nix::unistd::getppid();
        nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
        Ok(Interrupts { fd, parent })
    }

    /// Whether the runner died before `catch` asked to be told.
    pub(super) fn parent_gone(&self) -> bool {
        nix::unistd::getppid() != self.parent
    }

    /// The first signal waiting, if any.
    pub(super) fn received(&self) -> Option<Signal> {
        match self.fd.read_signal() {
            Ok(Some(info)) => Signal::try_from(info.ssi_signo as i32).ok(),
            _ => None,
        }
    }

    /// In the orchestrator: signals as usual again, and death with the supervisor.
    pub(super) fn release_in_child(&self) {
        let _ = Self::signals().thread_unblock();
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    }
}
