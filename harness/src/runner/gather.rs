//! Reading what a supervisor prints, in the calling thread: its report (one JSON line on
//! standard output) and its log (standard error), until the report is complete or the
//! supervisor ends, within a backstop time.

use std::os::fd::{AsFd, BorrowedFd};

use super::process::Supervisor;
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// What a supervisor printed.
#[derive(Debug, Default)]
pub(super) struct Gathered {
    /// Standard output: the report, when it is complete.
    pub(super) out: Vec<u8>,
    /// Standard error.
    pub(super) log: Vec<u8>,
    /// The backstop passed first.
    pub(super) overdue: bool,
}

impl Gathered {
    /// How many lines of standard output are complete.
    pub(super) fn lines(&self) -> usize {
        self.out.iter().filter(|b| **b == b'\n').count()
    }

    /// The complete line `index` (from 0) of standard output, without its newline.
    pub(super) fn line(&self, index: usize) -> Option<&[u8]> {
        let mut lines = self.out.split(|b| *b == b'\n');
        let line = lines.nth(index)?;
        // The last piece is not a line until its newline comes.
        lines.next().map(|_| line)
    }
}

/// Read `child`'s output into `gathered` until `lines` lines of its standard output are
/// complete, it exits, or `deadline` passes. Whatever is already in the pipes is read too,
/// so no log line written before the last of those lines is lost. A descendant that kept the
/// pipes open cannot hold the caller.
pub(super) fn gather(
    supervisor: &Supervisor,
    deadline: Instant,
    lines: usize,
    gathered: &mut Gathered,
) {
    let pidfd = supervisor.exit_fd();
    let out = supervisor.stdout.as_ref().map(AsFd::as_fd);
    let err = supervisor.stderr.as_ref().map(AsFd::as_fd);
    let mut open = [out.is_some(), err.is_some()];
    // The lines may be there already: read by an earlier wait's last look at the pipes.
    while gathered.lines() < lines {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            gathered.overdue = true;
            break;
        }
        let mut fds = Vec::with_capacity(3);
        let mut streams = Vec::with_capacity(2);
        for (index, fd) in [out, err].into_iter().enumerate() {
            if let (true, Some(fd)) = (open[index], fd) {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
                streams.push(index);
            }
        }
        if let Some(pidfd) = pidfd {
            fds.push(PollFd::new(pidfd, PollFlags::POLLIN));
        }
        if fds.is_empty() {
            break;
        }
        let millis = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        match poll(
            &mut fds,
            PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Err(_) => break,
            Ok(_) => {}
        }
        let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
        let exited = pidfd.is_some() && fds.last().is_some_and(ready);
        let readable: Vec<usize> = streams
            .iter()
            .zip(&fds)
            .filter(|(_, fd)| ready(fd))
            .map(|(index, _)| *index)
            .collect();
        drop(fds);
        for index in readable {
            let (fd, buffer) = match index {
                0 => (out, &mut gathered.out),
                _ => (err, &mut gathered.log),
            };
            if let Some(fd) = fd {
                if !read_once(fd, buffer) {
                    open[index] = false;
                }
            }
        }
        if exited {
            break;
        }
    }
    // What is already there and no more: the supervisor wrote its log before its report.
    // The streams are blocking again afterwards: a warm supervisor serves another scenario
    // on them, and a wait that read nothing from a non-blocking one would take it for ended.
    for (fd, buffer) in [(out, &mut gathered.out), (err, &mut gathered.log)] {
        if let Some(fd) = fd {
            let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL).map(OFlag::from_bits_retain) else {
                continue;
            };
            if fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).is_ok() {
                while read_once(fd, buffer) {}
                let _ = fcntl(fd, FcntlArg::F_SETFL(flags));
            }
        }
    }
}

/// Read once into `buffer`; false at end of file, on an error, or when nothing is there.
fn read_once(fd: BorrowedFd<'_>, buffer: &mut Vec<u8>) -> bool {
    crate::sys::read_appending(fd, buffer, 16384).is_ok_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::super::process::Supervisor;
    use super::{gather, Gathered};

    fn gather_for(child: &Supervisor, backstop: Duration, lines: usize) -> Gathered {
        let mut gathered = Gathered::default();
        gather(child, Instant::now() + backstop, lines, &mut gathered);
        gathered
    }

    fn spawn(script: &str) -> Supervisor {
        Supervisor::from_child(
            Command::new("sh")
                .args(["-c", script])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("sh runs"),
        )
    }

    /// A warm supervisor lives on after its lines: lines an earlier wait already read are
    /// not waited for again.
    #[test]
    fn lines_read_already_are_not_waited_for() {
        let mut child = spawn("exec sleep 30");
        let mut gathered = Gathered {
            out: b"{\"report\":1}\n{\"cleanup\":null}\n".to_vec(),
            ..Gathered::default()
        };
        let started = Instant::now();
        gather(
            &child,
            Instant::now() + Duration::from_secs(30),
            2,
            &mut gathered,
        );
        assert!(started.elapsed() < Duration::from_secs(5), "it waited");
        assert!(!gathered.overdue);
        child.kill();
        child.wait();
    }

    #[test]
    fn stops_at_the_report_line_with_the_log_written_before_it() {
        let mut child = spawn("echo log line >&2; echo '{\"report\":1}'; exec sleep 30");
        let gathered = gather_for(&child, Duration::from_secs(30), 1);
        assert_eq!(gathered.line(0), Some(&b"{\"report\":1}"[..]));
        assert!(!gathered.overdue);
        assert_eq!(gathered.out, b"{\"report\":1}\n");
        assert_eq!(gathered.log, b"log line\n");
        assert!(!child.try_wait(), "still running");
        child.kill();
        let _ = child.wait();
    }

    #[test]
    fn an_exit_without_a_report_ends_the_wait() {
        let mut child = spawn("printf partial; echo oops >&2; exit 3");
        let gathered = gather_for(&child, Duration::from_secs(30), 1);
        assert_eq!(gathered.lines(), 0);
        assert_eq!(gathered.line(0), None, "an unfinished line is no line");
        assert!(!gathered.overdue);
        assert_eq!(gathered.out, b"partial");
        assert_eq!(gathered.log, b"oops\n");
        assert_eq!(child.wait().and_then(|s| s.code()), Some(3));
    }

    #[test]
    fn a_silent_supervisor_is_overdue_at_the_backstop() {
        let mut child = spawn("exec sleep 30");
        let gathered = gather_for(&child, Duration::from_millis(50), 1);
        assert!(gathered.overdue);
        child.kill();
        let _ = child.wait();
    }

    #[test]
    fn a_second_gather_goes_on_to_the_next_line() {
        let mut child =
            spawn("echo first; sleep 0.2; echo cleaning >&2; echo second; exec sleep 30");
        let mut gathered = Gathered::default();
        let deadline = Instant::now() + Duration::from_secs(30);
        gather(&child, deadline, 1, &mut gathered);
        assert_eq!(gathered.line(0), Some(&b"first"[..]));
        assert_eq!(gathered.line(1), None, "not there yet");
        gather(&child, deadline, 2, &mut gathered);
        assert_eq!(gathered.line(1), Some(&b"second"[..]));
        assert_eq!(gathered.log, b"cleaning\n");
        assert!(!gathered.overdue);
        child.kill();
        let _ = child.wait();
    }
}
