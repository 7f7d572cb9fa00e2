//! Starting the orchestrator: forked once the scenario is known (cold), or forked into its
//! stand-in host ahead of time and told the scenario later (warm).

use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Pid};

use super::interrupts::Interrupts;
use super::orchestrator_process::{in_standin, on_real_host, Scenario};
use super::watch::reap_descendants;
use super::{standin_flags, standin_rootless};
use crate::containment::Containment;
use crate::payload::offers::Sources;
use crate::pids_limit::DEFAULT_MAX_PROCESSES;
use crate::scenario::model::HostMode;
use crate::scenario::LoadedScenario;
use crate::standin::MachineFacts;
use crate::turns::TurnPipe;

/// An orchestrator at work, and what holds its processes.
pub(super) struct Running {
    /// The orchestrator.
    pub(super) child: Pid,
    /// Its events (JSON lines).
    pub(super) events: OwnedFd,
    /// The scenario's cgroups, removed after it.
    pub(super) containment: Containment,
    /// The stand-in's mount and network namespaces, held open (see [`hold_namespaces`]).
    pub(super) namespaces: Vec<OwnedFd>,
}

/// Open the mount and network namespaces of the stand-in whose PID 1 is `child`. Held by
/// the supervisor until it exits, they are torn down then, after its report, rather than
/// when the stand-in's last process exits, which the report waits for.
fn hold_namespaces(child: Pid) -> Vec<OwnedFd> {
    ["mnt", "net"]
        .iter()
        .filter_map(|kind| std::fs::File::open(format!("/proc/{child}/ns/{kind}")).ok())
        .map(OwnedFd::from)
        .collect()
}

/// Fork the orchestrator of `loaded` (already known) on the host `mode` asks for.
pub(super) fn fork_cold(
    loaded: &LoadedScenario,
    sources: &Sources,
    max_processes: u32,
    interrupts: &Interrupts,
    machine: &MachineFacts,
) -> Result<Running, String> {
    let mode = loaded.scenario.host;
    let mut containment =
        Containment::create(&machine.cgroups, mode == HostMode::StandIn, max_processes);
    let (events_in, events_out) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
        Ok(pair) => pair,
        Err(e) => return Err(abandon(containment, format!("pipe: {e}"))),
    };
    let flags = match mode {
        HostMode::StandIn => standin_flags(standin_rootless()),
        HostMode::Real => CloneFlags::empty(),
    };
    match containment.fork(flags) {
        Err(e) => Err(abandon(
            containment,
            format!("cannot create the stand-in host: {e}"),
        )),
        Ok(ForkResult::Child) => {
            drop(events_in);
            interrupts.release_in_child();
            crate::sys::exit_forked(match mode {
                HostMode::StandIn => in_standin(
                    Scenario::Known(loaded, sources),
                    events_out,
                    &containment,
                    machine,
                ),
                HostMode::Real => on_real_host(loaded, sources, events_out, &containment),
            })
        }
        Ok(ForkResult::Parent { child }) => Ok(Running {
            child,
            events: events_in,
            containment,
            namespaces: match mode {
                HostMode::StandIn => hold_namespaces(child),
                HostMode::Real => Vec::new(),
            },
        }),
    }
}

/// Remove `containment` after a failed start; the reason, with any leak added.
fn abandon(containment: Containment, reason: String) -> String {
    with_cleanup(reason, containment.destroy())
}

/// `reason`, with the failure of the cleanup that followed it, if any.
fn with_cleanup(reason: String, cleanup: Result<(), String>) -> String {
    match cleanup {
        Ok(()) => reason,
        Err(leak) => format!("{reason}; cleanup failed: {leak}"),
    }
}

/// The byte after the path that lets a warm orchestrator run its scenario.
pub(super) const GO: u8 = b'y';

/// The byte after the path that says the scenario's requirements hold but its turn has not
/// come: the orchestrator sets up its first actor, then waits for [`GO`].
pub(super) const HOLD: u8 = b'h';

/// A stand-in host made before its scenario is known: the orchestrator has done everything
/// that does not depend on the scenario and waits for its path.
pub(super) struct WarmStandIn {
    child: Pid,
    events: OwnedFd,
    /// Where the scenario's path goes (closed empty: no scenario).
    go: OwnedFd,
    /// Whether the orchestrator was let run already, with the path.
    let_run: bool,
    containment: Containment,
    namespaces: Vec<OwnedFd>,
}

