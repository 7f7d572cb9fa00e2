//! The `busybox` tree: Debian's statically linked busybox and its applets, nothing else.
//!
//! The binary comes from the machine (`/bin/busybox`, Debian's `busybox-static`) and must be
//! statically linked, since the tree has no libraries. Every applet `busybox --list` offers
//! gets a symbolic link `bin/NAME -> busybox`; `sbin`, `usr/bin` and `usr/sbin` point at
//! `bin`. There are empty `/proc /sys /dev /tmp /run /root /probe /var /usr`, and `/etc`
//! holds only `passwd` and `group` (root and nobody). Building takes a few milliseconds.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the busybox binary is taken from: `/bin/busybox`.
pub(crate) const SOURCE: &str = "/bin/busybox";

/// Applets the tree cannot do without.
const REQUIRED_APPLETS: [&str; 1] = ["sh"];

/// Empty directories of the tree, with their modes.
const DIRS: [(&str, u32); 10] = [
    ("proc", 0o555),
    ("sys", 0o555),
    ("dev", 0o755),
    ("tmp", 0o1777),
    ("run", 0o755),
    ("etc", 0o755),
    ("root", 0o700),
    ("probe", 0o755),
    ("var", 0o755),
    ("usr", 0o755),
];

/// `/etc/passwd` of the tree.
const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

/// `/etc/group` of the tree.
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

/// Errors making the busybox tree.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BusyboxError {
    /// There is no busybox binary to copy.
    #[error("{0} not found (install it: `apt-get install busybox-static`)")]
    Missing(PathBuf),
    /// The binary is dynamically linked, so it would not run in the tree.
    #[error(
        "{path} is not statically linked (it needs {needs}); install Debian's `busybox-static`"
    )]
    NotStatic {
        /// The binary.
        path: PathBuf,
        /// What it needs, comma-separated.
        needs: String,
    },
    /// `ldd` could not say.
    #[error(transparent)]
    Libs(#[from] crate::vm::libs::LibsError),
    /// `busybox --list` failed or lacks a required applet.
    #[error("{path} --list: {reason}")]
    List {
        /// The binary.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A file of the tree could not be made.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Shorthand for an I/O error on `path`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BusyboxError {
    let path = path.to_path_buf();
    move |source| BusyboxError::Io { path, source }
}

/// Fill the empty directory `root` with the busybox tree, copying the binary from `source`.
/// Returns the tool versions for the stamp (`busybox`).
pub(crate) fn populate(
    source: &Path,
    root: &Path,
) -> Result<BTreeMap<String, String>, BusyboxError> {
    if !source.is_file() {
        return Err(BusyboxError::Missing(source.to_path_buf()));
    }
    let bin = root.join("bin");
    std::fs::create_dir_all(&bin).map_err(io(&bin))?;
    let binary = bin.join("busybox");
    std::fs::copy(source, &binary).map_err(io(&binary))?;
    std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755))
        .map_err(io(&binary))?;
    let needs = crate::vm::libs::needed_by(&binary)?;
    if !needs.is_empty() {
        let needs: Vec<String> = needs.iter().map(|p| p.display().to_string()).collect();
        return Err(BusyboxError::NotStatic {
            path: source.to_path_buf(),
            needs: needs.join(", "),
        });
    }
    for applet in applets(&binary)? {
        let link = bin.join(&applet);
        std::os::unix::fs::symlink("busybox", &link).map_err(io(&link))?;
    }
    for (dir, mode) in DIRS {
        let path = root.join(dir);
        std::fs::create_dir_all(&path).map_err(io(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(io(&path))?;
    }
    for (link, target) in [
        ("sbin", "bin"),
        ("usr/bin", "../bin"),
        ("usr/sbin", "../bin"),
    ] {
        let link = root.join(link);
        std::os::unix::fs::symlink(target, &link).map_err(io(&link))?;
    }
    for (file, text) in [("etc/passwd", PASSWD), ("etc/group", GROUP)] {
        let path = root.join(file);
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    let mut tools = BTreeMap::new();
    if let Some(version) = version(&binary) {
        tools.insert("busybox".to_string(), version);
    }
    Ok(tools)
}

/// The applets `binary --list` offers (without `busybox` itself), checked for
/// [`REQUIRED_APPLETS`].
fn applets(binary: &Path) -> Result<Vec<String>, BusyboxError> {
    let list_error = |reason: String| BusyboxError::List {
        path: binary.to_path_buf(),
        reason,
    };
    let output = Command::new(binary)
        .arg("--list")
        .output()
        .map_err(|err| list_error(err.to_string()))?;
    if !output.status.success() {
        return Err(list_error(format!("exited with {}", output.status)));
    }
    let names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.contains('/') && *n != "busybox" && *n != "." && *n != "..")
        .map(str::to_string)
        .collect();
    for required in REQUIRED_APPLETS {
        if !names.iter().any(|n| n == required) {
            return Err(list_error(format!("no `{required}` applet")));
        }
    }
    Ok(names)
}

/// The version from the first line of `busybox --help` (`BusyBox v1.35.0 (Debian
/// 1:1.35.0-4) multi-call binary.` gives `1.35.0 (Debian 1:1.35.0-4)`).
fn version(binary: &Path) -> Option<String> {
    let output = Command::new(binary).arg("--help").output().ok()?;
    parse_version(&String::from_utf8_lossy(&output.stdout))
}

/// See [`version`].
fn parse_version(help: &str) -> Option<String> {
    let line = help.lines().next()?.trim();
    let rest = line.strip_prefix("BusyBox v")?;
    Some(
        rest.trim_end_matches("multi-call binary.")
            .trim()
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_line() {
        assert_eq!(
            parse_version("BusyBox v1.35.0 (Debian 1:1.35.0-4+b3) multi-call binary.\nmore")
                .as_deref(),
            Some("1.35.0 (Debian 1:1.35.0-4+b3)")
        );
        assert_eq!(parse_version("sh: busybox: not found"), None);
    }

    #[test]
    fn a_missing_binary_says_what_to_install() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let err = populate(&tmp.path().join("nope"), tmp.path()).expect_err("missing");
        assert!(
            err.to_string().contains("apt-get install busybox-static"),
            "{err}"
        );
    }

    #[test]
    fn a_dynamic_binary_is_refused() {
        let Some(dynamic) = ["/bin/true", "/usr/bin/true"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.is_file())
        else {
            return;
        };
        let tmp = tempfile::tempdir().expect("tempdir");
        match populate(dynamic, tmp.path()) {
            Err(BusyboxError::NotStatic { .. }) => {}
            other => panic!("expected NotStatic, got {other:?}"),
        }
    }
}
