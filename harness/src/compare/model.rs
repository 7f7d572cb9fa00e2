//! What a comparison is made of and what it finds.
//!
//! A [`Column`] is one results file with its label. [`super::diff::compare`] turns a list of
//! columns into a [`Comparison`]: the figures of every column, the scenarios that differ
//! (with the outcome in every column and a diff of every step that differs), how many are
//! identical everywhere, and the tools and features that differ. The renderers only read a
//! `Comparison`; the helpers at the end of this module are the wording they share.

use crate::report::Outcome;
use crate::results::Results;

/// One results file, as a column of the report.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    /// The name shown for it (unique within a report).
    pub(crate) label: String,
    /// The file it was read from, as given.
    pub(crate) file: String,
    /// Its content.
    pub(crate) results: Results,
    /// The VM runner's timings, when the file has a `vm` object.
    pub(crate) vm: Option<VmFigures>,
}

/// The optional `vm` object of a results file written by the VM runner.
pub(crate) type VmFigures = crate::results::VmRun;

/// What the comparison looks at besides outcomes and observations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// Also compare the exit status, errno, stdout and stderr of command steps.
    pub(crate) command_output: bool,
}

/// Everything a report shows.
#[derive(Debug, Clone)]
pub(crate) struct Comparison {
    /// The columns' figures, in the order the files were given.
    pub(crate) columns: Vec<Figures>,
    /// Whether command output was compared (see [`Options`]).
    pub(crate) command_output: bool,
    /// How many distinct scenario names the files hold together.
    pub(crate) scenarios: usize,
    /// The scenarios that differ between columns, sorted by name.
    pub(crate) different: Vec<ScenarioDifference>,
    /// The tools whose version differs between columns.
    pub(crate) tools: Vec<Setting>,
    /// The features whose availability differs between columns.
    pub(crate) features: Vec<Setting>,
}

impl Comparison {
    /// Whether any scenario differs (the report then exits 1).
    pub(crate) fn differs(&self) -> bool {
        !self.different.is_empty()
    }

    /// How many scenarios are the same in every column.
    pub(crate) fn identical(&self) -> usize {
        self.scenarios - self.different.len()
    }

