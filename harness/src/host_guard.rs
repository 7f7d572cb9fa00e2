//! The host guard: a record of the machine's namespace-visible state, taken before and
//! after a run (and after each scenario with `nsconform run --paranoid`), so anything a
//! scenario leaked onto the real host is named: hostname and domain name, links, addresses
//! and routes (over rtnetlink), mounts, named network namespaces, host-wide sysctls and the
//! ones scenarios name, leftover scenario cgroups, and the runner's child processes.

use std::collections::BTreeSet;
use std::path::Path;

/// What the guard records about the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSnapshot {
    hostname: String,
    domainname: String,
    links: BTreeSet<String>,
    mounts: BTreeSet<String>,
    named_netns: BTreeSet<String>,
    scenario_cgroups: BTreeSet<String>,
    children: BTreeSet<String>,
    addresses: BTreeSet<String>,
    routes: BTreeSet<String>,
    sysctls: BTreeSet<String>,
}

/// Host-wide sysctls a namespace scenario could change by mistake (root in a user namespace
/// created by real root can still write some of them), always checked.
const HOST_SYSCTLS: &[&str] = &[
    "kernel.pid_max",
    "kernel.threads-max",
    "user.max_user_namespaces",
    "user.max_net_namespaces",
    "user.max_mnt_namespaces",
    "user.max_pid_namespaces",
    "user.max_uts_namespaces",
    "user.max_ipc_namespaces",
    "user.max_cgroup_namespaces",
    "user.max_time_namespaces",
    "net.ipv4.ip_forward",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ping_group_range",
];

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn dir_names(path: &Path) -> BTreeSet<String> {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

impl HostSnapshot {
    /// Record the host as this process sees it (call it from the machine's namespaces),
    /// including the sysctls named in `sysctls` (dotted, e.g. `net.ipv4.ip_forward`).
    pub fn take_with(sysctls: &[String]) -> HostSnapshot {
        let mut snapshot = HostSnapshot::take();
        for name in sysctls {
            snapshot.sysctls.insert(sysctl(name));
        }
        snapshot
    }

    /// Record the host as this process sees it (call it from the machine's namespaces).
    pub fn take() -> HostSnapshot {
        let network = crate::observe::network::observe_network().ok();
        let addresses = network
            .iter()
            .flat_map(|n| &n.addresses)
            .map(|a| format!("{} on {}", a.address, a.link))
            .collect();
        let routes = network
            .iter()
            .flat_map(|n| &n.routes)
            .map(|r| {
                let via = r
                    .gateway
                    .as_deref()
                    .map(|g| format!(" via {g}"))
                    .unwrap_or_default();
                let dev = r
                    .device
                    .as_deref()
                    .map(|d| format!(" dev {d}"))
                    .unwrap_or_default();
                format!(
                    "{} {}{via}{dev} (table {})",
                    r.family, r.destination, r.table
                )
            })
            .collect();
        let mounts = read_trimmed("/proc/self/mountinfo")
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let fstype = line.split_once(" - ")?.1.split_whitespace().next()?;
                Some(format!("{} ({fstype})", fields.get(4)?))
            })
            .collect();
        let scenario_cgroups = crate::cgroup::cgroup2_mount()
            .map(|mount| {
                let own = read_trimmed("/proc/self/cgroup")
                    .lines()
                    .find_map(|l| l.strip_prefix("0::").map(str::to_string))
                    .unwrap_or_default();
                dir_names(&mount.join(own.trim_start_matches('/')))
                    .into_iter()
                    // Another run's live supervisor owns its cgroup; a dead one's is a leak.
                    // (Checked in that order: a supervisor removes its cgroup before it exits.)
                    .filter(|n| {
                        n.strip_prefix("nsconform-")
                            .is_some_and(|pid| !Path::new("/proc").join(pid).exists())
                            && mount.join(own.trim_start_matches('/')).join(n).exists()
                    })
                    .collect()
            })
            .unwrap_or_default();
        HostSnapshot {
            hostname: read_trimmed("/proc/sys/kernel/hostname"),
            domainname: read_trimmed("/proc/sys/kernel/domainname"),
            links: dir_names(Path::new("/sys/class/net")),
            mounts,
            named_netns: dir_names(Path::new("/run/netns")),
            scenario_cgroups,
            addresses,
            routes,
            sysctls: HOST_SYSCTLS.iter().map(|name| sysctl(name)).collect(),
            children: children_of(std::process::id())
                .into_iter()
                .map(|pid| format!("{pid} ({})", read_trimmed(&format!("/proc/{pid}/comm"))))
                .collect(),
        }
    }

    /// What differs in `after` compared with `self`, one line per difference.
    pub fn leaks(&self, after: &HostSnapshot) -> Vec<String> {
        let mut leaks = Vec::new();
        if self.hostname != after.hostname {
            leaks.push(format!(
                "hostname changed from `{}` to `{}`",
                self.hostname, after.hostname
            ));
        }
        if self.domainname != after.domainname {
            leaks.push(format!(
                "domainname changed from `{}` to `{}`",
                self.domainname, after.domainname
            ));
        }
        for (what, before, now) in [
            ("link", &self.links, &after.links),
            ("mount", &self.mounts, &after.mounts),
            (
                "named network namespace",
                &self.named_netns,
                &after.named_netns,
            ),
            (
                "scenario cgroup",
                &self.scenario_cgroups,
                &after.scenario_cgroups,
            ),
            ("child process", &self.children, &after.children),
            ("address", &self.addresses, &after.addresses),
            ("route", &self.routes, &after.routes),
            ("sysctl value", &self.sysctls, &after.sysctls),
        ] {
            for added in now.difference(before) {
                leaks.push(format!("{what} appeared: {added}"));
            }
            for removed in before.difference(now) {
                leaks.push(format!("{what} disappeared: {removed}"));
            }
        }
        leaks
    }
}

