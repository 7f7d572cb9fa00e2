//! The orchestrator: runs a scenario's steps in order, starting actors as they are first
//! needed, and streams an [`Event`] per step to the supervisor.
//!
//! In the default stand-in mode it is PID 1 of the stand-in host's PID namespace: when it
//! exits, the kernel kills every process the scenario started.

use crate::payload::offers::Offers;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::time::Instant;

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::actor::protocol::{self, Exit, Reply, Request};
use crate::expect;
use crate::report::{Event, StepRecord};
use crate::requires::command_path;
use crate::scenario::model::{Actor, Step};
use crate::scenario::validate::HOST_ACTOR;
use crate::scenario::LoadedScenario;
use crate::template::{self, Placeholder};
use crate::turns::TurnPipe;

mod observe_step;
mod start;
use start::StartError;

/// A started actor.
struct LiveActor {
    /// Its PID as seen by the orchestrator (the scenario's host).
    pid: i32,
    /// The orchestrator's end of its control socket.
    control: OwnedFd,
    /// The process the orchestrator forked for it, when that is not the actor itself (the
    /// waiting parent of an actor that forked into a new PID or time namespace).
    fork_parent: Option<i32>,
}

/// The uid and gid of the process running the harness (`{{uid}}`, `{{gid}}`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HarnessIds {
    /// Real uid.
    pub(crate) uid: u32,
    /// Real gid.
    pub(crate) gid: u32,
}

/// Runs one scenario's steps.
pub(crate) struct Orchestrator<'a> {
    loaded: &'a LoadedScenario,
    events: std::fs::File,
    ids: HarnessIds,
    hostname: String,
    actors: BTreeMap<String, LiveActor>,
    /// Actor names in the order they started (for namespace labels).
    start_order: Vec<String>,
    vars: BTreeMap<String, String>,
    current_step: Option<usize>,
    /// `{{probe}}`, `{{fixtures}}` and `{{rootfs.NAME}}`.
    offers: Offers,
    /// A process forked ahead of time to become the first actor.
    spare: Option<crate::actor::spawn::SpareActor>,
    /// The first step's actor, started before the scenario's turn (see
    /// [`Orchestrator::start_first_actor`]), and how its start went.
    ahead: Option<(String, Result<start::Launched, StartError>)>,
    /// Why the scenario cannot run at all (e.g. its stand-in host failed): reported by
    /// [`Orchestrator::run`].
    failure: Option<String>,
    /// Where to say that the scenario's turn is over, and its number (see `turns.rs`).
    turn: Option<(&'a TurnPipe, u64)>,
}

/// A problem that stops the scenario (as opposed to a step whose expectations fail).
pub(super) enum Abort {
    /// Something went wrong while running: report it and stop.
    Stop(String),
    /// The scenario asks for something that cannot exist here: bad input.
    Invalid(String),
}

impl From<String> for Abort {
    fn from(reason: String) -> Abort {
        Abort::Stop(reason)
    }
}

impl<'a> Orchestrator<'a> {
    /// An orchestrator writing events to `events`.
    pub(crate) fn new(
        loaded: &'a LoadedScenario,
        events: std::fs::File,
        ids: HarnessIds,
        offers: Offers,
    ) -> Self {
        let hostname = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        Orchestrator {
            loaded,
            events,
            ids,
            hostname,
            actors: BTreeMap::new(),
            start_order: Vec::new(),
            vars: BTreeMap::new(),
            current_step: None,
            offers,
            spare: None,
            ahead: None,
            failure: None,
            turn: None,
        }
    }

    /// Report `reason` rather than run any step: the scenario cannot run at all.
    pub(crate) fn with_failure(mut self, reason: String) -> Self {
        self.failure = Some(reason);
        self
    }

    /// Say on `pipe` when the steps of turn `number` are done (see `turns.rs`).
    pub(crate) fn with_turn(mut self, pipe: Option<&'a TurnPipe>, number: u64) -> Self {
        self.turn = pipe.filter(|_| number > 0).map(|pipe| (pipe, number));
        self
    }

