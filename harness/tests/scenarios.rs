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
use nsconform::report::{Outcome, ScenarioReport};
use nsconform::runner::{discover, Catalog, Runner};

/// Compare the scenario's observations with `snapshots/<type>__<name>.snap`, or with the
/// per-kernel variant `<type>__<name>@kernel-MAJOR.MINOR.snap` when one exists (insta).
/// `NSCONFORM_SNAPSHOTS` names another directory (the harness's own tests use a copy).
fn assert_observations_snapshot(report: &ScenarioReport, path: &Path) {
    let dir = std::env::var_os("NSCONFORM_SNAPSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../snapshots"));
    let generic = report.name.replace('/', "__");
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let major_minor: Vec<&str> = release.trim().split(['.', '-']).take(2).collect();
    let variant = format!("{generic}@kernel-{}", major_minor.join("."));
    let name = if dir.join(format!("{variant}.snap")).exists() {
        variant
    } else {
        generic
    };
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(&dir);
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.set_input_file(path);
    settings.bind(|| insta::assert_snapshot!(name, report.observations_text()));
}

/// Where feature probe results are kept between the test processes of one boot (nextest
/// runs each trial in its own process): keyed by the boot and by the binary's build time.
fn feature_cache_file(exe: &Path) -> PathBuf {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let built = exe
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("features-{}-{built}.json", boot.trim()))
}

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
    let runner = match Runner::new(&exe).with_feature_cache(feature_cache_file(&exe), true) {
        Ok(runner) => runner,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let (runner, unmet) = match runner.check_requirements(&files) {
        Ok(checked) => checked,
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
    // Filters on the command line may leave fewer to run: a warm supervisor or two then
    // waits in vain until the end of the run.
    let catalog = Catalog::load(&files);
    let runner = runner
        .with_warm_supervisors(Some(files.len() - unmet.len()))
        .with_catalog(&catalog);
    let sysctls = catalog.sysctls();
    let trials = files
        .into_iter()
        .map(|file| {
            let runner = runner.clone();
            let ignored = unmet.contains_key(&file.path);
            Trial::ignorable_test(file.name.clone(), move || {
                let report = runner.run(&file);
                match report.outcome {
                    Outcome::Passed if report.snapshot => {
                        assert_observations_snapshot(&report, &file.path);
                        Ok(Completion::Completed)
                    }
                    Outcome::Passed => Ok(Completion::Completed),
                    Outcome::Skipped { reason } => Ok(Completion::ignored_with(reason)),
                    _ => Err(Failed::from(report.explain())),
                }
            })
            .with_ignored_flag(ignored)
        })
        .collect();
    let guard = (!args.list).then(|| HostSnapshot::take_with(&sysctls));
    let conclusion = libtest_mimic::run(&args, trials);
    runner.finish();
    if let Some(before) = guard {
        let leaks = before.leaks(&HostSnapshot::take_with(&sysctls));
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
