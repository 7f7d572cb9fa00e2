//! What a scenario needs from the machine (`[requires]`), and deciding whether it is met.
//!
//! An unmet requirement is never a failure: the scenario is skipped and the reason is shown.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::probe;
use crate::scenario::model::{NsKind, Requires, Scenario};

/// A link kind the probes know how to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum LinkKind {
    /// A veth pair.
    Veth,
    /// A Linux bridge.
    Bridge,
    /// A macvlan on a veth parent.
    Macvlan,
    /// An ipvlan on a veth parent.
    Ipvlan,
    /// An 802.1Q VLAN on a veth parent.
    Vlan,
    /// A dummy link.
    Dummy,
    /// A VXLAN tunnel endpoint.
    Vxlan,
}

impl LinkKind {
    /// Every kind, for listings.
    pub(crate) const ALL: [LinkKind; 7] = [
        LinkKind::Veth,
        LinkKind::Bridge,
        LinkKind::Macvlan,
        LinkKind::Ipvlan,
        LinkKind::Vlan,
        LinkKind::Dummy,
        LinkKind::Vxlan,
    ];

    /// The name `ip link add ... type NAME` uses.
    pub(crate) fn name(self) -> &'static str {
        match self {
            LinkKind::Veth => "veth",
            LinkKind::Bridge => "bridge",
            LinkKind::Macvlan => "macvlan",
            LinkKind::Ipvlan => "ipvlan",
            LinkKind::Vlan => "vlan",
            LinkKind::Dummy => "dummy",
            LinkKind::Vxlan => "vxlan",
        }
    }
}

/// A probed capability of the kernel or machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Feature {
    /// A namespace type exists and the harness can create one (`ns:NAME`).
    Namespace(NsKind),
    /// Root may create a user namespace (`userns`).
    Userns,
    /// An unprivileged user (uid 65534) may create a user namespace (`userns:unprivileged`).
    UnprivilegedUserns,
    /// A cgroup v1 hierarchy is mounted somewhere (`cgroup1`).
    Cgroup1,
    /// cgroup v2 is mounted somewhere (`cgroup2`).
    Cgroup2,
    /// overlayfs can be mounted by real root (`overlayfs`).
    Overlayfs,
    /// overlayfs can be mounted inside a user namespace (`overlayfs:userns`).
    OverlayfsInUserns,
    /// tmpfs can be mounted inside a user namespace (`tmpfs:userns`).
    TmpfsInUserns,
    /// A fresh `/proc` can be mounted inside a user and PID namespace (`proc:userns`).
    ProcInUserns,
    /// A detached mount can be idmapped with `mount_setattr` (`idmapped-mounts`).
    IdmappedMounts,
    /// `pidfd_open` works (`pidfd`).
    Pidfd,
    /// The `clone3` system call exists (`clone3`).
    Clone3,
    /// `setns` accepts a pidfd, Linux 5.8+ (`setns:pidfd`).
    SetnsPidfd,
    /// The namespace `ioctl`s work: `NS_GET_USERNS` (`nsfs:ioctl`).
    NsfsIoctl,
    /// Time-namespace clock offsets can be written and take effect (`time:offsets`).
    TimeOffsets,
    /// A link kind can be created (in a throw-away network namespace).
    Link(LinkKind),
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Feature::Namespace(kind) => return write!(f, "ns:{kind}"),
            Feature::Link(kind) => return write!(f, "link:{}", kind.name()),
            Feature::Userns => "userns",
            Feature::UnprivilegedUserns => "userns:unprivileged",
            Feature::Cgroup1 => "cgroup1",
            Feature::Cgroup2 => "cgroup2",
            Feature::Overlayfs => "overlayfs",
            Feature::OverlayfsInUserns => "overlayfs:userns",
            Feature::TmpfsInUserns => "tmpfs:userns",
            Feature::ProcInUserns => "proc:userns",
            Feature::IdmappedMounts => "idmapped-mounts",
            Feature::Pidfd => "pidfd",
            Feature::Clone3 => "clone3",
            Feature::SetnsPidfd => "setns:pidfd",
            Feature::NsfsIoctl => "nsfs:ioctl",
            Feature::TimeOffsets => "time:offsets",
        };
        f.write_str(name)
    }
}

impl Feature {
    /// Every feature the probes know, in listing order.
    pub(crate) fn all() -> Vec<Feature> {
        let mut all: Vec<Feature> = NsKind::ALL.iter().map(|k| Feature::Namespace(*k)).collect();
        all.extend([
            Feature::Userns,
            Feature::UnprivilegedUserns,
            Feature::Cgroup1,
            Feature::Cgroup2,
            Feature::Overlayfs,
            Feature::OverlayfsInUserns,
            Feature::TmpfsInUserns,
            Feature::ProcInUserns,
            Feature::IdmappedMounts,
            Feature::Pidfd,
            Feature::Clone3,
            Feature::SetnsPidfd,
            Feature::NsfsIoctl,
            Feature::TimeOffsets,
        ]);
        all.extend(LinkKind::ALL.iter().map(|k| Feature::Link(*k)));
        all
    }
}

