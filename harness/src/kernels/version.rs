//! Debian package versions: ordering them the way dpkg does, and reading the kernel's
//! upstream version out of them.
//!
//! A Debian version is `[epoch:]upstream[-revision]`. Two versions compare by epoch (a
//! number), then upstream, then revision, each of the last two with dpkg's rule: alternate
//! runs of non-digits (compared character by character, `~` before everything, even the end,
//! and letters before other characters) and runs of digits (compared as numbers). That is
//! why `6.12.117-1~deb12u1` (a backport) sorts before `6.12.117-1`.

use std::cmp::Ordering;

/// Compare two Debian versions as `dpkg --compare-versions` does.
pub(crate) fn compare(a: &str, b: &str) -> Ordering {
    let (epoch_a, upstream_a, revision_a) = split(a);
    let (epoch_b, upstream_b, revision_b) = split(b);
    epoch_a
        .cmp(&epoch_b)
        .then_with(|| compare_part(upstream_a, upstream_b))
        .then_with(|| compare_part(revision_a, revision_b))
}

/// The upstream part of a Debian version: `6.1.192` for `6.1.192-2`, `6.12.101` for
/// `6.12.101-1~deb12u1`.
pub(crate) fn upstream(version: &str) -> &str {
    split(version).1
}

/// The leading numeric components of an upstream version: `[6, 12, 101]` for `6.12.101`,
/// `[7, 0]` for `7.0~rc3`. Stops at the first component that is not a plain number.
pub(crate) fn numbers(upstream: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for part in upstream.split('.') {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        match digits.parse() {
            Ok(number) => out.push(number),
            Err(_) => break,
        }
        if digits.len() != part.len() {
            break;
        }
    }
    out
}

/// Split into epoch, upstream and revision (the revision is empty when there is none).
fn split(version: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match version.split_once(':') {
        Some((epoch, rest)) if epoch.chars().all(|c| c.is_ascii_digit()) => {
            (epoch.parse().unwrap_or(0), rest)
        }
        _ => (0, version),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// dpkg's comparison of one part (upstream or revision).
fn compare_part(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        let (text_a, rest_a) = take_while(a, |c| !c.is_ascii_digit());
        let (text_b, rest_b) = take_while(b, |c| !c.is_ascii_digit());
        let ordering = compare_text(text_a, text_b);
        if ordering != Ordering::Equal {
            return ordering;
        }
        let (digits_a, rest_a) = take_while(rest_a, |c| c.is_ascii_digit());
        let (digits_b, rest_b) = take_while(rest_b, |c| c.is_ascii_digit());
        let ordering = compare_digits(digits_a, digits_b);
        if ordering != Ordering::Equal {
            return ordering;
        }
        a = rest_a;
        b = rest_b;
    }
    Ordering::Equal
}

/// Split off the longest prefix whose bytes satisfy `keep`.
fn take_while(bytes: &[u8], keep: impl Fn(&u8) -> bool) -> (&[u8], &[u8]) {
    let end = bytes.iter().position(|c| !keep(c)).unwrap_or(bytes.len());
    bytes.split_at(end)
}

/// dpkg's weight of a character in a non-digit run; the end of the run weighs 0.
fn weight(c: Option<&u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_alphabetic() => i32::from(*c),
        Some(c) => i32::from(*c) + 256,
    }
}

/// Compare two non-digit runs character by character.
fn compare_text(a: &[u8], b: &[u8]) -> Ordering {
    for i in 0..a.len().max(b.len()) {
        let ordering = weight(a.get(i)).cmp(&weight(b.get(i)));
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// Compare two digit runs as numbers of any length.
fn compare_digits(a: &[u8], b: &[u8]) -> Ordering {
    let trim = |d: &'_ [u8]| -> Vec<u8> { d.iter().copied().skip_while(|c| *c == b'0').collect() };
    let (a, b) = (trim(a), trim(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("6.1.192-2", "6.1.192-3", Ordering::Less)]
    #[case("6.12.117-1~deb12u1", "6.12.117-1", Ordering::Less)]
    #[case("6.12.118-1", "6.12.117-1", Ordering::Greater)]
    #[case("6.12.9-1", "6.12.10-1", Ordering::Less)]
    #[case("7.0~rc3-1~exp1", "7.0-1", Ordering::Less)]
    #[case("1:1.0-1", "2.0-1", Ordering::Greater)]
    #[case("1.0", "1.0-0", Ordering::Equal)]
    #[case("1.0a", "1.0+", Ordering::Less)]
    #[case("1.0", "1.0a", Ordering::Less)]
    #[case("5.10.262-1", "5.10.262-1", Ordering::Equal)]
    fn compares_like_dpkg(#[case] a: &str, #[case] b: &str, #[case] expected: Ordering) {
        assert_eq!(compare(a, b), expected, "{a} vs {b}");
        assert_eq!(compare(b, a), expected.reverse(), "{b} vs {a}");
    }

    #[rstest]
    #[case("6.1.192-2", "6.1.192", &[6, 1, 192])]
    #[case("6.12.101-1~deb12u1", "6.12.101", &[6, 12, 101])]
    #[case("1:7.0~rc3-1", "7.0~rc3", &[7, 0])]
    #[case("7.2.13", "7.2.13", &[7, 2, 13])]
    fn reads_upstream(#[case] version: &str, #[case] up: &str, #[case] nums: &[u64]) {
        assert_eq!(upstream(version), up);
        assert_eq!(numbers(upstream(version)), nums);
    }
}
