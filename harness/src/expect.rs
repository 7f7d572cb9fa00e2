//! Comparing what a step did with what its scenario expects, one expectation at a time.
//! Pure functions: each returns the [`Mismatch`] to report, or `None` when it holds.

use crate::actor::protocol::Exit;
use crate::matcher;
use crate::report::Mismatch;
use crate::scenario::model::{StatusExpectation, StatusWord};

/// The exit status against `status` (default: exit status 0).
pub(crate) fn status(expected: Option<StatusExpectation>, exit: Exit) -> Option<Mismatch> {
    let expected = expected.unwrap_or(StatusExpectation::Code(0));
    let holds = match expected {
        StatusExpectation::Word(StatusWord::Any) => true,
        StatusExpectation::Word(StatusWord::Nonzero) => exit != Exit::Code(0),
        StatusExpectation::Code(code) => exit == Exit::Code(code),
    };
    let expected = match expected {
        StatusExpectation::Code(code) => format!("exit status {code}"),
        StatusExpectation::Word(StatusWord::Nonzero) => "a nonzero exit status".into(),
        StatusExpectation::Word(StatusWord::Any) => "any status".into(),
    };
    (!holds).then(|| Mismatch {
        what: "status".into(),
        expected,
        actual: exit.to_string(),
    })
}

/// Output (`what` is `stdout` or `stderr`) against an expanded pattern with wildcards.
pub(crate) fn text(what: &str, expected: String, actual: &str) -> Option<Mismatch> {
    (!matcher::matches(&expected, actual)).then(|| Mismatch {
        what: what.into(),
        expected,
        actual: actual.to_string(),
    })
}

/// The errno of a `write` or `start` step against `error` (default: success).
pub(crate) fn error(expected: Option<&str>, actual: Option<&str>) -> Option<Mismatch> {
    let show = |e: Option<&str>| e.unwrap_or("success").to_string();
    (expected != actual).then(|| Mismatch {
        what: "error".into(),
        expected: show(expected),
        actual: show(actual),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(None, Exit::Code(0), true)]
    #[case(None, Exit::Code(1), false)]
    #[case(Some(StatusExpectation::Code(32)), Exit::Code(32), true)]
    #[case(
        Some(StatusExpectation::Word(StatusWord::Nonzero)),
        Exit::Signal(9),
        true
    )]
    #[case(
        Some(StatusExpectation::Word(StatusWord::Nonzero)),
        Exit::Code(0),
        false
    )]
    #[case(Some(StatusExpectation::Word(StatusWord::Any)), Exit::Signal(9), true)]
    fn checks_status(
        #[case] expected: Option<StatusExpectation>,
        #[case] exit: Exit,
        #[case] holds: bool,
    ) {
        assert_eq!(status(expected, exit).is_none(), holds);
    }

    #[test]
    fn status_mismatch_says_both_sides() {
        let m = status(None, Exit::Signal(9)).unwrap();
        assert_eq!(
            (m.expected.as_str(), m.actual.as_str()),
            ("exit status 0", "killed by signal 9")
        );
    }

    #[test]
    fn checks_errors() {
        assert!(error(None, None).is_none());
        assert!(error(Some("EPERM"), Some("EPERM")).is_none());
        let m = error(None, Some("EPERM")).unwrap();
        assert_eq!(
            (m.expected.as_str(), m.actual.as_str()),
            ("success", "EPERM")
        );
    }

    #[test]
    fn checks_text_with_wildcards() {
        assert!(text("stdout", "a[..]c".into(), "abc\n").is_none());
        assert_eq!(text("stderr", "x".into(), "y").unwrap().what, "stderr");
    }
}
