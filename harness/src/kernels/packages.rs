//! Reading the kernel packages out of an archive's `Packages` index.
//!
//! An index is a list of stanzas (`Field: value` lines, separated by blank lines), one per
//! package version. Only the packages that make up a kernel are kept: `linux-image-*`
//! (up to 6.12 the whole kernel: image, config and modules; from 7.x a small package that
//! depends on the others), `linux-binary-*` and `linux-binary-unsigned-*` (the image, 7.x),
//! `linux-modules-*` and `linux-base-*` (modules, config, `System.map`, 7.x).
//!
//! A kernel image package is named `linux-image-RELEASE`, where the release is what
//! `uname -r` prints in the booted kernel, e.g. `6.1.0-56-cloud-amd64` or
//! `7.2.13+deb14-cloud-amd64`. Meta-packages (`linux-image-cloud-amd64`,
//! `linux-image-6.1-cloud-amd64`), debug symbols (`-dbg`), the `-unsigned` twins and the
//! real-time flavour are not kernels to boot here and are left out by [`image_release`].

/// Name prefixes of the packages a kernel is made of.
const KERNEL_PREFIXES: [&str; 4] = [
    "linux-image-",
    "linux-binary-",
    "linux-modules-",
    "linux-base-",
];

/// One package version from an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Package {
    /// Package name, e.g. `linux-image-6.1.0-56-cloud-amd64`.
    pub(crate) name: String,
    /// Debian version, e.g. `6.1.192-2`.
    pub(crate) version: String,
    /// The suite whose index lists it, e.g. `bookworm-security`.
    pub(crate) suite: String,
    /// Size of the `.deb` in bytes.
    pub(crate) size: u64,
    /// SHA-256 of the `.deb`, hex.
    pub(crate) sha256: String,
    /// Path of the `.deb` in the archive's pool.
    pub(crate) filename: String,
    /// The `Depends` field as written.
    pub(crate) depends: String,
}

/// Which build of the kernel an image is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Flavour {
    /// `-cloud-amd64`: for virtual machines; every namespace type, devtmpfs, the serial
    /// console and the PVH entry are built in.
    Cloud,
    /// `-amd64`: the generic build, for real machines (many more modules).
    Generic,
}

impl Flavour {
    /// The suffix of release strings of this flavour.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Flavour::Cloud => "-cloud-amd64",
            Flavour::Generic => "-amd64",
        }
    }
}

/// Parse an index, keeping the kernel packages; `suite` is recorded on each.
pub(crate) fn parse_index(text: &str, suite: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let fields = fields(stanza);
        let field = |name: &str| -> Option<&str> {
            fields
                .iter()
                .find_map(|(key, value)| (*key == name).then_some(value.as_str()))
        };
        let Some(name) = field("Package") else {
            continue;
        };
        if !KERNEL_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
        {
            continue;
        }
        let (Some(version), Some(filename)) = (field("Version"), field("Filename")) else {
            continue;
        };
        out.push(Package {
            name: name.to_string(),
            version: version.to_string(),
            suite: suite.to_string(),
            size: field("Size").and_then(|s| s.parse().ok()).unwrap_or(0),
            sha256: field("SHA256").unwrap_or_default().to_string(),
            filename: filename.to_string(),
            depends: field("Depends").unwrap_or_default().to_string(),
        });
    }
    out
}

/// The fields of one stanza, continuation lines joined to their field with a space.
fn fields(stanza: &str) -> Vec<(&str, String)> {
    let mut out: Vec<(&str, String)> = Vec::new();
    for line in stanza.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            out.push((key, value.trim().to_string()));
        }
    }
    out
}

/// The release and flavour of a bootable kernel image package, or `None` for anything else
/// (meta-packages, `-dbg`, `-unsigned`, real-time, other architectures).
pub(crate) fn image_release(name: &str) -> Option<(&str, Flavour)> {
    let release = name.strip_prefix("linux-image-")?;
    let (abi, flavour) = if let Some(abi) = release.strip_suffix(Flavour::Cloud.suffix()) {
        (abi, Flavour::Cloud)
    } else if release.ends_with("-rt-amd64") {
        return None;
    } else {
        (
            release.strip_suffix(Flavour::Generic.suffix())?,
            Flavour::Generic,
        )
    };
    // A real ABI starts with a version and has a `-` or `+` after it: `6.1.0-56`,
    // `6.1.0-0.deb11.52`, `6.12.118+deb13`. Meta-packages have `6.1` or nothing.
    let starts_with_digit = abi.chars().next().is_some_and(|c| c.is_ascii_digit());
    (starts_with_digit && abi.contains(['-', '+'])).then_some((release, flavour))
}

