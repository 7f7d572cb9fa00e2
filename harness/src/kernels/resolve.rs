//! Turning a kernel name given on the command line (`6.1`, `newest`, a release or a package
//! version) into the packages to download.
//!
//! The newest matching image wins, by Debian version order, across every configured suite.
//! The `-cloud-amd64` flavour is preferred; the generic `-amd64` image is used only when no
//! cloud image matches. A release given in full (`6.1.0-56-amd64`) is taken as it is.

use super::packages::{image_release, is_split, Flavour, Package};
use super::query::{Query, QueryError};
use super::version;

/// Names fetched by `nsconform kernels fetch` without arguments.
pub(super) const DEFAULT_NAMES: [&str; 4] = ["5.10", "6.1", "6.12", "newest"];

/// Errors of name resolution.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolveError {
    /// The name has none of the accepted shapes.
    #[error(transparent)]
    BadName(#[from] QueryError),
    /// No image in the indexes matches.
    #[error("no kernel image in {suites} matches `{name}`")]
    NotFound {
        /// The name asked for.
        name: String,
        /// The suites searched, for the message.
        suites: String,
    },
    /// A 7.x image whose binary, modules or base package is missing from the indexes.
    #[error("{image} {version} needs {part} at the same version, which no index lists")]
    MissingPart {
        /// The image package.
        image: String,
        /// Its version.
        version: String,
        /// The missing package.
        part: String,
    },
}

/// A kernel chosen for download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The name it was resolved from.
    pub(crate) name: String,
    /// The kernel release (`uname -r`).
    pub(crate) release: String,
    /// Its flavour.
    pub(crate) flavour: Flavour,
    /// The image package (`linux-image-RELEASE`).
    pub(crate) image: Package,
    /// The packages to download and unpack: the image itself up to 6.12; the unsigned
    /// binary, modules and base packages from 7.x.
    pub(crate) parts: Vec<Package>,
}

impl Resolved {
    /// Bytes to download.
    pub(crate) fn download_size(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum()
    }
}

/// Resolve a name against the kernel packages of the indexes (in suite order).
pub(crate) fn resolve(name: &str, packages: &[Package]) -> Result<Resolved, ResolveError> {
    let query = Query::parse(name)?;
    let images: Vec<(&Package, &str, Flavour)> = packages
        .iter()
        .filter_map(|p| image_release(&p.name).map(|(release, flavour)| (p, release, flavour)))
        .filter(|(p, release, _)| query.matches(release, &p.version))
        .collect();
    let best_of = |flavour: Flavour| {
        images
            .iter()
            .filter(|(_, _, f)| *f == flavour)
            // max_by keeps the last of equals; reversed so the first suite wins a tie.
            .rev()
            .max_by(|a, b| version::compare(&a.0.version, &b.0.version))
    };
    let chosen = best_of(Flavour::Cloud).or_else(|| best_of(Flavour::Generic));
    let Some(&(image, release, flavour)) = chosen else {
        let mut suites: Vec<&str> = packages.iter().map(|p| p.suite.as_str()).collect();
        suites.dedup();
        return Err(ResolveError::NotFound {
            name: name.to_string(),
            suites: if suites.is_empty() {
                "the (empty) indexes".to_string()
            } else {
                suites.join(", ")
            },
        });
    };
    let parts = if is_split(image, release) {
        split_parts(image, release, packages)?
    } else {
        vec![image.clone()]
    };
    Ok(Resolved {
        name: name.to_string(),
        release: release.to_string(),
        flavour,
        image: image.clone(),
        parts,
    })
}

