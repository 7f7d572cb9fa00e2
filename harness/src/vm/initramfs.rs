//! What the guest boots from: an initramfs made of this machine's own files.
//!
//! It holds the running `nsconform` binary (at `/nsconform/nsconform`, also the guest's init),
//! the scenarios to run (under `/nsconform/scenarios`, with the names they have here), the
//! real userland tools the scenarios run — iproute2, util-linux, procps, coreutils, perl and
//! so on, found on this machine's `PATH` directories — with their shared libraries and the
//! dynamic loader, a few files of `/etc` (users and groups, `os-release`, iproute2's tables),
//! the kernel modules for link kinds and overlayfs, and the run's options (`/nsconform/vm.json`).
//! Busybox is not used: its applets (`ip`, `unshare`) behave differently from the real tools
//! (the list is in `tools.rs`).
//!
//! It is written as two archives one after the other, which the kernel unpacks in order: the
//! *base* (binary, tools, libraries, `/etc`), the same from run to run and kept in a cache
//! (`cache.rs`), and a small second part made for each run (the kernel's modules, the
//! scenarios, tools only some scenarios require, the options).
//!
//! The binary is dynamically linked and travels with its libraries like every other
//! program: no second, static build is needed, and the guest runs exactly the binary that was
//! started.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cache::{self, Cache, Key, Record};
use super::guest::{GuestConfig, CONFIG_PATH, GUEST_BINARY, GUEST_SCENARIOS};
use super::libs::{self, LibsError};
use super::modules::{self, ModulesError};
use super::rootfs::{Rootfs, RootfsError};
use super::tools::{find_tool, perl_files, TOOLS};

