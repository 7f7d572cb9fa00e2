//! Links (`RTM_NEWLINK`) decoded and normalised: named peers and masters, the kind, the
//! operational state, `ip link`'s flag names, and hardware addresses hidden unless all zeros.

use netlink_packet_route::link::{LinkAttribute, LinkInfo, LinkLayerType, LinkMessage, State};

use super::names::{name_of, LinkNames};
use super::Link;

/// What a peer in another network namespace is called.
const OTHER_NAMESPACE: &str = "(other namespace)";

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

/// A link message's name (`IFLA_IFNAME`).
pub(super) fn link_name(message: &LinkMessage) -> String {
    message
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::IfName(name) => Some(name.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// A link message, normalised.
pub(super) fn link(message: &LinkMessage, names: &LinkNames) -> Link {
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
fn peer_name(index: Option<u32>, other_namespace: bool, names: &LinkNames) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

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
        let names = LinkNames::from([(1, "lo".to_string()), (2, "veth1".to_string())]);
        assert_eq!(peer_name(index, netnsid, &names).as_deref(), expected);
    }
}
