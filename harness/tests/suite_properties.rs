//! Properties every shipped scenario must have, checked by rewriting it and running it:
//!
//! - **mutation**: changing any one expected value (stdout, stderr, status, error, or the
//!   implicit "exit 0" / "no error") makes the scenario fail at exactly that step;
//! - **ablation**: removing any one namespace type from any one actor makes the scenario
//!   fail, so no scenario passes without the namespace it is about. Scenarios with
//!   `host = "real"` are left out: ablated, they would act on the machine itself.
//!
//! Mutated copies run through the same runner as `cargo test`, in fresh supervisors.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use nsconform::report::Outcome;
use nsconform::runner::{discover, Runner, ScenarioFile};
use toml_edit::{value, DocumentMut, Item};

fn scenarios() -> Vec<ScenarioFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    discover(&[root]).expect("discover scenarios")
}

/// A rewritten copy of a scenario, and what must happen when it runs.
struct Variant {
    scenario: String,
    label: String,
    text: String,
    /// The step that must fail, or `None` for "some step fails".
    failing_step: Option<usize>,
}

/// Run every variant (in parallel) and collect the ones that did not fail as required.
fn run_variants(variants: Vec<Variant>) -> Vec<String> {
    // Inside the repository (not the target directory, which may be anywhere), so a variant
    // finds the repository's `fixtures/` above it ({{fixtures}}).
    let dir = tempfile::Builder::new()
        .prefix(".suite-properties-")
        .tempdir_in(env!("CARGO_MANIFEST_DIR"))
        .expect("tempdir");
    let runner = runner();
    let next = AtomicUsize::new(0);
    let problems = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(variant) = variants.get(index) else {
                    break;
                };
                let path = dir.path().join(format!("variant-{index}.toml"));
                std::fs::write(&path, &variant.text).expect("write variant");
                let file = ScenarioFile {
                    name: variant.scenario.clone(),
                    path,
                };
                let report = runner.run(&file);
                let ok = match (&report.outcome, variant.failing_step) {
                    (Outcome::Failed { step, .. }, Some(expected)) => *step == Some(expected),
                    (Outcome::Failed { .. }, None) => true,
                    _ => false,
                };
                if !ok {
                    problems.lock().expect("lock").push(format!(
                        "{} with {}: expected a failure{}, got {:?}",
                        variant.scenario,
                        variant.label,
                        variant
                            .failing_step
                            .map(|s| format!(" at step {s}"))
                            .unwrap_or_default(),
                        report.outcome
                    ));
                }
            });
        }
    });
    problems.into_inner().expect("lock")
}

/// A runner probing features once for this test process.
fn runner() -> Runner {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("properties-features-{}.json", std::process::id()));
    Runner::new(env!("CARGO_BIN_EXE_nsconform"))
        .with_feature_cache(cache, true)
        .expect("probe features")
}

fn baseline_passes(runner: &Runner, file: &ScenarioFile) -> bool {
    matches!(runner.run(file).outcome, Outcome::Passed)
}

fn steps(doc: &mut DocumentMut) -> &mut toml_edit::ArrayOfTables {
    doc["steps"]
        .as_array_of_tables_mut()
        .expect("steps is an array of tables")
}

/// Every single-expectation mutation of one scenario.
fn mutations(file: &ScenarioFile) -> Vec<Variant> {
    let text = std::fs::read_to_string(&file.path).expect("read scenario");
    let original: DocumentMut = text.parse().expect("parse scenario");
    let mut variants = Vec::new();
    let count = original["steps"]
        .as_array_of_tables()
        .map_or(0, |a| a.len());
    for index in 0..count {
        let step = original["steps"]
            .as_array_of_tables()
            .and_then(|a| a.get(index))
            .expect("step");
        // A step gated out on this kernel does not run here: nothing to mutate.
        if step
            .get("kernel")
            .and_then(Item::as_str)
            .is_some_and(|range| !kernel_in(range))
        {
            continue;
        }
        let is_command = step.contains_key("run") || step.contains_key("argv");
        let mut changes: Vec<(&str, Item)> = Vec::new();
        for key in ["stdout", "stderr"] {
            if let Some(expected) = step.get(key).and_then(Item::as_str) {
                changes.push((key, value(format!("{expected}\nnsconform-mutation"))));
            }
        }
        let is_observe = step.contains_key("observe");
        if is_command {
            match step.get("status") {
                Some(item) if item.as_str() == Some("any") => {}
                Some(item) if item.as_str() == Some("nonzero") => {
                    changes.push(("status", value(0)))
                }
                Some(item) => changes.push(("status", value(item.as_integer().unwrap_or(0) + 1))),
                None => changes.push(("status", value(1))),
            }
        } else if !is_observe {
            let flipped = match step.get("error").and_then(Item::as_str) {
                Some("EINVAL") => "EPERM",
                _ => "EINVAL",
            };
            changes.push(("error", value(flipped)));
        }
        for (key, new) in changes {
            let mut doc = original.clone();
            steps(&mut doc).get_mut(index).expect("step")[key] = new;
            variants.push(Variant {
                scenario: file.name.clone(),
                label: format!("step {} `{key}` changed", index + 1),
                text: doc.to_string(),
                failing_step: Some(index + 1),
            });
        }
        let expected_fields: Vec<String> = step
            .get("expect")
            .and_then(Item::as_table_like)
            .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
            .unwrap_or_default();
        for field in expected_fields {
            let mut doc = original.clone();
            let step = steps(&mut doc).get_mut(index).expect("step");
            let expect = step["expect"].as_table_like_mut().expect("expect table");
            let item = expect.get_mut(&field).expect("field");
            mutate(item);
            variants.push(Variant {
                scenario: file.name.clone(),
                label: format!("step {} `expect.{field}` changed", index + 1),
                text: doc.to_string(),
                failing_step: Some(index + 1),
            });
        }
    }
    variants
}

