//! The agent: the loop an actor process runs once set up. It serves requests from the
//! orchestrator (run a command, write a file, create a nested actor) inside the actor's
//! namespaces, so state such as a hostname persists from one step to the next.
//!
//! Commands are children of the agent. When the agent is PID 1 of a new PID namespace it
//! also reaps the orphans the kernel hands it, between requests.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::kernel::write_once;
use super::protocol::{self, Exit, Reply, Request};
use super::spawn::spawn_actor;
use crate::sys;

/// Output beyond this many bytes per stream is dropped (and said so).
const OUTPUT_LIMIT: usize = 1 << 20;

/// Serve requests on `control` until the orchestrator closes it.
pub(crate) fn serve(control: &OwnedFd) {
    // Orphans handed to an init actor may die while it waits for the next request: a
    // signalfd wakes it to reap them then, so no zombie outlives the step that made it.
    // Commands get an empty signal mask back before `exec` (see `run_command`).
    let mask = children_signal();
    let children = mask
        .thread_block()
        .and_then(|()| SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC))
        .ok();
    loop {
        reap_orphans();
        if let Some(children) = &children {
            if !wait_for_request(control, children) {
                return;
            }
        }
        let received = match protocol::recv::<Request>(control) {
            Ok(Some(received)) => received,
            Ok(None) | Err(_) => return,
        };
        crate::phase_log::mark("agent: request received");
        let reply = match received.message {
            Request::Run {
                argv,
                env,
                cwd,
                stdin,
            } => run_command(&argv, &env, &cwd, stdin.as_deref()),
            Request::Write { path, content } => {
                Reply::Wrote(write_once(&path, &content).err().map(|e| e as i32))
            }
            Request::Spawn(plan) => match received.fd {
                Some(fd) => Reply::Spawned(spawn_actor(&plan, fd).map(|_| ())),
                None => Reply::Spawned(Err("spawn request without a control socket".to_string())),
            },
            Request::Observe(query) => Reply::Observed(match &received.fd {
                Some(dir) => {
                    crate::observe::subject::observe(&query, dir).map_err(|e| e.to_string())
                }
                None => Err("observe request without a /proc directory".to_string()),
            }),
            Request::ReadMaps => Reply::Observed(match &received.fd {
                Some(dir) => crate::observe::viewer::maps(dir).map_err(|e| e.to_string()),
                None => Err("maps request without a /proc directory".to_string()),
            }),
            Request::Handshake => Reply::Spawned(Err("a handshake for no spare".to_string())),
        };
        reap_orphans();
        crate::phase_log::mark("agent: reply sent");
        if protocol::send(control, &reply, None).is_err() {
            return;
        }
    }
}

/// The signal set of `SIGCHLD` alone.
fn children_signal() -> SigSet {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask
}

