//! The links, addresses and routes of a network namespace, read over rtnetlink.
//!
//! [`observe_network`] opens a `NETLINK_ROUTE` socket, which belongs to the network namespace
//! of the calling thread (the process's, unless the thread has called `setns` or `unshare`),
//! and dumps links (`RTM_GETLINK`), addresses (`RTM_GETADDR`) and routes (`RTM_GETROUTE`).
//! A dump that a concurrent change interrupts (`NLM_F_DUMP_INTR`) is asked for again.
//!
//! The result is meant for snapshots, so the same namespace always gives the same output:
//! - No interface index appears anywhere: links, masters, peers and route devices are named.
//! - Links are sorted by name, addresses by (link, family, address) and routes by (table,
//!   family, destination, device), comparing the strings shown; any remaining tie is broken by
//!   the other fields, so the order is total.
//! - IPv6 link-local addresses (`fe80::/10`) are left out, and so are IPv6 routes whose
//!   destination lies in `fe80::/10` (the `fe80::/64` prefix routes and the local-table routes
//!   of link-local addresses) or in `ff00::/8` (multicast). The kernel adds these by itself,
//!   asynchronously, some time after a link comes up, so they would make snapshots flaky.
//! - Only the `main` and `local` routing tables are read; IPv4 and IPv6 only.
//! - A hardware address that is all zeros (as on `lo`) is shown as it is; any other is shown
//!   as `<set>`, because the kernel picks random ones for virtual links.
//!
//! How fields are spelt, following `ip`:
//! - `kind` is the `IFLA_LINKINFO` kind (`veth`, `bridge`, `macvlan`, ...); without one it is
//!   `loopback` for a loopback device, `ether` for other Ethernet devices, else the `ARPHRD`
//!   name in lower case (`none`, `sit`, ...), or `other` for a type this crate does not know.
//! - `state` is the operational state in lower case (`up`, `down`, `unknown`, ...), which the
//!   kernel updates asynchronously (through its link watcher) shortly after a carrier change.
//! - `flags` are the interface flags named and ordered as `ip link` prints them: `LOOPBACK`,
//!   `BROADCAST`, `POINTOPOINT`, `MULTICAST`, `NOARP`, `ALLMULTI`, `PROMISC`, `MASTER`,
//!   `SLAVE`, `DEBUG`, `DYNAMIC`, `AUTOMEDIA`, `PORTSEL`, `NOTRAILERS`, `UP`, `LOWER_UP`,
//!   `DORMANT`, `ECHO`. `ip`'s derived words `NO-CARRIER` and `M-DOWN` are not flags and are
//!   not shown (`state` and `peer` say the same).
//! - `peer` is the link named by `IFLA_LINK` (a veth's peer, a macvlan's or vlan's parent), or
//!   `(other namespace)` when it lives in another network namespace; `master` is the link named
//!   by `IFLA_MASTER` (a bridge or bond). A link that vanished during the dump is `(unknown)`.
//! - Addresses are `ADDRESS/PREFIX` (the local address for point-to-point IPv4 links), route
//!   destinations are `default`, `ADDRESS/PREFIX`, or just `ADDRESS` for host routes (`/32`,
//!   `/128`), as `ip route` shows them.
//! - Scopes are `global`, `site`, `link`, `host`, `nowhere` or a number; route protocols are
//!   named as in iproute2's `rt_protos` (`kernel`, `boot`, `static`, ...) or a number; tables
//!   are `main` or `local`. A multipath route has no single `gateway` or `device` (both null).
//!
//! An IPv6 address added without `nodad` is tentative until duplicate address detection ends,
//! and its local-table route appears only then: scenarios that snapshot routes right after
//! adding IPv6 addresses should add them with `nodad`.
//!
//! [`socket`] holds the netlink conversation; [`links`], [`addresses`] and [`routes`] decode
//! and normalise each kind of reply, with the spellings they share in [`names`]; [`order`]
//! sorts the result.

