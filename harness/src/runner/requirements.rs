//! The requirements of a run's scenarios, checked once before the run in one
//! `nsconform __requirements` process (with the supervisors' environment: feature cache, tool
//! path, userland), so each feature is probed once.
//!
//! The answer has two parts: why each scenario that cannot run here is skipped, and which
//! of the others may start at once. A warm supervisor told that its scenario is *ready*
//! lets its orchestrator run it as soon as it has loaded it, rather than after checking the
//! requirements again itself, which is the one wait left between the two on a scenario's
//! critical path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::scenario::model::HostMode;
use crate::scenario::{load_file, LoadedScenario};

/// What `nsconform __requirements` prints, as one JSON object.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Verdicts {
    /// Why each scenario that cannot run here is skipped, by path.
    pub(crate) unmet: BTreeMap<PathBuf, String>,
    /// The scenarios that may start at once: valid, every requirement met, on a stand-in
    /// host (a `host = "real"` one starts cold), with the default cap on processes (a warm
    /// stand-in has it already) and a valid tool path.
    pub(crate) ready: BTreeSet<PathBuf>,
}

/// Check each of `paths` here (the body of `__requirements`). Files that do not load are in
/// neither part: their run reports why.
pub(crate) fn verdicts(paths: &[PathBuf]) -> Verdicts {
    let mut probes = crate::probe::Cache::from_env();
    let tool_path_valid = crate::requires::tool_path().is_ok();
    let mut verdicts = Verdicts::default();
    for path in paths {
        let Ok(loaded) = load_file(path) else {
            continue;
        };
        match crate::requires::check(&loaded.scenario, &mut probes) {
            Err(reason) => {
                verdicts.unmet.insert(path.clone(), reason);
            }
            Ok(()) if tool_path_valid && starts_warm(&loaded) => {
                verdicts.ready.insert(path.clone());
            }
            Ok(()) => {}
        }
    }
    verdicts
}

/// Whether a warm stand-in host, as made before its scenario is known, fits `loaded`.
fn starts_warm(loaded: &LoadedScenario) -> bool {
    loaded.scenario.host == HostMode::StandIn && loaded.scenario.max_processes.is_none()
}

/// Ask `command` (an `nsconform __requirements` with the supervisors' environment) about
/// `paths`.
pub(super) fn ask(
    mut command: std::process::Command,
    paths: impl IntoIterator<Item = impl AsRef<Path>>,
) -> Result<Verdicts, String> {
    let output = command
        .arg("__requirements")
        .args(paths.into_iter().map(|p| p.as_ref().to_path_buf()))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the requirement check: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "requirement check failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("requirement check gave no answer: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn scenarios_are_skipped_ready_or_left_to_their_supervisor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = "description = \"d\"\n[[steps]]\nrun = \"true\"\n";
        let ready = write(dir.path(), "ready.toml", plain);
        let unmet = write(
            dir.path(),
            "unmet.toml",
            &plain.replace(
                "[[steps]]",
                "[requires]\ncommands = [\"no-such-program-anywhere\"]\n[[steps]]",
            ),
        );
        let real = write(
            dir.path(),
            "real.toml",
            &format!("host = \"real\"\n{plain}"),
        );
        let capped = write(
            dir.path(),
            "capped.toml",
            &format!("max_processes = 10\n{plain}"),
        );
        let broken = write(dir.path(), "broken.toml", "description = [");
        let verdicts = verdicts(&[
            ready.clone(),
            unmet.clone(),
            real.clone(),
            capped.clone(),
            broken.clone(),
        ]);
        assert_eq!(verdicts.ready, BTreeSet::from([ready]));
        assert_eq!(verdicts.unmet.keys().collect::<Vec<_>>(), [&unmet]);
        assert!(
            verdicts.unmet[&unmet].contains("no-such-program-anywhere"),
            "{:?}",
            verdicts.unmet
        );
        let json = serde_json::to_string(&verdicts).expect("json");
        let back: Verdicts = serde_json::from_str(&json).expect("read back");
        assert_eq!(back.ready, verdicts.ready);
        assert_eq!(back.unmet, verdicts.unmet);
    }
}
