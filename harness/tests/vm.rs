//! `nsconform vm` end to end: boot a cached kernel under QEMU, run the UTS scenarios inside,
//! and check the results file that comes back; run scenarios without a results file; boot
//! only, twice, the second time from the cached initramfs base.
//!
//! Ignored by default: they need QEMU and a kernel — `NSCONFORM_VM_KERNEL` (an image, a
//! cache directory or a cached name), else the first kernel in the cache
//! (`nsconform kernels fetch 6.1`) — and take about 30 s under TCG. Run them with
//! `cargo test --release --test vm -- --ignored`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The nsconform cache directory, as the harness finds it.
fn cache_dir() -> Option<PathBuf> {
    std::env::var_os("NSCONFORM_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| Path::new(&d).join("nsconform")))
        .or_else(|| std::env::var_os("HOME").map(|d| Path::new(&d).join(".cache/nsconform")))
}

/// The kernel to boot: `NSCONFORM_VM_KERNEL`, else the first cached kernel directory.
fn kernel() -> Option<String> {
    if let Some(kernel) = std::env::var_os("NSCONFORM_VM_KERNEL") {
        return Some(kernel.to_string_lossy().into_owned());
    }
    let cache = cache_dir()?;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cache.join("kernels"))
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|dir| dir.join("package.json").is_file() && dir.join("vmlinuz").is_file())
        .collect();
    dirs.sort();
    dirs.first().map(|dir| dir.display().to_string())
}

/// Held by each test while it boots: one VM at a time (they would share the CPUs, and a
/// small machine gets slow enough for timeouts otherwise).
static ONE_VM_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// One VM at a time (a test that failed while holding the lock does not stop the others).
fn one_vm() -> std::sync::MutexGuard<'static, ()> {
    ONE_VM_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The kernel, or a panic saying how to get one.
fn kernel_or_panic() -> String {
    kernel().unwrap_or_else(|| {
        panic!(
            "no kernel: set NSCONFORM_VM_KERNEL or run `nsconform kernels fetch 6.1` first \
             (these tests are ignored by default for that reason)"
        )
    })
}

/// The values of the `figures:` line that ends a VM run, by name.
fn figures(stdout: &str) -> std::collections::BTreeMap<String, String> {
    let line = stdout
        .lines()
        .rfind(|line| line.starts_with("nsconform vm: figures: "))
        .unwrap_or_else(|| panic!("no figures line:\n{stdout}"));
    line.split_whitespace()
        .filter_map(|word| word.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

#[test]
#[ignore = "boots a VM (about 30 s under TCG); needs QEMU and a cached kernel \
            (`nsconform kernels fetch 6.1`) or NSCONFORM_VM_KERNEL; run with --ignored"]
fn a_kernel_boots_and_runs_scenarios_inside() {
    let kernel = kernel_or_panic();
    let _vm = one_vm();
    let work = tempfile::tempdir().unwrap();
    let results = work.path().join("results.json");
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let output = Command::new(env!("CARGO_BIN_EXE_nsconform"))
        .args([
            "vm",
            "--kernel",
            &kernel,
            "--filter",
            "uts/",
            "--time-limit",
            "600",
        ])
        .arg("--results")
        .arg(&results)
        .arg(&scenarios)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "nsconform vm failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // Progress: every scenario's outcome with a count, and the boot.
    assert!(stdout.contains("nsconform-vm: init started"), "{stdout}");
    assert!(stdout.contains("[1/"), "{stdout}");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&results).unwrap()).unwrap();
    assert_eq!(record["schema"], "nsconform-results/1");
    // The results are the guest's: its kernel, not this machine's.
    let host_release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_ne!(record["machine"]["kernel_release"], host_release.trim());
    let summary = &record["summary"];
    assert!(summary["passed"].as_u64().unwrap() >= 5, "{summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    let names: Vec<&str> = record["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(names.contains(&"uts/hostname-isolated"), "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("uts/")), "{names:?}");
}

#[test]
#[ignore = "boots a VM (about 10 s under TCG); needs QEMU and a cached kernel \
            (`nsconform kernels fetch 6.1`) or NSCONFORM_VM_KERNEL; run with --ignored"]
fn without_a_results_file_the_outcome_comes_from_the_run_s_own_lines() {
    let kernel = kernel_or_panic();
    let _vm = one_vm();
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let output = Command::new(env!("CARGO_BIN_EXE_nsconform"))
        .args(["vm", "--kernel", &kernel, "--filter", "uts/hostname-"])
        .arg(&scenarios)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}:\n{stdout}", output.status);
    // The run inside sent only its exit status; the counts are its summary line's.
    assert!(
        stdout.contains("sending results (0 bytes, exit 0)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(": 2 passed, 0 failed, 0 skipped, 0 invalid; kernel booted"),
        "{stdout}"
    );
    let figures = figures(&stdout);
    assert_eq!(figures["mode"], "run", "{stdout}");
    assert_eq!(figures["scenarios"], "2", "{stdout}");
    for name in ["init_s", "qemu_s", "total_s"] {
        assert!(figures[name].parse::<f64>().is_ok(), "{name}: {stdout}");
    }
}

#[test]
#[ignore = "boots a VM twice (about 10 s under TCG); needs QEMU and a cached kernel \
            (`nsconform kernels fetch 6.1`) or NSCONFORM_VM_KERNEL; run with --ignored"]
fn a_bare_boot_powers_off_at_once_and_reuses_the_cached_initramfs_base() {
    let kernel = kernel_or_panic();
    let _vm = one_vm();
    // A cache of its own for the initramfs, with the kernels of the usual one.
    let cache = tempfile::tempdir().unwrap();
    if let Some(kernels) = cache_dir().map(|dir| dir.join("kernels")) {
        std::os::unix::fs::symlink(kernels, cache.path().join("kernels")).unwrap();
    }
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let boot = || {
        let output = Command::new(env!("CARGO_BIN_EXE_nsconform"))
            .args(["vm", "--kernel", &kernel, "--boot-only", "--filter", "uts/"])
            .arg(&scenarios)
            .env("NSCONFORM_CACHE", cache.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{}:\n{stdout}", output.status);
        stdout
    };
    let first = boot();
    assert!(first.contains("MB, built in"), "{first}");
    assert!(first.contains("nsconform-vm: powering off"), "{first}");
    assert!(!first.contains("running the suite"), "{first}");
    let figures = figures(&first);
    assert_eq!(figures["mode"], "boot-only", "{first}");
    assert!(figures["qemu_s"].parse::<f64>().unwrap() > 0.0, "{first}");
    let second = boot();
    assert!(second.contains("MB, cached base reused in"), "{second}");
    assert!(second.contains("bare boot of "), "{second}");
}
