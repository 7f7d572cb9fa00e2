//! The `nsconform` command line: `run`, `check`, `features`, and the internal entry points
//! of the processes the harness execs for itself (`__supervise`, `__probe`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod rootfs;
mod run;

use crate::runner::{discover, ScenarioFile};
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
    Run(run::RunArgs),
    /// Validate scenario files without running them; exit 2 if any is invalid.
    Check {
        /// Scenario files or directories. Default: `scenarios`.
        paths: Vec<PathBuf>,
    },
    /// Probe and list the kernel and machine features scenarios can require: each one is
    /// tried in a throw-away process, and an unavailable one is shown with the reason.
    Features {
        /// Print a JSON object instead: feature name to `null` (available) or the reason.
        #[arg(long)]
        json: bool,
        /// Also save the results as JSON to FILE, for `NSCONFORM_FEATURE_CACHE=FILE` (the
        /// processes of a run then read them instead of probing again).
        #[arg(long, value_name = "FILE")]
        save: Option<PathBuf>,
        /// Probe only these features (names as in `requires.features`). Default: all.
        only: Vec<String>,
    },
    /// Download stock Debian kernels into the cache and list them (for `vm` and `matrix`).
    #[command(subcommand)]
    Kernels(crate::kernels::KernelsArgs),
    /// Build root filesystems (busybox, Debian) into the cache, list them, print their path.
    #[command(subcommand)]
    Rootfs(rootfs::RootfsArgs),
    /// Boot a kernel under QEMU and run the suite inside it; bring its results file back.
    Vm(crate::vm::VmArgs),
    /// Compare results files (kernels, distributions, tools) and show what differs.
    Report(crate::compare::ReportArgs),
    /// Fetch kernels, run the suite here and in a VM per kernel, and report the differences.
    Matrix(crate::matrix::MatrixArgs),
    /// Internal: supervise one scenario and print its JSON report.
    #[command(name = "__supervise", hide = true)]
    Supervise {
        /// The name to report.
        #[arg(long, required_unless_present_any = ["warm", "server"])]
        name: Option<String>,
        /// The scenario file.
        #[arg(required_unless_present_any = ["warm", "server"])]
        path: Option<PathBuf>,
        /// Make the stand-in host first, then read the scenario from standard input (one
        /// JSON line: `{"name": ..., "path": ...}`); print nothing if the input ends first.
        #[arg(long, conflicts_with_all = ["name", "path"])]
        warm: bool,
        /// Be a fork server of warm supervisors, on the socket that is standard input (see
        /// `fork_server.rs`).
        #[arg(long, conflicts_with_all = ["name", "path", "warm"])]
        server: bool,
        /// Descriptors 3 and 4 are the runner thread's turn pipe (see `turns.rs`).
        #[arg(long)]
        turns: bool,
    },
    /// Internal: print, as JSON, why each of these scenarios cannot run here (unmet
    /// requirements), and which of the others may start at once (see `runner/requirements.rs`).
    #[command(name = "__requirements", hide = true)]
    Requirements {
        /// Scenario files.
        paths: Vec<PathBuf>,
    },
    /// Print what this process sees (identity, maps, namespace ids, links, mounts,
    /// capabilities, cgroup, ...) as one line of JSON: the payload a container tool runs
    /// inside what it creates. In a scenario, `{{probe}}` runs it (see docs/probe.md).
    Probe,
    /// Internal: try one feature in this throw-away process.
    #[command(name = "__probe", hide = true)]
    ProbeFeature {
        /// The feature name.
        feature: String,
    },
}

/// A supervisor: of the scenario `cold` names (path, name), or else a warm one, which reads
/// its scenario from standard input (and hands its thread's `turns` to its orchestrators).
/// Returns its exit code.
fn supervise(
    cold: Option<(&std::path::Path, &str)>,
    turns: Option<&crate::turns::TurnPipe>,
) -> i32 {
    // Whatever mask the invoker had, scenarios start from the same state.
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
    match cold {
        Some((path, name)) => supervised_output(crate::supervisor::supervise(path, name)),
        None => {
            // A warm supervisor serves scenario after scenario, each in a new stand-in host
            // made after the last one's cleanup, until its input ends.
            let mut code = 0;
            let mut first = true;
            let mut input = crate::supervisor::Input::default();
            let machine = crate::supervisor::MachineFacts::read();
            while let Some(supervised) =
                crate::supervisor::serve_warm(first, &mut input, &machine, turns)
            {
                let last = supervised.last;
                code = code.max(supervised_output(supervised));
                if last {
                    break;
                }
                first = false;
            }
            code
        }
    }
}

