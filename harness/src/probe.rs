//! Kernel and machine feature probes: "can this machine do X?", answered by trying X.
//!
//! Each probe that makes anything runs in a throw-away process (`nsconform __probe FEATURE`)
//! which first moves into namespaces of its own, so whatever the probe creates (a mount, a
//! link, a namespace) goes away when that process exits: probes never add links or mounts to
//! the machine and never write sysctls. Only the plain look-ups (is cgroup v1 or v2 mounted?)
//! run in the asking process.
//!
//! A failed probe gives a one-line reason naming the call that failed and its errno, e.g.
//! `mount_setattr(MOUNT_ATTR_IDMAP): EINVAL (Invalid argument)`.
//!
//! Results are cached: once per process in a [`Cache`], and once per run when the runner
//! probes everything up front ([`write_cache`]) and points its supervisors at the file with
//! `NSCONFORM_FEATURE_CACHE` ([`Cache::from_env`]).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Gid, Pid, Uid};

use crate::actor::kernel::clone_flag;
use crate::cgroup::cgroup2_mount;
use crate::requires::{find_on_path, parse_feature, Feature, LinkKind};
use crate::scenario::model::NsKind;
use crate::sys;

/// The environment variable naming a file of probe results shared by the processes of one
/// run (written by [`write_cache`], read by [`Cache::from_env`]).
pub(crate) const CACHE_ENV: &str = "NSCONFORM_FEATURE_CACHE";

/// How long one throw-away probe process may take before it is killed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// The unprivileged user the rootless probes become.
const NOBODY: u32 = 65534;

/// Probe results, so each feature is tried at most once per process, or once per run when
/// the results were preloaded from the run's cache file.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    results: BTreeMap<Feature, Result<(), String>>,
}

impl Cache {
    /// A cache preloaded from the file named by `NSCONFORM_FEATURE_CACHE`, when that variable
    /// is set; empty otherwise. A missing or garbled file is ignored (features are then
    /// probed as usual), and so are names in it that this build does not know.
    pub(crate) fn from_env() -> Cache {
        match std::env::var_os(CACHE_ENV) {
            Some(path) if !path.is_empty() => Cache::load(Path::new(&path)),
            _ => Cache::default(),
        }
    }

    /// A cache preloaded from a file in the format of `nsconform features --json`; empty when
    /// the file is missing or garbled.
    pub(crate) fn load(path: &Path) -> Cache {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| Cache::from_json(&text))
            .unwrap_or_default()
    }

    /// Parse `{"feature": null | "reason", ...}`; `None` when the text is not such an object.
    fn from_json(text: &str) -> Option<Cache> {
        let map: BTreeMap<String, Option<String>> = serde_json::from_str(text).ok()?;
        let results = map
            .into_iter()
            .filter_map(|(name, verdict)| {
                let feature = parse_feature(&name).ok()?;
                Some((feature, verdict.map_or(Ok(()), Err)))
            })
            .collect();
        Some(Cache { results })
    }

    /// `Ok` when `feature` is available, otherwise why not.
    pub(crate) fn probe(&mut self, feature: Feature) -> Result<(), String> {
        self.results
            .entry(feature)
            .or_insert_with(|| probe_once(feature))
            .clone()
    }

    /// Probe every known feature (one after the other, so this is fine in a process that
    /// must stay single-threaded), in listing order.
    pub(crate) fn probe_all(&mut self) -> Vec<(Feature, Result<(), String>)> {
        Feature::all()
            .into_iter()
            .map(|feature| (feature, self.probe(feature)))
            .collect()
    }

    /// The results known so far, by feature name, for the results file.
    pub(crate) fn results(&self) -> BTreeMap<String, crate::results::FeatureResult> {
        self.results
            .iter()
            .map(|(feature, verdict)| {
                let result = crate::results::FeatureResult {
                    available: verdict.is_ok(),
                    reason: verdict.clone().err(),
                };
                (feature.to_string(), result)
            })
            .collect()
    }

    /// The results probed so far as a JSON object, one feature per line, in listing order:
    /// `null` when available, otherwise the reason. [`Cache::load`] reads it back.
    pub(crate) fn to_json(&self) -> String {
        let order = Feature::all();
        let mut results: Vec<_> = self.results.iter().collect();
        results.sort_by_key(|(feature, _)| order.iter().position(|f| f == *feature));
        let lines: Vec<String> = results
            .into_iter()
            .map(|(feature, verdict)| {
                let value = match verdict {
                    Ok(()) => serde_json::Value::Null,
                    Err(reason) => serde_json::Value::from(reason.as_str()),
                };
                format!(
                    "  {}: {value}",
                    serde_json::Value::from(feature.to_string())
                )
            })
            .collect();
        if lines.is_empty() {
            "{}\n".to_string()
        } else {
            format!("{{\n{}\n}}\n", lines.join(",\n"))
        }
    }
}