/// Parse a feature name as written in `requires.features`.
pub(crate) fn parse_feature(name: &str) -> Result<Feature, String> {
    Feature::all()
        .into_iter()
        .find(|f| f.to_string() == name)
        .ok_or_else(|| {
            let known: Vec<String> = Feature::all().iter().map(ToString::to_string).collect();
            format!("unknown feature `{name}` (known: {})", known.join(", "))
        })
}

/// The longest timeout a scenario may set (scaled later by `NSCONFORM_TIMEOUT_SCALE`).
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Parse a duration such as `10s`, `500ms` or `2m`, at most [`MAX_TIMEOUT`].
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let invalid = || {
        format!("invalid duration `{text}`: expected a whole number with ms, s or m, e.g. \"10s\"")
    };
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let millis = match unit {
        "ms" => Some(number),
        "s" => number.checked_mul(1000),
        "m" => number.checked_mul(60_000),
        _ => return Err(invalid()),
    };
    let duration = Duration::from_millis(millis.unwrap_or(u64::MAX));
    if duration.is_zero() {
        return Err("a timeout must be longer than zero".to_string());
    }
    if duration > MAX_TIMEOUT {
        return Err(format!(
            "a timeout is at most {} minutes, not `{text}`",
            MAX_TIMEOUT.as_secs() / 60
        ));
    }
    Ok(duration)
}

/// Parse a kernel version range such as `">=5.6, <6.1"`.
pub(crate) fn parse_kernel_range(text: &str) -> Result<semver::VersionReq, String> {
    semver::VersionReq::parse(text).map_err(|err| {
        format!("invalid kernel version range `{text}`: {err} (e.g. \">=5.6, <6.1\")")
    })
}

/// The running kernel's version as `major.minor.patch`, from a release like `6.1.0-18-amd64`.
pub(crate) fn kernel_version(release: &str) -> Option<semver::Version> {
    let numbers: Vec<u64> = release
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map_while(|part| part.parse().ok())
        .collect();
    match numbers.as_slice() {
        [major, minor, patch] => Some(semver::Version::new(*major, *minor, *patch)),
        [major, minor] => Some(semver::Version::new(*major, *minor, 0)),
        _ => None,
    }
}

/// Every feature a scenario needs: the listed ones and those its actors imply.
pub(crate) fn implied_features(scenario: &Scenario) -> Vec<Feature> {
    let mut features: Vec<Feature> = scenario
        .requires
        .features
        .iter()
        .filter_map(|f| parse_feature(f.get_ref()).ok())
        .collect();
    for actor in scenario.actors.values() {
        features.extend(
            actor
                .unshare
                .iter()
                .map(|k| Feature::Namespace(*k.get_ref())),
        );
        if actor.cgroup.is_some() {
            features.push(Feature::Cgroup2);
        }
    }
    features.sort();
    features.dedup();
    features
}

/// `Ok` when every requirement holds, otherwise the first unmet one, in words.
pub(crate) fn check(scenario: &Scenario, probes: &mut probe::Cache) -> Result<(), String> {
    let requires: &Requires = &scenario.requires;
    if requires.root && !nix::unistd::geteuid().is_root() {
        return Err("requires root (the harness runs as uid {})"
            .replace("{}", &nix::unistd::geteuid().to_string()));
    }
    if let Some(range) = &requires.kernel {
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        let wanted = parse_kernel_range(range.get_ref())?;
        match kernel_version(&release) {
            Some(version) if wanted.matches(&version) => {}
            _ => {
                return Err(format!(
                    "requires kernel {} (running {release})",
                    range.get_ref()
                ))
            }
        }
    }
    for name in &requires.rootfs {
        if let Err(err) = crate::rootfs::ensure(name.get_ref()) {
            return Err(format!("requires root filesystem: {err}"));
        }
    }
    // Under a userland, the commands are that tree's, on the fixed PATH.
    let userland = crate::supervisor::userland();
    let (root, path, place) = match &userland {
        None => (PathBuf::from("/"), command_path(), String::new()),
        Some(spec) => (
            crate::rootfs::resolve(spec).map_err(|err| format!("userland: {err}"))?,
            COMMAND_PATH,
            format!(" of userland `{spec}`"),
        ),
    };
    for command in &requires.commands {
        if find_in(&root, path, command.get_ref()).is_none() {
            return Err(format!(
                "requires command `{}`, not found on the PATH{place}",
                command.get_ref()
            ));
        }
    }
    for feature in implied_features(scenario) {
        if let Err(reason) = probes.probe(feature) {
            return Err(format!("requires {feature}: {reason}"));
        }
    }
    Ok(())
}