/// A supervisor's two lines: its report, as soon as the scenario is over, then the verdict of
/// the cleanup that follows (see docs/architecture.md). Returns its exit code.
fn supervised_output(supervised: crate::supervisor::Supervised) -> i32 {
    let report = serde_json::to_string(&supervised.report);
    if let Ok(json) = &report {
        emit(&format!("{json}\n"));
    }
    let mut held = Vec::new();
    let verdict = supervised.cleanup.run(&mut held);
    if let Err(leak) = &verdict {
        eprintln!("nsconform: cleanup failed: {leak}");
    }
    let line = crate::supervisor::CleanupVerdict {
        cleanup: verdict.err(),
    };
    match (report, serde_json::to_string(&line)) {
        (Ok(_), Ok(json)) => {
            emit(&format!("{json}\n"));
            drop(held);
            0
        }
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("nsconform: cannot encode the report: {err}");
            1
        }
    }
}

/// Entry point of the `nsconform` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Commands::Run(args) => run::run(args),
        Commands::Check { paths } => check(paths),
        Commands::Kernels(args) => crate::kernels::main(args),
        Commands::Rootfs(args) => rootfs::main(args),
        Commands::Vm(args) => crate::vm::main(args),
        Commands::Report(args) => crate::compare::main(args),
        Commands::Matrix(args) => crate::matrix::main(args),
        Commands::Features { json, save, only } => features(json, save, only),
        Commands::Supervise {
            name,
            path,
            warm,
            server,
            turns,
        } => {
            let turns = turns.then(crate::turns::TurnPipe::inherited).flatten();
            let code = match (name, path) {
                (Some(name), Some(path)) if !warm => supervise(Some((&path, &name)), None),
                _ if server => crate::fork_server::serve(&|| supervise(None, turns.as_ref())),
                _ => supervise(None, turns.as_ref()),
            };
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Commands::Requirements { paths } => {
            let verdicts = crate::runner::requirement_verdicts(&paths);
            emit(&(serde_json::to_string(&verdicts).unwrap_or_default() + "\n"));
            ExitCode::SUCCESS
        }
        Commands::Probe => crate::payload::main(),
        Commands::ProbeFeature { feature } => match crate::requires::parse_feature(&feature) {
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
    let files = discover(&paths).map_err(|message| {
        eprintln!("nsconform: {message}");
        ExitCode::from(BAD_INPUT)
    })?;
    if files.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "nsconform: no scenario files (*.toml) in {}",
            shown.join(", ")
        );
        return Err(ExitCode::from(BAD_INPUT));
    }
    Ok(files)
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

fn features(json: bool, save: Option<PathBuf>, only: Vec<String>) -> ExitCode {
    let only: Option<Vec<crate::requires::Feature>> = if only.is_empty() {
        None
    } else {
        match only
            .iter()
            .map(|name| crate::requires::parse_feature(name))
            .collect()
        {
            Ok(features) => Some(features),
            Err(message) => {
                eprintln!("nsconform: {message}");
                return ExitCode::from(BAD_INPUT);
            }
        }
    };
    if let (Some(path), Some(features)) = (&save, &only) {
        // A partial cache for a run: probe just these, save them, print nothing more.
        return match crate::probe::write_cache(path, Some(features)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!(
                    "nsconform: cannot save the results to {}: {err}",
                    path.display()
                );
                ExitCode::FAILURE
            }
        };
    }
    if let Some(path) = &save {
        if let Err(err) = crate::probe::write_cache(path, None) {
            eprintln!(
                "nsconform: cannot save the results to {}: {err}",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    }
    let mut cache = match &save {
        // Read back what was just saved rather than probe everything twice.
        Some(path) => crate::probe::Cache::load(path),
        None => crate::probe::Cache::default(),
    };
    let results = cache.probe_all();
    if json {
        emit(&cache.to_json());
        return ExitCode::SUCCESS;
    }
    let width = results
        .iter()
        .map(|(feature, _)| feature.to_string().len())
        .max()
        .unwrap_or(0);
    let as_root = nix::unistd::Uid::effective().is_root();
    let mut text = format!("{:<width$}  available  reason\n", "feature");
    for (feature, verdict) in &results {
        let name = feature.to_string();
        match verdict {
            Ok(()) => {
                let proved = crate::probe::succeeded(*feature, as_root);
                text.push_str(&format!("{name:<width$}  yes        {proved}\n"));
            }
            Err(reason) => text.push_str(&format!("{name:<width$}  no         {reason}\n")),
        }
    }
    let available = results.iter().filter(|(_, v)| v.is_ok()).count();
    text.push_str(&format!(
        "\n{available} of {} features available\n",
        results.len()
    ));
    emit(&text);
    ExitCode::SUCCESS
}
