//! The syscall seam: the only module with `unsafe`.
//!
//! Everything here is a thin, documented wrapper over a call that `nix` does not offer safely
//! (fork-like `clone`, `pidfd_open`, capability-bounding `prctl`, interface-flag `ioctl`) or
//! offers only as `unsafe` (`fork`). Callers must be single-threaded where a function says so;
//! [`fork`] checks it.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Pid};

/// `CLONE_NEWTIME`, which `nix` does not name.
pub(crate) const CLONE_NEWTIME: CloneFlags = CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);

/// How many threads this process has, from `/proc/self/status`.
pub(crate) fn thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no Threads: line in /proc/self/status"))
}

fn ensure_single_threaded() -> nix::Result<()> {
    match thread_count() {
        Ok(1) => Ok(()),
        _ => Err(nix::errno::Errno::EDEADLK),
    }
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
    match ret {
        -1 => Err(nix::errno::Errno::last()),
        0 => Ok(ForkResult::Child),
        pid => Ok(ForkResult::Parent {
            child: Pid::from_raw(pid as libc::pid_t),
        }),
    }
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
/// no other actor's control socket).
pub(crate) fn close_other_fds(keep: &[std::os::fd::RawFd]) {
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
