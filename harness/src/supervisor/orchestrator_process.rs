//! The orchestrator process, as the supervisor forks it: make the host the scenario runs
//! on (a stand-in, or the real one), then hand over to [`Orchestrator`].
//!
//! A stand-in orchestrator may be forked before its scenario is known (a warm supervisor):
//! it prepares everything that does not depend on the scenario, then waits for the
//! scenario's path on a pipe, loads it and finishes the host while the supervisor checks
//! the scenario's requirements, and runs it when the supervisor says so.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::launch::{GO, HOLD};
use super::{open_sources, standin_rootless};
use crate::actor::spawn::SpareActor;
use crate::containment::Containment;
use crate::orchestrator::{HarnessIds, Orchestrator};
use crate::payload::offers::Sources;
use crate::report::Event;
use crate::scenario::{load_file, LoadedScenario};
use crate::standin::{self, MachineFacts};
use crate::turns::TurnPipe;

/// The scenario of a stand-in orchestrator.
pub(super) enum Scenario<'a> {
    /// Known when it was forked.
    Known(&'a LoadedScenario, &'a Sources),
    /// Its path comes on this pipe as a line, then one byte when it may run (end of file
    /// instead: it does not run).
    Told {
        /// The pipe.
        pipe: OwnedFd,
        /// The runner thread's turn pipe, if the supervisor has one (see `turns.rs`).
        turns: Option<&'a TurnPipe>,
        /// Whether to warm up while waiting (see [`super::warm_up`]): in the first stand-in
        /// a supervisor makes. Later ones are forked from a supervisor that has run a
        /// scenario, and most get theirs ahead of its turn, off its path.
        warm_up: bool,
    },
}

fn harness_ids() -> HarnessIds {
    HarnessIds {
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
    }
}

/// In a rootless stand-in: map the caller's own ids, as `unshare --map-current-user` does.
fn map_own_ids(ids: HarnessIds) -> Result<(), String> {
    let spec = crate::actor::plan::MapSpec {
        uid: vec![format!("{} {} 1", ids.uid, ids.uid)],
        gid: vec![format!("{} {} 1", ids.gid, ids.gid)],
        setgroups: Some(crate::scenario::model::SetGroups::Deny),
    };
    crate::actor::kernel::write_maps("/proc/self", &spec)
        .map_err(|e| format!("map the harness's own ids in the stand-in: {e}"))
}

/// The orchestrator of a stand-in host: first the parts that do not depend on the scenario,
/// then (once the scenario is known) the rest, then the steps. Returns the exit code.
pub(super) fn in_standin(
    scenario: Scenario<'_>,
    events: OwnedFd,
    containment: &Containment,
    machine: &MachineFacts,
) -> i32 {
    let ids = harness_ids();
    let base = (if standin_rootless() {
        map_own_ids(ids)
    } else {
        Ok(())
    })
    .and_then(|()| containment.enter(true))
    .and_then(|()| {
        standin::prepare_base(containment.has_cgroup(), machine).map_err(|e| e.to_string())
    });
    crate::phase_log::mark("orchestrator: base host ready");
    // The first actor is forked now (a warm orchestrator is waiting for its scenario), and
    // in a cold one too, so it has the same PID either way.
    let warm_up = matches!(scenario, Scenario::Told { warm_up: true, .. });
    let spare = base
        .is_ok()
        .then(|| SpareActor::fork(warm_up))
        .and_then(Result::ok);
    if warm_up {
        super::warm_up();
    }
    let told;
    let mut go = None;
    let (loaded, sources) = match scenario {
        Scenario::Known(loaded, sources) => (loaded, sources),
        Scenario::Told { pipe, turns, .. } => {
            let mut pipe = GoPipe {
                file: File::from(pipe),
                pending: Vec::new(),
                turn: 0,
                turns,
            };
            match pipe.scenario() {
                Ok(None) => return 0,
                Ok(Some(pair)) => {
                    if let Some(Err(e)) = spare.as_ref().map(SpareActor::wake) {
                        eprintln!("nsconform: the spare actor's scheduling: {e}");
                    }
                    told = pair;
                    go = Some(pipe);
                    (&told.0, &told.1)
                }
                Err(reason) => return abort_early(events, reason),
            }
        }
    };
    crate::phase_log::mark("orchestrator: scenario loaded");
    let prepared = base.and_then(|()| {
        let offers = standin::finish(|| sources.offer_in_standin().map_err(|e| e.to_string()))
            .map_err(|e| e.to_string())?;
        if let Some(root) = sources.userland_root() {
            crate::userland::enter(&root, true).map_err(|e| e.to_string())?;
        }
        Ok(offers)
    });
    crate::phase_log::mark("orchestrator: host finished");
    let mut orchestrator = match prepared {
        // Made after the stand-in, so `{{hostname}}` is the stand-in's.
        Ok(offers) => Orchestrator::new(loaded, File::from(events), ids, offers).with_spare(spare),
        Err(reason) => Orchestrator::new(loaded, File::from(events), ids, Default::default())
            .with_failure(reason),
    };
    if let Some(go) = &go {
        orchestrator = orchestrator.with_turn(go.turns, go.turn);
    }
    // Before the scenario's turn (or the supervisor's check), only what the first step
    // would do first anyway: set up its actor (see `Orchestrator::start_first_actor`).
    if go.as_ref().is_none_or(GoPipe::requirements_hold) {
        orchestrator.start_first_actor();
    }
    if go.is_some_and(|mut go| !go.may_run()) {
        return 0;
    }
    orchestrator.run()
}