/// Probe every feature and write the results to `path` for [`Cache::from_env`] (the format of
/// `nsconform features --json`). The file is written under a temporary name and renamed, so
/// a reader never sees half of it. Safe to call from a multithreaded process: the probes
/// run in child processes.
pub(crate) fn write_cache(path: &Path) -> std::io::Result<()> {
    let mut cache = Cache::default();
    cache.probe_all();
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&temporary, cache.to_json())?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

/// Probe `feature` once: look-ups here, everything else in a throw-away process.
fn probe_once(feature: Feature) -> Result<(), String> {
    match feature {
        Feature::Cgroup1 => {
            if mounted_fs_types().iter().any(|t| t == "cgroup") {
                Ok(())
            } else {
                Err(
                    "no cgroup v1 hierarchy is mounted (no cgroup entry in /proc/self/mountinfo)"
                        .to_string(),
                )
            }
        }
        Feature::Cgroup2 => match cgroup2_mount() {
            Some(_) => Ok(()),
            None => {
                Err("cgroup v2 is not mounted (no cgroup2 entry in /proc/self/mountinfo)".into())
            }
        },
        _ => probe_in_child(feature),
    }
}

/// The file system types of this process's mounts, from `/proc/self/mountinfo`.
fn mounted_fs_types() -> Vec<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mountinfo
        .lines()
        .filter_map(|line| {
            let (_, after) = line.split_once(" - ")?;
            Some(after.split_whitespace().next()?.to_string())
        })
        .collect()
}

/// Run `nsconform __probe FEATURE` and read its verdict (its exit status, and the reason on
/// its stderr). The process is killed if it takes longer than [`PROBE_TIMEOUT`].
fn probe_in_child(feature: Feature) -> Result<(), String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the nsconform binary: {e}"))?;
    let mut child = Command::new(exe)
        .arg("__probe")
        .arg(feature.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the probe: {e}"))?;
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > PROBE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the probe did not finish within {} s",
                    PROBE_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(format!("waiting for the probe: {e}")),
        }
    };
    let mut reason = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut reason);
    }
    if status.success() {
        Ok(())
    } else {
        let reason = reason.trim();
        Err(if reason.is_empty() {
            format!("probe ended with {status}")
        } else {
            reason.to_string()
        })
    }
}

