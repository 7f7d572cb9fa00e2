//! Running the suite inside a VM on another kernel: `nsconform vm --kernel IMAGE`.
//!
//! The harness builds an initramfs from this machine's own files (`initramfs.rs`: the harness
//! binary, the scenarios, the real tools with their libraries, the kernel's modules for link
//! kinds), boots the kernel with it under QEMU (`qemu.rs`; KVM when it works, TCG otherwise),
//! and watches the console for progress (`attempt.rs`). Inside, the same binary is init
//! (`nsconform vm --guest-init`, `guest.rs`): it sets up a root the scenarios can work in, runs
//! `nsconform run` on every scenario, sends the results file back over the second serial
//! port (`frame.rs`), and powers off. The host writes that file where `--results` says and
//! exits with the run's status (`host.rs`), after one retry when a boot brought nothing back.
//!
//! Other parts: `kernel.rs` finds the image, its release and its modules; `modules.rs`
//! picks the modules and `tools.rs` the programs; `rootfs.rs` and `cpio.rs` write the
//! archive; `cache.rs` keeps its common part between runs; `libs.rs` reads `ldd`;
//! `summary.rs` words the outcome and the timing figures.
//! See `docs/vm.md`.

mod attempt;
mod cache;
mod cpio;
mod frame;
mod guest;
mod host;
mod initramfs;
mod kernel;
pub(crate) mod libs;
mod modules;
mod qemu;
mod rootfs;
mod summary;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Exit status for bad input, as `nsconform run` uses it.
const BAD_INPUT: u8 = 2;

/// Options of `nsconform vm`.
#[derive(Debug, clap::Args)]
pub(crate) struct VmArgs {
    /// The kernel to boot: an image (bzImage, or an ELF vmlinux with a PVH entry), a kernel
    /// directory of the cache, or a cached kernel's name (`6.1`; see `nsconform kernels`).
    #[arg(long, required_unless_present = "guest_init")]
    kernel: Option<String>,
    /// The kernel's modules tree (the directory with `modules.dep`, or one above it).
    /// Default: found next to the image or in the cache.
    #[arg(long, value_name = "DIR")]
    modules: Option<PathBuf>,
    /// Scenario files or directories. Default: `scenarios`.
    paths: Vec<PathBuf>,
    /// Only scenarios whose name contains this text.
    #[arg(short, long)]
    filter: Option<String>,
    /// Scenarios run at once inside the VM. Default: its number of CPUs.
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Show every step of every scenario, not only failures.
    #[arg(short, long)]
    verbose: bool,
    /// Write the guest's results file here (schema `nsconform-results/1`).
    #[arg(long, value_name = "FILE")]
    results: Option<PathBuf>,
    /// Virtual CPUs. Default: this machine's CPUs, at most 4.
    #[arg(long)]
    cpus: Option<usize>,
    /// Memory of the VM in MiB.
    #[arg(long, default_value_t = 1024)]
    memory: u32,
    /// Accelerator: KVM when usable (tried, and TCG after a failed start), or one of them.
    #[arg(long, value_enum, default_value = "auto")]
    accel: host::AccelChoice,
    /// Multiply every scenario's timeout by this inside the VM. Default: 20 under TCG, 3 under
    /// KVM.
    #[arg(long, value_name = "N")]
    timeout_scale: Option<u32>,
    /// Give up after this many seconds in all (boots and retry included).
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    time_limit: u64,
    /// Extra kernel parameters (`NAME=value` words the kernel does not know reach init as
    /// environment variables).
    #[arg(long, value_name = "PARAMS")]
    append: Option<String>,
    /// Keep the work directory (initramfs, console log, QEMU's messages) and print its path.
    #[arg(long)]
    keep: bool,
    /// Only boot: the guest's init powers off as soon as it starts, and the time from
    /// starting QEMU to its exit is the kernel's bare boot (same QEMU settings and
    /// initramfs as a run). Takes the options of a run, but for `--results`.
    #[arg(long, conflicts_with = "results")]
    boot_only: bool,
    /// Write the initramfs in full every time instead of reusing its cached common part.
    #[arg(long)]
    no_cache: bool,
    /// Internal: be the guest's init (PID 1 inside the VM).
    #[arg(long, hide = true)]
    guest_init: bool,
}

/// Run `nsconform vm`.
pub(crate) fn main(args: VmArgs) -> ExitCode {
    if args.guest_init {
        return guest::init();
    }
    let started = Instant::now();
    match plan(args, started) {
        Ok(plan) => host::run(plan),
        Err(message) => {
            eprintln!("nsconform vm: {message}");
            ExitCode::from(BAD_INPUT)
        }
    }
}

/// Check the options and gather what the run needs.
fn plan(args: VmArgs, started: Instant) -> Result<host::Plan, String> {
    let spec = args.kernel.ok_or("--kernel is required")?;
    let kernel = kernel::resolve(&spec, args.modules.as_deref()).map_err(|e| e.to_string())?;
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from("scenarios")]
    } else {
        args.paths
    };
    let mut files = crate::runner::discover(&paths)?;
    if let Some(filter) = &args.filter {
        files.retain(|f| f.name.contains(filter.as_str()));
    }
    if files.is_empty() && !args.boot_only {
        return Err("no scenarios to run (check the paths and --filter)".to_string());
    }
    let extra_tools = crate::runner::Catalog::load(&files).commands();
    let mut run_args = Vec::new();
    if let Some(jobs) = args.jobs {
        run_args.extend(["--jobs".to_string(), jobs.to_string()]);
    }
    if args.verbose {
        run_args.push("--verbose".to_string());
    }
    let cpus = args.cpus.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4)
    });
    Ok(host::Plan {
        kernel,
        scenarios: files.into_iter().map(|f| (f.name, f.path)).collect(),
        extra_tools,
        guest: guest::GuestConfig {
            run_args,
            hostname: "nsconform-vm".to_string(),
            results: args.results.is_some(),
            boot_only: args.boot_only,
        },
        machine: qemu::Machine {
            cpus,
            memory_mib: args.memory,
            append: args.append,
            timeout_scale: 1,
        },
        accel: args.accel,
        timeout_scale: args.timeout_scale,
        time_limit: Duration::from_secs(args.time_limit),
        results: args.results,
        keep: args.keep,
        cache: (!args.no_cache).then(cache::Cache::default_dir),
        started,
    })
}
