//! The guest's init: `nsconform vm --guest-init`, PID 1 inside the VM.
//!
//! The kernel starts it as `/init` (a link to `/nsconform/nsconform`, so `/proc/1/comm` says
//! `init` as on a booted machine) with the words after `--` on its command line as arguments
//! (`vm --guest-init`).
//!
//! It first leaves the initramfs's root: the kernel's `rootfs` cannot be `pivot_root`ed away
//! from, so init bind-mounts it onto `/.root`, moves that mount over `/` and `chroot`s into
//! it, as `switch_root` does. The root is then an ordinary mount at the top of the tree, so
//! scenarios can `pivot_root` in their own mount namespaces and create user namespaces (the
//! kernel refuses those to a process that looks chrooted). Then it mounts what a booted
//! Debian system has (`/proc`, `/sys`, `/dev` with `pts`, `shm` and `mqueue`, cgroup2 with
//! every controller enabled, a tmpfs `/run`; `/tmp` stays a directory of the root), sets the
//! hostname, brings `lo` up, and runs `nsconform run [--results /tmp/results.json] OPTIONS
//! scenarios` with the options from `/nsconform/vm.json` and `NSCONFORM_TIMEOUT_SCALE` from
//! the kernel command line (the kernel hands unknown `NAME=value` parameters to init as its
//! environment). `--results` only when the host asked for a results file: writing one
//! probes every feature, which takes seconds under TCG. The run prints to the console
//! (`ttyS0`), which the host shows as progress. Init reaps every orphan meanwhile, then sends
//! the results file (or nothing, with the run's exit status) over the second serial port
//! (`ttyS1`, raw mode, framed as in `frame.rs`) and powers the machine off.
//!
//! With `boot_only` in the options (`nsconform vm --boot-only`), init powers off as soon as
//! it has read them: the boot alone, for comparison.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, ExitCode};

use nix::mount::{mount, MsFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::frame;

/// Where the harness binary is in the guest (also its init).
pub(crate) const GUEST_BINARY: &str = "/nsconform/nsconform";
/// Where the scenarios are in the guest.
pub(crate) const GUEST_SCENARIOS: &str = "/nsconform/scenarios";
/// The run's options in the guest.
pub(crate) const CONFIG_PATH: &str = "/nsconform/vm.json";
/// The results file inside the guest.
const RESULTS_FILE: &str = "/tmp/results.json";
/// The serial port the results go out on (the second one; the first is the console).
const RESULTS_PORT: &str = "/dev/ttyS1";
/// `PATH` inside (the kernel starts init without one).
const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The variable that scales the scenarios' timeouts (read by the supervisor).
pub(crate) const TIMEOUT_SCALE_ENV: &str = "NSCONFORM_TIMEOUT_SCALE";
/// The console line that tells the host init is running (the kernel has booted).
pub(crate) const BANNER: &str = "nsconform-vm: init started";
/// The console line just before `nsconform run` starts (the end of the boot, for the host).
pub(crate) const RUNNING: &str = "nsconform-vm: running the suite";
/// The console line before the results are sent.
pub(crate) const SENDING: &str = "nsconform-vm: sending results";
/// The console line just before init powers the machine off.
pub(crate) const POWER_OFF: &str = "nsconform-vm: powering off";

/// Errors of the guest's init.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GuestError {
    /// Not PID 1: refusing to remount and power off the machine this runs on.
    #[error("--guest-init runs only as PID 1 inside the VM")]
    NotInit,
    /// A system call of the set-up failed.
    #[error("{what}: {errno}")]
    Setup {
        /// What was being done.
        what: String,
        /// The error.
        errno: nix::Error,
    },
    /// The options file is missing or garbled.
    #[error("{CONFIG_PATH}: {0}")]
    Config(String),
    /// The run could not be started.
    #[error("cannot start nsconform run: {0}")]
    Spawn(std::io::Error),
    /// The results could not be sent.
    #[error("{RESULTS_PORT}: {0}")]
    Port(String),
}

/// The run's options, written by the host into the initramfs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct GuestConfig {
    /// Options for `nsconform run` (`--jobs`, `--verbose`); the scenarios are all shipped ones.
    pub(crate) run_args: Vec<String>,
    /// The guest's hostname.
    pub(crate) hostname: String,
    /// Whether the run writes a results file to send back (`nsconform vm --results`): the
    /// run then probes every feature for it. Without it, only the features the scenarios
    /// need are probed and the run's exit status comes back alone.
    pub(crate) results: bool,
    /// Power off as soon as init starts (`nsconform vm --boot-only`: the bare boot).
    pub(crate) boot_only: bool,
}

