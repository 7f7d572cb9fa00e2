//! The guest's root file system as a list of entries, written out as a cpio archive.
//!
//! Host files are added under the same path they have on the host, so programs find their
//! libraries, their loader and their data where they were built to look. A symbolic link on
//! the way (Debian's `/bin -> usr/bin`, `/lib64/ld-linux-x86-64.so.2 -> ...`) is copied as a
//! link and followed, so the guest has the same links and the files they point to. Missing
//! parent directories are added as they are needed; entries are written sorted by path, which
//! puts every directory before what it holds.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::cpio::{CpioError, CpioWriter};

/// Errors collecting the guest's files.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RootfsError {
    /// A host file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Links that lead to each other.
    #[error("{0}: too many levels of symbolic links")]
    Loop(PathBuf),
    /// Host paths must be absolute.
    #[error("{0}: not an absolute path")]
    Relative(PathBuf),
    /// Two different things at the same path.
    #[error("{0}: added twice, as different kinds of entry")]
    Conflict(PathBuf),
    /// Writing the archive failed.
    #[error(transparent)]
    Cpio(#[from] CpioError),
}

/// One entry of the guest's tree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir { perm: u32 },
    HostFile { source: PathBuf, perm: u32 },
    Bytes { data: Vec<u8>, perm: u32 },
    Symlink { target: PathBuf },
    CharDevice { perm: u32, major: u32, minor: u32 },
}

/// The guest's files, by absolute guest path.
#[derive(Debug, Default)]
pub(crate) struct Rootfs {
    entries: BTreeMap<PathBuf, Node>,
}

/// Symbolic links followed for one path before giving up (as the kernel's `ELOOP`).
const MAX_LINKS: usize = 40;

impl Rootfs {
    /// An empty tree.
    pub(crate) fn new() -> Rootfs {
        Rootfs::default()
    }

    /// A directory, with its parents.
    pub(crate) fn dir(&mut self, path: &Path, perm: u32) -> Result<(), RootfsError> {
        self.insert(path, Node::Dir { perm })
    }

    /// A file with these contents.
    pub(crate) fn bytes(
        &mut self,
        path: &Path,
        data: Vec<u8>,
        perm: u32,
    ) -> Result<(), RootfsError> {
        self.insert(path, Node::Bytes { data, perm })
    }

    /// A host file copied to another guest path (for example, the harness binary).
    pub(crate) fn host_file_as(&mut self, guest: &Path, host: &Path) -> Result<(), RootfsError> {
        let meta = std::fs::metadata(host).map_err(|source| io(host, source))?;
        let node = Node::HostFile {
            source: host.to_path_buf(),
            perm: meta.permissions().mode() & 0o7777,
        };
        self.insert(guest, node)
    }

    /// A symbolic link.
    pub(crate) fn symlink(&mut self, path: &Path, target: &Path) -> Result<(), RootfsError> {
        self.insert(
            path,
            Node::Symlink {
                target: target.to_path_buf(),
            },
        )
    }

    /// A character device node.
    pub(crate) fn char_device(
        &mut self,
        path: &Path,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), RootfsError> {
        self.insert(path, Node::CharDevice { perm, major, minor })
    }

    /// A host file, directory (with everything under it) or link, at the same path in the
    /// guest; links on the way are copied and followed.
    pub(crate) fn host_path(&mut self, path: &Path) -> Result<(), RootfsError> {
        self.host_path_following(path, 0)
    }

    /// Whether the tree has an entry at `path`.
    pub(crate) fn contains(&self, path: &Path) -> bool {
        self.entries.contains_key(path)
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The host files the tree copies and the paths of its links: what to check to know
    /// whether the host still has what the tree was made from.
    pub(crate) fn host_sources(&self) -> impl Iterator<Item = &Path> + '_ {
        self.entries.iter().filter_map(|(path, node)| match node {
            Node::HostFile { source, .. } => Some(source.as_path()),
            Node::Symlink { .. } => Some(path.as_path()),
            _ => None,
        })
    }

