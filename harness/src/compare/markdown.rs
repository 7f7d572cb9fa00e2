//! The report as GitHub-flavoured Markdown, for a CI job summary (`$GITHUB_STEP_SUMMARY`):
//! the figures and a matrix of the scenarios that differ as tables (✓ passed, ✗ failed,
//! – skipped, ! invalid, ⏱ timed out, ∅ absent), then one collapsed `<details>` block per
//! scenario with its outcomes and `diff` code blocks.
//!
//! Text from the results files is escaped for where it lands: table cells escape `|` and
//! HTML, summaries escape HTML, and code blocks use a fence longer than any run of
//! backticks inside them.

use super::html::escape as escape_html;
use super::model::{outcome_detail, outcome_words, Comparison, ScenarioDifference, Setting};

/// Render `comparison` as Markdown.
pub(crate) fn render(comparison: &Comparison) -> String {
    let c = comparison;
    let mut out = String::from("## nsconform report\n\n");
    out.push_str(&format!(
        "{} results files · {} scenarios · **{} differ** · {} identical everywhere (not listed)  \n",
        c.columns.len(),
        c.scenarios,
        c.different.len(),
        c.identical()
    ));
    out.push_str(&format!(
        "Compared: outcomes, observations{}.\n\n",
        if c.command_output {
            ", command output"
        } else {
            ""
        }
    ));
    out.push_str("### Figures\n\n");
    out.push_str(&row(super::model::FIGURE_COLUMNS));
    out.push_str(&row(["---"; 12]));
    for f in &c.columns {
        let cells = super::model::figure_cells(f);
        let (text, file) = cells.split_at(11);
        let file = &file[0];
        out.push_str(&row(text.iter().map(|t| cell(t)).chain([code(file)])));
    }
    if c.different.is_empty() {
        out.push_str("\n**No scenario differs.**\n");
    } else {
        out.push_str("\n### Scenarios that differ\n\n");
        let mut header = vec!["scenario".to_string()];
        header.extend(c.columns.iter().map(|f| cell(&f.label)));
        header.push("differs in".to_string());
        out.push_str(&row(&header));
        out.push_str(&row(vec!["---"; header.len()]));
        for scenario in &c.different {
            let mut cells = vec![code(&scenario.name)];
            cells.extend((0..c.columns.len()).map(|i| cell(&scenario.cell(i))));
            cells.push(cell(&scenario.summary()));
            out.push_str(&row(cells));
        }
        out.push('\n');
        for scenario in &c.different {
            out.push_str(&details(c, scenario));
        }
    }
    for (title, settings) in [
        ("Tools that differ", &c.tools),
        ("Features that differ", &c.features),
    ] {
        if !settings.is_empty() {
            out.push_str(&format!("\n### {title}\n\n"));
            out.push_str(&settings_table(c, settings));
        }
    }
    out
}

fn details(c: &Comparison, scenario: &ScenarioDifference) -> String {
    let mut out = format!(
        "<details><summary><code>{}</code>: {}</summary>\n\n",
        escape_html(&scenario.name),
        escape_html(&scenario.summary())
    );
    if scenario.outcome_differs {
        let mut text = String::new();
        for (f, outcome) in c.columns.iter().zip(&scenario.outcomes) {
            text.push_str(&format!("{}: {}", f.label, outcome_words(outcome.as_ref())));
            if let Some(detail) = outcome_detail(outcome.as_ref()) {
                text.push_str(&format!(": {detail}"));
            }
            text.push('\n');
        }
        out.push_str(&format!("Outcomes:\n\n{}\n", fenced("text", &text)));
    }
    for step in &scenario.steps {
        out.push_str(&format!(
            "Step {} [{}] {}: {} differs",
            step.number,
            cell(&step.actor),
            code(&step.action),
            step.what.word()
        ));
        if !step.not_run.is_empty() {
            out.push_str(&format!(
                " (did not run in {})",
                cell(&c.labels(&step.not_run))
            ));
        }
        out.push_str("\n\n");
        for variant in &step.variants {
            if let Some(diff) = &variant.diff {
                out.push_str(&fenced("diff", diff));
                out.push('\n');
            }
        }
    }
    out.push_str("</details>\n\n");
    out
}

