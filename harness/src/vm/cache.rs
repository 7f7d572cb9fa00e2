//! The cache of the initramfs's common part, so a run does not collect and write it again.
//!
//! Most of the initramfs (`initramfs.rs`) is the same from one run to the next: the stripped
//! harness binary, the tools with their libraries, the perl modules, a few `/etc` files. That
//! part, the *base*, takes 0.5 to 2.5 s to gather (an `ldd` per program, `strip`, perl) and
//! is kept in `CACHE/initramfs/KEY.cpio` (`CACHE` as for kernels: `$NSCONFORM_CACHE`,
//! `$XDG_CACHE_HOME/nsconform` or `~/.cache/nsconform`). The rest — the kernel's modules,
//! the scenarios, the run's options — is written fresh as a second archive appended to a copy
//! of the base (the kernel unpacks concatenated archives in order).
//!
//! `KEY` is a hash of what decides the base: this very binary (path, size, modification
//! time, inode; a rebuilt harness is a new key, so a change of what goes in is too) and where
//! each wanted tool was found. `KEY.json` records, besides the key, the state of every host
//! file, directory and link the base was made from (size, modification time and inode, or
//! the link's target) and of `/etc/ld.so.cache`; a base is reused only when all of them are
//! unchanged, so an upgraded tool or library makes a new one. The most recently used
//! [`KEEP`] bases are kept.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Bases kept (about 37 MB each with a release binary); older ones are removed.
pub(crate) const KEEP: usize = 4;

/// Errors storing a base in the cache.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CacheError {
    /// A file of the cache could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The record could not be encoded.
    #[error("encoding the cache record: {0}")]
    Encode(#[from] serde_json::Error),
}

/// What decides the base's contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Key {
    /// The harness binary and its [`stamp`].
    pub(crate) binary: (PathBuf, String),
    /// Each wanted tool and where it was found (`None`: not on this machine).
    pub(crate) tools: BTreeMap<String, Option<PathBuf>>,
}

impl Key {
    /// The key's name in the cache: 16 hex digits.
    fn name(&self) -> String {
        let text = serde_json::to_vec(self).unwrap_or_default();
        format!("{:016x}", super::frame::fnv1a64(&text))
    }
}

/// What is known about a stored base besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The key it was made for.
    pub(crate) key: Key,
    /// Every host path it was made from, with its [`stamp`] at the time.
    pub(crate) stamps: BTreeMap<PathBuf, String>,
    /// Entries in the archive.
    pub(crate) entries: usize,
    /// Wanted tools this machine does not have.
    pub(crate) missing_tools: Vec<String>,
}

impl Record {
    /// A record of `sources` as they are now.
    pub(crate) fn new(
        key: Key,
        sources: impl IntoIterator<Item = PathBuf>,
        entries: usize,
        missing_tools: Vec<String>,
    ) -> Record {
        let stamps = sources
            .into_iter()
            .map(|path| {
                let stamp = stamp(&path);
                (path, stamp)
            })
            .collect();
        Record {
            key,
            stamps,
            entries,
            missing_tools,
        }
    }

    /// Whether every recorded path is as it was.
    fn still_valid(&self) -> bool {
        self.stamps.iter().all(|(path, then)| stamp(path) == *then)
    }
}

/// A path's state: `file SIZE MTIME INODE`, `dir MTIME INODE`, `link TARGET`, or `missing`.
pub(crate) fn stamp(path: &Path) -> String {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return "missing".to_string();
    };
    let time = format!("{}.{:09}", meta.mtime(), meta.mtime_nsec());
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).unwrap_or_default();
        format!("link {}", target.display())
    } else if meta.is_dir() {
        format!("dir {time} {}:{}", meta.dev(), meta.ino())
    } else {
        format!("file {} {time} {}:{}", meta.len(), meta.dev(), meta.ino())
    }
}

