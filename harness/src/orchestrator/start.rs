//! Starting actors: in dependency order (a joined or parent actor first), forked by the
//! orchestrator or by the parent actor, until they report `Ready` with their host PID.

use std::os::fd::AsRawFd;

use super::{LiveActor, Orchestrator};
use crate::actor::plan::{plan, PlanContext};
use crate::actor::protocol::{self, Reply, Request};
use crate::actor::spawn::spawn_actor;
use crate::scenario::model::Actor;
use crate::scenario::validate::HOST_ACTOR;

impl Orchestrator<'_> {
    pub(super) fn start(&mut self, name: &str) -> Result<(), StartError> {
        if self.actors.contains_key(name) {
            return Err(StartError::Other(format!(
                "actor `{name}` has already started"
            )));
        }
        self.ensure_started(name)
    }

    /// Start `name` (and first what it depends on) unless it is running.
    pub(super) fn ensure_started(&mut self, name: &str) -> Result<(), StartError> {
        if self.actors.contains_key(name) {
            return Ok(());
        }
        let launched = self.launch(name)?;
        self.await_ready(name, launched)
    }

    /// Start `name` (and first, to the end, what it depends on) without waiting for it to
    /// be ready: a request sent on [`Launched::control`] meanwhile waits in its socket
    /// until it is (its setup reads nothing there).
    pub(super) fn launch(&mut self, name: &str) -> Result<Launched, StartError> {
        let default = Actor::default();
        let def = if name == HOST_ACTOR {
            &default
        } else {
            self.actor_def(name)
                .ok_or_else(|| StartError::Other(format!("unknown actor `{name}`")))?
        };
        let mut join_pid = None;
        if let Some(join) = &def.join {
            let target = join.get_ref().actor();
            self.ensure_started(target)?;
            join_pid = Some(self.actors[target].pid);
        }
        if let Some(cgroup) = &def.cgroup {
            let dir = format!("/sys/fs/cgroup/{}", cgroup.get_ref());
            std::fs::create_dir_all(&dir)
                .map_err(|e| StartError::Other(format!("cannot create cgroup {dir}: {e}")))?;
        }
        let context = PlanContext {
            uid: self.ids.uid,
            gid: self.ids.gid,
            join_pid,
        };
        let plan = plan(name, def, context);
        let (ours, theirs) =
            protocol::control_pair().map_err(|e| StartError::Other(format!("socketpair: {e}")))?;
        let mut forked = None;
        if let Some(parent) = &def.parent {
            let parent = parent.get_ref().clone();
            self.ensure_started(&parent)?;
            let control = &self.actors[parent.as_str()].control;
            let request = Request::Spawn(Box::new(plan));
            protocol::send(control, &request, Some(theirs.as_raw_fd())).map_err(|e| {
                StartError::Other(format!("asking `{parent}` to create `{name}`: {e}"))
            })?;
            drop(theirs);
            match protocol::recv::<Reply>(control) {
                Ok(Some(protocol::Received {
                    message: Reply::Spawned(Ok(())),
                    ..
                })) => {}
                Ok(Some(protocol::Received {
                    message: Reply::Spawned(Err(e)),
                    ..
                })) => {
                    return Err(StartError::Other(format!(
                        "`{parent}` could not create `{name}`: {e}"
                    )))
                }
                _ => {
                    return Err(StartError::Other(format!(
                        "actor `{parent}` exited while creating `{name}`"
                    )))
                }
            }
        } else {
            let spawned = match self.spare.take() {
                Some(spare) => spare.become_actor(&plan, theirs),
                None => spawn_actor(&plan, theirs),
            };
            forked = Some(spawned.map_err(StartError::Other)?.as_raw());
        }
        Ok(Launched {
            control: ours,
            forked,
        })
    }

    /// Wait until `launched`, the actor `name`, reports that it is ready (or why not).
    pub(super) fn await_ready(&mut self, name: &str, launched: Launched) -> Result<(), StartError> {
        let Launched { control, forked } = launched;
        match protocol::recv::<Reply>(&control) {
            Ok(Some(protocol::Received {
                message: Reply::Ready,
                sender_pid: Some(pid),
                ..
            })) => {
                self.actors.insert(
                    name.to_string(),
                    LiveActor {
                        pid,
                        control,
                        fork_parent: forked.filter(|f| *f != pid),
                    },
                );
                self.start_order.push(name.to_string());
                Ok(())
            }
            Ok(Some(protocol::Received {
                message: Reply::SetupFailed { errno, message, .. },
                ..
            })) => Err(StartError::Setup {
                actor: name.to_string(),
                errno,
                message,
            }),
            other => Err(StartError::Other(format!(
                "actor `{name}` ended during setup without a word ({})",
                match other {
                    Err(e) => e.to_string(),
                    _ => "no ready message".into(),
                }
            ))),
        }
    }
}

/// An actor started and not known to be ready yet.
pub(super) struct Launched {
    /// The orchestrator's end of its control socket.
    pub(super) control: std::os::fd::OwnedFd,
    /// The process the orchestrator forked for it, if it did.
    forked: Option<i32>,
}

/// Why an actor did not start.
#[derive(Debug, thiserror::Error)]
pub(super) enum StartError {
    /// Its setup failed (e.g. `unshare` refused).
    #[error("actor `{actor}` could not be set up: {message}")]
    Setup {
        /// The actor.
        actor: String,
        /// The errno, when a system call failed.
        errno: Option<i32>,
        /// The message.
        message: String,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}
