//! Addresses (`RTM_NEWADDR`) decoded and normalised: `ADDRESS/PREFIX` on a named link, IPv6
//! link-local addresses left out.

use std::net::{IpAddr, Ipv6Addr};

use netlink_packet_route::address::{AddressAttribute, AddressMessage};

use super::names::{address_text, family_name, name_of, scope_name, LinkNames};
use super::Address;

/// Whether `address` lies in `prefix`/`length`.
pub(super) fn in_prefix(address: Ipv6Addr, prefix: Ipv6Addr, length: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - length).unwrap_or(0);
    u128::from(address) & mask == u128::from(prefix) & mask
}

/// Whether an IPv6 address is link-local (`fe80::/10`).
pub(super) fn is_link_local(address: Ipv6Addr) -> bool {
    in_prefix(address, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10)
}

/// Whether an address is left out (IPv6 link-local).
fn is_excluded_address(address: IpAddr) -> bool {
    matches!(address, IpAddr::V6(v6) if is_link_local(v6))
}

/// An address message, normalised, or `None` when it is left out.
pub(super) fn address(message: &AddressMessage, names: &LinkNames) -> Option<Address> {
    let family = family_name(message.header.family)?;
    let mut address = None;
    let mut local = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Address(a) => address = Some(*a),
            AddressAttribute::Local(a) => local = Some(*a),
            _ => {}
        }
    }
    let shown = local.or(address)?;
    if is_excluded_address(shown) {
        return None;
    }
    Some(Address {
        link: name_of(message.header.index, names),
        family: family.to_string(),
        address: address_text(shown, message.header.prefix_len),
        scope: scope_name(message.header.scope.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("127.0.0.1", false)]
    #[case("::1", false)]
    #[case("fd00::2", false)]
    #[case("fe80::1", true)]
    #[case("febf::1", true)]
    #[case("fec0::1", false)]
    #[case("ff02::1", false)]
    fn excluded_addresses(#[case] address: &str, #[case] excluded: bool) {
        assert_eq!(is_excluded_address(address.parse().unwrap()), excluded);
    }
}
