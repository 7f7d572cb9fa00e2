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

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr};

use netlink_packet_core::{
    NetlinkBuffer, NetlinkMessage, NetlinkPayload, NLMSG_ALIGNTO, NLM_F_DUMP, NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkInfo, LinkLayerType, LinkMessage, State};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteVia};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use serde::{Deserialize, Serialize};

/// How many times a dump interrupted by a concurrent change is asked for before giving up.
const DUMP_ATTEMPTS: usize = 5;

/// The receive buffer offered to the kernel: the largest datagram it makes for a dump.
const RECEIVE_BUFFER: usize = 32 * 1024;

/// The routing table called `main`.
const RT_TABLE_MAIN: u32 = 254;

/// The routing table called `local`.
const RT_TABLE_LOCAL: u32 = 255;

/// What a peer in another network namespace is called.
const OTHER_NAMESPACE: &str = "(other namespace)";

/// What a link that is not (or no longer) in the dump is called.
const UNKNOWN_LINK: &str = "(unknown)";

/// The interface flags that are shown, with `ip link`'s names, in the order it prints them.
const FLAG_NAMES: &[(u32, &str)] = &[
    (libc::IFF_LOOPBACK as u32, "LOOPBACK"),
    (libc::IFF_BROADCAST as u32, "BROADCAST"),
    (libc::IFF_POINTOPOINT as u32, "POINTOPOINT"),
    (libc::IFF_MULTICAST as u32, "MULTICAST"),
    (libc::IFF_NOARP as u32, "NOARP"),
    (libc::IFF_ALLMULTI as u32, "ALLMULTI"),
    (libc::IFF_PROMISC as u32, "PROMISC"),
    (libc::IFF_MASTER as u32, "MASTER"),
    (libc::IFF_SLAVE as u32, "SLAVE"),
    (libc::IFF_DEBUG as u32, "DEBUG"),
    (libc::IFF_DYNAMIC as u32, "DYNAMIC"),
    (libc::IFF_AUTOMEDIA as u32, "AUTOMEDIA"),
    (libc::IFF_PORTSEL as u32, "PORTSEL"),
    (libc::IFF_NOTRAILERS as u32, "NOTRAILERS"),
    (libc::IFF_UP as u32, "UP"),
    (libc::IFF_LOWER_UP as u32, "LOWER_UP"),
    (libc::IFF_DORMANT as u32, "DORMANT"),
    (libc::IFF_ECHO as u32, "ECHO"),
];

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
    let names: BTreeMap<u32, String> = links
        .iter()
        .map(|l| (l.header.index, link_name(l)))
        .collect();

    let mut network = Network {
        links: links.iter().map(|l| link(l, &names)).collect(),
        addresses: address_messages
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => address(a, &names),
                _ => None,
            })
            .collect(),
        routes: route_messages
            .iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => route(r, &names),
                _ => None,
            })
            .collect(),
    };
    sort_network(&mut network);
    Ok(network)
}

/// A synchronous `NETLINK_ROUTE` socket connected to the kernel.
struct RouteSocket {
    /// The socket.
    socket: Socket,
    /// The sequence number of the last request sent.
    sequence: u32,
}

impl RouteSocket {
    /// Open a socket in the calling thread's network namespace.
    fn open() -> Result<RouteSocket, NetworkError> {
        let socket = Socket::new(NETLINK_ROUTE).map_err(NetworkError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NetworkError::Socket)?;
        Ok(RouteSocket {
            socket,
            sequence: 0,
        })
    }