/// The body of `nsconform __probe FEATURE`: try the feature in this (throw-away) process.
pub(crate) fn probe_here(feature: Feature) -> Result<(), String> {
    match feature {
        Feature::Namespace(kind) => try_namespace(kind),
        Feature::Userns => {
            enter_own_userns(CloneFlags::empty()).map_err(|r| with_userns_hint(r, false))
        }
        Feature::UnprivilegedUserns => {
            become_nobody()?;
            enter_own_userns(CloneFlags::empty()).map_err(|r| with_userns_hint(r, true))
        }
        Feature::Cgroup1 | Feature::Cgroup2 => probe_once(feature),
        Feature::Overlayfs => {
            unshare_named(CloneFlags::CLONE_NEWNS)?;
            try_overlay()
        }
        Feature::OverlayfsInUserns => {
            become_nobody()?;
            enter_own_userns(CloneFlags::CLONE_NEWNS)?;
            try_overlay()
        }
        Feature::TmpfsInUserns => {
            become_nobody()?;
            enter_own_userns(CloneFlags::CLONE_NEWNS)?;
            make_mounts_private()?;
            mount_tmpfs("/tmp")
        }
        Feature::ProcInUserns => try_proc_in_userns(),
        Feature::IdmappedMounts => try_idmapped_mount(),
        Feature::Pidfd => sys::pidfd_open(Pid::this())
            .map(drop)
            .map_err(|e| failed("pidfd_open(self)", e)),
        Feature::Clone3 => match sys::clone3_with_undersized_args() {
            Errno::EINVAL => Ok(()),
            errno => Err(failed(
                "clone3 (with a too-small size, expecting EINVAL)",
                errno,
            )),
        },
        Feature::SetnsPidfd => try_setns_pidfd(),
        Feature::NsfsIoctl => try_ns_get_userns(),
        Feature::TimeOffsets => try_time_offsets(),
        Feature::Link(kind) => {
            unshare_as_harness(CloneFlags::CLONE_NEWNET)?;
            try_link(kind)
        }
    }
}

/// "CALL: ERRNO (description)", the shape of every reason.
fn failed(call: &str, errno: Errno) -> String {
    format!("{call}: {errno:?} ({})", errno.desc())
}

/// [`failed`] for an I/O error (from `std::fs`).
fn io_failed(call: &str, err: &std::io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => failed(call, Errno::from_raw(code)),
        None => format!("{call}: {err}"),
    }
}

/// `CLONE_NEWUSER|CLONE_NEWNS`-style names of namespace flags, for messages.
fn flag_names(flags: CloneFlags) -> String {
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

/// `unshare(flags)` as root; when the harness is not root, in a user namespace of its own too
/// (mapping root to itself, so programs it runs keep their capabilities there): an
/// unprivileged process can create the other namespace types only that way, as a rootless
/// actor does, and what these probes ask is whether the kernel can.
fn unshare_as_harness(flags: CloneFlags) -> Result<(), String> {
    if Uid::effective().is_root() {
        unshare_named(flags)
    } else {
        enter_own_userns(flags)
    }
}

/// `unshare(flags)`, with a reason naming the flags.
fn unshare_named(flags: CloneFlags) -> Result<(), String> {
    unshare(flags).map_err(|e| failed(&format!("unshare({})", flag_names(flags)), e))
}

/// The namespace type exists and can be created.
fn try_namespace(kind: NsKind) -> Result<(), String> {
    let path = format!("/proc/self/ns/{}", kind.proc_name());
    if !Path::new(&path).exists() {
        return Err(format!(
            "this kernel has no {kind} namespaces ({path} is missing)"
        ));
    }
    unshare_as_harness(clone_flag(kind))
}

/// Add what commonly forbids user namespaces (to everyone, or with `unprivileged` to
/// unprivileged users) to a reason, when one of those settings is on.
fn with_userns_hint(reason: String, unprivileged: bool) -> String {
    let settings: &[(&str, &str)] = if unprivileged {
        &[
            ("user/max_user_namespaces", "0"),
            ("kernel/unprivileged_userns_clone", "0"),
            ("kernel/apparmor_restrict_unprivileged_userns", "1"),
        ]
    } else {
        &[("user/max_user_namespaces", "0")]
    };
    let hints: Vec<String> = settings
        .iter()
        .filter(|(file, bad)| {
            std::fs::read_to_string(format!("/proc/sys/{file}")).is_ok_and(|v| v.trim() == *bad)
        })
        .map(|(file, bad)| format!("{} is {bad}", file.replace('/', ".")))
        .collect();
    if hints.is_empty() {
        reason
    } else {
        format!("{reason}; {}", hints.join(", "))
    }
}

/// Become uid and gid 65534 with no supplementary groups (and so no capabilities). A harness
/// that is not root is unprivileged already and stays who it is (reasons name its uid).
fn become_nobody() -> Result<(), String> {
    if !Uid::effective().is_root() {
        return Ok(());
    }
    let gid = Gid::from_raw(NOBODY);
    let uid = Uid::from_raw(NOBODY);
    let becoming = |call: &str, e| failed(&format!("{call} to become uid 65534"), e);
    nix::unistd::setgroups(&[]).map_err(|e| becoming("setgroups([])", e))?;
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| becoming("setresgid(65534)", e))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| becoming("setresuid(65534)", e))?;
    // Keep /proc/self owned by the new uid, as after an exec.
    nix::sys::prctl::set_dumpable(true).map_err(|e| failed("prctl(PR_SET_DUMPABLE)", e))
}

