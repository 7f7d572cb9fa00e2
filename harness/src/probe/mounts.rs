//! Mount probes: overlayfs (as root, and in a user namespace), tmpfs and `/proc` in a user
//! namespace, and idmapped mounts. Each mounts only in a new mount namespace of its own,
//! made private first so nothing propagates out.

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sched::CloneFlags;

use super::child::{in_forked_child, Holder};
use super::namespaces::{enter_own_userns_as_nobody, unshare_named};
use super::reason::{failed, io_failed};
use crate::sys;

/// Mount an overlay as root, in a new mount namespace.
pub(super) fn try_overlayfs() -> Result<(), String> {
    unshare_named(CloneFlags::CLONE_NEWNS)?;
    try_overlay()
}

/// Mount an overlay as uid 65534 in its own user and mount namespaces.
pub(super) fn try_overlayfs_in_userns() -> Result<(), String> {
    enter_own_userns_as_nobody(CloneFlags::CLONE_NEWNS)?;
    try_overlay()
}

/// Mount a tmpfs as uid 65534 in its own user and mount namespaces.
pub(super) fn try_tmpfs_in_userns() -> Result<(), String> {
    enter_own_userns_as_nobody(CloneFlags::CLONE_NEWNS)?;
    private_tmp()
}

/// Make every mount of this (new) mount namespace private, so nothing propagates out.
fn make_mounts_private() -> Result<(), String> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| failed("mount(/, MS_REC|MS_PRIVATE)", e))
}

/// Mount a fresh tmpfs on `target`.
fn mount_tmpfs(target: &str) -> Result<(), String> {
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| failed(&format!("mount(tmpfs on {target})"), e))
}

/// Make this (new) mount namespace's mounts private and mount a fresh tmpfs on `/tmp`, a
/// scratch directory the probe may fill.
fn private_tmp() -> Result<(), String> {
    make_mounts_private()?;
    mount_tmpfs("/tmp")
}

/// Mount an overlay of directories on a fresh tmpfs (in a new mount namespace).
fn try_overlay() -> Result<(), String> {
    private_tmp()?;
    for dir in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir(format!("/tmp/{dir}"))
            .map_err(|e| io_failed(&format!("mkdir /tmp/{dir}"), &e))?;
    }
    let options = "lowerdir=/tmp/lower,upperdir=/tmp/upper,workdir=/tmp/work";
    mount(
        Some("overlay"),
        "/tmp/merged",
        Some("overlay"),
        MsFlags::empty(),
        Some(options),
    )
    .map_err(|e| failed("mount(overlay on /tmp/merged)", e))
}

/// As uid 65534, in its own user, mount and PID namespaces, mount a fresh `/proc` from PID 1
/// of the new PID namespace and see itself as PID 1 there.
pub(super) fn try_proc_in_userns() -> Result<(), String> {
    enter_own_userns_as_nobody(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID)?;
    make_mounts_private()?;
    in_forked_child(|| {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>)
            .map_err(|e| failed("mount(proc on /proc)", e))?;
        let me =
            std::fs::read_link("/proc/self").map_err(|e| io_failed("readlink /proc/self", &e))?;
        if me == Path::new("1") {
            Ok(())
        } else {
            Err(format!(
                "the new /proc shows this process as {} instead of 1",
                me.display()
            ))
        }
    })
}

/// Idmap a clone of a fresh tmpfs through a user namespace mapping 0-65535 to
/// 100000-165535, attach it, and check that its root (owned by 0) shows as 100000.
pub(super) fn try_idmapped_mount() -> Result<(), String> {
    const BASE: u32 = 100_000;
    let holder = Holder::start(CloneFlags::CLONE_NEWUSER)?;
    let proc_dir = holder.proc_dir()?;
    for file in ["uid_map", "gid_map"] {
        std::fs::write(proc_dir.join(file), format!("0 {BASE} 65536"))
            .map_err(|e| io_failed(&format!("write {file} of a new user namespace"), &e))?;
    }
    let userns = std::fs::File::open(proc_dir.join("ns/user"))
        .map_err(|e| io_failed("open /proc/PID/ns/user", &e))?;
    drop(holder);
    unshare_named(CloneFlags::CLONE_NEWNS)?;
    private_tmp()?;
    let target = Path::new("/tmp/idmapped");
    std::fs::create_dir(target).map_err(|e| io_failed("mkdir /tmp/idmapped", &e))?;
    let tree = sys::open_tree_clone(Path::new("/tmp"))
        .map_err(|e| failed("open_tree(/tmp, OPEN_TREE_CLONE)", e))?;
    sys::mount_setattr_idmap(tree.as_fd(), userns.as_fd())
        .map_err(|e| failed("mount_setattr(MOUNT_ATTR_IDMAP)", e))?;
    sys::move_mount_to(tree.as_fd(), target)
        .map_err(|e| failed("move_mount(to /tmp/idmapped)", e))?;
    let owner = std::fs::metadata(target)
        .map_err(|e| io_failed("stat /tmp/idmapped", &e))?
        .uid();
    if owner == BASE {
        Ok(())
    } else {
        Err(format!(
            "the idmapped mount shows its root owned by uid {owner}, expected {BASE}"
        ))
    }
}
