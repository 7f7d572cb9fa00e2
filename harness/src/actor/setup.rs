//! Carrying out an actor's setup plan against the [`SetupSyscalls`] seam.
//!
//! [`execute`] walks the plan; [`super::kernel::Kernel`] is the real implementation, and a
//! recording fake in the tests checks that a failure stops the plan and names the operation.

use nix::errno::Errno;

use super::plan::{MapSpec, SetupOp};
use crate::scenario::model::{NsKind, Propagation, TimeOffsets};

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
    /// See [`SetupOp::EnterRootfs`].
    fn enter_rootfs(&mut self, path: &str) -> Result<(), Errno>;
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
        SetupOp::EnterRootfs(path) => format!("pivot_root into {path}"),
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
            SetupOp::EnterRootfs(path) => sys.enter_rootfs(path),
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
        fn enter_rootfs(&mut self, _: &str) -> Result<(), Errno> {
            self.call("enter_rootfs")
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