    fn host_path_following(&mut self, path: &Path, links: usize) -> Result<(), RootfsError> {
        if links > MAX_LINKS {
            return Err(RootfsError::Loop(path.to_path_buf()));
        }
        if !path.is_absolute() {
            return Err(RootfsError::Relative(path.to_path_buf()));
        }
        let parts: Vec<&std::ffi::OsStr> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(part) => Some(part),
                _ => None,
            })
            .collect();
        let mut resolved = PathBuf::from("/");
        for (index, part) in parts.iter().enumerate() {
            let here = resolved.join(part);
            let meta = std::fs::symlink_metadata(&here).map_err(|source| io(&here, source))?;
            let last = index + 1 == parts.len();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&here).map_err(|source| io(&here, source))?;
                self.symlink(&here, &target)?;
                let mut next = resolved.join(&target);
                next.extend(&parts[index + 1..]);
                return self.host_path_following(&normalize(&next), links + 1);
            }
            let perm = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                self.insert(&here, Node::Dir { perm })?;
                if last {
                    let mut children: Vec<PathBuf> = std::fs::read_dir(&here)
                        .map_err(|source| io(&here, source))?
                        .map(|entry| entry.map(|e| e.path()))
                        .collect::<Result<_, _>>()
                        .map_err(|source| io(&here, source))?;
                    children.sort();
                    for child in children {
                        self.host_path_following(&child, links)?;
                    }
                }
            } else if last && meta.is_file() {
                let source = here.clone();
                self.insert(&here, Node::HostFile { source, perm })?;
            }
            // Sockets, fifos and devices on the host are not copied.
            resolved = here;
        }
        Ok(())
    }

    /// Add `node` at `path`, and any missing parent directories (mode 0755). The same entry
    /// twice is fine; a directory then wins over a parent made on the way. A link already in
    /// the tree on the way to `path` is followed (`/lib/modules` goes to `/usr/lib/modules`
    /// when `/lib` is a link): the kernel unpacks the archive in order and could not create
    /// an entry under a link whose target comes later.
    fn insert(&mut self, path: &Path, node: Node) -> Result<(), RootfsError> {
        let path = normalize(path);
        if !path.is_absolute() {
            return Err(RootfsError::Relative(path));
        }
        let path = match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) => self.resolve(parent, 0)?.join(name),
            _ => path,
        };
        if let Some(parent) = path.parent() {
            if parent != Path::new("/") && !self.entries.contains_key(parent) {
                self.insert(parent, Node::Dir { perm: 0o755 })?;
            }
        }
        match self.entries.get(&path) {
            None => {
                self.entries.insert(path, node);
                Ok(())
            }
            Some(old) if *old == node => Ok(()),
            Some(Node::Dir { .. }) if matches!(node, Node::Dir { .. }) => {
                self.entries.insert(path, node);
                Ok(())
            }
            Some(_) => Err(RootfsError::Conflict(path)),
        }
    }

    /// `path` with the links of the tree on the way followed.
    fn resolve(&self, path: &Path, links: usize) -> Result<PathBuf, RootfsError> {
        if links > MAX_LINKS {
            return Err(RootfsError::Loop(path.to_path_buf()));
        }
        let mut resolved = PathBuf::from("/");
        let mut parts = path.components().skip(1);
        for part in parts.by_ref() {
            let here = resolved.join(part);
            if let Some(Node::Symlink { target }) = self.entries.get(&here) {
                let mut next = normalize(&resolved.join(target));
                next.extend(parts);
                return self.resolve(&next, links + 1);
            }
            resolved = here;
        }
        Ok(resolved)
    }

    /// Write the tree as a newc cpio archive to `out`; returns its size in bytes.
    pub(crate) fn write_cpio(&self, out: impl Write) -> Result<u64, RootfsError> {
        let mut writer = CpioWriter::new(out);
        for (path, node) in &self.entries {
            let name = path.to_string_lossy();
            let name = name.trim_start_matches('/');
            match node {
                Node::Dir { perm } => writer.dir(name, *perm)?,
                Node::Bytes { data, perm } => writer.file(name, *perm, data)?,
                Node::Symlink { target } => writer.symlink(name, &target.to_string_lossy())?,
                Node::CharDevice { perm, major, minor } => {
                    writer.char_device(name, *perm, *major, *minor)?
                }
                Node::HostFile { source, perm } => {
                    let file = File::open(source).map_err(|e| io(source, e))?;
                    let size = file.metadata().map_err(|e| io(source, e))?.len();
                    writer.file_from(name, *perm, size, std::io::BufReader::new(file))?
                }
            }
        }
        Ok(writer.finish()?.1)
    }
}

