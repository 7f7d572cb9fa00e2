//! Debian trees, made by `debootstrap`.
//!
//! `debootstrap --variant=minbase --include=PACKAGES SUITE DIR MIRROR` downloads and unpacks
//! a minimal Debian (essential packages plus apt) with the tools scenarios use: `iproute2`,
//! `util-linux`, `bubblewrap`, `procps`, `hostname`, `iputils-ping`. It takes one to three
//! minutes. Its progress goes to standard error as it comes. It runs in a process group of
//! its own, so Ctrl-C reaches only nsconform, which then ends the whole group (SIGTERM, then
//! SIGKILL after 5 s) and reports [`DebianError::Interrupted`]; the caller removes the tree.
//! It also runs in PID and mount namespaces of its own that die with nsconform, so even a
//! SIGKILLed build leaves no `debootstrap`, `dpkg` or mount behind (see [`contained`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Packages added to `minbase`.
pub(crate) const INCLUDE: &str = "iproute2,util-linux,bubblewrap,procps,hostname,iputils-ping";

/// Packages whose versions go into the stamp.
pub(crate) const STAMPED_PACKAGES: [&str; 3] = ["util-linux", "iproute2", "bubblewrap"];

/// Lines of `debootstrap.log` shown when it fails.
const LOG_TAIL_LINES: usize = 25;

/// How long `debootstrap` gets to stop after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// Errors making a Debian tree.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DebianError {
    /// `debootstrap` is not installed.
    #[error("debootstrap not found (install it: `apt-get install debootstrap`)")]
    Missing,
    /// `debootstrap` could not be started or waited for.
    #[error("cannot run debootstrap: {0}")]
    Spawn(std::io::Error),
    /// `debootstrap` failed; the end of its log is attached.
    #[error("debootstrap {suite} failed ({status}); last lines of {log}:\n{tail}")]
    Failed {
        /// The suite.
        suite: String,
        /// How it ended.
        status: std::process::ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The last lines of the log (or a note that there is none).
        tail: String,
    },
    /// Ctrl-C, SIGTERM or SIGHUP arrived; `debootstrap` was stopped.
    #[error("interrupted")]
    Interrupted,
}

/// Whether Ctrl-C, SIGTERM or SIGHUP arrived. Made with [`Interrupt::catch`] (the signals
/// are blocked in the calling thread, which must be the only one so far, and waited for on a
/// thread of its own) or [`Interrupt::never`] (default for callers that build only fast
/// trees).
#[derive(Debug, Clone, Default)]
pub(crate) struct Interrupt {
    fired: Arc<AtomicBool>,
}

impl Interrupt {
    /// An interrupt that never fires: signals keep their usual effect.
    pub(crate) fn never() -> Interrupt {
        Interrupt::default()
    }

    /// Catch SIGINT, SIGTERM and SIGHUP from now on for the rest of the process. Falls back to
    /// [`Interrupt::never`] if the signals cannot be blocked.
    pub(crate) fn catch() -> Interrupt {
        use nix::sys::signal::{SigSet, Signal};
        let interrupt = Interrupt::default();
        let mut set = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(signal);
        }
        if set.thread_block().is_ok() {
            let fired = Arc::clone(&interrupt.fired);
            std::thread::spawn(move || {
                while set.wait().is_ok() {
                    fired.store(true, Ordering::SeqCst);
                }
            });
        }
        interrupt
    }

    /// Whether a signal arrived.
    pub(crate) fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

/// Where `debootstrap` is: on `PATH`, else in `/usr/sbin` or `/sbin` (not on an ordinary
/// user's `PATH`).
fn find_debootstrap() -> Option<PathBuf> {
    find_program("debootstrap")
}

/// `name` on `PATH`, or in `/usr/sbin` or `/sbin`.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The command that runs `debootstrap` so that nothing of it outlives this process, even
/// when this process is SIGKILLed: `unshare --pid --fork --mount --kill-child=SIGKILL`, which
/// itself dies with this process (`PR_SET_PDEATHSIG`). `debootstrap` is then PID 1 of a
/// PID namespace of its own, so its death takes `dpkg` and everything else it started with
/// it, and the `/proc` and `/sys` it mounts in the tree live in a mount namespace of its own,
/// gone with them. Without `unshare(1)`, `debootstrap` itself still dies with this process.
fn contained(debootstrap: &Path) -> Command {
    let mut command = match find_program("unshare") {
        Some(unshare) => {
            let mut command = Command::new(unshare);
            command
                .args(["--pid", "--fork", "--mount", "--kill-child=SIGKILL", "--"])
                .arg(debootstrap);
            command
        }
        None => Command::new(debootstrap),
    };
    crate::sys::die_with_this_process(&mut command);
    command
}