/// Run as the guest's init; powers the machine off and never returns normally.
pub(crate) fn init() -> ExitCode {
    if nix::unistd::getpid() != Pid::from_raw(1) {
        eprintln!("nsconform vm: {}", GuestError::NotInit);
        return ExitCode::from(2);
    }
    say(&format!("{BANNER} ({:.2} s after boot)", uptime()));
    let config = read_config();
    if config.as_ref().is_ok_and(|config| config.boot_only) {
        return power_off();
    }
    let exit = match config.and_then(|config| prepare(&config).and_then(|()| run_suite(&config))) {
        Ok(exit) => exit,
        Err(err) => {
            say(&format!("nsconform-vm: {err}"));
            2
        }
    };
    let payload = std::fs::read(RESULTS_FILE).unwrap_or_default();
    say(&format!("{SENDING} ({} bytes, exit {exit})", payload.len()));
    if let Err(err) = send(&frame::encode(exit, &payload)) {
        say(&format!("nsconform-vm: {err}"));
    }
    power_off()
}

/// Flush the file systems and power the machine off; returns only when that failed.
fn power_off() -> ExitCode {
    say(&format!("{POWER_OFF} ({:.2} s after boot)", uptime()));
    nix::unistd::sync();
    let err = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    // Only reached when power-off failed; exiting makes the kernel panic, and `panic=-1`
    // with QEMU's `-no-reboot` stops the VM all the same.
    say(&format!("nsconform-vm: power off failed: {err:?}"));
    ExitCode::FAILURE
}

/// The run's options, from the initramfs.
fn read_config() -> Result<GuestConfig, GuestError> {
    let text =
        std::fs::read_to_string(CONFIG_PATH).map_err(|e| GuestError::Config(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| GuestError::Config(e.to_string()))
}

/// Switch to a real root mount and mount the usual file systems.
fn prepare(config: &GuestConfig) -> Result<(), GuestError> {
    switch_root()?;
    mount_all()?;
    nix::unistd::sethostname(&config.hostname).map_err(|errno| setup("sethostname", errno))?;
    enable_controllers();
    // A booted machine has its loopback up; the scenarios' stand-in hosts get their own.
    // (The ioctl `ip link set lo up` amounts to, without starting a program under TCG.)
    if let Err(err) = crate::sys::set_loopback_up() {
        say(&format!("nsconform-vm: cannot bring lo up: {err}"));
    }
    Ok(())
}

fn setup(what: &str, errno: nix::Error) -> GuestError {
    GuestError::Setup {
        what: what.to_string(),
        errno,
    }
}

/// Move a bind mount of the initramfs over `/` and enter it (see the module docs).
fn switch_root() -> Result<(), GuestError> {
    let none: Option<&str> = None;
    mount(
        Some("/"),
        "/.root",
        none,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        none,
    )
    .map_err(|e| setup("bind-mount / on /.root", e))?;
    nix::unistd::chdir("/.root").map_err(|e| setup("chdir /.root", e))?;
    mount(Some("."), "/", none, MsFlags::MS_MOVE, none)
        .map_err(|e| setup("move /.root over /", e))?;
    nix::unistd::chroot(".").map_err(|e| setup("chroot", e))?;
    nix::unistd::chdir("/").map_err(|e| setup("chdir /", e))
}

/// The file systems a booted Debian system has mounted.
fn mount_all() -> Result<(), GuestError> {
    let plain = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let table: [(&str, &str, &str, MsFlags, Option<&str>); 8] = [
        ("proc", "/proc", "proc", plain, None),
        ("sysfs", "/sys", "sysfs", plain, None),
        (
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MsFlags::MS_NOSUID,
            Some("mode=755"),
        ),
        (
            "devpts",
            "/dev/pts",
            "devpts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("gid=5,mode=620,ptmxmode=000"),
        ),
        (
            "tmpfs",
            "/dev/shm",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777"),
        ),
        ("mqueue", "/dev/mqueue", "mqueue", plain, None),
        (
            "cgroup2",
            "/sys/fs/cgroup",
            "cgroup2",
            plain,
            Some("nsdelegate,memory_recursiveprot"),
        ),
        (
            "tmpfs",
            "/run",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=755"),
        ),
    ];
    for (source, target, fstype, flags, data) in table {
        let _ = std::fs::create_dir_all(target);
        let mounted = mount(Some(source), target, Some(fstype), flags, data);
        // Older kernels lack memory_recursiveprot; mount cgroup2 without it then.
        let mounted = match (mounted, fstype) {
            (Err(_), "cgroup2") => mount(
                Some(source),
                target,
                Some(fstype),
                flags,
                Some("nsdelegate"),
            ),
            (result, _) => result,
        };
        mounted.map_err(|e| setup(&format!("mount {fstype} on {target}"), e))?;
    }
    Ok(())
}

/// Enable every cgroup controller for the root's children, as systemd does.
fn enable_controllers() {
    let root = Path::new("/sys/fs/cgroup");
    if let Ok(controllers) = std::fs::read_to_string(root.join("cgroup.controllers")) {
        for controller in controllers.split_whitespace() {
            let _ = std::fs::write(
                root.join("cgroup.subtree_control"),
                format!("+{controller}"),
            );
        }
    }
}

/// Run the suite and reap orphans until it ends; its exit status.
fn run_suite(config: &GuestConfig) -> Result<u8, GuestError> {
    say(&format!("{RUNNING} ({:.2} s after boot)", uptime()));
    let mut command = Command::new(GUEST_BINARY);
    command.arg("run");
    if config.results {
        command.arg("--results").arg(RESULTS_FILE);
    }
    let child = command
        .args(&config.run_args)
        .arg("scenarios")
        .current_dir(
            Path::new(GUEST_SCENARIOS)
                .parent()
                .unwrap_or(Path::new("/")),
        )
        .env_clear()
        .env("PATH", GUEST_PATH)
        .env("HOME", "/root")
        .env(TIMEOUT_SCALE_ENV, timeout_scale())
        .spawn()
        .map_err(GuestError::Spawn)?;
    let pid = Pid::from_raw(child.id() as i32);
    loop {
        // As PID 1, every orphaned process ends up here: reap them all.
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(done, code)) if done == pid => return Ok(code as u8),
            Ok(WaitStatus::Signaled(done, signal, _)) if done == pid => {
                return Ok(128 + signal as u8)
            }
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(errno) => return Err(setup("waitpid", errno)),
        }
    }
}

