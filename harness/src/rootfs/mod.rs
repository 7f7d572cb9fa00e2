//! Root filesystems ("userlands") that actors and whole runs can be placed in.
//!
//! `nsconform rootfs build NAME` makes one of the known trees (`busybox`,
//! `debian-bookworm`, `debian-trixie`) in the cache, outside the repository; scenarios name
//! them in `requires.rootfs` and as `{{rootfs.NAME}}`, actors in `rootfs = "NAME"`.
//!
//! The cache is the kernels' one (`$NSCONFORM_CACHE`, else `$XDG_CACHE_HOME/nsconform`, else
//! `~/.cache/nsconform`); trees live in its `rootfs/NAME`. A tree counts as built once its
//! stamp (`/.nsconform-rootfs.json`, `stamp.rs`) is there. The parts: `busybox.rs` (the
//! busybox tree), `debian.rs` and `mirror.rs` (`debootstrap` and its mirror), `build.rs`
//! (atomic builds, leftovers), `tree.rs` (unmounting and deleting trees safely). See
//! `docs/rootfs.md`.

mod build;
mod busybox;
mod debian;
mod mirror;
mod stamp;
mod tree;

use std::path::{Path, PathBuf};

pub(crate) use build::{BuildError, BuildOptions, Outcome};
pub(crate) use debian::Interrupt;
pub(crate) use stamp::Stamp;

/// The names `nsconform rootfs build` knows, in the order `list` shows them.
const KNOWN: [&str; 3] = ["busybox", "debian-bookworm", "debian-trixie"];

/// Why a root filesystem cannot be had.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RootfsError {
    /// Not one of the names `nsconform rootfs build` knows, and not a path.
    #[error("unknown root filesystem `{0}` (known: busybox, debian-bookworm, debian-trixie, or a path to a directory)")]
    Unknown(String),
    /// Known, but not built yet, and too slow to build on demand.
    #[error("root filesystem `{name}` is not built: run `nsconform rootfs build {name}`")]
    NotBuilt {
        /// The name asked for.
        name: String,
    },
    /// Building it (on demand) failed.
    #[error("cannot build root filesystem `{name}`: {source}")]
    Build {
        /// The name asked for.
        name: String,
        /// The cause.
        source: BuildError,
    },
}

/// One of the known trees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Known {
    /// `busybox`: a static busybox and its applets.
    Busybox,
    /// `debian-SUITE`: a `debootstrap --variant=minbase` tree of that suite.
    Debian(&'static str),
}

impl Known {
    /// The known tree called `name`, if any.
    pub(crate) fn parse(name: &str) -> Option<Known> {
        match name {
            "busybox" => Some(Known::Busybox),
            "debian-bookworm" => Some(Known::Debian("bookworm")),
            "debian-trixie" => Some(Known::Debian("trixie")),
            _ => None,
        }
    }

    /// Its name, as `build` takes it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Known::Busybox => "busybox",
            Known::Debian("bookworm") => "debian-bookworm",
            Known::Debian(_) => "debian-trixie",
        }
    }

    /// Whether it is cheap enough (well under a second) to build on demand.
    pub(crate) fn fast(self) -> bool {
        self == Known::Busybox
    }
}

/// The names `nsconform rootfs build` knows: `busybox`, `debian-bookworm`, `debian-trixie`.
pub(crate) fn known_names() -> &'static [&'static str] {
    &KNOWN
}

/// The cache's `rootfs/` directory (it may not exist yet).
pub(crate) fn rootfs_dir() -> PathBuf {
    crate::kernels::cache_dir().join("rootfs")
}

/// A known tree in `rootfs_dir`, if built: its directory and stamp.
pub(crate) fn built_in(rootfs_dir: &Path, known: Known) -> Option<(PathBuf, Stamp)> {
    let dir = rootfs_dir.join(known.name());
    let stamp = stamp::read(&dir).ok()?;
    Some((dir, stamp))
}

/// The directory of root filesystem `spec`: a name from the cache, or (when `spec` contains a
/// `/`) a directory path. Never builds anything.
pub(crate) fn resolve(spec: &str) -> Result<PathBuf, RootfsError> {
    resolve_in(&rootfs_dir(), spec)
}

