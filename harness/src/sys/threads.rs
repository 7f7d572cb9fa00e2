//! How many threads this process has: `fork` here and `unshare(CLONE_NEWUSER)` need one.

use std::io;

/// How many threads this process has: the link count of `/proc/self/task`, which is 2 plus
/// the number of threads (one `statx`, where `/proc/self/status` costs five times as much
/// to generate and read); from the `Threads:` line of `/proc/self/status` should a kernel
/// ever count otherwise.
pub(crate) fn thread_count() -> io::Result<usize> {
    use std::os::unix::fs::MetadataExt;
    let links = std::fs::metadata("/proc/self/task")?.nlink();
    match usize::try_from(links) {
        Ok(links) if links >= 3 => Ok(links - 2),
        _ => thread_count_from_status(),
    }
}

/// How many threads this process has, from `/proc/self/status`.
fn thread_count_from_status() -> io::Result<usize> {
    use std::io::Read;
    // Room for the whole file up front: one read instead of a growing series.
    let mut status = String::with_capacity(4096);
    std::fs::File::open("/proc/self/status")?.read_to_string(&mut status)?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| io::Error::other("no Threads: line in /proc/self/status"))
}

/// `EDEADLK` unless this process has one thread: `fork` and `unshare` callers need that.
pub(super) fn ensure_single_threaded() -> nix::Result<()> {
    match thread_count() {
        Ok(1) => Ok(()),
        _ => Err(nix::errno::Errno::EDEADLK),
    }
}

#[cfg(test)]
mod tests {
    use super::{thread_count, thread_count_from_status};

    #[test]
    fn the_link_count_agrees_with_the_status_file() {
        // Other tests' threads come and go meanwhile: a reading counts when the status file
        // gave the same number before and after it. A wrong count never agrees.
        let agreed = (0..50).any(|_| {
            let before = thread_count_from_status().expect("status");
            let links = thread_count().expect("links");
            let after = thread_count_from_status().expect("status");
            before == after && links == before
        });
        assert!(
            agreed,
            "the link count of /proc/self/task never matched Threads:"
        );
    }
}
