//! The programs the guest gets: which ones, where they are found on this machine, and the
//! perl modules the scenarios load.

use std::path::{Path, PathBuf};
use std::process::Command;

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
pub(crate) fn perl_files() -> Vec<PathBuf> {
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
