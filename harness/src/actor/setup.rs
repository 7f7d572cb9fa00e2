//! Carrying out an actor's setup plan, and forking the actor process.
//!
//! [`execute`] walks the plan against the [`SetupSyscalls`] seam; [`Kernel`] is the real
//! implementation, a fake in the tests checks that a failure stops the plan and names the
//! operation. [`spawn_actor`] forks, runs the plan in the child, writes parent-side maps
//! through a handshake, and hands the child to [`super::agent::serve`].

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Gid, Pid, Uid};

use super::plan::{ActorPlan, MapSpec, SetupOp};
use super::protocol::{self, Reply};
use crate::scenario::model::{NsKind, Propagation, SetGroups, TimeOffsets};
use crate::sys;

/// A setup operation that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {detail}")]
pub(crate) struct SetupError {
    /// The operation, in words (e.g. `unshare(user, uts)`).
    pub(crate) operation: String,
    /// The errno.
    pub(crate) errno: Errno,
    /// The errno's name and description, plus any detail.
    pub(crate) detail: String,
}

/// The system calls an actor setup needs; one method per [`SetupOp`].
pub(crate) trait SetupSyscalls {
    /// See [`SetupOp::EnterCgroup`].
    fn enter_cgroup(&mut self, path: &str) -> Result<(), Errno>;
    /// See [`SetupOp::DropPrivileges`].
    fn drop_privileges(&mut self, uid: u32, gid: u32, groups: &[u32]) -> Result<(), Errno>;
    /// See [`SetupOp::Join`].
    fn join(&mut self, pid: i32, kinds: &[NsKind], all: bool) -> Result<(), Errno>;
    /// See [`SetupOp::Unshare`].
    fn unshare(&mut self, kinds: &[NsKind]) -> Result<(), Errno>;
    /// See [`SetupOp::AwaitParentMaps`].
    fn await_parent_maps(&mut self) -> Result<(), Errno>;
    /// See [`SetupOp::WriteOwnMaps`].
    fn write_own_maps(&mut self, spec: &MapSpec) -> Result<(), Errno>;
    /// See [`SetupOp::Become`].
    fn become_ids(&mut self, uid: Option<u32>, gid: Option<u32>) -> Result<(), Errno>;
    /// See [`SetupOp::WriteTimeOffsets`].
    fn write_time_offsets(&mut self, offsets: &TimeOffsets) -> Result<(), Errno>;
    /// See [`SetupOp::SetPropagation`].
    fn set_propagation(&mut self, propagation: Propagation) -> Result<(), Errno>;
    /// See [`SetupOp::ForkChild`]; returns only in the child.
    fn fork_child(&mut self) -> Result<(), Errno>;
    /// See [`SetupOp::MountProc`].
    fn mount_proc(&mut self) -> Result<(), Errno>;
    /// See [`SetupOp::Chdir`].
    fn chdir(&mut self, path: &str) -> Result<(), Errno>;
}

