//! Which kernel to boot, and its modules.
//!
//! `--kernel` takes a kernel image (a `bzImage` such as `/boot/vmlinuz-6.1.0-57-cloud-amd64`,
//! or a decompressed ELF `vmlinux` with a PVH entry), a kernel directory of the cache
//! (`~/.cache/nsconform/kernels/RELEASE`), or a name the cache knows (`6.1`, `newest`, a
//! release; see `nsconform kernels`). From a cache directory the `vmlinux` is preferred: QEMU
//! boots it straight through its PVH entry, which skips the kernel's self-decompression
//! (0.3 to 4 s per boot under TCG).
//!
//! The release (what `uname -r` will print) comes from the image: the `bzImage` header points
//! at the version string, and an ELF image contains `Linux version RELEASE`. The modules tree
//! is `--modules DIR` when given, else found next to the image: the cache's
//! `modules/RELEASE`, an unpacked package's `lib/modules/RELEASE` beside its `boot/`, or this
//! machine's `/lib/modules/RELEASE`.

use std::path::{Path, PathBuf};

/// Errors finding the kernel.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KernelError {
    /// Not a file, a directory or a cached name.
    #[error(
        "{0}: no such kernel image, directory or cached kernel (see `nsconform kernels list`)"
    )]
    NotFound(String),
    /// The image could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Neither a bzImage nor an ELF file.
    #[error("{0}: not a kernel image (neither a bzImage nor an ELF vmlinux)")]
    NotAnImage(PathBuf),
    /// `--modules` names a directory without `modules.dep`.
    #[error("{0}: no modules.dep there or in a directory below it")]
    NoModulesDep(PathBuf),
}

/// How QEMU loads the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImageKind {
    /// A decompressed ELF, booted through its PVH entry.
    Elf,
    /// A self-decompressing bzImage.
    BzImage,
}

/// The kernel to boot.
#[derive(Debug, Clone)]
pub(crate) struct Kernel {
    /// The image.
    pub(crate) image: PathBuf,
    /// Its kind.
    pub(crate) kind: ImageKind,
    /// Its release, when the image says.
    pub(crate) release: Option<String>,
    /// Its modules tree (the directory with `modules.dep`), when there is one.
    pub(crate) modules: Option<PathBuf>,
}

/// Find the kernel `spec` means, and its modules (`modules` overrides the search).
pub(crate) fn resolve(spec: &str, modules: Option<&Path>) -> Result<Kernel, KernelError> {
    let path = Path::new(spec);
    let (image, mut found_modules) = if path.is_file() {
        (path.to_path_buf(), None)
    } else if path.is_dir() {
        let image = ["vmlinux", "vmlinuz"]
            .iter()
            .map(|name| path.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| KernelError::NotFound(spec.to_string()))?;
        (image, None)
    } else {
        let cached =
            crate::kernels::find(spec).ok_or_else(|| KernelError::NotFound(spec.to_string()))?;
        (cached.vmlinux.unwrap_or(cached.vmlinuz), cached.modules)
    };
    let bytes = std::fs::read(&image).map_err(|source| KernelError::Read {
        path: image.clone(),
        source,
    })?;
    let kind = image_kind(&bytes).ok_or_else(|| KernelError::NotAnImage(image.clone()))?;
    let release = match kind {
        ImageKind::BzImage => bzimage_release(&bytes),
        ImageKind::Elf => elf_release(&bytes),
    };
    if let Some(dir) = modules {
        found_modules = Some(modules_dir(dir, release.as_deref())?);
    } else if found_modules.is_none() {
        found_modules = release
            .as_deref()
            .and_then(|release| guess_modules(&image, release));
    }
    Ok(Kernel {
        image,
        kind,
        release,
        modules: found_modules,
    })
}

/// ELF (`\x7fELF`) or bzImage (`HdrS` at 0x202).
fn image_kind(bytes: &[u8]) -> Option<ImageKind> {
    if bytes.starts_with(b"\x7fELF") {
        Some(ImageKind::Elf)
    } else if bytes.get(0x202..0x206) == Some(b"HdrS") {
        Some(ImageKind::BzImage)
    } else {
        None
    }
}

/// The release from a bzImage: the setup header's `kernel_version` (at 0x20e) points, less
/// 0x200, at a string that starts with the release.
fn bzimage_release(bytes: &[u8]) -> Option<String> {
    let pointer = u16::from_le_bytes([*bytes.get(0x20e)?, *bytes.get(0x20f)?]) as usize;
    let text = bytes.get(pointer + 0x200..)?;
    first_word(text)
}

/// The release from an ELF image: the word after `Linux version `.
fn elf_release(bytes: &[u8]) -> Option<String> {
    let marker = b"Linux version ";
    let at = bytes.windows(marker.len()).position(|w| w == marker)?;
    first_word(&bytes[at + marker.len()..])
}

