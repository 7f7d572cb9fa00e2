//! The fork server: a freshly exec'd, single-threaded `nsconform __supervise --server`
//! process per runner thread, which forks warm supervisors when that thread asks for one.
//!
//! Each warm supervisor used to be an exec of `nsconform`: the dynamic loader, its CPU
//! feature checks (which trap to the hypervisor in a VM), relocations and page faults, once
//! per scenario, and on 2 cores that competes with the scenario in flight. A fork of the
//! server costs a fraction of that. The server does nothing else: it makes no namespace,
//! starts no thread, and each child starts from the same state as a fresh `__supervise
//! --warm` (its signal mask cleared, its own standard streams).
//!
//! Protocol, over a `SOCK_SEQPACKET` pair (the server's standard input): the runner sends one
//! byte (`b`: start in the background, `n`: normal; the scheduling of the asking thread)
//! with three descriptors, the child's standard input, output and error; the server answers with the child's PID (4 bytes, little
//! endian) and a pidfd of it. The server reaps its children; the runner waits for one through
//! its pidfd and signals it only through the pidfd, so a reused PID is never hit. When its
//! socket closes, or on SIGTERM, SIGINT or SIGHUP (which it passes on to every child), the
//! server stops forking and exits once its last child has.

use std::fs::File;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::process::{Child, Command, Stdio};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use crate::sys::{self, Scheduling};

/// A child the server forked, as the runner holds it.
#[derive(Debug)]
pub(crate) struct Forked {
    /// Its PID (a child of the server, not of the runner: signal it through `pidfd`).
    pub(crate) pid: u32,
    /// Readable when it exits.
    pub(crate) pidfd: OwnedFd,
    /// Its standard input.
    pub(crate) stdin: File,
    /// Its standard output.
    pub(crate) stdout: File,
    /// Its standard error.
    pub(crate) stderr: File,
}

/// A running fork server, from the runner's side.
#[derive(Debug)]
pub(crate) struct ForkServer {
    process: Child,
    socket: OwnedFd,
}

impl ForkServer {
    /// Start `command` (an `nsconform __supervise --server`) with the server's end of a new
    /// socket as its standard input.
    pub(crate) fn start(mut command: Command) -> std::io::Result<ForkServer> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        let process = command.stdin(Stdio::from(theirs)).spawn()?;
        Ok(ForkServer {
            process,
            socket: ours,
        })
    }

    /// Ask for a new child, with the scheduling of the calling thread (in the background, at
    /// nice 19, or normal).
    pub(crate) fn fork(&self) -> std::io::Result<Forked> {
        let background =
            sys::scheduling_of(Pid::from_raw(0)).is_ok_and(|s| s == Some(Scheduling::Background));
        let (stdin_read, stdin_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (stdout_read, stdout_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (stderr_read, stderr_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let request = [if background { b'b' } else { b'n' }];
        send(
            &self.socket,
            &request,
            &[
                stdin_read.as_raw_fd(),
                stdout_write.as_raw_fd(),
                stderr_write.as_raw_fd(),
            ],
        )?;
        drop((stdin_read, stdout_write, stderr_write));
        let mut answer = [0u8; 4];
        let (got, mut fds) = receive(&self.socket, &mut answer)?;
        let (4, Some(pidfd)) = (got, fds.pop()) else {
            return Err(std::io::Error::other("the fork server did not fork"));
        };
        Ok(Forked {
            pid: u32::from_le_bytes(answer),
            pidfd,
            stdin: File::from(stdin_write),
            stdout: File::from(stdout_read),
            stderr: File::from(stderr_read),
        })
    }

    /// Send `signal` to the server (a child of this process until [`ForkServer::end`]),
    /// which passes it on to every child it has.
    pub(crate) fn signal(&self, signal: Signal) {
        let _ = kill(Pid::from_raw(self.process.id() as i32), signal);
    }

    /// Stop the server: it exits once its last child has (end the children first).
    pub(crate) fn end(mut self) {
        drop(self.socket);
        let _ = self.process.wait();
    }
}

/// Send `bytes` with the descriptors `fds` as one packet.
fn send(socket: &OwnedFd, bytes: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    let iov = [IoSlice::new(bytes)];
    let rights = [ControlMessage::ScmRights(fds)];
    let control: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
    loop {
        match sendmsg::<()>(
            socket.as_raw_fd(),
            &iov,
            control,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(()),
        }
    }
}

/// Receive one packet into `buffer`: its length (0 at the end) and the descriptors with it.
fn receive(socket: &OwnedFd, buffer: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    loop {
        let mut space = nix::cmsg_space!([RawFd; 3]);
        let mut iov = [IoSliceMut::new(buffer)];
        let message = match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(message) => message,
        };
        let mut fds = Vec::new();
        for control in message.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = control {
                // SCM_RIGHTS just installed these descriptors in this process.
                fds.extend(raw.into_iter().map(sys::own_fd));
            }
        }
        return Ok((message.bytes, fds));
    }
}

/// The signals that stop the server, and SIGCHLD, which tells it to reap.
fn signals() -> SigSet {
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        set.add(signal);
    }
    set
}