/// How an operation is named in messages.
pub(crate) fn describe(op: &SetupOp) -> String {
    let kinds = |kinds: &[NsKind]| {
        kinds
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match op {
        SetupOp::EnterCgroup(path) => format!("enter cgroup `{path}`"),
        SetupOp::DropPrivileges { uid, gid, .. } => {
            format!("drop privileges to uid {uid} gid {gid}")
        }
        SetupOp::Join { pid, kinds: k, .. } => format!("setns({}) into PID {pid}", kinds(k)),
        SetupOp::Unshare(k) => format!("unshare({})", kinds(k)),
        SetupOp::AwaitParentMaps => "wait for the parent to write uid_map/gid_map".to_string(),
        SetupOp::WriteOwnMaps(_) => "write own uid_map/gid_map".to_string(),
        SetupOp::Become { uid, gid } => format!("switch to uid {uid:?} gid {gid:?} inside"),
        SetupOp::WriteTimeOffsets(_) => "write /proc/self/timens_offsets".to_string(),
        SetupOp::SetPropagation(p) => format!("set propagation of / to {p:?}").to_lowercase(),
        SetupOp::ForkChild => "fork into the new PID or time namespace".to_string(),
        SetupOp::MountProc => "mount a fresh /proc".to_string(),
        SetupOp::Chdir(path) => format!("chdir to {path}"),
    }
}

/// Carry out `ops` in order, stopping at the first failure.
pub(crate) fn execute(ops: &[SetupOp], sys: &mut impl SetupSyscalls) -> Result<(), SetupError> {
    for op in ops {
        let result = match op {
            SetupOp::EnterCgroup(path) => sys.enter_cgroup(path),
            SetupOp::DropPrivileges { uid, gid, groups } => sys.drop_privileges(*uid, *gid, groups),
            SetupOp::Join { pid, kinds, all } => sys.join(*pid, kinds, *all),
            SetupOp::Unshare(kinds) => sys.unshare(kinds),
            SetupOp::AwaitParentMaps => sys.await_parent_maps(),
            SetupOp::WriteOwnMaps(spec) => sys.write_own_maps(spec),
            SetupOp::Become { uid, gid } => sys.become_ids(*uid, *gid),
            SetupOp::WriteTimeOffsets(offsets) => sys.write_time_offsets(offsets),
            SetupOp::SetPropagation(propagation) => sys.set_propagation(*propagation),
            SetupOp::ForkChild => sys.fork_child(),
            SetupOp::MountProc => sys.mount_proc(),
            SetupOp::Chdir(path) => sys.chdir(path),
        };
        result.map_err(|errno| SetupError {
            operation: describe(op),
            errno,
            detail: format!("{} ({})", crate::errno::name(errno), errno.desc()),
        })?;
    }
    Ok(())
}

/// The clone flag of a namespace kind.
pub(crate) fn clone_flag(kind: NsKind) -> CloneFlags {
    match kind {
        NsKind::User => CloneFlags::CLONE_NEWUSER,
        NsKind::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        NsKind::Ipc => CloneFlags::CLONE_NEWIPC,
        NsKind::Uts => CloneFlags::CLONE_NEWUTS,
        NsKind::Net => CloneFlags::CLONE_NEWNET,
        NsKind::Pid => CloneFlags::CLONE_NEWPID,
        NsKind::Mount => CloneFlags::CLONE_NEWNS,
        NsKind::Time => sys::CLONE_NEWTIME,
    }
}

fn io_errno(err: std::io::Error) -> Errno {
    Errno::from_raw(err.raw_os_error().unwrap_or(libc::EIO))
}

/// Write `content` to `path` in one `write(2)`.
pub(crate) fn write_once(path: &str, content: &str) -> Result<(), Errno> {
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_errno)?;
    let written = file.write(content.as_bytes()).map_err(io_errno)?;
    if written != content.len() {
        return Err(Errno::EIO);
    }
    Ok(())
}

/// Write a user namespace's maps under `proc_dir` (`/proc/self` or `/proc/PID`).
pub(crate) fn write_maps(proc_dir: &str, spec: &MapSpec) -> Result<(), Errno> {
    if let Some(setgroups) = spec.setgroups {
        let word = match setgroups {
            SetGroups::Allow => "allow",
            SetGroups::Deny => "deny",
        };
        write_once(&format!("{proc_dir}/setgroups"), word)?;
    }
    if !spec.uid.is_empty() {
        write_once(
            &format!("{proc_dir}/uid_map"),
            &(spec.uid.join("\n") + "\n"),
        )?;
    }
    if !spec.gid.is_empty() {
        write_once(
            &format!("{proc_dir}/gid_map"),
            &(spec.gid.join("\n") + "\n"),
        )?;
    }
    Ok(())
}

/// The real system calls, for the actor process itself.
struct Kernel {
    /// This actor's control socket (closed by the waiting parent after a fork).
    control: OwnedFd,
    /// The handshake socket with the creator, when it writes the maps.
    sync: Option<OwnedFd>,
}

impl SetupSyscalls for Kernel {
    fn enter_cgroup(&mut self, path: &str) -> Result<(), Errno> {
        write_once(&format!("/sys/fs/cgroup/{path}/cgroup.procs"), "0")
    }

