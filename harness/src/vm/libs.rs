//! Finding the shared libraries a program needs, so the initramfs can carry them.
//!
//! `ldd PROGRAM` prints one line per library the dynamic loader would map, with the path it
//! resolved, and the loader itself on a line of its own. The virtual `linux-vdso.so.1` has no
//! file and is left out. A statically linked program (or a script) needs nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Errors resolving a program's libraries.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LibsError {
    /// `ldd` could not be run at all.
    #[error("cannot run ldd on {program}: {source}")]
    Spawn {
        /// The program asked about.
        program: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The loader could not find some libraries.
    #[error("{program}: libraries not found: {missing}")]
    NotFound {
        /// The program asked about.
        program: PathBuf,
        /// The sonames that are missing, comma-separated.
        missing: String,
    },
}

/// The files (libraries and the dynamic loader) `program` needs at run time, as `ldd` resolves
/// them on this machine; empty for a static program or a script.
pub(crate) fn needed_by(program: &Path) -> Result<Vec<PathBuf>, LibsError> {
    let output = Command::new("ldd")
        .arg(program)
        .env("LC_ALL", "C")
        .output()
        .map_err(|source| LibsError::Spawn {
            program: program.to_path_buf(),
            source,
        })?;
    // ldd exits 1 for "not a dynamic executable"; the text says which case it is.
    let text = String::from_utf8_lossy(&output.stdout);
    let parsed = parse_ldd(&text);
    if !parsed.missing.is_empty() {
        return Err(LibsError::NotFound {
            program: program.to_path_buf(),
            missing: parsed.missing.join(", "),
        });
    }
    Ok(parsed.files)
}

/// What one `ldd` listing says.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct LddListing {
    /// Files to copy, in the order listed.
    pub(crate) files: Vec<PathBuf>,
    /// Sonames the loader could not find.
    pub(crate) missing: Vec<String>,
}

/// Parse `ldd` output: `soname => /path (0x...)`, `/path/ld.so (0x...)`,
/// `soname => not found`, and lines without a file (`linux-vdso.so.1 (0x...)`,
/// `statically linked`, `not a dynamic executable`), which are skipped.
pub(crate) fn parse_ldd(text: &str) -> LddListing {
    let mut listing = LddListing::default();
    for line in text.lines() {
        let line = line.trim();
        // Drop the load address, which every mapped entry ends with.
        let without_address = match line.rfind(" (0x") {
            Some(at) if line.ends_with(')') => &line[..at],
            _ => line,
        };
        let file = match without_address.split_once(" => ") {
            Some((soname, "not found")) => {
                listing.missing.push(soname.trim().to_string());
                continue;
            }
            Some((_, path)) => path.trim(),
            None => without_address,
        };
        if file.starts_with('/') && !listing.files.iter().any(|f| f == Path::new(file)) {
            listing.files.push(PathBuf::from(file));
        }
    }
    listing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_and_the_loader_are_listed_and_the_vdso_is_not() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd2b9f2000)\n\
                    \tlibselinux.so.1 => /lib/x86_64-linux-gnu/libselinux.so.1 (0x00007f3c1a0c0000)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3c19edf000)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f3c1a12f000)\n";
        let listing = parse_ldd(text);
        assert_eq!(
            listing.files,
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libselinux.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(listing.missing.is_empty());
    }

    #[test]
    fn static_programs_and_scripts_need_nothing() {
        assert_eq!(parse_ldd("\tstatically linked\n"), LddListing::default());
        assert_eq!(
            parse_ldd("\tnot a dynamic executable\n"),
            LddListing::default()
        );
        assert_eq!(parse_ldd(""), LddListing::default());
    }

    #[test]
    fn missing_libraries_are_named() {
        let text = "\tlibfoo.so.2 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n";
        let listing = parse_ldd(text);
        assert_eq!(listing.missing, ["libfoo.so.2"]);
        assert_eq!(listing.files, [PathBuf::from("/lib/libc.so.6")]);
    }

    #[test]
    fn duplicates_are_listed_once() {
        let text = "\tlibc.so.6 => /lib/libc.so.6 (0x1)\n\tlibc.so.6 => /lib/libc.so.6 (0x2)\n";
        assert_eq!(parse_ldd(text).files.len(), 1);
    }

    #[test]
    fn this_test_binary_needs_libc_and_a_loader() {
        let exe = std::env::current_exe().unwrap();
        let files = needed_by(&exe).unwrap();
        assert!(
            files
                .iter()
                .any(|f| f.to_string_lossy().contains("libc.so")),
            "{files:?}"
        );
        assert!(
            files
                .iter()
                .any(|f| f.to_string_lossy().contains("ld-linux")),
            "{files:?}"
        );
    }
}