/// The binary (unsigned preferred: it is the same image without a Secure Boot signature),
/// modules and base packages of a 7.x image, all at the image's version.
fn split_parts(
    image: &Package,
    release: &str,
    packages: &[Package],
) -> Result<Vec<Package>, ResolveError> {
    let find = |name: &str| {
        packages
            .iter()
            .find(|p| p.name == name && p.version == image.version)
            .cloned()
    };
    let missing = |part: String| ResolveError::MissingPart {
        image: image.name.clone(),
        version: image.version.clone(),
        part,
    };
    let unsigned = format!("linux-binary-unsigned-{release}");
    let signed = format!("linux-binary-{release}");
    let binary = find(&unsigned)
        .or_else(|| find(&signed))
        .ok_or_else(|| missing(signed))?;
    let mut parts = vec![binary];
    for kind in ["modules", "base"] {
        let name = format!("linux-{kind}-{release}");
        parts.push(find(&name).ok_or_else(|| missing(name))?);
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// A canned index: what the archive listed on the day this was written, trimmed.
    fn canned() -> Vec<Package> {
        let rows = [
            (
                "bullseye-security",
                "linux-image-5.10.0-45-cloud-amd64",
                "5.10.247-1",
                "",
            ),
            (
                "bullseye-security",
                "linux-image-5.10.0-46-cloud-amd64",
                "5.10.262-1",
                "",
            ),
            (
                "bullseye-security",
                "linux-image-5.10.0-46-amd64",
                "5.10.262-1",
                "",
            ),
            (
                "bullseye-security",
                "linux-image-6.1.0-0.deb11.52-cloud-amd64",
                "6.1.190-1~deb11u1",
                "",
            ),
            (
                "bookworm",
                "linux-image-6.1.0-41-cloud-amd64",
                "6.1.176-1",
                "",
            ),
            ("bookworm", "linux-image-6.1-cloud-amd64", "6.1.176-1", ""),
            (
                "bookworm-security",
                "linux-image-6.1.0-56-cloud-amd64",
                "6.1.192-2",
                "",
            ),
            (
                "bookworm-security",
                "linux-image-6.1.0-56-cloud-amd64-dbg",
                "6.1.192-2",
                "",
            ),
            (
                "bookworm-security",
                "linux-image-6.12.117+deb12-cloud-amd64",
                "6.12.117-1~deb12u1",
                "",
            ),
            (
                "trixie",
                "linux-image-6.12.117+deb13-cloud-amd64",
                "6.12.117-1",
                "",
            ),
            (
                "trixie-security",
                "linux-image-6.12.118+deb13-cloud-amd64",
                "6.12.118-1",
                "",
            ),
            (
                "trixie-security",
                "linux-image-6.12.118+deb13-amd64",
                "6.12.118-1",
                "",
            ),
            (
                "trixie-security",
                "linux-image-6.12.118+deb13-rt-amd64",
                "6.12.118-1",
                "",
            ),
            ("sid", "linux-image-cloud-amd64", "7.2.13-1", ""),
            (
                "sid",
                "linux-image-7.2.13+deb14-cloud-amd64",
                "7.2.13-1",
                "linux-base-7.2.13+deb14-cloud-amd64 (= 7.2.13-1), \
                 linux-binary-7.2.13+deb14-cloud-amd64 (= 7.2.13-1), \
                 linux-modules-7.2.13+deb14-cloud-amd64 (= 7.2.13-1)",
            ),
            (
                "sid",
                "linux-binary-7.2.13+deb14-cloud-amd64",
                "7.2.13-1",
                "",
            ),
            (
                "sid",
                "linux-binary-unsigned-7.2.13+deb14-cloud-amd64",
                "7.2.13-1",
                "",
            ),
            (
                "sid",
                "linux-modules-7.2.13+deb14-cloud-amd64",
                "7.2.13-1",
                "",
            ),
            ("sid", "linux-base-7.2.13+deb14-cloud-amd64", "7.2.13-1", ""),
            ("sid", "linux-image-7.3.0+deb14-amd64", "7.3.0-1~exp1", ""),
        ];
        rows.iter()
            .map(|(suite, name, version, depends)| Package {
                name: name.to_string(),
                version: version.to_string(),
                suite: suite.to_string(),
                size: 1000,
                sha256: String::new(),
                filename: format!("pool/main/l/linux/{name}_{version}_amd64.deb"),
                depends: depends.to_string(),
            })
            .collect()
    }

    #[rstest]
    #[case("5.10", "5.10.0-46-cloud-amd64", "bullseye-security")]
    #[case("6.1", "6.1.0-56-cloud-amd64", "bookworm-security")]
    #[case("6.1.x", "6.1.0-56-cloud-amd64", "bookworm-security")]
    #[case("6.1.176", "6.1.0-41-cloud-amd64", "bookworm")]
    #[case(
        "6.1.190-1~deb11u1",
        "6.1.0-0.deb11.52-cloud-amd64",
        "bullseye-security"
    )]
    #[case("6.12", "6.12.118+deb13-cloud-amd64", "trixie-security")]
    #[case("6.12.117", "6.12.117+deb13-cloud-amd64", "trixie")]
    #[case(
        "6.12.117-1~deb12u1",
        "6.12.117+deb12-cloud-amd64",
        "bookworm-security"
    )]
    #[case("newest", "7.2.13+deb14-cloud-amd64", "sid")]
    #[case("7", "7.2.13+deb14-cloud-amd64", "sid")]
    #[case("7.x", "7.2.13+deb14-cloud-amd64", "sid")]
    #[case("7.3", "7.3.0+deb14-amd64", "sid")]
    #[case("6.12.118+deb13-amd64", "6.12.118+deb13-amd64", "trixie-security")]
    #[case(
        "linux-image-5.10.0-45-cloud-amd64",
        "5.10.0-45-cloud-amd64",
        "bullseye-security"
    )]
    fn resolves_names(#[case] name: &str, #[case] release: &str, #[case] suite: &str) {
        let resolved = resolve(name, &canned()).expect("resolves");
        assert_eq!(resolved.release, release);
        assert_eq!(resolved.image.suite, suite);
        assert_eq!(resolved.image.name, format!("linux-image-{release}"));
    }

    #[test]
    fn prefers_cloud_and_falls_back_to_generic() {
        let packages = canned();
        assert_eq!(
            resolve("6.12", &packages).expect("cloud").flavour,
            Flavour::Cloud
        );
        let generic = resolve("7.3", &packages).expect("generic only");
        assert_eq!(generic.flavour, Flavour::Generic);
        assert_eq!(generic.parts, vec![generic.image.clone()]);
    }

    #[test]
    fn old_kernels_are_one_package_new_ones_three() {
        let packages = canned();
        let old = resolve("6.1", &packages).expect("6.1");
        assert_eq!(old.parts.len(), 1);
        assert_eq!(old.download_size(), 1000);
        let new = resolve("newest", &packages).expect("newest");
        let names: Vec<&str> = new.parts.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "linux-binary-unsigned-7.2.13+deb14-cloud-amd64",
                "linux-modules-7.2.13+deb14-cloud-amd64",
                "linux-base-7.2.13+deb14-cloud-amd64",
            ]
        );
        assert_eq!(new.download_size(), 3000);
    }

    #[test]
    fn a_split_image_without_its_parts_is_an_error() {
        let packages: Vec<Package> = canned()
            .into_iter()
            .filter(|p| !p.name.starts_with("linux-modules-"))
            .collect();
        let err = resolve("newest", &packages).expect_err("modules missing");
        assert!(
            matches!(err, ResolveError::MissingPart { ref part, .. } if part.starts_with("linux-modules-"))
        );
    }

    #[rstest]
    #[case("4.19")]
    #[case("6.1.0-99-cloud-amd64")]
    #[case("6.1.999")]
    fn unknown_kernels_are_not_found(#[case] name: &str) {
        let err = resolve(name, &canned()).expect_err("not found");
        assert!(matches!(err, ResolveError::NotFound { .. }), "{err}");
        assert!(
            err.to_string().contains("bullseye-security, bookworm"),
            "{err}"
        );
    }
}
