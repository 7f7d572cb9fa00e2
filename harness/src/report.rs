//! What a scenario run produced: the outcome, a record per step, and how to show a failure.
//!
//! The orchestrator streams events (`Event`) to the supervisor while it works, so a scenario that
//! hangs is still reported with the step it hung in; the supervisor turns them into one
//! [`ScenarioReport`] for the runner.

use serde::{Deserialize, Serialize};

pub use crate::actor::protocol::Exit;

/// The outcome of one scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Every step behaved as the file says.
    Passed,
    /// A step did not behave as expected, or the scenario could not run.
    Failed {
        /// The failing step's number (1-based), when a step failed.
        step: Option<usize>,
        /// What went wrong, in one paragraph.
        reason: String,
    },
    /// A requirement is not met on this machine.
    Skipped {
        /// Which one, and why.
        reason: String,
    },
    /// The scenario file is not valid.
    Invalid {
        /// `file:line:column: message` lines.
        message: String,
    },
    /// The scenario ran past its timeout and everything it started was killed.
    TimedOut {
        /// The step that was running, when one was.
        step: Option<usize>,
        /// The limit, in milliseconds.
        limit_ms: u64,
    },
}

/// A difference between what a step expected and what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    /// What was compared: `status`, `stdout`, `stderr`, `error`.
    pub what: String,
    /// The expectation, placeholders expanded.
    pub expected: String,
    /// What happened.
    pub actual: String,
}

/// What one step did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 1-based step number.
    pub number: usize,
    /// Line of the step in the scenario file.
    pub line: usize,
    /// The actor that performed it.
    pub actor: String,
    /// The action in words: the command, the file written, the actor started.
    pub action: String,
    /// The step's `note`, if any.
    pub note: Option<String>,
    /// How the command ended (commands only).
    pub exit: Option<Exit>,
    /// Standard output (commands only).
    pub stdout: String,
    /// Standard error (commands only).
    pub stderr: String,
    /// The errno name for `write` and `start` steps that failed, or a harness error.
    pub error: Option<String>,
    /// Wall time in microseconds.
    pub duration_us: u64,
    /// Differences from the expectations; empty when the step passed.
    pub mismatches: Vec<Mismatch>,
    /// What an `observe` step observed (see `docs/observations.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<serde_json::Value>,
}

impl StepRecord {
    /// The record of a step that has begun and has no result yet.
    pub(crate) fn begun(number: usize, line: usize, actor: String, action: String) -> StepRecord {
        StepRecord {
            number,
            line,
            actor,
            action,
            note: None,
            exit: None,
            stdout: String::new(),
            stderr: String::new(),
            error: None,
            duration_us: 0,
            mismatches: Vec::new(),
            observation: None,
        }
    }
}

/// A message from the orchestrator to the supervisor (one JSON object per line).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Event {
    /// A step began.
    StepStarted {
        /// Its number.
        number: usize,
        /// Its line.
        line: usize,
        /// Its actor.
        actor: String,
        /// Its action in words.
        action: String,
    },
    /// A step ended (passed or not).
    StepFinished(StepRecord),
    /// The scenario cannot go on (an actor failed to start, the stand-in could not be made).
    Aborted {
        /// The step during which it happened.
        step: Option<usize>,
        /// Why.
        reason: String,
    },
    /// The scenario asks for something that cannot exist here (a program not on `PATH`):
    /// bad input, reported as `file:line:column: message`.
    Invalid {
        /// The diagnostic.
        message: String,
    },
    /// The tool under test (`tool = "..."`), as the scenario's commands find it.
    Tool(ToolUnderTest),
    /// Every step ran.
    Finished,
}

/// The program a tool scenario checks, and its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolUnderTest {
    /// The command, as in the scenario's `tool`.
    pub name: String,
    /// The first line of its version output (`--version`; `ip -V`), as found on the
    /// commands' `PATH` inside the scenario's host (so a userland run reports the
    /// userland's tool), or why there is none.
    pub version: String,
}

