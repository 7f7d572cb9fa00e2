//! The `nsconform` command line: `run`, `check`, `features`, and the internal entry points
//! of the processes the harness execs for itself (`__supervise`, `__probe`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use clap::{Parser, Subcommand};

use crate::host_guard::HostSnapshot;
use crate::report::Outcome;
use crate::runner::{discover, run_isolated, ScenarioFile};
use crate::scenario::{load_file, LoadError};

/// Exit code for bad input (a malformed scenario, a missing file).
const BAD_INPUT: u8 = 2;

#[derive(Parser)]
#[command(
    name = "nsconform",
    version,
    about = "Conformance harness for Linux namespaces"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run scenarios, each in fresh namespaces; exit 0 when all pass, 1 on a failure, 2 on
    /// bad input.
    Run {
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
    },
    /// Validate scenario files without running them; exit 2 if any is invalid.
    Check {
        /// Scenario files or directories. Default: `scenarios`.
        paths: Vec<PathBuf>,
    },
    /// Probe and list the kernel and machine features scenarios can require.
    Features,
    /// Internal: supervise one scenario and print its JSON report.
    #[command(name = "__supervise", hide = true)]
    Supervise {
        /// The name to report.
        #[arg(long)]
        name: String,
        /// The scenario file.
        path: PathBuf,
    },
    /// Internal: print, as JSON, why each of these scenarios cannot run here (unmet
    /// requirements); valid scenarios whose requirements hold are left out.
    #[command(name = "__requirements", hide = true)]
    Requirements {
        /// Scenario files.
        paths: Vec<PathBuf>,
    },
    /// Internal: try one feature in this throw-away process.
    #[command(name = "__probe", hide = true)]
    Probe {
        /// The feature name.
        feature: String,
    },
}

