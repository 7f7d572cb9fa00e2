//! nsconform: a conformance harness for Linux namespaces.
//!
//! A scenario file (TOML) describes namespaces to create, named processes ("actors") that
//! live in them, and the commands they run in order with the expected results. Each
//! scenario runs in a freshly exec'd supervisor, inside a stand-in host made of fresh
//! namespaces, so nothing it does can reach the machine. See `docs/architecture.md`.
//!
//! The public surface is small: [`runner`] to find and run scenarios, [`report`] for what a
//! run produced, [`host_guard`] to check the machine afterwards, and [`cli`] for the binary.

mod actor;
mod cgroup;
pub mod cli;
mod compare;
mod containment;
mod elf;
mod errno;
mod expect;
mod fork_server;
pub mod host_guard;
mod huge_code;
mod json_file;
mod kernels;
mod listing;
mod matcher;
mod matrix;
mod observe;
mod orchestrator;
mod payload;
mod phase_log;
mod pids_limit;
mod probe;
pub mod report;
mod requires;
pub mod results;
mod rootfs;
pub mod runner;
mod scenario;
mod standin;
mod supervisor;
mod sys;
mod template;
mod turns;
mod userland;
mod vm;

/// Parse and validate scenario text exactly as `nsconform check` does, without running
/// anything: `Ok` when valid, else the `file:line:column: message` diagnostics, one per line.
/// Never panics, whatever the text (the fuzz target checks that).
pub fn check_scenario(path: &std::path::Path, text: &str) -> Result<(), String> {
    scenario::load_str(path, text.to_string())
        .map(|_| ())
        .map_err(|err| err.to_string())
}
