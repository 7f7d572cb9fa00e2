//! What a supervisor does after its report: wait for the orchestrator to exit (everything
//! in its PID namespace with it), kill whatever is left below the supervisor, remove the
//! scenario's cgroups, and end a warm stand-in host the scenario did not use.

use super::launch::WarmStandIn;
use super::watch::{end_of, reap_descendants, EXIT_GRACE};
use super::{timeout_scale, Session};

/// What is left after a scenario's report: its orchestrator, still exiting with the last
/// processes of its PID namespace, the scenario's cgroups, and any warm stand-in host it did
/// not use.
#[derive(Default)]
pub(crate) struct Cleanup {
    pub(super) unused: Option<WarmStandIn>,
    pub(super) ran: Option<Ran>,
}

/// What ran a scenario.
pub(super) struct Ran {
    /// The supervisor's signals (an interrupt kills an orchestrator slow to exit).
    pub(super) session: Session,
    /// The orchestrator, if it finished and is exiting (else it is reaped already).
    pub(super) exiting: Option<nix::unistd::Pid>,
    /// The scenario's cgroups.
    pub(super) containment: crate::containment::Containment,
    /// The stand-in's namespaces, held until this process exits (see `launch.rs`).
    pub(super) namespaces: Vec<std::os::fd::OwnedFd>,
}

impl Cleanup {
    /// End and remove everything; what is left behind, if anything, as the error. The
    /// stand-in's namespaces go to `held`: the caller closes them after its last line, so
    /// their teardown is off the path of the runner, which reads that line.
    pub(crate) fn run(self, held: &mut Vec<std::os::fd::OwnedFd>) -> Result<(), String> {
        let unused = self.unused.map_or(Ok(()), WarmStandIn::end);
        let Some(ran) = self.ran else {
            return unused;
        };
        let ended = ran.exiting.map_or(Ok(()), |orchestrator| {
            end_of(
                orchestrator,
                &ran.session.interrupts,
                EXIT_GRACE.mul_f64(timeout_scale()),
            )
        });
        let leftovers = reap_descendants();
        let cleanup = ended
            .and(leftovers)
            .and(ran.containment.destroy())
            .and(unused);
        held.extend(ran.namespaces);
        crate::phase_log::mark("supervisor: cleaned up");
        cleanup
    }
}
