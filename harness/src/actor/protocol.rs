//! Messages between the orchestrator and actor agents, over a `SOCK_STREAM` Unix socket.
//!
//! A frame is a 4-byte little-endian length and a JSON document. A frame may carry one file
//! descriptor (`SCM_RIGHTS`); the receiver has `SO_PASSCRED` set, so it learns the sender's
//! PID as seen from its own PID namespace (how the harness knows an actor's host PID).

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, socketpair, sockopt, AddressFamily, ControlMessage,
    ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::plan::ActorPlan;
use crate::observe::SubjectQuery;

/// Largest frame accepted (command output is capped well below this).
const MAX_FRAME: usize = 16 << 20;

/// From the orchestrator to an agent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    /// Run a command and report its status and output.
    Run {
        /// Program and arguments (`argv[0]` is looked up on `PATH`).
        argv: Vec<String>,
        /// The complete environment.
        env: Vec<(String, String)>,
        /// Working directory.
        cwd: String,
        /// Standard input, or `/dev/null` when `None`.
        stdin: Option<String>,
    },
    /// Open `path` for writing and write `content` in one `write(2)`.
    Write {
        /// The file.
        path: String,
        /// The bytes to write.
        content: String,
    },
    /// Create a nested actor from this one; the frame carries its control socket.
    Spawn(Box<ActorPlan>),
    /// Observe yourself; the frame carries your `/proc/PID` directory (host's `/proc`).
    Observe(SubjectQuery),
    /// Read another process's maps as you see them; the frame carries its `/proc/PID`.
    ReadMaps,
    /// To a spare actor, after the `Spawn` that makes it an actor whose creator writes its
    /// maps: the frame carries its end of the map handshake.
    Handshake,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit status {code}"),
            Exit::Signal(signal) => write!(f, "killed by signal {signal}"),
        }
    }
}

/// From an agent to the orchestrator.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// The actor finished its setup and waits for requests (sent once, first).
    Ready,
    /// The actor could not be set up; it exits after this.
    SetupFailed {
        /// The setup operation that failed, in words.
        operation: String,
        /// The errno, when the failure was a system call.
        errno: Option<i32>,
        /// The whole message.
        message: String,
    },
    /// A command ran.
    Ran {
        /// How it ended.
        exit: Exit,
        /// Its standard output (lossy UTF-8).
        stdout: String,
        /// Its standard error (lossy UTF-8).
        stderr: String,
    },
    /// A command could not be started at all (no such program, not executable).
    CannotRun {
        /// The program.
        program: String,
        /// Why, in words.
        error: String,
    },
    /// A write finished: `None` on success, else the errno.
    Wrote(Option<i32>),
    /// A nested actor was forked (its own `Ready` comes on its socket), or why not.
    Spawned(Result<(), String>),
    /// An observation (a JSON object), or why it failed.
    Observed(Result<serde_json::Value, String>),
}

/// A connected pair of control sockets (close-on-exec), the first with `SO_PASSCRED` set
/// for the orchestrator's end.
pub(crate) fn control_pair() -> nix::Result<(OwnedFd, OwnedFd)> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    setsockopt(&ours, sockopt::PassCred, &true)?;
    Ok((ours, theirs))
}

