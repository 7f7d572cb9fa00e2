//! Kernel names as given on the command line (`6.1`, `newest`, a release or a package
//! version), and whether a kernel matches one. Used both to pick packages to download and
//! to find kernels already in the cache.

use super::version;

/// A name that has none of the accepted shapes.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{0}` is not a kernel name: use `newest`, a major version (`7`, `7.x`), a series \
     (`6.1`), an upstream version (`6.1.192`), a release (`6.1.0-56-cloud-amd64`) or a \
     Debian version (`6.1.192-2`)"
)]
pub(crate) struct QueryError(String);

/// What a kernel name asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Query {
    /// The newest kernel of all.
    Newest,
    /// The newest of a major version: `7`, `7.x`.
    Major(u64),
    /// The newest of a series: `6.1`, `6.1.x`.
    Series(u64, u64),
    /// An upstream version exactly: `6.1.192`.
    Upstream(String),
    /// A release exactly (`uname -r`): `6.1.0-56-cloud-amd64`.
    Release(String),
    /// A Debian package version exactly: `6.1.192-2`, `6.12.101-1~deb12u1`.
    DebianVersion(String),
}

impl Query {
    /// Parse a name given on the command line.
    pub(crate) fn parse(name: &str) -> Result<Query, QueryError> {
        let bad = || QueryError(name.to_string());
        let name = name.trim();
        if matches!(name, "newest" | "latest") {
            return Ok(Query::Newest);
        }
        if let Some(release) = name.strip_prefix("linux-image-") {
            return Ok(Query::Release(release.to_string()));
        }
        if name.ends_with("amd64") {
            return Ok(Query::Release(name.to_string()));
        }
        if name.contains(['-', '~', '+', ':']) {
            let starts_with_digit = name.chars().next().is_some_and(|c| c.is_ascii_digit());
            return if starts_with_digit {
                Ok(Query::DebianVersion(name.to_string()))
            } else {
                Err(bad())
            };
        }
        let plain = name.strip_suffix(".x").unwrap_or(name);
        let parts: Vec<&str> = plain.split('.').collect();
        let numbers: Vec<u64> = parts
            .iter()
            .map(|p| p.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        match (numbers.as_slice(), plain.len() == name.len()) {
            ([major], _) => Ok(Query::Major(*major)),
            ([major, minor], _) => Ok(Query::Series(*major, *minor)),
            ([_, _, _, ..], true) => Ok(Query::Upstream(name.to_string())),
            _ => Err(bad()),
        }
    }

    /// Whether a kernel with this release and Debian version matches.
    pub(crate) fn matches(&self, release: &str, debian_version: &str) -> bool {
        let upstream = version::upstream(debian_version);
        let numbers = version::numbers(upstream);
        match self {
            Query::Newest => true,
            Query::Major(major) => numbers.first() == Some(major),
            Query::Series(major, minor) => numbers.get(..2) == Some(&[*major, *minor][..]),
            Query::Upstream(wanted) => upstream == wanted,
            Query::Release(wanted) => release == wanted,
            Query::DebianVersion(wanted) => debian_version == wanted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("newest", Query::Newest)]
    #[case("latest", Query::Newest)]
    #[case("7", Query::Major(7))]
    #[case("7.x", Query::Major(7))]
    #[case("6.1", Query::Series(6, 1))]
    #[case("6.1.x", Query::Series(6, 1))]
    #[case("6.1.192", Query::Upstream("6.1.192".to_string()))]
    #[case("6.1.0-56-cloud-amd64", Query::Release("6.1.0-56-cloud-amd64".to_string()))]
    #[case("linux-image-6.1.0-56-amd64", Query::Release("6.1.0-56-amd64".to_string()))]
    #[case("6.12.101-1~deb12u1", Query::DebianVersion("6.12.101-1~deb12u1".to_string()))]
    fn parses_names(#[case] name: &str, #[case] expected: Query) {
        assert_eq!(Query::parse(name).expect("parses"), expected);
    }

    #[rstest]
    #[case("")]
    #[case("six")]
    #[case("6.x.1")]
    #[case("-rc1")]
    #[case("6.1.2.x")]
    fn bad_names_are_refused(#[case] name: &str) {
        assert!(matches!(Query::parse(name), Err(QueryError(_))), "{name}");
    }

    #[test]
    fn series_do_not_match_longer_minors() {
        let query = Query::parse("6.1").expect("parses");
        assert!(query.matches("6.1.0-56-cloud-amd64", "6.1.192-2"));
        assert!(!query.matches("6.12.118+deb13-cloud-amd64", "6.12.118-1"));
    }
}