    /// Let `spare` become the first actor started.
    pub(crate) fn with_spare(mut self, spare: Option<crate::actor::spawn::SpareActor>) -> Self {
        self.spare = spare;
        self
    }

    /// Run every step; returns the process exit code (0 when all passed). The scenario's
    /// turn is over when its steps are, whatever their outcome: the next scenario may run.
    pub(crate) fn run(mut self) -> i32 {
        let stopped = self.run_steps();
        crate::phase_log::mark("orchestrator: steps done");
        if stopped.is_none() {
            // Let the actors end now (at the end of their control sockets), while the
            // supervisor reads the last event, instead of being killed one by one when
            // this PID 1 exits.
            self.actors.clear();
        }
        if let Some((pipe, number)) = self.turn {
            pipe.end(number);
        }
        match stopped {
            Some(code) => code,
            None => {
                self.emit(&Event::Finished);
                // The supervisor, woken by that event, may be queued behind this process,
                // whose exit (its address space, its PID namespace) is slow: it reports
                // first.
                let _ = nix::sched::sched_yield();
                0
            }
        }
    }

    /// The steps in order, until one fails: its exit code then, `None` when all passed.
    fn run_steps(&mut self) -> Option<i32> {
        if let Some(reason) = self.failure.take() {
            self.emit(&Event::Aborted { step: None, reason });
            return Some(1);
        }
        if let Some(tool) = &self.loaded.scenario.tool {
            let name = tool.get_ref().clone();
            let version = crate::results::tool_version(&name);
            self.emit(&Event::Tool(crate::report::ToolUnderTest { name, version }));
        }
        for (index, step) in self.loaded.scenario.steps.iter().enumerate() {
            let number = index + 1;
            self.current_step = Some(number);
            let line = self.loaded.line_of(step.span().start);
            match self.run_step(number, line, step.get_ref()) {
                Ok(record) => {
                    let failed = !record.mismatches.is_empty();
                    self.emit(&Event::StepFinished(record));
                    if failed {
                        return Some(1);
                    }
                }
                Err(Abort::Invalid(message)) => {
                    self.emit(&Event::Invalid { message });
                    return Some(2);
                }
                Err(Abort::Stop(reason)) => {
                    self.emit(&Event::Aborted {
                        step: Some(number),
                        reason,
                    });
                    return Some(1);
                }
            }
            reap();
        }
        None
    }

    fn emit(&mut self, event: &Event) {
        if let Ok(mut line) = serde_json::to_vec(event) {
            line.push(b'\n');
            // The supervisor reading this pipe is our parent; if it is gone, so are we soon.
            let _ = self.events.write_all(&line);
        }
    }