    /// The labels of the columns listed in `indexes`, joined with `, `.
    pub(crate) fn labels(&self, indexes: &[usize]) -> String {
        indexes
            .iter()
            .filter_map(|&i| self.columns.get(i).map(|c| c.label.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The figures of one column: where the run happened, its counts and how long it took.
#[derive(Debug, Clone)]
pub(crate) struct Figures {
    /// The column's label.
    pub(crate) label: String,
    /// The results file.
    pub(crate) file: String,
    /// `uname -r`.
    pub(crate) kernel_release: String,
    /// The distribution's pretty name (or `ID VERSION_ID`).
    pub(crate) distribution: String,
    /// `uname -m`.
    pub(crate) architecture: String,
    /// The harness version that wrote the file.
    pub(crate) harness_version: String,
    /// When the run started.
    pub(crate) started_at: String,
    /// The counts and the suite's wall time.
    pub(crate) summary: crate::results::Summary,
    /// The VM timings, when the file has them.
    pub(crate) vm: Option<VmFigures>,
}

/// A scenario that is not the same in every column.
#[derive(Debug, Clone)]
pub(crate) struct ScenarioDifference {
    /// The scenario's name.
    pub(crate) name: String,
    /// Its outcome in each column; `None` where the file does not have it.
    pub(crate) outcomes: Vec<Option<Outcome>>,
    /// Whether the outcomes differ (see [`outcome_key`]).
    pub(crate) outcome_differs: bool,
    /// The steps whose observation (or output) differs, by step number.
    pub(crate) steps: Vec<StepDifference>,
}

impl ScenarioDifference {
    /// What differs, in a few words: `outcome, step 6 observation`.
    pub(crate) fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.outcome_differs {
            parts.push("outcome".to_string());
        }
        for step in &self.steps {
            parts.push(format!("step {} {}", step.number, step.what.word()));
        }
        parts.join(", ")
    }

    /// Whether column `index` has a step result other than the baseline's (the first
    /// variant) in some step.
    pub(crate) fn deviates(&self, index: usize) -> bool {
        self.steps.iter().any(|s| {
            s.variants
                .iter()
                .skip(1)
                .any(|v| v.columns.contains(&index))
        })
    }

    /// The matrix cell of column `index`: the outcome's mark and words, then ` Δ` when the
    /// column [`deviates`](Self::deviates).
    pub(crate) fn cell(&self, index: usize) -> String {
        let outcome = self.outcomes.get(index).and_then(Option::as_ref);
        let delta = if self.deviates(index) { " Δ" } else { "" };
        format!(
            "{} {}{delta}",
            outcome_mark(outcome),
            outcome_words(outcome)
        )
    }
}

/// What of a step is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum What {
    /// The `observation` of an `observe` step.
    Observation,
    /// The exit status, errno, stdout and stderr of another step.
    Output,
}

impl What {
    /// `observation` or `output`.
    pub(crate) fn word(self) -> &'static str {
        match self {
            What::Observation => "observation",
            What::Output => "output",
        }
    }
}

/// One step whose result differs between columns.
#[derive(Debug, Clone)]
pub(crate) struct StepDifference {
    /// The step number.
    pub(crate) number: usize,
    /// Its actor (from the first column that ran it).
    pub(crate) actor: String,
    /// Its action (from the first column that ran it).
    pub(crate) action: String,
    /// What was compared.
    pub(crate) what: What,
    /// The distinct results; the first is the baseline (it holds the first column that ran
    /// the step), every other one carries a diff from it.
    pub(crate) variants: Vec<Variant>,
    /// The columns where the step did not run (scenario absent, skipped, or stopped earlier).
    pub(crate) not_run: Vec<usize>,
}

/// One distinct result of a step, shared by one or more columns.
#[derive(Debug, Clone)]
pub(crate) struct Variant {
    /// The columns with this result.
    pub(crate) columns: Vec<usize>,
    /// The result as data: the observation, or `{exit, error, stdout, stderr}`.
    pub(crate) value: serde_json::Value,
    /// The result as the text that is diffed (pretty JSON, or the output laid out).
    pub(crate) text: String,
    /// Unified diff from the baseline; `None` for the baseline itself.
    pub(crate) diff: Option<String>,
}

/// A tool or feature whose value differs between columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Setting {
    /// The tool or feature name.
    pub(crate) name: String,
    /// Its value in each column; `None` where the file does not mention it.
    pub(crate) values: Vec<Option<String>>,
}

/// How an outcome is compared: its kind, and for a failure or timeout the step. Reasons and
/// messages are not compared (they hold timings, paths and machine details).
pub(crate) fn outcome_key(outcome: Option<&Outcome>) -> (&'static str, Option<usize>) {
    match outcome {
        None => ("absent", None),
        Some(Outcome::Passed) => ("passed", None),
        Some(Outcome::Failed { step, .. }) => ("failed", *step),
        Some(Outcome::Skipped { .. }) => ("skipped", None),
        Some(Outcome::Invalid { .. }) => ("invalid", None),
        Some(Outcome::TimedOut { step, .. }) => ("timed_out", *step),
    }
}

/// An outcome in a few words: `passed`, `failed at step 5`, `timed out`, `absent`.
pub(crate) fn outcome_words(outcome: Option<&Outcome>) -> String {
    let (word, step) = match outcome {
        None => ("absent", None),
        Some(Outcome::Passed) => ("passed", None),
        Some(Outcome::Failed { step, .. }) => ("failed", *step),
        Some(Outcome::Skipped { .. }) => ("skipped", None),
        Some(Outcome::Invalid { .. }) => ("invalid", None),
        Some(Outcome::TimedOut { step, .. }) => ("timed out", *step),
    };
    match step {
        Some(step) => format!("{word} at step {step}"),
        None => word.to_string(),
    }
}

