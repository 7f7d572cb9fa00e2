//! Where kernels are kept, and reading back what is there.
//!
//! The cache is `$NSCONFORM_CACHE`, else `$XDG_CACHE_HOME/nsconform`, else
//! `~/.cache/nsconform`. Kernels live in its `kernels/` directory, one directory per
//! release (what `uname -r` prints once booted):
//!
//! ```text
//! kernels/6.1.0-56-cloud-amd64/
//!     vmlinuz                          the image as shipped (bzImage)
//!     vmlinux                          the decompressed ELF, when it has a PVH entry
//!     config                           the kernel's .config
//!     System.map                       when the package has one (Debian ships a stub)
//!     modules/6.1.0-56-cloud-amd64/    the modules tree, with modules.dep
//!     package.json                     what was downloaded: packages, versions, sha256
//! ```
//!
//! A directory counts as a kernel only once its `package.json` is there; it is written
//! last, and the directory is moved into place whole, so a half-done fetch is never listed.
//! `kernels/apt/` is the private apt configuration and state (see `apt.rs`).

use super::packages::Flavour;
use super::query::Query;
use super::version;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// File name of a kernel's record.
pub(crate) const RECORD: &str = "package.json";

/// Errors reading or writing a kernel's record.
pub(crate) type CacheError = crate::json_file::JsonFileError;

/// One downloaded package, as recorded in `package.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct PackageRecord {
    /// Package name.
    pub(crate) name: String,
    /// Debian version.
    pub(crate) version: String,
    /// Suite it came from.
    pub(crate) suite: String,
    /// Size of the `.deb` in bytes.
    pub(crate) size: u64,
    /// SHA-256 of the `.deb` (from the signed index; apt checked it on download).
    pub(crate) sha256: String,
}

/// The contents of `package.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct KernelRecord {
    /// The image package, e.g. `linux-image-6.1.0-56-cloud-amd64`.
    pub(crate) name: String,
    /// The kernel release.
    pub(crate) release: String,
    /// Cloud or generic build.
    pub(crate) flavour: Flavour,
    /// Debian version of the image package.
    pub(crate) version: String,
    /// Suite of the image package.
    pub(crate) suite: String,
    /// Bytes downloaded (all packages).
    pub(crate) size: u64,
    /// The packages unpacked into this directory.
    pub(crate) packages: Vec<PackageRecord>,
    /// Compression of the vmlinuz payload, when found.
    pub(crate) compression: Option<String>,
    /// PVH entry address of `vmlinux` (hex), when extracted.
    pub(crate) pvh_entry: Option<String>,
    /// Why there is no `vmlinux`, when there is none.
    pub(crate) vmlinux_missing: Option<String>,
    /// Whether `depmod` wrote `modules.dep`.
    pub(crate) depmod: bool,
}

/// A kernel in the cache, as the VM runner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CachedKernel {
    /// The release, e.g. `6.1.0-56-cloud-amd64`.
    pub(crate) release: String,
    /// Its directory.
    pub(crate) dir: PathBuf,
    /// The decompressed ELF with a PVH entry (boot with `-kernel vmlinux`), if extracted.
    pub(crate) vmlinux: Option<PathBuf>,
    /// The image as shipped (always there).
    pub(crate) vmlinuz: PathBuf,
    /// The modules tree `modules/RELEASE`, if the kernel has modules.
    pub(crate) modules: Option<PathBuf>,
    /// The kernel's `.config`, if shipped.
    pub(crate) config: Option<PathBuf>,
    /// What `package.json` says.
    pub(crate) record: KernelRecord,
}

/// The cache directory: `$NSCONFORM_CACHE`, `$XDG_CACHE_HOME/nsconform` or
/// `~/.cache/nsconform` (the system's temporary directory when there is no home).
pub(crate) fn cache_dir() -> PathBuf {
    cache_dir_from(
        std::env::var_os("NSCONFORM_CACHE"),
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
    )
}

