//! The harness catches a broken container tool: each deliberately broken stand-in in
//! `fixtures/broken-tools/` (a wrapper of the real tool that drops or bends one option) is
//! put first on the commands' `PATH` with `nsconform run --tool-path`, and the scenario about
//! that option must fail at the step that checks the broken promise, with a diff showing it,
//! while the same scenario passes with the real tool.

mod common;
use common::{nsconform_with as nsconform, repo, text};

/// What one broken stand-in breaks and where the scenario about it must catch it.
struct Case {
    /// The directory under `fixtures/broken-tools/`.
    tool: &'static str,
    /// The scenario under `scenarios/tools/util-linux/`, without `.toml`.
    scenario: &'static str,
    /// The number of the step that must fail (its line is looked up in the file).
    step: usize,
    /// Lines the failure's diff must contain, with runs of spaces squeezed to one: the
    /// promise (`-...`) and the broken result (`+...`).
    diff: &'static [&'static str],
}

/// Run `case`'s scenario with the real tool (must pass) and then with the broken stand-in
/// (must fail at the step, with the diff), the stand-in given by `--tool-path` or, when
/// `by_env`, by `NSCONFORM_TOOL_PATH`. Returns false when this machine skips the scenario.
fn check(case: &Case, by_env: bool) -> bool {
    let scenario = format!("scenarios/tools/util-linux/{}.toml", case.scenario);
    let name = format!("tools/util-linux/{}", case.scenario);
    let real = nsconform(&["run", &scenario], &[]);
    let real_all = text(&real.stdout) + &text(&real.stderr);
    if real_all.contains(&format!("SKIP {name}")) {
        eprintln!("skipped on this machine: {real_all}");
        return false;
    }
    assert_eq!(real.status.code(), Some(0), "real tool:\n{real_all}");
    assert!(
        real_all.contains(&format!("PASS {name}")),
        "real tool:\n{real_all}"
    );

    let (dir, _copy) = stand_in_dir(case.tool);
    let broken = if by_env {
        let absolute = repo().join(&dir).display().to_string();
        nsconform(
            &["run", &scenario],
            &[("NSCONFORM_TOOL_PATH", absolute.as_str())],
        )
    } else {
        nsconform(&["run", "--tool-path", &dir, &scenario], &[])
    };
    let all = text(&broken.stdout) + &text(&broken.stderr);
    assert_eq!(broken.status.code(), Some(1), "{}:\n{all}", case.tool);
    assert!(
        all.contains(&format!("FAIL {name}")),
        "{}:\n{all}",
        case.tool
    );
    let step = format!(
        "step {} at scenarios/tools/util-linux/{}.toml:{}, actor",
        case.step,
        case.scenario,
        step_line(&scenario, case.step)
    );
    assert!(
        all.contains(&step),
        "{}: expected {step:?} in:\n{all}",
        case.tool
    );
    assert!(
        all.contains("stdout does not match"),
        "{}:\n{all}",
        case.tool
    );
    let lines: Vec<String> = all.lines().map(squeeze).collect();
    for expected in case.diff {
        assert!(
            lines.iter().any(|l| l == expected),
            "{}: expected the diff line {expected:?} in:\n{all}",
            case.tool
        );
    }
    true
}

/// The stand-in's directory as a tool path. The stand-in host hides `/tmp` and `/run`, so
/// a checkout there (a CI clone, say) has its stand-ins copied to `/var/tmp` first.
fn stand_in_dir(tool: &str) -> (String, Option<tempfile::TempDir>) {
    let source = repo().join("fixtures/broken-tools").join(tool);
    let real = std::fs::canonicalize(&source).expect("stand-in directory");
    if !(real.starts_with("/tmp") || real.starts_with("/run")) {
        return (format!("fixtures/broken-tools/{tool}"), None);
    }
    // Removed when the returned guard is dropped, at the end of the case.
    let copy = tempfile::Builder::new()
        .prefix("nsconform-broken-tools-")
        .tempdir_in("/var/tmp")
        .expect("create the copy");
    for entry in std::fs::read_dir(&real).expect("read stand-in") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), copy.path().join(entry.file_name())).expect("copy stand-in");
    }
    (copy.path().display().to_string(), Some(copy))
}

