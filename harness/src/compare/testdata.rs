//! The recorded results files in `fixtures/results/`, for the tests of the report.
//!
//! `host-6.18.json` is a real run, trimmed to a few scenarios; `fake-5.10.json` and
//! `fake-6.1.json` are edited copies (see `fixtures/results/README.md` for what differs).

use std::path::PathBuf;

use super::input::{load, Input};
use super::model::{Column, Comparison, Options};

/// The fixture files, in report order.
pub(crate) const FILES: [&str; 3] = ["host-6.18.json", "fake-5.10.json", "fake-6.1.json"];

/// The path of fixture `name`, relative to the workspace (so messages stay short).
pub(crate) fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/results")
        .join(name)
}

/// Fixture `name`, read, with its file shown as `fixtures/results/NAME`.
pub(crate) fn input(name: &str) -> Input {
    let mut input = load(&path(name)).expect("a fixture results file");
    input.file = format!("fixtures/results/{name}");
    input
}

/// All fixtures, read.
pub(crate) fn inputs() -> Vec<Input> {
    FILES.iter().map(|name| input(name)).collect()
}

/// All fixtures as labelled columns.
pub(crate) fn columns() -> Vec<Column> {
    super::labels::label(inputs(), &[]).expect("labels")
}

/// The comparison of all fixtures.
pub(crate) fn comparison(options: Options) -> Comparison {
    super::diff::compare(&columns(), options)
}

/// The names of the scenarios a comparison found different, in order.
pub(crate) fn names(comparison: &Comparison) -> Vec<&str> {
    comparison
        .different
        .iter()
        .map(|d| d.name.as_str())
        .collect()
}