/// Serve on standard input (see the module's docs) until the end; each child runs
/// `child_main` and exits with what it returns. Returns the server's exit code.
pub(crate) fn serve(child_main: &dyn Fn() -> i32) -> i32 {
    // Every child, and what it forks for each scenario, starts with the code mapped.
    crate::huge_code::move_once();
    let socket = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(socket) => socket,
        Err(e) => return fail(&format!("no socket: {e}")),
    };
    let set = signals();
    if let Err(e) = set.thread_block() {
        return fail(&format!("cannot block signals: {e}"));
    }
    let signalfd = match SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
    {
        Ok(fd) => fd,
        Err(e) => return fail(&format!("no signalfd: {e}")),
    };
    // Die with the runner thread that started this server; the children then hear of it.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
    // A thread waits for each fork: on a loaded machine, a server in the background (as its
    // thread may have been when it started it) would be starved, and the thread with it.
    let _ = sys::bring_back(Pid::from_raw(0));
    let mut children: Vec<Pid> = Vec::new();
    let mut serving = true;
    loop {
        reap(&mut children);
        if !serving && children.is_empty() {
            return 0;
        }
        let mut fds = vec![PollFd::new(signalfd.as_fd(), PollFlags::POLLIN)];
        if serving {
            fds.push(PollFd::new(socket.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return fail(&format!("poll: {e}")),
        }
        let ready =
            |fd: Option<&PollFd<'_>>| fd.and_then(PollFd::revents).is_some_and(|r| !r.is_empty());
        let (signalled, asked) = (ready(fds.first()), ready(fds.get(1)));
        drop(fds);
        if signalled {
            while let Ok(Some(info)) = signalfd.read_signal() {
                if info.ssi_signo != Signal::SIGCHLD as u32 {
                    serving = false;
                    for child in &children {
                        let _ = kill(*child, Signal::SIGTERM);
                    }
                }
            }
        }
        if asked && serving {
            match serve_one(&socket, &signalfd, child_main) {
                Ok(Some(child)) => children.push(child),
                Ok(None) => serving = false,
                Err(e) => {
                    eprintln!("nsconform: fork server: {e}");
                    serving = false;
                }
            }
        }
    }
}

/// Take one request and fork its child; `None` at the end of the requests.
fn serve_one(
    socket: &OwnedFd,
    signalfd: &SignalFd,
    child_main: &dyn Fn() -> i32,
) -> std::io::Result<Option<Pid>> {
    let mut request = [0u8; 1];
    let (got, streams) = receive(socket, &mut request)?;
    if got == 0 {
        return Ok(None);
    }
    crate::phase_log::mark("fork server: asked");
    let [stdin, stdout, stderr] = <[OwnedFd; 3]>::try_from(streams)
        .map_err(|_| std::io::Error::other("a request without its three streams"))?;
    match sys::fork()? {
        ForkResult::Child => {
            // The server's own descriptors: this process never returns to their owners.
            let _ = nix::unistd::close(socket.as_raw_fd());
            let _ = nix::unistd::close(signalfd.as_raw_fd());
            let code = become_child([stdin, stdout, stderr], request[0] == b'b', child_main);
            sys::exit_forked(code)
        }
        ForkResult::Parent { child } => {
            crate::phase_log::mark("fork server: forked");
            drop((stdin, stdout, stderr));
            let pidfd = sys::pidfd_open(child)?;
            send(
                socket,
                &(child.as_raw() as u32).to_le_bytes(),
                &[pidfd.as_raw_fd()],
            )?;
            Ok(Some(child))
        }
    }
}

/// In a new child: take `streams` as standard input, output and error, clear the signal
/// mask, and run `child_main`.
fn become_child(streams: [OwnedFd; 3], background: bool, child_main: &dyn Fn() -> i32) -> i32 {
    let [stdin, stdout, stderr] = streams;
    let moved = nix::unistd::dup2_stdin(&stdin)
        .and_then(|()| nix::unistd::dup2_stdout(&stdout))
        .and_then(|()| nix::unistd::dup2_stderr(&stderr));
    if let Err(e) = moved {
        eprintln!("nsconform: fork server child: dup2: {e}");
        return 1;
    }
    drop((stdin, stdout, stderr));
    let _ = signals().thread_unblock();
    let this = Pid::from_raw(0);
    if background {
        let _ = sys::step_aside(this, Scheduling::Background);
    } else {
        let _ = sys::bring_back(this);
    }
    child_main()
}

/// Reap every child that has exited; an abnormal end is logged (no runner sees its status).
fn reap(children: &mut Vec<Pid>) {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(status) => {
                let Some(pid) = status.pid() else { return };
                children.retain(|c| *c != pid);
                match status {
                    WaitStatus::Exited(_, 0) => {}
                    other => eprintln!("nsconform: fork server: supervisor {pid} ended: {other:?}"),
                }
            }
        }
    }
}

fn fail(message: &str) -> i32 {
    eprintln!("nsconform: fork server: {message}");
    1
}
