//! Running the suite inside a VM on another kernel: `nsconform vm --kernel IMAGE`.

use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `nsconform vm`.
#[derive(Debug, clap::Args)]
pub(crate) struct VmArgs {
    /// The kernel to boot.
    #[arg(long)]
    kernel: PathBuf,
}

/// Run `nsconform vm`.
pub(crate) fn main(_args: VmArgs) -> ExitCode {
    eprintln!("nsconform vm: not available yet");
    ExitCode::from(2)
}
