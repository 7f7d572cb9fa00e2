//! The phase log: when `NSCONFORM_PHASE_LOG` names a file, every process of a run (runner,
//! supervisors, orchestrators, actors) appends a line there as it passes a phase of a
//! scenario — `MICROSECONDS PID PHASE`, the time on the monotonic clock, which all processes
//! share. `ci/bench.sh` turns it into the per-phase breakdown in docs/performance.md.
//! Without the variable nothing is written.

use std::io::Write;
use std::sync::OnceLock;

/// The variable naming the log file.
pub(crate) const PHASE_LOG_ENV: &str = "NSCONFORM_PHASE_LOG";

/// Record that this process reached `phase`.
pub(crate) fn mark(phase: &str) {
    static FILE: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    let Some(path) = FILE.get_or_init(|| std::env::var_os(PHASE_LOG_ENV).map(Into::into)) else {
        return;
    };
    let Ok(now) = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) else {
        return;
    };
    let micros = now.tv_sec() * 1_000_000 + now.tv_nsec() / 1000;
    // One write per line (O_APPEND), so lines from several processes do not interleave.
    let line = format!("{micros} {} {phase}\n", std::process::id());
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
    {
        let _ = file.write_all(line.as_bytes());
    }
}
