//! The report as plain text for a terminal: a headline, the figures of every column, a
//! matrix of the scenarios that differ, then each of them with its outcomes and diffs, and
//! the tools and features that differ. ANSI colours only when asked (the caller asks when
//! standard output is a terminal and `NO_COLOR` is not set).

use super::model::{outcome_detail, outcome_words, Comparison, ScenarioDifference, Setting};
use crate::report::Outcome;

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const MAGENTA: &str = "\x1b[35m";
const CYAN: &str = "\x1b[36m";

/// Paints text, or leaves it plain.
#[derive(Clone, Copy)]
struct Paint(bool);

impl Paint {
    fn with(self, style: &str, text: &str) -> String {
        if self.0 && !style.is_empty() {
            format!("{style}{text}{RESET}")
        } else {
            text.to_string()
        }
    }
}

/// Render `comparison` as text, with ANSI colours when `colour`.
pub(crate) fn render(comparison: &Comparison, colour: bool) -> String {
    let paint = Paint(colour);
    let c = comparison;
    let mut out = format!(
        "{} {} results files, {} scenarios: {} differ, {} identical everywhere (not listed)\n",
        paint.with(BOLD, "nsconform report:"),
        c.columns.len(),
        c.scenarios,
        c.different.len(),
        c.identical(),
    );
    out.push_str(&format!(
        "compared: outcomes, observations{}\n",
        if c.command_output {
            ", command output"
        } else {
            ""
        }
    ));
    out.push_str(&format!("\n{}\n", paint.with(BOLD, "Figures")));
    let mut rows = vec![super::model::FIGURE_COLUMNS.map(String::from).to_vec()];
    for f in &c.columns {
        rows.push(super::model::figure_cells(f).to_vec());
    }
    out.push_str(&table(&rows, |_, _, text| text.to_string()));
    if c.different.is_empty() {
        out.push_str(&format!(
            "\n{}\n",
            paint.with(GREEN, "No scenario differs.")
        ));
    } else {
        out.push_str(&format!(
            "\n{}\n",
            paint.with(BOLD, "Scenarios that differ")
        ));
        out.push_str(&matrix(c, paint));
        for scenario in &c.different {
            out.push('\n');
            out.push_str(&details(c, scenario, paint));
        }
    }
    for (title, settings) in [
        ("Tools that differ", &c.tools),
        ("Features that differ", &c.features),
    ] {
        if !settings.is_empty() {
            out.push_str(&format!("\n{}\n", paint.with(BOLD, title)));
            out.push_str(&settings_text(c, settings));
        }
    }
    out
}

fn matrix(c: &Comparison, paint: Paint) -> String {
    let mut header = vec!["scenario".to_string()];
    header.extend(c.columns.iter().map(|f| f.label.clone()));
    header.push("differs in".to_string());
    let mut rows = vec![header];
    for scenario in &c.different {
        let mut row = vec![scenario.name.clone()];
        row.extend((0..c.columns.len()).map(|i| scenario.cell(i)));
        row.push(scenario.summary());
        rows.push(row);
    }
    table(&rows, |row, column, text| {
        let outcome = (row > 0 && column > 0)
            .then(|| c.different[row - 1].outcomes.get(column - 1))
            .flatten();
        match outcome {
            Some(o) => paint.with(style(o.as_ref()), text),
            None => text.to_string(),
        }
    })
}

fn style(outcome: Option<&Outcome>) -> &'static str {
    match outcome {
        None => DIM,
        Some(Outcome::Passed) => GREEN,
        Some(Outcome::Failed { .. } | Outcome::TimedOut { .. }) => RED,
        Some(Outcome::Skipped { .. }) => YELLOW,
        Some(Outcome::Invalid { .. }) => MAGENTA,
    }
}

