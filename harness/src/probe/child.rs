//! The processes probes run in: the throw-away `nsconform __probe FEATURE` process that tries
//! a feature, a forked child that tries part of it, and a child parked in new namespaces for
//! the probing process to reach.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use super::reason::{failed, flag_names, io_failed};
use crate::requires::Feature;
use crate::sys;

/// How long one throw-away probe process may take before it is killed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Try `feature` in a throw-away process: a fork of this one when it is single-threaded (no
/// exec, so a probe costs a fork, not a start of the binary), else `nsconform __probe
/// FEATURE`. Either is killed if it takes longer than [`PROBE_TIMEOUT`].
pub(super) fn probe_in_child(feature: Feature) -> Result<(), String> {
    if matches!(sys::thread_count(), Ok(1)) {
        in_forked_child(|| super::probe_here(feature))
    } else {
        probe_in_new_process(feature)
    }
}

/// Run `nsconform __probe FEATURE` and read its verdict (its exit status, and the reason on
/// its stderr).
fn probe_in_new_process(feature: Feature) -> Result<(), String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the nsconform binary: {e}"))?;
    let mut child = Command::new(exe)
        .arg("__probe")
        .arg(feature.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the probe: {e}"))?;
    // Its reason, read as it comes and until it ends (a probe's children die with it).
    let mut reason = Vec::new();
    let ended = match child.stderr.take() {
        Some(stderr) => read_until_end(std::os::fd::OwnedFd::from(stderr), &mut reason),
        None => Ok(()),
    };
    if let Err(e) = ended {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the probe: {e}"))?;
    let reason = String::from_utf8_lossy(&reason);
    if status.success() {
        Ok(())
    } else {
        let reason = reason.trim();
        Err(if reason.is_empty() {
            format!("probe ended with {status}")
        } else {
            reason.to_string()
        })
    }
}

/// Read `pipe` into `buffer` until its end, for at most [`PROBE_TIMEOUT`].
fn read_until_end(pipe: std::os::fd::OwnedFd, buffer: &mut Vec<u8>) -> Result<(), String> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut file = std::fs::File::from(pipe);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "the probe did not finish within {} s",
                PROBE_TIMEOUT.as_secs()
            ));
        }
        let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(failed("poll", e)),
            Ok(_) => {}
        }
        let mut chunk = [0u8; 4096];
        match file.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_failed("read the probe's verdict", &e)),
        }
    }
}

/// Fork; run `body` in the child and return its verdict here (the reason comes back through
/// a pipe). The child is sent `SIGKILL` if this process dies first, or if it takes longer
/// than [`PROBE_TIMEOUT`].
pub(super) fn in_forked_child(body: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| failed("pipe2", e))?;
    match sys::fork().map_err(|e| failed("fork", e))? {
        ForkResult::Child => {
            drop(read_end);
            let verdict = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                .map_err(|e| failed("prctl(PR_SET_PDEATHSIG)", e))
                .and_then(|()| body());
            let code = match verdict {
                Ok(()) => 0,
                Err(reason) => {
                    let _ = std::fs::File::from(write_end).write_all(reason.as_bytes());
                    1
                }
            };
            sys::exit_forked(code)
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut reason = Vec::new();
            if let Err(e) = read_until_end(read_end, &mut reason) {
                kill_and_reap(child);
                return Err(e);
            }
            let reason = String::from_utf8_lossy(&reason).into_owned();
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 0)) => Ok(()),
                Ok(status) if reason.is_empty() => {
                    Err(format!("the probe's child ended with {status:?}"))
                }
                Ok(_) => Err(reason),
                Err(e) => Err(failed("waitpid", e)),
            }
        }
    }
}

/// A child parked in new namespaces until dropped, so this process can reach them through
/// its `/proc` directory or its pidfd. Dropping it kills and reaps the child; the child also
/// dies if this process does.
pub(super) struct Holder {
    /// The child's PID (in this process's PID namespace).
    pid: Pid,
    /// A pidfd for the child.
    pub(super) pidfd: std::os::fd::OwnedFd,
}

impl Holder {
    /// Fork a child straight into new namespaces (`flags`: `CLONE_NEW*` bits only, not
    /// `CLONE_NEWPID`, where the child could not see its parent).
    pub(super) fn start(flags: CloneFlags) -> Result<Holder, String> {
        let parent = Pid::this();
        let forked = sys::fork_into_new_namespaces(flags)
            .map_err(|e| failed(&format!("clone({})", flag_names(flags)), e))?;
        match forked {
            ForkResult::Child => {
                let orphaned = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err()
                    || nix::unistd::getppid() != parent;
                if orphaned {
                    sys::exit_forked(0);
                }
                loop {
                    nix::unistd::pause();
                }
            }
            ForkResult::Parent { child } => match sys::pidfd_open(child) {
                Ok(pidfd) => Ok(Holder { pid: child, pidfd }),
                Err(e) => {
                    kill_and_reap(child);
                    Err(failed("pidfd_open", e))
                }
            },
        }
    }

    /// The child's directory in the mounted `/proc`, which may belong to another PID
    /// namespace than this process (so it is not always `/proc/PID`): from the `Pid:` line
    /// of the pidfd's fdinfo, which the kernel gives in the PID namespace of that `/proc`.
    pub(super) fn proc_dir(&self) -> Result<PathBuf, String> {
        use std::os::fd::AsRawFd;
        let fdinfo = format!("/proc/self/fdinfo/{}", self.pidfd.as_raw_fd());
        let text = std::fs::read_to_string(&fdinfo)
            .map_err(|e| io_failed(&format!("read {fdinfo}"), &e))?;
        let pid: i64 = text
            .lines()
            .find_map(|line| line.strip_prefix("Pid:"))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| format!("no Pid: line in {fdinfo}"))?;
        if pid <= 0 {
            return Err(
                "the child is not visible in the mounted /proc (another PID namespace)".into(),
            );
        }
        Ok(PathBuf::from(format!("/proc/{pid}")))
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        kill_and_reap(self.pid);
    }
}

/// Send `SIGKILL` to a child and wait for it, ignoring failures (it may be gone already).
fn kill_and_reap(child: Pid) {
    let _ = kill(child, Signal::SIGKILL);
    let _ = waitpid(child, None);
}
