//! Probes of newer system calls and namespace interfaces: pidfds, `clone3`, `setns` with a
//! pidfd, the nsfs `NS_GET_USERNS` ioctl, and time namespace clock offsets.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::{Pid, Uid};

use super::child::{in_forked_child, Holder};
use super::namespaces::unshare_as_harness;
use super::reason::{failed, flag_names, io_failed};
use crate::sys;

/// `pidfd_open` on this process.
pub(super) fn try_pidfd() -> Result<(), String> {
    sys::pidfd_open(Pid::this())
        .map(drop)
        .map_err(|e| failed("pidfd_open(self)", e))
}

/// `clone3` exists: given arguments that are too small, it refuses them with `EINVAL`
/// (rather than `ENOSYS`), without creating anything.
pub(super) fn try_clone3() -> Result<(), String> {
    match sys::clone3_with_undersized_args() {
        Errno::EINVAL => Ok(()),
        errno => Err(failed(
            "clone3 (with a too-small size, expecting EINVAL)",
            errno,
        )),
    }
}

/// `stat` of this process's namespace of type `name` (`uts`, `user`, ...), which tells
/// namespaces apart by inode and device.
fn own_namespace(name: &str) -> Result<std::fs::Metadata, String> {
    let path = format!("/proc/self/ns/{name}");
    std::fs::metadata(&path).map_err(|e| io_failed(&format!("stat {path}"), &e))
}

/// `setns(pidfd, CLONE_NEWUTS)` into a child's new UTS namespace (with its user namespace
/// too, in one call, when the harness is not root), then check that this process's UTS
/// namespace changed.
pub(super) fn try_setns_pidfd() -> Result<(), String> {
    let uts_inode = || own_namespace("uts").map(|m| m.ino());
    let before = uts_inode()?;
    let mut flags = CloneFlags::CLONE_NEWUTS;
    if !Uid::effective().is_root() {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    let holder = Holder::start(flags)?;
    nix::sched::setns(&holder.pidfd, flags)
        .map_err(|e| failed(&format!("setns(pidfd, {})", flag_names(flags)), e))?;
    if uts_inode()? != before {
        Ok(())
    } else {
        Err("setns(pidfd, CLONE_NEWUTS) succeeded but did not change the UTS namespace".into())
    }
}

/// `ioctl(NS_GET_USERNS)` on a new UTS namespace gives the user namespace that owns it, this
/// process's own. (The namespace is new so that its owner is visible here, also when the
/// harness itself runs in a user namespace.)
pub(super) fn try_ns_get_userns() -> Result<(), String> {
    unshare_as_harness(CloneFlags::CLONE_NEWUTS)?;
    let uts = std::fs::File::open("/proc/self/ns/uts")
        .map_err(|e| io_failed("open /proc/self/ns/uts", &e))?;
    let owner = sys::namespace_owner(&uts)
        .map_err(|e| failed("ioctl(/proc/self/ns/uts, NS_GET_USERNS)", e))?;
    let owner = std::fs::File::from(owner)
        .metadata()
        .map_err(|e| io_failed("fstat of the NS_GET_USERNS descriptor", &e))?;
    let own = own_namespace("user")?;
    if owner.ino() == own.ino() && owner.dev() == own.dev() {
        Ok(())
    } else {
        Err("ioctl(NS_GET_USERNS) named a user namespace other than this process's own".into())
    }
}

/// Offset CLOCK_MONOTONIC by a day in a new time namespace and check a child sees it.
pub(super) fn try_time_offsets() -> Result<(), String> {
    const DAY: u64 = 86_400;
    if !Path::new("/proc/self/ns/time").exists() {
        return Err("this kernel has no time namespaces (/proc/self/ns/time is missing)".into());
    }
    unshare_as_harness(sys::CLONE_NEWTIME)?;
    std::fs::write("/proc/self/timens_offsets", format!("monotonic {DAY} 0"))
        .map_err(|e| io_failed("write /proc/self/timens_offsets", &e))?;
    let before = Instant::now();
    in_forked_child(move || {
        // CLOCK_MONOTONIC (what Instant reads) in the child is a day ahead of the parent's.
        let ahead = Instant::now().duration_since(before);
        if ahead >= Duration::from_secs(DAY - 60) {
            Ok(())
        } else {
            Err(format!(
                "wrote a monotonic offset of {DAY} s, but a child's clock is only {} s ahead",
                ahead.as_secs()
            ))
        }
    })
}
