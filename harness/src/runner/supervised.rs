//! Running one scenario in a supervisor process: a warm one from the pool when the runner
//! keeps one, else a cold `__supervise`; its report and then its cleanup's verdict read
//! back within a backstop time.

use std::time::{Duration, Instant};

use super::gather::{self, Gathered};
use super::process::Supervisor;
use super::start::{let_run, start_supervisor};
use super::{Runner, ScenarioFile};
use crate::report::{Outcome, ScenarioReport};
use crate::scenario::load_file;
use crate::supervisor::{timeout_of, timeout_scale, CleanupVerdict, DEFAULT_TIMEOUT};

/// A scenario given to its supervisor.
pub(super) struct Flight<'r> {
    runner: &'r Runner,
    name: String,
    path: String,
    started: Instant,
    /// The supervisor, until it printed its last line or was given up on.
    child: Option<Supervisor>,
    /// Whether `started_fn` was told of it (the runner's own children only: see
    /// [`Supervisor::is_child`]), so `ended_fn` must be.
    tracked: bool,
    deadline: Instant,
    backstop: Duration,
    /// Given out ahead of its turn and not let run yet (see [`Flight::go`]).
    held: bool,
    gathered: Gathered,
    /// The report, once read (its cleanup may still be going on), or why there is none.
    report: Option<ScenarioReport>,
}

