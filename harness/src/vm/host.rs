//! The host side of `nsconform vm`: build the initramfs, boot, retry, bring the results back.
//!
//! One boot runs every selected scenario. KVM is tried first when `/dev/kvm` opens; when the
//! guest does not come up with it (QEMU fails, or init has not started after
//! [`KVM_BOOT_LIMIT`]) the same boot is started again under TCG, and that is said. A boot that
//! ends without results (QEMU crashed, the guest panicked, the transfer was cut, or a TCG boot
//! had not reached init after [`TCG_BOOT_LIMIT`]) is retried once, saying why; a boot that ran
//! out of time is not, since a second one would too.
//!
//! With `--boot-only` the guest's init powers off as soon as it starts: the boot is the bare
//! boot of the kernel with the same QEMU settings and initramfs, for comparison with a run.
//! Either way the command ends with a `figures:` line (`summary.rs`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::attempt::{self, Ending, Watch};
use super::cache::Cache;
use super::frame;
use super::guest::GuestConfig;
use super::initramfs::{self, Contents};
use super::kernel::{ImageKind, Kernel};
use super::qemu::{self, Accel, Machine};
use super::summary::{finish, seconds, Figures};
use crate::results::VmRun;

/// How long a KVM boot may take to reach init before KVM counts as unusable.
const KVM_BOOT_LIMIT: Duration = Duration::from_secs(30);

/// How long a TCG boot may take to reach init before it counts as stuck: it is stopped and
/// retried once. Stock kernels reach init in 2–4 s under TCG here; a stuck one was seen
/// spinning with an empty console until the whole command's time limit.
const TCG_BOOT_LIMIT: Duration = Duration::from_secs(120);

/// The boot limit of a boot under `accel` when `choice` was asked for (see
/// [`Watch::boot_limit`]): a KVM boot is bounded only when TCG is there to fall back on.
fn boot_limit(accel: Accel, choice: AccelChoice) -> Option<Duration> {
    match accel {
        Accel::Kvm => (choice == AccelChoice::Auto).then_some(KVM_BOOT_LIMIT),
        Accel::Tcg => Some(TCG_BOOT_LIMIT),
    }
}

/// Exit status when the VM gave no results (as `nsconform run` uses 1 for failures).
pub(super) const NO_RESULTS: u8 = 1;

/// Which accelerator to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AccelChoice {
    /// KVM when it works here, otherwise TCG.
    Auto,
    /// KVM only.
    Kvm,
    /// TCG only.
    Tcg,
}

/// Everything one `nsconform vm` needs.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The kernel.
    pub(crate) kernel: Kernel,
    /// The scenarios, by name and path.
    pub(crate) scenarios: Vec<(String, PathBuf)>,
    /// Programs the scenarios require beyond the usual tools.
    pub(crate) extra_tools: std::collections::BTreeSet<String>,
    /// Options of the run inside.
    pub(crate) guest: GuestConfig,
    /// Size of the VM and extra kernel parameters.
    pub(crate) machine: Machine,
    /// Accelerator.
    pub(crate) accel: AccelChoice,
    /// Timeout scale, when not the accelerator's default.
    pub(crate) timeout_scale: Option<u32>,
    /// Limit for the whole command.
    pub(crate) time_limit: Duration,
    /// Where to write the results file.
    pub(crate) results: Option<PathBuf>,
    /// Keep the work directory.
    pub(crate) keep: bool,
    /// Where the initramfs's base is cached (`None`: not cached).
    pub(crate) cache: Option<PathBuf>,
    /// When the command started (the round trip is measured from here).
    pub(crate) started: Instant,
}