    /// The messages of a complete dump for `request`, asked again while interrupted.
    fn dump(
        &mut self,
        name: &'static str,
        request: &RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetworkError> {
        for _ in 0..DUMP_ATTEMPTS {
            if let Some(messages) = self.dump_once(name, request)? {
                return Ok(messages);
            }
        }
        Err(NetworkError::Interrupted { request: name })
    }

    /// The messages of one dump for `request`, or `None` if it was interrupted.
    fn dump_once(
        &mut self,
        name: &'static str,
        request: &RouteNetlinkMessage,
    ) -> Result<Option<Vec<RouteNetlinkMessage>>, NetworkError> {
        let io_error = |source| NetworkError::Io {
            request: name,
            source,
        };
        let decode_error = |detail: String| NetworkError::Decode {
            request: name,
            detail,
        };

        self.sequence = self.sequence.wrapping_add(1);
        let mut message = NetlinkMessage::from(request.clone());
        message.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        message.header.sequence_number = self.sequence;
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        retry_interrupted(|| self.socket.send(&bytes, 0)).map_err(io_error)?;

        let mut replies = Vec::new();
        let mut interrupted = false;
        loop {
            let datagram = self.receive().map_err(io_error)?;
            if datagram.is_empty() {
                return Err(decode_error("empty datagram before NLMSG_DONE".to_string()));
            }
            for part in split_datagram(&datagram).map_err(decode_error)? {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(part)
                    .map_err(|e| decode_error(e.to_string()))?;
                if reply.header.sequence_number != self.sequence {
                    continue;
                }
                interrupted |= reply.header.flags & NLM_F_DUMP_INTR != 0;
                match reply.payload {
                    NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                    NetlinkPayload::Done(done) if done.code < 0 => {
                        return Err(NetworkError::Kernel {
                            request: name,
                            errno: done.code.saturating_neg(),
                        });
                    }
                    NetlinkPayload::Done(_) => return Ok((!interrupted).then_some(replies)),
                    NetlinkPayload::Error(error) => {
                        if let Some(code) = error.code {
                            return Err(NetworkError::Kernel {
                                request: name,
                                errno: code.get().saturating_neg(),
                            });
                        }
                    }
                    NetlinkPayload::Overrun(_) => {
                        return Err(decode_error("NLMSG_OVERRUN".to_string()));
                    }
                    _ => {}
                }
            }
        }
    }

    /// One whole datagram, however large.
    fn receive(&self) -> io::Result<Vec<u8>> {
        // Peeking with a large buffer also lets the kernel pack more messages per datagram.
        let mut buffer: Vec<u8> = Vec::with_capacity(RECEIVE_BUFFER);
        let (size, _) = retry_interrupted(|| {
            buffer.clear();
            self.socket
                .recv_from(&mut buffer, libc::MSG_PEEK | libc::MSG_TRUNC)
        })?;
        buffer = Vec::with_capacity(size.max(RECEIVE_BUFFER));
        let (received, _) = retry_interrupted(|| {
            buffer.clear();
            self.socket.recv_from(&mut buffer, 0)
        })?;
        if received != buffer.len() {
            return Err(io::Error::other("netlink datagram was truncated"));
        }
        Ok(buffer)
    }
}

/// `call`'s result, calling it again while a signal interrupts it (`EINTR`).
fn retry_interrupted<T>(mut call: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match call() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// The netlink messages packed in one datagram.
fn split_datagram(datagram: &[u8]) -> Result<Vec<&[u8]>, String> {
    let align = usize::from(NLMSG_ALIGNTO);
    let mut parts = Vec::new();
    let mut rest = datagram;
    while !rest.is_empty() {
        let buffer = NetlinkBuffer::new_checked(rest).map_err(|e| e.to_string())?;
        let length = usize::try_from(buffer.length()).map_err(|e| e.to_string())?;
        parts.push(&rest[..length]);
        let aligned = length.div_ceil(align) * align;
        rest = rest.get(aligned..).unwrap_or_default();
    }
    Ok(parts)
}

/// A link message's name (`IFLA_IFNAME`).
fn link_name(message: &LinkMessage) -> String {
    message
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The name of link `index`, from the dump.
fn name_of(index: u32, names: &BTreeMap<u32, String>) -> String {
    names
        .get(&index)
        .cloned()
        .unwrap_or_else(|| UNKNOWN_LINK.to_string())
}

/// A link message, normalised.
fn link(message: &LinkMessage, names: &BTreeMap<u32, String>) -> Link {
    let mut info_kind = None;
    let mut state = None;
    let mut mtu = 0;
    let mut master = None;
    let mut peer_index = None;
    let mut other_namespace = false;
    let mut hardware_address = None;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::LinkInfo(infos) => {
                info_kind = infos.iter().find_map(|i| match i {
                    LinkInfo::Kind(kind) => Some(kind.to_string()),
                    _ => None,
                });
            }
            LinkAttribute::OperState(s) => state = Some(state_name(*s)),
            LinkAttribute::Mtu(m) => mtu = *m,
            LinkAttribute::Controller(index) => master = Some(name_of(*index, names)),
            LinkAttribute::Link(index) => peer_index = Some(*index),
            LinkAttribute::LinkNetNsId(_) => other_namespace = true,
            LinkAttribute::Address(bytes) => hardware_address = Some(bytes.as_slice()),
            _ => {}
        }
    }
    Link {
        name: link_name(message),
        kind: link_kind(info_kind.as_deref(), message.header.link_layer_type),
        state: state.unwrap_or_else(|| "unknown".to_string()),
        flags: flag_names(message.header.flags.bits()),
        mtu,
        master,
        peer: peer_name(peer_index, other_namespace, names),
        mac: hardware_address.and_then(normalise_mac),
    }
}

/// A link's kind: the `IFLA_LINKINFO` kind if any, else one derived from its `ARPHRD` type.
fn link_kind(info_kind: Option<&str>, link_type: LinkLayerType) -> String {
    match (info_kind, link_type) {
        (Some(kind), _) if !kind.is_empty() => kind.to_string(),
        (_, LinkLayerType::Loopback) => "loopback".to_string(),
        (_, LinkLayerType::Ether) => "ether".to_string(),
        // netlink-packet-route folds types it does not know into ARPHRD_VOID.
        (_, LinkLayerType::Void) => "other".to_string(),
        (_, other) => other.to_string().to_lowercase(),
    }
}

/// An operational state in lower case (`up`, `lowerlayerdown`, or a number).
fn state_name(state: State) -> String {
    state.to_string().to_lowercase()
}

/// The names of the interface flags set in `bits`, in `ip link`'s order.
fn flag_names(bits: u32) -> Vec<String> {
    FLAG_NAMES
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| (*name).to_string())
        .collect()
}

