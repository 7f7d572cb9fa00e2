//! Creating namespaces: whether each namespace type can be created, whether user namespaces
//! can (by root, and by an unprivileged user), and the ways into new namespaces that the
//! other probes use (as the harness, as root of a user namespace of its own, as nobody).

use std::path::Path;

use nix::sched::{unshare, CloneFlags};
use nix::unistd::{Gid, Uid};

use super::reason::{failed, flag_names, io_failed};
use crate::actor::kernel::clone_flag;
use crate::scenario::model::NsKind;

/// The unprivileged user the rootless probes become.
const NOBODY: u32 = 65534;

/// The namespace type exists and can be created.
pub(super) fn try_namespace(kind: NsKind) -> Result<(), String> {
    let path = format!("/proc/self/ns/{}", kind.proc_name());
    if !Path::new(&path).exists() {
        return Err(format!(
            "this kernel has no {kind} namespaces ({path} is missing)"
        ));
    }
    unshare_as_harness(clone_flag(kind))
}

/// This process can make a user namespace of its own.
pub(super) fn try_userns() -> Result<(), String> {
    enter_own_userns(CloneFlags::empty()).map_err(|r| with_userns_hint(r, false))
}

/// An unprivileged user (uid 65534 when the harness is root) can make a user namespace.
pub(super) fn try_unprivileged_userns() -> Result<(), String> {
    become_nobody()?;
    enter_own_userns(CloneFlags::empty()).map_err(|r| with_userns_hint(r, true))
}

/// Add what commonly forbids user namespaces (to everyone, or with `unprivileged` to
/// unprivileged users) to a reason, when one of those settings is on.
fn with_userns_hint(reason: String, unprivileged: bool) -> String {
    let settings: &[(&str, &str)] = if unprivileged {
        &[
            ("user/max_user_namespaces", "0"),
            ("kernel/unprivileged_userns_clone", "0"),
            ("kernel/apparmor_restrict_unprivileged_userns", "1"),
        ]
    } else {
        &[("user/max_user_namespaces", "0")]
    };
    let hints: Vec<String> = settings
        .iter()
        .filter(|(file, bad)| {
            std::fs::read_to_string(format!("/proc/sys/{file}")).is_ok_and(|v| v.trim() == *bad)
        })
        .map(|(file, bad)| format!("{} is {bad}", file.replace('/', ".")))
        .collect();
    if hints.is_empty() {
        reason
    } else {
        format!("{reason}; {}", hints.join(", "))
    }
}

/// `unshare(flags)` as root; when the harness is not root, in a user namespace of its own too
/// (mapping root to itself, so programs it runs keep their capabilities there): an
/// unprivileged process can create the other namespace types only that way, as a rootless
/// actor does, and what these probes ask is whether the kernel can.
pub(super) fn unshare_as_harness(flags: CloneFlags) -> Result<(), String> {
    if Uid::effective().is_root() {
        unshare_named(flags)
    } else {
        enter_own_userns(flags)
    }
}

/// `unshare(flags)`, with a reason naming the flags.
pub(super) fn unshare_named(flags: CloneFlags) -> Result<(), String> {
    unshare(flags).map_err(|e| failed(&format!("unshare({})", flag_names(flags)), e))
}

/// [`become_nobody`], then [`enter_own_userns`] with `extra`: what a rootless actor does.
pub(super) fn enter_own_userns_as_nobody(extra: CloneFlags) -> Result<(), String> {
    become_nobody()?;
    enter_own_userns(extra)
}

/// Become uid and gid 65534 with no supplementary groups (and so no capabilities). A harness
/// that is not root is unprivileged already and stays who it is (reasons name its uid).
fn become_nobody() -> Result<(), String> {
    if !Uid::effective().is_root() {
        return Ok(());
    }
    let gid = Gid::from_raw(NOBODY);
    let uid = Uid::from_raw(NOBODY);
    let becoming = |call: &str, e| failed(&format!("{call} to become uid 65534"), e);
    nix::unistd::setgroups(&[]).map_err(|e| becoming("setgroups([])", e))?;
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| becoming("setresgid(65534)", e))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| becoming("setresuid(65534)", e))?;
    // Keep /proc/self owned by the new uid, as after an exec.
    nix::sys::prctl::set_dumpable(true).map_err(|e| failed("prctl(PR_SET_DUMPABLE)", e))
}

/// `unshare(CLONE_NEWUSER | extra)` and map root in the new namespace to this process's own
/// uid and gid, like `unshare -r`.
fn enter_own_userns(extra: CloneFlags) -> Result<(), String> {
    let (uid, gid) = (Uid::effective(), Gid::effective());
    let flags = CloneFlags::CLONE_NEWUSER | extra;
    unshare(flags)
        .map_err(|e| failed(&format!("unshare({}) as uid {uid}", flag_names(flags)), e))?;
    for (file, text) in [
        ("setgroups", "deny".to_string()),
        ("uid_map", format!("0 {uid} 1")),
        ("gid_map", format!("0 {gid} 1")),
    ] {
        std::fs::write(format!("/proc/self/{file}"), text)
            .map_err(|e| io_failed(&format!("write /proc/self/{file}"), &e))?;
    }
    Ok(())
}
