//! Forking a new actor: the child carries out its plan with the real [`Kernel`], reports
//! `Ready` or `SetupFailed`, and becomes an agent; the creator writes parent-side maps
//! through a handshake.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::unistd::{ForkResult, Pid};

use super::kernel::{write_maps, Kernel};
use super::plan::{ActorPlan, MapSpec};
use super::protocol::{self, Reply};
use super::setup::execute;
use crate::sys;

/// Fork a new actor from this (single-threaded) process and set it up according to `plan`.
///
/// `control` is the actor's end of its control socket; the actor reports `Ready` or
/// `SetupFailed` on it. Returns the child's PID as seen here.
pub(crate) fn spawn_actor(plan: &ActorPlan, control: OwnedFd) -> Result<Pid, String> {
    let handshake = match plan.parent_maps {
        Some(_) => Some(
            nix::sys::socket::socketpair(
                nix::sys::socket::AddressFamily::Unix,
                nix::sys::socket::SockType::Stream,
                None,
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            )
            .map_err(|e| format!("socketpair: {e}"))?,
        ),
        None => None,
    };
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
            std::process::exit(1)
        }
        Ok(()) => {
            if protocol::send(&control, &Reply::Ready, None).is_err() {
                std::process::exit(1);
            }
            super::agent::serve(&control);
            std::process::exit(0)
        }
    }
}