/// Everything known about one scenario run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioReport {
    /// The scenario's name (its path under `scenarios/`, without `.toml`).
    pub name: String,
    /// The scenario file.
    pub path: String,
    /// The outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The steps that ran.
    pub steps: Vec<StepRecord>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// What the harness's own processes wrote to stderr, if anything.
    pub log: String,
    /// Whether the scenario asks for its observations to be snapshotted.
    #[serde(default)]
    pub snapshot: bool,
    /// The tool under test, for a tool scenario (`tool = "..."`) that got as far as
    /// starting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<ToolUnderTest>,
}

impl ScenarioReport {
    /// The report of scenario `name` (file `path`) with `outcome`, before any step ran.
    pub(crate) fn new(name: impl Into<String>, path: impl Into<String>, outcome: Outcome) -> Self {
        ScenarioReport {
            name: name.into(),
            path: path.into(),
            outcome,
            steps: Vec::new(),
            duration_ms: 0,
            log: String::new(),
            snapshot: false,
            tool: None,
        }
    }

    /// The observations of every `observe` step as one text, for a snapshot: a heading per
    /// step (its number, actor and action) and the observation as pretty JSON.
    pub fn observations_text(&self) -> String {
        let mut text = String::new();
        for step in &self.steps {
            if let Some(observation) = &step.observation {
                let json = serde_json::to_string_pretty(observation).unwrap_or_default();
                text.push_str(&format!(
                    "# step {} [{}] {}\n{json}\n",
                    step.number, step.actor, step.action
                ));
            }
        }
        text
    }

    /// A human-readable account of a failure: the step, its actor and command, and a diff
    /// for every expectation that did not hold. Empty for passed and skipped scenarios.
    pub fn explain(&self) -> String {
        let mut text = String::new();
        match &self.outcome {
            Outcome::Passed | Outcome::Skipped { .. } => return text,
            Outcome::Invalid { message } => text.push_str(message),
            Outcome::Failed { step, reason } => {
                text.push_str(reason);
                text.push('\n');
                if let Some(record) = step.and_then(|n| self.steps.iter().find(|s| s.number == n)) {
                    text.push_str(&self.explain_step(record));
                }
            }
            Outcome::TimedOut { step, limit_ms } => {
                let place = match step.and_then(|n| self.steps.iter().find(|s| s.number == n)) {
                    Some(s) => format!(
                        " in step {} ({}:{}), actor `{}`: {}",
                        s.number, self.path, s.line, s.actor, s.action
                    ),
                    None => String::new(),
                };
                text.push_str(&format!(
                    "timed out after {limit_ms} ms{place}; everything it started was killed\n"
                ));
            }
        }
        if !self.log.trim().is_empty() {
            text.push_str("\nharness log:\n");
            text.push_str(&self.log);
        }
        text
    }

    fn explain_step(&self, record: &StepRecord) -> String {
        let mut text = format!(
            "step {} at {}:{}, actor `{}`: {}\n",
            record.number, self.path, record.line, record.actor, record.action
        );
        if let Some(note) = &record.note {
            text.push_str(&format!("  note: {note}\n"));
        }
        for mismatch in &record.mismatches {
            match mismatch.what.as_str() {
                what if what == "stdout" || what == "stderr" || what.starts_with("expect.") => {
                    text.push_str(&format!("  {} does not match:\n", mismatch.what));
                    let diff = crate::matcher::diff(&mismatch.expected, &mismatch.actual);
                    for line in diff.lines() {
                        text.push_str(&format!("    {line}\n"));
                    }
                }
                what => text.push_str(&format!(
                    "  {what}: expected {}, got {}\n",
                    mismatch.expected, mismatch.actual
                )),
            }
        }
        let shown: Vec<&str> = record.mismatches.iter().map(|m| m.what.as_str()).collect();
        if !shown.contains(&"stdout") && !record.stdout.is_empty() {
            text.push_str(&format!("  stdout was:\n{}", indent(&record.stdout)));
        }
        if !shown.contains(&"stderr") && !record.stderr.is_empty() {
            text.push_str(&format!("  stderr was:\n{}", indent(&record.stderr)));
        }
        text
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}
