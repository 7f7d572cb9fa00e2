//! Watching a running orchestrator: its events, the time limit, interrupts; and afterwards
//! making sure nothing the scenario started is left.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::interrupts::Interrupts;
use crate::report::{Event, Outcome, StepRecord, ToolUnderTest};

/// Kill and reap every process still below the supervisor (reparented to it as a
/// subreaper). Safe against PID reuse: a child's PID stays ours until we reap it.
pub(super) fn reap_descendants() -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let me = std::process::id();
    loop {
        // The usual case, in one call: no child at all, alive or dead.
        if waitpid(
            Pid::from_raw(-1),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        ) == Err(Errno::ECHILD)
        {
            return Ok(());
        }
        let children = own_children(me);
        if children.is_empty() {
            return Ok(());
        }
        for pid in &children {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
        while let Ok(status) = waitpid(
            Pid::from_raw(-1),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        ) {
            if status == nix::sys::wait::WaitStatus::StillAlive {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err(format!("processes {children:?} would not die"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// This single-threaded process's children: from `/proc/PID/task/PID/children` where the
/// kernel has it, else by a walk over `/proc`.
fn own_children(me: u32) -> std::collections::BTreeSet<u32> {
    match std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")) {
        Ok(text) => text
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect(),
        Err(_) => crate::host_guard::children_of(me),
    }
}

/// Read events until the orchestrator finishes or the limit passes; then make sure it and
/// everything under it are gone.
pub(super) fn watch(
    child: Pid,
    events: OwnedFd,
    interrupts: &Interrupts,
    limit: Duration,
    steps: &mut Vec<StepRecord>,
    tool: &mut Option<ToolUnderTest>,
) -> Outcome {
    let deadline = Instant::now() + limit;
    let mut buffer = Vec::new();
    let mut timed_out = false;
    let mut interrupted = interrupts.parent_gone().then_some(Signal::SIGTERM);
    while interrupted.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            timed_out = true;
            break;
        }
        let mut fds = [
            PollFd::new(events.as_fd(), PollFlags::POLLIN),
            PollFd::new(interrupts.fd.as_fd(), PollFlags::POLLIN),
        ];
        let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(0) | Err(Errno::EINTR) => continue,
            Err(_) => break,
            Ok(_) => {}
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            interrupted = interrupts.received();
            continue;
        }
        let mut chunk = [0u8; 65536];
        match nix::unistd::read(&events, &mut chunk) {
            Ok(0) => break,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    // Killing the stand-in's PID 1 makes the kernel kill every process in its namespace.
    if timed_out || interrupted.is_some() {
        let _ = kill(child, Signal::SIGKILL);
    }
    crate::phase_log::mark("supervisor: events ended");
    let status = loop {
        match waitpid(child, None) {
            Err(Errno::EINTR) => {}
            other => break other,
        }
    };
    crate::phase_log::mark("supervisor: orchestrator reaped");
    let mut outcome = None;
    let mut running = None;
    for line in buffer.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<Event>(line) {
            Ok(Event::StepStarted {
                number,
                line,
                actor,
                action,
            }) => {
                running = Some(number);
                steps.push(StepRecord::begun(number, line, actor, action));
            }
            Ok(Event::StepFinished(record)) => {
                running = None;
                let failed = !record.mismatches.is_empty();
                let number = record.number;
                if let Some(last) = steps.last_mut().filter(|s| s.number == number) {
                    *last = record;
                } else {
                    steps.push(record);
                }
                if failed {
                    outcome = Some(Outcome::Failed {
                        step: Some(number),
                        reason: format!("step {number} did not behave as expected"),
                    });
                }
            }
            Ok(Event::Aborted { step, reason }) => {
                outcome = Some(Outcome::Failed { step, reason });
            }
            Ok(Event::Invalid { message }) => outcome = Some(Outcome::Invalid { message }),
            Ok(Event::Tool(found)) => *tool = Some(found),
            Ok(Event::Finished) => outcome = outcome.or(Some(Outcome::Passed)),
            Err(err) => {
                outcome = Some(Outcome::Failed {
                    step: running,
                    reason: format!("garbled event from the orchestrator: {err}"),
                })
            }
        }
    }
    if let Some(signal) = interrupted {
        return Outcome::Failed {
            step: running,
            reason: format!("interrupted by {signal}; everything the scenario started was killed"),
        };
    }
    if timed_out {
        return Outcome::TimedOut {
            step: running,
            limit_ms: limit.as_millis() as u64,
        };
    }
    outcome.unwrap_or_else(|| Outcome::Failed {
        step: running,
        reason: format!("the orchestrator ended without finishing ({status:?})"),
    })
}