/// Send `message` as one frame, with `fd` attached when given.
pub(crate) fn send<T: Serialize>(
    socket: &OwnedFd,
    message: &T,
    fd: Option<RawFd>,
) -> Result<(), Errno> {
    let body = serde_json::to_vec(message).map_err(|_| Errno::EINVAL)?;
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&body);
    let fds;
    let cmsgs: Vec<ControlMessage<'_>> = match fd {
        Some(fd) => {
            fds = [fd];
            vec![ControlMessage::ScmRights(&fds)]
        }
        None => Vec::new(),
    };
    let mut sent = 0;
    while sent < frame.len() {
        let iov = [IoSlice::new(&frame[sent..])];
        let cm: &[ControlMessage<'_>] = if sent == 0 { &cmsgs } else { &[] };
        match sendmsg::<()>(socket.as_raw_fd(), &iov, cm, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => sent += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A received frame: the message, an attached descriptor, and the sender's PID as seen here.
pub(crate) struct Received<T> {
    /// The decoded message.
    pub(crate) message: T,
    /// A descriptor sent with it.
    pub(crate) fd: Option<OwnedFd>,
    /// The sender's PID in the receiver's PID namespace (needs `SO_PASSCRED`).
    pub(crate) sender_pid: Option<i32>,
}

/// Receive one frame; `Ok(None)` when the peer closed the socket.
pub(crate) fn recv<T: DeserializeOwned>(socket: &OwnedFd) -> Result<Option<Received<T>>, Errno> {
    let mut header = [0u8; 4];
    let mut got = 0;
    let mut fd = None;
    let mut sender_pid = None;
    while got < header.len() {
        let mut cmsg = nix::cmsg_space!([RawFd; 1], nix::sys::socket::UnixCredentials);
        let mut iov = [IoSliceMut::new(&mut header[got..])];
        let msg = match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => msg,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        };
        for c in msg.cmsgs()? {
            match c {
                ControlMessageOwned::ScmRights(fds) => {
                    for raw in fds {
                        fd = Some(owned(raw));
                    }
                }
                ControlMessageOwned::ScmCredentials(creds) => sender_pid = Some(creds.pid()),
                _ => {}
            }
        }
        if msg.bytes == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(Errno::EPIPE)
            };
        }
        got += msg.bytes;
    }
    let len = u32::from_le_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(Errno::EMSGSIZE);
    }
    let mut body = vec![0u8; len];
    let mut read = 0;
    while read < len {
        match nix::unistd::read(socket, &mut body[read..]) {
            Ok(0) => return Err(Errno::EPIPE),
            Ok(n) => read += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    let message = serde_json::from_slice(&body).map_err(|_| Errno::EBADMSG)?;
    Ok(Some(Received {
        message,
        fd,
        sender_pid,
    }))
}

/// Encode and decode one of each message an actor's first step exchanges, for the actor
/// in `plan`, and drop them: run while a process waits, it pages in the code that the real
/// messages then run without faults (a fresh process faults in every page of code the first
/// time it runs it).
pub(crate) fn warm_up(plan: &ActorPlan) {
    let requests = [
        Request::Spawn(Box::new(plan.clone())),
        Request::Run {
            argv: vec!["/bin/sh".into(), "-c".into(), "true".into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: "/".into(),
            stdin: None,
        },
    ];
    for request in &requests {
        if let Ok(bytes) = serde_json::to_vec(request) {
            let _ = serde_json::from_slice::<Request>(&bytes);
        }
    }
    let replies = [
        Reply::Ready,
        Reply::Ran {
            exit: Exit::Code(0),
            stdout: "warm\n".into(),
            stderr: String::new(),
        },
    ];
    for reply in &replies {
        if let Ok(bytes) = serde_json::to_vec(reply) {
            let _ = serde_json::from_slice::<Reply>(&bytes);
        }
    }
}

fn owned(raw: RawFd) -> OwnedFd {
    crate::sys::own_fd(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_fd_and_sender_pid() {
        let (ours, theirs) = control_pair().unwrap();
        let (extra, _keep) = control_pair().unwrap();
        send(&theirs, &Reply::Wrote(Some(1)), Some(extra.as_raw_fd())).unwrap();
        let got: Received<Reply> = recv(&ours).unwrap().unwrap();
        assert!(matches!(got.message, Reply::Wrote(Some(1))));
        assert!(got.fd.is_some());
        assert_eq!(got.sender_pid, Some(std::process::id() as i32));
        drop(theirs);
        assert!(recv::<Reply>(&ours).unwrap().is_none());
    }

    #[test]
    fn large_frames_arrive_whole() {
        let (ours, theirs) = control_pair().unwrap();
        let big = "x".repeat(1 << 20);
        let writer = std::thread::spawn(move || {
            send(
                &theirs,
                &Reply::Ran {
                    exit: Exit::Code(0),
                    stdout: big,
                    stderr: String::new(),
                },
                None,
            )
            .unwrap();
        });
        let got: Received<Reply> = recv(&ours).unwrap().unwrap();
        writer.join().unwrap();
        match got.message {
            Reply::Ran { stdout, .. } => assert_eq!(stdout.len(), 1 << 20),
            other => panic!("{other:?}"),
        }
    }
}
