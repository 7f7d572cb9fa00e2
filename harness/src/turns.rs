//! Handing the turn from one scenario to the next within a runner thread.
//!
//! `nsconform run` gives a thread's next scenario out *held* while the current one runs
//! (see `Runner::run_each`), and lets it run once the current one's steps are done. The
//! runner learns that from the current supervisor's report and tells the held supervisor
//! `go`, which tells its orchestrator: four processes from the one that knew first. So
//! each orchestrator also writes its turn's number into its thread's *turn pipe* when its
//! steps are done, and a held orchestrator waiting for that number goes on at once. The
//! runner's `go` stays: whichever comes first lets the scenario run, so a scenario whose
//! predecessor could not write (a supervisor started without the pipe, a full pipe) still
//! gets its turn, a little later.
//!
//! Each runner thread of a run has its own pipe, made with its first supervisor
//! (`WarmPool`). The supervisors it starts get it as descriptors 3 (read) and 4 (write),
//! with `__supervise --turns` (exec'd, or forked by its fork server, which got it the same
//! way), and their orchestrators inherit it; no actor or command does (close-on-exec, and
//! actors close what they do not own). Turns are numbered per thread from 1, in the order
//! the runner gives scenarios out; a held scenario with turn `n` waits for `n - 1` and
//! drops older numbers, left by predecessors that no held scenario waited for. Nothing
//! ever blocks on the pipe: both ends are non-blocking.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};

/// The descriptor numbers a supervisor started with `--turns` finds the pipe at.
const INHERITED: [RawFd; 2] = [3, 4];

/// A thread's turn pipe (see the module's docs).
#[derive(Debug)]
pub(crate) struct TurnPipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl TurnPipe {
    /// A new pipe, both ends close-on-exec and non-blocking.
    pub(crate) fn new() -> io::Result<TurnPipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        Ok(TurnPipe { read, write })
    }

    /// Its read and write ends, to hand to a supervisor as [`INHERITED`] (see
    /// `sys::give_fds_3_and_4`).
    pub(crate) fn raw_fds(&self) -> [RawFd; 2] {
        [self.read.as_raw_fd(), self.write.as_raw_fd()]
    }

    /// The pipe this process was started with (`--turns`): descriptors 3 and 4, made
    /// close-on-exec and non-blocking. `None` unless both are the same pipe (or FIFO).
    pub(crate) fn inherited() -> Option<TurnPipe> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let [read, write] = INHERITED;
        // What the descriptor is, through its /proc link (nothing if it is not open).
        let pipe_inode = |fd: RawFd| {
            let stat = std::fs::metadata(format!("/proc/self/fd/{fd}")).ok()?;
            stat.file_type().is_fifo().then(|| (stat.dev(), stat.ino()))
        };
        let read_inode = pipe_inode(read);
        if read_inode.is_none() || read_inode != pipe_inode(write) {
            return None;
        }
        let pipe = TurnPipe {
            read: crate::sys::own_fd(read),
            write: crate::sys::own_fd(write),
        };
        for end in [&pipe.read, &pipe.write] {
            fcntl(end, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).ok()?;
            // Whoever opened it: a read must not wait for a number, nor a write for room.
            fcntl(end, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).ok()?;
        }
        Some(pipe)
    }

    /// Say that turn `turn` is over; a failure (a full pipe) only loses the fast path.
    pub(crate) fn end(&self, turn: u64) {
        let _ = nix::unistd::write(&self.write, &turn.to_le_bytes());
    }

    /// What to poll for ended turns.
    pub(crate) fn readable(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Whether turn `turn` has ended, reading what the pipe holds now (older numbers are
    /// dropped; a number read is gone for every reader).
    pub(crate) fn has_ended(&self, turn: u64) -> bool {
        let mut ended = false;
        let mut number = [0u8; 8];
        // Writes of 8 bytes are atomic: the pipe holds whole numbers only.
        while let Ok(8) = nix::unistd::read(&self.read, &mut number) {
            ended |= u64::from_le_bytes(number) == turn;
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::TurnPipe;

    #[test]
    fn a_turn_ends_once_its_number_is_written() {
        let pipe = TurnPipe::new().expect("pipe");
        assert!(!pipe.has_ended(1), "nothing written yet");
        pipe.end(1);
        assert!(pipe.has_ended(1));
        assert!(!pipe.has_ended(1), "a number is read once");
    }

    #[test]
    fn older_numbers_are_dropped_and_others_do_not_count() {
        let pipe = TurnPipe::new().expect("pipe");
        pipe.end(3);
        pipe.end(4);
        assert!(pipe.has_ended(4), "3 was left by a turn nobody waited for");
        pipe.end(7);
        assert!(!pipe.has_ended(6));
    }

    #[test]
    fn a_full_pipe_does_not_block_the_writer() {
        let pipe = TurnPipe::new().expect("pipe");
        for turn in 0..20_000 {
            pipe.end(turn);
        }
        assert!(pipe.has_ended(19));
    }
}
