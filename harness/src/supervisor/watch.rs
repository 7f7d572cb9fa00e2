//! Watching a running orchestrator: its events, the time limit, interrupts; and afterwards
//! making sure nothing the scenario started is left.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
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

/// What ended a [`wait_for`].
enum Woken {
    /// The descriptor is readable (or closed).
    Ready,
    /// A signal is waiting on the interrupts' descriptor (this comes first).
    Interrupt,
    /// The time passed.
    Timeout,
}

/// Wait until `fd` is readable, a signal comes, or `timeout` passes.
fn wait_for(fd: BorrowedFd<'_>, interrupts: &Interrupts, timeout: Duration) -> nix::Result<Woken> {
    let mut fds = [
        PollFd::new(fd, PollFlags::POLLIN),
        PollFd::new(interrupts.fd.as_fd(), PollFlags::POLLIN),
    ];
    let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    poll(&mut fds, PollTimeout::from(millis))?;
    let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
    Ok(if ready(&fds[1]) {
        Woken::Interrupt
    } else if ready(&fds[0]) {
        Woken::Ready
    } else {
        Woken::Timeout
    })
}

/// How watching an orchestrator ended.
pub(super) struct Watched {
    /// What the scenario did.
    pub(super) outcome: Outcome,
    /// The orchestrator, when it finished its scenario and is still exiting: the report need
    /// not wait for that (see [`end_of`]).
    pub(super) exiting: Option<Pid>,
}

/// Read events until the orchestrator finishes (its `Finished` event, or the end of its
/// events) or the limit passes. On a timeout or an interrupt it is killed, with everything in
/// its namespace; unless it finished, it is reaped.
pub(super) fn watch(
    child: Pid,
    events: OwnedFd,
    interrupts: &Interrupts,
    limit: Duration,
    steps: &mut Vec<StepRecord>,
    tool: &mut Option<ToolUnderTest>,
) -> Watched {
    let deadline = Instant::now() + limit;
    let mut log = EventLog {
        steps,
        tool,
        outcome: None,
        running: None,
        finished: false,
    };
    let mut buffer = Vec::new();
    let mut timed_out = false;
    let mut interrupted = interrupts.parent_gone().then_some(Signal::SIGTERM);
    while interrupted.is_none() && !log.finished {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            timed_out = true;
            break;
        }
        match wait_for(events.as_fd(), interrupts, left) {
            Ok(Woken::Timeout) | Err(Errno::EINTR) => continue,
            Err(_) => break,
            Ok(Woken::Interrupt) => {
                interrupted = interrupts.received();
                continue;
            }
            Ok(Woken::Ready) => {}
        }
        match crate::sys::read_appending(&events, &mut buffer, 65536) {
            Ok(0) => break,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => break,
        }
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            log.take(&line[..end]);
        }
    }
    drop(events);
    crate::phase_log::mark("supervisor: events ended");
    let finished = log.finished && !timed_out && interrupted.is_none();
    let status = if finished {
        None
    } else {
        // Killing the stand-in's PID 1 makes the kernel kill every process in its namespace.
        if timed_out || interrupted.is_some() {
            let _ = kill(child, Signal::SIGKILL);
        }
        let status = loop {
            match waitpid(child, None) {
                Err(Errno::EINTR) => {}
                other => break other,
            }
        };
        crate::phase_log::mark("supervisor: orchestrator reaped");
        Some(status)
    };
    let running = log.running;
    let outcome = if let Some(signal) = interrupted {
        Outcome::Failed {
            step: running,
            reason: format!("interrupted by {signal}; everything the scenario started was killed"),
        }
    } else if timed_out {
        Outcome::TimedOut {
            step: running,
            limit_ms: limit.as_millis() as u64,
        }
    } else {
        log.outcome.unwrap_or_else(|| Outcome::Failed {
            step: running,
            reason: format!("the orchestrator ended without finishing ({status:?})"),
        })
    };
    Watched {
        outcome,
        exiting: finished.then_some(child),
    }
}

/// The events read so far, as they add up to a scenario's record.
struct EventLog<'a> {
    steps: &'a mut Vec<StepRecord>,
    tool: &'a mut Option<ToolUnderTest>,
    outcome: Option<Outcome>,
    /// The step begun and not yet finished.
    running: Option<usize>,
    /// The `Finished` event came.
    finished: bool,
}