    fn run_step(&mut self, number: usize, line: usize, step: &Step) -> Result<StepRecord, Abort> {
        let actor = step
            .actor
            .as_ref()
            .map_or(HOST_ACTOR, |a| a.get_ref().as_str())
            .to_string();
        let action = self.describe(step)?;
        let actor_label = step
            .start
            .as_ref()
            .map_or(actor.clone(), |s| s.get_ref().clone());
        self.emit(&Event::StepStarted {
            number,
            line,
            actor: actor_label.clone(),
            action: action.clone(),
        });
        let started = Instant::now();
        let gated_out = step.kernel.as_ref().and_then(|range| {
            let release = nix::sys::utsname::uname()
                .ok()?
                .release()
                .to_string_lossy()
                .into_owned();
            let wanted = crate::requires::parse_kernel_range(range.get_ref()).ok()?;
            let version = crate::requires::kernel_version(&release)?;
            (!wanted.matches(&version))
                .then(|| format!("skipped: kernel {release} is not {}", range.get_ref()))
        });
        let mut record = StepRecord::begun(number, line, actor_label, action);
        record.note = step.note.clone();
        if let Some(skipped) = gated_out {
            record.action = format!("{} ({skipped})", record.action);
        } else if let Some(name) = &step.start {
            let outcome = self.start(name.get_ref());
            let errno = match &outcome {
                Ok(()) => None,
                Err(StartError::Setup {
                    errno: Some(errno), ..
                }) => Some(crate::errno::name(nix::errno::Errno::from_raw(*errno))),
                Err(other) => return Err(other.to_string().into()),
            };
            if let Err(err) = &outcome {
                record.stderr = err.to_string();
            }
            record.error = errno.clone();
            self.check_error(step, errno, &mut record);
        } else if let Some(kinds) = &step.observe {
            self.observe_step(&actor, step, kinds.get_ref(), &mut record)?;
        } else if let Some(path) = &step.write {
            let path = self.expand(path.get_ref())?;
            let content = self.expand(step.content.as_deref().unwrap_or(""))?;
            record.action = format!("write {content:?} to {path}");
            let reply = self.request(&actor, &Request::Write { path, content })?;
            let Reply::Wrote(result) = reply else {
                return Err(format!("actor `{actor}` answered a write with {reply:?}").into());
            };
            let errno = result.map(|e| crate::errno::name(nix::errno::Errno::from_raw(e)));
            record.error = errno.clone();
            self.check_error(step, errno, &mut record);
        } else {
            let argv = self.argv(step)?;
            record.action = match step.run {
                Some(_) => argv[2].trim().to_string(),
                None => format!("{argv:?}"),
            };
            let stdin = step.stdin.as_deref().map(|s| self.expand(s)).transpose()?;
            let env = self.environment(&actor);
            let cwd = self
                .actor_def(&actor)
                .and_then(|a| a.cwd.clone())
                .unwrap_or_else(|| "/tmp".into());
            let reply = self.request(
                &actor,
                &Request::Run {
                    argv,
                    env,
                    cwd,
                    stdin,
                },
            )?;
            let (exit, stdout, stderr) = match reply {
                Reply::Ran {
                    exit,
                    stdout,
                    stderr,
                } => (exit, stdout, stderr),
                Reply::CannotRun { program, error } => {
                    let span = step
                        .argv
                        .as_ref()
                        .map_or_else(|| step.run.as_ref().map(|r| r.span()), |a| Some(a.span()));
                    let place = span.map_or_else(String::new, |span| {
                        let (line, column) =
                            crate::scenario::line_column(&self.loaded.source, span.start);
                        format!("{line}:{column}: ")
                    });
                    let message = format!(
                        "{}:{place}step {number}: cannot run `{program}` in actor `{actor}`: {error} (PATH is {})",
                        self.loaded.path.display(),
                        command_path()
                    );
                    return Err(Abort::Invalid(message));
                }
                other => {
                    return Err(format!("actor `{actor}` answered a command with {other:?}").into())
                }
            };
            record.exit = Some(exit);
            record.stdout = stdout;
            record.stderr = stderr;
            self.check_command(step, &mut record)?;
            if let Some(kinds) = &step.probe {
                self.probe_step(step, kinds.get_ref(), &mut record)?;
            }
            if let Some(name) = &step.capture {
                let value = record.stdout.trim_end_matches('\n').to_string();
                self.vars.insert(name.get_ref().clone(), value);
            }
        }
        record.duration_us = started.elapsed().as_micros() as u64;
        Ok(record)
    }

    fn describe(&self, step: &Step) -> Result<String, Abort> {
        Ok(if let Some(run) = &step.run {
            run.get_ref().trim().to_string()
        } else if let Some(argv) = &step.argv {
            format!("{:?}", argv.get_ref())
        } else if let Some(path) = &step.write {
            format!(
                "write {:?} to {}",
                step.content.as_deref().unwrap_or(""),
                path.get_ref()
            )
        } else if let Some(name) = &step.start {
            format!("start actor `{}`", name.get_ref())
        } else if let Some(kinds) = &step.observe {
            let kinds: Vec<String> = kinds
                .get_ref()
                .iter()
                .map(|k| format!("{k:?}").to_lowercase())
                .collect();
            match &step.of {
                Some(of) => format!("observe {} of `{}`", kinds.join(", "), of.get_ref()),
                None => format!("observe {}", kinds.join(", ")),
            }
        } else {
            String::new()
        })
    }

