//! Unpacking downloaded kernel packages into the cache layout (see `cache.rs`).
//!
//! The packages are unpacked with `dpkg-deb -x` into a staging directory next to the
//! final one (never into `/`, and nothing is configured or run from them). Up to 6.12 the
//! image is `boot/vmlinuz-RELEASE` with `boot/config-RELEASE` and the modules in
//! `lib/modules/RELEASE`; from 7.x everything is in `usr/lib/modules/RELEASE`
//! (`vmlinuz.unsigned` or `vmlinuz`, `config`, `System.map`). The image, config and map
//! go to the top of the kernel's directory and the rest of the modules directory becomes
//! `modules/RELEASE`. The host's `depmod` then writes `modules.dep` there (the packages
//! ship none: it is made on installation), so `modprobe` works in a guest that mounts the
//! tree as `/lib/modules`. Then `vmlinux` is extracted (see [`extract_vmlinux`]), the record
//! is written, and the directory replaces any previous one of the same release.

use super::bzimage::find_payloads;
use super::cache::{self, CacheError, KernelRecord, PackageRecord};
use super::decompress::decompress;
use super::resolve::Resolved;
use crate::elf::pvh_entry;
use std::path::{Path, PathBuf};
use std::process::Command;

/// At most this many payload candidates are decompressed before giving up on `vmlinux`.
const MAX_TRIES: usize = 4;

/// Errors of unpacking.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InstallError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `dpkg-deb` could not run or failed.
    #[error("dpkg-deb -x {deb} failed: {detail}")]
    Unpack {
        /// The package file.
        deb: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The packages hold no kernel image for the release.
    #[error("the packages of {release} contain no vmlinuz")]
    NoImage {
        /// The release.
        release: String,
    },
    /// The record could not be written.
    #[error(transparent)]
    Record(#[from] CacheError),
}

/// What happened to `vmlinux`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Vmlinux {
    /// Extracted: the payload's compression and the PVH entry.
    Extracted {
        /// Compression of the payload.
        compression: &'static str,
        /// PVH entry address.
        entry: u32,
        /// Size of the ELF.
        size: usize,
    },
    /// Not extracted, and why.
    Missing(String),
}

/// Unpack `debs` (the resolved kernel's packages, downloaded into `staging/debs`) and
/// move the result to `kernels_dir/RELEASE`. `staging` is removed on success.
pub(crate) fn install(
    kernels_dir: &Path,
    staging: &Path,
    resolved: &Resolved,
    debs: &[PathBuf],
) -> Result<(KernelRecord, Vmlinux), InstallError> {
    let release = &resolved.release;
    let root = staging.join("root");
    let out = staging.join("out");
    for dir in [&root, &out] {
        create_dir(dir)?;
    }
    for deb in debs {
        unpack(deb, &root)?;
    }
    let modules = ["usr/lib/modules", "lib/modules"]
        .iter()
        .map(|d| root.join(d).join(release))
        .find(|d| d.is_dir());
    let pick = |candidates: Vec<PathBuf>| candidates.into_iter().find(|p| p.is_file());
    let in_modules = |name: &str| modules.iter().map(|m| m.join(name)).collect::<Vec<_>>();
    let boot = |name: &str| root.join("boot").join(format!("{name}-{release}"));

    let vmlinuz = pick(
        [
            vec![boot("vmlinuz")],
            in_modules("vmlinuz.unsigned"),
            in_modules("vmlinuz"),
        ]
        .concat(),
    )
    .ok_or_else(|| InstallError::NoImage {
        release: release.clone(),
    })?;
    rename(&vmlinuz, &out.join("vmlinuz"))?;
    for name in ["config", "System.map"] {
        if let Some(file) = pick([vec![boot(name)], in_modules(name)].concat()) {
            rename(&file, &out.join(name))?;
        }
    }
    for leftover in ["vmlinuz", "vmlinuz.unsigned"] {
        // A signed and an unsigned image in the same tree: keep one.
        for file in in_modules(leftover).into_iter().filter(|f| f.is_file()) {
            std::fs::remove_file(&file)
                .map_err(|source| InstallError::Io { path: file, source })?;
        }
    }
    let mut depmod_ok = false;
    if let Some(modules) = &modules {
        let target = out.join("modules").join(release);
        create_dir(&out.join("modules"))?;
        rename(modules, &target)?;
        depmod_ok = depmod(&out, release);
    }

    let vmlinux = extract_vmlinux(&out.join("vmlinuz"), &out.join("vmlinux"))?;
    let record = record(resolved, &vmlinux, depmod_ok);
    cache::write_record(&out, &record)?;

    let dest = kernels_dir.join(release);
    if dest.exists() {
        rename(&dest, &staging.join("previous"))?;
    }
    rename(&out, &dest)?;
    remove_dir(staging)?;
    Ok((record, vmlinux))
}

/// Decompress `vmlinuz`'s payload to `dest` if it is an ELF with a PVH entry; otherwise
/// say why not (the VM runner then boots `vmlinuz`).
pub(crate) fn extract_vmlinux(vmlinuz: &Path, dest: &Path) -> Result<Vmlinux, InstallError> {
    let image = std::fs::read(vmlinuz).map_err(|source| InstallError::Io {
        path: vmlinuz.to_path_buf(),
        source,
    })?;
    let payloads = match find_payloads(&image) {
        Ok(payloads) => payloads,
        Err(err) => return Ok(Vmlinux::Missing(err.to_string())),
    };
    let mut reasons = Vec::new();
    for payload in payloads.iter().take(MAX_TRIES) {
        let compression = payload.compression.name();
        let elf = match decompress(payload.compression, payload.data) {
            Ok(elf) => elf,
            Err(err) => {
                reasons.push(format!("at {:#x}: {err}", payload.offset));
                continue;
            }
        };
        match pvh_entry(&elf) {
            Ok(entry) => {
                std::fs::write(dest, &elf).map_err(|source| InstallError::Io {
                    path: dest.to_path_buf(),
                    source,
                })?;
                return Ok(Vmlinux::Extracted {
                    compression,
                    entry,
                    size: elf.len(),
                });
            }
            Err(err) => reasons.push(format!(
                "{compression} payload at {:#x}: {err}",
                payload.offset
            )),
        }
    }
    Ok(Vmlinux::Missing(reasons.join("; ")))
}

