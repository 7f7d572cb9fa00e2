//! The setup plan of an actor: which operations, in which order, turn a freshly forked
//! process into the actor the scenario describes.
//!
//! Planning is pure, so the ordering rules (credentials before namespaces, user namespace
//! together with the others, maps before the fork into a new PID namespace, time offsets
//! before any process enters the time namespace, `/proc` mounted from inside the new PID
//! namespace) are unit-tested without root. [`super::setup`] carries a plan out.

use serde::{Deserialize, Serialize};

use crate::scenario::model::{
    Actor, Join, MapPreset, MapWriter, Mapping, NsKind, Propagation, SetGroups, TimeOffsets,
};

/// Map lines to write into a new user namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MapSpec {
    /// Lines for `uid_map` (none: leave it unwritten).
    pub(crate) uid: Vec<String>,
    /// Lines for `gid_map` (none: leave it unwritten).
    pub(crate) gid: Vec<String>,
    /// What to write to `setgroups` first, if anything.
    pub(crate) setgroups: Option<SetGroups>,
}

/// One setup operation, performed by the new actor process on itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SetupOp {
    /// Move into a child cgroup of the scenario's cgroup (path relative to its root).
    EnterCgroup(String),
    /// Become an unprivileged user: groups, gid, no capabilities, no-new-privs, uid.
    DropPrivileges {
        /// The uid.
        uid: u32,
        /// The gid.
        gid: u32,
        /// Supplementary groups.
        groups: Vec<u32>,
    },
    /// `setns` into another process's namespaces; with `all`, only those that differ.
    Join {
        /// The other process, as seen by the creator.
        pid: i32,
        /// Which namespaces.
        kinds: Vec<NsKind>,
        /// Skip namespaces the actor already shares (like `nsenter -a`).
        all: bool,
    },
    /// `unshare` these namespaces in one call.
    Unshare(Vec<NsKind>),
    /// Tell the creator the namespaces exist and wait until it has written the maps.
    AwaitParentMaps,
    /// Write the actor's own maps from inside its new user namespace.
    WriteOwnMaps(MapSpec),
    /// Switch ids inside the new user namespace (after its maps are written).
    Become {
        /// New uid, if any.
        uid: Option<u32>,
        /// New gid, if any.
        gid: Option<u32>,
    },
    /// Write `/proc/self/timens_offsets` (before any process enters the time namespace).
    WriteTimeOffsets(TimeOffsets),
    /// Set mount propagation of `/`, recursively.
    SetPropagation(Propagation),
    /// Fork; the child (PID 1 of a new PID namespace, or a member of a joined one) goes on,
    /// the parent waits for it and exits with its status, like `unshare --fork`.
    ForkChild,
    /// Mount a fresh `proc` on `/proc`.
    MountProc,
    /// Make this directory the root, with `pivot_root` (see [`crate::userland`]).
    EnterRootfs(String),
    /// Change directory.
    Chdir(String),
}

/// Everything needed to create an actor, resolved for one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ActorPlan {
    /// The actor's name.
    pub(crate) name: String,
    /// Operations the new process performs on itself, in order.
    pub(crate) ops: Vec<SetupOp>,
    /// Maps the creator writes after [`SetupOp::AwaitParentMaps`].
    pub(crate) parent_maps: Option<MapSpec>,
}

/// Facts about the run that a plan depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlanContext {
    /// The uid the actor starts with (the harness's).
    pub(crate) uid: u32,
    /// The gid the actor starts with.
    pub(crate) gid: u32,
    /// The host PID of the actor to join, when the actor joins one.
    pub(crate) join_pid: Option<i32>,
}

/// The working directory actors use unless they say otherwise.
pub(crate) const DEFAULT_CWD: &str = "/tmp";

