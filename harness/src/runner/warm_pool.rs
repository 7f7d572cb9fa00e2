//! Warm supervisors waiting for a scenario: while a trial runs its scenario, the runner starts
//! the supervisor of that trial's next one, which makes its cgroups and its stand-in host,
//! and then waits for its scenario on standard input. Each thread has its own fork server
//! (`fork_server.rs`), exec'd once, which forks them; without one (it could not start), they
//! are exec'd (`__supervise --warm`).
//!
//! A supervisor that has run a scenario comes back ([`WarmPool::recycle`]): it makes a new
//! stand-in host itself and waits for another scenario, so a thread forks a new one only
//! when none is waiting.
//!
//! Supervisors and servers are kept for the thread that started them: a death signal
//! (`PR_SET_PDEATHSIG`) follows that thread, so a warm supervisor whose thread ends cleans
//! up and exits instead of waiting for a scenario that will not come.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::ThreadId;

use super::process::Supervisor;
use crate::fork_server::{ForkServer, Forked};
use crate::turns::TurnPipe;

/// The warm supervisors of one run.
#[derive(Debug)]
pub(crate) struct WarmPool {
    /// Each thread's warm supervisors, the one that has waited longest first.
    ready: Mutex<HashMap<ThreadId, VecDeque<Supervisor>>>,
    /// Supervisors that printed their last line and are exiting, to reap.
    exiting: Mutex<Vec<Supervisor>>,
    /// Each thread's fork server.
    servers: Mutex<HashMap<ThreadId, ForkServer>>,
    /// Each thread's turn pipe (see `turns.rs`).
    turn_pipes: Mutex<HashMap<ThreadId, TurnPipe>>,
    /// No more fork servers: one could not start or fork, or the run was interrupted.
    no_servers: AtomicBool,
    /// The run was interrupted ([`WarmPool::signal_servers`]).
    stopped: AtomicBool,
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
            servers: Mutex::new(HashMap::new()),
            turn_pipes: Mutex::new(HashMap::new()),
            no_servers: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            unclaimed: expected.map(AtomicUsize::new),
        }
    }

    /// The warm supervisor of this thread that has waited longest, if any.
    pub(crate) fn take(&self) -> Option<Supervisor> {
        let id = std::thread::current().id();
        self.ready.lock().ok()?.get_mut(&id)?.pop_front()
    }

    /// Whether this thread has no warm supervisor waiting.
    pub(crate) fn none_waiting(&self) -> bool {
        let id = std::thread::current().id();
        self.ready
            .lock()
            .map_or(true, |ready| ready.get(&id).is_none_or(VecDeque::is_empty))
    }

    /// Keep `supervisor` for one of this thread's next scenarios.
    pub(crate) fn put(&self, mut supervisor: Supervisor) {
        let id = std::thread::current().id();
        match self.ready.lock() {
            Ok(mut ready) => ready.entry(id).or_default().push_back(supervisor),
            Err(_) => {
                supervisor.end();
            }
        }
    }

    /// Take back `supervisor`, which printed its last line for a scenario and now makes a new
    /// stand-in host for another: kept when the run needs one more, else told to end (at
    /// the end of its input) and reaped later.
    pub(crate) fn recycle(&self, mut supervisor: Supervisor) {
        if supervisor.stdin.is_some() && self.claim() {
            self.put(supervisor);
        } else {
            drop(supervisor.stdin.take());
            self.reap_later(supervisor);
        }
    }

    /// The two ends of this thread's turn pipe, made the first time; `None` if it cannot
    /// be made (held scenarios then wait for the runner's go).
    pub(crate) fn turn_pipe_fds(&self) -> Option<[std::os::fd::RawFd; 2]> {
        let id = std::thread::current().id();
        let mut pipes = self.turn_pipes.lock().ok()?;
        let pipe = match pipes.entry(id) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(TurnPipe::new().ok()?),
        };
        Some(pipe.raw_fds())
    }

    /// A supervisor forked by this thread's fork server (started with `server` the first
    /// time), with the scheduling of this thread; `None` when there is no server to ask.
    pub(crate) fn fork(&self, server: impl FnOnce() -> Command) -> Option<Forked> {
        if self.no_servers.load(Ordering::SeqCst) {
            return None;
        }
        let id = std::thread::current().id();
        let mut servers = self.servers.lock().ok()?;
        let server = match servers.entry(id) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => match ForkServer::start(server()) {
                Ok(started) => entry.insert(started),
                Err(_) => {
                    self.no_servers.store(true, Ordering::SeqCst);
                    return None;
                }
            },
        };
        let forked = server.fork();
        if forked.is_err() {
            // A server that cannot fork (e.g. no pidfds before Linux 5.3) is not asked again.
            self.no_servers.store(true, Ordering::SeqCst);
            if let Some(server) = servers.remove(&id) {
                server.end();
            }
        }
        forked.ok()
    }

    /// Pass `signal` to every fork server, which passes it on to its supervisors, and fork
    /// no more: later supervisors are exec'd, the runner's own children.
    pub(crate) fn signal_servers(&self, signal: nix::sys::signal::Signal) {
        self.stopped.store(true, Ordering::SeqCst);
        self.no_servers.store(true, Ordering::SeqCst);
        if let Ok(servers) = self.servers.lock() {
            for server in servers.values() {
                server.signal(signal);
            }
        }
    }

    /// Whether the run was interrupted: a scenario given out ahead of its turn is not let run.
    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Reap `supervisor` (which has printed its last line) once it exits, and any that have.
    pub(crate) fn reap_later(&self, mut supervisor: Supervisor) {
        match self.exiting.lock() {
            Ok(mut exiting) => {
                exiting.retain_mut(|s| !s.try_wait());
                exiting.push(supervisor);
            }
            Err(_) => {
                supervisor.end();
            }
        }
    }

    /// Whether the run needs no more supervisors than those it has (none can be claimed):
    /// one told its scenario now will not be taken back.
    pub(crate) fn none_left(&self) -> bool {
        self.unclaimed
            .as_ref()
            .is_some_and(|left| left.load(Ordering::SeqCst) == 0)
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

    /// End every warm supervisor (end of input: each removes its stand-in host), wait for
    /// them, and then end the fork servers.
    pub(crate) fn shutdown(&self) {
        let supervisors: Vec<Supervisor> = match self.ready.lock() {
            Ok(mut ready) => ready.drain().flat_map(|(_, queue)| queue).collect(),
            Err(_) => Vec::new(),
        };
        // Close every input first, so they clean up in parallel.
        let supervisors: Vec<Supervisor> = supervisors
            .into_iter()
            .map(|mut s| {
                drop(s.stdin.take());
                s
            })
            .collect();
        for mut supervisor in supervisors {
            supervisor.end();
        }
        if let Ok(mut exiting) = self.exiting.lock() {
            for mut supervisor in exiting.drain(..) {
                supervisor.end();
            }
        }
        if let Ok(mut servers) = self.servers.lock() {
            for (_, server) in servers.drain() {
                server.end();
            }
        }
    }
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::super::process::Supervisor;
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
    fn none_is_left_once_every_expected_supervisor_is_claimed() {
        let pool = WarmPool::new(Some(1));
        assert!(!pool.none_left());
        assert!(pool.claim());
        assert!(pool.none_left());
        assert!(
            !WarmPool::new(None).none_left(),
            "an unknown count never ends"
        );
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
            Supervisor::from_child(
                std::process::Command::new("cat")
                    .stdin(std::process::Stdio::piped())
                    .spawn()
                    .expect("cat runs"),
            )
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
        assert!(mine.end().is_some_and(|s| s.success()));
        // `cat` ends at the end of its input: shutdown closes it and waits.
        pool.shutdown();
        assert!(pool.take().is_none());
    }
}
