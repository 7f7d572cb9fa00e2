//! The order snapshots list things in, so the same namespace always gives the same output:
//! links by name, addresses by (link, family, address), routes by (table, family,
//! destination, device), with any remaining tie broken by the other fields.

use super::Network;

/// Sort links by name, addresses by (link, family, address), routes by (table, family,
/// destination, device); remaining ties are broken by the other fields.
pub(super) fn sort_network(network: &mut Network) {
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
    use super::super::{Address, Link, Route};
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
}
