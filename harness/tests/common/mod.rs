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
