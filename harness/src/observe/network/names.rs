//! Spellings shared by links, addresses and routes: links named instead of numbered, address
//! families, scopes, and addresses with their prefix length.

use std::collections::BTreeMap;
use std::net::IpAddr;

use netlink_packet_route::AddressFamily;

/// The names of the links in the dump, by interface index.
pub(super) type LinkNames = BTreeMap<u32, String>;

/// What a link that is not (or no longer) in the dump is called.
const UNKNOWN_LINK: &str = "(unknown)";

/// The name of link `index`, from the dump.
pub(super) fn name_of(index: u32, names: &LinkNames) -> String {
    names
        .get(&index)
        .cloned()
        .unwrap_or_else(|| UNKNOWN_LINK.to_string())
}

/// `inet`, `inet6`, or `None` for other families.
pub(super) fn family_name(family: AddressFamily) -> Option<&'static str> {
    match family {
        AddressFamily::Inet => Some("inet"),
        AddressFamily::Inet6 => Some("inet6"),
        _ => None,
    }
}

/// A scope as `ip` names it: `global`, `site`, `link`, `host`, `nowhere`, or the number.
pub(super) fn scope_name(scope: u8) -> String {
    match scope {
        0 => "global".to_string(),
        200 => "site".to_string(),
        253 => "link".to_string(),
        254 => "host".to_string(),
        255 => "nowhere".to_string(),
        other => other.to_string(),
    }
}

/// An address with its prefix length, always (`192.0.2.1/24`, `::1/128`).
pub(super) fn address_text(address: IpAddr, length: u8) -> String {
    format!("{address}/{length}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(0, "global")]
    #[case(200, "site")]
    #[case(253, "link")]
    #[case(254, "host")]
    #[case(255, "nowhere")]
    #[case(100, "100")]
    fn scopes(#[case] scope: u8, #[case] name: &str) {
        assert_eq!(scope_name(scope), name);
    }

    #[test]
    fn links_missing_from_the_dump_are_unknown() {
        let names = LinkNames::from([(1, "lo".to_string())]);
        assert_eq!(name_of(1, &names), "lo");
        assert_eq!(name_of(9, &names), UNKNOWN_LINK);
    }
}
