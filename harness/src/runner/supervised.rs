//! Running one scenario in a supervisor process: a warm one from the pool when the runner
//! keeps one, else a cold `__supervise`; its report read back within a backstop time.

use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::gather;
use super::{Runner, ScenarioFile};
use crate::report::{Outcome, ScenarioReport};
use crate::scenario::load_file;
use crate::supervisor::{timeout_of, timeout_scale, Assignment, DEFAULT_TIMEOUT};

/// Run `file` in a supervisor, telling `started_fn` and then `ended_fn` its PID.
pub(super) fn run(
    runner: &Runner,
    file: &ScenarioFile,
    started_fn: &dyn Fn(u32),
    ended_fn: &dyn Fn(u32),
) -> ScenarioReport {
    let exe = &runner.exe;
    let started = Instant::now();
    let failure = |reason: String| ScenarioReport {
        name: file.name.clone(),
        path: file.path.display().to_string(),
        outcome: Outcome::Failed { step: None, reason },
        steps: Vec::new(),
        duration_ms: started.elapsed().as_millis() as u64,
        log: String::new(),
        snapshot: false,
        tool: None,
    };
    crate::phase_log::mark("runner: scenario started");
    let mut child = match start_supervisor(runner, file) {
        Ok(child) => child,
        Err(err) => return failure(format!("cannot start {}: {err}", exe.display())),
    };
    started_fn(child.id());
    // Read while the supervisor starts: the scenario's own limit, for the backstop.
    let limit = load_file(&file.path)
        .map(|l| timeout_of(&l))
        .unwrap_or(DEFAULT_TIMEOUT.mul_f64(timeout_scale()));
    let backstop = limit + Duration::from_secs(30);
    let gathered = gather::gather(&child, backstop);
    if gathered.overdue {
        let _ = child.kill();
    }
    // A supervisor that printed its report has cleaned up; its exit need not be waited for.
    let status = match (&runner.warm, gathered.has_report() && !gathered.overdue) {
        (Some(pool), true) => {
            let pid = child.id();
            pool.reap_later(child);
            ended_fn(pid);
            None
        }
        _ => {
            let status = child.wait().ok();
            ended_fn(child.id());
            status
        }
    };
    let log = String::from_utf8_lossy(&gathered.log).into_owned();
    if gathered.overdue {
        return failure(format!(
            "the supervisor did not end within {} s and was killed\n{log}",
            backstop.as_secs()
        ));
    }
    crate::phase_log::mark("runner: report read");
    match serde_json::from_slice::<ScenarioReport>(&gathered.out) {
        Ok(mut report) => {
            report.log.push_str(&log);
            report
        }
        Err(err) => failure(format!(
            "the supervisor ({}) gave no report ({err})\n{log}",
            status.map_or_else(|| "still running".to_string(), |s| s.to_string())
        )),
    }
}

/// A supervisor running `file`: a warm one told its scenario (and this thread's next one
/// started), or else a cold `__supervise` of the file.
fn start_supervisor(runner: &Runner, file: &ScenarioFile) -> std::io::Result<Child> {
    let Some(pool) = &runner.warm else {
        return runner
            .command()
            .arg("__supervise")
            .arg("--name")
            .arg(&file.name)
            .arg(&file.path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
    };
    let assignment = Assignment {
        name: file.name.clone(),
        path: file.path.clone(),
    };
    let mut line = serde_json::to_vec(&assignment).map_err(std::io::Error::other)?;
    line.push(b'\n');
    // A warm supervisor that died while waiting takes no scenario: start another.
    let mut warm = pool.take();
    let told = warm.as_mut().is_some_and(|w| tell(w, &line).is_ok());
    let mut child = match warm {
        Some(warm) if told => warm,
        stale => {
            if let Some(mut stale) = stale {
                // At the end of its input a warm supervisor still alive removes its stand-in.
                drop(stale.stdin.take());
                let _ = stale.wait();
            }
            pool.claim();
            let mut fresh = spawn_warm(runner, false)?;
            tell(&mut fresh, &line)?;
            fresh
        }
    };
    drop(child.stdin.take());
    if pool.claim() {
        // A failure here only means the next scenario starts cold.
        if let Ok(next) = spawn_warm(runner, true) {
            pool.put(next);
        }
    }
    Ok(child)
}

/// The nice value a warm supervisor waits at: while it makes its stand-in host, the scenario
/// in flight (on 2 cores, the thing it competes with) goes first. Only as root, which can
/// bring it back to 0 when its scenario comes.
const WARM_NICE: i32 = 19;

/// Start a supervisor; `in_background` when its scenario is not there yet.
fn spawn_warm(runner: &Runner, in_background: bool) -> std::io::Result<Child> {
    let child = runner
        .command()
        .args(["__supervise", "--warm"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if in_background && nix::unistd::geteuid().is_root() {
        let _ = crate::sys::set_nice(nix::unistd::Pid::from_raw(child.id() as i32), WARM_NICE);
    }
    Ok(child)
}

/// Give `child` its scenario, at the normal nice value (as root: see [`WARM_NICE`]).
fn tell(child: &mut Child, line: &[u8]) -> std::io::Result<()> {
    if nix::unistd::geteuid().is_root() {
        let _ = crate::sys::set_nice(nix::unistd::Pid::from_raw(child.id() as i32), 0);
    }
    match child.stdin.as_mut() {
        Some(stdin) => stdin.write_all(line),
        None => Err(std::io::Error::other("no input")),
    }
}
