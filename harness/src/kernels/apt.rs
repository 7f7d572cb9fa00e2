//! A private apt: its own configuration, sources, lists and downloads under
//! `kernels/apt/`, so fetching kernels never reads or changes the host's apt state.
//!
//! Every `apt-get` run gets `APT_CONFIG=kernels/apt/apt.conf`. apt reads that file first,
//! and it points every directory apt uses (`Dir::Etc`, its `apt.conf.d`, `sources.list`,
//! preferences and trusted keys, `Dir::State` with an empty dpkg status, `Dir::Cache`,
//! `Dir::Log`) into the private root, so none of the host's configuration (or its hooks,
//! such as `APT::Update::Post-Invoke`) is read and nothing under `/etc/apt`,
//! `/var/lib/apt` or `/var/cache/apt` is written. Nothing is installed: packages are only
//! downloaded (`apt-get download`) and unpacked with `dpkg-deb -x` elsewhere.
//!
//! Indexes are authenticated as usual: each source is `signed-by` the host's Debian
//! archive keyring (`/usr/share/keyrings/debian-archive-keyring.gpg`, package
//! `debian-archive-keyring`), which on Debian 12 verifies every suite used here, sid
//! included (the archive signs with the current and the previous release's keys). No
//! source is ever marked `trusted=yes`. `Acquire::Check-Valid-Until` is off, as in the
//! host's own apt configuration here: the archive this machine reaches can be a frozen
//! mirror whose `Valid-Until` dates have passed; signatures are still checked.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The Debian archive keyring on the host (read only).
pub(crate) const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The archive and the security archive.
const DEBIAN: &str = "https://deb.debian.org/debian";
/// The security archive.
const SECURITY: &str = "https://deb.debian.org/debian-security";

/// The suites searched, oldest first, with their archive.
pub(crate) const SUITES: [(&str, &str); 6] = [
    (SECURITY, "bullseye-security"),
    (DEBIAN, "bookworm"),
    (SECURITY, "bookworm-security"),
    (DEBIAN, "trixie"),
    (SECURITY, "trixie-security"),
    (DEBIAN, "sid"),
];

/// Errors of the private apt.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AptError {
    /// The keyring is not on the host.
    #[error("{KEYRING} is missing: install the package debian-archive-keyring")]
    NoKeyring,
    /// A file of the private root cannot be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A program could not be started (apt not installed?).
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A program failed.
    #[error("`{command}` failed ({status}){stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// `: ` and the end of its standard error, when captured; else empty.
        stderr: String,
    },
}

/// One downloaded `Packages` index and the suite it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexFile {
    /// The file as apt names it (it may be stored compressed; read it with `read_index`).
    pub(crate) path: PathBuf,
    /// The suite, as in `sources.list`.
    pub(crate) suite: String,
}

/// The private apt rooted at `kernels/apt`.
#[derive(Debug, Clone)]
pub(crate) struct PrivateApt {
    /// The root directory.
    root: PathBuf,
}

impl PrivateApt {
    /// The private apt of a kernels directory (nothing is created yet).
    pub(crate) fn new(kernels_dir: &Path) -> PrivateApt {
        PrivateApt {
            root: kernels_dir.join("apt"),
        }
    }

    /// Create the directories and (re)write the configuration and sources.
    pub(crate) fn prepare(&self) -> Result<(), AptError> {
        if !Path::new(KEYRING).is_file() {
            return Err(AptError::NoKeyring);
        }
        let as_root = nix::unistd::geteuid().is_root();
        for dir in [
            "etc/apt.conf.d",
            "etc/preferences.d",
            "etc/sources.list.d",
            "etc/trusted.gpg.d",
            "state/lists/partial",
            "cache/archives/partial",
            "log",
        ] {
            let path = self.root.join(dir);
            std::fs::create_dir_all(&path).map_err(|source| AptError::Io { path, source })?;
        }
        let write = |name: &str, text: &str| {
            let path = self.root.join(name);
            std::fs::write(&path, text).map_err(|source| AptError::Io { path, source })
        };
        write("apt.conf", &apt_conf(&self.root, as_root))?;
        write("etc/sources.list", &sources_list(KEYRING))?;
        let status = self.root.join("state/status");
        if !status.exists() {
            write("state/status", "")?;
        }
        Ok(())
    }

