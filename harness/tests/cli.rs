//! Tests of the `nsconform` binary and of the `scenarios` test harness itself, on the
//! fixture scenarios in `fixtures/`: positions in errors, failures that name the step,
//! timeouts that kill everything, skips with reasons, and the libtest-style listing.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{nsconform, nsconform_with, repo, text};

/// Every file in `fixtures/invalid/` starts with `# expect: LINE:COLUMN: MESSAGE`: both
/// `check` and `run` must print exactly that position and message, exit 2, and not panic.
#[test]
fn every_malformed_scenario_gets_its_position_and_cause_and_exit_2() {
    let dir = repo().join("fixtures/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .filter_map(|e| Some(e.ok()?.path()))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "only {} malformed fixtures", files.len());
    for file in files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .expect("name")
            .to_string();
        let text_of_file = std::fs::read_to_string(&file).expect("read");
        let header = text_of_file.lines().next().unwrap_or("");
        let expected = header
            .strip_prefix("# expect:")
            .expect("an `# expect:` header")
            .trim();
        let path = format!("fixtures/invalid/{name}");
        let expected = if expected.starts_with(|c: char| c.is_ascii_digit()) {
            format!("{path}:{expected}")
        } else {
            format!("{path}: {expected}")
        };
        for command in ["check", "run"] {
            let output = nsconform(&[command, &path]);
            let all = text(&output.stderr) + &text(&output.stdout);
            assert_eq!(output.status.code(), Some(2), "{command} {path}: {all}");
            assert!(
                all.contains(&expected),
                "{command} {path}: expected {expected:?} in:\n{all}"
            );
            assert!(!all.contains("panicked"), "{all}");
        }
    }
}

#[test]
fn an_unreadable_scenario_is_bad_input_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a-directory.toml");
    std::fs::create_dir(&path).expect("mkdir");
    let missing = dir.path().join("missing.toml");
    let binary = dir.path().join("not-text.toml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x80]).expect("write");
    for target in [&path, &missing, &binary] {
        let shown = target.display().to_string();
        let output = nsconform(&["check", &shown]);
        let all = text(&output.stderr) + &text(&output.stdout);
        assert_eq!(output.status.code(), Some(2), "{all}");
        assert!(all.contains(&shown), "{all}");
    }
}