mod addresses;
mod links;
mod names;
mod order;
mod routes;
mod socket;

use std::io;

use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::route::RouteMessage;
use netlink_packet_route::RouteNetlinkMessage;
use serde::{Deserialize, Serialize};

use names::LinkNames;
use socket::{RouteSocket, DUMP_ATTEMPTS};

/// A network namespace's links, addresses and routes, normalised and sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Network {
    /// The links, sorted by name.
    pub(crate) links: Vec<Link>,
    /// The addresses except IPv6 link-local ones, sorted by (link, family, address).
    pub(crate) addresses: Vec<Address>,
    /// The routes of tables `main` and `local`, sorted by (table, family, destination, device).
    pub(crate) routes: Vec<Route>,
}

/// One network interface.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Link {
    /// Its name (`IFLA_IFNAME`).
    pub(crate) name: String,
    /// Its kind: `IFLA_LINKINFO`'s, else `loopback`, `ether`, the `ARPHRD` name, or `other`.
    pub(crate) kind: String,
    /// Its operational state in lower case (`up`, `down`, `unknown`, `lowerlayerdown`, ...).
    pub(crate) state: String,
    /// Its interface flags as `ip link` names and orders them (see the module doc).
    pub(crate) flags: Vec<String>,
    /// Its MTU.
    pub(crate) mtu: u32,
    /// The name of its master (bridge, bond, VRF), if it has one.
    pub(crate) master: Option<String>,
    /// The name of its peer or parent (`IFLA_LINK`), or `(other namespace)`.
    pub(crate) peer: Option<String>,
    /// Its hardware address: all zeros as they are, any other as `<set>`; none if it has none.
    pub(crate) mac: Option<String>,
}

/// One IP address on a link.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Address {
    /// The name of the link it is on.
    pub(crate) link: String,
    /// `inet` or `inet6`.
    pub(crate) family: String,
    /// The address and prefix length, e.g. `192.0.2.1/24`.
    pub(crate) address: String,
    /// Its scope: `global`, `site`, `link`, `host`, `nowhere` or a number.
    pub(crate) scope: String,
}

/// One route of table `main` or `local`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Route {
    /// `main` or `local`.
    pub(crate) table: String,
    /// `inet` or `inet6`.
    pub(crate) family: String,
    /// `default`, `ADDRESS/PREFIX`, or `ADDRESS` for a host route.
    pub(crate) destination: String,
    /// The gateway (`via`), if any.
    pub(crate) gateway: Option<String>,
    /// The name of the output link, if any.
    pub(crate) device: Option<String>,
    /// How it was installed: `kernel`, `boot`, `static`, ... or a number.
    pub(crate) protocol: String,
    /// Its scope: `global`, `site`, `link`, `host`, `nowhere` or a number.
    pub(crate) scope: String,
}

/// Why the network namespace could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NetworkError {
    /// The netlink socket could not be opened or connected.
    #[error("cannot open a NETLINK_ROUTE socket: {0}")]
    Socket(#[source] io::Error),
    /// Sending a request or receiving its reply failed.
    #[error("{request} dump: {source}")]
    Io {
        /// The request (`RTM_GETLINK`, ...).
        request: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The kernel answered with an error.
    #[error("{request} dump: the kernel answered errno {errno} ({})",
        io::Error::from_raw_os_error(*errno))]
    Kernel {
        /// The request (`RTM_GETLINK`, ...).
        request: &'static str,
        /// The (positive) errno.
        errno: i32,
    },
    /// A reply could not be decoded.
    #[error("{request} dump: cannot decode the reply: {detail}")]
    Decode {
        /// The request (`RTM_GETLINK`, ...).
        request: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// Every attempt at the dump was interrupted by a concurrent change.
    #[error("{request} dump: interrupted by concurrent changes {DUMP_ATTEMPTS} times")]
    Interrupted {
        /// The request (`RTM_GETLINK`, ...).
        request: &'static str,
    },
}

