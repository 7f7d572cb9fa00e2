//! `nsconform vm` end to end: boot a cached kernel under QEMU, run the UTS scenarios inside,
//! and check the results file that comes back.
//!
//! Ignored by default: it needs QEMU and a kernel — `NSCONFORM_VM_KERNEL` (an image, a
//! cache directory or a cached name), else the first kernel in the cache
//! (`nsconform kernels fetch 6.1`) — and takes about 30 s under TCG. Run it with
//! `cargo test --test vm -- --ignored`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The kernel to boot: `NSCONFORM_VM_KERNEL`, else the first cached kernel directory.
fn kernel() -> Option<String> {
    if let Some(kernel) = std::env::var_os("NSCONFORM_VM_KERNEL") {
        return Some(kernel.to_string_lossy().into_owned());
    }
    let cache = std::env::var_os("NSCONFORM_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| Path::new(&d).join("nsconform")))
        .or_else(|| std::env::var_os("HOME").map(|d| Path::new(&d).join(".cache/nsconform")))?;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cache.join("kernels"))
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|dir| dir.join("package.json").is_file() && dir.join("vmlinuz").is_file())
        .collect();
    dirs.sort();
    dirs.first().map(|dir| dir.display().to_string())
}

#[test]
#[ignore = "boots a VM (about 30 s under TCG); needs QEMU and a cached kernel \
            (`nsconform kernels fetch 6.1`) or NSCONFORM_VM_KERNEL; run with --ignored"]
fn a_kernel_boots_and_runs_scenarios_inside() {
    let Some(kernel) = kernel() else {
        panic!(
            "no kernel: set NSCONFORM_VM_KERNEL or run `nsconform kernels fetch 6.1` first \
             (this test is ignored by default for that reason)"
        );
    };
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