    fn argv(&mut self, step: &Step) -> Result<Vec<String>, Abort> {
        if let Some(run) = &step.run {
            Ok(vec![
                "/bin/sh".into(),
                "-c".into(),
                self.expand(run.get_ref())?,
            ])
        } else if let Some(argv) = &step.argv {
            argv.get_ref().iter().map(|a| self.expand(a)).collect()
        } else {
            Err(Abort::from("step has no command".to_string()))
        }
    }

    fn environment(&self, actor: &str) -> Vec<(String, String)> {
        let mut env: BTreeMap<String, String> =
            [("PATH", command_path()), ("HOME", "/tmp"), ("LC_ALL", "C")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        if let Some(def) = self.actor_def(actor) {
            env.extend(def.env.clone());
        }
        env.into_iter().collect()
    }

    fn check_command(&mut self, step: &Step, record: &mut StepRecord) -> Result<(), Abort> {
        let exit = record.exit.unwrap_or(Exit::Code(-1));
        let expected_status = step.status.as_ref().map(|s| *s.get_ref());
        record
            .mismatches
            .extend(expect::status(expected_status, exit));
        for (what, pattern) in [("stdout", &step.stdout), ("stderr", &step.stderr)] {
            if let Some(pattern) = pattern {
                let expected = self.expand(pattern.get_ref())?;
                let actual = if what == "stdout" {
                    &record.stdout
                } else {
                    &record.stderr
                };
                let mismatch = expect::text(what, expected, actual);
                record.mismatches.extend(mismatch);
            }
        }
        Ok(())
    }

    fn check_error(&self, step: &Step, actual: Option<String>, record: &mut StepRecord) {
        let expected = step.error.as_ref().map(|e| e.get_ref().as_str());
        record
            .mismatches
            .extend(expect::error(expected, actual.as_deref()));
    }

    fn expand(&mut self, text: &str) -> Result<String, Abort> {
        let segments = template::parse(text).map_err(|e| e.to_string())?;
        template::expand(&segments, |placeholder| match placeholder {
            Placeholder::Hostname => Ok(self.hostname.clone()),
            Placeholder::Uid => Ok(self.ids.uid.to_string()),
            Placeholder::Gid => Ok(self.ids.gid.to_string()),
            Placeholder::Pid(actor) => {
                self.ensure_started(actor).map_err(|e| e.to_string())?;
                Ok(self.actors[actor.as_str()].pid.to_string())
            }
            Placeholder::Var(name) => self
                .vars
                .get(name)
                .cloned()
                .ok_or_else(|| format!("`{{{{var.{name}}}}}` was never captured")),
            Placeholder::Probe => Ok(self.offers.probe.clone()),
            Placeholder::Fixtures => Ok(self.offers.fixtures.clone()),
            Placeholder::Rootfs(name) => Ok(self.offers.rootfs(name)),
        })
        .map_err(Abort::from)
    }

    fn actor_def(&self, name: &str) -> Option<&'a Actor> {
        self.loaded.scenario.actors.get(name)
    }

    fn request(&mut self, actor: &str, request: &Request) -> Result<Reply, Abort> {
        self.request_with_fd(actor, request, None)
    }

    fn request_with_fd(
        &mut self,
        actor: &str,
        request: &Request,
        fd: Option<std::os::fd::RawFd>,
    ) -> Result<Reply, Abort> {
        let sent = if self.actors.contains_key(actor) {
            protocol::send(&self.actors[actor].control, request, fd).is_ok()
        } else {
            // The request goes with the actor's start, so it runs as soon as the actor is
            // set up: one round trip fewer on the scenario's path.
            let launched = self.launch(actor).map_err(|e| e.to_string())?;
            let sent = protocol::send(&launched.control, request, fd).is_ok();
            self.await_ready(actor, launched)
                .map_err(|e| e.to_string())?;
            sent
        };
        let live = &self.actors[actor];
        let gone = || {
            format!(
                "actor `{actor}` (PID {}) has exited; it cannot run more steps",
                live.pid
            )
        };
        if !sent {
            return Err(gone().into());
        }
        match protocol::recv::<Reply>(&live.control) {
            Ok(Some(received)) => Ok(received.message),
            _ => Err(gone().into()),
        }
    }
}

/// Reap ended children without waiting (the orchestrator is a namespace init).
fn reap() {
    while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}