/// The last `lines` lines of `path`, or a note saying why there are none.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("(no log: {err})"),
    }
}

/// Run `debootstrap` for `suite` into `target` (which exists and is empty) from `mirror`,
/// its output on standard error. Stops it when `interrupt` fires.
pub(crate) fn debootstrap(
    suite: &str,
    target: &Path,
    mirror: &str,
    interrupt: &Interrupt,
) -> Result<(), DebianError> {
    use std::os::fd::AsFd;
    use std::os::unix::process::CommandExt;
    let program = find_debootstrap().ok_or(DebianError::Missing)?;
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(DebianError::Spawn)?;
    let mut command = contained(&program);
    command
        .arg("--variant=minbase")
        .arg(format!("--include={INCLUDE}"))
        .arg(suite)
        .arg(target)
        .arg(mirror)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stderr))
        .process_group(0);
    crate::sys::empty_signal_mask_before_exec(&mut command);
    let mut child = command.spawn().map_err(DebianError::Spawn)?;
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let status = loop {
        if let Some(status) = child.try_wait().map_err(DebianError::Spawn)? {
            break status;
        }
        if interrupt.fired() {
            use nix::sys::signal::{killpg, Signal};
            let _ = killpg(group, Signal::SIGTERM);
            let deadline = Instant::now() + TERM_GRACE;
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
            // Whatever of the group is left (dpkg in the chroot, say) goes now.
            let _ = killpg(group, Signal::SIGKILL);
            let _ = child.wait();
            return Err(DebianError::Interrupted);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if status.success() {
        return Ok(());
    }
    let log = target.join("debootstrap").join("debootstrap.log");
    Err(DebianError::Failed {
        suite: suite.to_string(),
        status,
        tail: tail(&log, LOG_TAIL_LINES),
        log,
    })
}

/// Delete the downloaded `.deb` files `debootstrap` leaves in `var/cache/apt/archives` of
/// the tree at `root` (about 35 MB; what `apt-get clean` would do). Returns the bytes freed.
pub(crate) fn remove_downloads(root: &Path) -> u64 {
    let dir = root.join("var/cache/apt/archives");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|ext| ext == "deb"))
        .filter_map(|e| {
            let size = e.metadata().ok()?.len();
            std::fs::remove_file(e.path()).ok().map(|()| size)
        })
        .sum()
}

/// Versions of [`STAMPED_PACKAGES`] installed in the tree at `root`, from its dpkg database
/// (`dpkg-query --admindir`). Empty when `dpkg-query` cannot be run.
pub(crate) fn package_versions(root: &Path) -> BTreeMap<String, String> {
    let output = Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            root.join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f", "${Package}\t${Version}\n"])
        .args(STAMPED_PACKAGES)
        .env("LC_ALL", "C")
        .stderr(Stdio::null())
        .output();
    match output {
        // dpkg-query exits 1 when a package is unknown; the others are still listed.
        Ok(output) => super::stamp::parse_dpkg_query(&String::from_utf8_lossy(&output.stdout)),
        Err(_) => BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let log = tmp.path().join("log");
        std::fs::write(&log, "1\n2\n3\n4\n").expect("log");
        assert_eq!(tail(&log, 2), "3\n4");
        assert_eq!(tail(&log, 10), "1\n2\n3\n4");
        assert!(tail(&tmp.path().join("none"), 3).starts_with("(no log"));
    }

    #[test]
    fn downloads_are_removed_and_nothing_else() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let archives = tmp.path().join("var/cache/apt/archives");
        std::fs::create_dir_all(archives.join("partial")).expect("dirs");
        std::fs::write(archives.join("bash_5.2_amd64.deb"), "12345").expect("deb");
        std::fs::write(archives.join("lock"), "").expect("lock");
        assert_eq!(remove_downloads(tmp.path()), 5);
        assert!(archives.join("lock").exists() && archives.join("partial").is_dir());
        assert!(!archives.join("bash_5.2_amd64.deb").exists());
    }

    #[test]
    fn versions_of_a_tree_without_dpkg_database_are_empty() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(package_versions(tmp.path()).is_empty());
    }

    #[test]
    fn an_interrupt_made_with_never_does_not_fire() {
        assert!(!Interrupt::never().fired());
    }
}
