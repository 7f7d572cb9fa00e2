//! How a failed probe says why: one line naming the call that failed and its errno, e.g.
//! `mount_setattr(MOUNT_ATTR_IDMAP): EINVAL (Invalid argument)`.

use nix::errno::Errno;
use nix::sched::CloneFlags;

use crate::actor::kernel::clone_flag;
use crate::scenario::model::NsKind;

/// "CALL: ERRNO (description)", the shape of every reason.
pub(super) fn failed(call: &str, errno: Errno) -> String {
    format!("{call}: {errno:?} ({})", errno.desc())
}

/// [`failed`] for an I/O error (from `std::fs`).
pub(super) fn io_failed(call: &str, err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => failed(call, Errno::from_raw(code)),
        None => format!("{call}: {err}"),
    }
}

/// `CLONE_NEWUSER|CLONE_NEWNS`-style names of namespace flags, for messages.
pub(super) fn flag_names(flags: CloneFlags) -> String {
    let names: Vec<String> = NsKind::ALL
        .iter()
        .filter(|kind| flags.contains(clone_flag(**kind)))
        .map(|kind| match kind {
            NsKind::Mount => "CLONE_NEWNS".to_string(),
            other => format!("CLONE_NEW{}", other.proc_name().to_uppercase()),
        })
        .collect();
    names.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys;

    #[test]
    fn reasons_name_the_call_and_errno() {
        assert_eq!(
            failed("mount_setattr(MOUNT_ATTR_IDMAP)", Errno::EINVAL),
            "mount_setattr(MOUNT_ATTR_IDMAP): EINVAL (Invalid argument)"
        );
        let err = std::io::Error::from_raw_os_error(libc::EPERM);
        assert_eq!(
            io_failed("write /proc/self/uid_map", &err),
            "write /proc/self/uid_map: EPERM (Operation not permitted)"
        );
        assert_eq!(
            flag_names(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS),
            "CLONE_NEWUSER|CLONE_NEWNS"
        );
        assert_eq!(flag_names(sys::CLONE_NEWTIME), "CLONE_NEWTIME");
    }
}
