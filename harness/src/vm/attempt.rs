//! One boot: start QEMU, show the guest's console as progress, stop at the deadline.
//!
//! The console (QEMU's standard output) is read on a thread and saved to `console.log` in
//! the work directory. Each line is shown with the time since QEMU started; a scenario's
//! outcome line (`PASS name (12 ms)`) also gets a count (`[12/83]`), and a quiet stretch
//! gets a "still running" line every minute, so a long run under TCG shows it is alive.
//! QEMU's standard error goes to `qemu.log`.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::guest::{BANNER, POWER_OFF, RUNNING, SENDING};

/// Errors starting QEMU.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttemptError {
    /// QEMU could not be started, or its logs not created.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// How a boot ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// QEMU exited by itself (the guest powered off, panicked or QEMU failed).
    Exited(ExitStatus),
    /// The deadline came first; QEMU was killed.
    TimedOut,
    /// `boot_limit` passed without the guest's init starting; QEMU was killed.
    NoBoot,
}

/// What one boot did.
#[derive(Debug)]
pub(crate) struct Report {
    /// How it ended.
    pub(crate) ending: Ending,
    /// Time from starting QEMU to the guest's init saying it started.
    pub(crate) booted_after: Option<Duration>,
    /// Time from starting QEMU to the suite starting inside.
    pub(crate) suite_after: Option<Duration>,
    /// Time from starting QEMU to the guest starting to send its results.
    pub(crate) sending_after: Option<Duration>,
    /// Time from starting QEMU to the guest's init powering off.
    pub(crate) off_after: Option<Duration>,
    /// The run's own summary line (`2 passed, 0 failed, 0 skipped, 0 invalid`), the last seen.
    pub(crate) run_summary: Option<String>,
    /// Time from starting QEMU to its exit (or kill).
    pub(crate) elapsed: Duration,
    /// The last lines of the console.
    pub(crate) console_tail: Vec<String>,
    /// The start of QEMU's standard error (where it says why it failed).
    pub(crate) qemu_errors: String,
}

/// How to watch one boot.
pub(crate) struct Watch<'a> {
    /// Where `console.log` and `qemu.log` go.
    pub(crate) dir: &'a Path,
    /// When to give up and kill QEMU.
    pub(crate) deadline: Instant,
    /// Kill QEMU when init has not started after this long (used when trying KVM).
    pub(crate) boot_limit: Option<Duration>,
    /// Scenarios to expect, for the `[n/total]` counts.
    pub(crate) total: usize,
}

/// Lines kept for [`Report::console_tail`].
const TAIL: usize = 15;
/// A quiet stretch longer than this gets a "still running" line.
const QUIET: Duration = Duration::from_secs(60);

/// Run `command` (a QEMU command) and watch it until it exits or a limit passes.
pub(crate) fn run(mut command: Command, watch: &Watch<'_>) -> Result<Report, AttemptError> {
    let console_path = watch.dir.join("console.log");
    let qemu_log = watch.dir.join("qemu.log");
    let mut console = File::create(&console_path).map_err(|e| io(&console_path, e))?;
    let stderr = File::create(&qemu_log).map_err(|e| io(&qemu_log, e))?;
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|source| AttemptError::Io {
            what: format!("cannot start {}", super::qemu::QEMU),
            source,
        })?;
    let (sender, lines) = mpsc::channel::<String>();
    let reader = child.stdout.take().map(|stdout| {
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
                let line = String::from_utf8_lossy(&line)
                    .trim_end_matches('\r')
                    .to_string();
                if sender.send(line).is_err() {
                    break;
                }
            }
        })
    });
    let mut progress = Progress::new(started, watch.total);
    let mut tail: Vec<String> = Vec::new();
    let ending = loop {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let _ = writeln!(console, "{line}");
                progress.line(&line);
                tail.push(line);
                if tail.len() > TAIL {
                    tail.remove(0);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => progress.quiet(),
            Err(mpsc::RecvTimeoutError::Disconnected) => {}
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Ending::Exited(status);
        }
        let now = Instant::now();
        if now >= watch.deadline {
            break Ending::TimedOut;
        }
        if watch
            .boot_limit
            .is_some_and(|limit| progress.booted.is_none() && now - started >= limit)
        {
            break Ending::NoBoot;
        }
    };
    if matches!(ending, Ending::TimedOut | Ending::NoBoot) {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some(reader) = reader {
        let _ = reader.join();
    }
    // Lines that arrived after the exit was noticed.
    for line in lines.try_iter() {
        let _ = writeln!(console, "{line}");
        progress.line(&line);
        tail.push(line);
    }
    let skip = tail.len().saturating_sub(TAIL);
    Ok(Report {
        ending,
        booted_after: progress.booted,
        suite_after: progress.suite,
        sending_after: progress.sending,
        off_after: progress.off,
        run_summary: progress.summary,
        elapsed: started.elapsed(),
        console_tail: tail.split_off(skip),
        qemu_errors: first_lines(&qemu_log, 5),
    })
}

fn io(path: &Path, source: std::io::Error) -> AttemptError {
    AttemptError::Io {
        what: path.display().to_string(),
        source,
    }
}

/// The first `count` lines of a file, joined with "; ".
fn first_lines(path: &PathBuf, count: usize) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .take(count)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What has been shown so far.
struct Progress {
    started: Instant,
    last_output: Instant,
    total: usize,
    done: usize,
    booted: Option<Duration>,
    suite: Option<Duration>,
    sending: Option<Duration>,
    off: Option<Duration>,
    summary: Option<String>,
}