/// Run the plan; the exit status of the suite inside, or 1 without results.
pub(crate) fn run(mut plan: Plan) -> ExitCode {
    let deadline = plan.started + plan.time_limit;
    match qemu::version() {
        Ok(version) => say(&format!("using {version}")),
        Err(message) => {
            say(&message);
            return ExitCode::from(NO_RESULTS);
        }
    }
    let work = match work_dir() {
        Ok(work) => work,
        Err(err) => {
            say(&format!("cannot create a work directory: {err}"));
            return ExitCode::from(NO_RESULTS);
        }
    };
    let (code, figures) = boot_and_collect(&mut plan, &work, deadline);
    if plan.keep {
        say(&format!("work directory kept: {}", work.display()));
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    if let Some(mut figures) = figures {
        figures.total = plan.started.elapsed();
        say(&figures.to_string());
    }
    ExitCode::from(code)
}

/// Build the initramfs, boot (again after a failed KVM start or a boot without results),
/// and pass the outcome on; the exit status, and the figures when a boot completed.
fn boot_and_collect(plan: &mut Plan, work: &Path, deadline: Instant) -> (u8, Option<Figures>) {
    let code = |code: u8| (code, None);
    let binary = match std::env::current_exe() {
        Ok(binary) => binary,
        Err(err) => {
            say(&format!("cannot find my own binary: {err}"));
            return code(NO_RESULTS);
        }
    };
    let initrd = work.join("initramfs.cpio");
    let contents = Contents {
        binary: &binary,
        scenarios: &plan.scenarios,
        extra_tools: &plan.extra_tools,
        modules: plan.kernel.modules.as_deref(),
        config: &plan.guest,
    };
    let built_at = Instant::now();
    let cache = plan.cache.as_deref().map(Cache::at);
    let built = match initramfs::build(&contents, &initrd, cache.as_ref()) {
        Ok(built) => built,
        Err(err) => {
            say(&format!("cannot build the initramfs: {err}"));
            return code(NO_RESULTS);
        }
    };
    let initramfs_time = built_at.elapsed();
    if let Some(err) = &built.cache_error {
        say(&format!("the initramfs's base could not be cached: {err}"));
    }
    say(&format!(
        "initramfs: {} entries, {:.1} MB, {} in {:.2} s{}",
        built.entries,
        built.bytes as f64 / 1e6,
        if built.cached {
            "cached base reused"
        } else {
            "built"
        },
        initramfs_time.as_secs_f64(),
        match plan.kernel.modules {
            Some(_) => String::new(),
            None => "; no modules tree found (link kinds built as modules will be missing; \
                     see --modules)"
                .to_string(),
        }
    ));
    if !built.missing_tools.is_empty() {
        say(&format!(
            "not on this machine, so not in the guest: {}",
            built.missing_tools.join(", ")
        ));
    }
    let mut accel = match plan.accel {
        AccelChoice::Tcg => Accel::Tcg,
        AccelChoice::Kvm => Accel::Kvm,
        AccelChoice::Auto => match qemu::kvm_unavailable() {
            None => Accel::Kvm,
            Some(reason) => {
                say(&format!("KVM is not available ({reason}); using TCG"));
                Accel::Tcg
            }
        },
    };
    let mut retried = false;
    for boot in 1.. {
        plan.machine.timeout_scale = plan.timeout_scale.unwrap_or(match accel {
            Accel::Kvm => 3,
            Accel::Tcg => 20,
        });
        let dir = work.join(format!("boot-{boot}"));
        if let Err(err) = std::fs::create_dir_all(&dir) {
            say(&format!("{}: {err}", dir.display()));
            return code(NO_RESULTS);
        }
        let port = dir.join("results.serial");
        say(&format!(
            "booting {} ({}) under {accel}{}: {} vCPU, {} MiB, {} scenario(s), timeouts x{}",
            plan.kernel.release.as_deref().unwrap_or("kernel"),
            match plan.kernel.kind {
                ImageKind::Elf => "vmlinux via PVH",
                ImageKind::BzImage => "bzImage",
            },
            if plan.guest.boot_only {
                ", to power off at once (--boot-only)"
            } else {
                ""
            },
            plan.machine.cpus,
            plan.machine.memory_mib,
            plan.scenarios.len(),
            plan.machine.timeout_scale,
        ));
        let command = qemu::command(&plan.kernel, &initrd, &port, accel, &plan.machine);
        let watch = Watch {
            dir: &dir,
            deadline,
            boot_limit: boot_limit(accel, plan.accel),
            total: plan.scenarios.len(),
        };
        let report = match attempt::run(command, &watch) {
            Ok(report) => report,
            Err(err) => {
                say(&err.to_string());
                return code(NO_RESULTS);
            }
        };
        let figures = Figures {
            mode: if plan.guest.boot_only {
                "boot-only"
            } else {
                "run"
            },
            kernel: plan
                .kernel
                .release
                .clone()
                .unwrap_or_else(|| plan.kernel.image.display().to_string()),
            accel: accel.to_string().to_lowercase(),
            scenarios: plan.scenarios.len(),
            attempts: 1 + u32::from(retried),
            initramfs: initramfs_time,
            init: report.booted_after,
            qemu: report.elapsed,
            total: Duration::ZERO,
        };
        let powered_off = report.off_after.is_some() && matches!(report.ending, Ending::Exited(_));
        if plan.guest.boot_only && powered_off {
            say(&format!(
                "bare boot of {}: init started at {}, powered off at {}, QEMU exited at {:.2} s",
                figures.kernel,
                seconds(report.booted_after),
                seconds(report.off_after),
                report.elapsed.as_secs_f64()
            ));
            return (0, Some(figures));
        }
        let received = std::fs::read(&port).unwrap_or_default();
        let decoded = frame::decode(&received);
        if let (Ok(frame), false) = (&decoded, plan.guest.boot_only) {
            let run = VmRun {
                kernel: plan.kernel.release.clone(),
                accelerator: Some(accel.to_string().to_lowercase()),
                boot_ms: report.suite_after.map(|d| d.as_millis() as u64),
                round_trip_ms: Some(report.elapsed.as_millis() as u64),
                // The KVM try that fell back to TCG is not counted: only retries are.
                attempts: Some(1 + u32::from(retried)),
            };
            let code = finish(plan.results.as_deref(), plan.started, frame, &report, run);
            return (code, Some(figures));
        }
        if accel == Accel::Kvm && plan.accel == AccelChoice::Auto && report.booted_after.is_none() {
            say(&format!(
                "KVM is not usable here ({}); falling back to TCG",
                nonempty(&report.qemu_errors, "the guest did not start")
            ));
            accel = Accel::Tcg;
            continue;
        }
        let why = failure(&report, decoded.err().filter(|_| !plan.guest.boot_only));
        if report.ending == Ending::TimedOut {
            say(&format!("no results: {why}"));
            return code(NO_RESULTS);
        }
        if retried {
            say(&format!("no results again, giving up: {why}"));
            return code(NO_RESULTS);
        }
        say(&format!("no results from the VM, retrying once: {why}"));
        retried = true;
    }
    code(NO_RESULTS)
}

/// Why a boot brought nothing back, with the evidence.
fn failure(report: &attempt::Report, error: Option<frame::FrameError>) -> String {
    let what = match &report.ending {
        Ending::TimedOut => format!(
            "the time limit passed after {:.0} s and QEMU was stopped",
            report.elapsed.as_secs_f64()
        ),
        Ending::NoBoot => format!(
            "the guest's init had not started after {:.0} s and QEMU was stopped",
            report.elapsed.as_secs_f64()
        ),
        Ending::Exited(status) if report.booted_after.is_none() => {
            format!("QEMU exited ({status}) before the guest's init started")
        }
        Ending::Exited(status) => format!("QEMU exited ({status}) during the run"),
    };
    let mut why = what;
    if let Some(error) = error {
        why.push_str(&format!("; {error}"));
    }
    if !report.qemu_errors.is_empty() {
        why.push_str(&format!("; QEMU said: {}", report.qemu_errors));
    }
    if report.console_tail.is_empty() {
        why.push_str("; the console stayed empty");
    } else {
        why.push_str("; last console lines:\n    ");
        why.push_str(&report.console_tail.join("\n    "));
    }
    why
}

/// A fresh private directory for this run's files.
fn work_dir() -> std::io::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("nsconform-vm-{}-{nanos:08x}", std::process::id()));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