impl WarmStandIn {
    /// Make the scenario's cgroups and fork the orchestrator into a new stand-in host; it
    /// and its spare actor `warm_up` while they wait (see [`super::warm_up`]).
    pub(super) fn start(
        interrupts: &Interrupts,
        machine: &MachineFacts,
        warm_up: bool,
        turns: Option<&TurnPipe>,
    ) -> Result<WarmStandIn, String> {
        let mut containment = Containment::create(&machine.cgroups, true, DEFAULT_MAX_PROCESSES);
        let pipes = nix::unistd::pipe2(OFlag::O_CLOEXEC)
            .and_then(|events| Ok((events, nix::unistd::pipe2(OFlag::O_CLOEXEC)?)));
        let ((events_in, events_out), (go_in, go_out)) = match pipes {
            Ok(pipes) => pipes,
            Err(e) => return Err(abandon(containment, format!("pipe: {e}"))),
        };
        match containment.fork(standin_flags(standin_rootless())) {
            Err(e) => Err(abandon(
                containment,
                format!("cannot create the stand-in host: {e}"),
            )),
            Ok(ForkResult::Child) => {
                drop(events_in);
                drop(go_out);
                interrupts.release_in_child();
                crate::sys::exit_forked(in_standin(
                    Scenario::Told {
                        pipe: go_in,
                        turns,
                        warm_up,
                    },
                    events_out,
                    &containment,
                    machine,
                ))
            }
            Ok(ForkResult::Parent { child }) => Ok(WarmStandIn {
                child,
                events: events_in,
                go: go_out,
                let_run: false,
                containment,
                namespaces: hold_namespaces(child),
            }),
        }
    }

    /// Tell the orchestrator the path of its scenario and its `turn` (see `turns.rs`), so
    /// it loads it and finishes its host while this process checks the scenario, and with
    /// `ready` (the runner checked it before the run) let it run the scenario as soon as it
    /// has, or with `hold` too, set up its first actor and wait for
    /// [`WarmStandIn::let_run`] or the end of the turn before. Unless it is to `hold`, it is
    /// brought back to the normal scheduling first (the runner starts warm supervisors in
    /// the background; a held scenario's preparation stays there until its turn); false
    /// when that fails.
    pub(super) fn announce(&mut self, path: &Path, turn: u64, ready: bool, hold: bool) -> bool {
        if !hold {
            if let Err(e) = crate::sys::bring_back(self.child) {
                eprintln!("nsconform: the warm orchestrator's scheduling: {e}");
                return false;
            }
        }
        let mut line = format!("{turn} ").into_bytes();
        line.extend_from_slice(path.as_os_str().as_bytes());
        line.push(b'\n');
        match (ready, hold) {
            (true, false) => {
                line.push(GO);
                self.let_run = true;
            }
            (true, true) => line.push(HOLD),
            (false, _) => {}
        }
        if let Err(e) = nix::unistd::write(&self.go, &line) {
            // The orchestrator is gone; its events say why.
            eprintln!("nsconform: telling the orchestrator its scenario: {e}");
        }
        // A pipe's reader is woken as if this process were about to sleep, so the scheduler
        // may have queued the orchestrator behind it on this CPU: let it start loading now,
        // rather than after this process has loaded and checked the scenario itself.
        let _ = nix::sched::sched_yield();
        true
    }

    /// Let the orchestrator run its scenario now (its turn has come), back in the normal
    /// scheduling, unless it was.
    pub(super) fn let_run(&mut self) {
        if std::mem::replace(&mut self.let_run, true) {
            return;
        }
        if let Err(e) = crate::sys::bring_back(self.child) {
            eprintln!("nsconform: the warm orchestrator's scheduling: {e}");
        }
        match nix::unistd::write(&self.go, &[GO]) {
            // The orchestrator is gone; its events say why.
            Ok(_) | Err(nix::errno::Errno::EPIPE) => {}
            Err(e) => eprintln!("nsconform: letting the orchestrator run: {e}"),
        }
    }

    /// Let the orchestrator run the scenario it was told, with at most `max_processes`.
    pub(super) fn go(mut self, max_processes: u32) -> Result<Running, String> {
        if max_processes != DEFAULT_MAX_PROCESSES {
            if let Err(e) = self.containment.set_max_processes(max_processes) {
                return Err(self.discard_because(format!("cannot cap processes: {e}")));
            }
        }
        self.let_run();
        drop(self.go);
        Ok(Running {
            child: self.child,
            events: self.events,
            containment: self.containment,
            namespaces: self.namespaces,
        })
    }

    /// End the orchestrator without a scenario and remove everything.
    pub(super) fn discard(self) {
        if let Err(leak) = self.end() {
            eprintln!("nsconform: cleanup failed: {leak}");
        }
    }

    fn discard_because(self, reason: String) -> String {
        with_cleanup(reason, self.end())
    }

    /// End the orchestrator without a scenario and remove everything; what is left, if
    /// anything, as the error.
    pub(super) fn end(self) -> Result<(), String> {
        drop(self.go);
        drop(self.events);
        // The stand-in's PID 1: the kernel kills everything in its namespace with it.
        let _ = nix::sys::signal::kill(self.child, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(self.child, None);
        let leftovers = reap_descendants();
        self.containment.destroy().and(leftovers)
    }
}
