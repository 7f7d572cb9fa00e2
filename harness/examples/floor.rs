//! The floor for `ci/bench.sh`: the least a program can do to run a command in new
//! namespaces — one `unshare(2)`, the maps when a user namespace is new, a fork when a PID
//! namespace is new, the `exec`, and the waits — with nothing else.
//!
//! Usage: `floor KINDS COMMAND [ARG...]`, KINDS a comma list of user, uts, pid, net, mount,
//! ipc, cgroup (e.g. `floor uts sh -c 'hostname x; hostname'`).

use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

use nix::sched::{unshare, CloneFlags};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(kinds), Some(program)) = (args.next(), args.next()) else {
        eprintln!("usage: floor KINDS COMMAND [ARG...]");
        return ExitCode::from(2);
    };
    let mut flags = CloneFlags::empty();
    for kind in kinds.split(',') {
        flags |= match kind {
            "user" => CloneFlags::CLONE_NEWUSER,
            "uts" => CloneFlags::CLONE_NEWUTS,
            "pid" => CloneFlags::CLONE_NEWPID,
            "net" => CloneFlags::CLONE_NEWNET,
            "mount" => CloneFlags::CLONE_NEWNS,
            "ipc" => CloneFlags::CLONE_NEWIPC,
            "cgroup" => CloneFlags::CLONE_NEWCGROUP,
            other => {
                eprintln!("floor: unknown namespace `{other}`");
                return ExitCode::from(2);
            }
        };
    }
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    if let Err(err) = unshare(flags) {
        eprintln!("floor: unshare: {err}");
        return ExitCode::FAILURE;
    }
    if flags.contains(CloneFlags::CLONE_NEWUSER) {
        let maps = [
            ("setgroups", "deny".to_string()),
            ("uid_map", format!("0 {uid} 1")),
            ("gid_map", format!("0 {gid} 1")),
        ];
        for (file, text) in maps {
            if let Err(err) = std::fs::write(format!("/proc/self/{file}"), text) {
                eprintln!("floor: {file}: {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    // The command is a child (a new PID namespace needs one anyway); the floor waits for it.
    let mut command = Command::new(program);
    command.args(args);
    if flags.contains(CloneFlags::CLONE_NEWNS) {
        // As unshare(1) does by default.
        let _ = nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
            None::<&str>,
        );
    }
    match command.status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(err) => {
            let _ = command.exec();
            eprintln!("floor: {err}");
            ExitCode::FAILURE
        }
    }
}