    /// How long ago the indexes were last updated (`None` if never).
    pub(crate) fn lists_age(&self) -> Option<Duration> {
        let modified = std::fs::metadata(self.root.join("state/lists/updated"))
            .ok()?
            .modified()
            .ok()?;
        Some(modified.elapsed().unwrap_or_default())
    }

    /// `apt-get update`: download the suites' signed indexes (progress on the terminal).
    pub(crate) fn update(&self) -> Result<(), AptError> {
        let mut command = self.apt_get();
        command.args(["update", "--error-on=any"]);
        run(command, false)?;
        let stamp = self.root.join("state/lists/updated");
        std::fs::write(&stamp, "").map_err(|source| AptError::Io {
            path: stamp,
            source,
        })
    }

    /// The `Packages` indexes downloaded, in `sources.list` order.
    pub(crate) fn index_files(&self) -> Result<Vec<IndexFile>, AptError> {
        let mut command = self.apt_get();
        command.args([
            "indextargets",
            "--format",
            "$(FILENAME)\t$(RELEASE)",
            "Identifier: Packages",
        ]);
        let text = run(command, true)?;
        let mut files: Vec<IndexFile> = text
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .map(|(path, suite)| IndexFile {
                path: PathBuf::from(path),
                suite: suite.to_string(),
            })
            .collect();
        let order = |suite: &str| {
            SUITES
                .iter()
                .position(|(_, s)| *s == suite)
                .unwrap_or(usize::MAX)
        };
        files.sort_by_key(|f| order(&f.suite));
        Ok(files)
    }

    /// The text of an index, decompressed by apt's own helper.
    pub(crate) fn read_index(&self, file: &IndexFile) -> Result<String, AptError> {
        let mut command = Command::new("/usr/lib/apt/apt-helper");
        command.env("APT_CONFIG", self.root.join("apt.conf"));
        command.arg("cat-file").arg(&file.path);
        run(command, true)
    }

    /// `apt-get download NAME=VERSION...` into `dir` (progress on the terminal); apt checks
    /// each file against the size and SHA-256 of the signed index.
    pub(crate) fn download(
        &self,
        packages: &[(String, String)],
        dir: &Path,
    ) -> Result<(), AptError> {
        let mut command = self.apt_get();
        command.current_dir(dir).arg("download");
        command.args(
            packages
                .iter()
                .map(|(name, version)| format!("{name}={version}")),
        );
        run(command, false).map(|_| ())
    }

    /// An `apt-get` command with the private configuration.
    fn apt_get(&self) -> Command {
        let mut command = Command::new("apt-get");
        command.env("APT_CONFIG", self.root.join("apt.conf"));
        command
    }
}

