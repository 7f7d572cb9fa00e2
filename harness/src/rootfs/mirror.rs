//! Which Debian archive `debootstrap` downloads from.
//!
//! `$NSCONFORM_DEBIAN_MIRROR` when set and not empty; else the first `debian` archive (not
//! `debian-security`, not a snapshot) the machine's apt already uses, from
//! `/etc/apt/sources.list.d/*.sources` (deb822 `URIs:` fields, files in name order), then
//! `/etc/apt/sources.list.d/*.list` and `/etc/apt/sources.list` (one-line `deb` entries);
//! else `http://deb.debian.org/debian`.

use std::ffi::OsString;
use std::path::Path;

/// The archive used when nothing else says: `http://deb.debian.org/debian`.
pub(crate) const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// Whether `uri` is a Debian main archive: a network or file URL whose last path segment is
/// `debian` (so not `debian-security`, `debian-ports` or a dated snapshot).
fn is_debian_archive(uri: &str) -> bool {
    let known_scheme = ["http://", "https://", "ftp://", "file:/"]
        .iter()
        .any(|scheme| uri.starts_with(scheme));
    known_scheme && uri.trim_end_matches('/').rsplit('/').next() == Some("debian")
}

/// The first Debian archive in deb822 text (`.sources` files): a stanza whose `Types`
/// includes `deb` and whose `URIs` list one. Comment lines are ignored.
pub(crate) fn from_deb822(text: &str) -> Option<String> {
    for stanza in text.split("\n\n") {
        let mut types_deb = true; // `Types:` is mandatory; without one, do not rule it out.
        let mut uris: Vec<&str> = Vec::new();
        for line in stanza.lines().filter(|l| !l.trim_start().starts_with('#')) {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "types" => types_deb = value.split_whitespace().any(|t| t == "deb"),
                "uris" => uris.extend(value.split_whitespace()),
                _ => {}
            }
        }
        if types_deb {
            if let Some(uri) = uris.into_iter().find(|u| is_debian_archive(u)) {
                return Some(uri.trim_end_matches('/').to_string());
            }
        }
    }
    None
}

/// The first Debian archive in one-line-style text (`sources.list`): `deb [options] URI
/// suite components`. `deb-src` lines and comments are ignored.
pub(crate) fn from_one_line(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("deb")?;
        if !rest.starts_with([' ', '\t']) {
            return None; // `deb-src`
        }
        let mut rest = rest.trim_start();
        if rest.starts_with('[') {
            rest = rest.split_once(']')?.1.trim_start();
        }
        let uri = rest.split_whitespace().next()?;
        is_debian_archive(uri).then(|| uri.trim_end_matches('/').to_string())
    })
}

/// The mirror from the variable's value and the apt configuration under `apt_etc` (normally
/// `/etc/apt`).
pub(crate) fn mirror_from(variable: Option<OsString>, apt_etc: &Path) -> String {
    if let Some(value) = variable.filter(|v| !v.is_empty()) {
        return value.to_string_lossy().trim_end_matches('/').to_string();
    }
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(apt_etc.join("sources.list.d"))
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let read = |path: &Path| std::fs::read_to_string(path).unwrap_or_default();
    let with_ext = |ext: &str| {
        files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .cloned()
            .collect::<Vec<_>>()
    };
    let deb822 = with_ext("sources").into_iter().map(|p| (p, true));
    let lists = with_ext("list")
        .into_iter()
        .chain([apt_etc.join("sources.list")])
        .map(|p| (p, false));
    deb822
        .chain(lists)
        .find_map(|(path, is_deb822)| {
            let text = read(&path);
            if is_deb822 {
                from_deb822(&text)
            } else {
                from_one_line(&text)
            }
        })
        .unwrap_or_else(|| DEFAULT_MIRROR.to_string())
}

/// The mirror for this machine: `$NSCONFORM_DEBIAN_MIRROR`, else apt's, else the default.
pub(crate) fn mirror() -> String {
    mirror_from(
        std::env::var_os("NSCONFORM_DEBIAN_MIRROR"),
        Path::new("/etc/apt"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCES: &str = "\
Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian

Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://snapshot.debian.org/archive/debian/20250520T000000Z http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
";

    #[test]
    fn deb822_takes_the_first_debian_archive() {
        assert_eq!(
            from_deb822(SOURCES).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            from_deb822("Types: deb\nURIs: http://x/debian-security\n"),
            None
        );
    }

    #[test]
    fn one_line_skips_sources_comments_and_security() {
        let text = "\
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb http://security.debian.org/debian-security bookworm-security main
deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] https://m.example/debian bookworm main
";
        assert_eq!(
            from_one_line(text).as_deref(),
            Some("https://m.example/debian")
        );
        assert_eq!(from_one_line("debx http://a/debian x\n"), None);
    }

    #[test]
    fn variable_then_sources_then_list_then_default() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let etc = tmp.path();
        assert_eq!(mirror_from(None, etc), DEFAULT_MIRROR);
        std::fs::write(
            etc.join("sources.list"),
            "deb http://list.example/debian bookworm main\n",
        )
        .expect("list");
        assert_eq!(mirror_from(None, etc), "http://list.example/debian");
        std::fs::create_dir(etc.join("sources.list.d")).expect("dir");
        std::fs::write(etc.join("sources.list.d/debian.sources"), SOURCES).expect("sources");
        assert_eq!(mirror_from(None, etc), "http://mirror.example/debian");
        assert_eq!(
            mirror_from(Some(OsString::from("http://env.example/debian/")), etc),
            "http://env.example/debian"
        );
        assert_eq!(
            mirror_from(Some(OsString::new()), etc),
            "http://mirror.example/debian"
        );
    }
}