/// Links, addresses and routes of the calling process's network namespace, read with rtnetlink.
pub(crate) fn observe_network() -> Result<Network, NetworkError> {
    let mut socket = RouteSocket::open()?;
    let link_messages = socket.dump(
        "RTM_GETLINK",
        &RouteNetlinkMessage::GetLink(LinkMessage::default()),
    )?;
    let address_messages = socket.dump(
        "RTM_GETADDR",
        &RouteNetlinkMessage::GetAddress(AddressMessage::default()),
    )?;
    let route_messages = socket.dump(
        "RTM_GETROUTE",
        &RouteNetlinkMessage::GetRoute(RouteMessage::default()),
    )?;

    let links: Vec<&LinkMessage> = link_messages
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(link) => Some(link),
            _ => None,
        })
        .collect();
    let names: LinkNames = links
        .iter()
        .map(|l| (l.header.index, links::link_name(l)))
        .collect();

    let mut network = Network {
        links: links.iter().map(|l| links::link(l, &names)).collect(),
        addresses: address_messages
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => addresses::address(a, &names),
                _ => None,
            })
            .collect(),
        routes: route_messages
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => routes::route(r, &names),
                _ => None,
            })
            .collect(),
    };
    order::sort_network(&mut network);
    Ok(network)
}

#[cfg(test)]
mod tests {
    use super::*;

    // These tests only read the test process's own network namespace.

    #[test]
    fn loopback_is_seen() {
        let network = observe_network().unwrap();
        let lo = network
            .links
            .iter()
            .find(|l| l.name == "lo")
            .expect("lo is listed");
        assert_eq!(lo.kind, "loopback");
        assert!(lo.flags.contains(&"LOOPBACK".to_string()), "{:?}", lo.flags);
        assert!(lo.flags.contains(&"UP".to_string()), "{:?}", lo.flags);
        assert_eq!(lo.mac.as_deref(), Some("00:00:00:00:00:00"));
        assert_eq!(lo.peer, None);
        assert_eq!(lo.master, None);
        assert!(network.addresses.contains(&Address {
            link: "lo".to_string(),
            family: "inet".to_string(),
            address: "127.0.0.1/8".to_string(),
            scope: "host".to_string(),
        }));
        assert!(network.routes.iter().any(|r| r.table == "local"
            && r.destination == "127.0.0.1"
            && r.device.as_deref() == Some("lo")
            && r.protocol == "kernel"
            && r.scope == "host"));
    }

    #[test]
    fn output_is_normalised() {
        let network = observe_network().unwrap();
        let mut sorted = network.clone();
        order::sort_network(&mut sorted);
        assert_eq!(sorted, network);
        for link in &network.links {
            assert!(
                matches!(link.mac.as_deref(), None | Some("<set>")) || link.mac_is_zero(),
                "{link:?}"
            );
        }
        assert!(network
            .addresses
            .iter()
            .all(|a| !a.address.starts_with("fe80:")));
        assert!(network
            .routes
            .iter()
            .all(|r| !r.destination.starts_with("fe80:") && !r.destination.starts_with("ff")));
        assert!(network
            .routes
            .iter()
            .all(|r| r.table == "main" || r.table == "local"));
    }

    #[test]
    fn observing_twice_gives_the_same_output() {
        let first = serde_json::to_string(&observe_network().unwrap()).unwrap();
        for _ in 0..20 {
            let again = serde_json::to_string(&observe_network().unwrap()).unwrap();
            assert_eq!(again, first);
        }
    }

    impl Link {
        /// Whether the hardware address is all zeros.
        fn mac_is_zero(&self) -> bool {
            self.mac
                .as_deref()
                .is_some_and(|m| m.split(':').all(|b| b == "00"))
        }
    }
}