/// Errors building the initramfs.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InitramfsError {
    /// Collecting or writing files failed.
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    /// A program's libraries could not be resolved.
    #[error(transparent)]
    Libs(#[from] LibsError),
    /// The kernel's modules tree could not be read.
    #[error(transparent)]
    Modules(#[from] ModulesError),
    /// The archive file could not be created.
    #[error("{path}: {source}")]
    Create {
        /// The archive.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The guest's options could not be encoded.
    #[error("encoding the guest's options: {0}")]
    Config(#[from] serde_json::Error),
}

/// The dynamic loader's cache (what `ldd` resolves libraries with).
const LD_SO_CACHE: &str = "/etc/ld.so.cache";

/// `/etc` files copied from this machine when present.
const ETC_FILES: &[&str] = &[
    "/etc/passwd",
    "/etc/group",
    "/etc/os-release",
    "/etc/iproute2",
];

/// What goes into the guest.
#[derive(Debug)]
pub(crate) struct Contents<'a> {
    /// The harness binary to run inside (normally this very binary).
    pub(crate) binary: &'a Path,
    /// Scenario files by name (`uts/hostname-isolated`) and path here.
    pub(crate) scenarios: &'a [(String, PathBuf)],
    /// Extra programs named by the scenarios' `requires.commands`.
    pub(crate) extra_tools: &'a BTreeSet<String>,
    /// The kernel's modules tree (the directory with `modules.dep`), when it has one.
    pub(crate) modules: Option<&'a Path>,
    /// The options of the run inside.
    pub(crate) config: &'a GuestConfig,
}

/// What was written.
#[derive(Debug)]
pub(crate) struct Built {
    /// Entries in the archive.
    pub(crate) entries: usize,
    /// Its size in bytes.
    pub(crate) bytes: u64,
    /// Tools this machine does not have (scenarios that need them are skipped inside).
    pub(crate) missing_tools: Vec<String>,
    /// Whether the base came from the cache.
    pub(crate) cached: bool,
    /// Why a new base could not be stored in the cache, if it could not.
    pub(crate) cache_error: Option<String>,
}

/// Write the guest's files to `archive` as an uncompressed cpio: the base (the binary, the
/// tools, `/etc`; from `cache` when it has it, else collected and stored there; a stripped
/// copy of the binary is made beside `archive` when `strip` is there), followed by a second
/// archive with the modules, the scenarios, the extra tools and the options (see `cache.rs`).
pub(crate) fn build(
    contents: &Contents<'_>,
    archive: &Path,
    cache: Option<&Cache>,
) -> Result<Built, InitramfsError> {
    let create = |source| InitramfsError::Create {
        path: archive.to_path_buf(),
        source,
    };
    let key = base_key(contents.binary);
    let mut cache_error = None;
    // (A base removed meanwhile by another run's clean-up is written afresh.)
    let found = cache
        .and_then(|cache| cache.lookup(&key))
        .and_then(|(stored, record)| Some((std::fs::copy(stored, archive).ok()?, record)));
    let (base_bytes, record, cached) = match found {
        Some((bytes, record)) => (bytes, record, true),
        None => {
            let (bytes, record) = write_base(contents.binary, key, archive)?;
            if let Some(cache) = cache {
                cache_error = cache
                    .store(archive, bytes, &record)
                    .err()
                    .map(|e| e.to_string());
            }
            (bytes, record, false)
        }
    };
    let mut tail = Rootfs::new();
    merged_usr_links(&mut tail)?;
    let mut missing_tools = record.missing_tools;
    for tool in contents.extra_tools {
        if TOOLS.contains(&tool.as_str()) {
            continue;
        }
        match find_tool(tool) {
            Some(path) => add_program(&mut tail, &path)?,
            None => missing_tools.push(tool.clone()),
        }
    }
    if let Some(dir) = contents.modules {
        let release = dir.file_name().map(PathBuf::from).unwrap_or_default();
        let guest_dir = Path::new("/lib/modules").join(release);
        for file in modules::files_to_copy(dir)? {
            let relative = file.strip_prefix(dir).unwrap_or(&file);
            tail.host_file_as(&guest_dir.join(relative), &file)?;
        }
    }
    for (name, path) in contents.scenarios {
        let guest = Path::new(GUEST_SCENARIOS).join(format!("{name}.toml"));
        tail.host_file_as(&guest, path)?;
    }
    tail.bytes(
        Path::new(CONFIG_PATH),
        serde_json::to_vec_pretty(contents.config)?,
        0o644,
    )?;
    let file = std::fs::OpenOptions::new()
        .append(true)
        .open(archive)
        .map_err(create)?;
    let tail_bytes = tail.write_cpio(std::io::BufWriter::with_capacity(1 << 20, file))?;
    missing_tools.sort();
    Ok(Built {
        entries: record.entries + tail.len(),
        bytes: base_bytes + tail_bytes,
        missing_tools,
        cached,
        cache_error,
    })
}

/// What decides the base: the binary as it is now, and where each tool is.
fn base_key(binary: &Path) -> Key {
    Key {
        binary: (binary.to_path_buf(), cache::stamp(binary)),
        tools: TOOLS
            .iter()
            .map(|tool| (tool.to_string(), find_tool(tool)))
            .collect(),
    }
}

/// Collect the base (the files every run has) and write it to `archive`; its size and the
/// record to cache it with.
fn write_base(binary: &Path, key: Key, archive: &Path) -> Result<(u64, Record), InitramfsError> {
    let mut rootfs = Rootfs::new();
    skeleton(&mut rootfs)?;
    let stripped = archive.with_file_name("nsconform");
    let guest_binary = if strip(binary, &stripped) {
        stripped.as_path()
    } else {
        binary
    };
    rootfs.host_file_as(Path::new(GUEST_BINARY), guest_binary)?;
    for lib in libs::needed_by(binary)? {
        rootfs.host_path(&lib)?;
    }
    let mut missing_tools = Vec::new();
    for (tool, found) in &key.tools {
        match found {
            Some(path) => add_program(&mut rootfs, path)?,
            None => missing_tools.push(tool.clone()),
        }
    }
    if key.tools.get("perl").is_some_and(Option::is_some) {
        for file in perl_files() {
            add_program(&mut rootfs, &file)?;
        }
    }
    for etc in ETC_FILES {
        if Path::new(etc).exists() {
            rootfs.host_path(Path::new(etc))?;
        }
    }
    // What the base is made from, recorded before it is written (a file that changes
    // meanwhile then makes the next run write a new base): the binary itself (not its
    // stripped copy, which goes with the work directory), every copied file and link, the
    // `/etc` entries (a directory by its modification time) and the loader's cache, which
    // decided what `ldd` said.
    let sources: BTreeSet<PathBuf> = rootfs
        .host_sources()
        .filter(|source| *source != stripped)
        .map(Path::to_path_buf)
        .chain(ETC_FILES.iter().map(PathBuf::from))
        .chain([PathBuf::from(LD_SO_CACHE)])
        .collect();
    let record = Record::new(key, sources, rootfs.len(), missing_tools);
    let file = std::fs::File::create(archive).map_err(|source| InitramfsError::Create {
        path: archive.to_path_buf(),
        source,
    })?;
    let bytes = rootfs.write_cpio(std::io::BufWriter::with_capacity(1 << 20, file))?;
    Ok((bytes, record))
}

/// Copy `binary` to `out` without symbols and debug information (a debug build shrinks from
/// about 50 to 13 MB, which the guest's kernel unpacks some seconds faster under TCG; panics
/// still say where, only backtraces lose their names); false when `strip` is missing or
/// fails, and the binary is used as it is.
fn strip(binary: &Path, out: &Path) -> bool {
    Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(out)
        .arg(binary)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The directories and files every guest has, whatever the host.
fn skeleton(rootfs: &mut Rootfs) -> Result<(), RootfsError> {
    for dir in ["/proc", "/sys", "/dev", "/run", "/var", "/.root"] {
        rootfs.dir(Path::new(dir), 0o755)?;
    }
    // As on Debian: /root is private (a scenario checks that uid 1000 cannot list it), /tmp
    // is a directory of the root file system, not a mount of its own.
    rootfs.dir(Path::new("/root"), 0o700)?;
    rootfs.dir(Path::new("/tmp"), 0o1777)?;
    merged_usr_links(rootfs)?;
    // The kernel runs /init; through a link its name (`/proc/1/comm`) is `init`, as on a
    // booted machine, not `nsconform`.
    let binary = Path::new(GUEST_BINARY);
    rootfs.symlink(
        Path::new("/init"),
        binary.strip_prefix("/").unwrap_or(binary),
    )?;
    rootfs.dir(Path::new("/var/tmp"), 0o1777)?;
    rootfs.symlink(Path::new("/var/run"), Path::new("../run"))?;
    // The kernel opens /dev/console for init before anything is mounted.
    rootfs.char_device(Path::new("/dev/console"), 0o600, 5, 1)?;
    rootfs.bytes(
        Path::new("/etc/nsswitch.conf"),
        b"passwd: files\ngroup: files\nshadow: files\nhosts: files\n".to_vec(),
        0o644,
    )?;
    rootfs.bytes(
        Path::new("/etc/hosts"),
        b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_vec(),
        0o644,
    )?;
    Ok(())
}

/// The merged-/usr links (`/bin -> usr/bin`...), so `/bin/sh` and the kernel's
/// `/sbin/modprobe` exist even though the tools were found in `/usr` (and, in the second
/// archive, so `/lib/modules` goes where the first put `/lib`).
fn merged_usr_links(rootfs: &mut Rootfs) -> Result<(), RootfsError> {
    for top in ["/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"] {
        if let Ok(target) = std::fs::read_link(top) {
            rootfs.symlink(Path::new(top), &target)?;
        }
    }
    Ok(())
}

/// A program (or shared object) and the libraries it needs.
fn add_program(rootfs: &mut Rootfs, path: &Path) -> Result<(), InitramfsError> {
    if rootfs.contains(path) {
        return Ok(());
    }
    rootfs.host_path(path)?;
    for lib in libs::needed_by(path)? {
        rootfs.host_path(&lib)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_base_gives_the_same_archive_as_a_fresh_one() {
        let dir = tempfile::tempdir().unwrap();
        let binary = find_tool("true").unwrap();
        let scenario = dir.path().join("s.toml");
        std::fs::write(&scenario, "# a scenario\n").unwrap();
        let scenarios = [("uts/x".to_string(), scenario)];
        let extra = BTreeSet::from(["sh".to_string(), "no-such-tool-nsconform".to_string()]);
        let config = GuestConfig {
            run_args: Vec::new(),
            hostname: "h".into(),
            results: false,
            boot_only: false,
        };
        let contents = Contents {
            binary: &binary,
            scenarios: &scenarios,
            extra_tools: &extra,
            modules: None,
            config: &config,
        };
        let cache = Cache::at(&dir.path().join("cache"));
        let mut archives = Vec::new();
        for (run, cached) in [("a", false), ("b", true)] {
            std::fs::create_dir(dir.path().join(run)).unwrap();
            let archive = dir.path().join(run).join("initramfs.cpio");
            let built = build(&contents, &archive, Some(&cache)).unwrap();
            assert_eq!(built.cached, cached, "{run}");
            assert_eq!(built.cache_error, None);
            assert!(built
                .missing_tools
                .contains(&"no-such-tool-nsconform".to_string()));
            let bytes = std::fs::read(&archive).unwrap();
            assert_eq!(bytes.len() as u64, built.bytes);
            archives.push(bytes);
        }
        assert!(archives[0] == archives[1], "the two archives differ");
        // Two archives, one after the other: the base's trailer, then the run's part.
        let text = String::from_utf8_lossy(&archives[0]);
        assert_eq!(text.matches("TRAILER!!!").count(), 2);
        let tail = &text[text.find("TRAILER!!!").unwrap()..];
        assert!(tail.contains("nsconform/scenarios/uts/x.toml"));
        assert!(tail.contains("nsconform/vm.json"));
    }
}
