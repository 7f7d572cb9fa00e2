//! The supervisor: the single-threaded process (`nsconform __supervise`) that owns a
//! scenario run. It loads the scenario, checks its requirements, makes the scenario's
//! cgroups, forks the orchestrator into the stand-in host's new namespaces, enforces the
//! timeout, and leaves nothing behind. It prints two JSON lines per scenario: the report,
//! then the verdict of its cleanup.
//!
//! The runner starts supervisors warm (`__supervise --warm`): such a supervisor makes its
//! stand-in host before it knows its scenario, then reads the scenario from standard input.
//! The runner starts the next one while the current scenario runs, so the exec, the
//! namespaces and most mounts are off the scenario's critical path. After its cleanup's
//! verdict, a warm supervisor makes a new stand-in host and reads another scenario, until
//! its input ends.

mod cleanup;
mod input;
mod interrupts;
mod launch;
mod orchestrator_process;
mod warm_up;
mod watch;

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sched::CloneFlags;

pub(crate) use self::cleanup::Cleanup;
use self::cleanup::Ran;
pub(crate) use self::input::{Assignment, Input, GO_LINE};
use self::interrupts::Interrupts;
use self::launch::{fork_cold, Running, WarmStandIn};
pub(crate) use self::warm_up::warm_up;
use self::watch::{watch, Watched};
use crate::payload::offers::Sources;
use crate::report::{Outcome, ScenarioReport, StepRecord, ToolUnderTest};
use crate::scenario::model::HostMode;
use crate::scenario::{load_file, LoadError, LoadedScenario};
pub(crate) use crate::standin::MachineFacts;
use crate::sys::Scheduling;
use crate::turns::TurnPipe;
use crate::{probe, requires};

/// A scenario's time limit when it does not set one.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The environment variable naming the userland of a run (`nsconform run --userland`): a
/// root filesystem name or path the stand-in host enters before the first step.
pub(crate) const USERLAND_ENV: &str = "NSCONFORM_USERLAND";

/// The namespaces of the stand-in host, but its cgroup namespace: the orchestrator unshares
/// that once it is in the scenario's cgroup (see `containment`).
///
/// A harness that is not root also gets a new user namespace mapping its own uid and gid to
/// themselves: the other namespaces need privilege, and the scenario still sees its caller's
/// ids (scenarios that need real root say `requires.root` and are skipped).
fn standin_flags(rootless: bool) -> CloneFlags {
    let flags = CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWPID;
    if rootless {
        flags | CloneFlags::CLONE_NEWUSER
    } else {
        flags
    }
}

/// The userland of the run (`NSCONFORM_USERLAND`), if any.
pub(crate) fn userland() -> Option<String> {
    std::env::var(USERLAND_ENV).ok().filter(|u| !u.is_empty())
}

/// What `loaded` uses beyond the machine's files, in the run's userland.
fn open_sources(loaded: &LoadedScenario) -> Result<Sources, String> {
    Sources::open(
        loaded,
        |name| crate::rootfs::resolve(name).map_err(|e| e.to_string()),
        userland().as_deref(),
    )
}

/// Whether the stand-in host needs its own user namespace (the harness is not root).
fn standin_rootless() -> bool {
    !nix::unistd::geteuid().is_root()
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

/// The second line a supervisor prints, after its report: whether everything the scenario
/// started and everything that held it is gone (`{"cleanup":null}`), or what is left.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct CleanupVerdict {
    /// What was left behind, if anything.
    pub(crate) cleanup: Option<String>,
}

/// A scenario's report, and what is left to do after printing it.
pub(crate) struct Supervised {
    /// What the scenario did.
    pub(crate) report: ScenarioReport,
    /// Ending its processes and removing its cgroups: the runner reads the report first, so
    /// it can give a warm supervisor the next scenario meanwhile.
    pub(crate) cleanup: Cleanup,
    /// The runner needs no other scenario from this supervisor ([`Assignment::last`]).
    pub(crate) last: bool,
}

/// Run the scenario at `path` named `name` and report what happened.
pub(crate) fn supervise(path: &Path, name: &str) -> Supervised {
    crate::phase_log::mark("supervisor: scenario received");
    supervise_with(path, name, None)
}