/// The kernels directory of the cache.
pub(crate) fn kernels_dir() -> PathBuf {
    cache_dir().join("kernels")
}

/// [`cache_dir`] from given variables. Empty values count as unset, and so does a relative
/// `XDG_CACHE_HOME` (the XDG specification says to ignore it).
fn cache_dir_from(
    nsconform: Option<OsString>,
    xdg: Option<OsString>,
    home: Option<OsString>,
) -> PathBuf {
    let set = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(nsconform) {
        return dir;
    }
    if let Some(dir) = set(xdg).filter(|d| d.is_absolute()) {
        return dir.join("nsconform");
    }
    match set(home) {
        Some(home) => home.join(".cache").join("nsconform"),
        None => std::env::temp_dir().join("nsconform-cache"),
    }
}

/// Read a kernel directory's `package.json`.
pub(crate) fn read_record(dir: &Path) -> Result<KernelRecord, CacheError> {
    crate::json_file::read(&dir.join(RECORD))
}

/// Write a kernel directory's `package.json`.
pub(crate) fn write_record(dir: &Path, record: &KernelRecord) -> Result<(), CacheError> {
    crate::json_file::write(&dir.join(RECORD), record)
}

/// The kernel in `dir`, if it is a complete one.
pub(crate) fn load(dir: &Path) -> Option<CachedKernel> {
    let record = read_record(dir).ok()?;
    let vmlinuz = dir.join("vmlinuz");
    if !vmlinuz.is_file() {
        return None;
    }
    let existing = |path: PathBuf| path.exists().then_some(path);
    Some(CachedKernel {
        release: record.release.clone(),
        dir: dir.to_path_buf(),
        vmlinux: existing(dir.join("vmlinux")),
        vmlinuz,
        modules: existing(dir.join("modules").join(&record.release)),
        config: existing(dir.join("config")),
        record,
    })
}

/// Every complete kernel under `kernels_dir`, oldest version first.
pub(crate) fn list_in(kernels_dir: &Path) -> Vec<CachedKernel> {
    let Ok(entries) = std::fs::read_dir(kernels_dir) else {
        return Vec::new();
    };
    let mut out: Vec<CachedKernel> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| load(&e.path()))
        .collect();
    out.sort_by(|a, b| {
        version::compare(&a.record.version, &b.record.version)
            .then_with(|| a.record.flavour.cmp(&b.record.flavour).reverse())
            .then_with(|| a.release.cmp(&b.release))
    });
    out
}