/// `NSCONFORM_TIMEOUT_SCALE` as the kernel command line set it for init (the host picks it
/// per boot: TCG is slower than KVM), else 1.
fn timeout_scale() -> String {
    std::env::var(TIMEOUT_SCALE_ENV)
        .ok()
        .filter(|value| value.parse::<u32>().is_ok())
        .unwrap_or_else(|| "1".to_string())
}

/// Write `bytes` to the results port, in raw mode so no byte is translated.
fn send(bytes: &[u8]) -> Result<(), GuestError> {
    use nix::sys::termios::{cfmakeraw, tcdrain, tcgetattr, tcsetattr, SetArg};
    let port = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(RESULTS_PORT)
        .map_err(|e| GuestError::Port(e.to_string()))?;
    let mut termios = tcgetattr(&port).map_err(|e| GuestError::Port(e.to_string()))?;
    cfmakeraw(&mut termios);
    tcsetattr(&port, SetArg::TCSANOW, &termios).map_err(|e| GuestError::Port(e.to_string()))?;
    (&port)
        .write_all(bytes)
        .map_err(|e| GuestError::Port(e.to_string()))?;
    tcdrain(&port).map_err(|e| GuestError::Port(e.to_string()))
}

/// Seconds since boot (`CLOCK_BOOTTIME`; `/proc` is not mounted yet when it is first asked).
fn uptime() -> f64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_BOOTTIME)
        .map_or(0.0, |t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
}

/// A line on the console (init's standard error); a console that is gone is not an error.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_round_trips_as_json() {
        let config = GuestConfig {
            run_args: vec!["--jobs".into(), "2".into()],
            hostname: "nsconform-vm".into(),
            results: true,
            boot_only: false,
        };
        let text = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<GuestConfig>(&text).unwrap(), config);
    }

    #[test]
    fn init_refuses_to_run_outside_the_vm() {
        assert_eq!(init(), ExitCode::from(2));
    }
}
