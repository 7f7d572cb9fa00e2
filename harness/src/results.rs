//! The results file (`nsconform run --results FILE`): one JSON record of a run — the machine,
//! the tools the scenarios used, the probed features, and every scenario's outcome, steps,
//! duration and observations. `docs/results.md` documents the schema; [`SCHEMA`] versions
//! it, and the structs here (with unknown fields refused) are its definition.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::report::{Outcome, ScenarioReport};

/// The schema identifier written in every results file.
pub const SCHEMA: &str = "nsconform-results/1";

/// A whole results file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// When the run started, UTC, RFC 3339 (`2026-11-29T10:44:00Z`).
    pub started_at: String,
    /// The harness version (`nsconform --version`).
    pub harness_version: String,
    /// The machine the run happened on.
    pub machine: Machine,
    /// Each tool the scenarios require, with the first line of its version output.
    pub tools: BTreeMap<String, String>,
    /// The directories put first on the commands' `PATH` (`nsconform run --tool-path`,
    /// `NSCONFORM_TOOL_PATH`), in order; absent when none were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_path: Vec<String>,
    /// The root filesystem every scenario's host ran in (`nsconform run --userland`);
    /// absent for the machine's own userland.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userland: Option<Userland>,
    /// Each probed feature: available, or why not.
    pub features: BTreeMap<String, FeatureResult>,
    /// Counts and total wall time.
    pub summary: Summary,
    /// Every scenario run, sorted by name.
    pub scenarios: Vec<ScenarioReport>,
    /// Present when the run happened inside a VM started by `nsconform vm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<VmRun>,
}

/// How a run inside a VM went (added by `nsconform vm` on the host side).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRun {
    /// The kernel booted (its release or the image's path).
    #[serde(default)]
    pub kernel: Option<String>,
    /// `kvm` or `tcg`.
    #[serde(default)]
    pub accelerator: Option<String>,
    /// From starting QEMU to the suite starting inside the guest, in milliseconds.
    #[serde(default)]
    pub boot_ms: Option<u64>,
    /// From starting QEMU to having the results file back, in milliseconds.
    #[serde(default)]
    pub round_trip_ms: Option<u64>,
    /// How many boots it took (2 when the first gave no result and was retried).
    #[serde(default)]
    pub attempts: Option<u32>,
}

/// The userland of a run (`nsconform run --userland`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Userland {
    /// The name or path given.
    pub name: String,
    /// From the tree's `/etc/os-release` (empty fields when absent, e.g. busybox).
    pub distribution: Distribution,
}

/// Describe the userland `name` whose tree is at `root`.
pub(crate) fn userland(name: &str, root: &std::path::Path) -> Userland {
    let os_release = std::fs::read_to_string(root.join("etc/os-release"))
        .or_else(|_| std::fs::read_to_string(root.join("usr/lib/os-release")))
        .unwrap_or_default();
    Userland {
        name: name.to_string(),
        distribution: distribution(&os_release),
    }
}

/// The machine a run happened on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// `uname -r`.
    pub kernel_release: String,
    /// `uname -v`.
    pub kernel_version: String,
    /// `uname -m`.
    pub architecture: String,
    /// From `/etc/os-release`: `ID`, `VERSION_ID`, `PRETTY_NAME` (empty when absent).
    pub distribution: Distribution,
}

/// The distribution, from `/etc/os-release`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distribution {
    /// `ID`, e.g. `debian`.
    pub id: String,
    /// `VERSION_ID`, e.g. `12`.
    pub version_id: String,
    /// `PRETTY_NAME`, e.g. `Debian GNU/Linux 12 (bookworm)`.
    pub pretty_name: String,
}

/// A probed feature.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureResult {
    /// Whether the machine has it.
    pub available: bool,
    /// Why not, when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Counts of outcomes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Summary {
    /// Scenarios that passed.
    pub passed: usize,
    /// Scenarios that failed or timed out.
    pub failed: usize,
    /// Scenarios skipped for unmet requirements.
    pub skipped: usize,
    /// Scenario files that are not valid.
    pub invalid: usize,
    /// Wall time of the whole run, in milliseconds.
    pub duration_ms: u64,
}

impl Summary {
    /// Count `reports`.
    pub fn of(reports: &[ScenarioReport], duration_ms: u64) -> Summary {
        let mut summary = Summary {
            duration_ms,
            ..Summary::default()
        };
        for report in reports {
            match report.outcome {
                Outcome::Passed => summary.passed += 1,
                Outcome::Failed { .. } | Outcome::TimedOut { .. } => summary.failed += 1,
                Outcome::Skipped { .. } => summary.skipped += 1,
                Outcome::Invalid { .. } => summary.invalid += 1,
            }
        }
        summary
    }
}

/// Describe this machine.
pub(crate) fn machine() -> Machine {
    let uname = nix::sys::utsname::uname().ok();
    let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uname
            .as_ref()
            .map(|u| f(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    Machine {
        kernel_release: field(|u| u.release()),
        kernel_version: field(|u| u.version()),
        architecture: field(|u| u.machine()),
        distribution: distribution(&std::fs::read_to_string("/etc/os-release").unwrap_or_default()),
    }
}

/// Parse `/etc/os-release` text.
pub(crate) fn distribution(text: &str) -> Distribution {
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    Distribution {
        id: value("ID"),
        version_id: value("VERSION_ID"),
        pretty_name: value("PRETTY_NAME"),
    }
}

/// The first line of `tool`'s version output (`ip -V`, otherwise `--version`), or why none.
pub(crate) fn tool_version(tool: &str) -> String {
    version_of(tool, crate::requires::find_on_path(tool))
}

/// [`tool_version`] of the `tool` a run with the tool directories `dirs` uses.
pub(crate) fn tool_version_with(dirs: &[std::path::PathBuf], tool: &str) -> String {
    version_of(tool, crate::requires::find_with_tool_dirs(dirs, tool))
}

fn version_of(tool: &str, path: Option<std::path::PathBuf>) -> String {
    let Some(path) = path else {
        return "not found on PATH".to_string();
    };
    let flag = if tool == "ip" { "-V" } else { "--version" };
    match Command::new(path)
        .arg(flag)
        .stdin(Stdio::null())
        .env("LC_ALL", "C")
        .output()
    {
        Ok(output) => {
            let text = String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr);
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("unknown")
                .to_string()
        }
        Err(err) => format!("cannot run: {err}"),
    }
}

/// UTC time as RFC 3339, to the second.
pub(crate) fn rfc3339(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_utc_times() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_869_840)),
            "2026-11-28T12:44:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn parses_os_release() {
        let d = distribution(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
        );
        assert_eq!((d.id.as_str(), d.version_id.as_str()), ("debian", "12"));
        assert_eq!(d.pretty_name, "Debian GNU/Linux 12 (bookworm)");
    }
}
