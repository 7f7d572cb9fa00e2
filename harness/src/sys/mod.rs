//! The syscall seam: the only module with `unsafe`.
//!
//! Everything here is a thin, documented wrapper over a call that `nix` does not offer safely
//! (fork-like `clone`, `pidfd_open`, capability-bounding `prctl`, interface-flag `ioctl`,
//! `clone3`, the namespace `ioctl`s, `_exit`) or offers only as `unsafe` (`fork`); its
//! submodules group the rest: scheduling policies (`scheduling`), the new mount calls
//! (`mounts`), what a `Command` does between fork and exec (`exec`), huge-page copies of
//! mappings (`memory`), reads into a buffer's spare room (`reads`), and how many threads this
//! process has (`threads`). Callers must be single-threaded where a function says so;
//! [`fork`] checks it.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Pid};

mod exec;
mod memory;
mod mounts;
mod reads;
mod scheduling;
mod threads;

pub(crate) use exec::{die_with_this_process, empty_signal_mask_before_exec, give_fds_3_and_4};
pub(crate) use memory::{replace_with_huge_copy, HUGE_PAGE};
pub(crate) use mounts::{mount_setattr_idmap, move_mount_to, open_tree_clone};
pub(crate) use reads::read_appending;
pub(crate) use scheduling::{bring_back, scheduling_of, set_scheduling, step_aside, Scheduling};
use threads::ensure_single_threaded;
pub(crate) use threads::thread_count;

/// `CLONE_NEWTIME`, which `nix` does not name.
pub(crate) const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);

/// End a forked process with `code`: flush Rust's standard output, then `_exit(2)`. Not
/// `exit(3)`, whose handlers (the C library's and the loader's clean-up) belong to the
/// process that forked, and would write to pages this one shares with it, copying each.
pub(crate) fn exit_forked(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: `_exit` ends the process at once; nothing runs after it that could observe
    // a half-finished state.
    unsafe { libc::_exit(code) }
}

/// `fork(2)`, refused with `EDEADLK` in a multithreaded process.
pub(crate) fn fork() -> nix::Result<ForkResult> {
    ensure_single_threaded()?;
    // SAFETY: the process is single-threaded (checked above), so the child cannot inherit a
    // lock held by another thread; both sides continue with ordinary Rust code.
    unsafe { nix::unistd::fork() }
}

/// A fork-like `clone(2)` that puts the child straight into new namespaces (`flags` must hold
/// only `CLONE_NEW*` bits). The parent stays where it is. Refused in a multithreaded process.
pub(crate) fn fork_into_new_namespaces(flags: CloneFlags) -> nix::Result<ForkResult> {
    ensure_single_threaded()?;
    let raw = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: with a null stack and no CLONE_VM, clone behaves as fork: the child gets a copy
    // of the address space and continues from here. Single-threaded (checked above), so no
    // lock can be held by a thread that does not exist in the child.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            raw,
            std::ptr::null_mut::<libc::c_void>(),
            0usize,
            0usize,
            0usize,
        )
    };
    fork_result(ret)
}

/// What a fork-like `clone` or `clone3` returned, as `fork` reports it.
fn fork_result(ret: libc::c_long) -> nix::Result<ForkResult> {
    match ret {
        -1 => Err(nix::errno::Errno::last()),
        0 => Ok(ForkResult::Child),
        pid => Ok(ForkResult::Parent {
            child: Pid::from_raw(pid as libc::pid_t),
        }),
    }
}

