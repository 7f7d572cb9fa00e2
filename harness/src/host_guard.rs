//! The host guard: a record of the machine's namespace-visible state, taken before and
//! after a run, so anything a scenario leaked onto the real host is named.

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
}

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
    /// Record the host as this process sees it (call it from the machine's namespaces).
    pub fn take() -> HostSnapshot {
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
                    .filter(|n| {
                        n.strip_prefix("nsconform-")
                            .is_some_and(|pid| !Path::new("/proc").join(pid).exists())
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