/// The fixed `PATH` every command runs with, after the tool directories (see
/// [`command_path`]).
pub(crate) const COMMAND_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The environment variable naming directories of tools to put first on the commands'
/// `PATH`, colon-separated (`nsconform run --tool-path DIR` sets it for its supervisors;
/// `cargo test`'s trials inherit it).
pub(crate) const TOOL_PATH_ENV: &str = "NSCONFORM_TOOL_PATH";

/// Directories the stand-in host replaces with fresh filesystems: a tool directory under one
/// of them would be invisible (or empty) to the scenario's commands.
const HIDDEN_IN_STANDIN: [&str; 6] = ["/tmp", "/run", "/dev/shm", "/dev/mqueue", "/proc", "/sys"];

/// Check a tool directory and make it absolute (relative to `cwd`, symbolic links resolved):
/// it must be a directory the stand-in host does not hide.
pub(crate) fn tool_dir(dir: &Path, cwd: &Path) -> Result<std::path::PathBuf, String> {
    let joined = cwd.join(dir);
    let absolute = std::fs::canonicalize(&joined)
        .map_err(|e| format!("tool path `{}`: {e}", dir.display()))?;
    if !absolute.is_dir() {
        return Err(format!("tool path `{}`: not a directory", dir.display()));
    }
    if let Some(hidden) = HIDDEN_IN_STANDIN
        .iter()
        .find(|hidden| absolute.starts_with(hidden))
    {
        return Err(format!(
            "tool path `{}` ({}) is under {hidden}, which the stand-in host replaces with a \
             fresh filesystem, so its commands would not see the tools: put them elsewhere \
             (e.g. in the repository)",
            dir.display(),
            absolute.display()
        ));
    }
    if absolute.to_str().is_none_or(|s| s.contains(':')) {
        return Err(format!(
            "tool path `{}`: a directory on PATH must be UTF-8 without `:`",
            dir.display()
        ));
    }
    Ok(absolute)
}

/// Parse the colon-separated tool directories of [`TOOL_PATH_ENV`] (empty parts ignored),
/// each checked by [`tool_dir`].
pub(crate) fn parse_tool_path(text: &str, cwd: &Path) -> Result<Vec<std::path::PathBuf>, String> {
    text.split(':')
        .filter(|part| !part.is_empty())
        .map(|part| tool_dir(Path::new(part), cwd))
        .collect()
}

/// The tool directories this process was given in [`TOOL_PATH_ENV`] (none when unset), or
/// why they are unusable. Read once.
pub(crate) fn tool_path() -> Result<&'static [std::path::PathBuf], &'static str> {
    static TOOL_PATH: std::sync::OnceLock<Result<Vec<std::path::PathBuf>, String>> =
        std::sync::OnceLock::new();
    TOOL_PATH
        .get_or_init(|| match std::env::var(TOOL_PATH_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(Vec::new()),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("{TOOL_PATH_ENV} is not valid UTF-8"))
            }
            Ok(text) => std::env::current_dir()
                .map_err(|e| format!("{TOOL_PATH_ENV}: no current directory: {e}"))
                .and_then(|cwd| parse_tool_path(&text, &cwd))
                .map_err(|e| format!("{TOOL_PATH_ENV}: {e}")),
        })
        .as_ref()
        .map(Vec::as_slice)
        .map_err(String::as_str)
}

/// `PATH` for `dirs` followed by [`COMMAND_PATH`].
fn path_with(dirs: &[std::path::PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.to_string_lossy().into_owned())
        .chain([COMMAND_PATH.to_string()])
        .collect::<Vec<_>>()
        .join(":")
}

/// The `PATH` every command runs with, and where `requires.commands` are looked up: the
/// tool directories ([`tool_path`]) first, then [`COMMAND_PATH`]. Unusable tool directories
/// are left out here; the supervisor refuses to run a scenario with them.
pub(crate) fn command_path() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| path_with(tool_path().unwrap_or_default()))
}

/// Find `program` in [`command_path`].
pub(crate) fn find_on_path(program: &str) -> Option<PathBuf> {
    find_in(Path::new("/"), command_path(), program)
}

/// Find executable `program` in `dirs` first, then on [`COMMAND_PATH`]: where a run given
/// these tool directories finds it (for a process without `NSCONFORM_TOOL_PATH`).
pub(crate) fn find_with_tool_dirs(dirs: &[PathBuf], program: &str) -> Option<PathBuf> {
    find_in(Path::new("/"), &path_with(dirs), program)
}