/// The reason, message or limit behind an outcome, when it has one.
pub(crate) fn outcome_detail(outcome: Option<&Outcome>) -> Option<String> {
    match outcome? {
        Outcome::Passed => None,
        Outcome::Failed { reason, .. } | Outcome::Skipped { reason } => Some(reason.clone()),
        Outcome::Invalid { message } => Some(message.clone()),
        Outcome::TimedOut { limit_ms, .. } => Some(format!("ran past its {limit_ms} ms limit")),
    }
}

/// A one-character mark for a matrix cell: ✓ passed, ✗ failed, – skipped, ! invalid,
/// ⏱ timed out, ∅ absent.
pub(crate) fn outcome_mark(outcome: Option<&Outcome>) -> &'static str {
    match outcome {
        None => "∅",
        Some(Outcome::Passed) => "✓",
        Some(Outcome::Failed { .. }) => "✗",
        Some(Outcome::Skipped { .. }) => "–",
        Some(Outcome::Invalid { .. }) => "!",
        Some(Outcome::TimedOut { .. }) => "⏱",
    }
}

/// A duration for people: `850 ms`, `2.46 s`.
pub(crate) fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        format!("{:.2} s", ms as f64 / 1000.0)
    }
}

/// An optional duration; `–` when absent.
pub(crate) fn maybe_duration(ms: Option<u64>) -> String {
    ms.map_or_else(|| "–".to_string(), duration)
}

/// The values of one column's row of the figures table, as plain text, in the order of
/// [`FIGURE_COLUMNS`]; each format escapes or decorates them.
pub(crate) fn figure_cells(f: &Figures) -> [String; 12] {
    let s = &f.summary;
    let vm = f.vm.clone().unwrap_or_default();
    [
        f.label.clone(),
        f.kernel_release.clone(),
        f.distribution.clone(),
        f.architecture.clone(),
        s.passed.to_string(),
        s.failed.to_string(),
        s.skipped.to_string(),
        s.invalid.to_string(),
        maybe_duration(Some(s.duration_ms)),
        maybe_duration(vm.boot_ms),
        maybe_duration(vm.round_trip_ms),
        f.file.clone(),
    ]
}

/// The headings of the figures table, in order, shared by every format.
pub(crate) const FIGURE_COLUMNS: [&str; 12] = [
    "column",
    "kernel",
    "distribution",
    "arch",
    "passed",
    "failed",
    "skipped",
    "invalid",
    "suite time",
    "boot time",
    "round trip",
    "file",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_keys_ignore_reasons_but_not_steps() {
        let failed = |step, reason: &str| Outcome::Failed {
            step,
            reason: reason.to_string(),
        };
        assert_eq!(
            outcome_key(Some(&failed(Some(2), "a"))),
            outcome_key(Some(&failed(Some(2), "b")))
        );
        assert_ne!(
            outcome_key(Some(&failed(Some(2), "a"))),
            outcome_key(Some(&failed(Some(3), "a")))
        );
        let skipped = |reason: &str| Outcome::Skipped {
            reason: reason.to_string(),
        };
        assert_eq!(
            outcome_key(Some(&skipped("x"))),
            outcome_key(Some(&skipped("y")))
        );
        assert_ne!(outcome_key(None), outcome_key(Some(&Outcome::Passed)));
    }

    #[test]
    fn words_and_durations() {
        let timed_out = Outcome::TimedOut {
            step: Some(4),
            limit_ms: 10_000,
        };
        assert_eq!(outcome_words(Some(&timed_out)), "timed out at step 4");
        assert_eq!(
            outcome_detail(Some(&timed_out)).as_deref(),
            Some("ran past its 10000 ms limit")
        );
        assert_eq!(outcome_words(None), "absent");
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(2460), "2.46 s");
        assert_eq!(maybe_duration(None), "–");
    }
}
