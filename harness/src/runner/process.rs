//! A supervisor process as the runner holds it: exec'd by the runner (its own child), or
//! forked by a fork server (a child of the server, known by a pidfd).

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::{Child, ExitStatus};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;

use crate::fork_server::Forked;

/// A supervisor and its standard streams.
#[derive(Debug)]
pub(crate) struct Supervisor {
    pid: u32,
    /// Its standard input (a warm supervisor reads its scenario there).
    pub(crate) stdin: Option<File>,
    /// Its standard output: the report, then the cleanup's verdict.
    pub(crate) stdout: Option<File>,
    /// Its standard error: the log.
    pub(crate) stderr: Option<File>,
    process: Process,
    /// Readable when it exits: opened once (for a child of the runner, if the kernel has
    /// pidfds), as every wait for its lines polls it.
    pidfd: Option<OwnedFd>,
}

#[derive(Debug)]
enum Process {
    /// A child of the runner.
    Child(Child),
    /// A child of a fork server, known by its pidfd.
    Forked,
}

impl Supervisor {
    /// A supervisor the runner exec'd, with its piped streams.
    pub(crate) fn from_child(mut child: Child) -> Supervisor {
        Supervisor {
            pid: child.id(),
            stdin: child.stdin.take().map(|s| File::from(OwnedFd::from(s))),
            stdout: child.stdout.take().map(|s| File::from(OwnedFd::from(s))),
            stderr: child.stderr.take().map(|s| File::from(OwnedFd::from(s))),
            pidfd: crate::sys::pidfd_open(nix::unistd::Pid::from_raw(child.id() as i32)).ok(),
            process: Process::Child(child),
        }
    }

    /// A supervisor a fork server forked.
    pub(crate) fn from_forked(forked: Forked) -> Supervisor {
        Supervisor {
            pid: forked.pid,
            stdin: Some(forked.stdin),
            stdout: Some(forked.stdout),
            stderr: Some(forked.stderr),
            process: Process::Forked,
            pidfd: Some(forked.pidfd),
        }
    }

    /// Its PID.
    pub(crate) fn id(&self) -> u32 {
        self.pid
    }

    /// Whether it is the runner's own child, which only the runner reaps, so its PID can be
    /// signalled safely until [`Supervisor::wait`]; a forked one is signalled through its
    /// server or its pidfd.
    pub(crate) fn is_child(&self) -> bool {
        matches!(self.process, Process::Child(_))
    }

    /// A descriptor that becomes readable when it exits, if the kernel has pidfds.
    pub(crate) fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(AsFd::as_fd)
    }

    /// Kill it (SIGKILL).
    pub(crate) fn kill(&mut self) {
        match &mut self.process {
            Process::Child(child) => {
                let _ = child.kill();
            }
            Process::Forked => {
                if let Some(pidfd) = &self.pidfd {
                    let _ = crate::sys::pidfd_send_signal(pidfd, Signal::SIGKILL);
                }
            }
        }
    }

    /// Close its input (a warm one then removes what it made for its scenario and exits) and
    /// wait for it to exit.
    pub(crate) fn end(&mut self) -> Option<ExitStatus> {
        drop(self.stdin.take());
        self.wait()
    }

    /// Wait for it to exit: its status, when it is the runner's own child.
    pub(crate) fn wait(&mut self) -> Option<ExitStatus> {
        match &mut self.process {
            Process::Child(child) => child.wait().ok(),
            Process::Forked => {
                while !self
                    .pidfd
                    .as_ref()
                    .is_none_or(|fd| exited(fd, PollTimeout::NONE))
                {}
                None
            }
        }
    }

    /// Whether it has exited (reaped, when it is the runner's own child).
    pub(crate) fn try_wait(&mut self) -> bool {
        match &mut self.process {
            Process::Child(child) => matches!(child.try_wait(), Ok(Some(_)) | Err(_)),
            Process::Forked => self
                .pidfd
                .as_ref()
                .is_none_or(|fd| exited(fd, PollTimeout::ZERO)),
        }
    }
}

/// Whether the process of `pidfd` has exited, waiting up to `timeout`.
fn exited(pidfd: &OwnedFd, timeout: PollTimeout) -> bool {
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, timeout) {
        Ok(_) => fds[0].revents().is_some_and(|r| !r.is_empty()),
        Err(nix::errno::Errno::EINTR) => false,
        // A pidfd that cannot be polled tells nothing more: take it as gone.
        Err(_) => true,
    }
}