impl Progress {
    fn new(started: Instant, total: usize) -> Progress {
        Progress {
            started,
            last_output: started,
            total,
            done: 0,
            booted: None,
            suite: None,
            sending: None,
            off: None,
            summary: None,
        }
    }

    /// Show a console line.
    fn line(&mut self, line: &str) {
        let elapsed = self.started.elapsed();
        self.last_output = Instant::now();
        if line.starts_with(BANNER) && self.booted.is_none() {
            self.booted = Some(elapsed);
        }
        if line.starts_with(RUNNING) && self.suite.is_none() {
            self.suite = Some(elapsed);
        }
        if line.starts_with(SENDING) && self.sending.is_none() {
            self.sending = Some(elapsed);
        }
        if line.starts_with(POWER_OFF) && self.off.is_none() {
            self.off = Some(elapsed);
        }
        if is_run_summary(line) {
            self.summary = Some(line.to_string());
        }
        let count = if is_outcome(line) {
            self.done += 1;
            format!("[{}/{}] ", self.done, self.total)
        } else {
            String::new()
        };
        show(&format!("{} {count}{line}", stamp(elapsed)));
    }

    /// Nothing came for a while: say that the VM is still working.
    fn quiet(&mut self) {
        if self.last_output.elapsed() >= QUIET {
            self.last_output = Instant::now();
            let state = match self.booted {
                None => "still booting".to_string(),
                Some(_) => format!(
                    "still running ({} of {} scenarios done)",
                    self.done, self.total
                ),
            };
            show(&format!("{} {state}", stamp(self.started.elapsed())));
        }
    }
}

/// A line on standard output; a reader that went away (`| head`) does not stop the VM.
pub(crate) fn show(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
}

/// `[  12.3s]`.
fn stamp(elapsed: Duration) -> String {
    format!("[{:>7.1}s]", elapsed.as_secs_f64())
}

/// Whether a line is a scenario's outcome as `nsconform run` prints it.
pub(crate) fn is_outcome(line: &str) -> bool {
    ["PASS ", "FAIL ", "SKIP ", "BAD  "]
        .iter()
        .any(|word| line.starts_with(word))
}

/// Whether a line is the summary `nsconform run` ends with
/// (`2 passed, 0 failed, 0 skipped, 0 invalid`).
pub(crate) fn is_run_summary(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    words.len() == 8
        && words
            .chunks(2)
            .zip(["passed,", "failed,", "skipped,", "invalid"])
            .all(|(pair, word)| pair[0].parse::<u64>().is_ok() && pair[1] == word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_lines_are_recognised() {
        assert!(is_outcome("PASS uts/hostname-isolated (41 ms)"));
        assert!(is_outcome("SKIP net/ipvlan (0 ms): no ipvlan"));
        assert!(is_outcome("BAD  x (0 ms)"));
        assert!(!is_outcome("    step 2 at x.toml:10"));
        assert!(!is_outcome("PASSED"));
    }

    #[test]
    fn the_run_summary_line_is_recognised() {
        assert!(is_run_summary("2 passed, 0 failed, 1 skipped, 0 invalid"));
        assert!(!is_run_summary("2 passed, 0 failed, 1 skipped"));
        assert!(!is_run_summary("x passed, 0 failed, 1 skipped, 0 invalid"));
        assert!(!is_run_summary("PASS uts/hostname-isolated (41 ms)"));
    }

    #[test]
    fn a_command_is_watched_until_it_exits() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "echo 'nsconform-vm: init started'; echo 'nsconform-vm: running the suite'; \
             echo 'PASS a (1 ms)'; echo '1 passed, 0 failed, 0 skipped, 0 invalid'; \
             echo 'nsconform-vm: sending results'; echo 'nsconform-vm: powering off'; \
             echo oops >&2",
        ]);
        let watch = Watch {
            dir: dir.path(),
            deadline: Instant::now() + Duration::from_secs(30),
            boot_limit: None,
            total: 1,
        };
        let report = run(command, &watch).unwrap();
        assert!(matches!(report.ending, Ending::Exited(status) if status.success()));
        assert!(report.booted_after.is_some());
        assert!(report.suite_after.is_some());
        assert!(report.sending_after.is_some());
        assert!(report.off_after.is_some());
        assert_eq!(
            report.run_summary.as_deref(),
            Some("1 passed, 0 failed, 0 skipped, 0 invalid")
        );
        assert_eq!(
            report.console_tail.last().map(String::as_str),
            Some("nsconform-vm: powering off")
        );
        assert_eq!(report.qemu_errors, "oops");
        let log = std::fs::read_to_string(dir.path().join("console.log")).unwrap();
        assert!(log.contains("suite\nPASS a (1 ms)\n1 passed"), "{log}");
    }

    #[test]
    fn a_command_past_its_deadline_or_boot_limit_is_killed() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new("sleep");
        command.arg("30");
        let watch = Watch {
            dir: dir.path(),
            deadline: Instant::now() + Duration::from_millis(300),
            boot_limit: None,
            total: 0,
        };
        let report = run(command, &watch).unwrap();
        assert_eq!(report.ending, Ending::TimedOut);
        assert!(report.elapsed < Duration::from_secs(10));
        let mut command = Command::new("sleep");
        command.arg("30");
        let watch = Watch {
            boot_limit: Some(Duration::from_millis(300)),
            deadline: Instant::now() + Duration::from_secs(30),
            ..watch
        };
        assert_eq!(run(command, &watch).unwrap().ending, Ending::NoBoot);
    }
}
