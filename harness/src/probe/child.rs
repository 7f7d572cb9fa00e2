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

/// Run `nsconform __probe FEATURE` and read its verdict (its exit status, and the reason on
/// its stderr). The process is killed if it takes longer than [`PROBE_TIMEOUT`].
pub(super) fn probe_in_child(feature: Feature) -> Result<(), String> {
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
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > PROBE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the probe did not finish within {} s",
                    PROBE_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("waiting for the probe: {e}")),
        }
    };
    let mut reason = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut reason);
    }
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

/// Fork; run `body` in the child and return its verdict here (the reason comes back through
/// a pipe). The child is sent `SIGKILL` if this process dies first.
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
            std::process::exit(code)
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut reason = String::new();
            let _ = std::fs::File::from(read_end).read_to_string(&mut reason);
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
                    std::process::exit(0);
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
