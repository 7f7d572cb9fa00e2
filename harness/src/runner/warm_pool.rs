//! Warm supervisors waiting for a scenario: while a trial runs its scenario, the runner starts
//! the supervisor of that trial's next one (`__supervise --warm`), which execs, makes its
//! cgroups and its stand-in host, and then waits for its scenario on standard input.
//!
//! Each supervisor is kept for the thread that started it: its death signal
//! (`PR_SET_PDEATHSIG`) follows that thread, so a warm supervisor whose thread ends cleans up
//! and exits instead of waiting for a scenario that will not come.

use std::collections::HashMap;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::ThreadId;

/// The warm supervisors of one run.
#[derive(Debug)]
pub(crate) struct WarmPool {
    ready: Mutex<HashMap<ThreadId, Child>>,
    /// Supervisors that reported and are exiting, to reap.
    exiting: Mutex<Vec<Child>>,
    /// How many more supervisors the run needs, when known: no warm supervisor is started
    /// beyond that.
    unclaimed: Option<AtomicUsize>,
}

impl WarmPool {
    /// A pool for a run of `expected` scenarios (`None`: unknown, always keep one warm).
    pub(crate) fn new(expected: Option<usize>) -> WarmPool {
        WarmPool {
            ready: Mutex::new(HashMap::new()),
            exiting: Mutex::new(Vec::new()),
            unclaimed: expected.map(AtomicUsize::new),
        }
    }

    /// The warm supervisor this thread started, if any.
    pub(crate) fn take(&self) -> Option<Child> {
        let id = std::thread::current().id();
        self.ready.lock().ok()?.remove(&id)
    }

    /// Keep `child` for this thread's next scenario.
    pub(crate) fn put(&self, child: Child) {
        let id = std::thread::current().id();
        match self.ready.lock() {
            Ok(mut ready) => {
                if let Some(old) = ready.insert(id, child) {
                    end(old);
                }
            }
            Err(_) => end(child),
        }
    }

    /// Reap `child` (which has printed its report) once it exits, and any that have.
    pub(crate) fn reap_later(&self, child: Child) {
        match self.exiting.lock() {
            Ok(mut exiting) => {
                exiting.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
                exiting.push(child);
            }
            Err(_) => end(child),
        }
    }

    /// Count one more supervisor started; false when the run needs no more.
    pub(crate) fn claim(&self) -> bool {
        match &self.unclaimed {
            None => true,
            Some(left) => left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok(),
        }
    }

    /// End every warm supervisor (end of input: each removes its stand-in host and exits)
    /// and wait for them.
    pub(crate) fn shutdown(&self) {
        let children: Vec<Child> = match self.ready.lock() {
            Ok(mut ready) => ready.drain().map(|(_, child)| child).collect(),
            Err(_) => Vec::new(),
        };
        // Close every input first, so they clean up in parallel.
        let children: Vec<Child> = children
            .into_iter()
            .map(|mut child| {
                drop(child.stdin.take());
                child
            })
            .collect();
        for child in children {
            end(child);
        }
        if let Ok(mut exiting) = self.exiting.lock() {
            for child in exiting.drain(..) {
                end(child);
            }
        }
    }
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Close `child`'s input and wait for it to exit.
fn end(mut child: Child) {
    drop(child.stdin.take());
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::WarmPool;

    #[test]
    fn claims_stop_at_the_expected_count() {
        let pool = WarmPool::new(Some(2));
        assert!(pool.claim());
        assert!(pool.claim());
        assert!(!pool.claim());
        assert!(!pool.claim());
    }

    #[test]
    fn an_unknown_count_never_stops_claims() {
        let pool = WarmPool::new(None);
        assert!((0..1000).all(|_| pool.claim()));
    }

    #[test]
    fn supervisors_are_kept_per_thread_and_ended_at_shutdown() {
        let pool = WarmPool::new(None);
        let spawn = || {
            std::process::Command::new("cat")
                .stdin(std::process::Stdio::piped())
                .spawn()
                .expect("cat runs")
        };
        pool.put(spawn());
        let other_thread = std::thread::scope(|s| s.spawn(|| pool.take().is_some()).join());
        assert_eq!(
            other_thread.ok(),
            Some(false),
            "another thread's supervisor"
        );
        let mut mine = pool.take().expect("this thread's supervisor");
        assert!(pool.take().is_none(), "taken once");
        pool.put(spawn());
        drop(mine.stdin.take());
        assert!(mine.wait().is_ok_and(|s| s.success()));
        // `cat` ends at the end of its input: shutdown closes it and waits.
        pool.shutdown();
        assert!(pool.take().is_none());
    }
}
