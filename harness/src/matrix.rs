//! `nsconform matrix`: one command for the whole question "does this behave the same on these
//! kernels?" — fetch the kernels, run the suite on this machine and in a VM per kernel, and
//! compare every results file in one report (terminal, plus Markdown and HTML files).
//!
//! Each stage is this binary's own subcommand, run as a child process (`kernels fetch`,
//! `run`, `vm`, `report`), so a failing kernel does not stop the others and every stage can
//! also be run by hand.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// The kernels a matrix covers unless told otherwise.
const DEFAULT_KERNELS: &[&str] = &["5.10", "6.1", "6.12", "newest"];

/// Options of `nsconform matrix`.
#[derive(Debug, clap::Args)]
pub(crate) struct MatrixArgs {
    /// Kernels, comma-separated (names as `nsconform kernels fetch` takes them).
    /// Default: 5.10,6.1,6.12,newest.
    #[arg(long, value_delimiter = ',')]
    kernels: Vec<String>,
    /// Do not run the suite on this machine's own kernel.
    #[arg(long)]
    no_host: bool,
    /// Where the results files and reports go. Default: `nsconform-matrix`.
    #[arg(long, default_value = "nsconform-matrix")]
    out: PathBuf,
    /// Exit 1 when the report finds scenarios that differ (default: only when a run failed
    /// to produce results).
    #[arg(long)]
    fail_on_difference: bool,
    /// Scenario files or directories. Default: `scenarios`.
    paths: Vec<PathBuf>,
}

/// Run `nsconform matrix`.
pub(crate) fn main(args: MatrixArgs) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => {
            eprintln!("nsconform matrix: cannot find my own binary: {err}");
            return ExitCode::FAILURE;
        }
    };
    let kernels: Vec<String> = if args.kernels.is_empty() {
        DEFAULT_KERNELS.iter().map(ToString::to_string).collect()
    } else {
        args.kernels.clone()
    };
    if let Err(err) = std::fs::create_dir_all(&args.out) {
        eprintln!(
            "nsconform matrix: cannot create {}: {err}",
            args.out.display()
        );
        return ExitCode::from(2);
    }
    let started = Instant::now();
    stage(&format!("fetching kernels {}", kernels.join(", ")));
    if !succeeded(Command::new(&exe).args(["kernels", "fetch"]).args(&kernels)) {
        eprintln!("nsconform matrix: fetching the kernels failed");
        return ExitCode::FAILURE;
    }
    let mut results = Vec::new();
    let mut missing = Vec::new();
    if !args.no_host {
        let file = args.out.join("host.json");
        stage("running the suite on this machine");
        run_into(
            Command::new(&exe)
                .arg("run")
                .arg("--results")
                .arg(&file)
                .args(&args.paths),
            &file,
            "host",
            &mut results,
            &mut missing,
        );
    }
    for kernel in &kernels {
        let file = args.out.join(format!("kernel-{}.json", sanitize(kernel)));
        stage(&format!("running the suite in a VM on kernel {kernel}"));
        let mut command = Command::new(&exe);
        command
            .args(["vm", "--kernel", kernel])
            .arg("--results")
            .arg(&file)
            .args(&args.paths);
        run_into(&mut command, &file, kernel, &mut results, &mut missing);
    }
    if results.is_empty() {
        eprintln!("nsconform matrix: no run produced a results file");
        return ExitCode::FAILURE;
    }
    stage("comparing");
    for (format, name) in [
        ("markdown", "report.md"),
        ("html", "report.html"),
        ("json", "report.json"),
    ] {
        let mut command = Command::new(&exe);
        command
            .args(["report", "--format", format, "--output"])
            .arg(args.out.join(name))
            .args(&results);
        let _ = command.status();
    }
    let differs = !succeeded(Command::new(&exe).arg("report").args(&results));
    println!(
        "\nnsconform matrix: {} results files in {} ({} s); reports: {}, {}",
        results.len(),
        args.out.display(),
        started.elapsed().as_secs(),
        args.out.join("report.html").display(),
        args.out.join("report.md").display()
    );
    if !missing.is_empty() {
        println!("no results from: {}", missing.join(", "));
        return ExitCode::FAILURE;
    }
    if differs && args.fail_on_difference {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn stage(what: &str) {
    println!("\n== nsconform matrix: {what}");
}

/// Run `command`; keep `file` when it was written (a failing suite still writes one).
fn run_into(
    command: &mut Command,
    file: &Path,
    label: &str,
    results: &mut Vec<PathBuf>,
    missing: &mut Vec<String>,
) {
    let _ = std::fs::remove_file(file);
    let _ = command.status();
    if file.exists() {
        results.push(file.to_path_buf());
    } else {
        missing.push(label.to_string());
    }
}

fn succeeded(command: &mut Command) -> bool {
    command.status().is_ok_and(|s| s.success())
}

/// A kernel name as a file name part.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_become_file_names() {
        assert_eq!(sanitize("6.12"), "6.12");
        assert_eq!(
            sanitize("7.2.13+deb14-cloud-amd64"),
            "7.2.13_deb14-cloud-amd64"
        );
        assert_eq!(sanitize("../x"), ".._x");
    }
}