impl<'r> Flight<'r> {
    /// Give `file` to a supervisor, telling `started_fn` its PID; `turn` is its number
    /// among this thread's scenarios (0: none, see `turns.rs`). With `hold`, the scenario
    /// is only made ready to run, ahead of its turn: [`Flight::go`] lets it run, unless
    /// the end of the turn before did already.
    pub(super) fn start(
        runner: &'r Runner,
        file: &ScenarioFile,
        started_fn: &dyn Fn(u32),
        turn: u64,
        hold: bool,
    ) -> Flight<'r> {
        crate::phase_log::mark(match hold {
            true => "runner: scenario held",
            false => "runner: scenario started",
        });
        let started = Instant::now();
        let child = start_supervisor(runner, file, turn, hold);
        let tracked = child.as_ref().is_ok_and(Supervisor::is_child);
        if let (Ok(child), true) = (&child, tracked) {
            started_fn(child.id());
        }
        // The scenario's own limit, for the backstop: known ahead, or read while the
        // supervisor starts.
        let limit = runner.limits.get(&file.path).copied().unwrap_or_else(|| {
            load_file(&file.path)
                .map(|l| timeout_of(&l))
                .unwrap_or(DEFAULT_TIMEOUT.mul_f64(timeout_scale()))
        });
        let backstop = limit + Duration::from_secs(30);
        let mut flight = Flight {
            runner,
            name: file.name.clone(),
            path: file.path.display().to_string(),
            started,
            child: None,
            tracked,
            deadline: started + backstop,
            backstop,
            held: hold,
            gathered: Gathered::default(),
            report: None,
        };
        match child {
            Ok(child) => flight.child = Some(child),
            Err(err) => {
                let reason = format!("cannot start {}: {err}", runner.exe.display());
                flight.report = Some(flight.failure(reason));
            }
        }
        flight
    }

    /// Let a scenario given out ahead of its turn run now; its time limit counts from here.
    /// A supervisor that cannot be told is gone: waiting for its report says why.
    pub(super) fn go(&mut self) {
        if !std::mem::take(&mut self.held) {
            return;
        }
        crate::phase_log::mark("runner: held scenario let run");
        self.started = Instant::now();
        self.deadline = self.started + self.backstop;
        if let Some(child) = self.child.as_mut() {
            let _ = let_run(child);
        }
    }

    /// Take back a scenario given out ahead of its turn, which will not run (the run was
    /// interrupted): at the end of its input its supervisor removes what it made for it and
    /// exits, reporting nothing.
    pub(super) fn withdraw(mut self, ended_fn: &dyn Fn(u32)) {
        if let Some(mut child) = self.child.take() {
            child.end();
            if self.tracked {
                ended_fn(child.id());
            }
        }
    }

    /// Wait for the scenario's report; the supervisor may still be cleaning up after it.
    pub(super) fn wait_report(&mut self, ended_fn: &dyn Fn(u32)) {
        let Some(child) = self.child.as_ref().filter(|_| self.report.is_none()) else {
            return;
        };
        gather::gather(child, self.deadline, 1, &mut self.gathered);
        let Some(line) = self.gathered.line(0) else {
            return self.give_up(None, ended_fn);
        };
        match serde_json::from_slice::<ScenarioReport>(line) {
            Ok(report) => {
                crate::phase_log::mark("runner: report read");
                self.report = Some(report);
            }
            Err(err) => self.give_up(Some(format!("a garbled report ({err})")), ended_fn),
        }
    }

    /// Wait for the end of the supervisor's cleanup, and give the scenario's final report:
    /// a cleanup that failed fails a scenario that passed.
    pub(super) fn finish(mut self, ended_fn: &dyn Fn(u32)) -> ScenarioReport {
        self.wait_report(ended_fn);
        let Some(child) = &self.child else {
            return self.into_report();
        };
        gather::gather(child, self.deadline, 2, &mut self.gathered);
        let verdict = self
            .gathered
            .line(1)
            .and_then(|line| serde_json::from_slice::<CleanupVerdict>(line).ok());
        let Some(verdict) = verdict.filter(|_| !self.gathered.overdue) else {
            self.give_up(Some("no verdict on its cleanup".into()), ended_fn);
            return self.into_report();
        };
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            // It printed its last line: a warm one serves another scenario, a cold one
            // exits, which need not be waited for here.
            match &self.runner.warm {
                Some(pool) => pool.recycle(child),
                None => {
                    child.wait();
                }
            }
            if self.tracked {
                ended_fn(pid);
            }
        }
        let log = String::from_utf8_lossy(&self.gathered.log).into_owned();
        let mut report = self.into_report();
        report.log.push_str(&log);
        if let (Outcome::Passed, Some(leak)) = (&report.outcome, verdict.cleanup) {
            report.outcome = Outcome::Failed {
                step: None,
                reason: format!("cleanup failed: {leak}"),
            };
        }
        report
    }

    /// Kill the supervisor if it is overdue and reap it: the scenario fails (when it had
    /// not failed already), saying what the supervisor did not give (`missing`, or else a
    /// report) and how it ended, with its log.
    fn give_up(&mut self, missing: Option<String>, ended_fn: &dyn Fn(u32)) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if self.gathered.overdue {
            child.kill();
        }
        let status = child.wait();
        // A supervisor killed (or dead) before its cleanup leaves its scenario's cgroups,
        // and maybe processes in them: they go now, and would otherwise be taken for a leak
        // when the PID comes back.
        let leftovers = crate::containment::Containment::remove_left_by(child.id());
        if self.tracked {
            ended_fn(child.id());
        }
        let log = String::from_utf8_lossy(&self.gathered.log);
        let log = match leftovers {
            Ok(()) => log.into_owned(),
            Err(leak) => format!("{log}cleanup of what it left failed: {leak}\n"),
        };
        let reason = if self.gathered.overdue {
            format!(
                "the supervisor did not end within {} s and was killed\n{log}",
                self.backstop.as_secs()
            )
        } else {
            let status = status.map_or_else(|| "ended".to_string(), |s| s.to_string());
            let missing = missing.unwrap_or_else(|| "no report".to_string());
            format!("the supervisor ({status}) gave {missing}\n{log}")
        };
        self.report = Some(match self.report.take() {
            None => self.failure(reason),
            Some(mut report) => {
                if matches!(report.outcome, Outcome::Passed) {
                    report.outcome = Outcome::Failed { step: None, reason };
                } else {
                    report.log.push_str(&reason);
                }
                report
            }
        });
    }

    fn failure(&self, reason: String) -> ScenarioReport {
        let failed = Outcome::Failed { step: None, reason };
        let mut report = ScenarioReport::new(self.name.clone(), self.path.clone(), failed);
        report.duration_ms = self.started.elapsed().as_millis() as u64;
        report
    }

    fn into_report(self) -> ScenarioReport {
        match self.report {
            Some(report) => report,
            None => self.failure("the supervisor was abandoned".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    use super::super::{Runner, ScenarioFile};
    use crate::report::{Outcome, ScenarioReport};

    /// A stand-in for the `nsconform` binary: a shell script that, whatever it is asked,
    /// prints `lines` (`{report}` is a passing report; a line that starts with `>&2 ` goes
    /// to standard error) and ends with `ending`.
    fn fake_binary(dir: &Path, lines: &[&str], ending: &str) -> PathBuf {
        let report =
            serde_json::to_string(&ScenarioReport::new("fake", "fake.toml", Outcome::Passed))
                .expect("encode");
        let mut script = String::from("#!/bin/sh\n[ \"$1\" = --ready ] && exit 0\n");
        script.push_str("[ \"$2\" = --server ] && exit 1\n");
        script.push_str("[ \"$2\" = --warm ] && read -r line\n");
        // A scenario given out ahead of its turn waits for its go, as a supervisor does.
        script.push_str(
            "case \"$line\" in *'\"hold\":true'*) read -r go; [ \"$go\" = go ] || exit 7;; esac\n",
        );
        for line in lines {
            let line = line.replace("{report}", &report);
            match line.strip_prefix(">&2 ") {
                Some(log) => script.push_str(&format!("printf '%s\\n' '{log}' >&2\n")),
                None => script.push_str(&format!("printf '%s\\n' '{line}'\n")),
            }
        }
        script.push_str(ending);
        script.push('\n');
        let path = dir.join("nsconform");
        std::fs::write(&path, script).expect("write the fake binary");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        // A process another test thread forked while the file was open for writing holds
        // it until its own exec (ETXTBSY meanwhile); once an exec works, none can again.
        for _ in 0..1000 {
            match std::process::Command::new(&path).arg("--ready").status() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                _ => break,
            }
        }
        path
    }

    fn file(dir: &Path, name: &str) -> ScenarioFile {
        ScenarioFile {
            name: name.into(),
            path: dir.join(format!("{name}.toml")),
        }
    }

    fn reason(report: &ScenarioReport) -> String {
        match &report.outcome {
            Outcome::Failed { reason, .. } => reason.clone(),
            other => format!("not a failure: {other:?}"),
        }
    }

    #[test]
    fn a_clean_cleanup_leaves_the_report_as_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = fake_binary(dir.path(), &["{report}", r#"{"cleanup":null}"#], "exit 0");
        let report = Runner::new(exe).run(&file(dir.path(), "a"));
        assert_eq!(report.outcome, Outcome::Passed, "{}", report.log);
    }

    #[test]
    fn a_leak_in_the_cleanup_fails_a_scenario_that_passed() {
        let dir = tempfile::tempdir().expect("tempdir");
        // As a supervisor does: the log line, then the verdict.
        let exe = fake_binary(
            dir.path(),
            &[
                "{report}",
                ">&2 nsconform: cleanup failed: a veth was left",
                r#"{"cleanup":"a veth was left"}"#,
            ],
            "exit 0",
        );
        let report = Runner::new(exe).run(&file(dir.path(), "a"));
        assert_eq!(reason(&report), "cleanup failed: a veth was left");
        assert!(report.log.contains("cleanup failed"), "{}", report.log);
    }

    #[test]
    fn a_supervisor_that_ends_after_its_report_without_a_verdict_fails_the_scenario() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = fake_binary(dir.path(), &["{report}"], "exit 3");
        let report = Runner::new(exe).run(&file(dir.path(), "a"));
        let reason = reason(&report);
        assert!(
            reason.contains("gave no verdict on its cleanup") && reason.contains('3'),
            "{reason}"
        );
    }

    #[test]
    fn a_supervisor_without_a_report_fails_the_scenario_with_its_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = fake_binary(dir.path(), &[], "echo 'it broke' >&2; exit 4");
        let report = Runner::new(exe).run(&file(dir.path(), "a"));
        let reason = reason(&report);
        assert!(
            reason.contains("gave no report") && reason.contains("it broke"),
            "{reason}"
        );
    }

    #[test]
    fn run_each_gives_every_final_report_in_order_with_warm_supervisors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = fake_binary(
            dir.path(),
            &["{report}", r#"{"cleanup":"left over"}"#],
            "exit 0",
        );
        let runner = Runner::new(exe).with_warm_supervisors(Some(3));
        let files: Vec<ScenarioFile> = ["a", "b", "c"]
            .iter()
            .map(|n| file(dir.path(), n))
            .collect();
        let mut queue = files.iter();
        let started = std::sync::Mutex::new(Vec::new());
        let ended = std::sync::Mutex::new(Vec::new());
        let mut reports = Vec::new();
        runner.run_each(
            &mut || queue.next(),
            &|pid| started.lock().expect("lock").push(pid),
            &|pid| ended.lock().expect("lock").push(pid),
            &mut |report| reports.push(report),
        );
        runner.finish();
        assert_eq!(reports.len(), 3);
        for report in &reports {
            assert_eq!(reason(report), "cleanup failed: left over");
        }
        let mut started = started.into_inner().expect("lock");
        let mut ended = ended.into_inner().expect("lock");
        started.sort_unstable();
        ended.sort_unstable();
        assert_eq!(started.len(), 3);
        assert_eq!(started, ended, "every supervisor started is ended");
    }

    /// Scenarios known ready are given out ahead of their turn and let run in it: each
    /// supervisor (here a fake that waits for its go when held, and else exits without a
    /// report) gets its go, and every report comes back.
    #[test]
    fn run_each_lets_every_scenario_given_out_ahead_run_in_its_turn() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = fake_binary(dir.path(), &["{report}", r#"{"cleanup":null}"#], "exit 0");
        let files: Vec<ScenarioFile> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| file(dir.path(), n))
            .collect();
        let mut runner = Runner::new(exe).with_warm_supervisors(Some(files.len()));
        runner.ready = std::sync::Arc::new(files.iter().map(|f| f.path.clone()).collect());
        let mut queue = files.iter();
        let mut reports = Vec::new();
        runner.run_each(&mut || queue.next(), &|_| {}, &|_| {}, &mut |report| {
            reports.push(report)
        });
        runner.finish();
        assert_eq!(reports.len(), files.len());
        for report in &reports {
            assert_eq!(report.outcome, Outcome::Passed, "{}", report.log);
        }
    }
}
