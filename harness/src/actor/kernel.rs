//! The real system calls behind [`super::setup::SetupSyscalls`], made by the
//! actor process on itself, and the file writes (maps, offsets) they rely on.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Gid, Pid, Uid};

use super::plan::MapSpec;
use super::setup::SetupSyscalls;
use crate::scenario::model::{NsKind, Propagation, SetGroups, TimeOffsets};
use crate::sys;

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
pub(crate) struct Kernel {
    /// This actor's control socket (closed by the waiting parent after a fork).
    pub(crate) control: OwnedFd,
    /// The handshake socket with the creator, when it writes the maps.
    pub(crate) sync: Option<OwnedFd>,
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
                sys::exit_forked(wait_exit_code(child))
            }
        }
    }

    fn mount_proc(&mut self) -> Result<(), Errno> {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>)
    }

    fn enter_rootfs(&mut self, path: &str) -> Result<(), Errno> {
        crate::userland::enter(std::path::Path::new(path), false).map_err(|err| err.errno())
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