/// `unshare(CLONE_NEWUSER | extra)` and map root in the new namespace to this process's own
/// uid and gid, like `unshare -r`.
fn enter_own_userns(extra: CloneFlags) -> Result<(), String> {
    let (uid, gid) = (Uid::effective(), Gid::effective());
    let flags = CloneFlags::CLONE_NEWUSER | extra;
    unshare(flags)
        .map_err(|e| failed(&format!("unshare({}) as uid {uid}", flag_names(flags)), e))?;
    for (file, text) in [
        ("setgroups", "deny".to_string()),
        ("uid_map", format!("0 {uid} 1")),
        ("gid_map", format!("0 {gid} 1")),
    ] {
        std::fs::write(format!("/proc/self/{file}"), text)
            .map_err(|e| io_failed(&format!("write /proc/self/{file}"), &e))?;
    }
    Ok(())
}

/// Make every mount of this (new) mount namespace private, so nothing propagates out.
fn make_mounts_private() -> Result<(), String> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| failed("mount(/, MS_REC|MS_PRIVATE)", e))
}

/// Mount a fresh tmpfs on `target`.
fn mount_tmpfs(target: &str) -> Result<(), String> {
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| failed(&format!("mount(tmpfs on {target})"), e))
}

/// Mount an overlay of directories on a fresh tmpfs (in a new mount namespace).
fn try_overlay() -> Result<(), String> {
    make_mounts_private()?;
    mount_tmpfs("/tmp")?;
    for dir in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir(format!("/tmp/{dir}"))
            .map_err(|e| io_failed(&format!("mkdir /tmp/{dir}"), &e))?;
    }
    let options = "lowerdir=/tmp/lower,upperdir=/tmp/upper,workdir=/tmp/work";
    mount(
        Some("overlay"),
        "/tmp/merged",
        Some("overlay"),
        MsFlags::empty(),
        Some(options),
    )
    .map_err(|e| failed("mount(overlay on /tmp/merged)", e))
}

/// As uid 65534, in its own user, mount and PID namespaces, mount a fresh `/proc` from PID 1
/// of the new PID namespace and see itself as PID 1 there.
fn try_proc_in_userns() -> Result<(), String> {
    become_nobody()?;
    enter_own_userns(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID)?;
    make_mounts_private()?;
    in_forked_child(|| {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>)
            .map_err(|e| failed("mount(proc on /proc)", e))?;
        let me =
            std::fs::read_link("/proc/self").map_err(|e| io_failed("readlink /proc/self", &e))?;
        if me == Path::new("1") {
            Ok(())
        } else {
            Err(format!(
                "the new /proc shows this process as {} instead of 1",
                me.display()
            ))
        }
    })
}

