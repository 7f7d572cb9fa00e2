//! The new mount API (`open_tree`, `mount_setattr`, `move_mount`), which `nix` does not
//! offer: idmapped mounts.

use std::os::fd::{FromRawFd, OwnedFd};

/// A path as the C string a system call takes (`EINVAL` if it holds a NUL byte).
fn c_path(path: &std::path::Path) -> nix::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| nix::errno::Errno::EINVAL)
}

/// `open_tree(2)` with `OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC`: a detached copy of the mount at
/// `path` (that mount only, not the ones below it), which nothing sees until it is attached.
pub(crate) fn open_tree_clone(path: &std::path::Path) -> nix::Result<OwnedFd> {
    let path = c_path(path)?;
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    // SAFETY: `path` is a NUL-terminated string that outlives the call; the other arguments
    // are integers. The result is checked before use.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// `mount_setattr(2)` with `MOUNT_ATTR_IDMAP` on the detached mount `mount` itself: its files
/// appear with their owners mapped through the user namespace `userns`.
pub(crate) fn mount_setattr_idmap(
    mount: std::os::fd::BorrowedFd<'_>,
    userns: std::os::fd::BorrowedFd<'_>,
) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: the empty path is a NUL-terminated static string, and `attr` is a fully
    // initialised mount_attr that outlives the call, passed with its exact size; the kernel
    // only reads both.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if ret < 0 {
        return Err(nix::errno::Errno::last());
    }
    Ok(())
}

/// `move_mount(2)`: attach the detached mount `mount` at `target`.
pub(crate) fn move_mount_to(
    mount: std::os::fd::BorrowedFd<'_>,
    target: &std::path::Path,
) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    let target = c_path(target)?;
    // SAFETY: both paths are NUL-terminated strings that outlive the call; the other
    // arguments are integers.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mount.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if ret < 0 {
        return Err(nix::errno::Errno::last());
    }
    Ok(())
}