    fn drop_privileges(&mut self, uid: u32, gid: u32, groups: &[u32]) -> Result<(), Errno> {
        let groups: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
        nix::unistd::setgroups(&groups)?;
        let gid = Gid::from_raw(gid);
        nix::unistd::setresgid(gid, gid, gid)?;
        sys::drop_bounding_set()?;
        sys::clear_ambient_capabilities()?;
        nix::sys::prctl::set_no_new_privs()?;
        let uid = Uid::from_raw(uid);
        nix::unistd::setresuid(uid, uid, uid)?;
        // A uid change clears "dumpable", which would make /proc/self root-owned; a user's
        // process that exec'd a program is dumpable, so restore that.
        nix::sys::prctl::set_dumpable(true)?;
        // Changing every uid away from 0 clears the permitted and effective sets; check it.
        let status = std::fs::read_to_string("/proc/self/status").map_err(io_errno)?;
        let has_caps = status
            .lines()
            .filter(|l| l.starts_with("CapEff:") || l.starts_with("CapPrm:"))
            .any(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|v| !v.trim_start_matches('0').is_empty())
            });
        if uid.is_root() || !has_caps {
            Ok(())
        } else {
            Err(Errno::EPERM)
        }
    }

    fn join(&mut self, pid: i32, kinds: &[NsKind], all: bool) -> Result<(), Errno> {
        let mut targets = Vec::new();
        for kind in kinds {
            let path = format!("/proc/{pid}/ns/{}", kind.proc_name());
            let file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(err) if all && err.kind() == std::io::ErrorKind::NotFound => continue,
                Err(err) => return Err(io_errno(err)),
            };
            if all {
                let ours = std::fs::metadata(format!("/proc/self/ns/{}", kind.proc_name()));
                let theirs = file.metadata().map_err(io_errno)?;
                if ours.is_ok_and(|o| o.ino() == theirs.ino() && o.dev() == theirs.dev()) {
                    continue;
                }
            }
            targets.push((*kind, file));
        }
        for (kind, file) in targets {
            nix::sched::setns(&file, clone_flag(kind))?;
        }
        Ok(())
    }

    fn unshare(&mut self, kinds: &[NsKind]) -> Result<(), Errno> {
        let flags = kinds
            .iter()
            .fold(CloneFlags::empty(), |acc, k| acc | clone_flag(*k));
        nix::sched::unshare(flags)
    }

    fn await_parent_maps(&mut self) -> Result<(), Errno> {
        let sync = self.sync.take().ok_or(Errno::EINVAL)?;
        nix::unistd::write(&sync, &[1])?;
        let mut answer = [0u8; 4];
        let mut got = 0;
        while got < answer.len() {
            match nix::unistd::read(&sync, &mut answer[got..]) {
                Ok(0) => return Err(Errno::EPIPE),
                Ok(n) => got += n,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
        match i32::from_le_bytes(answer) {
            0 => Ok(()),
            errno => Err(Errno::from_raw(errno)),
        }
    }

    fn write_own_maps(&mut self, spec: &MapSpec) -> Result<(), Errno> {
        write_maps("/proc/self", spec)
    }

    fn become_ids(&mut self, uid: Option<u32>, gid: Option<u32>) -> Result<(), Errno> {
        if let Some(gid) = gid {
            let gid = Gid::from_raw(gid);
            // Refused (EPERM) when setgroups is denied: then keep the groups as they are.
            let _ = nix::unistd::setgroups(&[]);
            nix::unistd::setresgid(gid, gid, gid)?;
        }
        if let Some(uid) = uid {
            let uid = Uid::from_raw(uid);
            nix::unistd::setresuid(uid, uid, uid)?;
        }
        nix::sys::prctl::set_dumpable(true)
    }

    fn write_time_offsets(&mut self, offsets: &TimeOffsets) -> Result<(), Errno> {
        let text = format!(
            "monotonic {} 0\nboottime {} 0\n",
            offsets.monotonic, offsets.boottime
        );
        write_once("/proc/self/timens_offsets", &text)
    }

    fn set_propagation(&mut self, propagation: Propagation) -> Result<(), Errno> {
        let flag = match propagation {
            Propagation::Private => MsFlags::MS_PRIVATE,
            Propagation::Slave => MsFlags::MS_SLAVE,
            Propagation::Shared => MsFlags::MS_SHARED,
            Propagation::Unchanged => return Ok(()),
        };
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | flag,
            None::<&str>,
        )
    }

    fn fork_child(&mut self) -> Result<(), Errno> {
        match sys::fork()? {
            ForkResult::Child => Ok(()),
            ForkResult::Parent { child } => {
                // The waiting parent keeps nothing the orchestrator could wait on.
                let _ = nix::unistd::close(self.control.as_raw_fd());
                std::process::exit(wait_exit_code(child))
            }
        }
    }

    fn mount_proc(&mut self) -> Result<(), Errno> {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>)
    }

    fn chdir(&mut self, path: &str) -> Result<(), Errno> {
        nix::unistd::chdir(path)
    }
}

/// Wait for `child` and turn its end into an exit code (`128 + signal` when killed).
fn wait_exit_code(child: Pid) -> i32 {
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, signal, _)) => return 128 + signal as i32,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return 1,
        }
    }
}

/// Fork a new actor from this (single-threaded) process and set it up according to `plan`.
///
/// `control` is the actor's end of its control socket; the actor reports `Ready` or
/// `SetupFailed` on it. Returns the child's PID as seen here.
pub(crate) fn spawn_actor(plan: &ActorPlan, control: OwnedFd) -> Result<Pid, String> {
    let handshake = match plan.parent_maps {
        Some(_) => Some(
            nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::Stream,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )
            .map_err(|e| format!("socketpair: {e}"))?,
        ),
        None => None,
    };
    match sys::fork().map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            let (parent_end, child_end) = match handshake {
                Some((p, c)) => (Some(p), Some(c)),
                None => (None, None),
            };
            drop(parent_end);
            let mut keep = vec![control.as_raw_fd()];
            keep.extend(child_end.as_ref().map(|fd| fd.as_raw_fd()));
            sys::close_other_fds(&keep);
            run_actor(plan, control, child_end)
        }
        ForkResult::Parent { child } => {
            drop(control);
            if let (Some((parent_end, child_end)), Some(maps)) = (handshake, &plan.parent_maps) {
                drop(child_end);
                write_maps_for_child(child, &parent_end, maps);
            }
            Ok(child)
        }
    }
}

