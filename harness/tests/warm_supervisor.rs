//! The warm supervisor (`nsconform __supervise --warm`), as the runner uses it: it makes its
//! stand-in host first, then runs the scenario it is told on standard input, and leaves
//! nothing behind when no scenario comes.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{cgroups_of, repo, text};

fn warm() -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nsconform"));
    command.args(["__supervise", "--warm"]);
    start(command)
}

/// Start `command` (that execs a warm supervisor) from the repository, as the runner does.
fn start(mut command: Command) -> Child {
    command
        .current_dir(repo())
        .env_remove("NSCONFORM_TOOL_PATH")
        .env_remove("NSCONFORM_USERLAND")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nsconform")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
    })
}

fn tell(child: Child, name: &str, path: &str) -> Output {
    tell_with(child, name, path, false)
}

/// [`tell`], saying whether the runner found the scenario ready to run at once.
fn tell_with(mut child: Child, name: &str, path: &str, ready: bool) -> Output {
    let line = format!("{{\"name\":\"{name}\",\"path\":\"{path}\",\"ready\":{ready}}}\n");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(line.as_bytes())
        .expect("tell the scenario");
    child.wait_with_output().expect("wait")
}

/// The report: the first of the two lines a supervisor prints.
fn report_of(output: &Output) -> serde_json::Value {
    let first = output
        .stdout
        .split(|b| *b == b'\n')
        .next()
        .unwrap_or_default();
    serde_json::from_slice(first).unwrap_or_else(|e| {
        panic!(
            "a report, not {e}: {}{}",
            text(&output.stdout),
            text(&output.stderr)
        )
    })
}

/// The verdict of the cleanup after the report: the second line.
fn cleanup_of(output: &Output) -> serde_json::Value {
    let second = output
        .stdout
        .split(|b| *b == b'\n')
        .nth(1)
        .unwrap_or_default();
    serde_json::from_slice(second)
        .unwrap_or_else(|e| panic!("a cleanup verdict, not {e}: {}", text(&output.stdout)))
}

/// The outcome's kind: `passed`, `failed`, `skipped`, ...
fn outcome_of(output: &Output) -> String {
    let report = report_of(output);
    match &report["outcome"] {
        serde_json::Value::String(kind) => kind.clone(),
        serde_json::Value::Object(map) => map.keys().next().cloned().unwrap_or_default(),
        other => other.to_string(),
    }
}

