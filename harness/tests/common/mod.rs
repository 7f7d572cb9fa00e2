//! Helpers shared by the tests that run the `nsconform` binary.
#![allow(dead_code)] // each test target uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root.
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Run the binary from the repository's root.
pub(crate) fn nsconform(args: &[&str]) -> Output {
    nsconform_with(args, &[])
}

/// Run the binary from the repository's root with `env` added. The run's tool path and
/// userland come only from `args` and `env`, never from the caller's environment.
pub(crate) fn nsconform_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nsconform"))
        .args(args)
        .current_dir(repo())
        .env_remove("NSCONFORM_TOOL_PATH")
        .env_remove("NSCONFORM_USERLAND")
        .envs(env.iter().copied())
        .output()
        .expect("run nsconform")
}

/// Output bytes as text.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The cgroup directories named for the supervisor `pid`, in every hierarchy.
#[allow(dead_code)] // not every test target uses it
pub(crate) fn cgroups_of(pid: u32) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, name: &str, depth: usize, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if entry.file_name() == name {
                found.push(entry.path());
            } else if depth > 0 {
                walk(&entry.path(), name, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(
        std::path::Path::new("/sys/fs/cgroup"),
        &format!("nsconform-{pid}"),
        6,
        &mut found,
    );
    found
}