/// The orchestrator of a `host = "real"` scenario, in the machine's own namespaces.
pub(super) fn on_real_host(
    loaded: &LoadedScenario,
    sources: &Sources,
    events: OwnedFd,
    containment: &Containment,
) -> i32 {
    let ids = harness_ids();
    let offered = containment.enter(false).and_then(|()| {
        nix::sys::prctl::set_child_subreaper(true)
            .map(|()| sources.offer_on_real_host())
            .map_err(|e| format!("cannot become a child subreaper: {e}"))
    });
    match offered {
        Ok(offers) => Orchestrator::new(loaded, File::from(events), ids, offers).run(),
        Err(reason) => Orchestrator::new(loaded, File::from(events), ids, Default::default())
            .with_failure(reason)
            .run(),
    }
}

/// The pipe a warm orchestrator is told its scenario on: a line `TURN PATH` (its turn's
/// number, 0 for none, and the scenario file), then [`GO`] or [`HOLD`] when the scenario's
/// requirements hold (nothing yet when the supervisor checks them first), then [`GO`] when
/// it may run.
struct GoPipe<'a> {
    file: File,
    /// Bytes read past the line.
    pending: Vec<u8>,
    /// The scenario's turn (see `turns.rs`; 0: none).
    turn: u64,
    /// The runner thread's turn pipe.
    turns: Option<&'a TurnPipe>,
}

impl GoPipe<'_> {
    /// Wait for the scenario's turn and path, then load it and find what it uses. `None`
    /// when the pipe closes first.
    fn scenario(&mut self) -> Result<Option<(LoadedScenario, Sources)>, String> {
        let mut line = Vec::new();
        let end = loop {
            if let Some(end) = line.iter().position(|b| *b == b'\n') {
                break end;
            }
            match crate::sys::read_appending(&self.file, &mut line, 4096) {
                Ok(0) => return Ok(None),
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(format!("reading the scenario's path: {e}")),
            }
        };
        self.pending = line.split_off(end + 1);
        line.truncate(end);
        let told = || format!("a told scenario is `TURN PATH`: {}", line.escape_ascii());
        let space = line.iter().position(|b| *b == b' ').ok_or_else(told)?;
        self.turn = std::str::from_utf8(&line[..space])
            .ok()
            .and_then(|turn| turn.parse().ok())
            .ok_or_else(told)?;
        let path = PathBuf::from(std::ffi::OsString::from_vec(line[space + 1..].to_vec()));
        crate::phase_log::mark("orchestrator: told");
        let loaded = load_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let sources = open_sources(&loaded)?;
        Ok(Some((loaded, sources)))
    }

    /// Whether the supervisor said, with the path, that the scenario's requirements hold
    /// ([`GO`] or [`HOLD`]): its first actor may be set up before the scenario may run.
    fn requirements_hold(&self) -> bool {
        matches!(self.pending.first(), Some(&GO | &HOLD))
    }

    /// Wait until the scenario may run (true: [`GO`], or for a held one the end of the
    /// turn before its own) or will not (false: end of file).
    fn may_run(&mut self) -> bool {
        let pending = std::mem::take(&mut self.pending);
        if pending.contains(&GO) {
            return true;
        }
        let waits_for = match (pending.first(), self.turns) {
            (Some(&HOLD), Some(turns)) if self.turn > 1 => Some((turns, self.turn - 1)),
            _ => None,
        };
        if waits_for.is_some() {
            // Its preparation is done; waiting takes no CPU, and the turn may come from
            // the last scenario's orchestrator rather than the supervisor, which is how the
            // scheduling comes back otherwise.
            let _ = crate::sys::bring_back(nix::unistd::Pid::from_raw(0));
        }
        let mut byte = [0u8; 1];
        loop {
            if let Some((turns, previous)) = waits_for {
                let Ok((told, turned)) = readable(&self.file, turns) else {
                    return false;
                };
                if turned && turns.has_ended(previous) {
                    crate::phase_log::mark("orchestrator: turn came");
                    return true;
                }
                if !told {
                    continue;
                }
            }
            match self.file.read(&mut byte) {
                Ok(1) if byte[0] == GO => return true,
                Ok(1) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                _ => return false,
            }
        }
    }
}

