//! Starting actors: in dependency order (a joined or parent actor first), forked by the
//! orchestrator or by the parent actor, until they report `Ready` with their host PID.

use std::os::fd::AsRawFd;

use super::{LiveActor, Orchestrator};
use crate::actor::plan::{plan, PlanContext};
use crate::actor::protocol::{self, Reply, Request};
use crate::actor::spawn::spawn_actor;
use crate::scenario::model::{Actor, Scenario, Step};
use crate::scenario::validate::HOST_ACTOR;
use crate::template::{self, Placeholder, Segment};

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
        if let Some((_, launched)) = self.ahead.take_if(|(ahead, _)| ahead == name) {
            return launched;
        }
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

    /// Start the first step's actor now, before the scenario may run, when that is safe
    /// (see [`actor_to_start_ahead`]): its setup is then off the scenario's path, and the
    /// step finds it launched. Nothing else of the scenario happens before its turn: the
    /// actor waits for its first request.
    pub(crate) fn start_first_actor(&mut self) {
        if self.failure.is_some() || !self.actors.is_empty() {
            return;
        }
        let Some(name) = actor_to_start_ahead(&self.loaded.scenario) else {
            return;
        };
        let launched = self.launch(&name);
        self.ahead = Some((name, launched));
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

/// The actor `scenario` starts before anything else, when nothing comes before its steps (a
/// `tool`'s version is asked first, by a command that would then run before the scenario's
/// turn and take a PID first) and its first step starts it first (see
/// [`first_started_actor`]).
fn actor_to_start_ahead(scenario: &Scenario) -> Option<String> {
    if scenario.tool.is_some() {
        return None;
    }
    let step = scenario.steps.first()?.get_ref();
    first_started_actor(step, |name| scenario.actors.get(name))
}

/// The actor that `step`, run first, starts before anything else, if the spare can become
/// it: the step's own actor, when the step is no `start` (whose outcome it checks) and has
/// no kernel range (it may be skipped), none of its commands, input or written file names
/// another actor's PID (which would start that one first), and the actor neither joins nor
/// is created by another, nor asks for a cgroup of its own.
fn first_started_actor<'a>(
    step: &Step,
    actor_def: impl Fn(&str) -> Option<&'a Actor>,
) -> Option<String> {
    if step.start.is_some() || step.kernel.is_some() {
        return None;
    }
    let templates = step
        .run
        .iter()
        .map(|run| run.get_ref().as_str())
        .chain(
            step.argv
                .iter()
                .flat_map(|argv| argv.get_ref().iter().map(String::as_str)),
        )
        .chain(step.stdin.as_deref())
        .chain(step.write.iter().map(|path| path.get_ref().as_str()))
        .chain(step.content.as_deref());
    if templates.into_iter().any(mentions_a_pid) {
        return None;
    }
    let name = step
        .actor
        .as_ref()
        .map_or(HOST_ACTOR, |a| a.get_ref().as_str());
    if name != HOST_ACTOR {
        let def = actor_def(name)?;
        if def.join.is_some() || def.parent.is_some() || def.cgroup.is_some() {
            return None;
        }
    }
    Some(name.to_string())
}

/// Whether `text` has a `{{pid.ACTOR}}` placeholder (or is no valid template: its step then
/// fails as it would have).
fn mentions_a_pid(text: &str) -> bool {
    template::parse(text).map_or(true, |segments| {
        segments
            .iter()
            .any(|s| matches!(s, Segment::Placeholder(Placeholder::Pid(_), _)))
    })
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rstest::rstest;

    use super::actor_to_start_ahead;

    const ACTORS: &str = r#"
[actors.a]
unshare = ["uts"]
[actors.b]
unshare = ["net"]
[actors.joiner]
join = "a"
[actors.child]
parent = "a"
unshare = ["uts"]
[actors.grouped]
cgroup = "g"
"#;

    /// The actor started ahead for a scenario whose first step is `step` (TOML of one
    /// `[[steps]]` table), with `top` (TOML keys) at the top of the file.
    fn first_with(top: &str, step: &str) -> Option<String> {
        let source = format!("description = \"first actors\"\n{top}\n{ACTORS}[[steps]]\n{step}\n");
        let loaded = crate::scenario::load::load_str(Path::new("t.toml"), source)
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        actor_to_start_ahead(&loaded.scenario)
    }

    fn first(step: &str) -> Option<String> {
        first_with("", step)
    }

    /// A tool's version is asked before the steps, by a command: nothing is started ahead
    /// of it.
    #[test]
    fn nothing_is_started_ahead_of_a_tool_version() {
        let step = "actor = \"a\"\nrun = \"hostname\"";
        assert_eq!(first(step).as_deref(), Some("a"));
        let tool = "tool = \"unshare\"\n[requires]\ncommands = [\"unshare\"]";
        assert_eq!(first_with(tool, step), None);
    }

    #[rstest]
    #[case::its_own_actor("actor = \"a\"\nrun = \"hostname\"", Some("a"))]
    #[case::the_host("run = \"hostname\"", Some("host"))]
    #[case::a_command_line("actor = \"b\"\nargv = [\"ip\", \"link\"]", Some("b"))]
    #[case::a_write("actor = \"a\"\nwrite = \"/tmp/x\"\ncontent = \"1\"", Some("a"))]
    #[case::another_pid_in_the_command("actor = \"a\"\nrun = \"kill {{pid.b}}\"", None)]
    #[case::another_pid_in_the_input("actor = \"a\"\nrun = \"cat\"\nstdin = \"{{ pid.b }}\"", None)]
    #[case::a_start_whose_outcome_is_checked("start = \"a\"", None)]
    #[case::a_kernel_range("actor = \"a\"\nrun = \"true\"\nkernel = \">=5.0\"", None)]
    #[case::a_joiner("actor = \"joiner\"\nrun = \"true\"", None)]
    #[case::a_child_of_another("actor = \"child\"\nrun = \"true\"", None)]
    #[case::a_cgroup_of_its_own("actor = \"grouped\"\nrun = \"true\"", None)]
    fn the_first_actor_is_started_ahead_only_when_it_comes_first_anyway(
        #[case] step: &str,
        #[case] expected: Option<&str>,
    ) {
        assert_eq!(first(step).as_deref(), expected, "{step}");
    }
}
