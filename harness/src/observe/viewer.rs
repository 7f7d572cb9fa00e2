//! The maps of a user namespace as one process reads them: `uid_map` and `gid_map` show the
//! outside ids relative to the reader's own user namespace, so the viewpoint matters.

use std::os::fd::OwnedFd;

use serde_json::{json, Value};

use super::{read_at, ObserveError};

/// `uid_map`, `gid_map` (lines with single spaces) and `setgroups` of the process whose
/// `/proc/PID` directory is `subject`, read by the caller.
pub(crate) fn maps(subject: &OwnedFd) -> Result<Value, ObserveError> {
    let lines = |text: String| -> Vec<String> {
        text.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect()
    };
    Ok(json!({
        "uid_map": lines(read_at(subject, "uid_map")?),
        "gid_map": lines(read_at(subject, "gid_map")?),
        "setgroups": read_at(subject, "setgroups")?.trim(),
    }))
}
