//! Taking a tree away safely: unmount what is mounted inside it, then delete it without ever
//! crossing into another file system.
//!
//! `debootstrap` mounts `/proc` and `/sys` (and sometimes binds `/dev`) inside its target
//! while it works. If it is killed, those mounts stay, and a plain recursive delete would walk
//! into them (a bound `/dev` is the machine's own). So before deleting a partial tree, every
//! mount point under it (from `/proc/self/mountinfo`) is detached, deepest first, and the
//! delete itself refuses to enter a directory on another device.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Errors unmounting or deleting a tree.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TreeError {
    /// A file or directory could not be read or removed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A mount under the tree could not be detached.
    #[error("cannot unmount {path}: {source}")]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// The cause.
        source: nix::errno::Errno,
    },
    /// A directory inside the tree is on another file system (still mounted): not entered.
    #[error("{0} is on another file system (still mounted?); not deleted")]
    OtherFileSystem(PathBuf),
}

/// Undo the octal escapes (`\040` for a space) that `/proc/self/mountinfo` uses in paths.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok());
        if bytes[i] == b'\\' {
            if let Some(value) = digits.and_then(|d| u8::from_str_radix(d, 8).ok()) {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount points listed in `mountinfo` text that are `root` or below it, deepest first.
pub(crate) fn mounts_under(mountinfo: &str, root: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .filter(|point| point.starts_with(root))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// Detach every mount at or below `root` (lazily, `MNT_DETACH`), deepest first. Repeats
/// while mounts remain (stacked mounts need one unmount each), at most 16 rounds.
pub(crate) fn unmount_under(root: &Path) -> Result<(), TreeError> {
    for _ in 0..16 {
        let text =
            std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| TreeError::Io {
                path: PathBuf::from("/proc/self/mountinfo"),
                source,
            })?;
        let points = mounts_under(&text, root);
        if points.is_empty() {
            return Ok(());
        }
        for point in points {
            nix::mount::umount2(&point, nix::mount::MntFlags::MNT_DETACH).map_err(|source| {
                TreeError::Unmount {
                    path: point,
                    source,
                }
            })?;
        }
    }
    Ok(())
}

/// Delete `root` and everything below it. Symbolic links are removed, never followed, and a
/// directory on another device than `root` is not entered (an error). A missing `root` is
/// not an error.
pub(crate) fn remove_tree(root: &Path) -> Result<(), TreeError> {
    let meta = match std::fs::symlink_metadata(root) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(TreeError::Io {
                path: root.to_path_buf(),
                source,
            })
        }
    };
    if !meta.is_dir() {
        return std::fs::remove_file(root).map_err(|source| TreeError::Io {
            path: root.to_path_buf(),
            source,
        });
    }
    remove_dir_on(root, meta.dev())
}

/// Delete directory `dir`, which is on device `dev`, and its contents.
fn remove_dir_on(dir: &Path, dev: u64) -> Result<(), TreeError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TreeError::Io { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        if meta.is_dir() {
            if meta.dev() != dev {
                return Err(TreeError::OtherFileSystem(path));
            }
            remove_dir_on(&path, dev)?;
        } else {
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    std::fs::remove_dir(dir).map_err(io(dir))
}

/// Unmount everything under `root`, then delete it.
pub(crate) fn unmount_and_remove(root: &Path) -> Result<(), TreeError> {
    if root.exists() {
        unmount_under(root)?;
    }
    remove_tree(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:5 / /cache/rootfs/x.partial-7/proc rw - proc proc rw
41 22 0:6 / /cache/rootfs/x.partial-7/sys rw - sysfs sysfs rw
42 40 0:7 / /cache/rootfs/x.partial-7/proc/sys/fs/binfmt_misc rw - binfmt_misc b rw
43 22 0:8 / /cache/rootfs/x.partial-70/proc rw - proc proc rw
44 22 0:9 / /cache/rootfs/with\\040space/dev rw - devtmpfs udev rw
";

    #[test]
    fn finds_mounts_below_a_tree_deepest_first() {
        let points = mounts_under(MOUNTINFO, Path::new("/cache/rootfs/x.partial-7"));
        assert_eq!(points.len(), 3);
        assert!(points[0].ends_with("binfmt_misc"));
        assert!(points
            .iter()
            .all(|p| p.starts_with("/cache/rootfs/x.partial-7")));
        let spaced = mounts_under(MOUNTINFO, Path::new("/cache/rootfs/with space"));
        assert_eq!(spaced, [PathBuf::from("/cache/rootfs/with space/dev")]);
        assert!(mounts_under(MOUNTINFO, Path::new("/elsewhere")).is_empty());
    }

    #[test]
    fn removes_a_tree_without_following_links() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).expect("outside");
        std::fs::write(outside.join("keep"), "x").expect("keep");
        let tree = tmp.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).expect("dirs");
        std::fs::write(tree.join("a/b/file"), "x").expect("file");
        std::os::unix::fs::symlink(&outside, tree.join("a/link")).expect("link");
        unmount_and_remove(&tree).expect("removed");
        assert!(!tree.exists());
        assert!(outside.join("keep").is_file());
        remove_tree(&tree).expect("missing is fine");
    }
}