fn io(path: &Path, source: std::io::Error) -> RootfsError {
    RootfsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `path` with `.` and `..` resolved lexically (correct here because every directory before
/// a `..` has already had its links resolved).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                if out.parent().is_some() {
                    out.pop();
                }
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(rootfs: &Rootfs) -> Vec<String> {
        rootfs
            .entries
            .keys()
            .map(|p| p.display().to_string())
            .collect()
    }

    #[test]
    fn parents_are_added_and_sorted_first() {
        let mut rootfs = Rootfs::new();
        rootfs
            .bytes(Path::new("/a/b/c"), b"x".to_vec(), 0o644)
            .unwrap();
        rootfs.dir(Path::new("/a"), 0o700).unwrap();
        assert_eq!(paths(&rootfs), ["/a", "/a/b", "/a/b/c"]);
        assert_eq!(rootfs.entries[Path::new("/a")], Node::Dir { perm: 0o700 });
    }

    #[test]
    fn different_entries_at_one_path_conflict() {
        let mut rootfs = Rootfs::new();
        rootfs.bytes(Path::new("/f"), b"x".to_vec(), 0o644).unwrap();
        rootfs.bytes(Path::new("/f"), b"x".to_vec(), 0o644).unwrap();
        let err = rootfs.symlink(Path::new("/f"), Path::new("g")).unwrap_err();
        assert!(matches!(err, RootfsError::Conflict(_)), "{err}");
    }

    #[test]
    fn links_on_the_way_are_copied_and_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/libx.so.1.2"), b"elf").unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("libx.so.1.2", root.join("usr/lib/libx.so.1")).unwrap();
        let mut rootfs = Rootfs::new();
        rootfs.host_path(&root.join("lib/libx.so.1")).unwrap();
        assert_eq!(
            rootfs.entries[&root.join("lib")],
            Node::Symlink {
                target: PathBuf::from("usr/lib")
            }
        );
        assert_eq!(
            rootfs.entries[&root.join("usr/lib/libx.so.1")],
            Node::Symlink {
                target: PathBuf::from("libx.so.1.2")
            }
        );
        assert!(matches!(
            rootfs.entries[&root.join("usr/lib/libx.so.1.2")],
            Node::HostFile { .. }
        ));
    }

    #[test]
    fn directories_are_copied_whole_and_loops_stop() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("d/e")).unwrap();
        std::fs::write(root.join("d/e/f"), b"1").unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let mut rootfs = Rootfs::new();
        rootfs.host_path(&root.join("d")).unwrap();
        assert!(rootfs.contains(&root.join("d/e/f")));
        let err = rootfs.host_path(&root.join("loop")).unwrap_err();
        assert!(matches!(err, RootfsError::Loop(_)), "{err}");
    }

    #[test]
    fn entries_under_a_link_of_the_tree_go_where_it_points() {
        let mut rootfs = Rootfs::new();
        rootfs
            .symlink(Path::new("/lib"), Path::new("usr/lib"))
            .unwrap();
        rootfs
            .bytes(Path::new("/lib/modules/x/modules.dep"), Vec::new(), 0o644)
            .unwrap();
        assert_eq!(
            paths(&rootfs),
            [
                "/lib",
                "/usr",
                "/usr/lib",
                "/usr/lib/modules",
                "/usr/lib/modules/x",
                "/usr/lib/modules/x/modules.dep"
            ]
        );
        // The link itself can still be replaced by the same link.
        rootfs
            .symlink(Path::new("/lib"), Path::new("usr/lib"))
            .unwrap();
    }

    #[test]
    fn normalize_resolves_dots() {
        assert_eq!(
            normalize(Path::new("/usr/bin/../lib/./x")),
            Path::new("/usr/lib/x")
        );
        assert_eq!(normalize(Path::new("/../x")), Path::new("/x"));
    }

    #[test]
    fn the_archive_holds_every_entry() {
        let mut rootfs = Rootfs::new();
        rootfs
            .bytes(Path::new("/etc/x"), b"abc".to_vec(), 0o644)
            .unwrap();
        rootfs
            .char_device(Path::new("/dev/console"), 0o600, 5, 1)
            .unwrap();
        let mut archive = Vec::new();
        let size = rootfs.write_cpio(&mut archive).unwrap();
        assert_eq!(size as usize, archive.len());
        let text = String::from_utf8_lossy(&archive);
        for name in ["dev\0", "dev/console\0", "etc\0", "etc/x\0", "TRAILER!!!\0"] {
            assert!(text.contains(name), "{name:?} missing");
        }
    }
}
