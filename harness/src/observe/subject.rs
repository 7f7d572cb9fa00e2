//! What the observed actor reads about itself: values that only its own namespaces show
//! correctly (its hostname, its ids as it sees them, its links and mounts, its view of its
//! cgroup, the IPC objects and sysctls of its namespaces).
//!
//! `proc_dir` is the actor's own `/proc/PID` directory, opened by the orchestrator in the
//! host's `/proc`: it works even when the actor's own `/proc` belongs to another PID
//! namespace. Files read through it are rendered for the reader (this process).

use std::os::fd::OwnedFd;

use serde_json::{json, Map, Value};

use super::{read_at, ObserveError, SubjectQuery};
use crate::scenario::model::ObservationKind;

/// The subject's part of every kind in `query`, merged into one object.
pub(crate) fn observe(query: &SubjectQuery, proc_dir: &OwnedFd) -> Result<Value, ObserveError> {
    let mut out = Map::new();
    for kind in &query.kinds {
        let part = match kind {
            ObservationKind::Identity => identity(),
            ObservationKind::Network => network()?,
            ObservationKind::Mounts => json!({
                "mounts": mounts(&read_at(proc_dir, "mountinfo")?, &query.mounts_under),
                "proc_is_own": proc_is_own(),
            }),
            ObservationKind::Cgroup => {
                json!({ "cgroup": { "inside": cgroup_v2_path(&read_at(proc_dir, "cgroup")?) } })
            }
            ObservationKind::Ipc => ipc(proc_dir)?,
            ObservationKind::Sysctl => sysctls(proc_dir, &query.sysctls)?,
            ObservationKind::Maps | ObservationKind::Namespaces | ObservationKind::Time => continue,
        };
        if let Value::Object(fields) = part {
            out.extend(fields);
        }
    }
    Ok(Value::Object(out))
}

/// Whether the `/proc` mounted in the caller's mount namespace belongs to its own PID
/// namespace: `/proc/self` then names the caller's own PID. A tool that forgets to mount a
/// fresh `/proc` for a new PID namespace leaves the parent's, where `/proc/self` names the
/// caller by its PID out there (or nothing, with no `/proc` at all).
pub(crate) fn proc_is_own() -> bool {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|target| target.to_str()?.parse::<i32>().ok())
        == Some(nix::unistd::getpid().as_raw())
}

/// Hostname, domain name, PIDs, ids and groups, by system calls.
pub(crate) fn identity() -> Value {
    let uname = nix::sys::utsname::uname().ok();
    let text = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uname
            .as_ref()
            .map(|u| f(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let groups: Vec<u32> = nix::unistd::getgroups()
        .unwrap_or_default()
        .iter()
        .map(|g| g.as_raw())
        .collect();
    json!({
        "hostname": text(|u| u.nodename()),
        "domainname": text(|u| u.domainname()),
        "pid": { "inside": nix::unistd::getpid().as_raw() },
        "ppid": { "inside": nix::unistd::getppid().as_raw() },
        "uid": { "inside": nix::unistd::getuid().as_raw() },
        "gid": { "inside": nix::unistd::getgid().as_raw() },
        "groups": groups,
    })
}

fn network() -> Result<Value, ObserveError> {
    let network =
        super::network::observe_network().map_err(|e| ObserveError::Network(e.to_string()))?;
    serde_json::to_value(network).map_err(|e| ObserveError::Network(e.to_string()))
}

/// The `0::` (cgroup v2) path of a `/proc/PID/cgroup` text.
pub(crate) fn cgroup_v2_path(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("")
        .to_string()
}

/// Mounts from `mountinfo` text whose mount point is one of `under` or below it.
///
/// Each becomes `{mount_point, root, fstype, source, options, super_options, propagation}`.
/// Machine-dependent super options (`size=`, `nr_inodes=`) are dropped; peer group numbers
/// are reduced to the propagation kind (`private`, `shared`, `slave`, `unbindable`).
pub(crate) fn mounts(mountinfo: &str, under: &[String]) -> Vec<Value> {
    let keep = |point: &str| is_under(point, under);
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split_whitespace().collect();
            let point = unescape(fields.get(4)?);
            if !keep(&point) {
                return None;
            }
            let optional = fields.get(6..).unwrap_or(&[]);
            let mut propagation: Vec<&str> = optional
                .iter()
                .filter_map(|f| match f.split(':').next()? {
                    "shared" => Some("shared"),
                    "master" => Some("slave"),
                    "unbindable" => Some("unbindable"),
                    _ => None,
                })
                .collect();
            if propagation.is_empty() {
                propagation.push("private");
            }
            let after: Vec<&str> = after.split_whitespace().collect();
            let super_options: Vec<&str> = after
                .get(2)
                .unwrap_or(&"")
                .split(',')
                .filter(|o| {
                    !o.starts_with("size=") && !o.starts_with("nr_inodes=") && !o.is_empty()
                })
                .collect();
            Some(json!({
                "mount_point": point,
                "root": unescape(fields.get(3)?),
                "fstype": after.first()?,
                "source": unescape(after.get(1)?),
                "options": fields.get(5)?,
                "super_options": super_options.join(","),
                "propagation": propagation.join(","),
            }))
        })
        .collect()
}

