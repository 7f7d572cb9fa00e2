//! `cargo test` entry point: every `scenarios/**/*.toml` is one libtest-mimic trial, named by
//! its path under `scenarios/`. Each trial runs in a freshly exec'd `nsconform` supervisor.
//!
//! Requirements are decided when the trials are listed, so a scenario this machine cannot run
//! is marked ignored for `cargo test` and `cargo nextest run` alike, and its reason is printed
//! (run with `--ignored` to see the supervisor confirm it). The host guard compares the
//! machine before and after the whole run and fails the run if anything leaked.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use nsconform::host_guard::HostSnapshot;
use nsconform::report::Outcome;
use nsconform::runner::{discover, run_isolated, unmet_requirements};

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_nsconform"));
    let files = match discover(&[root]) {
        Ok(files) => files,
        Err(message) => {
            eprintln!("cannot list scenarios: {message}");
            return ExitCode::from(2);
        }
    };
    let unmet = match unmet_requirements(&exe, &files) {
        Ok(unmet) => unmet,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if !args.list {
        for file in &files {
            if let Some(reason) = unmet.get(&file.path) {
                eprintln!("ignored {}: {reason}", file.name);
            }
        }
    }
    let trials = files
        .into_iter()
        .map(|file| {
            let exe = exe.clone();
            let ignored = unmet.contains_key(&file.path);
            Trial::ignorable_test(file.name.clone(), move || {
                let report = run_isolated(&exe, &file);
                match report.outcome {
                    Outcome::Passed => Ok(Completion::Completed),
                    Outcome::Skipped { reason } => Ok(Completion::ignored_with(reason)),
                    _ => Err(Failed::from(report.explain())),
                }
            })
            .with_ignored_flag(ignored)
        })
        .collect();
    let guard = (!args.list).then(HostSnapshot::take);
    let conclusion = libtest_mimic::run(&args, trials);
    if let Some(before) = guard {
        let leaks = before.leaks(&HostSnapshot::take());
        if !leaks.is_empty() {
            eprintln!("host guard: the run changed the machine:");
            for leak in leaks {
                eprintln!("  {leak}");
            }
            return ExitCode::FAILURE;
        }
    }
    conclusion.exit_code()
}