/// Whether the running kernel is in the semver `range` (as `kernel = "..."` on a step).
fn kernel_in(range: &str) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let numbers: Vec<u64> = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map_while(|part| part.parse().ok())
        .collect();
    let version = semver::Version::new(
        numbers.first().copied().unwrap_or(0),
        numbers.get(1).copied().unwrap_or(0),
        numbers.get(2).copied().unwrap_or(0),
    );
    semver::VersionReq::parse(range).is_ok_and(|req| req.matches(&version))
}

/// Change an expected value so that it can no longer hold: text gets a suffix, numbers
/// grow, booleans flip, lists get one more element, tables one more key.
fn mutate(item: &mut Item) {
    if let Some(table) = item.as_table_like_mut() {
        table.insert("nsconform_mutation", value(1));
        return;
    }
    let Some(current) = item.as_value().cloned() else {
        return;
    };
    *item = match current {
        toml_edit::Value::String(s) => value(format!("{}-nsconform-mutation", s.value())),
        toml_edit::Value::Integer(i) => value(i.value() + 1),
        toml_edit::Value::Float(f) => value(f.value() + 1.0),
        toml_edit::Value::Boolean(b) => value(!b.value()),
        toml_edit::Value::Array(mut a) => {
            a.push("nsconform-mutation");
            value(a)
        }
        toml_edit::Value::InlineTable(mut t) => {
            t.insert("nsconform_mutation", 1.into());
            value(t)
        }
        other => value(other),
    };
}

/// Every single-namespace ablation of one scenario.
fn ablations(file: &ScenarioFile) -> Vec<Variant> {
    let text = std::fs::read_to_string(&file.path).expect("read scenario");
    let original: DocumentMut = text.parse().expect("parse scenario");
    let mut variants = Vec::new();
    let Some(actors) = original.get("actors").and_then(Item::as_table_like) else {
        return variants;
    };
    for (name, actor) in actors.iter() {
        let kinds: Vec<String> = actor
            .get("unshare")
            .and_then(Item::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for kind in &kinds {
            let mut doc = original.clone();
            let table = doc["actors"][name]
                .as_table_like_mut()
                .expect("actor table");
            if let Some(list) = table.get_mut("unshare").and_then(Item::as_array_mut) {
                list.retain(|v| v.as_str() != Some(kind.as_str()));
            }
            // Settings that only make sense with the removed namespace go with it.
            let dependent: &[&str] = match kind.as_str() {
                "user" => &["map"],
                "pid" => &["mount_proc", "propagation"],
                "mount" => &["mount_proc", "propagation", "rootfs"],
                "time" => &["time_offsets"],
                _ => &[],
            };
            for key in dependent {
                table.remove(key);
            }
            variants.push(Variant {
                scenario: file.name.clone(),
                label: format!("`{kind}` removed from actor `{name}`"),
                text: doc.to_string(),
                failing_step: None,
            });
        }
    }
    variants
}

fn check_property(make: fn(&ScenarioFile) -> Vec<Variant>) {
    let mut variants = Vec::new();
    let runner = runner();
    for file in scenarios() {
        // Skipped scenarios (unmet requirements here) cannot show anything either way.
        if baseline_passes(&runner, &file) {
            variants.extend(make(&file));
        }
    }
    assert!(!variants.is_empty(), "no variants were generated");
    let total = variants.len();
    let problems = run_variants(variants);
    assert!(
        problems.is_empty(),
        "{} of {total} variants did not fail as required:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn changing_any_expected_value_fails_exactly_that_step() {
    check_property(mutations);
}

#[test]
fn removing_any_namespace_makes_the_scenario_fail() {
    check_property(ablations);
}
