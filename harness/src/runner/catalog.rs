//! What a run needs to know of its scenario files before it starts them, read once: the
//! features they imply (probed once for the run), the sysctls they name (for the host
//! guard), the programs they require (for the results file), and each one's time limit (for
//! the runner's backstop, so that giving a scenario out never waits for a parse).
//!
//! A file that does not load is left out of every list: its run reports why.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use super::ScenarioFile;
use crate::scenario::{load_file, LoadedScenario};

/// The scenario files of a run, each loaded once.
#[derive(Debug, Default)]
pub struct Catalog {
    loaded: Vec<LoadedScenario>,
    limits: HashMap<PathBuf, Duration>,
}

impl Catalog {
    /// Load each of `files` (those that do not load are left out).
    pub fn load(files: &[ScenarioFile]) -> Catalog {
        let mut catalog = Catalog::default();
        for file in files {
            if let Ok(loaded) = load_file(&file.path) {
                catalog
                    .limits
                    .insert(file.path.clone(), crate::supervisor::timeout_of(&loaded));
                catalog.loaded.push(loaded);
            }
        }
        catalog
    }

    /// The features the scenarios require or imply, sorted, each once.
    pub(crate) fn implied_features(&self) -> Vec<String> {
        let names: BTreeSet<String> = self
            .loaded
            .iter()
            .flat_map(|loaded| crate::requires::implied_features(&loaded.scenario))
            .map(|feature| feature.to_string())
            .collect();
        names.into_iter().collect()
    }

    /// Every sysctl the scenarios name in `observe` steps, sorted, each once.
    pub fn sysctls(&self) -> Vec<String> {
        let names: BTreeSet<String> = self
            .loaded
            .iter()
            .flat_map(|loaded| loaded.scenario.steps.iter())
            .flat_map(|step| step.get_ref().sysctls.iter().cloned())
            .collect();
        names.into_iter().collect()
    }

    /// Every program the scenarios list in `requires.commands`, sorted.
    pub(crate) fn commands(&self) -> BTreeSet<String> {
        self.loaded
            .iter()
            .flat_map(|loaded| loaded.scenario.requires.commands.iter())
            .map(|command| command.get_ref().clone())
            .collect()
    }

    /// The time limit of each file that loaded, by path.
    pub(crate) fn limits(&self) -> &HashMap<PathBuf, Duration> {
        &self.limits
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::discover;
    use super::Catalog;

    fn catalog_of(texts: &[(&str, &str)]) -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in texts {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        let files = discover(&[dir.path().to_path_buf()]).expect("discover");
        let catalog = Catalog::load(&files);
        (dir, catalog)
    }

    #[test]
    fn it_gathers_sysctls_commands_and_limits_once_each_and_skips_bad_files() {
        let (dir, catalog) = catalog_of(&[
            (
                "a.toml",
                "description = \"a\"\ntimeout = \"3s\"\n[requires]\ncommands = [\"ip\", \"sh\"]\n\
                 [[steps]]\nobserve = [\"sysctl\"]\nsysctls = [\"kernel.pid_max\"]\n",
            ),
            (
                "b.toml",
                "description = \"b\"\n[requires]\ncommands = [\"sh\"]\n[[steps]]\nobserve = [\"sysctl\"]\n\
                 sysctls = [\"kernel.pid_max\", \"net.ipv4.ip_forward\"]\n",
            ),
            ("broken.toml", "this is not toml ["),
        ]);
        assert_eq!(catalog.sysctls(), ["kernel.pid_max", "net.ipv4.ip_forward"]);
        assert_eq!(
            catalog.commands().into_iter().collect::<Vec<_>>(),
            ["ip", "sh"]
        );
        let limits = catalog.limits();
        assert_eq!(limits.len(), 2, "the broken file is left out");
        assert_eq!(
            limits.get(&dir.path().join("a.toml")).map(|d| d.as_secs()),
            Some(3)
        );
        assert!(limits.contains_key(Path::new(&dir.path().join("b.toml"))));
    }
}