/// `name = value` of a dotted sysctl name (`?` when it cannot be read).
fn sysctl(name: &str) -> String {
    let path = format!("/proc/sys/{}", name.replace('.', "/"));
    let value = std::fs::read_to_string(path).map_or_else(
        |_| "?".to_string(),
        |v| v.split_whitespace().collect::<Vec<_>>().join(" "),
    );
    format!("{name} = {value}")
}

/// Processes whose parent is `pid`.
pub(crate) fn children_of(pid: u32) -> BTreeSet<u32> {
    let mut children = BTreeSet::new();
    for name in dir_names(Path::new("/proc")) {
        if name.parse::<u32>().is_err() {
            continue;
        }
        let stat = read_trimmed(&format!("/proc/{name}/stat"));
        // The comm field is in parentheses and may hold spaces: parse after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            if let Ok(child) = name.parse() {
                children.insert(child);
            }
        }
    }
    children
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> HostSnapshot {
        HostSnapshot {
            hostname: "vm".into(),
            domainname: "(none)".into(),
            links: BTreeSet::from(["lo".to_string(), "eth0".to_string()]),
            mounts: BTreeSet::from(["/ (ext4)".to_string()]),
            named_netns: BTreeSet::new(),
            scenario_cgroups: BTreeSet::new(),
            children: BTreeSet::new(),
            addresses: BTreeSet::from(["127.0.0.1/8 on lo".to_string()]),
            routes: BTreeSet::new(),
            sysctls: BTreeSet::from(["kernel.pid_max = 32768".to_string()]),
        }
    }

    #[test]
    fn an_unchanged_host_has_no_leaks() {
        assert!(snapshot().leaks(&snapshot()).is_empty());
    }

    #[test]
    fn names_every_kind_of_leak() {
        let before = snapshot();
        let mut after = snapshot();
        after.hostname = "renamed".into();
        after.links.insert("veth0".into());
        after.mounts.insert("/tmp/m (tmpfs)".into());
        after.named_netns.insert("mynamespace".into());
        after.addresses.insert("192.0.2.1/24 on veth0".into());
        after.sysctls = BTreeSet::from(["kernel.pid_max = 4194304".to_string()]);
        let leaks = before.leaks(&after);
        for expected in [
            "hostname changed from `vm` to `renamed`",
            "link appeared: veth0",
            "mount appeared: /tmp/m (tmpfs)",
            "named network namespace appeared: mynamespace",
            "address appeared: 192.0.2.1/24 on veth0",
            "sysctl value appeared: kernel.pid_max = 4194304",
            "sysctl value disappeared: kernel.pid_max = 32768",
        ] {
            assert!(
                leaks.iter().any(|l| l == expected),
                "{expected} not in {leaks:?}"
            );
        }
    }

    #[test]
    fn reads_the_machine() {
        let now = HostSnapshot::take();
        assert!(now.links.contains("lo"));
        assert!(now
            .sysctls
            .iter()
            .any(|s| s.starts_with("kernel.pid_max = ")));
    }
}
