//! The fork server (`nsconform __supervise --server`), spoken to as the runner does (see
//! `fork_server.rs`): one packet with a byte and three descriptors asks for a warm
//! supervisor; the answer is its PID and a pidfd.

mod common;

use std::fs::File;
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

use common::{cgroups_of, repo, text};

struct Server {
    process: Child,
    socket: OwnedFd,
}

/// A forked supervisor: its PID, pidfd and streams.
struct Forked {
    pid: u32,
    stdin: File,
    stdout: File,
}

fn start() -> Server {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .expect("socketpair");
    let process = Command::new(env!("CARGO_BIN_EXE_nsconform"))
        .args(["__supervise", "--server"])
        .current_dir(repo())
        .env_remove("NSCONFORM_TOOL_PATH")
        .env_remove("NSCONFORM_USERLAND")
        .stdin(Stdio::from(theirs))
        .spawn()
        .expect("run nsconform");
    Server {
        process,
        socket: ours,
    }
}

fn fork(server: &Server) -> Forked {
    let (stdin_read, stdin_write) = nix::unistd::pipe().expect("pipe");
    let (stdout_read, stdout_write) = nix::unistd::pipe().expect("pipe");
    let (stderr_read, stderr_write) = nix::unistd::pipe().expect("pipe");
    drop(stderr_read);
    let fds = [
        stdin_read.as_raw_fd(),
        stdout_write.as_raw_fd(),
        stderr_write.as_raw_fd(),
    ];
    sendmsg::<()>(
        server.socket.as_raw_fd(),
        &[IoSlice::new(b"n")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .expect("ask for a supervisor");
    drop((stdin_read, stdout_write, stderr_write));
    let mut answer = [0u8; 4];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut answer)];
    let message = recvmsg::<()>(
        server.socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .expect("the answer");
    assert_eq!(message.bytes, 4, "a PID");
    let pidfds: usize = message
        .cmsgs()
        .expect("cmsgs")
        .map(|control| match control {
            // Left open: the test process ends soon, and owning it would take `unsafe`.
            ControlMessageOwned::ScmRights(raw) => raw.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(pidfds, 1, "a pidfd with the PID");
    Forked {
        pid: u32::from_le_bytes(answer),
        stdin: File::from(stdin_write),
        stdout: File::from(stdout_read),
    }
}

/// Whether process `pid` (the server's child) exits within `limit`: gone, or a zombie.
fn exits_within(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat.rsplit(')').next().map(|rest| rest.trim().to_string()));
        if state.is_none_or(|s| s.starts_with('Z')) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn a_forked_supervisor_runs_the_scenario_it_is_told_and_prints_its_two_lines() {
    let mut server = start();
    let mut forked = fork(&server);
    assert_ne!(forked.pid, server.process.id());
    let status = std::fs::read_to_string(format!("/proc/{}/status", forked.pid))
        .expect("the supervisor is alive");
    let parent = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .map(str::trim);
    assert_eq!(parent, Some(server.process.id().to_string().as_str()));
    forked
        .stdin
        .write_all(b"{\"name\":\"forked\",\"path\":\"scenarios/uts/hostname-isolated.toml\"}\n")
        .expect("tell");
    drop(forked.stdin);
    let mut out = Vec::new();
    forked.stdout.read_to_end(&mut out).expect("read its lines");
    let lines: Vec<&str> = std::str::from_utf8(&out).expect("utf-8").lines().collect();
    assert_eq!(lines.len(), 2, "{}", text(&out));
    let report: serde_json::Value = serde_json::from_str(lines[0]).expect("a report");
    assert_eq!(report["name"], "forked");
    assert_eq!(report["outcome"], "passed", "{}", lines[0]);
    assert_eq!(lines[1], r#"{"cleanup":null}"#);
    assert!(exits_within(forked.pid, Duration::from_secs(10)));
    drop(server.socket);
    let ended = server.process.wait().expect("the server ends");
    assert!(ended.success(), "{ended}");
}

#[test]
fn sigterm_reaches_the_supervisors_it_forked_and_ends_it() {
    let mut server = start();
    let waiting = fork(&server);
    // Its stand-in host exists once its cgroup does (as root).
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_root() && cgroups_of(waiting.pid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if is_root() {
        assert!(
            !cgroups_of(waiting.pid).is_empty(),
            "no cgroup for {}",
            waiting.pid
        );
    }
    let killed = Command::new("kill")
        .args(["-TERM", &server.process.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    assert!(
        exits_within(waiting.pid, Duration::from_secs(10)),
        "the waiting supervisor ended"
    );
    let ended = server.process.wait().expect("the server ends");
    assert!(ended.success(), "{ended}");
    assert_eq!(
        cgroups_of(waiting.pid),
        Vec::<std::path::PathBuf>::new(),
        "its cgroups were removed"
    );
    drop(waiting.stdin);
}

#[test]
fn the_end_of_its_requests_ends_it_once_its_supervisors_have_ended() {
    let mut server = start();
    let waiting = fork(&server);
    drop(server.socket);
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        matches!(server.process.try_wait(), Ok(None)),
        "it waits for its supervisor"
    );
    // At the end of its input, a warm supervisor removes its stand-in host and exits.
    drop(waiting.stdin);
    assert!(exits_within(waiting.pid, Duration::from_secs(10)));
    let ended = server.process.wait().expect("the server ends");
    assert!(ended.success(), "{ended}");
}
