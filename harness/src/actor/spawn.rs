//! Forking a new actor: the child carries out its plan with the real [`Kernel`], reports
//! `Ready` or `SetupFailed`, and becomes an agent; the creator writes parent-side maps
//! through a handshake.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::unistd::{ForkResult, Pid};

use super::kernel::{write_maps, Kernel};
use super::plan::{ActorPlan, MapSpec};
use super::protocol::{self, Reply, Request};
use super::setup::execute;
use crate::sys;

/// Fork a new actor from this (single-threaded) process and set it up according to `plan`.
///
/// `control` is the actor's end of its control socket; the actor reports `Ready` or
/// `SetupFailed` on it. Returns the child's PID as seen here.
pub(crate) fn spawn_actor(plan: &ActorPlan, control: OwnedFd) -> Result<Pid, String> {
    let handshake = handshake_for(plan)?;
    match sys::fork().map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            let (parent_end, child_end) = match handshake {
                Some((p, c)) => (Some(p), Some(c)),
                None => (None, None),
            };
            drop(parent_end);
            let mut keep = vec![control.as_raw_fd()];
            keep.extend(child_end.as_ref().map(|fd| fd.as_raw_fd()));
            sys::close_other_fds(&keep);
            run_actor(plan, control, child_end)
        }
        ForkResult::Parent { child } => {
            drop(control);
            if let (Some((parent_end, child_end)), Some(maps)) = (handshake, &plan.parent_maps) {
                drop(child_end);
                write_maps_for_child(child, &parent_end, maps);
            }
            Ok(child)
        }
    }
}

/// The socket pair of the map handshake, when the creator writes the maps of `plan`.
fn handshake_for(plan: &ActorPlan) -> Result<Option<(OwnedFd, OwnedFd)>, String> {
    match plan.parent_maps {
        Some(_) => nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::Stream,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .map(Some)
        .map_err(|e| format!("socketpair: {e}")),
        None => Ok(None),
    }
}

/// A process forked ahead of time that becomes the next actor when told its plan, so the
/// fork is off the path of the step that starts the actor, and the actor has the PID a
/// fork at that point would have had.
#[derive(Debug)]
pub(crate) struct SpareActor {
    pid: Pid,
    socket: OwnedFd,
}

impl SpareActor {
    /// Fork the spare. It closes every other descriptor, warms up with `warm_up` (see
    /// `supervisor::warm_up`) and waits for its plan; it exits when the socket closes first.
    pub(crate) fn fork(warm_up: bool) -> Result<SpareActor, String> {
        let (ours, theirs) = protocol::control_pair().map_err(|e| format!("socketpair: {e}"))?;
        match sys::fork().map_err(|e| format!("fork: {e}"))? {
            ForkResult::Child => {
                drop(ours);
                sys::close_other_fds(&[theirs.as_raw_fd()]);
                if warm_up {
                    crate::supervisor::warm_up();
                }
                let (plan, control) = match protocol::recv::<Request>(&theirs) {
                    Ok(Some(protocol::Received {
                        message: Request::Spawn(plan),
                        fd: Some(control),
                        ..
                    })) => (plan, control),
                    _ => sys::exit_forked(0),
                };
                crate::phase_log::mark("spare: plan received");
                let sync = match plan.parent_maps {
                    None => None,
                    Some(_) => match protocol::recv::<Request>(&theirs) {
                        Ok(Some(protocol::Received {
                            message: Request::Handshake,
                            fd: Some(sync),
                            ..
                        })) => Some(sync),
                        _ => sys::exit_forked(1),
                    },
                };
                drop(theirs);
                run_actor(&plan, control, sync)
            }
            ForkResult::Parent { child } => Ok(SpareActor {
                pid: child,
                socket: ours,
            }),
        }
    }

    /// Give the spare the normal scheduling (it was forked while its stand-in waited in the
    /// background).
    pub(crate) fn wake(&self) -> nix::Result<()> {
        sys::bring_back(self.pid)
    }

    /// Make the spare the actor of `plan`, with `control` as its end of the control socket
    /// (as [`spawn_actor`], maps written through the handshake included). Returns its PID
    /// as seen here.
    pub(crate) fn become_actor(self, plan: &ActorPlan, control: OwnedFd) -> Result<Pid, String> {
        let handshake = handshake_for(plan)?;
        let told = |request: &Request, fd: &OwnedFd| {
            protocol::send(&self.socket, request, Some(fd.as_raw_fd()))
                .map_err(|e| format!("handing the spare actor its plan: {e}"))
        };
        crate::phase_log::mark("orchestrator: plan to the spare");
        told(&Request::Spawn(Box::new(plan.clone())), &control)?;
        drop(control);
        if let (Some((parent_end, child_end)), Some(maps)) = (handshake, &plan.parent_maps) {
            told(&Request::Handshake, &child_end)?;
            drop(child_end);
            write_maps_for_child(self.pid, &parent_end, maps);
        }
        Ok(self.pid)
    }
}

/// The creator's half of the map handshake. Errors reach the child, which reports them.
fn write_maps_for_child(child: Pid, sync: &OwnedFd, maps: &MapSpec) {
    let mut ready = [0u8; 1];
    match nix::unistd::read(sync, &mut ready) {
        Ok(1) => {}
        // The child failed before its unshare; it reports that itself.
        _ => return,
    }
    let result = match write_maps(&format!("/proc/{child}"), maps) {
        Ok(()) => 0i32,
        Err(errno) => errno as i32,
    };
    let _ = nix::unistd::write(sync, &result.to_le_bytes());
}

/// The actor process: set up, report, serve requests; never returns.
fn run_actor(plan: &ActorPlan, control: OwnedFd, sync: Option<OwnedFd>) -> ! {
    let comm = format!("nsc:{}", plan.name);
    let comm: String = comm.chars().take(15).collect();
    if let Ok(name) = std::ffi::CString::new(comm) {
        let _ = nix::sys::prctl::set_name(&name);
    }
    let mut kernel = Kernel { control, sync };
    crate::phase_log::mark("actor: forked");
    let outcome = execute(&plan.ops, &mut kernel);
    let control = kernel.control;
    match outcome {
        Err(err) => {
            let reply = Reply::SetupFailed {
                operation: err.operation.clone(),
                errno: Some(err.errno as i32),
                message: err.to_string(),
            };
            let _ = protocol::send(&control, &reply, None);
            sys::exit_forked(1)
        }
        Ok(()) => {
            crate::phase_log::mark("actor: ready");
            if protocol::send(&control, &Reply::Ready, None).is_err() {
                sys::exit_forked(1);
            }
            super::agent::serve(&control);
            sys::exit_forked(0)
        }
    }
}
