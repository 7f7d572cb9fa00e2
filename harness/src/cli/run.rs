//! `nsconform run`: run scenarios in parallel, each in its own supervisor, print the
//! outcomes, check the host guard, and write the results file when asked.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use super::{emit, scenario_files, BAD_INPUT};
use crate::host_guard::HostSnapshot;
use crate::report::{Outcome, ScenarioReport, StepRecord};
use crate::results::{self, Results, Summary};
use crate::runner::{Catalog, Runner};

/// Options of `nsconform run`.
#[derive(Debug, clap::Args)]
pub(super) struct RunArgs {
    /// Scenario files or directories. Default: `scenarios`.
    paths: Vec<PathBuf>,
    /// Scenarios run at once. Default: the number of CPUs.
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Only scenarios whose name contains this text.
    #[arg(short, long)]
    filter: Option<String>,
    /// Show every step of every scenario, not only failures.
    #[arg(short, long)]
    verbose: bool,
    /// Write a results file (schema `nsconform-results/1`, see docs/results.md).
    #[arg(long, value_name = "FILE")]
    results: Option<PathBuf>,
    /// Check the host guard after every scenario, not only around the whole run; a leak
    /// fails the scenario that was running (use with `-j 1` for an exact culprit).
    #[arg(long)]
    paranoid: bool,
    /// Put the tools in DIR first on the `PATH` of every command and `requires.commands`
    /// lookup, e.g. another build of `unshare` (repeatable, in order; before the directories
    /// of `NSCONFORM_TOOL_PATH`). DIR must not be under /tmp or /run, which the stand-in host
    /// replaces.
    #[arg(long = "tool-path", value_name = "DIR", value_parser = tool_dir)]
    tool_path: Vec<PathBuf>,
    /// Run every scenario's host inside this root filesystem (a name from `nsconform
    /// rootfs list`, e.g. `debian-trixie`, or a directory), so its commands are that
    /// distribution's tools on this kernel (see docs/probe.md). Default: the machine's own
    /// userland (or `NSCONFORM_USERLAND`).
    #[arg(long, value_name = "NAME")]
    userland: Option<String>,
}

/// `--tool-path DIR`: checked and made absolute while the arguments are parsed.
fn tool_dir(text: &str) -> Result<PathBuf, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("no current directory: {e}"))?;
    crate::requires::tool_dir(std::path::Path::new(text), &cwd)
}

/// The tool directories of a run: `--tool-path` ones, then those of `NSCONFORM_TOOL_PATH`.
fn tool_path(flags: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut dirs = flags.to_vec();
    dirs.extend(crate::requires::tool_path()?.iter().cloned());
    Ok(dirs)
}