/// The creator's half of the map handshake. Errors reach the child, which reports them.
fn write_maps_for_child(child: Pid, sync: &OwnedFd, maps: &MapSpec) {
    let mut ready = [0u8; 1];
    match nix::unistd::read(sync, &mut ready) {
        Ok(1) => {}
        // The child failed before its unshare; it reports that itself.
        _ => return,
    }
    let result = match write_maps(&format!("/proc/{child}"), maps) {
        Ok(()) => 0i32,
        Err(errno) => errno as i32,
    };
    let _ = nix::unistd::write(sync, &result.to_le_bytes());
}

/// The actor process: set up, report, serve requests; never returns.
fn run_actor(plan: &ActorPlan, control: OwnedFd, sync: Option<OwnedFd>) -> ! {
    let comm = format!("nsc:{}", plan.name);
    let comm: String = comm.chars().take(15).collect();
    if let Ok(name) = std::ffi::CString::new(comm) {
        let _ = nix::sys::prctl::set_name(&name);
    }
    let mut kernel = Kernel { control, sync };
    let outcome = execute(&plan.ops, &mut kernel);
    let control = kernel.control;
    match outcome {
        Err(err) => {
            let reply = Reply::SetupFailed {
                operation: err.operation.clone(),
                errno: Some(err.errno as i32),
                message: err.to_string(),
            };
            let _ = protocol::send(&control, &reply, None);
            std::process::exit(1)
        }
        Ok(()) => {
            if protocol::send(&control, &Reply::Ready, None).is_err() {
                std::process::exit(1);
            }
            super::agent::serve(&control);
            std::process::exit(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records calls and fails the named one.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<&'static str>,
        fail: Option<&'static str>,
    }

    impl Recorder {
        fn call(&mut self, name: &'static str) -> Result<(), Errno> {
            self.calls.push(name);
            if self.fail == Some(name) {
                Err(Errno::EPERM)
            } else {
                Ok(())
            }
        }
    }

    impl SetupSyscalls for Recorder {
        fn enter_cgroup(&mut self, _: &str) -> Result<(), Errno> {
            self.call("enter_cgroup")
        }
        fn drop_privileges(&mut self, _: u32, _: u32, _: &[u32]) -> Result<(), Errno> {
            self.call("drop_privileges")
        }
        fn join(&mut self, _: i32, _: &[NsKind], _: bool) -> Result<(), Errno> {
            self.call("join")
        }
        fn unshare(&mut self, _: &[NsKind]) -> Result<(), Errno> {
            self.call("unshare")
        }
        fn become_ids(&mut self, _: Option<u32>, _: Option<u32>) -> Result<(), Errno> {
            self.call("become_ids")
        }
        fn await_parent_maps(&mut self) -> Result<(), Errno> {
            self.call("await_parent_maps")
        }
        fn write_own_maps(&mut self, _: &MapSpec) -> Result<(), Errno> {
            self.call("write_own_maps")
        }
        fn write_time_offsets(&mut self, _: &TimeOffsets) -> Result<(), Errno> {
            self.call("write_time_offsets")
        }
        fn set_propagation(&mut self, _: Propagation) -> Result<(), Errno> {
            self.call("set_propagation")
        }
        fn fork_child(&mut self) -> Result<(), Errno> {
            self.call("fork_child")
        }
        fn mount_proc(&mut self) -> Result<(), Errno> {
            self.call("mount_proc")
        }
        fn chdir(&mut self, _: &str) -> Result<(), Errno> {
            self.call("chdir")
        }
    }

    fn ops() -> Vec<SetupOp> {
        vec![
            SetupOp::DropPrivileges {
                uid: 1000,
                gid: 1000,
                groups: vec![],
            },
            SetupOp::Unshare(vec![NsKind::Uts]),
            SetupOp::Chdir("/tmp".into()),
        ]
    }

    #[test]
    fn runs_every_operation_in_order() {
        let mut recorder = Recorder::default();
        execute(&ops(), &mut recorder).unwrap();
        assert_eq!(recorder.calls, vec!["drop_privileges", "unshare", "chdir"]);
    }

    #[test]
    fn stops_at_the_first_failure_and_names_it() {
        let mut recorder = Recorder {
            fail: Some("unshare"),
            ..Default::default()
        };
        let err = execute(&ops(), &mut recorder).unwrap_err();
        assert_eq!(recorder.calls, vec!["drop_privileges", "unshare"]);
        assert_eq!(err.operation, "unshare(uts)");
        assert_eq!(err.errno, Errno::EPERM);
        assert!(err.to_string().contains("EPERM"), "{err}");
    }
}