/// Build the setup plan for `actor` called `name`.
pub(crate) fn plan(name: &str, actor: &Actor, context: PlanContext) -> ActorPlan {
    let mut ops = Vec::new();
    if let Some(cgroup) = &actor.cgroup {
        ops.push(SetupOp::EnterCgroup(cgroup.get_ref().clone()));
    }
    let (uid, gid) = match actor.user {
        Some(uid) => {
            let gid = actor.group.unwrap_or(uid);
            ops.push(SetupOp::DropPrivileges {
                uid,
                gid,
                groups: actor.groups.clone(),
            });
            (uid, gid)
        }
        None => (context.uid, context.gid),
    };
    let mut joins_pid = false;
    if let (Some(join), Some(pid)) = (&actor.join, context.join_pid) {
        let (kinds, all) = match join.get_ref() {
            Join::All(_) => (NsKind::ALL.to_vec(), true),
            Join::Some(some) => (sorted(some.namespaces.clone()), false),
        };
        joins_pid = kinds.contains(&NsKind::Pid);
        ops.push(SetupOp::Join { pid, kinds, all });
    }
    let mut kinds: Vec<NsKind> = actor.unshare.iter().map(|k| *k.get_ref()).collect();
    if actor.mount_proc && !kinds.contains(&NsKind::Mount) {
        kinds.push(NsKind::Mount);
    }
    let kinds = sorted(kinds);
    let creates = |kind| kinds.contains(&kind);
    let mut parent_maps = None;
    if !kinds.is_empty() {
        ops.push(SetupOp::Unshare(kinds.clone()));
    }
    if creates(NsKind::User) {
        match map_spec(actor.map.as_ref().map(|m| m.get_ref()), uid, gid) {
            (None, _) => {}
            (Some(spec), MapWriter::Itself) => ops.push(SetupOp::WriteOwnMaps(spec)),
            (Some(spec), MapWriter::Parent) => {
                ops.push(SetupOp::AwaitParentMaps);
                parent_maps = Some(spec);
            }
        }
        if let Some(Mapping::Explicit(explicit)) = actor.map.as_ref().map(|m| m.get_ref()) {
            if explicit.become_uid.is_some() || explicit.become_gid.is_some() {
                ops.push(SetupOp::Become {
                    uid: explicit.become_uid,
                    gid: explicit.become_gid,
                });
            }
        }
    }
    if creates(NsKind::Time) {
        ops.push(SetupOp::WriteTimeOffsets(
            actor.time_offsets.unwrap_or_default(),
        ));
    }
    if creates(NsKind::Mount) {
        match actor.propagation.unwrap_or(Propagation::Private) {
            Propagation::Unchanged => {}
            propagation => ops.push(SetupOp::SetPropagation(propagation)),
        }
    }
    if creates(NsKind::Pid) || creates(NsKind::Time) || joins_pid {
        ops.push(SetupOp::ForkChild);
    }
    if actor.mount_proc {
        ops.push(SetupOp::MountProc);
    }
    if let Some(rootfs) = &actor.rootfs {
        ops.push(SetupOp::EnterRootfs(format!(
            "{}/rootfs/{}",
            crate::payload::kit::RUN_DIR,
            rootfs.get_ref()
        )));
    }
    ops.push(SetupOp::Chdir(
        actor.cwd.clone().unwrap_or_else(|| DEFAULT_CWD.to_string()),
    ));
    ActorPlan {
        name: name.to_string(),
        ops,
        parent_maps,
    }
}

fn sorted(mut kinds: Vec<NsKind>) -> Vec<NsKind> {
    kinds.sort_by_key(|k| NsKind::ALL.iter().position(|a| a == k));
    kinds.dedup();
    kinds
}