/// A warm supervisor: make a stand-in host on `machine` (read once for every scenario the
/// process serves), then run the scenario the runner names on standard input (`input`).
/// `None` (and nothing left behind) when the input ends or a signal comes first, or before
/// a held scenario's turn. `first`: this process has not served a scenario yet, so it warms
/// up its code first (a later one has it paged in), and it is in the scheduling the runner
/// started it in; a later one goes to the background itself (as root) until the runner
/// tells it.
pub(crate) fn serve_warm(
    first: bool,
    input: &mut Input,
    machine: &MachineFacts,
    turns: Option<&TurnPipe>,
) -> Option<Supervised> {
    if !first {
        let _ = crate::sys::step_aside(nix::unistd::Pid::from_raw(0), Scheduling::Background);
        // It forks for scenario after scenario now (a no-op where its fork server did it).
        crate::huge_code::move_once();
    }
    let machine = machine.clone();
    let Ok(session) = Session::begin() else {
        // The cold path tries again, and reports why it cannot.
        let assignment = input.assignment(None)?;
        return Some(supervise(&assignment.path, &assignment.name));
    };
    let mut warm = WarmStandIn::start(&session.interrupts, &machine, first, turns).ok();
    if first {
        warm_up();
    }
    crate::phase_log::mark("supervisor: stand-in forked");
    let Some(assignment) = input.assignment(Some(&session.interrupts)) else {
        if let Some(warm) = warm {
            warm.discard();
        }
        return None;
    };
    crate::phase_log::mark("supervisor: scenario received");
    if warm.as_mut().is_some_and(|warm| {
        !warm.announce(
            &assignment.path,
            assignment.turn,
            assignment.ready,
            assignment.hold,
        )
    }) {
        if let Some(warm) = warm.take() {
            warm.discard();
        }
    }
    if assignment.hold {
        // Its orchestrator gets the scenario ready meanwhile; nothing of it runs before
        // its turn, which may never come (the run was stopped).
        if !input.go(&session.interrupts) {
            if let Some(warm) = warm {
                warm.discard();
            }
            return None;
        }
        crate::phase_log::mark("supervisor: go received");
        // One whose requirements are not known yet runs once they are checked, below.
        if let Some(warm) = warm.as_mut().filter(|_| assignment.ready) {
            warm.let_run();
        }
    }
    let prepared = Prepared {
        session,
        machine,
        ready: assignment.ready && warm.is_some(),
        warm,
    };
    let mut supervised = supervise_with(&assignment.path, &assignment.name, Some(prepared));
    supervised.last = assignment.last;
    Some(supervised)
}

/// What a supervisor sets up before it forks an orchestrator: it becomes the subreaper of
/// everything below it, and catches the signals that end a run.
struct Session {
    interrupts: Interrupts,
}

impl Session {
    fn begin() -> Result<Session, String> {
        // Orphans of the scenario come back to us, whatever they do (double forks, setsid),
        // so `reap_descendants` can always kill them; in a stand-in, the PID namespace does
        // that too.
        nix::sys::prctl::set_child_subreaper(true)
            .map_err(|e| format!("cannot become a child subreaper: {e}"))?;
        let interrupts = Interrupts::catch().map_err(|e| format!("cannot catch signals: {e}"))?;
        Ok(Session { interrupts })
    }
}

/// What a warm supervisor made before its scenario was known.
struct Prepared {
    session: Session,
    machine: MachineFacts,
    /// Its orchestrator was let run with the path ([`Assignment::ready`]): the requirements
    /// are not checked again here.
    ready: bool,
    warm: Option<WarmStandIn>,
}