/// Run the scenarios `args` selects; exit 0 when all passed or were skipped, 1 on a failure
/// or a host-guard leak, 2 on bad input.
pub(super) fn run(args: RunArgs) -> ExitCode {
    let started_at = SystemTime::now();
    let started = Instant::now();
    let mut files = match scenario_files(args.paths) {
        Ok(files) => files,
        Err(code) => return code,
    };
    if let Some(filter) = &args.filter {
        files.retain(|f| f.name.contains(filter.as_str()));
    }
    let tool_dirs = match tool_path(&args.tool_path) {
        Ok(dirs) => dirs,
        Err(message) => {
            eprintln!("nsconform: {message}");
            return ExitCode::from(BAD_INPUT);
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => {
            eprintln!("nsconform: cannot find my own binary: {err}");
            return ExitCode::FAILURE;
        }
    };
    let catalog = Catalog::load(&files);
    let cache =
        std::env::temp_dir().join(format!("nsconform-features-{}.json", std::process::id()));
    // A results file records every feature; otherwise probe only what these scenarios need.
    let prepared = match args.results {
        Some(_) => Runner::new(exe).with_feature_cache(&cache, false),
        None => Runner::new(exe).with_feature_cache_for(&cache, &catalog),
    };
    let userland = args
        .userland
        .clone()
        .or_else(|| std::env::var(crate::supervisor::USERLAND_ENV).ok())
        .filter(|u| !u.is_empty());
    let userland_root = match userland.as_deref().map(crate::rootfs::resolve).transpose() {
        Ok(root) => root,
        Err(err) => {
            eprintln!("nsconform: --userland: {err}");
            return ExitCode::from(BAD_INPUT);
        }
    };
    let runner = match prepared {
        // With --paranoid the host guard runs between scenarios, when no warm supervisor
        // (and no stand-in host of one) may exist.
        Ok(runner) if args.paranoid => runner
            .with_tool_path(tool_dirs.clone())
            .with_userland(userland.clone()),
        Ok(runner) => {
            let runner = runner
                .with_tool_path(tool_dirs.clone())
                .with_userland(userland.clone())
                .with_warm_supervisors(Some(files.len()));
            // Supervisors start ahead: the scenarios checked ready before the run then start
            // as soon as their orchestrator has them. The check is one more process (about
            // 2 ms), which a single scenario would not win back.
            if files.len() < 2 {
                runner
            } else {
                match runner.check_requirements(&files) {
                    Ok((runner, _unmet_reported_by_their_supervisors)) => runner,
                    Err(message) => {
                        eprintln!("nsconform: {message}");
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
        Err(message) => {
            eprintln!("nsconform: {message}");
            return ExitCode::FAILURE;
        }
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let sysctls = catalog.sysctls();
    let runner = runner.with_catalog(&catalog);
    let before = HostSnapshot::take_with(&sysctls);
    let next = AtomicUsize::new(0);
    let reports = Mutex::new(Vec::new());
    let interrupt = Interrupt::catch(runner.clone());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(files.len().max(1)) {
            scope.spawn(|| {
                let mut next_file = || {
                    if interrupt.stopped() {
                        return None;
                    }
                    files.get(next.fetch_add(1, Ordering::SeqCst))
                };
                let mut done = |mut report: ScenarioReport| {
                    if args.paranoid {
                        guard_after(&before, &sysctls, &mut report, &|pid| {
                            interrupt.started(pid)
                        });
                    }
                    emit(&describe(&report, args.verbose));
                    reports
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(report);
                };
                runner.run_each(
                    &mut next_file,
                    &|pid| interrupt.track(pid),
                    &|pid| interrupt.untrack(pid),
                    &mut done,
                );
            });
        }
    });
    runner.finish();
    if let Some(signal) = interrupt.signal() {
        eprintln!("nsconform: interrupted by {signal}; the scenarios in flight were stopped and cleaned up");
    }
    let mut reports = reports.into_inner().unwrap_or_else(|p| p.into_inner());
    reports.sort_by(|a, b| a.name.cmp(&b.name));
    let leaks = before.leaks(&HostSnapshot::take_with(&sysctls));
    for leak in &leaks {
        eprintln!("nsconform: host guard: {leak}");
    }
    let summary = Summary::of(&reports, started.elapsed().as_millis() as u64);
    emit(&format!(
        "\n{} passed, {} failed, {} skipped, {} invalid\n",
        summary.passed, summary.failed, summary.skipped, summary.invalid
    ));
    let mut code = if summary.invalid > 0 {
        ExitCode::from(BAD_INPUT)
    } else if summary.failed > 0 || !leaks.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };
    if let Some(path) = &args.results {
        let features = crate::probe::Cache::load(&cache).results();
        let record = Results {
            schema: results::SCHEMA.to_string(),
            started_at: results::rfc3339(started_at),
            harness_version: env!("CARGO_PKG_VERSION").to_string(),
            machine: results::machine(),
            // Under a userland, only the versions the scenarios found inside it are true.
            tools: match &userland {
                None => tools_used(&catalog, &tool_dirs),
                Some(_) => reports
                    .iter()
                    .filter_map(|r| r.tool.as_ref())
                    .map(|t| (t.name.clone(), t.version.clone()))
                    .collect(),
            },
            tool_path: tool_dirs.iter().map(|d| d.display().to_string()).collect(),
            userland: userland
                .zip(userland_root)
                .map(|(name, root)| results::userland(&name, &root)),
            features,
            summary,
            scenarios: reports,
            vm: None,
        };
        let written = serde_json::to_string_pretty(&record)
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(path, json + "\n").map_err(|e| e.to_string()));
        if let Err(err) = written {
            eprintln!("nsconform: cannot write {}: {err}", path.display());
            code = ExitCode::FAILURE;
        }
    }
    let _ = std::fs::remove_file(&cache);
    match interrupt.signal() {
        Some(signal) => ExitCode::from(128 + signal as u8),
        None => code,
    }
}

/// Ctrl-C, SIGTERM and SIGHUP during a run: stop starting scenarios, pass the signal on to
/// every supervisor in flight (each then kills and cleans up its scenario), and let the run
/// finish with what they report.
struct Interrupt {
    state: std::sync::Arc<InterruptState>,
}

#[derive(Default)]
struct InterruptState {
    signal: Mutex<Option<nix::sys::signal::Signal>>,
    supervisors: Mutex<BTreeSet<u32>>,
    /// Every supervisor this run started, in flight or not.
    started: Mutex<BTreeSet<u32>>,
}

impl Interrupt {
    /// Block the signals in this thread (and so in the workers it starts) and wait for them
    /// on a thread of their own.
    fn catch(runner: Runner) -> Interrupt {
        use nix::sys::signal::{SigSet, Signal};
        let state = std::sync::Arc::new(InterruptState::default());
        let mut set = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(signal);
        }
        if set.thread_block().is_ok() {
            let waiter = std::sync::Arc::clone(&state);
            std::thread::spawn(move || {
                while let Ok(signal) = set.wait() {
                    *waiter.signal.lock().unwrap_or_else(|p| p.into_inner()) = Some(signal);
                    runner.interrupt(Signal::SIGTERM);
                    for pid in waiter
                        .supervisors
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .iter()
                    {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(*pid as i32),
                            Signal::SIGTERM,
                        );
                    }
                }
            });
        }
        Interrupt { state }
    }

    fn track(&self, pid: u32) {
        self.state
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid);
        self.state
            .supervisors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid);
        // A signal that came just before this supervisor started still reaches it.
        if self.stopped() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }

    fn untrack(&self, pid: u32) {
        self.state
            .supervisors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pid);
    }

    /// Whether `pid` is a supervisor this run started.
    fn started(&self, pid: u32) -> bool {
        self.state
            .started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&pid)
    }

    fn stopped(&self) -> bool {
        self.signal().is_some()
    }

    fn signal(&self) -> Option<nix::sys::signal::Signal> {
        *self.state.signal.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `--paranoid`: compare the host with the run's starting point right after `report`'s
/// scenario; any difference fails that scenario, naming what leaked.
fn guard_after(
    before: &HostSnapshot,
    sysctls: &[String],
    report: &mut ScenarioReport,
    started: &dyn Fn(u32) -> bool,
) {
    // Other scenarios' supervisors still running (with `-j` > 1) are the runner's only
    // children and no leak: a scenario's orphans never become the runner's children. They
    // are known by their PIDs once their workers have noted them, and before that (just
    // started) by their command line. A child that ended meanwhile is no leak either.
    let supervising = |leak: &String| {
        let Some(pid) = leak
            .strip_prefix("child process appeared: ")
            .and_then(|rest| rest.split_whitespace().next())
        else {
            return false;
        };
        if pid.parse().is_ok_and(started) {
            return true;
        }
        match std::fs::read(format!("/proc/{pid}/cmdline")) {
            // Between fork and exec a starting supervisor still shows the runner's own command.
            Ok(cmdline) => {
                cmdline.is_empty()
                    || cmdline.split(|b| *b == 0).any(|arg| arg == b"__supervise")
                    || std::fs::read("/proc/self/cmdline").is_ok_and(|own| own == cmdline)
            }
            Err(_) => true,
        }
    };
    let leaks: Vec<String> = before
        .leaks(&HostSnapshot::take_with(sysctls))
        .into_iter()
        .filter(|leak| !supervising(leak))
        .collect();
    if !leaks.is_empty() {
        report.outcome = Outcome::Failed {
            step: None,
            reason: format!("host guard after this scenario: {}", leaks.join("; ")),
        };
    }
}

/// The tools the scenarios require, with their versions: those the run uses, from the tool
/// directories (`--tool-path`) first.
fn tools_used(
    catalog: &Catalog,
    tool_dirs: &[std::path::PathBuf],
) -> std::collections::BTreeMap<String, String> {
    let mut tools = catalog.commands();
    tools.insert("sh".to_string());
    tools
        .into_iter()
        .map(|tool| {
            let version = results::tool_version_with(tool_dirs, &tool);
            (tool, version)
        })
        .collect()
}

/// The lines printed for one scenario.
fn describe(report: &ScenarioReport, verbose: bool) -> String {
    let word = match &report.outcome {
        Outcome::Passed => "PASS",
        Outcome::Failed { .. } | Outcome::TimedOut { .. } => "FAIL",
        Outcome::Skipped { .. } => "SKIP",
        Outcome::Invalid { .. } => "BAD ",
    };
    let mut text = format!("{word} {} ({} ms)", report.name, report.duration_ms);
    if let Outcome::Skipped { reason } = &report.outcome {
        text.push_str(&format!(": {reason}"));
    }
    text.push('\n');
    for line in report.explain().lines() {
        text.push_str(&format!("    {line}\n"));
    }
    if verbose {
        let running = match report.outcome {
            Outcome::TimedOut { step, .. } => step,
            _ => None,
        };
        for step in &report.steps {
            text.push_str(&verbose_line(step, running == Some(step.number)));
        }
    }
    text
}

/// One line per step for `--verbose`: number, actor, first line of the action, result.
fn verbose_line(step: &StepRecord, timed_out: bool) -> String {
    let mut action: String = step.action.lines().next().unwrap_or("").to_string();
    if step.action.lines().nth(1).is_some() {
        action.push_str(" ...");
    }
    let result = match (&step.exit, &step.error, &step.observation) {
        _ if timed_out => "timed out".to_string(),
        (Some(exit), _, _) => exit.to_string(),
        (None, Some(errno), _) => errno.clone(),
        (None, None, Some(_)) => "observed".to_string(),
        (None, None, None) => "ok".to_string(),
    };
    format!(
        "    step {} [{}] {action} -> {result}\n",
        step.number, step.actor
    )
}
