//! Comparing expected text with actual output, and showing the difference.
//!
//! Both sides are normalised first: trailing whitespace on each line and trailing empty
//! lines are dropped. Expected text may use two wildcards:
//! - a line that is exactly `...` matches any number of lines (including none);
//! - `[..]` inside a line matches any characters within that line.

use similar::TextDiff;

/// Drop trailing whitespace on each line and trailing empty lines.
pub(crate) fn normalize(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let keep = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    lines[..keep].join("\n")
}

/// Whether `actual` matches the `expected` pattern.
pub(crate) fn matches(expected: &str, actual: &str) -> bool {
    let expected = normalize(expected);
    let actual = normalize(actual);
    let expected: Vec<&str> = split_lines(&expected);
    let actual: Vec<&str> = split_lines(&actual);
    lines_match(&expected, &actual)
}

fn split_lines(text: &str) -> Vec<&str> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').collect()
    }
}

fn lines_match(expected: &[&str], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((&"...", rest)) => (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..])),
        Some((line, rest)) => match actual.split_first() {
            Some((first, others)) => line_matches(line, first) && lines_match(rest, others),
            None => false,
        },
    }
}

/// Whether one actual line matches one expected line with `[..]` wildcards.
fn line_matches(expected: &str, actual: &str) -> bool {
    let parts: Vec<&str> = expected.split("[..]").collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return expected == actual;
    };
    let Some(mut rest) = actual.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// A unified diff from `expected` to `actual`, after normalisation. Expected lines that a
/// wildcard already matches are shown as the actual line, so only real differences appear.
pub(crate) fn diff(expected: &str, actual: &str) -> String {
    let actual = normalize(actual);
    let expected = redact_matched(&normalize(expected), &actual) + "\n";
    let actual = actual + "\n";
    TextDiff::from_lines(&expected, &actual)
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string()
}

/// With the same number of lines and no `...`, replace each expected line that matches its
/// actual line by that actual line.
fn redact_matched(expected: &str, actual: &str) -> String {
    let expected_lines = split_lines(expected);
    let actual_lines = split_lines(actual);
    if expected_lines.len() != actual_lines.len() || expected_lines.contains(&"...") {
        return expected.to_string();
    }
    expected_lines
        .iter()
        .zip(&actual_lines)
        .map(|(e, a)| if line_matches(e, a) { *a } else { *e })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("newname", "newname\n", true)]
    #[case("newname", "oldname\n", false)]
    #[case("a  \nb\n\n", "a\nb", true)]
    #[case("", "", true)]
    #[case("", "x", false)]
    #[case("x", "", false)]
    #[case("...", "", true)]
    #[case("...", "a\nb", true)]
    #[case("a\n...\nz", "a\nz", true)]
    #[case("a\n...\nz", "a\nb\nc\nz", true)]
    #[case("a\n...\nz", "a\nb\nc", false)]
    #[case("...\nlo[..]", "eth0 UP\nlo DOWN", true)]
    #[case("lo[..]", "lo DOWN\nextra", false)]
    #[case("uid=[..](nobody)", "uid=65534(nobody)", true)]
    #[case("[..]", "anything at all", true)]
    #[case("[..]", "", false)]
    #[case("a[..]b[..]c", "a-x-b-y-c", true)]
    #[case("a[..]b[..]c", "a-x-c-y-b", false)]
    #[case("ab[..]ba", "aba", false)]
    #[case("x[..]", "yx", false)]
    fn matching(#[case] expected: &str, #[case] actual: &str, #[case] result: bool) {
        assert_eq!(
            matches(expected, actual),
            result,
            "{expected:?} vs {actual:?}"
        );
    }

    #[test]
    fn diff_hides_lines_a_wildcard_matched() {
        let d = diff("lo[..]UP\neth0 UP", "lo  UNKNOWN UP\neth0 DOWN");
        assert!(!d.contains("-lo[..]UP"), "{d}");
        assert!(d.contains(" lo  UNKNOWN UP"), "{d}");
        assert!(d.contains("-eth0 UP"), "{d}");
    }

    #[test]
    fn diff_shows_both_sides() {
        let d = diff("vm\n", "newname\n");
        assert!(d.contains("--- expected"), "{d}");
        assert!(d.contains("-vm"), "{d}");
        assert!(d.contains("+newname"), "{d}");
    }
}
