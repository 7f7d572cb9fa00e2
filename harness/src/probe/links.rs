//! Link kind probes: create a link of each kind (`veth`, `bridge`, `vlan`, ...) with `ip`, in
//! the probe's throw-away network namespace, and report `ip`'s complaint when it cannot.

use std::io::Write;
use std::process::{Command, Stdio};

use nix::sched::CloneFlags;

use super::namespaces::unshare_as_harness;
use crate::requires::{find_on_path, LinkKind};

/// In a new network namespace, create a link of `kind`.
pub(super) fn try_link_in_new_netns(kind: LinkKind) -> Result<(), String> {
    unshare_as_harness(CloneFlags::CLONE_NEWNET)?;
    try_link(kind)
}

/// The `ip -batch` lines that create a link of `kind` (and, for kinds that need one, the
/// veth it sits on).
fn commands_for(kind: LinkKind) -> &'static [&'static str] {
    match kind {
        LinkKind::Veth => &["link add p0 type veth peer name p1"],
        LinkKind::Bridge => &["link add b0 type bridge"],
        LinkKind::Dummy => &["link add d0 type dummy"],
        LinkKind::Vxlan => &["link add x0 type vxlan id 42 dstport 4789 local 127.0.0.1"],
        LinkKind::Macvlan => &[
            "link add p0 type veth peer name p1",
            "link add m0 link p0 type macvlan mode bridge",
        ],
        LinkKind::Ipvlan => &[
            "link add p0 type veth peer name p1",
            "link add i0 link p0 type ipvlan mode l2",
        ],
        LinkKind::Vlan => &[
            "link add p0 type veth peer name p1",
            "link add link p0 name v0 type vlan id 10",
        ],
    }
}

/// Create a link of `kind` with `ip` (in the throw-away network namespace).
fn try_link(kind: LinkKind) -> Result<(), String> {
    let ip = find_on_path("ip")
        .ok_or("`ip` (iproute2) is needed to probe link kinds and is not on PATH")?;
    let commands = commands_for(kind);
    let mut child = Command::new(ip)
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all((commands.join("\n") + "\n").as_bytes())
            .map_err(|e| format!("feeding ip: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("waiting for ip: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(reason(
        kind,
        commands,
        &String::from_utf8_lossy(&output.stderr),
    ))
}

/// Why `ip -batch` failed, from what it `said` on stderr: the command that failed, the error
/// it gave, and a hint when the kernel has no driver for `kind`.
fn reason(kind: LinkKind, commands: &[&str], said: &str) -> String {
    // `ip -batch` says which line failed: "Command failed -:2".
    let command = said
        .lines()
        .find_map(|l| l.trim().strip_prefix("Command failed -:"))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .and_then(|n| commands.get(n.checked_sub(1)?))
        .unwrap_or(&commands[commands.len() - 1]);
    // "Error: Unknown device type." or "RTNETLINK answers: Operation not permitted".
    let lines = || {
        said.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("Command failed"))
    };
    let error = lines()
        .find(|l| l.contains("rror") || l.starts_with("RTNETLINK"))
        .or_else(|| lines().next())
        .unwrap_or("failed without a message");
    let hint = if error.contains("Unknown device type") {
        format!(" (no {} driver in this kernel or its modules)", kind.name())
    } else {
        String::new()
    };
    format!("ip {command}: {error}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_failed_line_and_the_error() {
        let commands = commands_for(LinkKind::Ipvlan);
        assert_eq!(
            reason(
                LinkKind::Ipvlan,
                commands,
                "Error: Unknown device type.\nCommand failed -:2\n"
            ),
            "ip link add i0 link p0 type ipvlan mode l2: Error: Unknown device type. \
             (no ipvlan driver in this kernel or its modules)"
        );
        assert_eq!(
            reason(
                LinkKind::Ipvlan,
                commands,
                "RTNETLINK answers: Operation not permitted\nCommand failed -:1\n"
            ),
            "ip link add p0 type veth peer name p1: RTNETLINK answers: Operation not permitted"
        );
        // Without a line number, the last command is blamed.
        assert_eq!(
            reason(LinkKind::Veth, commands_for(LinkKind::Veth), ""),
            "ip link add p0 type veth peer name p1: failed without a message"
        );
    }
}