fn supervise_with(path: &Path, name: &str, mut prepared: Option<Prepared>) -> Supervised {
    let started = Instant::now();
    // The orchestrator of a ready scenario runs it already: loading this process's own copy
    // (for the time limit and the report) is off the scenario's critical path, so it gives
    // way to the scenario's processes until it watches them (see `run`).
    let ready = prepared.as_ref().is_some_and(|p| p.ready);
    let mut aside = Aside::step(ready);
    let mut report = ScenarioReport::new(name, path.display().to_string(), Outcome::Passed);
    let mut cleanup = Cleanup::default();
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
            crate::phase_log::mark("supervisor: scenario loaded");
            report.snapshot = loaded.scenario.snapshot;
            let checked = match ready {
                true => Ok(()),
                false => requires::check(&loaded.scenario, &mut probe::Cache::from_env()),
            };
            match checked {
                Err(reason) => Outcome::Skipped { reason },
                Ok(()) => run(
                    &loaded,
                    &mut report.steps,
                    &mut report.tool,
                    prepared.take(),
                    &mut cleanup,
                    &mut aside,
                ),
            }
        }
    };
    if let Some(warm) = prepared.and_then(|p| p.warm) {
        cleanup.unused = Some(warm);
    }
    // Back for what follows, on the paths that did not reach the watch.
    aside.come_back();
    report.duration_ms = started.elapsed().as_millis() as u64;
    crate::phase_log::mark("supervisor: report ready");
    Supervised {
        report,
        cleanup,
        last: false,
    }
}

/// The supervisor in the background (nice 19) while the work it does is off the scenario's
/// path, as root only (see [`crate::sys::step_aside`]).
struct Aside(bool);

impl Aside {
    /// Go to the background when `wanted`.
    fn step(wanted: bool) -> Aside {
        Aside(
            wanted && crate::sys::step_aside(nix::unistd::Pid::from_raw(0), Scheduling::Background),
        )
    }

    /// Back to the normal scheduling, if it went.
    fn come_back(&mut self) {
        if std::mem::take(&mut self.0) {
            if let Err(e) = crate::sys::bring_back(nix::unistd::Pid::from_raw(0)) {
                eprintln!("nsconform: the supervisor's scheduling: {e}");
            }
        }
    }
}

fn run(
    loaded: &LoadedScenario,
    steps: &mut Vec<StepRecord>,
    tool: &mut Option<ToolUnderTest>,
    prepared: Option<Prepared>,
    cleanup: &mut Cleanup,
    aside: &mut Aside,
) -> Outcome {
    let (session, machine, warm, ready) = match prepared {
        Some(Prepared {
            session,
            machine,
            warm,
            ready,
        }) => (session, machine, warm, ready),
        None => match Session::begin() {
            Ok(session) => (session, MachineFacts::read(), None, false),
            Err(reason) => return Outcome::Failed { step: None, reason },
        },
    };
    let mode = loaded.scenario.host;
    // Removed after the report, unless a cold start needs its place (below).
    let mut discard = |warm: Option<WarmStandIn>| cleanup.unused = warm;
    if userland().is_some() && mode == HostMode::Real {
        discard(warm);
        return Outcome::Skipped {
            reason: "a `host = \"real\"` scenario sees the machine's own userland, so it does not run under --userland".into(),
        };
    }
    // A warm orchestrator opens them itself; a scenario let run at once is not stopped
    // for a second opinion (its orchestrator reports why, should they not open).
    let sources = match ready {
        true => Sources::default(),
        false => match open_sources(loaded) {
            Ok(sources) => sources,
            Err(message) => {
                discard(warm);
                return Outcome::Invalid { message };
            }
        },
    };
    let max_processes = loaded
        .scenario
        .max_processes
        .unwrap_or(crate::pids_limit::DEFAULT_MAX_PROCESSES);
    crate::phase_log::mark("supervisor: requirements checked");
    aside.come_back();
    let started = match (mode, warm) {
        (HostMode::StandIn, Some(warm)) => warm.go(max_processes),
        (_, warm) => {
            // Its cgroups have the names the cold start's own will take: gone first.
            if let Some(warm) = warm {
                warm.discard();
            }
            fork_cold(
                loaded,
                &sources,
                max_processes,
                &session.interrupts,
                &machine,
            )
        }
    };
    let Running {
        child,
        events,
        containment,
        namespaces,
    } = match started {
        Ok(running) => running,
        Err(reason) => return Outcome::Failed { step: None, reason },
    };
    let Watched { outcome, exiting } = watch(
        child,
        events,
        &session.interrupts,
        timeout_of(loaded),
        steps,
        tool,
    );
    cleanup.ran = Some(Ran {
        session,
        exiting,
        containment,
        namespaces,
    });
    outcome
}