/// Whether mount point `point` is one of `prefixes` or below one (`/` keeps everything).
pub(crate) fn is_under(point: &str, prefixes: &[String]) -> bool {
    prefixes.iter().any(|prefix| {
        let prefix = prefix.trim_end_matches('/');
        point == prefix || point.starts_with(&format!("{prefix}/")) || prefix.is_empty()
    })
}

/// Undo mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// System V IPC objects of the caller's IPC namespace, and POSIX queue names when an mqueue
/// filesystem is mounted on `/dev/mqueue` in its mount namespace.
fn ipc(proc_dir: &OwnedFd) -> Result<Value, ObserveError> {
    let mut out = Map::new();
    for (file, id_column, name) in [
        ("msg", "msqid", "message_queues"),
        ("sem", "semid", "semaphores"),
        ("shm", "shmid", "shared_memory"),
    ] {
        let text = read_at(proc_dir, &format!("../sysvipc/{file}"))?;
        out.insert(name.to_string(), Value::Array(sysvipc(&text, id_column)));
    }
    let mqueue_mounted = mounts(
        &read_at(proc_dir, "mountinfo")?,
        &["/dev/mqueue".to_string()],
    )
    .iter()
    .any(|m| m["mount_point"] == "/dev/mqueue" && m["fstype"] == "mqueue");
    if mqueue_mounted {
        let mut names: Vec<String> = std::fs::read_dir("/dev/mqueue")
            .map(|entries| {
                entries
                    .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        out.insert("posix_queues".to_string(), json!(names));
    }
    Ok(json!({ "ipc": out }))
}

/// Rows of a `/proc/sysvipc/*` table as `{key, id, perms, uid, gid}`, sorted by id.
pub(crate) fn sysvipc(text: &str, id_column: &str) -> Vec<Value> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let column = |row: &[&str], name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| row.get(i).map(|v| v.to_string()))
    };
    let mut rows: Vec<(i64, Value)> = lines
        .filter_map(|line| {
            let row: Vec<&str> = line.split_whitespace().collect();
            let key: i64 = column(&row, "key")?.parse().ok()?;
            let id: i64 = column(&row, id_column)?.parse().ok()?;
            // The kernel prints perms in octal already.
            let perms = column(&row, "perms")?;
            let value = json!({
                "key": format!("0x{:08x}", key as u32),
                "id": id,
                "perms": perms,
                "uid": column(&row, "uid")?.parse::<u64>().ok()?,
                "gid": column(&row, "gid")?.parse::<u64>().ok()?,
            });
            Some((id, value))
        })
        .collect();
    rows.sort_by_key(|(id, _)| *id);
    rows.into_iter().map(|(_, v)| v).collect()
}

fn sysctls(proc_dir: &OwnedFd, names: &[String]) -> Result<Value, ObserveError> {
    let mut out = Map::new();
    for name in names {
        let path = format!("../sys/{}", name.replace('.', "/"));
        out.insert(name.clone(), json!(read_at(proc_dir, &path)?.trim()));
    }
    Ok(json!({ "sysctl": out }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
300 22 0:50 / /tmp rw,nosuid,nodev shared:120 - tmpfs tmpfs rw,size=12G,nr_inodes=1048576,mode=1777
301 300 0:51 / /tmp/m rw,relatime - tmpfs none rw,uid=1000,gid=1000,inode64
302 300 0:50 /d/sub /tmp/my\\040dir rw master:120 - tmpfs tmpfs rw,size=12G
303 300 0:52 / /tmpfoo rw unbindable - tmpfs x rw
";

    #[test]
    fn keeps_mounts_under_the_prefix_and_normalises_them() {
        let kept = mounts(MOUNTINFO, &["/tmp".to_string()]);
        let points: Vec<&str> = kept
            .iter()
            .map(|m| m["mount_point"].as_str().unwrap())
            .collect();
        assert_eq!(points, vec!["/tmp", "/tmp/m", "/tmp/my dir"]);
        assert_eq!(kept[0]["super_options"], "rw,mode=1777");
        assert_eq!(kept[0]["propagation"], "shared");
        assert_eq!(kept[1]["propagation"], "private");
        assert_eq!(kept[1]["super_options"], "rw,uid=1000,gid=1000,inode64");
        assert_eq!(kept[2]["propagation"], "slave");
        assert_eq!(kept[2]["root"], "/d/sub");
    }

    #[test]
    fn parses_sysvipc_tables() {
        let text = "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime
 -559038737          1   644           0          0     0     0     0     0     0     0          0          0 1700000000
         0          0   600           0          0     0     0  1000  1000     0     0          0          0 1700000000
";
        let rows = sysvipc(text, "msqid");
        assert_eq!(
            rows[0],
            json!({"key": "0x00000000", "id": 0, "perms": "600", "uid": 1000, "gid": 1000})
        );
        assert_eq!(rows[1]["key"], "0xdeadbeef");
    }

    #[test]
    fn finds_the_v2_cgroup_line() {
        assert_eq!(cgroup_v2_path("4:memory:/x\n0::/inner\n"), "/inner");
    }
}