/// Block until `control` is readable, reaping children whenever one ends; false on error.
fn wait_for_request(control: &OwnedFd, children: &SignalFd) -> bool {
    loop {
        let mut fds = [
            PollFd::new(control.as_fd(), PollFlags::POLLIN),
            PollFd::new(children.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return false,
        }
        let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
        if ready(&fds[1]) {
            while let Ok(Some(_)) = children.read_signal() {}
            reap_orphans();
        }
        if ready(&fds[0]) {
            return true;
        }
    }
}

/// Reap every child that has already ended (orphans reparented to a namespace init).
fn reap_orphans() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn run_command(argv: &[String], env: &[(String, String)], cwd: &str, stdin: Option<&str>) -> Reply {
    let Some((program, args)) = argv.split_first() else {
        return Reply::Ran {
            exit: Exit::Code(127),
            stdout: String::new(),
            stderr: "empty command\n".into(),
        };
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The command must not inherit the blocked SIGCHLD (kept for the signalfd): a shell
    // would wait forever in `wait`. Unblocked around the spawn (a `posix_spawn`, far cheaper
    // than a fork of this process), a SIGCHLD is lost at worst; orphans are still reaped
    // after the request.
    let _ = children_signal().thread_unblock();
    let spawned = command.spawn();
    crate::phase_log::mark("agent: command started");
    let _ = children_signal().thread_block();
    match spawned {
        Ok(child) => collect(child, stdin.unwrap_or("")),
        Err(err) => Reply::CannotRun {
            program: program.clone(),
            error: err.to_string(),
        },
    }
}

/// Feed stdin, gather stdout and stderr until the command exits, then take what is already
/// in the pipes. Output that background processes write later is not waited for.
fn collect(mut child: Child, input: &str) -> Reply {
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take().map(OwnedFd::from);
    let stderr = child.stderr.take().map(OwnedFd::from);
    let pidfd = sys::pidfd_open(Pid::from_raw(child.id() as i32)).ok();
    let mut out = Vec::new();
    let mut err = Vec::new();
    if let Some(mut pipe) = stdin.take() {
        // Small inputs fit the pipe; a reader that stops early must not hang the agent.
        let _ = set_nonblocking(&pipe).map(|_| pipe.write_all(input.as_bytes()));
    }
    let mut open = [stdout.is_some(), stderr.is_some()];
    loop {
        let mut fds = Vec::new();
        let mut which = Vec::new();
        for (index, fd) in [&stdout, &stderr].into_iter().enumerate() {
            if let (true, Some(fd)) = (open[index], fd) {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                which.push(index);
            }
        }
        if let Some(pidfd) = &pidfd {
            fds.push(PollFd::new(pidfd.as_fd(), PollFlags::POLLIN));
        }
        if fds.is_empty() {
            break;
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => break,
        }
        let exited = pidfd.is_some()
            && fds
                .last()
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty());
        let ready: Vec<usize> = which
            .iter()
            .zip(&fds)
            .filter(|(_, f)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|(i, _)| *i)
            .collect();
        drop(fds);
        for index in ready {
            let (fd, buffer) = if index == 0 {
                (&stdout, &mut out)
            } else {
                (&stderr, &mut err)
            };
            if let Some(fd) = fd {
                if !read_some(fd, buffer) {
                    open[index] = false;
                }
            }
        }
        if exited {
            break;
        }
    }
    let status = child.wait();
    crate::phase_log::mark("agent: command ended");
    for (fd, buffer) in [(&stdout, &mut out), (&stderr, &mut err)] {
        if let Some(fd) = fd {
            if set_nonblocking(fd).is_ok() {
                while read_some(fd, buffer) {}
            }
        }
    }
    let exit = match status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(code), _) => Exit::Code(code),
                (None, Some(signal)) => Exit::Signal(signal),
                (None, None) => Exit::Code(-1),
            }
        }
        Err(_) => Exit::Code(-1),
    };
    Reply::Ran {
        exit,
        stdout: text(out),
        stderr: text(err),
    }
}

/// Read once into `buffer`; false at end of file or when nothing more is available.
fn read_some(fd: &OwnedFd, buffer: &mut Vec<u8>) -> bool {
    let read = crate::sys::read_appending(fd, buffer, 16384);
    // Past the limit the rest is read and dropped, so the command never blocks on a full pipe.
    buffer.truncate(OUTPUT_LIMIT);
    read.is_ok_and(|n| n > 0)
}

fn set_nonblocking(fd: impl AsFd) -> nix::Result<()> {
    let flags = OFlag::from_bits_retain(fcntl(fd.as_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(|_| ())
}

fn text(bytes: Vec<u8>) -> String {
    let truncated = bytes.len() >= OUTPUT_LIMIT;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if truncated {
        text.push_str("\n[nsconform: output truncated at 1 MiB]\n");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_the_limit_is_read_and_dropped() {
        let (reader, writer) = nix::unistd::pipe().unwrap();
        let total = OUTPUT_LIMIT + 100_000;
        // The writer would block on a full pipe if the reader stopped at the limit.
        let writing = std::thread::spawn(move || {
            let mut file = std::fs::File::from(writer);
            std::io::Write::write_all(&mut file, &vec![b'x'; total]).is_ok()
        });
        let mut buffer = Vec::new();
        while read_some(&reader, &mut buffer) {}
        assert!(writing.join().unwrap());
        assert_eq!(buffer.len(), OUTPUT_LIMIT);
        assert!(text(buffer).ends_with("[nsconform: output truncated at 1 MiB]\n"));
    }
}
