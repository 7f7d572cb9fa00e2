//! Routes (`RTM_NEWROUTE`) decoded and normalised: tables `main` and `local` only, named
//! devices, destinations and protocols spelt as `ip route` shows them, and the IPv6
//! link-local and multicast routes the kernel adds by itself left out.

use std::net::{IpAddr, Ipv6Addr};

use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteVia};

use super::addresses::{in_prefix, is_link_local};
use super::names::{address_text, family_name, name_of, scope_name, LinkNames};
use super::Route;

/// The routing table called `main`.
const RT_TABLE_MAIN: u32 = 254;

/// The routing table called `local`.
const RT_TABLE_LOCAL: u32 = 255;

/// Route protocol names, as in iproute2's `rt_protos`.
const PROTOCOL_NAMES: &[(u8, &str)] = &[
    (0, "unspec"),
    (1, "redirect"),
    (2, "kernel"),
    (3, "boot"),
    (4, "static"),
    (8, "gated"),
    (9, "ra"),
    (10, "mrt"),
    (11, "zebra"),
    (12, "bird"),
    (13, "dnrouted"),
    (14, "xorp"),
    (15, "ntk"),
    (16, "dhcp"),
    (17, "keepalived"),
    (18, "mrouted"),
    (42, "babel"),
    (99, "openr"),
    (186, "bgp"),
    (187, "isis"),
    (188, "ospf"),
    (189, "rip"),
    (192, "eigrp"),
];

/// A route protocol as iproute2 names it, or the number.
fn protocol_name(protocol: u8) -> String {
    PROTOCOL_NAMES
        .iter()
        .find(|(number, _)| *number == protocol)
        .map_or_else(|| protocol.to_string(), |(_, name)| (*name).to_string())
}

/// The name of a routing table that is read, or `None` for the others.
fn table_name(table: u32) -> Option<&'static str> {
    match table {
        RT_TABLE_MAIN => Some("main"),
        RT_TABLE_LOCAL => Some("local"),
        _ => None,
    }
}

/// Whether a route to `destination`/`length` is left out: IPv6 routes within `fe80::/10` or
/// `ff00::/8`.
fn is_excluded_route(destination: Option<IpAddr>, length: u8) -> bool {
    let Some(IpAddr::V6(v6)) = destination else {
        return false;
    };
    let multicast = Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0);
    (length >= 10 && is_link_local(v6)) || (length >= 8 && in_prefix(v6, multicast, 8))
}

/// A route destination as `ip route` shows it: `default`, `ADDRESS/PREFIX`, or `ADDRESS`
/// for a host route.
fn destination_text(destination: Option<IpAddr>, length: u8) -> String {
    match destination {
        _ if length == 0 => "default".to_string(),
        None => "default".to_string(),
        Some(address) => {
            let full = if address.is_ipv4() { 32 } else { 128 };
            if length == full {
                address.to_string()
            } else {
                address_text(address, length)
            }
        }
    }
}

/// An IP address from a route attribute, if it is one.
fn route_ip(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

/// A route message, normalised, or `None` when it is left out.
pub(super) fn route(message: &RouteMessage, names: &LinkNames) -> Option<Route> {
    let header = &message.header;
    let family = family_name(header.address_family)?;
    let mut table = u32::from(header.table);
    let mut destination = None;
    let mut gateway = None;
    let mut device = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(d) => destination = route_ip(d),
            RouteAttribute::Gateway(g) => gateway = route_ip(g).map(|ip| ip.to_string()),
            RouteAttribute::Via(RouteVia::Inet(v)) => gateway = Some(v.to_string()),
            RouteAttribute::Via(RouteVia::Inet6(v)) => gateway = Some(v.to_string()),
            RouteAttribute::Oif(index) => device = Some(name_of(*index, names)),
            _ => {}
        }
    }
    let table = table_name(table)?;
    if is_excluded_route(destination, header.destination_prefix_length) {
        return None;
    }
    Some(Route {
        table: table.to_string(),
        family: family.to_string(),
        destination: destination_text(destination, header.destination_prefix_length),
        gateway,
        device,
        protocol: protocol_name(header.protocol.into()),
        scope: scope_name(header.scope.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(2, "kernel")]
    #[case(3, "boot")]
    #[case(4, "static")]
    #[case(16, "dhcp")]
    #[case(77, "77")]
    fn protocols(#[case] protocol: u8, #[case] name: &str) {
        assert_eq!(protocol_name(protocol), name);
    }

    #[rstest]
    #[case(254, Some("main"))]
    #[case(255, Some("local"))]
    #[case(253, None)]
    #[case(0, None)]
    #[case(1000, None)]
    fn tables(#[case] table: u32, #[case] name: Option<&str>) {
        assert_eq!(table_name(table), name);
    }

    #[rstest]
    #[case(None, 0, "default")]
    #[case(Some("0.0.0.0"), 0, "default")]
    #[case(Some("192.0.2.0"), 24, "192.0.2.0/24")]
    #[case(Some("127.0.0.1"), 32, "127.0.0.1")]
    #[case(Some("2001:db8::"), 64, "2001:db8::/64")]
    #[case(Some("::1"), 128, "::1")]
    fn destinations(#[case] address: Option<&str>, #[case] length: u8, #[case] text: &str) {
        let address = address.map(|a| a.parse().unwrap());
        assert_eq!(destination_text(address, length), text);
    }

    #[rstest]
    #[case(None, 0, false)]
    #[case(Some("192.0.2.0"), 24, false)]
    #[case(Some("fe80::"), 64, true)]
    #[case(Some("fe80::fc:ff:fe00:1"), 128, true)]
    #[case(Some("ff00::"), 8, true)]
    #[case(Some("ff02::1"), 128, true)]
    #[case(Some("fd00::"), 64, false)]
    #[case(Some("::1"), 128, false)]
    #[case(Some("fe80::"), 9, false)]
    fn excluded_routes(#[case] address: Option<&str>, #[case] length: u8, #[case] excluded: bool) {
        let address = address.map(|a| a.parse().unwrap());
        assert_eq!(is_excluded_route(address, length), excluded);
    }
}