/// The cached kernel a name means (same names as `fetch`): the newest match, a cloud
/// build before a generic one. `None` for no match or a name that cannot be parsed.
pub(crate) fn find_in(kernels_dir: &Path, name: &str) -> Option<CachedKernel> {
    let query = Query::parse(name).ok()?;
    let matching: Vec<CachedKernel> = list_in(kernels_dir)
        .into_iter()
        .filter(|k| query.matches(&k.release, &k.record.version))
        .collect();
    let best = |flavour: Flavour| {
        matching
            .iter()
            .rfind(|k| k.record.flavour == flavour)
            .cloned()
    };
    best(Flavour::Cloud).or_else(|| best(Flavour::Generic))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A record for tests.
    pub(crate) fn record(release: &str, version: &str, flavour: Flavour) -> KernelRecord {
        KernelRecord {
            name: format!("linux-image-{release}"),
            release: release.to_string(),
            flavour,
            version: version.to_string(),
            suite: "sid".to_string(),
            size: 10,
            packages: Vec::new(),
            compression: Some("lz4".to_string()),
            pvh_entry: Some("0x1000970".to_string()),
            vmlinux_missing: None,
            depmod: true,
        }
    }

    /// Lay out a fake kernel directory the way `install` does.
    pub(crate) fn fake_kernel(kernels: &Path, record: &KernelRecord, vmlinux: bool) {
        let dir = kernels.join(&record.release);
        std::fs::create_dir_all(dir.join("modules").join(&record.release)).expect("mkdir");
        std::fs::write(dir.join("vmlinuz"), b"bzImage").expect("vmlinuz");
        if vmlinux {
            std::fs::write(dir.join("vmlinux"), b"\x7fELF").expect("vmlinux");
        }
        write_record(&dir, record).expect("record");
    }

    #[test]
    fn cache_dir_follows_the_variables_in_order() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            cache_dir_from(os("/c"), os("/x"), os("/h")),
            PathBuf::from("/c")
        );
        assert_eq!(
            cache_dir_from(os(""), os("/x"), os("/h")),
            PathBuf::from("/x/nsconform")
        );
        assert_eq!(
            cache_dir_from(None, os("rel"), os("/h")),
            PathBuf::from("/h/.cache/nsconform")
        );
        assert_eq!(
            cache_dir_from(None, None, os("/h")),
            PathBuf::from("/h/.cache/nsconform")
        );
        assert!(cache_dir_from(None, None, None).ends_with("nsconform-cache"));
    }

    #[test]
    fn lists_complete_kernels_oldest_first() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let kernels = tmp.path();
        fake_kernel(
            kernels,
            &record("7.2.13+deb14-cloud-amd64", "7.2.13-1", Flavour::Cloud),
            true,
        );
        fake_kernel(
            kernels,
            &record("6.1.0-56-cloud-amd64", "6.1.192-2", Flavour::Cloud),
            false,
        );
        // Not kernels: the apt directory, a staging directory, a directory without record.
        std::fs::create_dir_all(kernels.join("apt/etc")).expect("apt");
        fake_kernel(
            &kernels.join(".staging-x"),
            &record("5.10.0-46-cloud-amd64", "5.10.262-1", Flavour::Cloud),
            true,
        );
        std::fs::create_dir_all(kernels.join("6.12.118+deb13-cloud-amd64")).expect("partial");

        let listed = list_in(kernels);
        let releases: Vec<&str> = listed.iter().map(|k| k.release.as_str()).collect();
        assert_eq!(
            releases,
            ["6.1.0-56-cloud-amd64", "7.2.13+deb14-cloud-amd64"]
        );
        let old = &listed[0];
        assert_eq!(old.dir, kernels.join("6.1.0-56-cloud-amd64"));
        assert_eq!(old.vmlinuz, old.dir.join("vmlinuz"));
        assert_eq!(old.vmlinux, None);
        assert_eq!(
            old.modules,
            Some(old.dir.join("modules/6.1.0-56-cloud-amd64"))
        );
        assert_eq!(listed[1].vmlinux, Some(listed[1].dir.join("vmlinux")));
        assert_eq!(read_record(&old.dir).expect("reads"), old.record);
        assert!(crate::listing::disk_usage(kernels) > 0);
    }

    #[test]
    fn finds_by_the_same_names_as_fetch() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let kernels = tmp.path();
        fake_kernel(
            kernels,
            &record("6.1.0-55-cloud-amd64", "6.1.190-1", Flavour::Cloud),
            true,
        );
        fake_kernel(
            kernels,
            &record("6.1.0-56-cloud-amd64", "6.1.192-2", Flavour::Cloud),
            true,
        );
        fake_kernel(
            kernels,
            &record("6.1.0-57-amd64", "6.1.193-1", Flavour::Generic),
            true,
        );
        fake_kernel(
            kernels,
            &record("6.12.118+deb13-cloud-amd64", "6.12.118-1", Flavour::Cloud),
            true,
        );
        let found = |name: &str| find_in(kernels, name).map(|k| k.release);
        assert_eq!(found("6.1").as_deref(), Some("6.1.0-56-cloud-amd64"));
        assert_eq!(found("6.1.190").as_deref(), Some("6.1.0-55-cloud-amd64"));
        assert_eq!(found("6.1.0-57-amd64").as_deref(), Some("6.1.0-57-amd64"));
        assert_eq!(
            found("newest").as_deref(),
            Some("6.12.118+deb13-cloud-amd64")
        );
        assert_eq!(found("5.10"), None);
        assert_eq!(found("nonsense"), None);
    }
}