impl EventLog<'_> {
    fn take(&mut self, line: &[u8]) {
        if line.is_empty() {
            return;
        }
        match serde_json::from_slice::<Event>(line) {
            Ok(Event::StepStarted {
                number,
                line,
                actor,
                action,
            }) => {
                self.running = Some(number);
                self.steps
                    .push(StepRecord::begun(number, line, actor, action));
            }
            Ok(Event::StepFinished(record)) => {
                self.running = None;
                let failed = !record.mismatches.is_empty();
                let number = record.number;
                if let Some(last) = self.steps.last_mut().filter(|s| s.number == number) {
                    *last = record;
                } else {
                    self.steps.push(record);
                }
                if failed {
                    self.outcome = Some(Outcome::Failed {
                        step: Some(number),
                        reason: format!("step {number} did not behave as expected"),
                    });
                }
            }
            Ok(Event::Aborted { step, reason }) => {
                self.outcome = Some(Outcome::Failed { step, reason });
            }
            Ok(Event::Invalid { message }) => self.outcome = Some(Outcome::Invalid { message }),
            Ok(Event::Tool(found)) => *self.tool = Some(found),
            Ok(Event::Finished) => {
                self.finished = true;
                self.outcome = self.outcome.take().or(Some(Outcome::Passed));
            }
            Err(err) => {
                self.outcome = Some(Outcome::Failed {
                    step: self.running,
                    reason: format!("garbled event from the orchestrator: {err}"),
                })
            }
        }
    }
}

/// How long an orchestrator that finished its scenario may take to exit (it has told its
/// actors to end; its namespace's last processes go with it), before it is killed and the
/// cleanup fails.
pub(super) const EXIT_GRACE: Duration = Duration::from_secs(5);

/// How long an ending orchestrator and its supervisor stay idle (`SCHED_IDLE`, as root): the
/// next scenario is starting by then, and goes first; past this, on a loaded machine, they
/// are normal again, so that they cannot be starved (the next scenario's report waits for
/// this one's verdict).
const IDLE_FOR: Duration = Duration::from_millis(10);

/// Wait for `orchestrator`, which finished its scenario, to exit (everything in its PID
/// namespace with it), and reap it. Past `grace`, or on an interrupt, it is killed; past
/// `grace` that is an error, as a harness that cannot end a scenario is broken.
pub(super) fn end_of(
    orchestrator: Pid,
    interrupts: &Interrupts,
    grace: Duration,
) -> Result<(), String> {
    use crate::sys::{set_scheduling, step_aside, Scheduling};
    let started = Instant::now();
    let deadline = started + grace;
    let ending = [Pid::from_raw(0), orchestrator];
    let mut idle = step_aside(Pid::from_raw(0), Scheduling::Idle);
    if idle {
        let _ = set_scheduling(orchestrator, Scheduling::Idle);
    }
    let mut late = false;
    if let Ok(pidfd) = crate::sys::pidfd_open(orchestrator) {
        loop {
            if idle && started.elapsed() >= IDLE_FOR {
                idle = false;
                for process in ending {
                    let _ = set_scheduling(process, Scheduling::Normal);
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                late = true;
                let _ = kill(orchestrator, Signal::SIGKILL);
                break;
            }
            let wait = match idle {
                true => left.min(IDLE_FOR.saturating_sub(started.elapsed())),
                false => left,
            };
            match wait_for(pidfd.as_fd(), interrupts, wait) {
                Ok(Woken::Timeout) | Err(Errno::EINTR) => {}
                Ok(Woken::Ready) | Err(_) => break,
                Ok(Woken::Interrupt) => {
                    if interrupts.received().is_some() {
                        let _ = kill(orchestrator, Signal::SIGKILL);
                        break;
                    }
                }
            }
        }
    }
    // The rest of the cleanup is brief, and load must not starve it.
    if idle {
        let _ = set_scheduling(Pid::from_raw(0), Scheduling::Normal);
    }
    // Without a pidfd (before 5.3) the wait is unbounded, as the orchestrator is ending.
    while waitpid(orchestrator, None) == Err(Errno::EINTR) {}
    crate::phase_log::mark("supervisor: orchestrator reaped");
    if late {
        return Err(format!(
            "the orchestrator did not exit within {} s of finishing and was killed",
            grace.as_secs()
        ));
    }
    Ok(())
}