#[test]
fn check_accepts_every_shipped_scenario() {
    let output = nsconform(&["check", "scenarios"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains(", 0 invalid"),
        "{}",
        text(&output.stdout)
    );
}

#[test]
fn a_wrong_expectation_fails_naming_the_step_with_a_diff() {
    let output = nsconform(&["run", "fixtures/failing/wrong-hostname.toml"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    for expected in [
        "FAIL fixtures/failing/wrong-hostname",
        "step 2 at fixtures/failing/wrong-hostname.toml:10, actor `shell`: hostname",
        "-othername",
        "+newname",
        "0 passed, 1 failed, 0 skipped, 0 invalid",
    ] {
        assert!(
            stdout.contains(expected),
            "expected {expected:?} in:\n{stdout}"
        );
    }
}

#[test]
fn a_hanging_command_is_killed_at_the_timeout_naming_the_step() {
    let started = std::time::Instant::now();
    let output = nsconform(&["run", "fixtures/hang/sleep-in-pid-namespace.toml"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("timed out after 1000 ms in step 2 (fixtures/hang/sleep-in-pid-namespace.toml:13), actor `shell`: sleep 1000"),
        "{stdout}"
    );
    assert!(
        started.elapsed().as_secs() < 10,
        "took {:?}",
        started.elapsed()
    );
    // `run` fails on any host-guard leak; none may be reported.
    assert!(
        !text(&output.stderr).contains("host guard"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn unmet_requirements_skip_with_the_reason() {
    let output = nsconform(&["run", "fixtures/skip"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("SKIP needs-dummy-link"), "{stdout}");
    assert!(stdout.contains("requires "), "{stdout}");
}

/// The `scenarios` test binary, built by cargo beside this one.
fn scenarios_harness() -> PathBuf {
    let deps = std::env::current_exe()
        .expect("current exe")
        .parent()
        .expect("deps dir")
        .to_path_buf();
    let mut candidates: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&deps)
        .expect("read deps")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("scenarios-") && p.extension().is_none()
        })
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    candidates.sort();
    candidates
        .pop()
        .map(|(_, p)| p)
        .expect("the scenarios test binary is built by `cargo test`")
}

#[test]
fn the_test_harness_lists_every_scenario_by_path() {
    let output = Command::new(scenarios_harness())
        .args(["--list"])
        .output()
        .expect("run harness");
    let listing = text(&output.stdout);
    assert!(output.status.success(), "{listing}");
    let files = nsconform::runner::discover(&[repo().join("scenarios")]).expect("discover");
    assert!(files.len() >= 25, "only {} scenarios", files.len());
    for file in &files {
        assert!(
            listing.contains(&format!("{}: test", file.name)),
            "{} missing from:\n{listing}",
            file.name
        );
    }
}

#[test]
fn the_test_harness_runs_one_scenario_by_exact_name() {
    let output = Command::new(scenarios_harness())
        .args(["--exact", "uts/hostname-isolated", "--format", "terse"])
        .output()
        .expect("run harness");
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("1 passed; 0 failed"), "{stdout}");
}

#[test]
fn a_tool_that_fails_to_isolate_is_caught_and_only_renames_the_stand_in() {
    let before = nix_hostname();
    let output = nsconform(&["run", "fixtures/broken-tool/unshare-drops-uts.toml"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("step 2 at fixtures/broken-tool/unshare-drops-uts.toml:14"),
        "{stdout}"
    );
    assert!(stdout.contains("+renamed-by-a-broken-tool"), "{stdout}");
    assert_eq!(nix_hostname(), before, "the machine was renamed");
    assert!(
        !text(&output.stderr).contains("host guard"),
        "{}",
        text(&output.stderr)
    );
}

fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").expect("read hostname")
}

#[test]
fn passing_fixtures_pass_jobs_traps_and_the_process_cap() {
    let output = nsconform(&["run", "fixtures/passing"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("PASS shell-waits-and-traps"), "{stdout}");
    assert!(stdout.contains("PASS warm-supervisor-priority"), "{stdout}");
    assert!(
        stdout.contains(" passed, 0 failed, 0 skipped, 0 invalid"),
        "{stdout}"
    );
}

/// `nsconform features` answers every feature with yes or no and why: what succeeded, or
/// the call that failed.
#[test]
fn the_feature_table_gives_each_verdict_a_reason() {
    let output = nsconform(&["features"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let mut lines = stdout.lines();
    assert_eq!(
        lines
            .next()
            .map(str::split_whitespace)
            .map(Iterator::collect::<Vec<_>>),
        Some(vec!["feature", "available", "reason"])
    );
    let rows: Vec<&str> = lines.take_while(|line| !line.is_empty()).collect();
    assert!(rows.len() >= 15, "{stdout}");
    for row in &rows {
        let mut words = row.split_whitespace();
        let (feature, verdict) = (words.next(), words.next());
        let reason = words.collect::<Vec<_>>().join(" ");
        assert!(
            feature.is_some() && matches!(verdict, Some("yes" | "no")) && !reason.is_empty(),
            "row without a verdict and a reason: {row:?}"
        );
        // A failure's own words come back from the throw-away process that tried it.
        assert!(
            !reason.contains("ended with"),
            "a reason lost on the way: {row:?}"
        );
    }
    assert!(stdout.contains("pidfd_open(self) succeeded"), "{stdout}");
}

#[test]
fn the_results_file_records_the_machine_features_and_every_scenario() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("results.json");
    let output = nsconform(&[
        "run",
        "--results",
        path.to_str().expect("utf-8 path"),
        "scenarios/uts",
        "fixtures/skip",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    let text = std::fs::read_to_string(&path).expect("results file written");
    // The typed structs refuse unknown fields: parsing back checks the documented schema.
    let results: nsconform::results::Results =
        serde_json::from_str(&text).expect("results match the schema");
    assert_eq!(results.schema, nsconform::results::SCHEMA);
    assert!(!results.machine.kernel_release.is_empty());
    assert!(!results.machine.architecture.is_empty());
    assert!(
        results.features.len() >= 15,
        "{} features",
        results.features.len()
    );
    assert!(
        results.tools.contains_key("hostname"),
        "{:?}",
        results.tools
    );
    let files =
        nsconform::runner::discover(&[repo().join("scenarios/uts"), repo().join("fixtures/skip")])
            .expect("discover");
    let names: Vec<&str> = results.scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names.len(), files.len(), "{names:?}");
    assert_eq!(results.summary.skipped, 1);
    assert_eq!(results.summary.passed, files.len() - 1);
    assert!(results
        .scenarios
        .iter()
        .all(|s| !s.steps.is_empty()
            || matches!(s.outcome, nsconform::report::Outcome::Skipped { .. })));
}

#[test]
fn a_wrong_observation_fails_with_the_observation_diff() {
    let output = nsconform(&["run", "fixtures/failing/wrong-observation.toml"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    for expected in [
        "step 2 at fixtures/failing/wrong-observation.toml:10, actor `shell`: observe identity, namespaces",
        "expect.hostname does not match",
        "-\"othername\"",
        "+\"newname\"",
    ] {
        assert!(stdout.contains(expected), "expected {expected:?} in:\n{stdout}");
    }
    assert!(
        !stdout.contains("expect.namespaces"),
        "only the failing field is shown:\n{stdout}"
    );
}

/// A shipped scenario that snapshots its observations, and its snapshot file's name.
fn a_snapshot_scenario() -> (String, String) {
    let files = nsconform::runner::discover(&[repo().join("scenarios")]).expect("discover");
    let file = files
        .iter()
        .find(|f| {
            let text = std::fs::read_to_string(&f.path).unwrap_or_default();
            text.lines().any(|l| l.trim() == "snapshot = true")
        })
        .expect("at least one scenario sets snapshot = true");
    (
        file.name.clone(),
        format!("{}.snap", file.name.replace('/', "__")),
    )
}

#[test]
fn a_changed_observation_fails_the_snapshot_or_waits_for_review() {
    let (name, snap) = a_snapshot_scenario();
    let dir = tempfile::tempdir().expect("tempdir");
    let original =
        std::fs::read_to_string(repo().join("snapshots").join(&snap)).expect("snapshot committed");
    // Pretend the kernel used to behave differently: the recorded observation differs.
    let (header, body) = original.split_once("\n---\n").expect("insta header");
    let body = body.replacen('\n', "\n  \"recorded\": \"on another kernel\",\n", 1);
    std::fs::write(dir.path().join(&snap), format!("{header}\n---\n{body}"))
        .expect("write snapshot");

    let run = |ci: bool| {
        let mut command = Command::new(scenarios_harness());
        command
            .args(["--exact", &name])
            .env("NSCONFORM_SNAPSHOTS", dir.path())
            .env_remove("CI");
        if ci {
            command.env("CI", "true");
        } else {
            command.env("INSTA_UPDATE", "new");
        }
        command.output().expect("run harness")
    };
    let strict = run(true);
    let all = text(&strict.stdout) + &text(&strict.stderr);
    assert!(!strict.status.success(), "{all}");
    assert!(
        all.contains("on another kernel"),
        "the diff shows the recorded difference:\n{all}"
    );
    assert!(
        !dir.path().join(format!("{snap}.new")).exists(),
        "CI mode writes nothing"
    );

    let review = run(false);
    assert!(!review.status.success());
    let pending = std::fs::read_to_string(dir.path().join(format!("{snap}.new")))
        .expect("a pending snapshot for review");
    assert!(
        !pending.contains("on another kernel"),
        "the pending snapshot holds the new observation"
    );
}

#[test]
fn a_program_not_on_path_is_bad_input_with_its_position() {
    let path = "fixtures/run-invalid/missing-program.toml";
    assert_eq!(
        nsconform(&["check", path]).status.code(),
        Some(0),
        "valid as a file"
    );
    let output = nsconform(&["run", path]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("fixtures/run-invalid/missing-program.toml:8:8: step 1: cannot run `nsconform-no-such-program` in actor `shell`"),
        "{stdout}"
    );
}

/// Copy a directory tree (scenario files only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from)
        .expect("read dir")
        .filter_map(Result::ok)
    {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn an_unprivileged_run_passes_rootless_scenarios_and_skips_the_rest() {
    use std::os::unix::fs::PermissionsExt;
    if !nix_is_root() {
        return; // Already unprivileged: the whole suite is this test.
    }
    // Somewhere uid 65534 can read, whatever the permissions of the clone's parents.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let exe = dir.path().join("nsconform");
    std::fs::copy(env!("CARGO_BIN_EXE_nsconform"), &exe).expect("copy binary");
    copy_tree(&repo().join("scenarios"), &dir.path().join("scenarios"));
    let output = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(&exe)
        .args(["run", "scenarios"])
        .current_dir(dir.path())
        .output()
        .expect("run setpriv");
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    let passed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("PASS ")).collect();
    assert!(passed.len() >= 6, "{stdout}");
    for line in stdout.lines().filter(|l| l.starts_with("SKIP ")) {
        assert!(line.contains(": requires "), "{line}");
    }
    // Every scenario that does not need root ran, and passed.
    let files = nsconform::runner::discover(&[repo().join("scenarios")]).expect("discover");
    for file in files {
        let needs_root = std::fs::read_to_string(&file.path)
            .expect("read")
            .lines()
            .any(|l| l.trim() == "root = true");
        if !needs_root {
            assert!(
                stdout.contains(&format!("PASS {} ", file.name)),
                "{} did not pass unprivileged:\n{stdout}",
                file.name
            );
        }
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

/// PIDs of processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .expect("proc")
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_kind_of_hang_and_a_fork_bomb_end_at_their_timeouts_leaving_nothing() {
    let started = std::time::Instant::now();
    let output = nsconform(&["run", "fixtures/hang"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    for name in [
        "fork-bomb",
        "sleep-in-joined-actor",
        "sleep-in-pid-namespace",
        "sleep-on-host-side",
    ] {
        assert!(
            stdout.contains(&format!("FAIL {name} (")),
            "{name}:\n{stdout}"
        );
    }
    assert_eq!(stdout.matches("timed out after").count(), 4, "{stdout}");
    assert!(
        started.elapsed().as_secs() < 20,
        "took {:?}",
        started.elapsed()
    );
    assert!(
        !text(&output.stderr).contains("host guard"),
        "{}",
        text(&output.stderr)
    );
    assert!(processes_with("bomb()").is_empty(), "fork bomb survived");
}

#[test]
fn sigterm_to_a_run_stops_the_scenarios_in_flight_and_cleans_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = format!("999.{}", std::process::id());
    for name in ["a", "b", "c"] {
        let scenario = format!(
            "description = \"hangs until stopped\"\ntimeout = \"60s\"\n[actors.shell]\nunshare = [\"pid\"]\nmount_proc = true\n[[steps]]\nactor = \"shell\"\nrun = \"sleep {marker}\"\n"
        );
        std::fs::write(dir.path().join(format!("{name}.toml")), scenario).expect("write");
    }
    let child = Command::new(env!("CARGO_BIN_EXE_nsconform"))
        .args(["run", "-j", "2"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start run");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while processes_with(&format!("sleep {marker}")).len() < 2
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        processes_with(&format!("sleep {marker}")).len(),
        2,
        "two scenarios in flight"
    );
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
    let output = child.wait_with_output().expect("wait");
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(128 + 15), "{stdout}");
    assert_eq!(
        stdout.matches("interrupted by SIGTERM").count(),
        2,
        "{stdout}"
    );
    assert!(
        stdout.contains("0 passed, 2 failed"),
        "the third never started:\n{stdout}"
    );
    assert!(
        processes_with(&format!("sleep {marker}")).is_empty(),
        "sleepers survived"
    );
}

/// Whether this kernel can collapse anonymous memory into huge pages on request
/// (`MADV_COLLAPSE`, Linux 6.1) and huge pages are not disabled: then the harness moves its
/// code into them (`huge_code.rs`).
fn huge_pages_on_request() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    let enabled =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    cfg!(target_arch = "x86_64") && version >= (6, 1) && !enabled.contains("[never]")
}

/// A run of several scenarios on one thread: the second and later are held, each let run
/// by the end of the turn before (`turns.rs`), and the fork server moves the code into huge
/// pages where the kernel can (else it says why), as its phase log shows.
#[test]
fn held_scenarios_take_their_turn_from_the_one_before() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("turns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("make the directory");
    // Each takes long enough for the next one to get ready meanwhile, even on a busy
    // machine: its orchestrator then waits for the turn, which comes before the go.
    for n in 1..=3 {
        std::fs::write(
            dir.join(format!("slow-{n}.toml")),
            "description = \"a step that takes a while\"\n[actors.a]\nunshare = [\"uts\"]\n\
             [[steps]]\nactor = \"a\"\nrun = \"sleep 0.3\"\n",
        )
        .expect("write a scenario");
    }
    let log = dir.join("phases.log");
    let output = nsconform_with(
        &["run", "-j", "1", &dir.display().to_string()],
        &[("NSCONFORM_PHASE_LOG", &log.display().to_string())],
    );
    let phases = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(output.status.success(), "{}", text(&output.stdout));
    let count = |phase: &str| phases.lines().filter(|l| l.ends_with(phase)).count();
    assert!(count("runner: scenario held") >= 2, "{phases}");
    assert!(count("orchestrator: turn came") >= 1, "{phases}");
    let huge: Vec<&str> = phases
        .lines()
        .filter(|l| l.contains("huge code:"))
        .collect();
    assert!(!huge.is_empty(), "the fork server tried: {phases}");
    if huge_pages_on_request() {
        assert!(
            huge.iter()
                .all(|l| l.ends_with("MB moved") && !l.ends_with(" 0 MB moved")),
            "{huge:?}"
        );
    } else {
        eprintln!("no huge pages on request here: {huge:?}");
    }
}
