//! What a successful probe proved, in one line: the `reason` of a `yes` in `nsconform
//! features`, so every answer in the table says why (docs/features.md has the long form).

use crate::requires::Feature;
use crate::scenario::model::NsKind;

/// What the probe of `feature` did that succeeded; `as_root` is whether the harness runs as
/// root (without it, namespace probes create a user namespace along with the one tried).
pub(crate) fn succeeded(feature: Feature, as_root: bool) -> String {
    let with_user = if as_root { "" } else { " (with CLONE_NEWUSER)" };
    match feature {
        Feature::Namespace(kind) => {
            let flag = match kind {
                NsKind::Mount => "CLONE_NEWNS".to_string(),
                other => format!("CLONE_NEW{}", other.proc_name().to_uppercase()),
            };
            format!(
                "/proc/self/ns/{} exists; unshare({flag}){with_user} succeeded",
                kind.proc_name()
            )
        }
        Feature::Userns => {
            "unshare(CLONE_NEWUSER), setgroups deny, uid_map and gid_map \"0 <uid> 1\" written"
                .to_string()
        }
        Feature::UnprivilegedUserns => {
            "as uid 65534: unshare(CLONE_NEWUSER) and its uid_map and gid_map written".to_string()
        }
        Feature::Cgroup1 => "a cgroup (v1) hierarchy is in /proc/self/mountinfo".to_string(),
        Feature::Cgroup2 => "a cgroup2 mount is in /proc/self/mountinfo".to_string(),
        Feature::Overlayfs => {
            "in a new mount namespace: mount(overlay) on a tmpfs succeeded".to_string()
        }
        Feature::OverlayfsInUserns => {
            "as uid 65534 in its own user and mount namespaces: mount(overlay) succeeded"
                .to_string()
        }
        Feature::TmpfsInUserns => {
            "as uid 65534 in its own user and mount namespaces: mount(tmpfs) succeeded".to_string()
        }
        Feature::ProcInUserns => {
            "as uid 65534 in its own user, mount and PID namespaces: mount(proc) shows /proc/self = 1"
                .to_string()
        }
        Feature::IdmappedMounts => {
            "open_tree(OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_IDMAP) + move_mount: root shows as uid 100000"
                .to_string()
        }
        Feature::Pidfd => "pidfd_open(self) succeeded".to_string(),
        Feature::Clone3 => "clone3 with a too-small size gave EINVAL, not ENOSYS".to_string(),
        Feature::SetnsPidfd => {
            format!("setns(pidfd, CLONE_NEWUTS){with_user} moved into a child's UTS namespace")
        }
        Feature::NsfsIoctl => {
            "ioctl(NS_GET_USERNS) on /proc/self/ns/uts returned its user namespace".to_string()
        }
        Feature::TimeOffsets => {
            "unshare(CLONE_NEWTIME), monotonic offset of a day written, a forked child saw it"
                .to_string()
        }
        Feature::Link(kind) => format!(
            "in a new network namespace: ip link add type {} succeeded",
            kind.name()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_feature_says_what_succeeded() {
        for feature in Feature::all() {
            for as_root in [true, false] {
                let text = succeeded(feature, as_root);
                assert!(
                    !text.is_empty() && !text.contains('\n'),
                    "{feature}: {text:?}"
                );
            }
        }
    }

    #[test]
    fn namespace_probes_name_their_flag_and_the_user_namespace_when_not_root() {
        let mount = Feature::Namespace(NsKind::Mount);
        assert_eq!(
            succeeded(mount, true),
            "/proc/self/ns/mnt exists; unshare(CLONE_NEWNS) succeeded"
        );
        assert!(succeeded(mount, false).contains("(with CLONE_NEWUSER)"));
        let time = Feature::Namespace(NsKind::Time);
        assert!(succeeded(time, true).contains("unshare(CLONE_NEWTIME)"));
    }
}
