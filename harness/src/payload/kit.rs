//! What the stand-in host offers a scenario under `/run/nsconform/` (its `/run` is a fresh
//! tmpfs, so none of this is visible outside the scenario):
//!
//! - `probe/`: the probe kit. `probe/probe` runs `nsconform probe` through `probe/ld.so`
//!   with the libraries in `probe/lib`, so it works in any root filesystem that has
//!   `/bin/sh` — a container bind-mounts the directory (e.g. at `/probe`) and runs
//!   `/probe/probe`. `{{probe}}` expands to [`PROBE_COMMAND`].
//! - `fixtures/`: the repository's `fixtures/` directory, read-only (`{{fixtures}}`), so a
//!   scenario can use an OCI bundle's `config.json` from there even when the checkout lies
//!   under `/tmp`, which the stand-in hides.
//! - `rootfs/NAME/`: each root filesystem in `requires.rootfs`, read-only
//!   (`{{rootfs.NAME}}`).

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

/// Where the kit lives in a stand-in host.
pub(crate) const RUN_DIR: &str = "/run/nsconform";

/// `{{probe}}` in a stand-in host.
pub(crate) const PROBE_COMMAND: &str = "/run/nsconform/probe/probe";

/// The script that starts the probe through the kit's own loader. `${0%/*}` is the kit's
/// directory wherever it is mounted.
const PROBE_SCRIPT: &str = "#!/bin/sh\n\
# nsconform probe, through the loader and libraries beside this script (see docs/probe.md).\n\
d=\"${0%/*}\"\n\
exec \"$d/ld.so\" --library-path \"$d/lib\" \"$d/nsconform\" probe \"$@\"\n";

/// Why part of the kit could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub(crate) struct KitError {
    what: String,
    source: std::io::Error,
}

fn fail(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> KitError {
    let what = what.into();
    move |source| KitError { what, source }
}

/// Install the probe kit under [`RUN_DIR`]`/probe`. Must run in the stand-in's mount
/// namespace, after its `/run` is mounted.
pub(crate) fn install_probe() -> Result<(), KitError> {
    let dir = Path::new(RUN_DIR).join("probe");
    let lib = dir.join("lib");
    std::fs::create_dir_all(&lib).map_err(fail(format!("create {}", lib.display())))?;
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(fail("read /proc/self/maps"))?;
    let exe = std::fs::read_link("/proc/self/exe").map_err(fail("read /proc/self/exe"))?;
    for library in mapped_libraries(&maps, &exe) {
        let name = library.file_name().map(PathBuf::from).unwrap_or_default();
        let target = if is_loader(&library) {
            dir.join("ld.so")
        } else {
            lib.join(name)
        };
        std::fs::copy(&library, &target).map_err(fail(format!(
            "copy {} to {}",
            library.display(),
            target.display()
        )))?;
    }
    let binary = dir.join("nsconform");
    std::fs::write(&binary, b"").map_err(fail(format!("create {}", binary.display())))?;
    if exe.exists() {
        // The file by its path in this (copied) mount tree: a bind costs nothing.
        bind(&exe, &binary, true)?;
    } else {
        // Rebuilt since this process started (`... (deleted)`): copy what is running.
        std::fs::copy("/proc/self/exe", &binary)
            .map_err(fail(format!("copy /proc/self/exe to {}", binary.display())))?;
        set_mode(&binary, 0o755)?;
    }
    let script = dir.join("probe");
    std::fs::write(&script, PROBE_SCRIPT).map_err(fail(format!("write {}", script.display())))?;
    set_mode(&script, 0o755)?;
    if !dir.join("ld.so").exists() {
        return Err(KitError {
            what: "find the dynamic loader in /proc/self/maps".into(),
            source: std::io::ErrorKind::NotFound.into(),
        });
    }
    Ok(())
}

/// Bind `source` read-only at [`RUN_DIR`]`/NAME` (a directory).
pub(crate) fn bind_dir(source: &Path, name: &str) -> Result<PathBuf, KitError> {
    let target = Path::new(RUN_DIR).join(name);
    std::fs::create_dir_all(&target).map_err(fail(format!("create {}", target.display())))?;
    bind(source, &target, true)?;
    Ok(target)
}

fn bind(source: impl AsRef<Path>, target: &Path, read_only: bool) -> Result<(), KitError> {
    let source = source.as_ref();
    let what = format!("bind {} on {}", source.display(), target.display());
    let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount(Some(source), target, None::<&str>, flags, None::<&str>)
        .map_err(|errno| fail(what.clone())(errno.into()))?;
    if read_only {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
            .map_err(|errno| fail(format!("make {} read-only", target.display()))(errno.into()))?;
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<(), KitError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(fail(format!("chmod {}", path.display())))
}

/// The shared objects mapped by this process, from `/proc/self/maps` text: each file once,
/// without the executable itself.
pub(crate) fn mapped_libraries(maps: &str, exe: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    for line in maps.lines() {
        let Some(path) = line.split_whitespace().nth(5) else {
            continue;
        };
        let path = PathBuf::from(path);
        let is_shared_object = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(".so"));
        if path.is_absolute() && is_shared_object && path != exe && !found.contains(&path) {
            found.push(path);
        }
    }
    found
}

fn is_loader(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("ld-linux") || n.starts_with("ld-musl") || n == "ld.so")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0000000-55d0c0100000 r--p 00000000 fe:01 123 /work/target/debug/nsconform
7f0000000000-7f0000020000 r--p 00000000 fe:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000020000-7f0000040000 r-xp 00020000 fe:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000050000-7f0000060000 r--p 00000000 fe:01 789 /usr/lib/x86_64-linux-gnu/libgcc_s.so.1
7f0000070000-7f0000071000 rw-p 00000000 00:00 0
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
7f0000080000-7f00000a0000 r--p 00000000 fe:01 999 /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
";

    #[test]
    fn lists_each_mapped_library_once_without_the_executable() {
        let found = mapped_libraries(MAPS, Path::new("/work/target/debug/nsconform"));
        let names: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
            ]
        );
        assert!(is_loader(&found[2]));
        assert!(!is_loader(&found[0]));
    }

    #[test]
    fn this_process_maps_a_loader() {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        assert!(mapped_libraries(&maps, &exe).iter().any(|p| is_loader(p)));
    }
}