/// [`resolve`] against a given `rootfs/` directory.
pub(crate) fn resolve_in(rootfs_dir: &Path, spec: &str) -> Result<PathBuf, RootfsError> {
    if spec.contains('/') {
        return Ok(PathBuf::from(spec));
    }
    let known = Known::parse(spec).ok_or_else(|| RootfsError::Unknown(spec.to_string()))?;
    built_in(rootfs_dir, known)
        .map(|(dir, _)| dir)
        .ok_or_else(|| RootfsError::NotBuilt {
            name: spec.to_string(),
        })
}

/// Like [`resolve`], but builds `busybox` when it is missing (a few milliseconds). The
/// Debian trees are never built here: [`RootfsError::NotBuilt`] names the command to run.
#[allow(dead_code)] // for actors and runs placed in a tree (`rootfs = "NAME"`)
pub(crate) fn ensure(spec: &str) -> Result<PathBuf, RootfsError> {
    ensure_in(&rootfs_dir(), spec)
}

/// [`ensure`] against a given `rootfs/` directory.
#[allow(dead_code)] // see `ensure`
pub(crate) fn ensure_in(rootfs_dir: &Path, spec: &str) -> Result<PathBuf, RootfsError> {
    match resolve_in(rootfs_dir, spec) {
        Err(RootfsError::NotBuilt { name }) => {
            let known = Known::parse(&name).filter(|k| k.fast());
            let Some(known) = known else {
                return Err(RootfsError::NotBuilt { name });
            };
            match build::build_in(rootfs_dir, known, &BuildOptions::default()) {
                Ok(Outcome::Built(dir) | Outcome::Kept(dir)) => Ok(dir),
                Err(source) => Err(RootfsError::Build { name, source }),
            }
        }
        other => other,
    }
}

/// Build `known` in the cache (see `build.rs`).
pub(crate) fn build(known: Known, options: &BuildOptions) -> Result<Outcome, BuildError> {
    build::build_in(&rootfs_dir(), known, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for name in known_names() {
            assert_eq!(Known::parse(name).map(Known::name), Some(*name));
        }
        assert_eq!(Known::parse("debian-sid"), None);
        assert!(Known::Busybox.fast());
        assert!(!Known::Debian("trixie").fast());
    }

    #[test]
    fn resolves_paths_names_and_unbuilt_names() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let rootfs = tmp.path();
        assert_eq!(
            resolve_in(rootfs, "/some/dir").expect("path"),
            PathBuf::from("/some/dir")
        );
        assert!(matches!(
            resolve_in(rootfs, "alpine"),
            Err(RootfsError::Unknown(_))
        ));
        let err = resolve_in(rootfs, "debian-trixie").expect_err("not built");
        assert!(err
            .to_string()
            .contains("nsconform rootfs build debian-trixie"));
        // A directory without a stamp is not a built tree.
        std::fs::create_dir_all(rootfs.join("debian-trixie/etc")).expect("dir");
        assert!(matches!(
            resolve_in(rootfs, "debian-trixie"),
            Err(RootfsError::NotBuilt { .. })
        ));
        stamp::write(&rootfs.join("debian-trixie"), &Stamp::now("debian-trixie")).expect("stamp");
        assert_eq!(
            resolve_in(rootfs, "debian-trixie").expect("built"),
            rootfs.join("debian-trixie")
        );
    }

    #[test]
    fn ensure_builds_busybox_but_never_debian() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let rootfs = tmp.path();
        assert!(matches!(
            ensure_in(rootfs, "debian-bookworm"),
            Err(RootfsError::NotBuilt { .. })
        ));
        assert!(!rootfs.join("debian-bookworm").exists());
        if !Path::new(busybox::SOURCE).is_file() {
            return;
        }
        let dir = ensure_in(rootfs, "busybox").expect("built on demand");
        assert_eq!(dir, rootfs.join("busybox"));
        assert!(dir.join("bin/sh").exists());
        assert_eq!(resolve_in(rootfs, "busybox").expect("now resolves"), dir);
        assert!(crate::listing::disk_usage(&dir) > 1_000_000);
    }
}