/// Find executable `program` in the directories of `path` taken inside the tree at `root`
/// (symbolic links are followed from the machine's root, which suits the relative ones of a
/// merged `/usr`).
fn find_in(root: &Path, path: &str, program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    path.split(':')
        .map(|dir| root.join(dir.trim_start_matches('/')).join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("6.18.44-fc-v595", Some((6, 18, 44)))]
    #[case("5.10.0-30-cloud-amd64", Some((5, 10, 0)))]
    #[case("6.1", Some((6, 1, 0)))]
    #[case("garbage", None)]
    fn parses_kernel_release(#[case] release: &str, #[case] expected: Option<(u64, u64, u64)>) {
        let got = kernel_version(release).map(|v| (v.major, v.minor, v.patch));
        assert_eq!(got, expected);
    }

    #[rstest]
    #[case("10s", Some(Duration::from_secs(10)))]
    #[case("500ms", Some(Duration::from_millis(500)))]
    #[case("2m", Some(Duration::from_secs(120)))]
    #[case("0s", None)]
    #[case("ten", None)]
    #[case("307445734561825861m", None)]
    #[case("18446744073709551615s", None)]
    #[case("61m", None)]
    #[case("60m", Some(Duration::from_secs(3600)))]
    #[case("10", None)]
    fn parses_durations(#[case] text: &str, #[case] expected: Option<Duration>) {
        assert_eq!(parse_duration(text).ok(), expected);
    }

    #[test]
    fn feature_names_round_trip() {
        for feature in Feature::all() {
            assert_eq!(parse_feature(&feature.to_string()), Ok(feature));
        }
        assert!(parse_feature("link:warp")
            .unwrap_err()
            .contains("unknown feature"));
    }

    #[test]
    fn feature_names_are_distinct_and_complete() {
        let names: Vec<String> = Feature::all().iter().map(ToString::to_string).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        for name in [
            "ns:time",
            "userns",
            "userns:unprivileged",
            "cgroup1",
            "cgroup2",
            "tmpfs:userns",
            "proc:userns",
            "idmapped-mounts",
            "pidfd",
            "clone3",
            "setns:pidfd",
            "nsfs:ioctl",
            "time:offsets",
            "link:ipvlan",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing");
        }
        // At least 15 features besides the link kinds.
        assert!(names.iter().filter(|n| !n.starts_with("link:")).count() >= 15);
    }

    #[test]
    fn tool_dirs_are_absolute_and_come_first() {
        // Outside /tmp, wherever the checkout is (a CI clone may be under /tmp).
        let cwd = Path::new("/usr/lib");
        let dirs = parse_tool_path("../bin::../sbin", cwd).unwrap();
        assert_eq!(dirs.len(), 2);
        assert!(dirs.iter().all(|d| d.is_absolute()), "{dirs:?}");
        let path = path_with(&dirs);
        assert!(
            path.starts_with(&format!("{}:", dirs[0].display())),
            "{path}"
        );
        assert!(path.ends_with(COMMAND_PATH), "{path}");
        assert_eq!(path_with(&[]), COMMAND_PATH);
    }

    #[test]
    fn tool_dirs_the_standin_hides_or_that_are_missing_are_refused() {
        let cwd = Path::new("/");
        let error = tool_dir(Path::new("/tmp"), cwd).unwrap_err();
        assert!(error.contains("under /tmp"), "{error}");
        assert!(tool_dir(Path::new("run"), cwd)
            .unwrap_err()
            .contains("/run"));
        assert!(tool_dir(Path::new("/no/such/dir"), cwd).is_err());
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        assert!(tool_dir(&file, cwd)
            .unwrap_err()
            .contains("not a directory"));
    }

    /// The versions in a results file are those of the tools the run used: a tool
    /// directory's build of a program comes before the machine's.
    #[test]
    fn a_tool_directory_comes_before_the_machine_in_lookups() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let tool = dir.path().join("sh");
        std::fs::write(&tool, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let dirs = [dir.path().to_path_buf()];
        assert_eq!(find_with_tool_dirs(&dirs, "sh"), Some(tool));
        let machine = find_with_tool_dirs(&[], "sh").expect("the machine's sh");
        assert!(!machine.starts_with(dir.path()), "{machine:?}");
        assert_eq!(find_with_tool_dirs(&dirs, "no-such-program-anywhere"), None);
    }

    #[test]
    fn kernel_ranges_match() {
        let range = parse_kernel_range(">=5.6, <6.1").unwrap();
        assert!(range.matches(&kernel_version("5.10.0-30-amd64").unwrap()));
        assert!(!range.matches(&kernel_version("6.18.44").unwrap()));
        assert!(parse_kernel_range("banana").is_err());
    }
}
