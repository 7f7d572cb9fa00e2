//! Starting the supervisor of a scenario: the thread's warm one, told its scenario (and the
//! thread's next one started ahead, by its fork server or by an exec), or a cold one.

use std::io::Write;
use std::process::{Command, Stdio};

use super::process::Supervisor;
use super::warm_pool::WarmPool;
use super::{Runner, ScenarioFile};
use crate::supervisor::{Assignment, GO_LINE};

/// A supervisor running `file`: a warm one told its scenario (and this thread's next one
/// started), or else a cold `__supervise` of the file. With `hold` (warm supervisors only,
/// for a scenario checked ready), the scenario is made ready to run and waits for
/// [`let_run`] or the end of the thread's `turn` before it (see [`Assignment::hold`];
/// `turn` 0: none).
pub(super) fn start_supervisor(
    runner: &Runner,
    file: &ScenarioFile,
    turn: u64,
    hold: bool,
) -> std::io::Result<Supervisor> {
    let Some(pool) = &runner.warm else {
        return runner
            .command()
            .arg("__supervise")
            .arg("--name")
            .arg(&file.name)
            .arg(&file.path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map(Supervisor::from_child);
    };
    // Told when it is handed over, as the runner's needs are known then.
    let line = || -> std::io::Result<Vec<u8>> {
        let assignment = Assignment {
            name: file.name.clone(),
            path: file.path.clone(),
            ready: runner.ready.contains(&file.path),
            hold,
            turn,
            last: pool.none_left(),
        };
        let mut line = serde_json::to_vec(&assignment).map_err(std::io::Error::other)?;
        line.push(b'\n');
        Ok(line)
    };
    // A warm supervisor that died while waiting takes no scenario: start another.
    let mut warm = pool.take();
    let told = match warm.as_mut() {
        Some(warm) => tell(warm, &line()?, hold).is_ok(),
        None => false,
    };
    let supervisor = match warm {
        Some(warm) if told => warm,
        stale => {
            if let Some(mut stale) = stale {
                // At the end of its input a warm supervisor still alive removes its stand-in.
                stale.end();
            }
            pool.claim();
            let mut fresh = exec_warm(runner, pool)?;
            tell(&mut fresh, &line()?, hold)?;
            fresh
        }
    };
    // Its input stays open: after this scenario it makes a new stand-in host and waits for
    // another (see `WarmPool::recycle`).
    // As in `WarmStandIn::announce`: the supervisor just woken may be queued behind this
    // thread, which has the next supervisor to start; it goes first.
    let _ = nix::sched::sched_yield();
    // A new one only when none waits: those that ran a scenario come back.
    if pool.none_waiting() && pool.claim() {
        // A failure here only means the next scenario starts cold.
        if let Ok(next) = start_ahead(runner, pool) {
            pool.put(next);
        }
    }
    Ok(supervisor)
}

/// Start this thread's next warm supervisor, ahead of its scenario: forked by the thread's
/// fork server when it can (started with the first of them), else exec'd.
///
/// As root, it runs in the background (nice 19) from its start on, with its stand-in host:
/// on 2 cores, the thing it competes with is the scenario in flight, which goes first.
/// [`tell`] brings it back to normal with its scenario. (A fork server started meanwhile
/// goes back to normal itself.)
fn start_ahead(runner: &Runner, pool: &WarmPool) -> std::io::Result<Supervisor> {
    use crate::sys::{set_scheduling, step_aside, Scheduling};
    let this_thread = nix::unistd::Pid::from_raw(0);
    // What this thread starts now inherits its policy, through an exec too.
    let background = step_aside(this_thread, Scheduling::Background);
    let server = || {
        let mut command = runner.command();
        command.args(["__supervise", "--server"]);
        with_turns(command, pool)
    };
    let started = match pool.fork(server) {
        Some(forked) => Ok(Supervisor::from_forked(forked)),
        None => exec_warm(runner, pool),
    };
    if background {
        let _ = set_scheduling(this_thread, Scheduling::Normal);
    }
    started
}

/// `command` (a `__supervise`) with this thread's turn pipe, when it has one.
fn with_turns(mut command: Command, pool: &WarmPool) -> Command {
    if let Some(fds) = pool.turn_pipe_fds() {
        crate::sys::give_fds_3_and_4(&mut command, fds);
        command.arg("--turns");
    }
    command
}

/// Exec a warm supervisor (`__supervise --warm`).
fn exec_warm(runner: &Runner, pool: &WarmPool) -> std::io::Result<Supervisor> {
    let mut command = runner.command();
    command.args(["__supervise", "--warm"]);
    with_turns(command, pool)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(Supervisor::from_child)
}

/// Let the held scenario of `supervisor` run (see [`start_supervisor`]), back in the normal
/// scheduling.
pub(super) fn let_run(supervisor: &mut Supervisor) -> std::io::Result<()> {
    let mut line = GO_LINE.to_vec();
    line.push(b'\n');
    tell(supervisor, &line, false)?;
    // As in `start_supervisor`: the supervisor just woken may be queued behind this thread.
    let _ = nix::sched::sched_yield();
    Ok(())
}

/// Give `supervisor` its scenario (or its go), back in the normal scheduling (see
/// [`start_ahead`]), unless it is to `hold` it: what it does for it until [`let_run`] stays in the
/// background, behind the scenario in flight.
fn tell(supervisor: &mut Supervisor, line: &[u8], hold: bool) -> std::io::Result<()> {
    if !hold {
        let _ = crate::sys::bring_back(nix::unistd::Pid::from_raw(supervisor.id() as i32));
    }
    match supervisor.stdin.as_mut() {
        Some(stdin) => stdin.write_all(line),
        None => Err(std::io::Error::other("no input")),
    }
}
