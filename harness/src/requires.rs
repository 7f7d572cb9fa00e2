//! What a scenario needs from the machine (`[requires]`), and deciding whether it is met.
//!
//! An unmet requirement is never a failure: the scenario is skipped and the reason is shown.

use std::fmt;
use std::path::Path;
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
    for command in &requires.commands {
        if find_on_path(command.get_ref()).is_none() {
            return Err(format!(
                "requires command `{}`, not found on PATH",
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

/// The fixed `PATH` every command runs with.
pub(crate) const COMMAND_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Find `program` in [`COMMAND_PATH`].
pub(crate) fn find_on_path(program: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    COMMAND_PATH
        .split(':')
        .map(|dir| Path::new(dir).join(program))
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
    fn kernel_ranges_match() {
        let range = parse_kernel_range(">=5.6, <6.1").unwrap();
        assert!(range.matches(&kernel_version("5.10.0-30-amd64").unwrap()));
        assert!(!range.matches(&kernel_version("6.18.44").unwrap()));
        assert!(parse_kernel_range("banana").is_err());
    }
}
