//! Stock Debian kernels for the VM runner: `nsconform kernels fetch|list`.
//!
//! `fetch` downloads Debian's own kernel packages (`linux-image-*-cloud-amd64`, or the
//! generic `-amd64` build when no cloud build matches) from the Debian archive with a
//! private apt configuration, and unpacks the image, its config and its modules into the
//! cache (`~/.cache/nsconform/kernels/RELEASE`). It also extracts the decompressed ELF
//! `vmlinux` from the image: booted through its PVH entry (`qemu -kernel vmlinux`) it skips
//! in-guest decompression, which saves 0.3 to 4 s per boot under TCG. `list` shows what is
//! cached. The host's apt configuration, its package state and `/boot` are never touched.
//!
//! The parts: `apt.rs` (the private apt), `packages.rs` (reading indexes), `version.rs`
//! (Debian version order), `query.rs` and `resolve.rs` (names to packages), `install.rs`
//! (unpacking), `bzimage.rs`, `decompress.rs` and `elf.rs` (vmlinuz to vmlinux), `cache.rs`
//! (layout and listing), `fetch.rs` and `list.rs` (the two commands). See `docs/kernels.md`.

mod apt;
mod bzimage;
mod cache;
mod decompress;
mod fetch;
mod install;
mod list;
mod packages;
mod query;
mod resolve;
mod version;

use std::process::ExitCode;

pub(crate) use cache::CachedKernel;
pub(crate) use fetch::FetchOptions;

/// Errors of the kernel cache, as the VM runner sees them.
pub(crate) type KernelsError = fetch::FetchError;

/// `nsconform kernels ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum KernelsArgs {
    /// Download stock Debian kernels into the cache (default: 5.10, 6.1, 6.12 and the newest).
    Fetch {
        /// Kernel names: `newest`, `7` or `7.x`, a series (`6.1`), an upstream version
        /// (`6.1.192`), a release (`6.1.0-56-cloud-amd64`) or a Debian version (`6.1.192-2`).
        names: Vec<String>,
        /// Update the package indexes even if less than a day old.
        #[arg(long)]
        refresh: bool,
        /// Download and unpack again kernels that are already cached.
        #[arg(long)]
        force: bool,
    },
    /// List the cached kernels.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Run `nsconform kernels`.
pub(crate) fn main(args: KernelsArgs) -> ExitCode {
    match args {
        KernelsArgs::Fetch {
            names,
            refresh,
            force,
        } => match fetch::fetch_in(&kernels_dir(), &names, FetchOptions { refresh, force }) {
            Ok(kernels) => {
                print_out(&format!("\n{}", list::table(&kernels)));
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("nsconform kernels fetch: {err}");
                ExitCode::FAILURE
            }
        },
        KernelsArgs::List { json } => {
            let kernels = list_cached();
            if json {
                print_out(&format!("{:#}\n", list::json(&kernels)));
            } else if kernels.is_empty() {
                let dir = kernels_dir();
                print_out(&format!(
                    "No kernels in {} (try `nsconform kernels fetch`).\n",
                    dir.display()
                ));
            } else {
                print_out(&list::table(&kernels));
            }
            ExitCode::SUCCESS
        }
    }
}

/// Write to standard output; a closed pipe (`| head`) is not an error.
fn print_out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// The nsconform cache directory: `$NSCONFORM_CACHE`, `$XDG_CACHE_HOME/nsconform` or
/// `~/.cache/nsconform`. Kernels are in its `kernels/` subdirectory.
#[allow(dead_code)] // for the VM runner
pub(crate) fn cache_dir() -> std::path::PathBuf {
    cache::cache_dir()
}

/// The kernels directory: `cache_dir()/kernels`.
pub(crate) fn kernels_dir() -> std::path::PathBuf {
    cache::kernels_dir()
}

/// Every cached kernel, oldest version first.
pub(crate) fn list_cached() -> Vec<CachedKernel> {
    cache::list_in(&kernels_dir())
}

/// The cached kernel a name means (the names `fetch` takes; newest match, cloud builds
/// first), without touching the network. `None` when nothing cached matches.
#[allow(dead_code)] // for the VM runner
pub(crate) fn find(name: &str) -> Option<CachedKernel> {
    cache::find_in(&kernels_dir(), name)
}

/// Fetch kernels by name (the default set when `names` is empty) and return them, as
/// `nsconform kernels fetch` does, progress included.
#[allow(dead_code)] // for the VM runner
pub(crate) fn fetch(names: &[String]) -> Result<Vec<CachedKernel>, KernelsError> {
    fetch::fetch_in(&kernels_dir(), names, FetchOptions::default())
}
