//! The supervisor: the freshly exec'd, single-threaded process (`nsconform __supervise`)
//! that owns one scenario run. It loads the scenario, checks its requirements, makes the
//! scenario's cgroup, forks the orchestrator into the stand-in host's new namespaces,
//! enforces the timeout, and leaves nothing behind. It prints one JSON report.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};

use crate::cgroup::ScenarioCgroup;
use crate::orchestrator::{HarnessIds, Orchestrator};
use crate::payload::offers::{Offers, Sources};
use crate::report::{Event, Outcome, ScenarioReport, StepRecord, ToolUnderTest};
use crate::scenario::model::HostMode;
use crate::scenario::{load_file, LoadError, LoadedScenario};
use crate::{probe, requires, standin, sys};

/// A scenario's time limit when it does not set one.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The namespaces of the stand-in host.
///
/// A harness that is not root also gets a new user namespace mapping its own uid and gid to
/// themselves: the other namespaces need privilege, and the scenario still sees its caller's
/// ids (scenarios that need real root say `requires.root` and are skipped).
fn standin_flags(rootless: bool) -> CloneFlags {
    let flags = CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWCGROUP;
    if rootless {
        flags | CloneFlags::CLONE_NEWUSER
    } else {
        flags
    }
}

/// In a rootless stand-in: map the caller's own ids, as `unshare --map-current-user` does.
fn map_own_ids(ids: HarnessIds) -> Result<(), String> {
    let spec = crate::actor::plan::MapSpec {
        uid: vec![format!("{} {} 1", ids.uid, ids.uid)],
        gid: vec![format!("{} {} 1", ids.gid, ids.gid)],
        setgroups: Some(crate::scenario::model::SetGroups::Deny),
    };
    crate::actor::kernel::write_maps("/proc/self", &spec)
        .map_err(|e| format!("map the harness's own ids in the stand-in: {e}"))
}

/// `NSCONFORM_TIMEOUT_SCALE` (e.g. `20` inside an emulated VM), default 1.
pub(crate) fn timeout_scale() -> f64 {
    std::env::var("NSCONFORM_TIMEOUT_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| s.is_finite() && *s > 0.0)
        .map_or(1.0, |s| s.min(1000.0))
}

/// The scenario's effective time limit.
pub(crate) fn timeout_of(loaded: &LoadedScenario) -> Duration {
    let base = loaded
        .scenario
        .timeout
        .as_ref()
        .and_then(|t| requires::parse_duration(t.get_ref()).ok())
        .unwrap_or(DEFAULT_TIMEOUT);
    base.mul_f64(timeout_scale())
}

/// Run the scenario at `path` named `name` and report what happened.
pub(crate) fn supervise(path: &Path, name: &str) -> ScenarioReport {
    let started = Instant::now();
    let mut report = ScenarioReport {
        name: name.to_string(),
        path: path.display().to_string(),
        outcome: Outcome::Passed,
        steps: Vec::new(),
        duration_ms: 0,
        log: String::new(),
        snapshot: false,
        tool: None,
    };
    report.outcome = match load_file(path) {
        Err(LoadError::Invalid(diagnostics)) => Outcome::Invalid {
            message: diagnostics
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        },
        Err(err) => Outcome::Invalid {
            message: err.to_string(),
        },
        // The tool directories (`NSCONFORM_TOOL_PATH`) are read and checked before the
        // orchestrator is forked, so it and every command see the same `PATH`.
        Ok(_) if requires::tool_path().is_err() => Outcome::Invalid {
            message: requires::tool_path().err().unwrap_or_default().to_string(),
        },
        Ok(loaded) => {
            let mut probes = probe::Cache::from_env();
            report.snapshot = loaded.scenario.snapshot;
            match requires::check(&loaded.scenario, &mut probes) {
                Err(reason) => Outcome::Skipped { reason },
                Ok(()) => run(&loaded, &mut report.steps, &mut report.tool),
            }
        }
    };
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}

/// The environment variable naming the userland of a run (`nsconform run --userland`): a
/// root filesystem name or path the stand-in host enters before the first step.
pub(crate) const USERLAND_ENV: &str = "NSCONFORM_USERLAND";

fn run(
    loaded: &LoadedScenario,
    steps: &mut Vec<StepRecord>,
    tool: &mut Option<ToolUnderTest>,
) -> Outcome {
    let mode = loaded.scenario.host;
    // Orphans of the scenario come back to us, whatever they do (double forks, setsid), so
    // `reap_descendants` can always kill them; in a stand-in, the PID namespace does that too.
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        return Outcome::Failed {
            step: None,
            reason: format!("cannot become a child subreaper: {err}"),
        };
    }
    let interrupts = match Interrupts::catch() {
        Ok(interrupts) => interrupts,
        Err(err) => {
            return Outcome::Failed {
                step: None,
                reason: format!("cannot catch signals: {err}"),
            }
        }
    };
    let cgroup = match mode {
        HostMode::StandIn => ScenarioCgroup::create(),
        HostMode::Real => None,
    };
    let max_processes = loaded
        .scenario
        .max_processes
        .unwrap_or(crate::pids_limit::DEFAULT_MAX_PROCESSES);
    let pids = crate::pids_limit::PidsLimit::apply(cgroup.as_ref().map(|c| c.dir()), max_processes);
    let limit = timeout_of(loaded);
    let machine = standin::MachineFacts::read();
    let userland = std::env::var(USERLAND_ENV).ok().filter(|u| !u.is_empty());
    if userland.is_some() && mode == HostMode::Real {
        return Outcome::Skipped {
            reason: "a `host = \"real\"` scenario sees the machine's own userland, so it does not run under --userland".into(),
        };
    }
    let sources = match Sources::open(
        loaded,
        |name| crate::rootfs::resolve(name).map_err(|e| e.to_string()),
        userland.as_deref(),
    ) {
        Ok(sources) => sources,
        Err(message) => return Outcome::Invalid { message },
    };
    let outcome = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Err(e) => Outcome::Failed {
            step: None,
            reason: format!("pipe: {e}"),
        },
        Ok((events_in, events_out)) => {
            let forked = match mode {
                HostMode::StandIn => {
                    sys::fork_into_new_namespaces(standin_flags(!nix::unistd::geteuid().is_root()))
                }
                HostMode::Real => sys::fork(),
            };
            match forked {
                Err(e) => Outcome::Failed {
                    step: None,
                    reason: format!("cannot create the stand-in host: {e}"),
                },
                Ok(ForkResult::Child) => {
                    drop(events_in);
                    interrupts.release_in_child();
                    std::process::exit(orchestrate(
                        loaded,
                        events_out,
                        mode,
                        cgroup.is_some(),
                        &machine,
                        &sources,
                    ))
                }
                Ok(ForkResult::Parent { child }) => {
                    drop(events_out);
                    if let Some(cgroup) = &cgroup {
                        cgroup.leave();
                    }
                    if let Some(pids) = &pids {
                        pids.leave();
                    }
                    watch(child, events_in, &interrupts, limit, steps, tool)
                }
            }
        }
    };
    let leftovers = reap_descendants();
    let capped = pids
        .map(crate::pids_limit::PidsLimit::destroy)
        .unwrap_or(Ok(()));
    let cleanup = cgroup
        .map(ScenarioCgroup::destroy)
        .unwrap_or(Ok(()))
        .and(leftovers)
        .and(capped);
    if let Err(leak) = &cleanup {
        eprintln!("nsconform: cleanup failed: {leak}");
    }
    match (outcome, cleanup) {
        (Outcome::Passed, Err(leak)) => Outcome::Failed {
            step: None,
            reason: format!("cleanup failed: {leak}"),
        },
        (outcome, _) => outcome,
    }
}

