//! Entering a root filesystem ("userland") with `pivot_root(2)`, as a container runtime
//! does: for an actor's `rootfs`, and for a whole run under `nsconform run --userland`.
//!
//! The tree is a read-only bind (a cached tree is shared by every scenario), and gets what a
//! host has: `/proc` (the caller's PID namespace), `/sys`, `/dev` (the host's, recursively),
//! a fresh tmpfs on `/tmp` and on `/run`, and the harness's offers (`/run/nsconform/...`:
//! the probe, fixtures, root filesystems) bound at the same paths, so `{{probe}}` works the
//! same inside. The old root is detached. Propagation ends as it began: `/` shared when it
//! was shared, private otherwise.

use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::payload::kit::RUN_DIR;

/// Why a root filesystem could not be entered.
#[derive(Debug, thiserror::Error)]
#[error("enter root filesystem {root}: {what}: {source}")]
pub(crate) struct UserlandError {
    root: String,
    what: String,
    source: nix::Error,
}

impl UserlandError {
    /// The errno of the call that failed.
    pub(crate) fn errno(&self) -> nix::Error {
        self.source
    }
}

/// Make `root` (a directory visible in this mount namespace) the root of this mount
/// namespace. Must run in a mount namespace of its own, as root in its user namespace.
///
/// With `shared`, `/` is made shared afterwards, like a systemd host (the stand-in host's
/// convention); otherwise it stays private, like a container's.
pub(crate) fn enter(root: &Path, shared: bool) -> Result<(), UserlandError> {
    let shown = root.display().to_string();
    let fail = |what: &str| {
        let what = what.to_string();
        let root = shown.clone();
        move |source| UserlandError { root, what, source }
    };
    let none = None::<&str>;
    // pivot_root refuses shared mounts around the new and the old root.
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(fail("make / private"))?;
    // A mount point of its own for the new root, read-only: the tree is shared by runs.
    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount(Some(root), root, none, bind, none).map_err(fail("bind the tree on itself"))?;
    let read_only = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    mount(none, root, none, read_only, none).map_err(fail("make the tree read-only"))?;

    let inside = |path: &str| root.join(path.trim_start_matches('/'));
    let plain = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(
        Some("proc"),
        &inside("/proc"),
        Some("proc"),
        plain | MsFlags::MS_NOEXEC,
        none,
    )
    .map_err(fail("mount /proc"))?;
    // Recursively: the stand-in's cgroup2 on /sys/fs/cgroup comes along.
    mount(Some("/sys"), &inside("/sys"), none, bind, none).map_err(fail("bind /sys"))?;
    mount(Some("/dev"), &inside("/dev"), none, bind, none).map_err(fail("bind /dev"))?;
    mount(
        Some("tmpfs"),
        &inside("/tmp"),
        Some("tmpfs"),
        plain,
        Some("mode=1777"),
    )
    .map_err(fail("mount a tmpfs on /tmp"))?;
    mount(
        Some("tmpfs"),
        &inside("/run"),
        Some("tmpfs"),
        plain,
        Some("mode=755"),
    )
    .map_err(fail("mount a tmpfs on /run"))?;
    for dir in ["/run/netns", "/run/lock", "/run/mount"] {
        let _ = std::fs::create_dir_all(inside(dir));
    }
    // The offers, one by one: a recursive bind of /run/nsconform would take this very tree
    // along when it is one of the offered root filesystems.
    let run_dir = Path::new(RUN_DIR);
    let mut offered: Vec<(std::path::PathBuf, MsFlags)> = ["probe", "fixtures"]
        .iter()
        .map(|name| (run_dir.join(name), bind))
        .collect();
    if let Ok(entries) = std::fs::read_dir(run_dir.join("rootfs")) {
        offered.extend(entries.flatten().map(|e| (e.path(), MsFlags::MS_BIND)));
    }
    for (source, flags) in offered.into_iter().filter(|(p, _)| p.is_dir()) {
        let target = inside(&source.display().to_string());
        let what = format!("bind {}", source.display());
        std::fs::create_dir_all(&target)
            .map_err(|e| fail(&what)(nix::Error::from_raw(io_errno(&e))))?;
        mount(Some(&source), &target, none, flags, none).map_err(fail(&what))?;
        mount(none, &target, none, read_only, none).map_err(fail(&what))?;
    }

    nix::unistd::chdir(root).map_err(fail("chdir into the tree"))?;
    // The old root goes on top of the new one, then is detached: no directory needed.
    nix::unistd::pivot_root(".", ".").map_err(fail("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(fail("detach the old root"))?;
    nix::unistd::chdir("/").map_err(fail("chdir /"))?;
    if shared {
        mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_SHARED, none)
            .map_err(fail("make / shared"))?;
    }
    Ok(())
}

fn io_errno(err: &std::io::Error) -> i32 {
    err.raw_os_error().unwrap_or(libc::EIO)
}
