//! Comparing results files across kernels, distributions and tools: `nsconform report`.
//!
//! Each results file becomes a column ([`input`] reads it, [`labels`] names it). [`diff`]
//! finds the scenarios whose outcome or observations differ between columns, [`steps`]
//! diffs them; the renderers ([`terminal`], [`markdown`], [`html`], [`json`]) show the result.
//! Scenarios that are the same everywhere are counted, never listed. `docs/report.md` is
//! the user's guide.
//!
//! For other commands (`nsconform matrix`): [`input::load`] each file, [`labels::label`]
//! the inputs, then [`compare`] and [`render`].

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

mod diff;
mod html;
pub(crate) mod input;
mod json;
pub(crate) mod labels;
mod markdown;
pub(crate) mod model;
mod steps;
mod terminal;
#[cfg(test)]
mod testdata;

pub(crate) use diff::compare;
use input::LoadError;
use labels::LabelError;
use model::{Comparison, Options};

/// Exit status when some scenario differs.
const DIFFERENT: u8 = 1;
/// Exit status for bad input.
const BAD_INPUT: u8 = 2;

/// Options of `nsconform report`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    /// Results files to compare (`nsconform run --results FILE`); the first is the baseline
    /// of every diff.
    #[arg(required = true, value_name = "RESULTS.json")]
    files: Vec<PathBuf>,
    /// Name a column instead of using its kernel release (repeatable).
    #[arg(long, value_name = "NAME=FILE")]
    label: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Terminal)]
    format: FormatArg,
    /// Write the report to FILE instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Also compare the exit status, errno, stdout and stderr of command steps (not only
    /// outcomes and observations).
    #[arg(long)]
    command_output: bool,
}

/// `--format` as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FormatArg {
    /// Plain text, coloured when standard output is a terminal.
    Terminal,
    /// GitHub-flavoured Markdown, e.g. for `$GITHUB_STEP_SUMMARY`.
    Markdown,
    /// One self-contained HTML page.
    Html,
    /// Machine-readable JSON (schema `nsconform-report/1`).
    Json,
}

/// How to render a [`Comparison`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Plain text, with ANSI colours when `colour`.
    Terminal {
        /// Whether to use ANSI colours.
        colour: bool,
    },
    /// GitHub-flavoured Markdown.
    Markdown,
    /// A self-contained HTML page.
    Html,
    /// JSON.
    Json,
}

/// Why `nsconform report` cannot do its work.
#[derive(Debug, thiserror::Error)]
enum ReportError {
    /// A results file cannot be used.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A `--label` cannot be used.
    #[error(transparent)]
    Label(#[from] LabelError),
    /// The report cannot be written.
    #[error("cannot write {file}: {source}")]
    Write {
        /// Where to.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Render `comparison` as `format`.
pub(crate) fn render(comparison: &Comparison, format: Format) -> String {
    match format {
        Format::Terminal { colour } => terminal::render(comparison, colour),
        Format::Markdown => markdown::render(comparison),
        Format::Html => html::render(comparison),
        Format::Json => json::render(comparison),
    }
}

/// Run `nsconform report`: exit 0 when no scenario differs, 1 when some do, 2 on bad input.
pub(crate) fn main(args: ReportArgs) -> ExitCode {
    match report(args) {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(DIFFERENT),
        Err(err) => {
            eprintln!("nsconform report: {err}");
            ExitCode::from(BAD_INPUT)
        }
    }
}

/// Do the work of [`main`]; `Ok(true)` when some scenario differs.
fn report(args: ReportArgs) -> Result<bool, ReportError> {
    let overrides = args
        .label
        .iter()
        .map(|text| labels::parse_override(text))
        .collect::<Result<Vec<_>, _>>()?;
    let inputs = args
        .files
        .iter()
        .map(|path| input::load(path))
        .collect::<Result<Vec<_>, _>>()?;
    let columns = labels::label(inputs, &overrides)?;
    let options = Options {
        command_output: args.command_output,
    };
    let comparison = compare(&columns, options);
    let format = match args.format {
        FormatArg::Terminal => Format::Terminal {
            colour: args.output.is_none()
                && std::io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        },
        FormatArg::Markdown => Format::Markdown,
        FormatArg::Html => Format::Html,
        FormatArg::Json => Format::Json,
    };
    let text = render(&comparison, format);
    match &args.output {
        Some(path) => std::fs::write(path, text).map_err(|source| ReportError::Write {
            file: path.display().to_string(),
            source,
        })?,
        None => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`| head`) is not an error worth reporting.
            let _ = stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush());
        }
    }
    Ok(comparison.differs())
}