/// The orchestrator process: make the stand-in host, then run the steps.
fn orchestrate(
    loaded: &LoadedScenario,
    events: OwnedFd,
    mode: HostMode,
    cgroup2: bool,
    machine: &standin::MachineFacts,
    sources: &Sources,
) -> i32 {
    let ids = HarnessIds {
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
    };
    let rootless = nix::unistd::geteuid().as_raw() != 0 || ids.uid != 0;
    let offer = || sources.offer_in_standin().map_err(|e| e.to_string());
    let prepare = || {
        let offers = standin::prepare(cgroup2, machine, offer).map_err(|e| e.to_string())?;
        if let Some(root) = sources.userland_root() {
            crate::userland::enter(&root, true).map_err(|e| e.to_string())?;
        }
        Ok(offers)
    };
    let offered = match mode {
        HostMode::StandIn if rootless => map_own_ids(ids).and_then(|()| prepare()),
        HostMode::StandIn => prepare(),
        HostMode::Real => nix::sys::prctl::set_child_subreaper(true)
            .map(|()| sources.offer_on_real_host())
            .map_err(|e| format!("cannot become a child subreaper: {e}")),
    };
    let (prepared, offers) = match offered {
        Ok(offers) => (Ok(()), offers),
        Err(reason) => (Err(reason), Offers::default()),
    };
    // Made after the stand-in, so `{{hostname}}` is the stand-in's.
    let orchestrator = Orchestrator::new(loaded, File::from(events), ids, offers);
    match prepared {
        Ok(()) => orchestrator.run(),
        Err(reason) => orchestrator.abort(reason),
    }
}

/// SIGINT, SIGTERM and SIGHUP (Ctrl-C, `kill`, a closed terminal) and the death of the
/// runner, turned into events the supervisor waits for, so an interrupted scenario is still
/// killed and cleaned up before the supervisor exits.
struct Interrupts {
    fd: SignalFd,
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
    fn catch() -> nix::Result<Interrupts> {
        let signals = Self::signals();
        signals.thread_block()?;
        let fd = SignalFd::with_flags(&signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        let parent = nix::unistd::getppid();
        nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
        Ok(Interrupts { fd, parent })
    }

    /// Whether the runner died before `catch` asked to be told.
    fn parent_gone(&self) -> bool {
        nix::unistd::getppid() != self.parent
    }

    /// The first signal waiting, if any.
    fn received(&self) -> Option<Signal> {
        match self.fd.read_signal() {
            Ok(Some(info)) => Signal::try_from(info.ssi_signo as i32).ok(),
            _ => None,
        }
    }

    /// In the orchestrator: signals as usual again, and death with the supervisor.
    fn release_in_child(&self) {
        let _ = Self::signals().thread_unblock();
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    }
}

/// Kill and reap every process still below the supervisor (reparented to it as a
/// subreaper). Safe against PID reuse: a child's PID stays ours until we reap it.
fn reap_descendants() -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let me = std::process::id();
    loop {
        let children = crate::host_guard::children_of(me);
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

/// Read events until the orchestrator finishes or the limit passes; then make sure it and
/// everything under it are gone.
fn watch(
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
    let status = loop {
        match waitpid(child, None) {
            Err(Errno::EINTR) => {}
            other => break other,
        }
    };
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
