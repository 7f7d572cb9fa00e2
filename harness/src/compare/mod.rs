//! Comparing results files across kernels, distributions and tools: `nsconform report`.

use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `nsconform report`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    /// Results files to compare.
    files: Vec<PathBuf>,
}

/// Run `nsconform report`.
pub(crate) fn main(_args: ReportArgs) -> ExitCode {
    eprintln!("nsconform report: not available yet");
    ExitCode::from(2)
}
