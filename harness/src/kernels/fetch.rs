//! `nsconform kernels fetch`: update the private apt's indexes, resolve the names, download
//! what is not cached yet and unpack it.
//!
//! Every name is resolved before anything is downloaded, so a typo costs nothing. The
//! indexes are refreshed when older than a day (or with `--refresh`). A kernel already in
//! the cache at the same Debian version is not downloaded again (unless `--force`). One
//! fetch runs at a time per cache: a second one waits on `kernels/.lock`.

use super::apt::{AptError, PrivateApt, SUITES};
use super::cache::{self, CachedKernel};
use super::install::{self, InstallError, Vmlinux};
use super::packages::{parse_index, Package};
use super::resolve::{resolve, ResolveError, Resolved, DEFAULT_NAMES};
use crate::listing::human_size;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Indexes older than this are refreshed before resolving.
const MAX_INDEX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Errors of `fetch`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    /// The cache directory cannot be made or locked.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The private apt failed.
    #[error(transparent)]
    Apt(#[from] AptError),
    /// A name did not resolve.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// apt reported success but a package file is not there.
    #[error("apt-get download left no file for {0}")]
    MissingDeb(String),
    /// Unpacking failed.
    #[error(transparent)]
    Install(#[from] InstallError),
}

/// Options of a fetch.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FetchOptions {
    /// Update the indexes even if recent.
    pub(crate) refresh: bool,
    /// Download and unpack again even if cached.
    pub(crate) force: bool,
}

/// Fetch the kernels `names` mean (the default set when empty) into `kernels_dir`.
pub(crate) fn fetch_in(
    kernels_dir: &Path,
    names: &[String],
    options: FetchOptions,
) -> Result<Vec<CachedKernel>, FetchError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Io { path, source }
    };
    std::fs::create_dir_all(kernels_dir).map_err(io(kernels_dir))?;
    let _lock = lock(kernels_dir)?;

    let apt = PrivateApt::new(kernels_dir);
    apt.prepare()?;
    let stale = apt.lists_age().is_none_or(|age| age > MAX_INDEX_AGE);
    if options.refresh || stale {
        let suites: Vec<&str> = SUITES.iter().map(|(_, s)| *s).collect();
        say(format!(
            "Updating the private package indexes ({})",
            suites.join(", ")
        ));
        apt.update()?;
    }
    let packages = load_packages(&apt)?;

    let names: Vec<String> = if names.is_empty() {
        DEFAULT_NAMES.iter().map(|n| n.to_string()).collect()
    } else {
        names.to_vec()
    };
    let mut chosen: Vec<Resolved> = Vec::new();
    for name in &names {
        let resolved = resolve(name, &packages)?;
        say(format!(
            "{name} -> {} ({} {}, {}): {} package(s), {}",
            resolved.release,
            resolved.image.name,
            resolved.image.version,
            resolved.image.suite,
            resolved.parts.len(),
            human_size(resolved.download_size()),
        ));
        if !chosen.iter().any(|c| c.release == resolved.release) {
            chosen.push(resolved);
        }
    }

    let mut out = Vec::new();
    for resolved in &chosen {
        let dir = kernels_dir.join(&resolved.release);
        if let Some(cached) =
            cache::load(&dir).filter(|k| k.record.version == resolved.image.version)
        {
            if !options.force {
                say(format!(
                    "{}: already cached in {}",
                    resolved.release,
                    dir.display()
                ));
                out.push(cached);
                continue;
            }
        }
        out.push(fetch_one(&apt, kernels_dir, resolved)?);
    }
    Ok(out)
}

