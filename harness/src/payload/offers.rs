//! What a scenario's commands can name beyond the machine's own files: the probe
//! (`{{probe}}`), the repository's fixtures (`{{fixtures}}`) and root filesystems
//! (`{{rootfs.NAME}}`).
//!
//! The supervisor finds the directories; the stand-in host bind-mounts them under
//! `/run/nsconform/` ([`super::kit`]) before it hides `/tmp` with a tmpfs, so a checkout
//! under `/tmp` works too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::kit::{self, KitError};
use crate::scenario::load::LoadedScenario;
use crate::template::{self, Placeholder};

/// Directories a scenario uses, found before its stand-in host exists.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    /// The probe kit is needed (a `probe` step or `{{probe}}` anywhere).
    probe: bool,
    /// The repository's `fixtures/`, when `{{fixtures}}` is used.
    fixtures: Option<PathBuf>,
    /// `requires.rootfs`, resolved.
    rootfs: Vec<(String, PathBuf)>,
    /// The userland the whole run happens in (`nsconform run --userland`), by the name it
    /// is offered under.
    userland: Option<String>,
}

/// The values of `{{probe}}`, `{{fixtures}}` and `{{rootfs.NAME}}` for one run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Offers {
    /// `{{probe}}`.
    pub(crate) probe: String,
    /// `{{fixtures}}`.
    pub(crate) fixtures: String,
    /// `{{rootfs.NAME}}` by name.
    rootfs: BTreeMap<String, String>,
}

impl Offers {
    /// `{{rootfs.NAME}}` (validation made sure `name` is in `requires.rootfs`).
    pub(crate) fn rootfs(&self, name: &str) -> String {
        self.rootfs.get(name).cloned().unwrap_or_default()
    }
}

impl Sources {
    /// Open what `loaded` uses. `rootfs` resolves a `requires.rootfs` name (already
    /// checked by the requirements, so a failure here is unexpected).
    ///
    /// `userland` is the root filesystem the whole run happens in, if any: it is offered
    /// too, and [`Sources::userland_root`] names it.
    pub(crate) fn open(
        loaded: &LoadedScenario,
        rootfs: impl Fn(&str) -> Result<PathBuf, String>,
        userland: Option<&str>,
    ) -> Result<Sources, String> {
        let scenario = &loaded.scenario;
        let probe = scenario.steps.iter().any(|s| s.get_ref().probe.is_some())
            || uses(loaded, &Placeholder::Probe);
        let fixtures = if uses(loaded, &Placeholder::Fixtures) {
            let dir = fixtures_dir(&loaded.path).ok_or_else(|| {
                format!(
                    "{}: uses {{{{fixtures}}}}, but no `fixtures/` directory is beside it or above it",
                    loaded.path.display()
                )
            })?;
            Some(dir)
        } else {
            None
        };
        let mut trees = Vec::new();
        for name in &scenario.requires.rootfs {
            let name = name.get_ref();
            trees.push((name.clone(), rootfs(name)?));
        }
        let userland = match userland {
            None => None,
            Some(spec) => {
                // A path is offered as `userland`; a name under its own name.
                let name = if spec.contains('/') { "userland" } else { spec };
                if !trees.iter().any(|(n, _)| n == name) {
                    trees.push((name.to_string(), rootfs(spec)?));
                }
                Some(name.to_string())
            }
        };
        Ok(Sources {
            // The userland's commands find the probe where everyone else does.
            probe: probe || userland.is_some(),
            fixtures,
            rootfs: trees,
            userland,
        })
    }

    /// Where the run's userland is offered inside the stand-in host, if the run has one.
    pub(crate) fn userland_root(&self) -> Option<PathBuf> {
        self.userland
            .as_ref()
            .map(|name| Path::new(kit::RUN_DIR).join("rootfs").join(name))
    }

    /// Offer everything inside the stand-in host: run there once its `/run` is mounted and
    /// before `/tmp` is hidden.
    pub(crate) fn offer_in_standin(&self) -> Result<Offers, KitError> {
        let mut offers = Offers::default();
        if self.probe {
            kit::install_probe()?;
            offers.probe = kit::PROBE_COMMAND.to_string();
        }
        if let Some(dir) = &self.fixtures {
            offers.fixtures = kit::bind_dir(dir, "fixtures")?.display().to_string();
        }
        for (name, dir) in &self.rootfs {
            let target = kit::bind_dir(dir, &format!("rootfs/{name}"))?;
            offers
                .rootfs
                .insert(name.clone(), target.display().to_string());
        }
        Ok(offers)
    }

    /// Offer the same on the machine's real namespaces (`host = "real"`): nothing is
    /// mounted there; the values are the real paths.
    pub(crate) fn offer_on_real_host(&self) -> Offers {
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "nsconform".to_string());
        Offers {
            probe: format!("{exe} probe"),
            fixtures: self
                .fixtures
                .as_ref()
                .map(|dir| dir.display().to_string())
                .unwrap_or_default(),
            rootfs: self
                .rootfs
                .iter()
                .map(|(name, dir)| (name.clone(), dir.display().to_string()))
                .collect(),
        }
    }
}

/// Whether any step's text names `placeholder` (as the template parser reads it, so
/// `{{ probe }}` counts too).
fn uses(loaded: &LoadedScenario, placeholder: &Placeholder) -> bool {
    loaded.scenario.steps.iter().any(|step| {
        step.get_ref()
            .template_texts()
            .into_iter()
            .filter_map(|(text, _)| template::placeholders(text).ok())
            .any(|found| found.iter().any(|(p, _)| p == placeholder))
    })
}

/// The nearest `fixtures/` directory beside the scenario's directory or above it.
fn fixtures_dir(scenario: &Path) -> Option<PathBuf> {
    let absolute = std::fs::canonicalize(scenario).ok()?;
    absolute
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("fixtures"))
        .find(|candidate| candidate.is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(steps: &str) -> LoadedScenario {
        let source = format!("description = \"x\"\n{steps}");
        crate::scenario::load::load_str(Path::new("x.toml"), source)
            .unwrap_or_else(|_| panic!("valid scenario"))
    }

    #[test]
    fn placeholders_are_found_as_the_template_parser_reads_them() {
        let spaced = loaded("[[steps]]\nrun = \"bwrap --ro-bind / / {{ probe }}\"\n");
        assert!(uses(&spaced, &Placeholder::Probe));
        assert!(!uses(&spaced, &Placeholder::Fixtures));
        let in_argv = loaded("[[steps]]\nargv = [\"ls\", \"{{fixtures}}/oci\"]\n");
        assert!(uses(&in_argv, &Placeholder::Fixtures));
        let commented = loaded("# {{probe}} in a comment\n[[steps]]\nrun = \"true\"\n");
        assert!(!uses(&commented, &Placeholder::Probe));
    }

    #[test]
    fn finds_the_fixtures_directory_above_a_scenario() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("fixtures/oci")).unwrap();
        std::fs::create_dir_all(root.path().join("scenarios/tools/crun")).unwrap();
        let scenario = root.path().join("scenarios/tools/crun/x.toml");
        std::fs::write(&scenario, "").unwrap();
        let found = fixtures_dir(&scenario).unwrap();
        assert_eq!(
            found,
            std::fs::canonicalize(root.path()).unwrap().join("fixtures")
        );
        let inside = root.path().join("fixtures/oci/y.toml");
        std::fs::write(&inside, "").unwrap();
        assert_eq!(fixtures_dir(&inside), Some(found));
    }
}