/// Whether an image package is the small 7.x kind that only depends on
/// `linux-binary-RELEASE`, `linux-modules-RELEASE` and `linux-base-RELEASE`.
pub(crate) fn is_split(image: &Package, release: &str) -> bool {
    let binary = format!("linux-binary-{release}");
    image
        .depends
        .split(',')
        .filter_map(|dep| dep.split_whitespace().next())
        .any(|dep| dep == binary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const INDEX: &str = "\
Package: bash
Version: 5.2.15-2+b2
Filename: pool/main/b/bash/bash_5.2.15-2+b2_amd64.deb
Size: 1

Package: linux-image-7.2.13+deb14-cloud-amd64
Source: linux-signed-amd64 (7.2.13+1)
Version: 7.2.13-1
Depends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool,
 linux-base-7.2.13+deb14-cloud-amd64 (= 7.2.13-1), linux-binary-7.2.13+deb14-cloud-amd64 (= 7.2.13-1)
Filename: pool/main/l/linux-signed-amd64/linux-image-7.2.13+deb14-cloud-amd64_7.2.13-1_amd64.deb
Size: 1916
SHA256: abc

Package: linux-image-6.1.0-56-cloud-amd64
Version: 6.1.192-2
Depends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
Filename: pool/main/l/linux-signed-amd64/linux-image-6.1.0-56-cloud-amd64_6.1.192-2_amd64.deb
Size: 26713492
SHA256: def
";

    #[test]
    fn keeps_kernel_packages_with_their_fields() {
        let packages = parse_index(INDEX, "sid");
        assert_eq!(packages.len(), 2);
        let old = &packages[1];
        assert_eq!(old.name, "linux-image-6.1.0-56-cloud-amd64");
        assert_eq!(old.version, "6.1.192-2");
        assert_eq!(old.suite, "sid");
        assert_eq!(old.size, 26_713_492);
        assert_eq!(old.sha256, "def");
        assert!(!is_split(old, "6.1.0-56-cloud-amd64"));
    }

    #[test]
    fn sees_split_packages_from_depends_across_continuation_lines() {
        let new = &parse_index(INDEX, "sid")[0];
        assert_eq!(new.depends.split(',').count(), 3);
        assert!(is_split(new, "7.2.13+deb14-cloud-amd64"));
    }

    #[rstest]
    #[case("linux-image-6.1.0-56-cloud-amd64", Some(("6.1.0-56-cloud-amd64", Flavour::Cloud)))]
    #[case("linux-image-6.1.0-56-amd64", Some(("6.1.0-56-amd64", Flavour::Generic)))]
    #[case("linux-image-6.12.115+deb13.1-cloud-amd64", Some(("6.12.115+deb13.1-cloud-amd64", Flavour::Cloud)))]
    #[case("linux-image-6.1.0-0.deb11.52-cloud-amd64", Some(("6.1.0-0.deb11.52-cloud-amd64", Flavour::Cloud)))]
    #[case("linux-image-7.2.13+deb14-amd64", Some(("7.2.13+deb14-amd64", Flavour::Generic)))]
    #[case("linux-image-6.1.0-56-rt-amd64", None)]
    #[case("linux-image-6.1.0-56-cloud-amd64-dbg", None)]
    #[case("linux-image-6.1.0-56-cloud-amd64-unsigned", None)]
    #[case("linux-image-6.1-cloud-amd64", None)]
    #[case("linux-image-cloud-amd64", None)]
    #[case("linux-image-amd64", None)]
    #[case("linux-image-amd64-signed-template", None)]
    #[case("linux-image-6.1.0-56-arm64", None)]
    #[case("linux-modules-7.2.13+deb14-cloud-amd64", None)]
    fn classifies_image_names(#[case] name: &str, #[case] expected: Option<(&str, Flavour)>) {
        assert_eq!(image_release(name), expected);
    }
}
