//! What `nsconform vm` does and says at the end: the results file written with the `vm`
//! object added, the counts of the run inside, and the timing figures as one line of
//! `name=value` words for benchmarks:
//!
//! ```text
//! nsconform vm: figures: mode=run kernel=6.1.0-57-cloud-amd64 accel=tcg scenarios=6 attempts=1 initramfs_s=0.05 init_s=2.71 qemu_s=4.90 total_s=5.21
//! ```
//!
//! `initramfs_s` is the time spent writing the initramfs, `init_s` from starting QEMU to the
//! guest's init starting (the kernel's boot), `qemu_s` from starting QEMU to its exit (with
//! `mode=boot-only`, where init powers off at once: the bare boot), and `total_s` from the
//! start of the command to its end (the round trip). Times are in seconds; one that is not
//! known is `?`.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::attempt::Report;
use super::frame::Frame;
use super::host::{say, NO_RESULTS};
use crate::results::{Results, VmRun};

/// The few numbers of a run's outcome shown at the end.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    /// The guest's kernel release, as the run inside saw it.
    pub(crate) kernel: String,
    /// Scenarios that passed.
    pub(crate) passed: u64,
    /// Scenarios that failed.
    pub(crate) failed: u64,
    /// Scenarios skipped.
    pub(crate) skipped: u64,
    /// Invalid scenario files.
    pub(crate) invalid: u64,
    /// How long the run took inside, when known.
    pub(crate) duration_ms: Option<u64>,
}

impl Summary {
    /// The summary of a results file.
    pub(crate) fn of(payload: &[u8]) -> Summary {
        let value: serde_json::Value = serde_json::from_slice(payload).unwrap_or_default();
        let number = |key: &str| value["summary"][key].as_u64().unwrap_or(0);
        Summary {
            kernel: value["machine"]["kernel_release"]
                .as_str()
                .unwrap_or("guest")
                .to_string(),
            passed: number("passed"),
            failed: number("failed"),
            skipped: number("skipped"),
            invalid: number("invalid"),
            duration_ms: value["summary"]["duration_ms"].as_u64(),
        }
    }

    /// The summary of a run without a results file, from the line it ended with
    /// (`2 passed, 0 failed, 0 skipped, 0 invalid`); `None` when that is not such a line.
    pub(crate) fn of_line(line: &str, kernel: &str) -> Option<Summary> {
        let numbers: Vec<u64> = line
            .split_whitespace()
            .step_by(2)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let [passed, failed, skipped, invalid] = numbers[..] else {
            return None;
        };
        super::attempt::is_run_summary(line).then(|| Summary {
            kernel: kernel.to_string(),
            passed,
            failed,
            skipped,
            invalid,
            duration_ms: None,
        })
    }
}

/// What was measured, for the `figures:` line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Figures {
    /// `run`, or `boot-only` for `--boot-only`.
    pub(crate) mode: &'static str,
    /// The kernel's release (or image).
    pub(crate) kernel: String,
    /// `kvm` or `tcg`.
    pub(crate) accel: String,
    /// Scenarios in the guest.
    pub(crate) scenarios: usize,
    /// Boots it took (2 after a retry).
    pub(crate) attempts: u32,
    /// Writing the initramfs.
    pub(crate) initramfs: Duration,
    /// QEMU start to the guest's init starting.
    pub(crate) init: Option<Duration>,
    /// QEMU start to its exit.
    pub(crate) qemu: Duration,
    /// The whole command, start to end.
    pub(crate) total: Duration,
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = |d: Duration| format!("{:.2}", d.as_secs_f64());
        write!(
            f,
            "figures: mode={} kernel={} accel={} scenarios={} attempts={} initramfs_s={} \
             init_s={} qemu_s={} total_s={}",
            self.mode,
            self.kernel.replace(char::is_whitespace, "_"),
            self.accel,
            self.scenarios,
            self.attempts,
            seconds(self.initramfs),
            self.init.map_or("?".to_string(), seconds),
            seconds(self.qemu),
            seconds(self.total),
        )
    }
}

