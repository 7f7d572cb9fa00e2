//! The report as one self-contained HTML page: inline CSS, no scripts, no external assets.
//! It holds the figures of every column, a matrix of the scenarios that differ (each cell
//! an outcome, its reason as a tooltip, each row linked to its details), and one
//! expandable `<details>` block per scenario with its outcomes and coloured diffs.
//!
//! Everything that comes from a results file is escaped with [`escape`].

use super::model::{
    outcome_detail, outcome_key, outcome_words, Comparison, ScenarioDifference, Setting,
};

const STYLE: &str = "
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.passed { background: #e6f4ea; } td.failed, td.timed_out { background: #fce8e6; }
td.skipped { background: #fef7e0; } td.invalid { background: #f3e8fd; } td.absent { color: #888; }
details { margin: 0.5em 0; border: 1px solid #ddd; border-radius: 4px; padding: 0.3em 0.8em; }
summary { cursor: pointer; }
pre { background: #f8f8f8; padding: 0.6em; overflow-x: auto; font-size: 12px; }
pre .add { color: #116329; background: #dafbe1; } pre .del { color: #82071e; background: #ffebe9; }
pre .hunk { color: #0550ae; } pre .head { font-weight: bold; }
";

/// Escape text for HTML element content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            ch => out.push(ch),
        }
    }
    out
}

/// Render `comparison` as an HTML page.
pub(crate) fn render(comparison: &Comparison) -> String {
    let c = comparison;
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>nsconform report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>nsconform report</h1>\n<p>{} results files · {} scenarios · <strong>{} differ</strong> · \
         {} identical everywhere (not listed)</p>\n<p>Compared: outcomes, observations{}.</p>\n",
        c.columns.len(),
        c.scenarios,
        c.different.len(),
        c.identical(),
        if c.command_output { ", command output" } else { "" }
    );
    out.push_str("<h2>Figures</h2>\n<table>\n");
    out.push_str(&row("th", super::model::FIGURE_COLUMNS.map(escape)));
    for f in &c.columns {
        let cells = super::model::figure_cells(f);
        let (text, file) = cells.split_at(11);
        let file = &file[0];
        let cells = text
            .iter()
            .map(|t| escape(t))
            .chain([format!("<code>{}</code>", escape(file))]);
        out.push_str(&row("td", cells));
    }
    out.push_str("</table>\n");
    if c.different.is_empty() {
        out.push_str("<p><strong>No scenario differs.</strong></p>\n");
    } else {
        out.push_str(&matrix(c));
        for (i, scenario) in c.different.iter().enumerate() {
            out.push_str(&details(c, i, scenario));
        }
    }
    for (title, settings) in [
        ("Tools that differ", &c.tools),
        ("Features that differ", &c.features),
    ] {
        if !settings.is_empty() {
            out.push_str(&format!("<h2>{}</h2>\n", escape(title)));
            out.push_str(&settings_table(c, settings));
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn matrix(c: &Comparison) -> String {
    let mut out = String::from("<h2>Scenarios that differ</h2>\n<table>\n<tr><th>scenario</th>");
    for f in &c.columns {
        out.push_str(&format!("<th>{}</th>", escape(&f.label)));
    }
    out.push_str("<th>differs in</th></tr>\n");
    for (i, scenario) in c.different.iter().enumerate() {
        out.push_str(&format!(
            "<tr><td><a href=\"#s{i}\"><code>{}</code></a></td>",
            escape(&scenario.name)
        ));
        for (index, outcome) in scenario.outcomes.iter().enumerate() {
            let outcome = outcome.as_ref();
            let title = outcome_detail(outcome)
                .map(|d| format!(" title=\"{}\"", escape(&d)))
                .unwrap_or_default();
            out.push_str(&format!(
                "<td class=\"{}\"{title}>{}</td>",
                outcome_key(outcome).0,
                escape(&scenario.cell(index))
            ));
        }
        out.push_str(&format!("<td>{}</td></tr>\n", escape(&scenario.summary())));
    }
    out.push_str("</table>\n");
    out
}

fn details(c: &Comparison, index: usize, scenario: &ScenarioDifference) -> String {
    let mut out = format!(
        "<details id=\"s{index}\"><summary><code>{}</code>: {}</summary>\n",
        escape(&scenario.name),
        escape(&scenario.summary())
    );
    if scenario.outcome_differs {
        out.push_str("<table>\n");
        for (f, outcome) in c.columns.iter().zip(&scenario.outcomes) {
            let outcome = outcome.as_ref();
            out.push_str(&format!(
                "<tr><th>{}</th><td class=\"{}\">{}</td><td>{}</td></tr>\n",
                escape(&f.label),
                outcome_key(outcome).0,
                escape(&outcome_words(outcome)),
                outcome_detail(outcome)
                    .map(|d| format!("<pre>{}</pre>", escape(&d)))
                    .unwrap_or_default()
            ));
        }
        out.push_str("</table>\n");
    }
    for step in &scenario.steps {
        out.push_str(&format!(
            "<h4>Step {} [{}] <code>{}</code>: {} differs</h4>\n",
            step.number,
            escape(&step.actor),
            escape(&step.action),
            step.what.word()
        ));
        if !step.not_run.is_empty() {
            out.push_str(&format!(
                "<p>Did not run in {}.</p>\n",
                escape(&c.labels(&step.not_run))
            ));
        }
        for variant in &step.variants {
            if let Some(diff) = &variant.diff {
                out.push_str(&format!("<pre>{}</pre>\n", diff_html(diff)));
            }
        }
    }
    out.push_str("</details>\n");
    out
}

/// A unified diff with each line escaped and wrapped in a span of its kind.
fn diff_html(diff: &str) -> String {
    diff.lines()
        .map(|line| {
            let class = if line.starts_with("+++") || line.starts_with("---") {
                "head"
            } else if line.starts_with('+') {
                "add"
            } else if line.starts_with('-') {
                "del"
            } else if line.starts_with("@@") {
                "hunk"
            } else {
                return escape(line);
            };
            format!("<span class=\"{class}\">{}</span>", escape(line))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn settings_table(c: &Comparison, settings: &[Setting]) -> String {
    let mut header = vec!["name".to_string()];
    header.extend(c.columns.iter().map(|f| escape(&f.label)));
    let mut out = format!("<table>\n{}", row("th", header));
    for setting in settings {
        let mut cells = vec![format!("<code>{}</code>", escape(&setting.name))];
        cells.extend(
            setting
                .values
                .iter()
                .map(|v| escape(v.as_deref().unwrap_or("–"))),
        );
        out.push_str(&row("td", cells));
    }
    out.push_str("</table>\n");
    out
}

/// A table row of `tag` cells holding HTML that is already escaped.
fn row(tag: &str, cells: impl IntoIterator<Item = String>) -> String {
    let cells: String = cells
        .into_iter()
        .map(|cell| format!("<{tag}>{cell}</{tag}>"))
        .collect();
    format!("<tr>{cells}</tr>\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::model::Options;
    use crate::compare::testdata;
    use crate::report::Outcome;

    /// Check that every opened tag is closed in order (void elements aside) and that no
    /// `<` or `>` is left bare in text.
    fn assert_well_formed(html: &str) {
        let body = html.strip_prefix("<!DOCTYPE html>\n").expect("doctype");
        let mut open: Vec<String> = Vec::new();
        let mut rest = body;
        while let Some(start) = rest.find(['<', '>']) {
            assert_eq!(
                &rest[start..=start],
                "<",
                "bare > near {:?}",
                &rest[..start]
            );
            let end = rest[start..].find('>').expect("an unclosed tag") + start;
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "bare < in {tag:?}");
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if let Some(closing) = tag.strip_prefix('/') {
                assert_eq!(
                    open.pop().as_deref(),
                    Some(closing),
                    "mismatched </{closing}>"
                );
            } else if name != "meta" {
                open.push(name);
            }
            rest = &rest[end + 1..];
        }
        assert!(open.is_empty(), "unclosed: {open:?}");
    }

    #[test]
    fn a_well_formed_page_with_the_matrix_and_diffs() {
        let html = render(&testdata::comparison(Options::default()));
        assert_well_formed(&html);
        assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src="));
        for expected in [
            "<td class=\"skipped\" title=\"requires overlayfs:userns: mount -t overlay -o userxattr,...: Invalid argument (overlayfs in a user namespace needs Linux 5.11)\">– skipped</td>",
            "<td class=\"failed\" title=\"step 5 did not behave as expected\">✗ failed at step 5</td>",
            "<details id=\"s1\"><summary><code>net/new-netns-observed</code>: step 6 observation</summary>",
            "<span class=\"head\">+++ 5.10.0-32-amd64, 6.1.0-27-cloud-amd64</span>",
            "<span class=\"add\">+      &quot;address&quot;: &quot;::1/128&quot;,</span>",
            "<td>2.31 s</td><td>15.87 s</td>",
        ] {
            assert!(html.contains(expected), "missing {expected:?}");
        }
        assert_eq!(html.matches("<details").count(), 4);
        assert!(!html.contains("uts/hostname-observed"));
    }

    #[test]
    fn escapes_everything_from_the_files() {
        let mut columns = testdata::columns();
        columns[1].label = "<b>\"5.10\" & 'co'</b>".to_string();
        for scenario in &mut columns[1].results.scenarios {
            if scenario.name == "time/offsets-observed" {
                scenario.outcome = Outcome::Failed {
                    step: Some(5),
                    reason: "</pre><script>alert(1)</script>".to_string(),
                };
                scenario.name = "time/<i>offsets</i>".to_string();
            }
        }
        let html = render(&crate::compare::compare(&columns, Options::default()));
        assert_well_formed(&html);
        assert!(!html.contains("<script>") && !html.contains("<b>") && !html.contains("<i>"));
        assert!(html.contains("&lt;b&gt;&quot;5.10&quot; &amp; &#39;co&#39;&lt;/b&gt;"));
        assert!(html.contains("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn says_when_nothing_differs() {
        let columns = testdata::columns();
        let html = render(&crate::compare::compare(&columns[..1], Options::default()));
        assert_well_formed(&html);
        assert!(html.contains("No scenario differs."));
    }
}
