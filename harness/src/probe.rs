//! Kernel and machine feature probes: "can this machine do X?", answered by trying X in a
//! throw-away process (`nsconform __probe FEATURE`) so nothing the probe makes survives it.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::unistd::{Gid, Uid};

use crate::cgroup::cgroup2_mount;
use crate::requires::{find_on_path, Feature, LinkKind};

/// Probe results for one process, so each feature is tried at most once.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    results: BTreeMap<Feature, Result<(), String>>,
}

impl Cache {
    /// `Ok` when `feature` is available, otherwise why not.
    pub(crate) fn probe(&mut self, feature: Feature) -> Result<(), String> {
        self.results
            .entry(feature)
            .or_insert_with(|| probe_once(feature))
            .clone()
    }
}

fn probe_once(feature: Feature) -> Result<(), String> {
    match feature {
        Feature::Namespace(kind) => {
            let path = format!("/proc/self/ns/{}", kind.proc_name());
            if std::path::Path::new(&path).exists() {
                Ok(())
            } else {
                Err(format!(
                    "this kernel has no {kind} namespaces ({path} is missing)"
                ))
            }
        }
        Feature::Cgroup2 => match cgroup2_mount() {
            Some(_) => Ok(()),
            None => Err("cgroup v2 is not mounted".to_string()),
        },
        _ => probe_in_child(feature),
    }
}

/// Run `nsconform __probe FEATURE` and read its verdict.
fn probe_in_child(feature: Feature) -> Result<(), String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the nsconform binary: {e}"))?;
    let output = Command::new(exe)
        .arg("__probe")
        .arg(feature.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run the probe: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        let reason = String::from_utf8_lossy(&output.stderr).trim().to_string();
        Err(if reason.is_empty() {
            format!("probe ended with {}", output.status)
        } else {
            reason
        })
    }
}

/// The body of `nsconform __probe FEATURE`: try the feature in this (throw-away) process.
pub(crate) fn probe_here(feature: Feature) -> Result<(), String> {
    match feature {
        Feature::UnprivilegedUserns => {
            become_nobody()?;
            unshare(CloneFlags::CLONE_NEWUSER)
                .map_err(|e| format!("unshare(CLONE_NEWUSER) as uid 65534: {e}"))
        }
        Feature::Overlayfs => {
            unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
            try_overlay()
        }
        Feature::OverlayfsInUserns => {
            become_nobody()?;
            unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
                .map_err(|e| format!("unshare(CLONE_NEWUSER|CLONE_NEWNS) as uid 65534: {e}"))?;
            for (file, text) in [
                ("setgroups", "deny"),
                ("uid_map", "0 65534 1"),
                ("gid_map", "0 65534 1"),
            ] {
                std::fs::write(format!("/proc/self/{file}"), text)
                    .map_err(|e| format!("write {file}: {e}"))?;
            }
            try_overlay()
        }
        Feature::Link(kind) => {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare(CLONE_NEWNET): {e}"))?;
            try_link(kind)
        }
        Feature::Namespace(_) | Feature::Cgroup2 => probe_once(feature),
    }
}

fn become_nobody() -> Result<(), String> {
    let nobody = 65534;
    nix::unistd::setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    nix::unistd::setresgid(
        Gid::from_raw(nobody),
        Gid::from_raw(nobody),
        Gid::from_raw(nobody),
    )
    .map_err(|e| format!("setgid: {e}"))?;
    nix::unistd::setresuid(
        Uid::from_raw(nobody),
        Uid::from_raw(nobody),
        Uid::from_raw(nobody),
    )
    .map_err(|e| format!("setuid: {e}"))?;
    // Keep /proc/self owned by the new uid, as after an exec.
    nix::sys::prctl::set_dumpable(true).map_err(|e| format!("set dumpable: {e}"))
}

fn try_overlay() -> Result<(), String> {
    let fail = |what: &str, e: nix::Error| format!("{what}: {e}");
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| fail("make / private", e))?;
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| fail("mount tmpfs on /tmp", e))?;
    for dir in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir(format!("/tmp/{dir}")).map_err(|e| format!("mkdir /tmp/{dir}: {e}"))?;
    }
    let options = "lowerdir=/tmp/lower,upperdir=/tmp/upper,workdir=/tmp/work";
    mount(
        Some("overlay"),
        "/tmp/merged",
        Some("overlay"),
        MsFlags::empty(),
        Some(options),
    )
    .map_err(|e| fail("mount -t overlay", e))
}

fn try_link(kind: LinkKind) -> Result<(), String> {
    let ip = find_on_path("ip")
        .ok_or("`ip` (iproute2) is needed to probe link kinds and is not on PATH")?;
    let batch = match kind {
        LinkKind::Veth => "link add p0 type veth peer name p1\n",
        LinkKind::Bridge => "link add b0 type bridge\n",
        LinkKind::Dummy => "link add d0 type dummy\n",
        LinkKind::Vxlan => "link add x0 type vxlan id 42 dstport 4789 local 127.0.0.1\n",
        LinkKind::Macvlan => {
            "link add p0 type veth peer name p1\nlink add m0 link p0 type macvlan mode bridge\n"
        }
        LinkKind::Ipvlan => {
            "link add p0 type veth peer name p1\nlink add i0 link p0 type ipvlan mode l2\n"
        }
        LinkKind::Vlan => {
            "link add p0 type veth peer name p1\nlink add link p0 name v0 type vlan id 10\n"
        }
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
            .write_all(batch.as_bytes())
            .map_err(|e| format!("feeding ip: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("waiting for ip: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        let said = String::from_utf8_lossy(&output.stderr);
        let said = said
            .lines()
            .find(|l| l.contains("rror"))
            .unwrap_or(said.trim());
        Err(format!(
            "the kernel cannot create {} links ({})",
            kind.name(),
            said.trim()
        ))
    }
}
