//! Placeholders: `{{hostname}}`, `{{uid}}`, `{{gid}}`, `{{pid.ACTOR}}`, `{{var.NAME}}`,
//! `{{probe}}`, `{{fixtures}}` and `{{rootfs.NAME}}`.
//!
//! Scenario text (commands, written content, expected output) may name values known only at
//! run time. A template is parsed once at load time, so an unknown placeholder is reported
//! with its position before anything runs, and expanded later by the orchestrator.

use std::fmt;

/// A value known only at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Placeholder {
    /// The host's hostname when the scenario started.
    Hostname,
    /// The uid of the process running the harness.
    Uid,
    /// The gid of the process running the harness.
    Gid,
    /// The PID of an actor as seen from the host.
    Pid(String),
    /// Standard output captured by an earlier step.
    Var(String),
    /// The command that runs the probe (`nsconform probe`).
    Probe,
    /// The repository's `fixtures/` directory, as the scenario's commands see it.
    Fixtures,
    /// A root filesystem named in `requires.rootfs`, as the scenario's commands see it.
    Rootfs(String),
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placeholder::Hostname => f.write_str("{{hostname}}"),
            Placeholder::Uid => f.write_str("{{uid}}"),
            Placeholder::Gid => f.write_str("{{gid}}"),
            Placeholder::Pid(actor) => write!(f, "{{{{pid.{actor}}}}}"),
            Placeholder::Var(name) => write!(f, "{{{{var.{name}}}}}"),
            Placeholder::Probe => f.write_str("{{probe}}"),
            Placeholder::Fixtures => f.write_str("{{fixtures}}"),
            Placeholder::Rootfs(name) => write!(f, "{{{{rootfs.{name}}}}}"),
        }
    }
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    /// Text taken as it is.
    Literal(String),
    /// A placeholder, with its byte offset in the template text.
    Placeholder(Placeholder, usize),
}

/// A problem in a template, at a byte offset of the template text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct TemplateError {
    /// Byte offset of the offending `{{` in the template text.
    pub(crate) offset: usize,
    /// What is wrong.
    pub(crate) message: String,
}

/// Parse `text` into literal and placeholder segments.
pub(crate) fn parse(text: &str) -> Result<Vec<Segment>, TemplateError> {
    let mut segments = Vec::new();
    let mut rest = text;
    let mut consumed = 0;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            segments.push(Segment::Literal(rest[..open].to_string()));
        }
        let offset = consumed + open;
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| TemplateError {
            offset,
            message: "unclosed placeholder: `{{` without `}}`".to_string(),
        })?;
        let name = after[..close].trim();
        segments.push(Segment::Placeholder(placeholder(name, offset)?, offset));
        let advance = open + 2 + close + 2;
        rest = &rest[advance..];
        consumed += advance;
    }
    if !rest.is_empty() {
        segments.push(Segment::Literal(rest.to_string()));
    }
    Ok(segments)
}

fn placeholder(name: &str, offset: usize) -> Result<Placeholder, TemplateError> {
    let unknown = || {
        TemplateError {
        offset,
        message: format!(
            "unknown placeholder `{{{{{name}}}}}`: expected hostname, uid, gid, pid.ACTOR, var.NAME, probe, fixtures or rootfs.NAME"
        ),
    }
    };
    match name {
        "hostname" => Ok(Placeholder::Hostname),
        "uid" => Ok(Placeholder::Uid),
        "gid" => Ok(Placeholder::Gid),
        "probe" => Ok(Placeholder::Probe),
        "fixtures" => Ok(Placeholder::Fixtures),
        _ => {
            let (kind, arg) = name.split_once('.').ok_or_else(unknown)?;
            if arg.is_empty() {
                return Err(unknown());
            }
            match kind {
                "pid" => Ok(Placeholder::Pid(arg.to_string())),
                "var" => Ok(Placeholder::Var(arg.to_string())),
                "rootfs" => Ok(Placeholder::Rootfs(arg.to_string())),
                _ => Err(unknown()),
            }
        }
    }
}

/// Expand parsed segments, asking `resolve` for each placeholder's value.
pub(crate) fn expand<E>(
    segments: &[Segment],
    mut resolve: impl FnMut(&Placeholder) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Literal(text) => out.push_str(text),
            Segment::Placeholder(placeholder, _) => out.push_str(&resolve(placeholder)?),
        }
    }
    Ok(out)
}

/// The placeholders in `text`, or the first error.
pub(crate) fn placeholders(text: &str) -> Result<Vec<(Placeholder, usize)>, TemplateError> {
    Ok(parse(text)?
        .into_iter()
        .filter_map(|segment| match segment {
            Segment::Placeholder(p, offset) => Some((p, offset)),
            Segment::Literal(_) => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("plain", vec![Segment::Literal("plain".into())])]
    #[case("{{hostname}}", vec![Segment::Placeholder(Placeholder::Hostname, 0)])]
    #[case("a {{ pid.shell }} b", vec![
        Segment::Literal("a ".into()),
        Segment::Placeholder(Placeholder::Pid("shell".into()), 2),
        Segment::Literal(" b".into()),
    ])]
    #[case("{{uid}}{{var.x}}", vec![
        Segment::Placeholder(Placeholder::Uid, 0),
        Segment::Placeholder(Placeholder::Var("x".into()), 7),
    ])]
    fn parses(#[case] text: &str, #[case] expected: Vec<Segment>) {
        assert_eq!(parse(text).unwrap(), expected);
    }

    #[rstest]
    #[case("x {{nope}}", 2, "unknown placeholder")]
    #[case("{{pid.}}", 0, "unknown placeholder")]
    #[case("ok {{hostname", 3, "unclosed")]
    fn rejects(#[case] text: &str, #[case] offset: usize, #[case] message: &str) {
        let err = parse(text).unwrap_err();
        assert_eq!(err.offset, offset);
        assert!(err.message.contains(message), "{}", err.message);
    }

    #[test]
    fn expands_with_resolver() {
        let segments = parse("pid={{pid.a}} host={{hostname}}").unwrap();
        let out = expand(&segments, |p| -> Result<String, ()> {
            Ok(match p {
                Placeholder::Pid(a) => format!("<{a}>"),
                _ => "h".into(),
            })
        })
        .unwrap();
        assert_eq!(out, "pid=<a> host=h");
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "{{hostname}}",
            "{{uid}}",
            "{{gid}}",
            "{{pid.a}}",
            "{{var.b}}",
        ] {
            let segments = parse(text).unwrap();
            let Segment::Placeholder(p, _) = &segments[0] else {
                panic!()
            };
            assert_eq!(p.to_string(), text);
        }
    }
}