/// Entry point of the `nsconform` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Commands::Run {
            paths,
            jobs,
            filter,
            verbose,
        } => run(paths, jobs, filter, verbose),
        Commands::Check { paths } => check(paths),
        Commands::Features => features(),
        Commands::Supervise { name, path } => {
            let report = crate::supervisor::supervise(&path, &name);
            match serde_json::to_string(&report) {
                Ok(json) => {
                    emit(&(json + "\n"));
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("nsconform: cannot encode the report: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Commands::Requirements { paths } => {
            let mut probes = crate::probe::Cache::default();
            let unmet: std::collections::BTreeMap<String, String> = paths
                .iter()
                .filter_map(|path| {
                    let loaded = load_file(path).ok()?;
                    let reason = crate::requires::check(&loaded.scenario, &mut probes).err()?;
                    Some((path.display().to_string(), reason))
                })
                .collect();
            emit(&(serde_json::to_string(&unmet).unwrap_or_default() + "\n"));
            ExitCode::SUCCESS
        }
        Commands::Probe { feature } => match crate::requires::parse_feature(&feature) {
            Err(message) => {
                eprintln!("{message}");
                ExitCode::from(BAD_INPUT)
            }
            Ok(feature) => match crate::probe::probe_here(feature) {
                Ok(()) => ExitCode::SUCCESS,
                Err(reason) => {
                    eprintln!("{reason}");
                    ExitCode::FAILURE
                }
            },
        },
    }
}

/// Write to stdout; a reader that went away (`| head`) is not an error worth a panic.
fn emit(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

fn scenario_files(paths: Vec<PathBuf>) -> Result<Vec<ScenarioFile>, ExitCode> {
    let paths = if paths.is_empty() {
        vec![PathBuf::from("scenarios")]
    } else {
        paths
    };
    discover(&paths).map_err(|message| {
        eprintln!("nsconform: {message}");
        ExitCode::from(BAD_INPUT)
    })
}

fn check(paths: Vec<PathBuf>) -> ExitCode {
    let files = match scenario_files(paths) {
        Ok(files) => files,
        Err(code) => return code,
    };
    let mut invalid = 0;
    for file in &files {
        match load_file(&file.path) {
            Ok(_) => {}
            Err(LoadError::Invalid(diagnostics)) => {
                invalid += 1;
                for d in diagnostics {
                    eprintln!("{d}");
                }
            }
            Err(err) => {
                invalid += 1;
                eprintln!("{err}");
            }
        }
    }
    emit(&format!(
        "{} scenario(s) checked, {invalid} invalid\n",
        files.len()
    ));
    if invalid > 0 {
        ExitCode::from(BAD_INPUT)
    } else {
        ExitCode::SUCCESS
    }
}

fn run(
    paths: Vec<PathBuf>,
    jobs: Option<usize>,
    filter: Option<String>,
    verbose: bool,
) -> ExitCode {
    let mut files = match scenario_files(paths) {
        Ok(files) => files,
        Err(code) => return code,
    };
    if let Some(filter) = &filter {
        files.retain(|f| f.name.contains(filter.as_str()));
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => {
            eprintln!("nsconform: cannot find my own binary: {err}");
            return ExitCode::FAILURE;
        }
    };
    let jobs = jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let before = HostSnapshot::take();
    let next = AtomicUsize::new(0);
    let tally = Mutex::new([0usize; 4]); // passed, failed, skipped, invalid
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(files.len().max(1)) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(file) = files.get(index) else { break };
                let report = run_isolated(&exe, file);
                let (slot, word) = match &report.outcome {
                    Outcome::Passed => (0, "PASS"),
                    Outcome::Failed { .. } | Outcome::TimedOut { .. } => (1, "FAIL"),
                    Outcome::Skipped { .. } => (2, "SKIP"),
                    Outcome::Invalid { .. } => (3, "BAD "),
                };
                let mut counts = tally.lock().unwrap_or_else(|p| p.into_inner());
                counts[slot] += 1;
                let mut text = format!("{word} {} ({} ms)", report.name, report.duration_ms);
                if let Outcome::Skipped { reason } = &report.outcome {
                    text.push_str(&format!(": {reason}"));
                }
                text.push('\n');
                let explanation = report.explain();
                if !explanation.is_empty() {
                    for line in explanation.lines() {
                        text.push_str(&format!("    {line}\n"));
                    }
                }
                if verbose {
                    for step in &report.steps {
                        text.push_str(&verbose_line(step));
                    }
                }
                emit(&text);
            });
        }
    });
    let counts = tally.into_inner().unwrap_or_else(|p| p.into_inner());
    let leaks = before.leaks(&HostSnapshot::take());
    for leak in &leaks {
        eprintln!("nsconform: host guard: {leak}");
    }
    emit(&format!(
        "\n{} passed, {} failed, {} skipped, {} invalid\n",
        counts[0], counts[1], counts[2], counts[3]
    ));
    if counts[3] > 0 {
        ExitCode::from(BAD_INPUT)
    } else if counts[1] > 0 || !leaks.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// One line per step for `run --verbose`: number, actor, first line of the action, result.
fn verbose_line(step: &crate::report::StepRecord) -> String {
    let mut action: String = step.action.lines().next().unwrap_or("").to_string();
    if step.action.lines().nth(1).is_some() {
        action.push_str(" ...");
    }
    let result = match (&step.exit, &step.error) {
        (Some(exit), _) => exit.to_string(),
        (None, Some(errno)) => errno.clone(),
        (None, None) => "ok".to_string(),
    };
    format!(
        "    step {} [{}] {action} -> {result}\n",
        step.number, step.actor
    )
}

fn features() -> ExitCode {
    let mut cache = crate::probe::Cache::default();
    for feature in crate::requires::Feature::all() {
        match cache.probe(feature) {
            Ok(()) => emit(&format!("{:<22} yes\n", feature.to_string())),
            Err(reason) => emit(&format!("{:<22} no   {reason}\n", feature.to_string())),
        }
    }
    ExitCode::SUCCESS
}
