//! What a program started with `std::process::Command` gets between fork and exec: an
//! empty signal mask, a parent-death signal, inherited descriptors.

use std::io;

/// Make `command` start with an empty signal mask. Commands must not inherit the agent's
/// blocked `SIGCHLD` (kept for its signalfd): a shell would then wait forever in `wait`.
pub(crate) fn empty_signal_mask_before_exec(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec; sigemptyset and pthread_sigmask are
    // async-signal-safe, allocate nothing, and only touch the stack-local set.
    unsafe {
        command.pre_exec(|| {
            let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigemptyset(set.as_mut_ptr());
            if libc::pthread_sigmask(libc::SIG_SETMASK, set.as_ptr(), std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Make the program `command` starts receive SIGKILL when this process's thread that
/// started it ends (`PR_SET_PDEATHSIG`), and not start at all when this process is gone
/// already by then.
pub(crate) fn die_with_this_process(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = nix::unistd::getpid().as_raw();
    // SAFETY: the closure runs between fork and exec; prctl and getppid are
    // async-signal-safe and allocate nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(io::Error::other("the parent ended before the start"));
            }
            Ok(())
        });
    }
}

/// Give the program `command` starts the descriptors `fds` as 3 and 4 (without
/// close-on-exec there); this process's own stay as they are.
pub(crate) fn give_fds_3_and_4(command: &mut std::process::Command, fds: [std::os::fd::RawFd; 2]) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec in the child, on its own copies of the
    // descriptors; fcntl, dup2 and close are async-signal-safe, and it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            // First above both targets, so that neither target overwrites the other source.
            let above = fds.map(|fd| libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 5));
            for (target, fd) in [3, 4].into_iter().zip(above) {
                if fd == -1 || libc::dup2(fd, target) == -1 {
                    return Err(io::Error::last_os_error());
                }
                libc::close(fd);
            }
            Ok(())
        });
    }
}
