//! What the runner tells a warm supervisor on its standard input: one JSON line per scenario
//! (an [`Assignment`]), and for a scenario given out ahead of its turn
//! ([`Assignment::hold`]), a later line [`GO_LINE`] when its turn comes.

use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::interrupts::Interrupts;

/// The line that lets a held scenario run (see [`Assignment::hold`]).
pub(crate) const GO_LINE: &[u8] = b"go";

/// What the runner tells a warm supervisor: the scenario to run, as one JSON line on its
/// standard input.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Assignment {
    /// The name to report.
    pub(crate) name: String,
    /// The scenario file.
    pub(crate) path: PathBuf,
    /// The runner checked the scenario's requirements before the run, with this
    /// supervisor's environment, and they hold (`runner/requirements.rs`): its orchestrator
    /// may run it as soon as it has loaded it. Default false: checked here first.
    #[serde(default)]
    pub(crate) ready: bool,
    /// The scenario is given out ahead of its turn (only a `ready` one): its orchestrator
    /// loads it, finishes its host and sets up its first actor, and the supervisor then
    /// waits for a line [`GO_LINE`] before anything of the scenario runs (or the end of its
    /// input: it never runs, and nothing is reported). The orchestrator may go on before
    /// the line comes, when the runner thread's turn before [`Assignment::turn`] ends (see
    /// `turns.rs`). Default false: it runs at once.
    #[serde(default)]
    pub(crate) hold: bool,
    /// The scenario's turn among those of its runner thread, from 1 (see `turns.rs`).
    /// Default 0: none.
    #[serde(default)]
    pub(crate) turn: u64,
    /// The run needs no further scenario from this supervisor: it exits after this one
    /// rather than make another stand-in host. Default false.
    #[serde(default)]
    pub(crate) last: bool,
}

/// The supervisor's standard input, read a line at a time.
#[derive(Debug, Default)]
pub(crate) struct Input {
    /// Bytes read past the last line taken.
    pending: Vec<u8>,
}

impl Input {
    /// The next assignment; `None` at end of input, on garbage, or on a signal.
    pub(super) fn assignment(&mut self, interrupts: Option<&Interrupts>) -> Option<Assignment> {
        let line = self.line(interrupts)?;
        serde_json::from_slice(&line).ok()
    }

    /// Wait for the line [`GO_LINE`]: false at end of input, on anything else, or on a signal.
    pub(super) fn go(&mut self, interrupts: &Interrupts) -> bool {
        self.line(Some(interrupts))
            .is_some_and(|line| line == GO_LINE)
    }

    /// The next line, without its newline.
    fn line(&mut self, interrupts: Option<&Interrupts>) -> Option<Vec<u8>> {
        let stdin = std::io::stdin();
        loop {
            if let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let rest = self.pending.split_off(end + 1);
                let mut line = std::mem::replace(&mut self.pending, rest);
                line.truncate(end);
                return Some(line);
            }
            let mut fds = vec![PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
            if let Some(interrupts) = interrupts {
                fds.push(PollFd::new(interrupts.fd.as_fd(), PollFlags::POLLIN));
                if interrupts.parent_gone() {
                    return None;
                }
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return None,
            }
            if fds
                .get(1)
                .and_then(PollFd::revents)
                .is_some_and(|r| !r.is_empty())
            {
                return None;
            }
            drop(fds);
            // Straight from the descriptor, past the standard library's buffer: what was
            // read is all here, where the next poll cannot miss it.
            match crate::sys::read_appending(stdin.as_fd(), &mut self.pending, 8192) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }
}
