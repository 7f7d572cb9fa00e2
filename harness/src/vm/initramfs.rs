//! What the guest boots from: an initramfs made of this machine's own files.
//!
//! It holds the running `nsconform` binary (at `/nsconform/nsconform`, also the guest's init),
//! the scenarios to run (under `/nsconform/scenarios`, with the names they have here), the
//! real userland tools the scenarios run — iproute2, util-linux, procps, coreutils, perl and
//! so on, found on this machine's `PATH` directories — with their shared libraries and the
//! dynamic loader, a few files of `/etc` (users and groups, `os-release`, iproute2's tables),
//! the kernel modules for link kinds and overlayfs, and the run's options (`/nsconform/vm.json`).
//! Busybox is not used: its applets (`ip`, `unshare`) behave differently from the real tools.
//!
//! The binary is dynamically linked and travels with its libraries like every other
//! program: no second, static build is needed, and the guest runs exactly the binary that was
//! started.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::guest::{GuestConfig, CONFIG_PATH, GUEST_BINARY, GUEST_SCENARIOS};
use super::libs::{self, LibsError};
use super::modules::{self, ModulesError};
use super::rootfs::{Rootfs, RootfsError};

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

/// Programs the guest gets when this machine has them: what the scenarios run, what the
/// harness itself runs, and common tools a new scenario is likely to use. A scenario's
/// `requires.commands` are added to these.
pub(crate) const TOOLS: &[&str] = &[
    // shells and coreutils
    "sh",
    "dash",
    "bash",
    "cat",
    "id",
    "stat",
    "ls",
    "mkdir",
    "rmdir",
    "rm",
    "touch",
    "chown",
    "chmod",
    "ln",
    "cp",
    "mv",
    "readlink",
    "realpath",
    "sleep",
    "timeout",
    "test",
    "[",
    "true",
    "false",
    "echo",
    "printf",
    "sort",
    "uniq",
    "head",
    "tail",
    "tr",
    "cut",
    "wc",
    "env",
    "uname",
    "kill",
    "seq",
    "tee",
    "basename",
    "dirname",
    "date",
    "mktemp",
    "nproc",
    "whoami",
    "sync",
    "stty",
    "dd",
    "df",
    "du",
    "yes",
    "mknod",
    "mkfifo",
    "chroot",
    "nice",
    "nohup",
    // text tools
    "grep",
    "sed",
    "awk",
    "find",
    "xargs",
    // util-linux
    "unshare",
    "nsenter",
    "lsns",
    "mount",
    "umount",
    "findmnt",
    "setpriv",
    "setsid",
    "prlimit",
    "pivot_root",
    "switch_root",
    "ipcmk",
    "ipcs",
    "ipcrm",
    "chrt",
    "taskset",
    "getopt",
    // procps
    "ps",
    "pgrep",
    "pkill",
    "sysctl",
    "pidof",
    "free",
    // networking
    "ip",
    "bridge",
    "ping",
    "hostname",
    "domainname",
    // modules (the kernel runs /sbin/modprobe to load a link kind on demand)
    "modprobe",
    "insmod",
    "lsmod",
    // perl, for System V IPC from a one-liner
    "perl",
];

/// Perl modules the scenarios load (with what they load in turn).
const PERL_MODULES: &[&str] = &["strict", "warnings", "IPC::SysV"];

/// Directories searched for the tools, in `PATH` order.
const SEARCH: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

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
}

/// Collect the guest's files and write them to `archive` as an uncompressed cpio (a stripped
/// copy of the binary is made beside it when `strip` is there).
pub(crate) fn build(contents: &Contents<'_>, archive: &Path) -> Result<Built, InitramfsError> {
    let mut rootfs = Rootfs::new();
    skeleton(&mut rootfs)?;
    let stripped = archive.with_file_name("nsconform");
    let binary = if strip(contents.binary, &stripped) {
        stripped.as_path()
    } else {
        contents.binary
    };
    rootfs.host_file_as(Path::new(GUEST_BINARY), binary)?;
    for lib in libs::needed_by(contents.binary)? {
        rootfs.host_path(&lib)?;
    }
    for (name, path) in contents.scenarios {
        let guest = Path::new(GUEST_SCENARIOS).join(format!("{name}.toml"));
        rootfs.host_file_as(&guest, path)?;
    }
    let mut missing_tools = Vec::new();
    let wanted: BTreeSet<&str> = TOOLS
        .iter()
        .copied()
        .chain(contents.extra_tools.iter().map(String::as_str))
        .collect();
    for tool in wanted {
        match find_tool(tool) {
            Some(path) => add_program(&mut rootfs, &path)?,
            None => missing_tools.push(tool.to_string()),
        }
    }
    if find_tool("perl").is_some() {
        for file in perl_files() {
            add_program(&mut rootfs, &file)?;
        }
    }
    for etc in ETC_FILES {
        if Path::new(etc).exists() {
            rootfs.host_path(Path::new(etc))?;
        }
    }
    if let Some(dir) = contents.modules {
        let release = dir.file_name().map(PathBuf::from).unwrap_or_default();
        let guest_dir = Path::new("/lib/modules").join(release);
        for file in modules::files_to_copy(dir)? {
            let relative = file.strip_prefix(dir).unwrap_or(&file);
            rootfs.host_file_as(&guest_dir.join(relative), &file)?;
        }
    }
    rootfs.bytes(
        Path::new(CONFIG_PATH),
        serde_json::to_vec_pretty(contents.config)?,
        0o644,
    )?;
    let file = std::fs::File::create(archive).map_err(|source| InitramfsError::Create {
        path: archive.to_path_buf(),
        source,
    })?;
    let bytes = rootfs.write_cpio(std::io::BufWriter::with_capacity(1 << 20, file))?;
    Ok(Built {
        entries: rootfs.len(),
        bytes,
        missing_tools,
    })
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
    // The merged-/usr links (`/bin -> usr/bin`...), so `/bin/sh` and the kernel's
    // `/sbin/modprobe` exist even though the tools were found in `/usr`.
    for top in ["/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"] {
        if let Ok(target) = std::fs::read_link(top) {
            rootfs.symlink(Path::new(top), &target)?;
        }
    }
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

/// The first executable file named `name` in the search directories.
pub(crate) fn find_tool(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    SEARCH
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| {
            std::fs::metadata(path)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The perl module files and XS objects [`PERL_MODULES`] load, as this machine's perl
/// reports them; empty when perl cannot say.
fn perl_files() -> Vec<PathBuf> {
    let mut command = Command::new("perl");
    for module in PERL_MODULES {
        command.arg(format!("-M{module}"));
    }
    command.args([
        "-e",
        r#"print "$_\n" for values(%INC), @DynaLoader::dl_shared_objects"#,
    ]);
    match command.output() {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| line.starts_with('/'))
            .map(PathBuf::from)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_found_in_the_system_directories() {
        let sh = find_tool("sh").unwrap();
        assert!(sh.ends_with("sh"), "{}", sh.display());
        assert_eq!(find_tool("no-such-tool-nsconform"), None);
    }

    #[test]
    fn perl_reports_the_ipc_module_when_perl_is_there() {
        if find_tool("perl").is_none() {
            return;
        }
        let files = perl_files();
        assert!(
            files.iter().any(|f| f.ends_with("IPC/SysV.pm")),
            "{files:?}"
        );
    }
}
