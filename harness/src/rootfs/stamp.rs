//! The stamp file `/.nsconform-rootfs.json` at the top of every built tree.
//!
//! It is written last, just before the finished tree is moved into place, so a tree with a
//! stamp is a complete one. It says which tree this is, when and by which version of
//! nsconform it was built, and the versions of the tools that matter to scenarios
//! (`util-linux`, `iproute2`, `bubblewrap` in Debian trees; `busybox` in the busybox tree).

use std::collections::BTreeMap;
use std::path::Path;

/// File name of the stamp, at the top of the tree.
pub(crate) const STAMP: &str = ".nsconform-rootfs.json";

/// Why a stamp could not be read or written.
pub(crate) type StampError = crate::json_file::JsonFileError;

/// What the stamp holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Stamp {
    /// The tree's name, e.g. `debian-bookworm`.
    pub(crate) name: String,
    /// When the build finished, RFC 3339 in UTC (`2026-05-07T10:00:00Z`).
    pub(crate) built_at: String,
    /// The same instant in seconds since the Unix epoch.
    pub(crate) built_at_unix: u64,
    /// Version of nsconform that built it (`CARGO_PKG_VERSION`).
    pub(crate) builder: String,
    /// Debian suite, for Debian trees; `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) suite: Option<String>,
    /// Archive the packages came from, for Debian trees; `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mirror: Option<String>,
    /// Tool (package) name to version. Empty when nothing could be asked.
    #[serde(default)]
    pub(crate) tools: BTreeMap<String, String>,
}

impl Stamp {
    /// A stamp for tree `name` built now by this version of nsconform, with no suite, mirror
    /// or tools yet.
    pub(crate) fn now(name: &str) -> Stamp {
        let now = std::time::SystemTime::now();
        let unix = now
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Stamp {
            name: name.to_string(),
            built_at: crate::results::rfc3339(now),
            built_at_unix: unix,
            builder: env!("CARGO_PKG_VERSION").to_string(),
            suite: None,
            mirror: None,
            tools: BTreeMap::new(),
        }
    }
}

/// Read the stamp of the tree at `root`.
pub(crate) fn read(root: &Path) -> Result<Stamp, StampError> {
    crate::json_file::read(&root.join(STAMP))
}

/// Write the stamp of the tree at `root` (replacing any).
pub(crate) fn write(root: &Path, stamp: &Stamp) -> Result<(), StampError> {
    crate::json_file::write(&root.join(STAMP), stamp)
}

/// Parse `dpkg-query -W -f '${Package}\t${Version}\n'` output into name to version; lines
/// without a version (a package that is not installed) are left out.
pub(crate) fn parse_dpkg_query(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (name, version) = line.split_once('\t')?;
            let (name, version) = (name.trim(), version.trim());
            (!name.is_empty() && !version.is_empty())
                .then(|| (name.to_string(), version.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut stamp = Stamp::now("debian-bookworm");
        stamp.suite = Some("bookworm".to_string());
        stamp.mirror = Some("http://deb.debian.org/debian".to_string());
        stamp
            .tools
            .insert("util-linux".to_string(), "2.38.1-5+deb12u3".to_string());
        write(tmp.path(), &stamp).expect("write");
        assert!(tmp.path().join(STAMP).is_file());
        assert_eq!(read(tmp.path()).expect("read"), stamp);
        assert_eq!(stamp.builder, env!("CARGO_PKG_VERSION"));
        assert!(stamp.built_at.ends_with('Z'), "{}", stamp.built_at);
    }

    #[test]
    fn busybox_stamp_has_no_suite_and_missing_stamp_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(matches!(read(tmp.path()), Err(StampError::Io { .. })));
        let stamp = Stamp::now("busybox");
        write(tmp.path(), &stamp).expect("write");
        let text = std::fs::read_to_string(tmp.path().join(STAMP)).expect("text");
        assert!(!text.contains("suite"), "{text}");
        std::fs::write(tmp.path().join(STAMP), "{").expect("garble");
        assert!(matches!(read(tmp.path()), Err(StampError::Json { .. })));
    }

    #[test]
    fn reads_dpkg_query_output() {
        let versions = parse_dpkg_query(
            "util-linux\t2.38.1-5+deb12u3\niproute2\t6.1.0-3\nbubblewrap\t\n\ngarbage\n",
        );
        assert_eq!(versions.len(), 2);
        assert_eq!(versions["iproute2"], "6.1.0-3");
        assert!(!versions.contains_key("bubblewrap"));
    }
}
