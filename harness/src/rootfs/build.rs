//! Building a tree into the cache, atomically.
//!
//! One build of a name runs at a time per cache (a second one waits on `rootfs/.NAME.lock`).
//! Holding the lock, the build first removes leftovers of killed builds of that name
//! (`NAME.partial-*`, `NAME.old-*`; mounts inside them are detached first), then works in
//! `rootfs/NAME.partial-PID`, writes the stamp there, and renames it to `rootfs/NAME`. An
//! existing complete tree is kept unless `force` is set; then it is moved aside to
//! `NAME.old-PID`, the new one moved in, and the old one deleted. A failed or interrupted
//! build deletes its partial tree.

use super::debian::{DebianError, Interrupt};
use super::stamp::{self, Stamp, StampError};
use super::tree::{unmount_and_remove, TreeError};
use super::Known;
use nix::fcntl::{Flock, FlockArg};
use std::path::{Path, PathBuf};

/// Errors building a tree.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    /// The cache directory or its lock cannot be made or taken.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Making the busybox tree failed.
    #[error(transparent)]
    Busybox(#[from] super::busybox::BusyboxError),
    /// `debootstrap` failed or was interrupted.
    #[error(transparent)]
    Debian(#[from] DebianError),
    /// The stamp cannot be written.
    #[error(transparent)]
    Stamp(#[from] StampError),
    /// A leftover or replaced tree cannot be removed.
    #[error(transparent)]
    Tree(#[from] TreeError),
}

/// What a build did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A new tree is at this path.
    Built(PathBuf),
    /// A complete tree was already there and was kept (no `force`).
    Kept(PathBuf),
}

/// How to build. Default: keep an existing tree, take busybox from `/bin/busybox`, the
/// Debian mirror from [`super::mirror::mirror`], no interrupt handling.
#[derive(Debug, Clone, Default)]
pub(crate) struct BuildOptions {
    /// Replace an existing complete tree.
    pub(crate) force: bool,
    /// The busybox binary to copy; `None` for [`super::busybox::SOURCE`].
    pub(crate) busybox: Option<PathBuf>,
    /// The Debian archive; `None` for [`super::mirror::mirror`].
    pub(crate) mirror: Option<String>,
    /// Stops `debootstrap` when it fires.
    pub(crate) interrupt: Interrupt,
}

/// Take `rootfs_dir/.NAME.lock`, waiting (with a message) while another build holds it.
fn lock(rootfs_dir: &Path, name: &str) -> Result<Flock<std::fs::File>, BuildError> {
    let path = rootfs_dir.join(format!(".{name}.lock"));
    let io = |source: std::io::Error| BuildError::Io {
        path: path.clone(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((file, nix::errno::Errno::EWOULDBLOCK)) => {
            eprintln!("nsconform: waiting for another build of `{name}` to finish");
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| io(errno.into()))
        }
        Err((_, errno)) => Err(io(errno.into())),
    }
}

/// Remove the leftovers of killed builds of `name` in `rootfs_dir`: `NAME.partial-*` and
/// `NAME.old-*`. Returns what was removed. Call with the name's lock held.
pub(crate) fn remove_leftovers(rootfs_dir: &Path, name: &str) -> Result<Vec<PathBuf>, BuildError> {
    let prefixes = [format!("{name}.partial-"), format!("{name}.old-")];
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(rootfs_dir) else {
        return Ok(removed);
    };
    for entry in entries.filter_map(Result::ok) {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if prefixes.iter().any(|p| file_name.starts_with(p.as_str())) {
            unmount_and_remove(&entry.path())?;
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

/// Build `known` in `rootfs_dir` (the cache's `rootfs/` directory, made if missing).
pub(crate) fn build_in(
    rootfs_dir: &Path,
    known: Known,
    options: &BuildOptions,
) -> Result<Outcome, BuildError> {
    let name = known.name();
    std::fs::create_dir_all(rootfs_dir).map_err(|source| BuildError::Io {
        path: rootfs_dir.to_path_buf(),
        source,
    })?;
    let _lock = lock(rootfs_dir, name)?;
    for path in remove_leftovers(rootfs_dir, name)? {
        eprintln!(
            "nsconform: removed {} (left by a killed build)",
            path.display()
        );
    }
    let target = rootfs_dir.join(name);
    if !options.force && stamp::read(&target).is_ok() {
        return Ok(Outcome::Kept(target));
    }
    let pid = std::process::id();
    let partial = rootfs_dir.join(format!("{name}.partial-{pid}"));
    std::fs::create_dir(&partial).map_err(|source| BuildError::Io {
        path: partial.clone(),
        source,
    })?;
    match fill(&partial, known, options) {
        Ok(()) => {}
        Err(err) => {
            unmount_and_remove(&partial)?;
            return Err(err);
        }
    }
    let old = rootfs_dir.join(format!("{name}.old-{pid}"));
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|source| BuildError::Io {
            path: from.to_path_buf(),
            source,
        })
    };
    // A directory without a stamp here is debris (a tree made by hand, say): replaced too.
    let replacing = std::fs::symlink_metadata(&target).is_ok();
    if replacing {
        rename(&target, &old)?;
    }
    rename(&partial, &target)?;
    if replacing {
        unmount_and_remove(&old)?;
    }
    Ok(Outcome::Built(target))
}

/// Make the tree `known` in the empty directory `root`, stamp included.
fn fill(root: &Path, known: Known, options: &BuildOptions) -> Result<(), BuildError> {
    let mut stamp_record = Stamp::now(known.name());
    match known {
        Known::Busybox => {
            let source = options
                .busybox
                .clone()
                .unwrap_or_else(|| PathBuf::from(super::busybox::SOURCE));
            stamp_record.tools = super::busybox::populate(&source, root)?;
        }
        Known::Debian(suite) => {
            let mirror = options.mirror.clone().unwrap_or_else(super::mirror::mirror);
            eprintln!(
                "nsconform: debootstrap --variant=minbase --include={} {suite} {} {mirror}",
                super::debian::INCLUDE,
                root.display()
            );
            super::debian::debootstrap(suite, root, &mirror, &options.interrupt)?;
            super::debian::remove_downloads(root);
            let probe = root.join("probe");
            std::fs::create_dir_all(&probe).map_err(|source| BuildError::Io {
                path: probe,
                source,
            })?;
            stamp_record.suite = Some(suite.to_string());
            stamp_record.mirror = Some(mirror);
            stamp_record.tools = super::debian::package_versions(root);
            // Stamp time is when the tree was finished, not when the download began.
            let finished = Stamp::now(known.name());
            stamp_record.built_at = finished.built_at;
            stamp_record.built_at_unix = finished.built_at_unix;
        }
    }
    if options.interrupt.fired() {
        return Err(DebianError::Interrupted.into());
    }
    stamp::write(root, &stamp_record)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn have_busybox() -> bool {
        Path::new(super::super::busybox::SOURCE).is_file()
    }

    #[test]
    fn builds_busybox_keeps_it_and_replaces_it_with_force() {
        if !have_busybox() {
            eprintln!("skipped: no {}", super::super::busybox::SOURCE);
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let rootfs = tmp.path().join("rootfs");
        let started = std::time::Instant::now();
        let outcome = build_in(&rootfs, Known::Busybox, &BuildOptions::default()).expect("build");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let tree = rootfs.join("busybox");
        assert_eq!(outcome, Outcome::Built(tree.clone()));
        for applet in ["sh", "hostname", "id", "cat", "ls", "mount"] {
            let link = std::fs::read_link(tree.join("bin").join(applet)).expect(applet);
            assert_eq!(link, Path::new("busybox"));
        }
        for dir in [
            "proc", "sys", "dev", "tmp", "run", "etc", "root", "probe", "var", "usr",
        ] {
            assert!(tree.join(dir).is_dir(), "{dir}");
        }
        let passwd = std::fs::read_to_string(tree.join("etc/passwd")).expect("passwd");
        assert!(passwd.starts_with("root:x:0:0:"));
        assert!(passwd.contains(":65534:"));
        let record = stamp::read(&tree).expect("stamp");
        assert_eq!(record.name, "busybox");
        assert!(record.tools.contains_key("busybox"));

        let again = build_in(&rootfs, Known::Busybox, &BuildOptions::default()).expect("again");
        assert_eq!(again, Outcome::Kept(tree.clone()));
        assert_eq!(stamp::read(&tree).expect("same"), record);

        std::fs::write(tree.join("marker"), "old").expect("marker");
        let forced = BuildOptions {
            force: true,
            ..BuildOptions::default()
        };
        let replaced = build_in(&rootfs, Known::Busybox, &forced).expect("forced");
        assert_eq!(replaced, Outcome::Built(tree.clone()));
        assert!(!tree.join("marker").exists());
        let names: Vec<String> = std::fs::read_dir(&rootfs)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| n == "busybox" || n == ".busybox.lock"),
            "{names:?}"
        );
    }

    #[test]
    fn leftovers_of_killed_builds_are_removed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let rootfs = tmp.path();
        for leftover in ["busybox.partial-4242/bin", "busybox.old-7/etc"] {
            std::fs::create_dir_all(rootfs.join(leftover)).expect("leftover");
        }
        std::fs::create_dir_all(rootfs.join("debian-trixie.partial-1")).expect("other");
        let removed = remove_leftovers(rootfs, "busybox").expect("removed");
        assert_eq!(removed.len(), 2);
        assert!(!rootfs.join("busybox.partial-4242").exists());
        assert!(!rootfs.join("busybox.old-7").exists());
        assert!(rootfs.join("debian-trixie.partial-1").exists());

        if have_busybox() {
            std::fs::create_dir_all(rootfs.join("busybox.partial-4243/x")).expect("leftover");
            build_in(rootfs, Known::Busybox, &BuildOptions::default()).expect("build");
            assert!(!rootfs.join("busybox.partial-4243").exists());
        }
    }

    #[test]
    fn a_failed_build_leaves_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let options = BuildOptions {
            busybox: Some(tmp.path().join("no-busybox")),
            ..BuildOptions::default()
        };
        let rootfs = tmp.path().join("rootfs");
        let err = build_in(&rootfs, Known::Busybox, &options).expect_err("fails");
        assert!(err.to_string().contains("busybox-static"), "{err}");
        let left: Vec<_> = std::fs::read_dir(&rootfs)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .filter(|n| !n.to_string_lossy().starts_with('.'))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