fn nonempty<'a>(text: &'a str, otherwise: &'a str) -> &'a str {
    if text.is_empty() {
        otherwise
    } else {
        text
    }
}

/// A line of the command's own (as opposed to the guest's console).
pub(super) fn say(line: &str) {
    attempt::show(&format!("nsconform vm: {line}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_the_ending_the_frame_error_and_the_console() {
        let report = attempt::Report {
            ending: Ending::TimedOut,
            booted_after: Some(Duration::from_secs(3)),
            suite_after: Some(Duration::from_secs(4)),
            sending_after: None,
            off_after: None,
            run_summary: None,
            elapsed: Duration::from_secs(900),
            console_tail: vec!["PASS a (1 ms)".into()],
            qemu_errors: String::new(),
        };
        let why = failure(&report, Some(frame::FrameError::NoBegin));
        assert!(
            why.starts_with("the time limit passed after 900 s"),
            "{why}"
        );
        assert!(why.contains("no begin marker"), "{why}");
        assert!(why.ends_with("\n    PASS a (1 ms)"), "{why}");
    }

    #[test]
    fn every_tcg_boot_and_a_kvm_boot_with_a_fallback_have_a_boot_limit() {
        assert_eq!(
            boot_limit(Accel::Tcg, AccelChoice::Auto),
            Some(TCG_BOOT_LIMIT)
        );
        assert_eq!(
            boot_limit(Accel::Tcg, AccelChoice::Tcg),
            Some(TCG_BOOT_LIMIT)
        );
        assert_eq!(
            boot_limit(Accel::Kvm, AccelChoice::Auto),
            Some(KVM_BOOT_LIMIT)
        );
        assert_eq!(boot_limit(Accel::Kvm, AccelChoice::Kvm), None);
    }

    #[test]
    fn a_boot_stopped_at_its_limit_says_so() {
        let report = attempt::Report {
            ending: Ending::NoBoot,
            booted_after: None,
            suite_after: None,
            sending_after: None,
            off_after: None,
            run_summary: None,
            elapsed: Duration::from_secs(120),
            console_tail: Vec::new(),
            qemu_errors: String::new(),
        };
        let why = failure(&report, None);
        assert!(
            why.starts_with("the guest's init had not started after 120 s and QEMU was stopped"),
            "{why}"
        );
    }
}