/// The record of an installed kernel.
fn record(resolved: &Resolved, vmlinux: &Vmlinux, depmod: bool) -> KernelRecord {
    let (compression, pvh_entry, vmlinux_missing) = match vmlinux {
        Vmlinux::Extracted {
            compression, entry, ..
        } => (
            Some(compression.to_string()),
            Some(format!("{entry:#x}")),
            None,
        ),
        Vmlinux::Missing(why) => (None, None, Some(why.clone())),
    };
    KernelRecord {
        name: resolved.image.name.clone(),
        release: resolved.release.clone(),
        flavour: resolved.flavour,
        version: resolved.image.version.clone(),
        suite: resolved.image.suite.clone(),
        size: resolved.download_size(),
        packages: resolved
            .parts
            .iter()
            .map(|p| PackageRecord {
                name: p.name.clone(),
                version: p.version.clone(),
                suite: p.suite.clone(),
                size: p.size,
                sha256: p.sha256.clone(),
            })
            .collect(),
        compression,
        pvh_entry,
        vmlinux_missing,
        depmod,
    }
}

/// `dpkg-deb -x DEB DIR`.
fn unpack(deb: &Path, dir: &Path) -> Result<(), InstallError> {
    let failed = |detail: String| InstallError::Unpack {
        deb: deb.to_path_buf(),
        detail,
    };
    let output = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(dir)
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// Run the host's `depmod` on `dir/modules/RELEASE`. depmod looks in
/// `BASE/lib/modules/RELEASE` (or `BASE/usr/lib/modules/...` in newer kmod), so `lib` and
/// `usr/lib` are made links to `dir` for the run. Returns whether it worked; a warning is
/// printed when not (the tree is still usable with `insmod`).
fn depmod(dir: &Path, release: &str) -> bool {
    let links = [dir.join("lib"), dir.join("usr")];
    let made = std::os::unix::fs::symlink(".", &links[0]).is_ok()
        && std::os::unix::fs::symlink(".", &links[1]).is_ok();
    let result = if made {
        Command::new("depmod")
            .arg("-b")
            .arg(dir)
            .arg(release)
            .output()
    } else {
        Err(std::io::Error::other(
            "cannot link lib to the kernel directory",
        ))
    };
    for link in &links {
        let _ = std::fs::remove_file(link);
    }
    match result {
        Ok(output) if output.status.success() => true,
        Ok(output) => {
            eprintln!(
                "warning: depmod failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            false
        }
        Err(err) => {
            eprintln!("warning: cannot run depmod ({err}); no modules.dep for {release}");
            false
        }
    }
}

/// `mkdir -p`.
fn create_dir(path: &Path) -> Result<(), InstallError> {
    std::fs::create_dir_all(path).map_err(|source| InstallError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `rm -rf`, when there.
pub(crate) fn remove_dir(path: &Path) -> Result<(), InstallError> {
    match std::fs::remove_dir_all(path) {
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => Err(InstallError::Io {
            path: path.to_path_buf(),
            source,
        }),
        _ => Ok(()),
    }
}

/// `mv` within one file system.
fn rename(from: &Path, to: &Path) -> Result<(), InstallError> {
    std::fs::rename(from, to).map_err(|source| InstallError::Io {
        path: from.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::super::bzimage::tests::synthetic_bzimage;
    use super::*;
    use crate::elf::tests::{pvh_notes, tiny_elf};

    #[test]
    fn extracts_a_pvh_elf_from_a_bzimage() {
        let elf = tiny_elf(&pvh_notes(0x0100_0970));
        let stream = ruzstd::encoding::compress_to_vec(
            &elf[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let size = u32::try_from(elf.len()).expect("small");
        let tmp = tempfile::tempdir().expect("tempdir");
        let vmlinuz = tmp.path().join("vmlinuz");
        std::fs::write(&vmlinuz, synthetic_bzimage(&stream, size, true)).expect("write");
        let vmlinux = tmp.path().join("vmlinux");
        let result = extract_vmlinux(&vmlinuz, &vmlinux).expect("runs");
        assert_eq!(
            result,
            Vmlinux::Extracted {
                compression: "zstd",
                entry: 0x0100_0970,
                size: elf.len()
            }
        );
        assert_eq!(std::fs::read(&vmlinux).expect("written"), elf);
    }

    #[test]
    fn keeps_only_vmlinuz_when_the_elf_has_no_pvh_note() {
        let elf = tiny_elf(&[]);
        let stream = ruzstd::encoding::compress_to_vec(
            &elf[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let vmlinuz = tmp.path().join("vmlinuz");
        std::fs::write(&vmlinuz, synthetic_bzimage(&stream, 1, true)).expect("write");
        let vmlinux = tmp.path().join("vmlinux");
        let Vmlinux::Missing(why) = extract_vmlinux(&vmlinuz, &vmlinux).expect("runs") else {
            panic!("extracted without a PVH note");
        };
        assert!(why.contains("no PVH entry note"), "{why}");
        assert!(!vmlinux.exists());
    }
}