/// The map lines and writer for a mapping, given the actor's own uid and gid.
fn map_spec(mapping: Option<&Mapping>, uid: u32, gid: u32) -> (Option<MapSpec>, MapWriter) {
    let own = |inside_uid: u32, inside_gid: u32| MapSpec {
        uid: vec![format!("{inside_uid} {uid} 1")],
        gid: vec![format!("{inside_gid} {gid} 1")],
        setgroups: Some(SetGroups::Deny),
    };
    match mapping {
        None | Some(Mapping::Preset(MapPreset::None)) => (None, MapWriter::Parent),
        Some(Mapping::Preset(MapPreset::Root)) => (Some(own(0, 0)), MapWriter::Itself),
        Some(Mapping::Preset(MapPreset::Current)) => (Some(own(uid, gid)), MapWriter::Itself),
        Some(Mapping::Explicit(explicit)) => {
            let setgroups = match (explicit.setgroups, explicit.writer) {
                (None, MapWriter::Itself) if !explicit.gid.is_empty() => Some(SetGroups::Deny),
                (setgroups, _) => setgroups,
            };
            let spec = MapSpec {
                uid: explicit.uid.clone(),
                gid: explicit.gid.clone(),
                setgroups,
            };
            (Some(spec), explicit.writer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::model::Scenario;

    fn actor(toml_text: &str) -> Actor {
        let text = format!("description = \"t\"\n[actors.a]\n{toml_text}\n");
        let scenario: Scenario = toml::from_str(&text).unwrap();
        scenario.actors.into_values().next().unwrap()
    }

    const ROOT: PlanContext = PlanContext {
        uid: 0,
        gid: 0,
        join_pid: None,
    };

    #[test]
    fn host_actor_only_changes_directory() {
        let plan = plan("h", &Actor::default(), ROOT);
        assert_eq!(plan.ops, vec![SetupOp::Chdir("/tmp".into())]);
    }

    #[test]
    fn rootless_unshare_r_maps_itself_after_dropping_privileges() {
        let a = actor("user = 1000\nunshare = [\"user\", \"uts\"]\nmap = \"root\"");
        let plan = plan("a", &a, ROOT);
        assert_eq!(
            plan.ops,
            vec![
                SetupOp::DropPrivileges {
                    uid: 1000,
                    gid: 1000,
                    groups: vec![]
                },
                SetupOp::Unshare(vec![NsKind::User, NsKind::Uts]),
                SetupOp::WriteOwnMaps(MapSpec {
                    uid: vec!["0 1000 1".into()],
                    gid: vec!["0 1000 1".into()],
                    setgroups: Some(SetGroups::Deny),
                }),
                SetupOp::Chdir("/tmp".into()),
            ]
        );
        assert!(plan.parent_maps.is_none());
    }

    #[test]
    fn pid_namespace_with_proc_forks_then_mounts() {
        let a = actor("unshare = [\"pid\"]\nmount_proc = true");
        let plan = plan("a", &a, ROOT);
        assert_eq!(
            plan.ops,
            vec![
                SetupOp::Unshare(vec![NsKind::Pid, NsKind::Mount]),
                SetupOp::SetPropagation(Propagation::Private),
                SetupOp::ForkChild,
                SetupOp::MountProc,
                SetupOp::Chdir("/tmp".into()),
            ]
        );
    }

    #[test]
    fn explicit_maps_are_written_by_the_parent_after_the_unshare() {
        let a = actor("unshare = [\"user\"]\nmap = { uid = [\"0 100000 65536\"], gid = [\"0 100000 65536\"] }");
        let plan = plan("a", &a, ROOT);
        assert_eq!(plan.ops[0], SetupOp::Unshare(vec![NsKind::User]));
        assert_eq!(plan.ops[1], SetupOp::AwaitParentMaps);
        let maps = plan.parent_maps.unwrap();
        assert_eq!(maps.uid, vec!["0 100000 65536".to_string()]);
        assert_eq!(maps.setgroups, None);
    }

    #[test]
    fn become_switches_ids_after_the_parent_wrote_the_maps() {
        let a = actor("unshare = [\"user\"]\nmap = { uid = [\"0 100000 65536\"], gid = [\"0 100000 65536\"], become_uid = 0, become_gid = 0 }");
        let ops = plan("a", &a, ROOT).ops;
        assert_eq!(ops[1], SetupOp::AwaitParentMaps);
        assert_eq!(
            ops[2],
            SetupOp::Become {
                uid: Some(0),
                gid: Some(0)
            }
        );
    }

    #[test]
    fn self_written_gid_map_denies_setgroups_by_default() {
        let a = actor("unshare = [\"user\"]\nmap = { uid = [\"0 0 1\"], gid = [\"0 0 1\"], writer = \"self\" }");
        let plan = plan("a", &a, ROOT);
        let SetupOp::WriteOwnMaps(spec) = &plan.ops[1] else {
            panic!("{:?}", plan.ops)
        };
        assert_eq!(spec.setgroups, Some(SetGroups::Deny));
    }

    #[test]
    fn no_map_writes_nothing() {
        let a = actor("unshare = [\"user\"]");
        let plan = plan("a", &a, ROOT);
        assert_eq!(
            plan.ops,
            vec![
                SetupOp::Unshare(vec![NsKind::User]),
                SetupOp::Chdir("/tmp".into())
            ]
        );
    }

    #[test]
    fn time_offsets_come_before_the_fork() {
        let a = actor("unshare = [\"time\"]\ntime_offsets = { boottime = 86400 }");
        let ops = plan("a", &a, ROOT).ops;
        let offsets = ops
            .iter()
            .position(|o| matches!(o, SetupOp::WriteTimeOffsets(t) if t.boottime == 86400));
        let fork = ops.iter().position(|o| *o == SetupOp::ForkChild);
        assert!(offsets.unwrap() < fork.unwrap(), "{ops:?}");
    }

    #[test]
    fn joining_all_namespaces_forks_into_the_pid_namespace() {
        let a = actor("join = \"b\"");
        let ops = plan(
            "a",
            &a,
            PlanContext {
                join_pid: Some(42),
                ..ROOT
            },
        )
        .ops;
        assert_eq!(
            ops[0],
            SetupOp::Join {
                pid: 42,
                kinds: NsKind::ALL.to_vec(),
                all: true
            }
        );
        assert_eq!(ops[1], SetupOp::ForkChild);
    }

    #[test]
    fn joining_only_uts_does_not_fork() {
        let a = actor("join = { actor = \"b\", namespaces = [\"uts\"] }");
        let ops = plan(
            "a",
            &a,
            PlanContext {
                join_pid: Some(42),
                ..ROOT
            },
        )
        .ops;
        assert_eq!(
            ops,
            vec![
                SetupOp::Join {
                    pid: 42,
                    kinds: vec![NsKind::Uts],
                    all: false
                },
                SetupOp::Chdir("/tmp".into()),
            ]
        );
    }

    #[test]
    fn cgroup_placement_comes_first_while_still_privileged() {
        let a = actor(
            "cgroup = \"inner\"\nuser = 1000\nunshare = [\"user\", \"cgroup\"]\nmap = \"root\"",
        );
        let ops = plan("a", &a, ROOT).ops;
        assert_eq!(ops[0], SetupOp::EnterCgroup("inner".into()));
        assert!(matches!(ops[1], SetupOp::DropPrivileges { .. }));
    }
}