/// The line of the `number`th `[[steps]]` of scenario file `path` (relative to the repo),
/// which is where failures point.
fn step_line(path: &str, number: usize) -> usize {
    let text = std::fs::read_to_string(repo().join(path)).expect("scenario");
    text.lines()
        .enumerate()
        .filter(|(_, line)| line.trim() == "[[steps]]")
        .nth(number - 1)
        .map(|(index, _)| index + 1)
        .expect("no such step")
}

/// A diff line without its indentation, its sign kept, and runs of spaces after the sign
/// squeezed to one: `        -      1 sh` is `-1 sh`.
fn squeeze(line: &str) -> String {
    let line = line.trim_start();
    let (sign, rest) = line.split_at(line.chars().next().map_or(0, char::len_utf8));
    format!(
        "{sign}{}",
        rest.split_whitespace().collect::<Vec<_>>().join(" ")
    )
}

#[test]
fn an_unshare_that_drops_uts_renames_the_host_and_is_caught() {
    check(
        &Case {
            tool: "unshare-drops-uts",
            scenario: "unshare-uts",
            step: 2,
            diff: &["-nsconform-host", "+inside-uts"],
        },
        false,
    );
    // The machine itself was never renamed: the stand-in host took the rename.
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_ne!(machine.trim(), "inside-uts");
}

#[test]
fn an_unshare_that_maps_the_wrong_uid_is_caught() {
    check(
        &Case {
            tool: "unshare-wrong-map",
            scenario: "unshare-user-maps",
            step: 2,
            diff: &["+1", "-0 1000 1", "+1 1000 1"],
        },
        false,
    );
}

#[test]
fn an_unshare_that_forgets_mount_proc_shows_the_parent_pid_namespace_and_is_caught() {
    check(
        &Case {
            tool: "unshare-stale-proc",
            scenario: "unshare-pid-fork-mount-proc",
            step: 1,
            // The shell is not PID 1 of the /proc it sees. What `ps -e` prints then depends on
            // PID numbering: procps finds itself by its own PID (`getpid`, counted in the new
            // namespace) in the parent's /proc, so it lists the parent's processes when that
            // number happens to exist there and fails ("lookup self") when it does not.
            diff: &["-[..] 1 sh"],
        },
        false,
    );
}

#[test]
fn an_nsenter_that_ignores_uts_is_caught_with_the_tool_path_from_the_environment() {
    check(
        &Case {
            tool: "nsenter-ignores-uts",
            scenario: "nsenter-types",
            step: 2,
            diff: &["-boxname", "+nsconform-host"],
        },
        true,
    );
}

#[test]
fn every_broken_stand_in_has_a_case_and_an_executable_named_like_the_tool() {
    use std::os::unix::fs::PermissionsExt;
    let dir = repo().join("fixtures/broken-tools");
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README.md");
    let source = include_str!("broken_tools.rs");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures/broken-tools") {
        let path = entry.expect("entry").path();
        if !path.is_dir() {
            continue;
        }
        count += 1;
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        let tool = name.split('-').next().expect("tool");
        let wrapper = path.join(tool);
        let mode = wrapper.metadata().expect("wrapper").permissions().mode();
        assert!(mode & 0o111 != 0, "{} is not executable", wrapper.display());
        assert!(readme.contains(&format!("`{name}`")), "README.md: {name}");
        assert!(
            source.contains(&format!("tool: \"{name}\"")),
            "no test case for {name}"
        );
    }
    assert!(count >= 4, "only {count} broken stand-ins");
}

#[test]
fn a_tool_path_the_standin_host_hides_or_that_does_not_exist_is_bad_input() {
    let scenario = "scenarios/tools/util-linux/unshare-uts.toml";
    for (dir, message) in [
        ("/tmp", "under /tmp"),
        ("/run", "under /run"),
        ("fixtures/broken-tools/no-such-tool", "no-such-tool"),
    ] {
        let output = nsconform(&["run", "--tool-path", dir, scenario], &[]);
        let all = text(&output.stderr) + &text(&output.stdout);
        assert_eq!(output.status.code(), Some(2), "{dir}: {all}");
        assert!(all.contains(message), "{dir}: {all}");
        let output = nsconform(&["run", scenario], &[("NSCONFORM_TOOL_PATH", dir)]);
        let all = text(&output.stderr) + &text(&output.stdout);
        assert_eq!(output.status.code(), Some(2), "env {dir}: {all}");
        assert!(all.contains(message), "env {dir}: {all}");
    }
}