/// Idmap a clone of a fresh tmpfs through a user namespace mapping 0-65535 to
/// 100000-165535, attach it, and check that its root (owned by 0) shows as 100000.
fn try_idmapped_mount() -> Result<(), String> {
    const BASE: u32 = 100_000;
    let holder = Holder::start(CloneFlags::CLONE_NEWUSER)?;
    let proc_dir = holder.proc_dir()?;
    for file in ["uid_map", "gid_map"] {
        std::fs::write(proc_dir.join(file), format!("0 {BASE} 65536"))
            .map_err(|e| io_failed(&format!("write {file} of a new user namespace"), &e))?;
    }
    let userns = std::fs::File::open(proc_dir.join("ns/user"))
        .map_err(|e| io_failed("open /proc/PID/ns/user", &e))?;
    drop(holder);
    unshare_named(CloneFlags::CLONE_NEWNS)?;
    make_mounts_private()?;
    mount_tmpfs("/tmp")?;
    let target = Path::new("/tmp/idmapped");
    std::fs::create_dir(target).map_err(|e| io_failed("mkdir /tmp/idmapped", &e))?;
    let tree = sys::open_tree_clone(Path::new("/tmp"))
        .map_err(|e| failed("open_tree(/tmp, OPEN_TREE_CLONE)", e))?;
    sys::mount_setattr_idmap(tree.as_fd(), userns.as_fd())
        .map_err(|e| failed("mount_setattr(MOUNT_ATTR_IDMAP)", e))?;
    sys::move_mount_to(tree.as_fd(), target)
        .map_err(|e| failed("move_mount(to /tmp/idmapped)", e))?;
    let owner = std::fs::metadata(target)
        .map_err(|e| io_failed("stat /tmp/idmapped", &e))?
        .uid();
    if owner == BASE {
        Ok(())
    } else {
        Err(format!(
            "the idmapped mount shows its root owned by uid {owner}, expected {BASE}"
        ))
    }
}

/// `setns(pidfd, CLONE_NEWUTS)` into a child's new UTS namespace (with its user namespace
/// too, in one call, when the harness is not root), then check that this process's UTS
/// namespace changed.
fn try_setns_pidfd() -> Result<(), String> {
    let uts_inode = || {
        std::fs::metadata("/proc/self/ns/uts")
            .map(|m| m.ino())
            .map_err(|e| io_failed("stat /proc/self/ns/uts", &e))
    };
    let before = uts_inode()?;
    let mut flags = CloneFlags::CLONE_NEWUTS;
    if !Uid::effective().is_root() {
        flags |= CloneFlags::CLONE_NEWUSER;
    }
    let holder = Holder::start(flags)?;
    nix::sched::setns(&holder.pidfd, flags)
        .map_err(|e| failed(&format!("setns(pidfd, {})", flag_names(flags)), e))?;
    if uts_inode()? != before {
        Ok(())
    } else {
        Err("setns(pidfd, CLONE_NEWUTS) succeeded but did not change the UTS namespace".into())
    }
}

/// `ioctl(NS_GET_USERNS)` on a new UTS namespace gives the user namespace that owns it, this
/// process's own. (The namespace is new so that its owner is visible here, also when the
/// harness itself runs in a user namespace.)
fn try_ns_get_userns() -> Result<(), String> {
    unshare_as_harness(CloneFlags::CLONE_NEWUTS)?;
    let uts = std::fs::File::open("/proc/self/ns/uts")
        .map_err(|e| io_failed("open /proc/self/ns/uts", &e))?;
    let owner = sys::ns_get_userns(uts.as_fd())
        .map_err(|e| failed("ioctl(/proc/self/ns/uts, NS_GET_USERNS)", e))?;
    let owner = std::fs::File::from(owner)
        .metadata()
        .map_err(|e| io_failed("fstat of the NS_GET_USERNS descriptor", &e))?;
    let own = std::fs::metadata("/proc/self/ns/user")
        .map_err(|e| io_failed("stat /proc/self/ns/user", &e))?;
    if owner.ino() == own.ino() && owner.dev() == own.dev() {
        Ok(())
    } else {
        Err("ioctl(NS_GET_USERNS) named a user namespace other than this process's own".into())
    }
}

/// Offset CLOCK_MONOTONIC by a day in a new time namespace and check a child sees it.
fn try_time_offsets() -> Result<(), String> {
    const DAY: u64 = 86_400;
    if !Path::new("/proc/self/ns/time").exists() {
        return Err("this kernel has no time namespaces (/proc/self/ns/time is missing)".into());
    }
    unshare_as_harness(sys::CLONE_NEWTIME)?;
    std::fs::write("/proc/self/timens_offsets", format!("monotonic {DAY} 0"))
        .map_err(|e| io_failed("write /proc/self/timens_offsets", &e))?;
    let before = Instant::now();
    in_forked_child(move || {
        // CLOCK_MONOTONIC (what Instant reads) in the child is a day ahead of the parent's.
        let ahead = Instant::now().duration_since(before);
        if ahead >= Duration::from_secs(DAY - 60) {
            Ok(())
        } else {
            Err(format!(
                "wrote a monotonic offset of {DAY} s, but a child's clock is only {} s ahead",
                ahead.as_secs()
            ))
        }
    })
}