/// The private `apt.conf`: every directory under `root`, amd64 only, no translations,
/// indexes kept compressed, no binary caches.
pub(crate) fn apt_conf(root: &Path, as_root: bool) -> String {
    let root = root.display();
    let mut text = format!(
        "// Written by nsconform: the private apt of the kernel cache. See docs/kernels.md.\n\
         Dir \"{root}/\";\n\
         Dir::Etc \"{root}/etc/\";\n\
         Dir::Etc::main \"{root}/etc/apt.conf\";\n\
         Dir::Etc::parts \"{root}/etc/apt.conf.d/\";\n\
         Dir::Etc::sourcelist \"{root}/etc/sources.list\";\n\
         Dir::Etc::sourceparts \"{root}/etc/sources.list.d/\";\n\
         Dir::Etc::preferences \"{root}/etc/preferences\";\n\
         Dir::Etc::preferencesparts \"{root}/etc/preferences.d/\";\n\
         Dir::Etc::trusted \"{root}/etc/trusted.gpg\";\n\
         Dir::Etc::trustedparts \"{root}/etc/trusted.gpg.d/\";\n\
         Dir::Etc::netrc \"{root}/etc/auth.conf\";\n\
         Dir::Etc::netrcparts \"{root}/etc/auth.conf.d/\";\n\
         Dir::State \"{root}/state/\";\n\
         Dir::State::status \"{root}/state/status\";\n\
         Dir::Cache \"{root}/cache/\";\n\
         Dir::Cache::pkgcache \"\";\n\
         Dir::Cache::srcpkgcache \"\";\n\
         Dir::Log \"{root}/log/\";\n\
         APT::Architecture \"amd64\";\n\
         APT::Architectures {{ \"amd64\"; }};\n\
         Acquire::Languages \"none\";\n\
         Acquire::GzipIndexes \"true\";\n\
         Acquire::Check-Valid-Until \"false\";\n\
         Acquire::Retries \"3\";\n"
    );
    if as_root {
        // The cache is usually under /root, which apt's `_apt` user cannot enter; apt would
        // then fall back to downloading as root with a warning. Say so up front.
        text.push_str("APT::Sandbox::User \"root\";\n");
    }
    text
}

/// The private `sources.list`: main of each suite, signed by the given keyring.
pub(crate) fn sources_list(keyring: &str) -> String {
    let mut text =
        String::from("# Written by nsconform: suites searched for kernels. See docs/kernels.md.\n");
    for (uri, suite) in SUITES {
        text.push_str(&format!(
            "deb [arch=amd64 signed-by={keyring}] {uri} {suite} main\n"
        ));
    }
    text
}

/// Run a command; with `capture`, return its standard output (standard error is kept for
/// the error message), else let it print to the terminal.
fn run(mut command: Command, capture: bool) -> Result<String, AptError> {
    let line = format!("{command:?}");
    let program = command.get_program().to_string_lossy().into_owned();
    let spawn = |source| AptError::Spawn {
        program: program.clone(),
        source,
    };
    if !capture {
        let status = command.status().map_err(spawn)?;
        return if status.success() {
            Ok(String::new())
        } else {
            Err(AptError::Failed {
                command: line,
                status,
                stderr: String::new(),
            })
        };
    }
    let output = command.output().map_err(spawn)?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let stderr = format!(
            ": {}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        return Err(AptError::Failed {
            command: line,
            status: output.status,
            stderr,
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_directory_apt_uses_is_private() {
        let text = apt_conf(Path::new("/c/kernels/apt"), false);
        for line in text.lines().filter(|l| l.starts_with("Dir")) {
            let value = line.split('"').nth(1).expect("quoted value");
            assert!(
                value.is_empty() || value.starts_with("/c/kernels/apt/"),
                "{line}"
            );
        }
        for key in [
            "Dir::Etc::parts",
            "Dir::Etc::sourcelist",
            "Dir::State::status",
            "Dir::Cache ",
            "Dir::Etc::trustedparts",
        ] {
            assert!(text.contains(key), "{key} missing");
        }
        assert!(!text.contains("Sandbox"));
        assert!(apt_conf(Path::new("/r"), true).contains("APT::Sandbox::User \"root\";"));
    }

    #[test]
    fn sources_are_signed_and_never_trusted_blindly() {
        let text = sources_list(KEYRING);
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("deb ")).collect();
        assert_eq!(lines.len(), SUITES.len());
        assert!(lines
            .iter()
            .all(|l| l.contains(&format!("signed-by={KEYRING}"))));
        assert!(!text.contains("trusted=yes"));
        assert!(lines[0].ends_with("/debian-security bullseye-security main"));
        assert!(lines[5].ends_with("/debian sid main"));
    }
}
