//! Stock Debian kernels for the VM runner: `nsconform kernels fetch|list`.

use std::process::ExitCode;

/// `nsconform kernels ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum KernelsArgs {
    /// Download kernels into the cache.
    Fetch {
        /// Kernel names, e.g. `6.1`.
        names: Vec<String>,
    },
    /// List the cached kernels.
    List,
}

/// Run `nsconform kernels`.
pub(crate) fn main(_args: KernelsArgs) -> ExitCode {
    eprintln!("nsconform kernels: not available yet");
    ExitCode::from(2)
}