fn details(c: &Comparison, scenario: &ScenarioDifference, paint: Paint) -> String {
    let mut out = format!("{}\n", paint.with(BOLD, &scenario.name));
    let width = label_width(c);
    if scenario.outcome_differs {
        out.push_str("  outcome differs:\n");
        for (f, outcome) in c.columns.iter().zip(&scenario.outcomes) {
            let words = outcome_words(outcome.as_ref());
            let mut line = paint.with(style(outcome.as_ref()), &words);
            if let Some(detail) = outcome_detail(outcome.as_ref()) {
                line.push_str(": ");
                line.push_str(&detail.replace('\n', &format!("\n      {:width$}", "")));
            }
            out.push_str(&format!("    {:width$}  {line}\n", f.label));
        }
    }
    for step in &scenario.steps {
        out.push_str(&format!(
            "  step {} [{}] {}: {} differs\n",
            step.number,
            step.actor,
            step.action,
            step.what.word()
        ));
        if !step.not_run.is_empty() {
            out.push_str(&format!(
                "    did not run in: {}\n",
                c.labels(&step.not_run)
            ));
        }
        for variant in &step.variants {
            if let Some(diff) = &variant.diff {
                for line in diff.lines() {
                    out.push_str(&format!("    {}\n", diff_line(line, paint)));
                }
            }
        }
    }
    out
}

fn diff_line(line: &str, paint: Paint) -> String {
    let style = if line.starts_with("+++") || line.starts_with("---") {
        BOLD
    } else if line.starts_with('+') {
        GREEN
    } else if line.starts_with('-') {
        RED
    } else if line.starts_with("@@") {
        CYAN
    } else {
        ""
    };
    paint.with(style, line)
}

fn settings_text(c: &Comparison, settings: &[Setting]) -> String {
    let width = label_width(c);
    let mut out = String::new();
    for setting in settings {
        out.push_str(&format!("  {}\n", setting.name));
        for (f, value) in c.columns.iter().zip(&setting.values) {
            let value = value.as_deref().unwrap_or("(not recorded)");
            out.push_str(&format!("    {:width$}  {value}\n", f.label));
        }
    }
    out
}

/// Rows laid out in left-aligned columns, two spaces apart, indented by two; `paint`
/// styles each padded cell (by row, column and text).
fn table(rows: &[Vec<String>], paint: impl Fn(usize, usize, &str) -> String) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (r, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let last = i + 1 == row.len();
                let padded = if last {
                    cell.clone()
                } else {
                    format!("{cell:width$}", width = widths[i])
                };
                paint(r, i, &padded)
            })
            .collect();
        out.push_str(&format!("  {}\n", cells.join("  ")));
    }
    out
}

/// The width of the widest column label.
fn label_width(c: &Comparison) -> usize {
    c.columns
        .iter()
        .map(|f| f.label.chars().count())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::model::Options;
    use crate::compare::testdata;

    #[test]
    fn shows_figures_differences_and_nothing_identical() {
        let text = render(&testdata::comparison(Options::default()), false);
        assert!(!text.contains('\x1b'));
        assert!(text.starts_with(
            "nsconform report: 3 results files, 9 scenarios: 4 differ, 5 identical everywhere"
        ));
        for expected in [
            // Figures: suite time for every column, boot time where the file has it.
            "2.46 s",
            "3.12 s",
            "2.79 s",
            "2.31 s",
            "15.87 s",
            "mount/rootless-overlay-writes-to-upper",
            "– skipped",
            "skipped: requires overlayfs:userns: mount -t overlay",
            "time/offsets-observed",
            "✗ failed at step 5",
            "  step 6 [host] observe network: observation differs\n",
            "    --- 6.18.44-fc-v595\n    +++ 5.10.0-32-amd64, 6.1.0-27-cloud-amd64\n",
            "+      \"address\": \"::1/128\",",
            "  step 3 [user] observe identity, maps, namespaces: observation differs\n",
            "Tools that differ\n  ip\n",
            "Features that differ\n  overlayfs:userns\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        for identical in [
            "uts/hostname-isolated",
            "uts/hostname-observed",
            "uts/join-sees-hostname",
            "pid/init-observed",
            "net/vlan-moved-into-netns",
        ] {
            assert!(!text.contains(identical), "{identical} is listed");
        }
    }

    #[test]
    fn colours_only_when_asked() {
        let text = render(&testdata::comparison(Options::default()), true);
        assert!(text.contains("\x1b[32m+      \"address\": \"::1/128\",\x1b[0m"));
        assert!(text.contains("\x1b[33m– skipped"));
    }

    #[test]
    fn says_when_nothing_differs() {
        let columns = testdata::columns();
        let c = crate::compare::compare(&columns[..1], Options::default());
        let text = render(&c, false);
        assert!(text.contains("\nNo scenario differs.\n"), "{text}");
        assert!(!text.contains("Scenarios that differ"));
    }
}