/// A link's peer or parent from `IFLA_LINK` and whether `IFLA_LINK_NETNSID` was present.
fn peer_name(
    index: Option<u32>,
    other_namespace: bool,
    names: &BTreeMap<u32, String>,
) -> Option<String> {
    match index? {
        0 => None,
        _ if other_namespace => Some(OTHER_NAMESPACE.to_string()),
        index => Some(
            names
                .get(&index)
                .cloned()
                .unwrap_or_else(|| OTHER_NAMESPACE.to_string()),
        ),
    }
}

/// A hardware address: all zeros kept (as `00:00:...`), any other as `<set>`, none if empty.
fn normalise_mac(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        None
    } else if bytes.iter().all(|b| *b == 0) {
        Some(vec!["00"; bytes.len()].join(":"))
    } else {
        Some("<set>".to_string())
    }
}

/// `inet`, `inet6`, or `None` for other families.
fn family_name(family: AddressFamily) -> Option<&'static str> {
    match family {
        AddressFamily::Inet => Some("inet"),
        AddressFamily::Inet6 => Some("inet6"),
        _ => None,
    }
}

/// A scope as `ip` names it: `global`, `site`, `link`, `host`, `nowhere`, or the number.
fn scope_name(scope: u8) -> String {
    match scope {
        0 => "global".to_string(),
        200 => "site".to_string(),
        253 => "link".to_string(),
        254 => "host".to_string(),
        255 => "nowhere".to_string(),
        other => other.to_string(),
    }
}

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

/// Whether `address` lies in `prefix`/`length`.
fn in_prefix(address: Ipv6Addr, prefix: Ipv6Addr, length: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - length).unwrap_or(0);
    u128::from(address) & mask == u128::from(prefix) & mask
}

/// Whether an IPv6 address is link-local (`fe80::/10`).
fn is_link_local(address: Ipv6Addr) -> bool {
    in_prefix(address, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10)
}