/// The bases in a directory.
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache in `dir` (created when something is stored).
    pub(crate) fn at(dir: &Path) -> Cache {
        Cache {
            dir: dir.to_path_buf(),
        }
    }

    /// The default place: `initramfs` in the nsconform cache directory.
    pub(crate) fn default_dir() -> PathBuf {
        crate::kernels::cache_dir().join("initramfs")
    }

    fn paths(&self, key: &Key) -> (PathBuf, PathBuf) {
        let name = key.name();
        (
            self.dir.join(format!("{name}.cpio")),
            self.dir.join(format!("{name}.json")),
        )
    }

    /// The stored base for `key` and its record, when there is one made from the same host
    /// files as they are now; marked as just used.
    pub(crate) fn lookup(&self, key: &Key) -> Option<(PathBuf, Record)> {
        let (archive, record_path) = self.paths(key);
        let record: Record = serde_json::from_slice(&std::fs::read(&record_path).ok()?).ok()?;
        if record.key != *key || !archive.is_file() || !record.still_valid() {
            return None;
        }
        let now = std::time::SystemTime::now();
        for path in [&archive, &record_path] {
            if let Ok(file) = std::fs::File::options().append(true).open(path) {
                let _ = file.set_modified(now);
            }
        }
        Some((archive, record))
    }

    /// Store the first `length` bytes of `archive` (a base, possibly followed by more) as
    /// the base for `record.key`, and drop the least recently used bases beyond [`KEEP`].
    /// Files are written under temporary names and renamed, so a concurrent run sees a whole
    /// base or none.
    pub(crate) fn store(
        &self,
        archive: &Path,
        length: u64,
        record: &Record,
    ) -> Result<(), CacheError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let (stored, record_path) = self.paths(&record.key);
        let temporary = |path: &Path| {
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".{}.tmp", std::process::id()));
            PathBuf::from(name)
        };
        let (archive_tmp, record_tmp) = (temporary(&stored), temporary(&record_path));
        let copied = copy_prefix(archive, &archive_tmp, length)
            .map_err(io(&archive_tmp))
            .and_then(|()| std::fs::rename(&archive_tmp, &stored).map_err(io(&stored)))
            .and_then(|()| {
                let text = serde_json::to_vec_pretty(record)?;
                std::fs::write(&record_tmp, text).map_err(io(&record_tmp))?;
                std::fs::rename(&record_tmp, &record_path).map_err(io(&record_path))
            });
        if copied.is_err() {
            for path in [&archive_tmp, &record_tmp] {
                let _ = std::fs::remove_file(path);
            }
        }
        copied?;
        self.evict(KEEP);
        Ok(())
    }

    /// Remove all but the `keep` most recently used bases (and stray temporary files of
    /// runs that died an hour ago or more).
    fn evict(&self, keep: usize) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut bases = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let modified = entry.metadata().and_then(|m| m.modified()).ok();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let old = modified
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age.as_secs() >= 3600);
                if old {
                    let _ = std::fs::remove_file(&path);
                }
            } else if name.ends_with(".cpio") {
                bases.push((modified, path));
            }
        }
        bases.sort_by_key(|base| std::cmp::Reverse(base.0));
        for (_, path) in bases.into_iter().skip(keep) {
            let _ = std::fs::remove_file(path.with_extension("json"));
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Copy the first `length` bytes of `from` to a new file `to`.
fn copy_prefix(from: &Path, to: &Path, length: u64) -> std::io::Result<()> {
    use std::io::Read;
    let mut source = std::fs::File::open(from)?.take(length);
    let mut target = std::fs::File::create(to)?;
    let copied = std::io::copy(&mut source, &mut target)?;
    if copied != length {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("{} is shorter than {length} bytes", from.display()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tool: &str) -> Key {
        Key {
            binary: (PathBuf::from("/bin/nsconform"), "file 1 2.0 3:4".into()),
            tools: [(tool.to_string(), Some(PathBuf::from("/usr/bin").join(tool)))].into(),
        }
    }

    #[test]
    fn stamps_tell_files_dirs_links_and_missing_paths_apart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"abc").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        assert!(stamp(&file).starts_with("file 3 "), "{}", stamp(&file));
        assert!(stamp(dir.path()).starts_with("dir "));
        assert_eq!(stamp(&dir.path().join("l")), "link f");
        assert_eq!(stamp(&dir.path().join("absent")), "missing");
        let before = stamp(&file);
        std::fs::write(&file, b"abcd").unwrap();
        assert_ne!(stamp(&file), before);
    }

    #[test]
    fn a_stored_base_is_found_until_a_source_changes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(&dir.path().join("cache"));
        let source = dir.path().join("lib.so");
        std::fs::write(&source, b"v1").unwrap();
        let archive = dir.path().join("initramfs.cpio");
        std::fs::write(&archive, b"BASE+tail").unwrap();
        assert!(cache.lookup(&key("ip")).is_none());
        let record = Record::new(key("ip"), [source.clone()], 7, vec!["bwrap".into()]);
        cache.store(&archive, 4, &record).unwrap();
        let (stored, found) = cache.lookup(&key("ip")).unwrap();
        assert_eq!(std::fs::read(&stored).unwrap(), b"BASE");
        assert_eq!(found, record);
        // Another key is another base.
        assert!(cache.lookup(&key("ss")).is_none());
        // A changed source makes the base stale.
        std::fs::write(&source, b"version 2").unwrap();
        assert!(cache.lookup(&key("ip")).is_none());
    }

    #[test]
    fn only_the_most_recently_used_bases_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path());
        let archive = dir.path().join("a.bin");
        std::fs::write(&archive, b"xxxx").unwrap();
        let tools = ["a", "b", "c"];
        for (age, tool) in tools.iter().enumerate() {
            cache
                .store(&archive, 4, &Record::new(key(tool), [], 1, Vec::new()))
                .unwrap();
            // Older first: set the times apart explicitly rather than sleeping.
            let (stored, record) = cache.paths(&key(tool));
            let then = std::time::SystemTime::now()
                - std::time::Duration::from_secs(100 * (tools.len() - age) as u64);
            for path in [stored, record] {
                let file = std::fs::File::options().append(true).open(path).unwrap();
                file.set_modified(then).unwrap();
            }
        }
        cache.evict(2);
        assert!(cache.lookup(&key("a")).is_none());
        assert!(cache.lookup(&key("b")).is_some());
        assert!(cache.lookup(&key("c")).is_some());
        assert!(!cache.paths(&key("a")).1.exists());
    }
}