/// Fork; run `body` in the child and return its verdict here (the reason comes back through
/// a pipe). The child is sent `SIGKILL` if this process dies first.
fn in_forked_child(body: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| failed("pipe2", e))?;
    match sys::fork().map_err(|e| failed("fork", e))? {
        ForkResult::Child => {
            drop(read_end);
            let verdict = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                .map_err(|e| failed("prctl(PR_SET_PDEATHSIG)", e))
                .and_then(|()| body());
            let code = match verdict {
                Ok(()) => 0,
                Err(reason) => {
                    let _ = std::fs::File::from(write_end).write_all(reason.as_bytes());
                    1
                }
            };
            std::process::exit(code)
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut reason = String::new();
            let _ = std::fs::File::from(read_end).read_to_string(&mut reason);
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, 0)) => Ok(()),
                Ok(status) if reason.is_empty() => {
                    Err(format!("the probe's child ended with {status:?}"))
                }
                Ok(_) => Err(reason),
                Err(e) => Err(failed("waitpid", e)),
            }
        }
    }
}

/// A child parked in new namespaces until dropped, so this process can reach them through
/// its `/proc` directory or its pidfd. Dropping it kills and reaps the child; the child also
/// dies if this process does.
struct Holder {
    /// The child's PID (in this process's PID namespace).
    pid: Pid,
    /// A pidfd for the child.
    pidfd: std::os::fd::OwnedFd,
}

impl Holder {
    /// Fork a child straight into new namespaces (`flags`: `CLONE_NEW*` bits only, not
    /// `CLONE_NEWPID`, where the child could not see its parent).
    fn start(flags: CloneFlags) -> Result<Holder, String> {
        let parent = Pid::this();
        let forked = sys::fork_into_new_namespaces(flags)
            .map_err(|e| failed(&format!("clone({})", flag_names(flags)), e))?;
        match forked {
            ForkResult::Child => {
                let orphaned = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err()
                    || nix::unistd::getppid() != parent;
                if orphaned {
                    std::process::exit(0);
                }
                loop {
                    nix::unistd::pause();
                }
            }
            ForkResult::Parent { child } => {
                let pidfd = match sys::pidfd_open(child) {
                    Ok(pidfd) => pidfd,
                    Err(e) => {
                        let _ = kill(child, Signal::SIGKILL);
                        let _ = waitpid(child, None);
                        return Err(failed("pidfd_open", e));
                    }
                };
                Ok(Holder { pid: child, pidfd })
            }
        }
    }

    /// The child's directory in the mounted `/proc`, which may belong to another PID
    /// namespace than this process (so it is not always `/proc/PID`): from the `Pid:` line
    /// of the pidfd's fdinfo, which the kernel gives in the PID namespace of that `/proc`.
    fn proc_dir(&self) -> Result<std::path::PathBuf, String> {
        self::proc_dir_of(&self.pidfd)
    }
}

/// See [`Holder::proc_dir`].
fn proc_dir_of(pidfd: &std::os::fd::OwnedFd) -> Result<std::path::PathBuf, String> {
    use std::os::fd::AsRawFd;
    let fdinfo = format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd());
    let text =
        std::fs::read_to_string(&fdinfo).map_err(|e| io_failed(&format!("read {fdinfo}"), &e))?;
    let pid: i64 = text
        .lines()
        .find_map(|line| line.strip_prefix("Pid:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| format!("no Pid: line in {fdinfo}"))?;
    if pid <= 0 {
        return Err("the child is not visible in the mounted /proc (another PID namespace)".into());
    }
    Ok(std::path::PathBuf::from(format!("/proc/{pid}")))
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
    }
}