/// Download, unpack and report one kernel.
fn fetch_one(
    apt: &PrivateApt,
    kernels_dir: &Path,
    resolved: &Resolved,
) -> Result<CachedKernel, FetchError> {
    let release = &resolved.release;
    let staging = kernels_dir.join(format!(".staging-{release}"));
    install::remove_dir(&staging)?;
    let debs_dir = staging.join("debs");
    std::fs::create_dir_all(&debs_dir).map_err(|source| FetchError::Io {
        path: debs_dir.clone(),
        source,
    })?;

    say(format!(
        "{release}: downloading {}",
        human_size(resolved.download_size())
    ));
    let wanted: Vec<(String, String)> = resolved
        .parts
        .iter()
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect();
    apt.download(&wanted, &debs_dir)?;
    let debs = resolved
        .parts
        .iter()
        .map(|part| find_deb(&debs_dir, part))
        .collect::<Result<Vec<_>, _>>()?;

    say(format!("{release}: unpacking"));
    let (record, vmlinux) = install::install(kernels_dir, &staging, resolved, &debs)?;
    match &vmlinux {
        Vmlinux::Extracted {
            compression,
            entry,
            size,
        } => say(format!(
            "{release}: vmlinux extracted ({compression} payload, {}, PVH entry {entry:#x})",
            human_size(*size as u64)
        )),
        Vmlinux::Missing(why) => say(format!(
            "{release}: no vmlinux, boot vmlinuz instead ({why})"
        )),
    }
    let dir = kernels_dir.join(release);
    let kernel = cache::load(&dir).ok_or_else(|| FetchError::MissingDeb(record.name.clone()))?;
    say(format!(
        "{release}: cached in {} ({})",
        dir.display(),
        human_size(crate::listing::disk_usage(&dir))
    ));
    Ok(kernel)
}

/// The kernel packages of every downloaded index, in suite order.
fn load_packages(apt: &PrivateApt) -> Result<Vec<Package>, FetchError> {
    let mut packages = Vec::new();
    for file in apt.index_files()? {
        let text = apt.read_index(&file)?;
        packages.extend(parse_index(&text, &file.suite));
    }
    Ok(packages)
}

/// The file `apt-get download` wrote for a package: `NAME_VERSION_ARCH.deb`, with the
/// version's `:` escaped as `%3a`.
fn find_deb(dir: &Path, package: &Package) -> Result<PathBuf, FetchError> {
    let version = package.version.replace(':', "%3a");
    let prefix = format!("{}_{}_", package.name, version);
    std::fs::read_dir(dir)
        .map_err(|source| FetchError::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            name.starts_with(&prefix) && name.ends_with(".deb")
        })
        .ok_or_else(|| FetchError::MissingDeb(format!("{}={}", package.name, package.version)))
}

/// Print a progress line; a closed standard output (`| head`) is not an error.
fn say(line: String) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Take the cache's lock, waiting (with a message) if another fetch holds it.
fn lock(kernels_dir: &Path) -> Result<Flock<File>, FetchError> {
    let path = kernels_dir.join(".lock");
    let io = |source| FetchError::Io {
        path: path.clone(),
        source,
    };
    let file = File::create(&path).map_err(io)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((file, _)) => {
            say("Waiting for another `nsconform kernels fetch` to finish".to_string());
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| io(errno.into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_file_apt_get_download_writes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let package = Package {
            name: "linux-image-6.1.0-56-cloud-amd64".to_string(),
            version: "1:6.1.192-2".to_string(),
            suite: "bookworm-security".to_string(),
            size: 1,
            sha256: String::new(),
            filename: String::new(),
            depends: String::new(),
        };
        let file = tmp
            .path()
            .join("linux-image-6.1.0-56-cloud-amd64_1%3a6.1.192-2_amd64.deb");
        std::fs::write(&file, b"!<arch>").expect("write");
        std::fs::write(
            tmp.path()
                .join("linux-image-6.1.0-56-cloud-amd64-dbg_1%3a6.1.192-2_amd64.deb"),
            b"",
        )
        .expect("write");
        assert_eq!(find_deb(tmp.path(), &package).expect("found"), file);
        let other = Package {
            version: "6.1.192-3".to_string(),
            ..package
        };
        assert!(matches!(
            find_deb(tmp.path(), &other),
            Err(FetchError::MissingDeb(_))
        ));
    }
}