#[test]
fn it_runs_the_scenario_it_is_told_under_the_name_it_is_given() {
    let output = tell(
        warm(),
        "told/hostname",
        "scenarios/uts/hostname-isolated.toml",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(report_of(&output)["name"], "told/hostname");
    assert_eq!(outcome_of(&output), "passed", "{}", text(&output.stdout));
    assert_eq!(
        cleanup_of(&output),
        serde_json::json!({ "cleanup": null }),
        "nothing left behind"
    );
    assert_eq!(
        text(&output.stdout).lines().count(),
        2,
        "two lines and no more"
    );
}

/// A scenario the runner checked before the run starts as soon as the orchestrator has it:
/// the supervisor leaves the requirements to that check. Its own check, without the flag,
/// skips a scenario whose requirements fail; with it, the scenario runs (and here fails, as
/// `ip link add ... type dummy` cannot work without the command it requires).
#[test]
fn a_scenario_checked_by_the_runner_runs_without_a_second_check() {
    let ready = tell_with(
        warm(),
        "ready",
        "scenarios/uts/hostname-isolated.toml",
        true,
    );
    if is_root() {
        assert_eq!(outcome_of(&ready), "passed", "{}", text(&ready.stdout));
        assert_eq!(cleanup_of(&ready), serde_json::json!({ "cleanup": null }));
    }
    let skip = "fixtures/skip/needs-dummy-link.toml";
    assert_eq!(outcome_of(&tell(warm(), "unmet", skip)), "skipped");
    let trusted = tell_with(warm(), "unmet", skip, true);
    if is_root() {
        assert_eq!(outcome_of(&trusted), "failed", "{}", text(&trusted.stdout));
        assert_eq!(cleanup_of(&trusted), serde_json::json!({ "cleanup": null }));
    }
}

#[test]
fn a_real_host_scenario_runs_as_a_cold_supervisor_would() {
    let cold = common::nsconform(&[
        "__supervise",
        "--name",
        "real",
        "scenarios/pid/real-host-init.toml",
    ]);
    let warm = tell(warm(), "real", "scenarios/pid/real-host-init.toml");
    assert_eq!(outcome_of(&warm), outcome_of(&cold));
    if is_root() {
        assert_eq!(outcome_of(&warm), "passed", "{}", text(&warm.stdout));
    }
}

#[test]
fn without_a_scenario_it_prints_nothing_and_leaves_nothing() {
    let mut child = warm();
    let pid = child.id();
    drop(child.stdin.take());
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    assert_eq!(cgroups_of(pid), Vec::<PathBuf>::new());
}

#[test]
fn sigterm_while_it_waits_removes_its_stand_in_host() {
    if !is_root() {
        eprintln!("skipped: the scenario cgroups it removes are made only as root");
        return;
    }
    let child = warm();
    let pid = child.id();
    // Its cgroup appears once it is making the stand-in host.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cgroups_of(pid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!cgroups_of(pid).is_empty(), "no cgroup was made for {pid}");
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let output = child.wait_with_output().expect("wait");
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    assert_eq!(cgroups_of(pid), Vec::<PathBuf>::new());
}

/// Tell `child` a scenario ahead of its turn (`"hold":true`, as the runner does for the
/// scenario after the one in flight); its input stays open.
fn hold(child: &mut Child, name: &str, path: &str) {
    hold_with(child, name, path, true, 0);
}

/// [`hold`], saying whether the runner found the scenario ready (the runner holds only
/// those; one that is not still waits for its go, and is checked here after it), and its
/// `turn` among its runner thread's scenarios (0: none, see `turns.rs`).
fn hold_with(child: &mut Child, name: &str, path: &str, ready: bool, turn: u64) {
    let line = format!(
        "{{\"name\":\"{name}\",\"path\":\"{path}\",\"ready\":{ready},\
         \"hold\":true,\"turn\":{turn}}}\n"
    );
    let stdin = child.stdin.as_mut().expect("stdin");
    stdin.write_all(line.as_bytes()).expect("tell the scenario");
    stdin.flush().expect("flush");
}

/// A held scenario gets ready (its first actor is set up) but nothing of it runs before the
/// runner's `go`: its command runs after that line, and the report follows.
#[test]
fn a_held_scenario_runs_only_after_its_go() {
    if !is_root() {
        eprintln!("skipped: the runner holds only scenarios it checked ready, as root here");
        return;
    }
    for ready in [true, false] {
        held_scenario_runs_only_after_its_go(ready);
    }
}

fn held_scenario_runs_only_after_its_go(ready: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = clock_scenario(dir.path());
    let mut child = warm();
    hold_with(&mut child, "held", &path.display().to_string(), ready, 0);
    // Time for the stand-in, the scenario's load and its actor's setup.
    std::thread::sleep(Duration::from_millis(300));
    let before_go = now_ns();
    let ran_at = go_and_wait(child);
    assert!(
        ran_at > before_go,
        "the command ran at {ran_at}, before its go at {before_go} (ready: {ready})"
    );
}

/// A scenario whose one step prints when it runs (`date +%s%N`), written in `dir`.
fn clock_scenario(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("clock.toml");
    std::fs::write(
        &path,
        "description = \"when the command runs\"\n[actors.a]\nunshare = [\"uts\"]\n\
         [[steps]]\nactor = \"a\"\nrun = \"date +%s%N\"\nstatus = 0\n",
    )
    .expect("write the scenario");
    path
}

/// Send the held [`clock_scenario`] of `child` its go, wait for the end, check that it
/// passed and left nothing, and return when its command ran.
fn go_and_wait(mut child: Child) -> u128 {
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").expect("go");
    drop(stdin);
    let output = child.wait_with_output().expect("wait");
    assert_eq!(outcome_of(&output), "passed", "{}", text(&output.stdout));
    assert_eq!(cleanup_of(&output), serde_json::json!({ "cleanup": null }));
    report_of(&output)["steps"][0]["stdout"]
        .as_str()
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("a time, not {e}: {}", text(&output.stdout)))
}

/// A held scenario whose turn never comes (the run stopped) is not run nor reported, and its
/// stand-in host and cgroups are removed.
#[test]
fn a_held_scenario_whose_turn_never_comes_leaves_nothing() {
    let mut child = warm();
    let pid = child.id();
    hold(&mut child, "held", "scenarios/uts/hostname-isolated.toml");
    std::thread::sleep(Duration::from_millis(100));
    drop(child.stdin.take());
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    assert_eq!(cgroups_of(pid), Vec::<PathBuf>::new());
}

/// A warm supervisor given a turn pipe (`--turns`, descriptors 3 and 4; here a FIFO the
/// test writes to as the orchestrator of the turn before would).
fn warm_with_turns(fifo: &std::path::Path) -> Child {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"exec 3<>"$1" 4>"$1"; shift; exec "$@""#)
        .arg("sh")
        .arg(fifo)
        .arg(env!("CARGO_BIN_EXE_nsconform"))
        .args(["__supervise", "--warm", "--turns"]);
    start(command)
}

/// Nanoseconds since the epoch.
fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos()
}

/// A held scenario with turn 4 runs once turn 3 ends on its thread's turn pipe, before the
/// runner's `go`; an older turn's end does not let it run.
#[test]
fn a_held_scenario_runs_when_the_turn_before_it_ends() {
    if !is_root() {
        eprintln!("skipped: the runner holds only scenarios it checked ready, as root here");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("turns");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let path = clock_scenario(dir.path());
    let mut child = warm_with_turns(&fifo);
    hold_with(&mut child, "held", &path.display().to_string(), true, 4);
    std::thread::sleep(Duration::from_millis(300));
    let mut turns = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("open the FIFO");
    // Turn 2 ended long ago, unread: not the one before 4.
    turns.write_all(&2u64.to_le_bytes()).expect("turn 2");
    std::thread::sleep(Duration::from_millis(200));
    let turn_3_ended = now_ns();
    turns.write_all(&3u64.to_le_bytes()).expect("turn 3");
    std::thread::sleep(Duration::from_millis(300));
    let go = now_ns();
    let ran_at = go_and_wait(child);
    assert!(
        turn_3_ended < ran_at && ran_at < go,
        "the command ran at {ran_at}: not between the end of turn 3 ({turn_3_ended}) and \
         the go ({go})"
    );
}
