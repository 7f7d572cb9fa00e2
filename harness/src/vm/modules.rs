//! Which kernel modules the guest gets.
//!
//! Stock kernels build link kinds (veth, macvlan, ipvlan, vlan, vxlan, bridge, dummy) and
//! overlayfs as modules. The guest gets those and what they depend on, per the kernel's
//! `modules.dep`, plus the `modules.*` index files, so the kernel's own module loading
//! (`request_module` running `/sbin/modprobe`) finds them the way it does on an installed
//! system. Modules may be compressed (`.ko.xz` from 6.12 on Debian); `modprobe` unpacks them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Errors reading a kernel's modules tree.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ModulesError {
    /// `modules.dep` could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// Modules the scenarios and feature probes use, by name (`-` and `_` are the same).
pub(crate) const WANTED: &[&str] = &[
    "veth", "bridge", "dummy", "vxlan", "macvlan", "ipvlan", "8021q", "overlay", "tun",
];

/// One module's file (relative to the tree) and the files it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    file: String,
    deps: Vec<String>,
}

/// The module name of a file: `kernel/net/8021q/8021q.ko.xz` → `8021q`, with `-` as `_`.
fn module_name(file: &str) -> String {
    let base = file.rsplit('/').next().unwrap_or(file);
    let stem = base.split(".ko").next().unwrap_or(base);
    stem.replace('-', "_")
}

/// Parse `modules.dep`: `FILE: DEP DEP...` per line, by module name.
fn parse_dep(text: &str) -> BTreeMap<String, Entry> {
    text.lines()
        .filter_map(|line| {
            let (file, deps) = line.split_once(':')?;
            let file = file.trim().to_string();
            let deps = deps.split_whitespace().map(str::to_string).collect();
            Some((module_name(&file), Entry { file, deps }))
        })
        .collect()
}

/// The files (relative to the tree) of `wanted` and everything they depend on; names not
/// in the tree (built in, or not built at all) are left out.
fn closure(dep: &BTreeMap<String, Entry>, wanted: &[&str]) -> BTreeSet<String> {
    let by_file: BTreeMap<&str, &Entry> = dep.values().map(|e| (e.file.as_str(), e)).collect();
    let mut files = BTreeSet::new();
    let mut todo: Vec<&Entry> = wanted
        .iter()
        .filter_map(|name| dep.get(&name.replace('-', "_")))
        .collect();
    while let Some(entry) = todo.pop() {
        if files.insert(entry.file.clone()) {
            todo.extend(entry.deps.iter().filter_map(|d| by_file.get(d.as_str())));
        }
    }
    files
}

/// What to copy from the modules tree `dir` (the directory with `modules.dep`): the index
/// files and the wanted modules with their dependencies, as paths under `dir`.
pub(crate) fn files_to_copy(dir: &Path) -> Result<Vec<PathBuf>, ModulesError> {
    let dep_path = dir.join("modules.dep");
    let text = std::fs::read_to_string(&dep_path).map_err(|source| ModulesError::Read {
        path: dep_path.clone(),
        source,
    })?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| ModulesError::Read {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.is_file()
                && path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("modules."))
        })
        .collect();
    files.sort();
    files.extend(
        closure(&parse_dep(&text), WANTED)
            .into_iter()
            .map(|file| dir.join(file)),
    );
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/drivers/net/veth.ko:\n\
        kernel/net/8021q/8021q.ko.xz: kernel/net/802/mrp.ko.xz kernel/net/802/garp.ko.xz kernel/net/802/stp.ko.xz kernel/net/llc/llc.ko.xz\n\
        kernel/net/802/garp.ko.xz: kernel/net/802/stp.ko.xz kernel/net/llc/llc.ko.xz\n\
        kernel/net/802/mrp.ko.xz:\n\
        kernel/net/802/stp.ko.xz: kernel/net/llc/llc.ko.xz\n\
        kernel/net/llc/llc.ko.xz:\n\
        kernel/drivers/net/ipvlan/ipvlan.ko: kernel/drivers/net/ipvlan/ipvtap-dep.ko\n\
        kernel/drivers/net/ipvlan/ipvtap-dep.ko:\n\
        kernel/fs/unrelated.ko:\n";

    #[test]
    fn names_drop_the_directory_and_compression_and_use_underscores() {
        assert_eq!(module_name("kernel/net/8021q/8021q.ko.xz"), "8021q");
        assert_eq!(module_name("kernel/x/ipvtap-dep.ko"), "ipvtap_dep");
        assert_eq!(module_name("veth.ko.zst"), "veth");
    }

    #[test]
    fn dependencies_are_followed_and_missing_names_skipped() {
        let files = closure(&parse_dep(DEP), &["8021q", "veth", "ipvlan", "no-such"]);
        let files: Vec<&str> = files.iter().map(String::as_str).collect();
        assert_eq!(
            files,
            [
                "kernel/drivers/net/ipvlan/ipvlan.ko",
                "kernel/drivers/net/ipvlan/ipvtap-dep.ko",
                "kernel/drivers/net/veth.ko",
                "kernel/net/802/garp.ko.xz",
                "kernel/net/802/mrp.ko.xz",
                "kernel/net/802/stp.ko.xz",
                "kernel/net/8021q/8021q.ko.xz",
                "kernel/net/llc/llc.ko.xz",
            ]
        );
    }

    #[test]
    fn a_tree_gives_its_indexes_and_the_wanted_modules() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("modules.dep"), DEP).unwrap();
        std::fs::write(dir.path().join("modules.alias"), "").unwrap();
        std::fs::write(dir.path().join("other"), "").unwrap();
        let files = files_to_copy(dir.path()).unwrap();
        assert_eq!(files[0], dir.path().join("modules.alias"));
        assert_eq!(files[1], dir.path().join("modules.dep"));
        assert!(files.contains(&dir.path().join("kernel/drivers/net/veth.ko")));
        assert!(!files.iter().any(|f| f.ends_with("other")));
        assert!(!files.iter().any(|f| f.ends_with("unrelated.ko")));
    }

    #[test]
    fn a_tree_without_modules_dep_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(files_to_copy(dir.path()).is_err());
    }
}