/// `clone3(2)`'s argument structure, as far as its `cgroup` field (`CLONE_ARGS_SIZE_VER2`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP` (Linux 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Like [`fork_into_new_namespaces`], with the child born in the cgroup v2 directory `cgroup`
/// (`clone3` with `CLONE_INTO_CGROUP`): nothing is migrated, so the kernel's global cgroup
/// migration lock is never taken. Kernels before 5.7 refuse it (`ENOSYS`, `E2BIG` or
/// `EINVAL`) without creating a process. A `CLONE_NEWCGROUP` in `flags` would root the new
/// namespace at the caller's cgroup, not at `cgroup`; unshare it in the child instead.
pub(crate) fn fork_into_cgroup(
    flags: CloneFlags,
    cgroup: std::os::fd::BorrowedFd<'_>,
) -> nix::Result<ForkResult> {
    use std::os::fd::AsRawFd;
    ensure_single_threaded()?;
    let args = CloneArgs {
        flags: flags.bits() as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed, alive for the call. With no
    // stack and no CLONE_VM, clone3 behaves as fork: the child gets a copy of the address
    // space and continues from here. Single-threaded (checked above), so no lock can be held
    // by a thread that does not exist in the child.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    fork_result(ret)
}

/// `pidfd_open(2)`: a file descriptor that becomes readable when `pid` exits.
pub(crate) fn pidfd_open(pid: Pid) -> nix::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; the result is checked before use.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// `pidfd_send_signal(2)`: signal the process of `pidfd`, which cannot be another process that
/// reused its PID.
pub(crate) fn pidfd_send_signal(
    pidfd: &OwnedFd,
    signal: nix::sys::signal::Signal,
) -> nix::Result<()> {
    // SAFETY: plain syscall with a descriptor we own, a signal number and null info/flags.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret < 0 {
        return Err(nix::errno::Errno::last());
    }
    Ok(())
}

/// Whether `clone3(2)` exists, asked without creating anything: the call is made with a size
/// smaller than any version of its argument structure, which a kernel that has it refuses
/// with `EINVAL` before reading the arguments. Returns that errno (`ENOSYS` when the call is
/// missing or filtered).
pub(crate) fn clone3_with_undersized_args() -> nix::errno::Errno {
    // Room for the largest clone_args (11 u64 fields), all zero.
    let args = [0u64; 11];
    // SAFETY: the pointer is valid for the whole array, which outlives the call; with a size
    // of 8 (below CLONE_ARGS_SIZE_VER0 = 64) the kernel returns EINVAL without creating a
    // process, so no child can return from this call.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, args.as_ptr(), 8usize) };
    if ret == 0 {
        // Unreachable on any kernel (see above); never continue as a child.
        exit_forked(0);
    }
    if ret > 0 {
        return nix::errno::Errno::UnknownErrno;
    }
    nix::errno::Errno::last()
}

/// Drop every capability from the bounding set (needs `CAP_SETPCAP`; call before `setuid`).
pub(crate) fn drop_bounding_set() -> nix::Result<()> {
    for cap in 0..=63 {
        // SAFETY: PR_CAPBSET_DROP takes an integer capability number and touches no memory.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if ret == -1 {
            match nix::errno::Errno::last() {
                // Past the last capability this kernel knows.
                nix::errno::Errno::EINVAL => break,
                errno => return Err(errno),
            }
        }
    }
    Ok(())
}

/// Clear the ambient capability set.
pub(crate) fn clear_ambient_capabilities() -> nix::Result<()> {
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes integer arguments only and touches no memory.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if ret == -1 {
        return Err(nix::errno::Errno::last());
    }
    Ok(())
}