fn first_word(text: &[u8]) -> Option<String> {
    let end = text
        .iter()
        .position(|b| *b == b' ' || *b == 0)
        .unwrap_or(text.len());
    let word = std::str::from_utf8(&text[..end.min(200)]).ok()?;
    (!word.is_empty()).then(|| word.to_string())
}

/// The directory with `modules.dep`: `dir` itself, `dir/RELEASE`, or its only subdirectory
/// that has one.
fn modules_dir(dir: &Path, release: Option<&str>) -> Result<PathBuf, KernelError> {
    if dir.join("modules.dep").is_file() {
        return Ok(dir.to_path_buf());
    }
    if let Some(release) = release {
        if dir.join(release).join("modules.dep").is_file() {
            return Ok(dir.join(release));
        }
    }
    let below: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.join("modules.dep").is_file())
                .collect()
        })
        .unwrap_or_default();
    match below.as_slice() {
        [only] => Ok(only.clone()),
        _ => Err(KernelError::NoModulesDep(dir.to_path_buf())),
    }
}

/// Modules next to `image` for `release` (see the module docs), if any.
fn guess_modules(image: &Path, release: &str) -> Option<PathBuf> {
    let dir = image.parent()?;
    [
        dir.join("modules").join(release),
        dir.join("../lib/modules").join(release),
        Path::new("/lib/modules").join(release),
    ]
    .into_iter()
    .find(|candidate| candidate.join("modules.dep").is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake bzImage whose version string says `release`.
    fn bzimage(release: &str) -> Vec<u8> {
        let mut bytes = vec![0u8; 0x400];
        bytes[0x202..0x206].copy_from_slice(b"HdrS");
        bytes[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        let text = format!("{release} (someone@example) #1 SMP\0");
        bytes[0x300..0x300 + text.len()].copy_from_slice(text.as_bytes());
        bytes
    }

    #[test]
    fn a_bzimage_tells_its_release() {
        let bytes = bzimage("6.1.0-57-cloud-amd64");
        assert_eq!(image_kind(&bytes), Some(ImageKind::BzImage));
        assert_eq!(
            bzimage_release(&bytes).as_deref(),
            Some("6.1.0-57-cloud-amd64")
        );
    }

    #[test]
    fn an_elf_tells_its_release() {
        let mut bytes = b"\x7fELF\x02\x01".to_vec();
        bytes.extend(b"....Linux version 6.12.8-amd64 (debian-kernel@lists.debian.org) ...");
        assert_eq!(image_kind(&bytes), Some(ImageKind::Elf));
        assert_eq!(elf_release(&bytes).as_deref(), Some("6.12.8-amd64"));
    }

    #[test]
    fn other_files_are_not_images() {
        assert_eq!(image_kind(b"#!/bin/sh\n"), None);
    }

    #[test]
    fn an_unpacked_package_is_found_with_its_modules() {
        let dir = tempfile::tempdir().unwrap();
        let boot = dir.path().join("boot");
        let modules = dir.path().join("lib/modules/6.1.0-9-amd64");
        std::fs::create_dir_all(&boot).unwrap();
        std::fs::create_dir_all(&modules).unwrap();
        std::fs::write(modules.join("modules.dep"), "").unwrap();
        let image = boot.join("vmlinuz-6.1.0-9-amd64");
        std::fs::write(&image, bzimage("6.1.0-9-amd64")).unwrap();
        let kernel = resolve(image.to_str().unwrap(), None).unwrap();
        assert_eq!(kernel.kind, ImageKind::BzImage);
        assert_eq!(kernel.release.as_deref(), Some("6.1.0-9-amd64"));
        let found = kernel.modules.unwrap();
        assert_eq!(
            found.canonicalize().unwrap(),
            modules.canonicalize().unwrap()
        );
    }

    #[test]
    fn a_cache_directory_prefers_vmlinux_and_modules_dirs_are_searched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vmlinuz"), bzimage("6.1.0-9-amd64")).unwrap();
        std::fs::write(
            dir.path().join("vmlinux"),
            b"\x7fELF Linux version 6.1.0-9-amd64 x",
        )
        .unwrap();
        let tree = dir.path().join("modules/6.1.0-9-amd64");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("modules.dep"), "").unwrap();
        let kernel = resolve(dir.path().to_str().unwrap(), None).unwrap();
        assert_eq!(kernel.kind, ImageKind::Elf);
        assert_eq!(kernel.modules.as_deref(), Some(tree.as_path()));
        let given = resolve(
            dir.path().to_str().unwrap(),
            Some(&dir.path().join("modules")),
        )
        .unwrap();
        assert_eq!(given.modules.as_deref(), Some(tree.as_path()));
        assert!(matches!(
            modules_dir(dir.path(), None),
            Err(KernelError::NoModulesDep(_))
        ));
    }

    #[test]
    fn an_unknown_name_is_not_found() {
        let err = resolve("/no/such/kernel-nsconform", None).unwrap_err();
        assert!(matches!(err, KernelError::NotFound(_)), "{err}");
    }
}