/// Wait until the go pipe `file` or the turn pipe `turns` has something to read; which do
/// (both false after a signal).
fn readable(file: &File, turns: &TurnPipe) -> nix::Result<(bool, bool)> {
    let mut fds = [
        PollFd::new(file.as_fd(), PollFlags::POLLIN),
        PollFd::new(turns.readable(), PollFlags::POLLIN),
    ];
    match poll(&mut fds, PollTimeout::NONE) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(e) => return Err(e),
    }
    let ready = |fd: &PollFd<'_>| fd.revents().is_some_and(|r| !r.is_empty());
    Ok((ready(&fds[0]), ready(&fds[1])))
}

/// Report an abort before there is a scenario to build an [`Orchestrator`] from.
fn abort_early(events: OwnedFd, reason: String) -> i32 {
    let event = Event::Aborted { step: None, reason };
    if let Ok(mut line) = serde_json::to_vec(&event) {
        line.push(b'\n');
        let _ = File::from(events).write_all(&line);
    }
    1
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::Write;

    use super::GoPipe;
    use crate::turns::TurnPipe;

    fn pipe_with(bytes: &[u8]) -> GoPipe<'static> {
        let (read, write) = nix::unistd::pipe().expect("pipe");
        File::from(write).write_all(bytes).expect("write");
        GoPipe {
            file: File::from(read),
            pending: Vec::new(),
            turn: 0,
            turns: None,
        }
    }

    /// A scenario file, removed at the end of the test.
    struct TempScenario(std::path::PathBuf);

    impl Drop for TempScenario {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn scenario_file() -> TempScenario {
        let path = std::env::temp_dir().join(format!(
            "nsconform-told-{}-{:?}.toml",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(
            &path,
            "description = \"told\"\n\n[[steps]]\nrun = \"true\"\n",
        )
        .expect("write the scenario");
        TempScenario(path)
    }

    /// What a supervisor tells: `TURN PATH`, a newline, then `after`.
    fn told(turn: u64, file: &TempScenario, after: &[u8]) -> Vec<u8> {
        let mut told = format!("{turn} ").into_bytes();
        told.extend_from_slice(file.0.as_os_str().as_encoded_bytes());
        told.push(b'\n');
        told.extend_from_slice(after);
        told
    }

    #[test]
    fn the_path_then_one_byte_lets_the_scenario_run() {
        let file = scenario_file();
        let mut pipe = pipe_with(&told(0, &file, b"y"));
        let (loaded, _) = pipe.scenario().expect("loads").expect("a scenario");
        assert_eq!(loaded.scenario.steps.len(), 1);
        assert!(pipe.may_run());
    }

    #[test]
    fn the_path_then_the_end_does_not_run_it() {
        let file = scenario_file();
        let mut pipe = pipe_with(&told(0, &file, b""));
        assert!(pipe.scenario().expect("loads").is_some());
        assert!(!pipe.may_run());
    }

    #[test]
    fn a_held_scenario_runs_when_the_turn_before_it_ends() {
        let file = scenario_file();
        let turns = TurnPipe::new().expect("turn pipe");
        // The go pipe stays open (no go, no end of file): only the turn lets it run.
        let (read, write) = nix::unistd::pipe().expect("pipe");
        File::from(write.try_clone().expect("dup"))
            .write_all(&told(5, &file, b"h"))
            .expect("write");
        let mut pipe = GoPipe {
            file: File::from(read),
            pending: Vec::new(),
            turn: 0,
            turns: Some(&turns),
        };
        assert!(pipe.scenario().expect("loads").is_some());
        assert_eq!(pipe.turn, 5);
        // Turns 2 and 3 were left unread; turn 4 ends a little later.
        turns.end(2);
        turns.end(3);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(50));
                turns.end(4);
            });
            assert!(pipe.may_run());
        });
        drop(write);
    }

    #[test]
    fn a_held_scenario_without_its_turn_waits_for_go_or_the_end() {
        let file = scenario_file();
        let turns = TurnPipe::new().expect("turn pipe");
        turns.end(1);
        let mut pipe = pipe_with(&told(3, &file, b"h"));
        pipe.turns = Some(&turns);
        assert!(pipe.scenario().expect("loads").is_some());
        assert!(!pipe.may_run(), "turn 1 is not the one before 3");
        let mut pipe = pipe_with(&told(3, &file, b"hy"));
        pipe.turns = Some(&turns);
        assert!(pipe.scenario().expect("loads").is_some());
        assert!(pipe.may_run(), "the supervisor's go");
    }

    #[test]
    fn nothing_told_is_no_scenario_and_a_bad_line_an_error() {
        assert!(pipe_with(b"").scenario().expect("no error").is_none());
        let error = pipe_with(b"0 /nonexistent/told.toml\n")
            .scenario()
            .map(|told| told.is_some())
            .expect_err("an error");
        assert!(error.contains("/nonexistent/told.toml"), "{error}");
        let error = pipe_with(b"/no/turn.toml\n")
            .scenario()
            .map(|told| told.is_some())
            .expect_err("an error");
        assert!(error.contains("TURN PATH"), "{error}");
    }
}
