//! The QEMU command line, and whether KVM can be used.
//!
//! The machine is a `q35` with no default devices: the kernel and the initramfs are loaded
//! by QEMU itself (`-kernel`, `-initrd`; an ELF `vmlinux` boots through its PVH entry), the
//! first serial port is the console (QEMU's standard output, which the host reads for
//! progress), and the second writes into a file on the host: the results port. `-no-reboot`
//! turns the guest's reboot (and a kernel panic, with `panic=-1`) into QEMU exiting.
//! (`microvm` was tried: stock kernels hang there calibrating the TSC under TCG with PVH.)
//!
//! KVM is used when `/dev/kvm` opens and QEMU can actually run the guest with it; some hosts
//! (nested or restricted virtualisation) have a `/dev/kvm` that fails at the first MSR or
//! instruction it cannot handle. The caller tries KVM first and falls back to TCG, QEMU's
//! emulator, when the guest does not come up (see `host.rs`).
//!
//! Under TCG the guest runs with `norandmaps` (no address space randomisation for its
//! processes). QEMU keys the code it translates by the guest's virtual address as well as the
//! physical one, so with randomised mappings every new process gets the shared libraries and
//! the harness at new addresses and has all of their code translated again; without, the
//! translations of one process serve the next. Exec-heavy runs (every scenario step is a few
//! `fork` + `exec`s) take about half the time. The kernel's own randomisation (KASLR) and
//! everything namespaces do are unchanged; under KVM, where this costs nothing, the guest
//! keeps it.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use super::guest::TIMEOUT_SCALE_ENV;
use super::kernel::Kernel;

/// The QEMU binary.
pub(crate) const QEMU: &str = "qemu-system-x86_64";

/// How QEMU runs the guest's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// QEMU's emulator (about 20 times slower for the commands the scenarios run).
    Tcg,
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
        })
    }
}

/// The guest's size and extras.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    /// Virtual CPUs.
    pub(crate) cpus: usize,
    /// Memory in MiB.
    pub(crate) memory_mib: u32,
    /// Extra kernel parameters (before the `--` that ends the kernel's own).
    pub(crate) append: Option<String>,
    /// `NSCONFORM_TIMEOUT_SCALE` for the run inside.
    pub(crate) timeout_scale: u32,
}

/// The kernel command line: console on the first port, no reboot on panic, `norandmaps`
/// under TCG (see the module docs), and the arguments of the guest's init (`/init`, the
/// harness) after `--`.
/// `NAME=value` words the kernel does not know become init's environment: that is how the
/// timeout scale, which depends on the accelerator of this boot, reaches the guest.
pub(crate) fn kernel_cmdline(extra: Option<&str>, timeout_scale: u32, accel: Accel) -> String {
    let mut line = format!(
        "console=ttyS0 quiet panic=-1 random.trust_cpu=on {TIMEOUT_SCALE_ENV}={timeout_scale}"
    );
    if accel == Accel::Tcg {
        line.push_str(" norandmaps");
    }
    if let Some(extra) = extra.filter(|e| !e.trim().is_empty()) {
        line.push(' ');
        line.push_str(extra.trim());
    }
    line.push_str(" -- vm --guest-init");
    line
}

/// The QEMU command for one boot. Standard input is the caller's to set (null).
pub(crate) fn command(
    kernel: &Kernel,
    initrd: &Path,
    results_port: &Path,
    accel: Accel,
    machine: &Machine,
) -> Command {
    let mut command = Command::new(QEMU);
    let (accel_name, cpu) = match accel {
        Accel::Kvm => ("kvm", "host"),
        Accel::Tcg => ("tcg", "max"),
    };
    command
        .args(["-M", "q35", "-accel", accel_name, "-cpu", cpu])
        .args(["-smp", &machine.cpus.max(1).to_string()])
        .args(["-m", &format!("{}M", machine.memory_mib)])
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        .args(["-serial", "stdio"])
        .arg("-serial")
        .arg(file_chardev(results_port))
        .arg("-kernel")
        .arg(&kernel.image)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            &kernel_cmdline(machine.append.as_deref(), machine.timeout_scale, accel),
        ]);
    command
}

/// `file:PATH` for `-serial` (a comma in the path is doubled, as QEMU's option syntax wants).
fn file_chardev(path: &Path) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut spec = b"file:".to_vec();
    for byte in path.as_os_str().as_bytes() {
        spec.push(*byte);
        if *byte == b',' {
            spec.push(b',');
        }
    }
    OsString::from_vec(spec)
}

/// Why KVM cannot even be tried here, or `None` when `/dev/kvm` opens for reading and
/// writing (QEMU may still fail with it; the boot tells).
pub(crate) fn kvm_unavailable() -> Option<String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => None,
        Err(err) => Some(format!("/dev/kvm: {err}")),
    }
}

/// Whether QEMU is installed, with its version line.
pub(crate) fn version() -> Result<String, String> {
    let output = Command::new(QEMU)
        .arg("--version")
        .output()
        .map_err(|err| format!("{QEMU}: {err} (install it: apt-get install qemu-system-x86)"))?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::kernel::ImageKind;
    use std::path::PathBuf;

    #[test]
    fn init_arguments_come_last_after_the_double_dash() {
        assert_eq!(
            kernel_cmdline(None, 20, Accel::Tcg),
            "console=ttyS0 quiet panic=-1 random.trust_cpu=on NSCONFORM_TIMEOUT_SCALE=20 \
             norandmaps -- vm --guest-init"
        );
        assert!(kernel_cmdline(Some(" mitigations=off "), 1, Accel::Kvm)
            .contains("SCALE=1 mitigations=off -- vm"));
    }

    #[test]
    fn commas_in_the_results_path_are_doubled() {
        assert_eq!(
            file_chardev(Path::new("/tmp/a,b/results.serial")),
            "file:/tmp/a,,b/results.serial"
        );
    }

    #[test]
    fn the_command_has_the_kernel_initrd_and_two_serial_ports() {
        let kernel = Kernel {
            image: PathBuf::from("/k/vmlinux"),
            kind: ImageKind::Elf,
            release: None,
            modules: None,
        };
        let machine = Machine {
            cpus: 2,
            memory_mib: 1024,
            append: None,
            timeout_scale: 20,
        };
        let command = command(
            &kernel,
            Path::new("/w/initrd.cpio"),
            Path::new("/w/results.serial"),
            Accel::Tcg,
            &machine,
        );
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let joined = args.join(" ");
        for expected in [
            "-accel tcg -cpu max",
            "-smp 2",
            "-m 1024M",
            "-serial stdio -serial file:/w/results.serial",
            "-kernel /k/vmlinux -initrd /w/initrd.cpio",
            "-no-reboot",
        ] {
            assert!(joined.contains(expected), "{expected:?} not in {joined}");
        }
    }
}