/// Whether an address is left out (IPv6 link-local).
fn is_excluded_address(address: IpAddr) -> bool {
    matches!(address, IpAddr::V6(v6) if is_link_local(v6))
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

/// An address with its prefix length, always (`192.0.2.1/24`, `::1/128`).
fn address_text(address: IpAddr, length: u8) -> String {
    format!("{address}/{length}")
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

/// An address message, normalised, or `None` when it is left out.
fn address(message: &AddressMessage, names: &BTreeMap<u32, String>) -> Option<Address> {
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

/// An IP address from a route attribute, if it is one.
fn route_ip(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

/// A route message, normalised, or `None` when it is left out.
fn route(message: &RouteMessage, names: &BTreeMap<u32, String>) -> Option<Route> {
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

/// Sort links by name, addresses by (link, family, address), routes by (table, family,
/// destination, device); remaining ties are broken by the other fields.
fn sort_network(network: &mut Network) {
    network.links.sort();
    network.addresses.sort();
    network.routes.sort_by(|a, b| {
        (&a.table, &a.family, &a.destination, &a.device)
            .cmp(&(&b.table, &b.family, &b.destination, &b.device))
            .then_with(|| a.cmp(b))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// A route with the fields that matter for sorting.
    fn route_to(table: &str, family: &str, destination: &str, device: Option<&str>) -> Route {
        Route {
            table: table.to_string(),
            family: family.to_string(),
            destination: destination.to_string(),
            gateway: None,
            device: device.map(str::to_string),
            protocol: "kernel".to_string(),
            scope: "global".to_string(),
        }
    }

    #[rstest]
    #[case(0, &[])]
    #[case(0x1 | 0x8 | 0x10000, &["LOOPBACK", "UP", "LOWER_UP"])]
    #[case(0x1 | 0x2 | 0x1000 | 0x10000 | 0x40, &["BROADCAST", "MULTICAST", "UP", "LOWER_UP"])]
    #[case(0x2 | 0x80, &["BROADCAST", "NOARP"])]
    #[case(0x10 | 0x80 | 0x1, &["POINTOPOINT", "NOARP", "UP"])]
    #[case(0x100 | 0x200 | 0x20000, &["ALLMULTI", "PROMISC", "DORMANT"])]
    #[case(0x400 | 0x800, &["MASTER", "SLAVE"])]
    fn flags_are_named_in_ip_order(#[case] bits: u32, #[case] expected: &[&str]) {
        assert_eq!(flag_names(bits), expected);
    }

    #[rstest]
    #[case(Some("veth"), LinkLayerType::Ether, "veth")]
    #[case(Some("bridge"), LinkLayerType::Ether, "bridge")]
    #[case(Some(""), LinkLayerType::Ether, "ether")]
    #[case(None, LinkLayerType::Loopback, "loopback")]
    #[case(None, LinkLayerType::Ether, "ether")]
    #[case(None, LinkLayerType::Sit, "sit")]
    #[case(None, LinkLayerType::None, "none")]
    #[case(None, LinkLayerType::Void, "other")]
    fn kinds(#[case] info: Option<&str>, #[case] link_type: LinkLayerType, #[case] kind: &str) {
        assert_eq!(link_kind(info, link_type), kind);
    }

    #[rstest]
    #[case(State::Up, "up")]
    #[case(State::Down, "down")]
    #[case(State::Unknown, "unknown")]
    #[case(State::LowerLayerDown, "lowerlayerdown")]
    #[case(State::NotPresent, "notpresent")]
    #[case(State::Dormant, "dormant")]
    #[case(State::Testing, "testing")]
    #[case(State::Other(9), "9")]
    fn states(#[case] state: State, #[case] name: &str) {
        assert_eq!(state_name(state), name);
    }

    #[rstest]
    #[case(&[], None)]
    #[case(&[0, 0, 0, 0, 0, 0], Some("00:00:00:00:00:00"))]
    #[case(&[0, 0, 0, 0], Some("00:00:00:00"))]
    #[case(&[0x02, 0xfc, 0, 0, 0, 1], Some("<set>"))]
    #[case(&[0, 0, 0, 0, 0, 1], Some("<set>"))]
    fn macs(#[case] bytes: &[u8], #[case] expected: Option<&str>) {
        assert_eq!(normalise_mac(bytes).as_deref(), expected);
    }

    #[rstest]
    #[case(None, false, None)]
    #[case(Some(0), false, None)]
    #[case(Some(2), false, Some("veth1"))]
    #[case(Some(2), true, Some(OTHER_NAMESPACE))]
    #[case(Some(7), false, Some(OTHER_NAMESPACE))]
    fn peers(#[case] index: Option<u32>, #[case] netnsid: bool, #[case] expected: Option<&str>) {
        let names = BTreeMap::from([(1, "lo".to_string()), (2, "veth1".to_string())]);
        assert_eq!(peer_name(index, netnsid, &names).as_deref(), expected);
    }

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

    #[rstest]
    #[case(&[("main", "inet", "default", Some("eth0")), ("local", "inet", "127.0.0.1", Some("lo"))],
        &["local inet 127.0.0.1", "main inet default"])]
    #[case(&[("main", "inet6", "::1", Some("lo")), ("main", "inet", "default", Some("eth0"))],
        &["main inet default", "main inet6 ::1"])]
    #[case(&[("main", "inet", "192.0.2.0/24", Some("b")),
             ("main", "inet", "192.0.2.0/24", Some("a")),
             ("main", "inet", "192.0.2.0/24", None)],
        &["main inet 192.0.2.0/24 -", "main inet 192.0.2.0/24 a", "main inet 192.0.2.0/24 b"])]
    fn routes_are_sorted(
        #[case] routes: &[(&str, &str, &str, Option<&str>)],
        #[case] expected: &[&str],
    ) {
        let mut network = Network {
            routes: routes
                .iter()
                .map(|(t, f, d, dev)| route_to(t, f, d, *dev))
                .collect(),
            ..Network::default()
        };
        sort_network(&mut network);
        let shown: Vec<String> = network
            .routes
            .iter()
            .map(|r| {
                let text = format!("{} {} {}", r.table, r.family, r.destination);
                let unique = routes.iter().filter(|x| x.2 == r.destination).count() > 1;
                if unique {
                    format!("{text} {}", r.device.as_deref().unwrap_or("-"))
                } else {
                    text
                }
            })
            .collect();
        assert_eq!(shown, expected);
    }

    #[test]
    fn addresses_and_links_are_sorted() {
        let address = |link: &str, family: &str, address: &str| Address {
            link: link.to_string(),
            family: family.to_string(),
            address: address.to_string(),
            scope: "global".to_string(),
        };
        let link = |name: &str| Link {
            name: name.to_string(),
            kind: "dummy".to_string(),
            state: "down".to_string(),
            flags: Vec::new(),
            mtu: 1500,
            master: None,
            peer: None,
            mac: None,
        };
        let mut network = Network {
            links: vec![link("veth0"), link("lo"), link("br0")],
            addresses: vec![
                address("veth0", "inet6", "2001:db8::1/64"),
                address("veth0", "inet", "192.0.2.1/24"),
                address("lo", "inet", "127.0.0.1/8"),
                address("veth0", "inet", "10.0.0.1/8"),
            ],
            routes: Vec::new(),
        };
        sort_network(&mut network);
        let names: Vec<&str> = network.links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["br0", "lo", "veth0"]);
        let addresses: Vec<&str> = network
            .addresses
            .iter()
            .map(|a| a.address.as_str())
            .collect();
        assert_eq!(
            addresses,
            [
                "127.0.0.1/8",
                "10.0.0.1/8",
                "192.0.2.1/24",
                "2001:db8::1/64"
            ]
        );
    }

    #[rstest]
    #[case(&[], 0)]
    #[case(&[16, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0], 1)]
    #[case(&[20, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
             16, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0], 2)]
    fn datagrams_are_split(#[case] datagram: &[u8], #[case] count: usize) {
        assert_eq!(split_datagram(datagram).unwrap().len(), count);
    }

    #[test]
    fn truncated_datagrams_are_rejected() {
        assert!(split_datagram(&[40, 0, 0, 0, 3, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    // The tests below only read the test process's own network namespace.

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
        sort_network(&mut sorted);
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
    fn kernel_errors_carry_the_errno() {
        // With strict checking, the kernel refuses a link dump filtered by index.
        let mut socket = RouteSocket::open().unwrap();
        socket.socket.set_netlink_get_strict_chk(true).unwrap();
        let mut request = LinkMessage::default();
        request.header.index = 1;
        let error = socket
            .dump("RTM_GETLINK", &RouteNetlinkMessage::GetLink(request))
            .unwrap_err();
        assert!(
            matches!(
                error,
                NetworkError::Kernel {
                    request: "RTM_GETLINK",
                    errno: libc::EINVAL
                }
            ),
            "{error}"
        );
        // The socket is still usable afterwards.
        socket.socket.set_netlink_get_strict_chk(false).unwrap();
        let links = socket
            .dump(
                "RTM_GETLINK",
                &RouteNetlinkMessage::GetLink(LinkMessage::default()),
            )
            .unwrap();
        assert!(!links.is_empty());
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
