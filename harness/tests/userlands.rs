//! Two distribution userlands, one report: the tool scenarios run under
//! `nsconform run --userland debian-bookworm` and `--userland debian-trixie`, and
//! `nsconform report` puts the two results files side by side.
//!
//! Ignored by default: it needs both trees in the cache (`nsconform rootfs build
//! debian-bookworm` and `debian-trixie`, about a minute each with debootstrap). `.ci/run`
//! builds them and runs it with `cargo test --test userlands -- --ignored`.

use serde_json::Value;

const USERLANDS: [&str; 2] = ["debian-bookworm", "debian-trixie"];

mod common;
use common::{nsconform, text};

#[test]
#[ignore = "needs `nsconform rootfs build debian-bookworm` and `debian-trixie` (debootstrap); \
            run with --ignored"]
fn two_userlands_feed_one_report_that_shows_their_tool_versions() {
    let work = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for userland in USERLANDS {
        let file = work.path().join(format!("{userland}.json"));
        let file_arg = file.display().to_string();
        let output = nsconform(&[
            "run",
            "--userland",
            userland,
            "--results",
            &file_arg,
            "scenarios/tools",
        ]);
        let stdout = text(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{userland}:\n{stdout}\n{}",
            text(&output.stderr)
        );
        let record: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(
            record["userland"]["name"], userland,
            "{}",
            record["userland"]
        );
        assert!(
            record["summary"]["passed"].as_u64().unwrap() >= 20,
            "{userland}: {}",
            record["summary"]
        );
        // The tools were the userland's, found inside it.
        let unshare = record["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "util-linux/unshare-uts")
            .expect("unshare-uts ran");
        assert_eq!(unshare["tool"]["name"], "unshare");
        files.push(file_arg);
    }
    let [bookworm, trixie] = [&files[0], &files[1]];
    let versions: Vec<String> = files
        .iter()
        .map(|f| {
            let record: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
            record["userland"]["distribution"]["version_id"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(versions, ["12", "13"], "os-release of each tree");

    let output = nsconform(&["report", "--format", "json", bookworm, trixie]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("report JSON");
    let tools = report["tools"].as_array().expect("tools");
    let differing: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    // util-linux 2.38 vs 2.41, iproute2 6.1 vs 6.15, bubblewrap 0.8 vs 0.12.
    for tool in ["unshare", "ip", "bwrap"] {
        assert!(differing.contains(&tool), "{tool} not in {differing:?}");
    }
    let distributions: Vec<&str> = report["columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["distribution"].as_str())
        .collect();
    assert!(
        distributions[0].contains("bookworm") && distributions[1].contains("trixie"),
        "{distributions:?}"
    );
}
