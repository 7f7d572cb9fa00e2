//! Read a scenario file, parse it, validate it, and report problems as `file:line:column`.

use std::fmt;
use std::path::{Path, PathBuf};

use super::model::Scenario;
use super::validate;

/// A problem at a position in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Diagnostic {
    /// The scenario file.
    pub(crate) path: PathBuf,
    /// 1-based line, when the problem has a position.
    pub(crate) line: Option<usize>,
    /// 1-based column (in characters), when the problem has a position.
    pub(crate) column: Option<usize>,
    /// One line saying what is wrong and what was expected.
    pub(crate) message: String,
}

impl Diagnostic {
    /// A diagnostic at byte `offset` of `source`.
    pub(crate) fn at(path: &Path, source: &str, offset: Option<usize>, message: String) -> Self {
        let (line, column) = match offset {
            Some(offset) => {
                let (line, column) = line_column(source, offset);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        // One diagnostic per line: names taken from the file may hold newlines.
        let message = message.replace('\n', "\\n");
        Diagnostic {
            path: path.to_path_buf(),
            line,
            column,
            message,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(column) = self.column {
            write!(f, ":{column}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LoadError {
    /// The file could not be read.
    #[error("{path}: cannot read the scenario: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid scenario; every problem found is listed.
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A parsed and validated scenario with its source, for positions in later messages.
#[derive(Debug, Clone)]
pub(crate) struct LoadedScenario {
    /// The file it came from.
    pub(crate) path: PathBuf,
    /// The file's text.
    pub(crate) source: String,
    /// The parsed scenario.
    pub(crate) scenario: Scenario,
}

impl LoadedScenario {
    /// 1-based line of byte `offset` in the source.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        line_column(&self.source, offset).0
    }
}

/// Read, parse and validate the scenario at `path`.
pub(crate) fn load_file(path: &Path) -> Result<LoadedScenario, LoadError> {
    let source = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    load_str(path, source)
}

/// Parse and validate `source` as if read from `path`.
pub(crate) fn load_str(path: &Path, source: String) -> Result<LoadedScenario, LoadError> {
    let scenario: Scenario = toml::from_str(&source).map_err(|err| {
        let offset = err.span().map(|span| span.start);
        let message = err.message().trim().replace('\n', " ");
        LoadError::Invalid(vec![Diagnostic::at(path, &source, offset, message)])
    })?;
    let loaded = LoadedScenario {
        path: path.to_path_buf(),
        source,
        scenario,
    };
    let diagnostics = validate::validate(&loaded);
    if diagnostics.is_empty() {
        Ok(loaded)
    } else {
        Err(LoadError::Invalid(diagnostics))
    }
}

/// 1-based line and character column of byte `offset` in `source`.
pub(crate) fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..floor_char_boundary(source, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(source: &str, mut offset: usize) -> usize {
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("abc", 0, (1, 1))]
    #[case("abc\ndef", 5, (2, 2))]
    #[case("é\nx", 3, (2, 1))]
    #[case("ab", 99, (1, 3))]
    fn computes_line_and_column(
        #[case] source: &str,
        #[case] offset: usize,
        #[case] expected: (usize, usize),
    ) {
        assert_eq!(line_column(source, offset), expected);
    }

    fn first_error(source: &str) -> Diagnostic {
        match load_str(Path::new("x.toml"), source.to_string()) {
            Err(LoadError::Invalid(diagnostics)) => diagnostics[0].clone(),
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn unknown_key_has_position() {
        let d = first_error("description = \"d\"\nbogus = 1\n[[steps]]\nrun = \"true\"\n");
        assert_eq!((d.line, d.column), (Some(2), Some(1)));
        assert!(d.message.contains("unknown field `bogus`"), "{}", d.message);
    }

    #[test]
    fn wrong_type_has_position() {
        let d = first_error("description = \"d\"\n[[steps]]\nrun = 5\n");
        assert_eq!(d.line, Some(3));
        assert!(d.message.contains("expected a string"), "{}", d.message);
    }

    #[test]
    fn unknown_actor_has_position() {
        let d = first_error("description = \"d\"\n[[steps]]\nactor = \"ghost\"\nrun = \"true\"\n");
        assert_eq!((d.line, d.column), (Some(3), Some(9)));
        assert!(d.message.contains("unknown actor `ghost`"), "{}", d.message);
    }
}