fn settings_table(c: &Comparison, settings: &[Setting]) -> String {
    let mut header = vec!["name".to_string()];
    header.extend(c.columns.iter().map(|f| cell(&f.label)));
    let mut out = row(&header);
    out.push_str(&row(vec!["---"; header.len()]));
    for setting in settings {
        let mut cells = vec![code(&setting.name)];
        cells.extend(
            setting
                .values
                .iter()
                .map(|v| v.as_deref().map_or_else(|| "–".to_string(), cell)),
        );
        out.push_str(&row(cells));
    }
    out
}

/// A table row from cells that are already escaped.
fn row<S: AsRef<str>>(cells: impl IntoIterator<Item = S>) -> String {
    let cells: Vec<String> = cells.into_iter().map(|c| c.as_ref().to_string()).collect();
    format!("| {} |\n", cells.join(" | "))
}

/// Text for a table cell: HTML and `|` escaped, on one line.
fn cell(text: &str) -> String {
    escape_html(text)
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// Text as inline code in a table cell. `<code>` rather than backticks, so that any
/// character (backticks included) can be escaped.
fn code(text: &str) -> String {
    format!("<code>{}</code>", cell(text))
}

/// A fenced code block, its fence longer than any run of backticks in `text`.
fn fenced(language: &str, text: &str) -> String {
    let longest = text.split(|ch| ch != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let newline = if text.ends_with('\n') { "" } else { "\n" };
    format!("{fence}{language}\n{text}{newline}{fence}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::model::Options;
    use crate::compare::testdata;

    #[test]
    fn tables_details_and_diffs() {
        let md = render(&testdata::comparison(Options::default()));
        for expected in [
            "3 results files · 9 scenarios · **4 differ** · 5 identical everywhere",
            "| column | kernel | distribution | arch |",
            "| 5.10.0-32-amd64 | 5.10.0-32-amd64 | Debian GNU/Linux 11 (bullseye) | x86_64 | 6 | 1 | 2 | 0 | 3.12 s | 2.31 s | 15.87 s | <code>fixtures/results/fake-5.10.json</code> |",
            "| scenario | 6.18.44-fc-v595 | 5.10.0-32-amd64 | 6.1.0-27-cloud-amd64 | differs in |",
            "| <code>time/offsets-observed</code> | ✓ passed | ✗ failed at step 5 | ✓ passed | outcome |",
            "| <code>mount/rootless-overlay-writes-to-upper</code> | ✓ passed | – skipped | ✓ passed | outcome |",
            // Δ: the columns whose observation differs from the first column's.
            "| <code>net/new-netns-observed</code> | ✓ passed | ✓ passed Δ | ✓ passed Δ | step 6 observation |",
            "| <code>user/root-map-observed</code> | ✓ passed | ✓ passed | ✓ passed Δ | step 3 observation |",
            "<details><summary><code>net/new-netns-observed</code>: step 6 observation</summary>",
            "```diff\n--- 6.18.44-fc-v595\n+++ 5.10.0-32-amd64, 6.1.0-27-cloud-amd64\n@@",
            "```text\n6.18.44-fc-v595: passed\n5.10.0-32-amd64: skipped: requires overlayfs:userns",
            "| <code>ip</code> | ip utility, iproute2-6.1.0, libbpf 1.1.2 |",
        ] {
            assert!(md.contains(expected), "missing {expected:?} in\n{md}");
        }
        assert_eq!(md.matches("<details>").count(), 4);
        assert_eq!(md.matches("</details>").count(), 4);
        assert!(!md.contains("uts/hostname-observed"));
        assert!(!md.contains("net/vlan-moved-into-netns"));
    }

    #[test]
    fn escapes_what_comes_from_the_files() {
        assert_eq!(cell("a|b <c>\nd"), "a\\|b &lt;c&gt; d");
        assert_eq!(code("x`y|z"), "<code>x`y\\|z</code>");
        assert_eq!(fenced("diff", "-a\n+```b\n"), "````diff\n-a\n+```b\n````\n");
        assert_eq!(fenced("text", "plain"), "```text\nplain\n```\n");
    }
}