/// Set `IFF_UP` on the loopback interface of the caller's network namespace.
pub(crate) fn set_loopback_up() -> io::Result<()> {
    let socket = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
    // SAFETY: SIOCGIFFLAGS reads and writes the ifreq we own, which outlives the call.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut request) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after SIOCGIFFLAGS the flags member of the union is the initialised one.
    unsafe { request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads the ifreq we own, which outlives the call.
    if unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &request) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Take ownership of a descriptor the kernel just handed over (e.g. by `SCM_RIGHTS`).
pub(crate) fn own_fd(raw: std::os::fd::RawFd) -> OwnedFd {
    // SAFETY: callers pass only descriptors freshly received from the kernel, which nothing
    // else in the process owns yet.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// Close every descriptor above 2 except those in `keep` (after a fork, so an agent holds
/// no other actor's control socket): `close_range(2)` over the gaps, or on kernels before
/// 5.9 each descriptor `/proc/self/fd` lists.
pub(crate) fn close_other_fds(keep: &[std::os::fd::RawFd]) {
    for (first, last) in descriptor_gaps(keep) {
        // SAFETY: close_range only closes descriptors of this process; the caller has just
        // forked and keeps none of the ones closed here (see above).
        let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
        if ret == -1 {
            return close_listed_fds(keep);
        }
    }
}

/// The ranges of descriptors above 2 that are not in `keep`, up to the largest possible.
fn descriptor_gaps(keep: &[std::os::fd::RawFd]) -> Vec<(u32, u32)> {
    let mut kept: Vec<u32> = keep
        .iter()
        .filter_map(|fd| u32::try_from(*fd).ok())
        .filter(|fd| *fd > 2)
        .collect();
    kept.sort_unstable();
    kept.dedup();
    let mut gaps = Vec::new();
    let mut first = 3u32;
    for fd in kept {
        if first < fd {
            gaps.push((first, fd - 1));
        }
        first = fd + 1;
    }
    gaps.push((first, u32::MAX));
    gaps
}

fn close_listed_fds(keep: &[std::os::fd::RawFd]) {
    let fds: Vec<std::os::fd::RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(entries) => entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd > 2 && !keep.contains(fd))
            .collect(),
        Err(_) => return,
    };
    for fd in fds {
        // The directory listing's own descriptor is already closed; EBADF is harmless.
        let _ = nix::unistd::close(fd);
    }
}

/// `ioctl(NS_GET_USERNS)`: the user namespace that owns the namespace open as `file`.
pub(crate) fn namespace_owner(file: &std::fs::File) -> nix::Result<OwnedFd> {
    namespace_ioctl(file, NS_GET_USERNS)
}

/// `ioctl(NS_GET_PARENT)`: the parent of the user or PID namespace open as `file`.
pub(crate) fn namespace_parent(file: &std::fs::File) -> nix::Result<OwnedFd> {
    namespace_ioctl(file, NS_GET_PARENT)
}

/// `_IO(0xb7, 0x1)` from `linux/nsfs.h`.
const NS_GET_USERNS: libc::c_ulong = 0xb701;
/// `_IO(0xb7, 0x2)` from `linux/nsfs.h`.
const NS_GET_PARENT: libc::c_ulong = 0xb702;

fn namespace_ioctl(file: &std::fs::File, request: libc::c_ulong) -> nix::Result<OwnedFd> {
    let fd = std::os::fd::AsRawFd::as_raw_fd(file);
    // SAFETY: nsfs ioctls without an argument; the descriptor is borrowed from `file`, which
    // outlives the call, and the returned descriptor is new and ours (checked for -1).
    let ret = unsafe { libc::ioctl(fd, request as _) };
    if ret < 0 {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: the kernel just returned this new descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

/// `setdomainname(2)`: the NIS domain name of the caller's UTS namespace. (Writing
/// `/proc/sys/kernel/domainname` is refused inside a user namespace, whose root does not own
/// that file.)
pub(crate) fn setdomainname(name: &str) -> nix::Result<()> {
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call; the
    // kernel copies them.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if ret == -1 {
        return Err(nix::errno::Errno::last());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::descriptor_gaps;

    #[test]
    fn gaps_skip_the_kept_descriptors_and_the_standard_ones() {
        assert_eq!(descriptor_gaps(&[]), vec![(3, u32::MAX)]);
        assert_eq!(descriptor_gaps(&[3]), vec![(4, u32::MAX)]);
        assert_eq!(
            descriptor_gaps(&[9, 5, 1, 5, 6]),
            vec![(3, 4), (7, 8), (10, u32::MAX)]
        );
    }
}