/// Create a link of `kind` with `ip` (in the throw-away network namespace).
fn try_link(kind: LinkKind) -> Result<(), String> {
    let ip = find_on_path("ip")
        .ok_or("`ip` (iproute2) is needed to probe link kinds and is not on PATH")?;
    let commands: &[&str] = match kind {
        LinkKind::Veth => &["link add p0 type veth peer name p1"],
        LinkKind::Bridge => &["link add b0 type bridge"],
        LinkKind::Dummy => &["link add d0 type dummy"],
        LinkKind::Vxlan => &["link add x0 type vxlan id 42 dstport 4789 local 127.0.0.1"],
        LinkKind::Macvlan => &[
            "link add p0 type veth peer name p1",
            "link add m0 link p0 type macvlan mode bridge",
        ],
        LinkKind::Ipvlan => &[
            "link add p0 type veth peer name p1",
            "link add i0 link p0 type ipvlan mode l2",
        ],
        LinkKind::Vlan => &[
            "link add p0 type veth peer name p1",
            "link add link p0 name v0 type vlan id 10",
        ],
    };
    let mut child = Command::new(ip)
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all((commands.join("\n") + "\n").as_bytes())
            .map_err(|e| format!("feeding ip: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("waiting for ip: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr);
    // `ip -batch` says which line failed: "Command failed -:2".
    let command = said
        .lines()
        .find_map(|l| l.trim().strip_prefix("Command failed -:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .and_then(|n| commands.get(n.checked_sub(1)?))
        .unwrap_or(&commands[commands.len() - 1]);
    // "Error: Unknown device type." or "RTNETLINK answers: Operation not permitted".
    let lines = || {
        said.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("Command failed"))
    };
    let error = lines()
        .find(|l| l.contains("rror") || l.starts_with("RTNETLINK"))
        .or_else(|| lines().next())
        .unwrap_or("failed without a message");
    let hint = if error.contains("Unknown device type") {
        format!(" (no {} driver in this kernel or its modules)", kind.name())
    } else {
        String::new()
    };
    Err(format!("ip {command}: {error}{hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_results_from_a_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(
            br#"{"pidfd": null, "link:dummy": "ip link add d0 type dummy: Error: Unknown device type.", "warp-drive": null}"#,
        )
        .unwrap();
        let mut cache = Cache::load(file.path());
        // Answered from the file, without probing (a probe here would run the test binary).
        assert_eq!(cache.probe(Feature::Pidfd), Ok(()));
        assert_eq!(
            cache.probe(Feature::Link(LinkKind::Dummy)),
            Err("ip link add d0 type dummy: Error: Unknown device type.".to_string())
        );
        // Unknown names are skipped.
        assert_eq!(cache.results.len(), 2);
    }

    #[test]
    fn ignores_missing_and_garbled_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Cache::load(&dir.path().join("absent.json"))
            .results
            .is_empty());
        for garbage in ["", "{", "[1, 2]", r#"{"pidfd": 3}"#, "not json at all"] {
            let path = dir.path().join("garbled.json");
            std::fs::write(&path, garbage).unwrap();
            assert!(Cache::load(&path).results.is_empty(), "{garbage}");
        }
    }

    #[test]
    fn json_round_trips_in_listing_order() {
        let mut cache = Cache::default();
        let all = Feature::all();
        for (i, feature) in all.iter().enumerate() {
            let verdict = if i % 3 == 0 {
                Err(format!("reason \"{i}\"\twith escapes"))
            } else {
                Ok(())
            };
            cache.results.insert(*feature, verdict);
        }
        let json = cache.to_json();
        let names: Vec<String> = json
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix('"')?
                    .split('"')
                    .next()
                    .map(String::from)
            })
            .collect();
        let expected: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(names, expected);
        let path = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(path.path(), &json).unwrap();
        assert_eq!(Cache::load(path.path()).results, cache.results);
        assert_eq!(Cache::default().to_json(), "{}\n");
    }

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