/// Write the results (with the `vm` object added), summarise, and pass the suite's status on.
pub(super) fn finish(
    results: Option<&Path>,
    started: Instant,
    frame: &Frame,
    report: &Report,
    run: VmRun,
) -> u8 {
    if results.is_some() && frame.payload.is_empty() {
        say(&format!(
            "the run inside wrote no results file (exit {})",
            frame.exit
        ));
        return frame.exit.max(NO_RESULTS);
    }
    if let Some(path) = results {
        let written = match with_vm_run(&frame.payload, run.clone()) {
            Ok(text) => std::fs::write(path, text),
            Err(err) => {
                say(&format!(
                    "the results file is not in the expected schema ({err}); written as it came"
                ));
                std::fs::write(path, &frame.payload)
            }
        };
        if let Err(err) = written {
            say(&format!("cannot write {}: {err}", path.display()));
            return NO_RESULTS;
        }
    }
    // Without a results file, the run's own last line says what happened.
    let kernel = run.kernel.as_deref().unwrap_or("guest");
    let summary = match frame.payload.is_empty() {
        false => Some(Summary::of(&frame.payload)),
        true => report
            .run_summary
            .as_deref()
            .and_then(|line| Summary::of_line(line, kernel)),
    };
    let Some(summary) = summary else {
        say(&format!(
            "the run inside ended with exit {} without its summary line",
            frame.exit
        ));
        return frame.exit.max(NO_RESULTS);
    };
    // The suite's duration: as the run measured it, else from the console.
    let suite = summary
        .duration_ms
        .map(Duration::from_millis)
        .or_else(|| Some(report.sending_after? - report.suite_after?));
    say(&format!(
        "{}: {} passed, {} failed, {} skipped, {} invalid; kernel booted (init) at {}, suite \
         started at {}, suite {}, VM {:.1} s, whole command {:.1} s{}",
        summary.kernel,
        summary.passed,
        summary.failed,
        summary.skipped,
        summary.invalid,
        seconds(report.booted_after),
        seconds(report.suite_after),
        seconds(suite),
        report.elapsed.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        results.map_or(String::new(), |p| format!("; results in {}", p.display())),
    ));
    frame.exit
}

/// `1.2 s`, or `?`.
pub(super) fn seconds(duration: Option<Duration>) -> String {
    duration.map_or("?".to_string(), |d| format!("{:.1} s", d.as_secs_f64()))
}

/// The results file with the `vm` object (how the VM run went) added.
fn with_vm_run(payload: &[u8], run: VmRun) -> Result<String, serde_json::Error> {
    let mut results: Results = serde_json::from_slice(payload)?;
    results.vm = Some(run);
    Ok(serde_json::to_string_pretty(&results)? + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_read_from_a_results_file() {
        let payload = br#"{"machine": {"kernel_release": "6.1.0-57-cloud-amd64"},
            "summary": {"passed": 80, "failed": 1, "skipped": 2, "invalid": 0, "duration_ms": 150000}}"#;
        assert_eq!(
            Summary::of(payload),
            Summary {
                kernel: "6.1.0-57-cloud-amd64".into(),
                passed: 80,
                failed: 1,
                skipped: 2,
                invalid: 0,
                duration_ms: Some(150_000),
            }
        );
        assert_eq!(Summary::of(b"not json").kernel, "guest");
    }

    #[test]
    fn the_summary_is_read_from_the_run_s_last_line() {
        let summary = Summary::of_line("5 passed, 1 failed, 0 skipped, 2 invalid", "6.1").unwrap();
        assert_eq!((summary.passed, summary.failed, summary.invalid), (5, 1, 2));
        assert_eq!(summary.kernel, "6.1");
        assert_eq!(Summary::of_line("5 passed, 1 failed", "6.1"), None);
        assert_eq!(Summary::of_line("a b c d e f g h", "6.1"), None);
    }

    #[test]
    fn figures_are_one_line_of_names_and_values() {
        let figures = Figures {
            mode: "boot-only",
            kernel: "6.1.0-57-cloud-amd64".into(),
            accel: "tcg".into(),
            scenarios: 0,
            attempts: 1,
            initramfs: Duration::from_millis(40),
            init: None,
            qemu: Duration::from_millis(3051),
            total: Duration::from_millis(3322),
        };
        assert_eq!(
            figures.to_string(),
            "figures: mode=boot-only kernel=6.1.0-57-cloud-amd64 accel=tcg scenarios=0 \
             attempts=1 initramfs_s=0.04 init_s=? qemu_s=3.05 total_s=3.32"
        );
    }
}
