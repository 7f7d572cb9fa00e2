//! Finding what differs between results files.
//!
//! Scenarios are matched by name, steps by number. A scenario differs when its outcome
//! differs (see [`outcome_key`]) or when one of its steps differs (see [`super::steps`]:
//! observations always, command output with [`Options::command_output`]). A scenario that
//! is missing from a file counts as an outcome difference. Tools whose version string
//! differs and features whose availability differs are collected too, for context.

use std::collections::BTreeSet;

use super::model::{
    outcome_key, Column, Comparison, Figures, Options, ScenarioDifference, Setting, StepDifference,
};
use super::steps::step_difference;
use crate::report::{ScenarioReport, StepRecord};

/// Compare `columns` (at least one); the first is the baseline of every diff.
pub(crate) fn compare(columns: &[Column], options: Options) -> Comparison {
    let names: BTreeSet<&str> = columns
        .iter()
        .flat_map(|c| c.results.scenarios.iter().map(|s| s.name.as_str()))
        .collect();
    let labels: Vec<&str> = columns.iter().map(|c| c.label.as_str()).collect();
    let different = names
        .iter()
        .filter_map(|name| {
            let reports: Vec<Option<&ScenarioReport>> = columns
                .iter()
                .map(|c| c.results.scenarios.iter().find(|s| s.name == *name))
                .collect();
            scenario_difference(name, &reports, &labels, options)
        })
        .collect();
    Comparison {
        columns: columns.iter().map(figures).collect(),
        command_output: options.command_output,
        scenarios: names.len(),
        different,
        tools: settings(columns, |c| {
            // The versions the tool scenarios found inside their hosts win over the
            // runner's own look-up: under a userland they are the userland's tools.
            let mut tools = c.results.tools.clone();
            for scenario in &c.results.scenarios {
                if let Some(tool) = &scenario.tool {
                    tools.insert(tool.name.clone(), tool.version.clone());
                }
            }
            tools
                .into_iter()
                .map(|(name, version)| (name.clone(), version.clone(), version))
                .collect()
        }),
        features: settings(columns, |c| {
            c.results
                .features
                .iter()
                .map(|(name, f)| {
                    let shown = match (&f.available, &f.reason) {
                        (true, _) => "available".to_string(),
                        (false, Some(reason)) => format!("unavailable: {reason}"),
                        (false, None) => "unavailable".to_string(),
                    };
                    (name.clone(), f.available.to_string(), shown)
                })
                .collect()
        }),
    }
}

fn figures(column: &Column) -> Figures {
    let machine = &column.results.machine;
    let named = |d: &crate::results::Distribution| {
        if d.pretty_name.is_empty() {
            format!("{} {}", d.id, d.version_id).trim().to_string()
        } else {
            d.pretty_name.clone()
        }
    };
    // A run under a userland: its commands were the userland's, so that is the distribution.
    let distribution = match &column.results.userland {
        Some(userland) => {
            let name = named(&userland.distribution);
            let name = if name.is_empty() { "unknown" } else { &name };
            format!("{name} (userland {})", userland.name)
        }
        None => named(&machine.distribution),
    };
    Figures {
        label: column.label.clone(),
        file: column.file.clone(),
        kernel_release: machine.kernel_release.clone(),
        distribution,
        architecture: machine.architecture.clone(),
        harness_version: column.results.harness_version.clone(),
        started_at: column.results.started_at.clone(),
        summary: column.results.summary.clone(),
        vm: column.vm.clone(),
    }
}

/// The difference in one scenario, or `None` when it is the same everywhere.
fn scenario_difference(
    name: &str,
    reports: &[Option<&ScenarioReport>],
    labels: &[&str],
    options: Options,
) -> Option<ScenarioDifference> {
    let outcomes: Vec<_> = reports
        .iter()
        .map(|r| r.map(|r| r.outcome.clone()))
        .collect();
    let keys: BTreeSet<_> = outcomes.iter().map(|o| outcome_key(o.as_ref())).collect();
    let numbers: BTreeSet<usize> = reports
        .iter()
        .flatten()
        .flat_map(|r| r.steps.iter().map(|s| s.number))
        .collect();
    let steps: Vec<StepDifference> = numbers
        .into_iter()
        .filter_map(|number| {
            let records: Vec<Option<&StepRecord>> = reports
                .iter()
                .map(|r| r.and_then(|r| r.steps.iter().find(|s| s.number == number)))
                .collect();
            step_difference(number, &records, labels, options)
        })
        .collect();
    let outcome_differs = keys.len() > 1;
    (outcome_differs || !steps.is_empty()).then(|| ScenarioDifference {
        name: name.to_string(),
        outcomes,
        outcome_differs,
        steps,
    })
}

/// The names whose compared value differs between columns (or is missing in some), with
/// the value shown per column. `entries` gives, per column, `(name, compared, shown)`.
fn settings(
    columns: &[Column],
    entries: impl Fn(&Column) -> Vec<(String, String, String)>,
) -> Vec<Setting> {
    let per_column: Vec<Vec<(String, String, String)>> = columns.iter().map(entries).collect();
    let names: BTreeSet<&String> = per_column.iter().flatten().map(|e| &e.0).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let found: Vec<Option<&(String, String, String)>> = per_column
                .iter()
                .map(|entries| entries.iter().find(|e| &e.0 == name))
                .collect();
            let compared: BTreeSet<Option<&String>> =
                found.iter().map(|e| e.map(|e| &e.1)).collect();
            (compared.len() > 1).then(|| Setting {
                name: name.clone(),
                values: found.iter().map(|e| e.map(|e| e.2.clone())).collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::testdata::{self, names};
    use crate::report::Outcome;

    #[test]
    fn names_exactly_the_scenarios_that_differ() {
        let c = testdata::comparison(Options::default());
        assert_eq!(c.scenarios, 9);
        assert_eq!(
            names(&c),
            [
                "mount/rootless-overlay-writes-to-upper",
                "net/new-netns-observed",
                "time/offsets-observed",
                "user/root-map-observed"
            ]
        );
        assert_eq!(c.identical(), 5);
        let summaries: Vec<String> = c.different.iter().map(|d| d.summary()).collect();
        assert_eq!(
            summaries,
            [
                "outcome",
                "step 6 observation",
                "outcome",
                "step 3 observation"
            ]
        );
        // Skipped everywhere, for reasons worded differently: the same outcome.
        assert!(!names(&c).contains(&"net/vlan-moved-into-netns"));
        let overlay = &c.different[0];
        assert!(matches!(overlay.outcomes[1], Some(Outcome::Skipped { .. })));
        assert!(
            overlay.steps.is_empty(),
            "a skipped column is left out of step comparisons"
        );
    }

    #[test]
    fn figures_tools_and_features() {
        let c = testdata::comparison(Options::default());
        let old = &c.columns[1];
        assert_eq!(old.distribution, "Debian GNU/Linux 11 (bullseye)");
        assert_eq!(old.summary.duration_ms, 3120);
        let vm = old.vm.clone().unwrap();
        assert_eq!((vm.boot_ms, vm.round_trip_ms), (Some(2310), Some(15873)));
        assert!(c.columns[0].vm.is_none());
        let tools: Vec<&str> = c.tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(tools, ["ip"]);
        let features: Vec<&str> = c.features.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            features,
            ["overlayfs:userns"],
            "link:vlan is unavailable in both"
        );
        assert_eq!(c.features[0].values[0].as_deref(), Some("available"));
    }

    #[test]
    fn absent_scenarios_and_steps_that_did_not_run() {
        let mut columns = testdata::columns();
        columns[2]
            .results
            .scenarios
            .retain(|s| s.name != "pid/init-observed");
        let scenario = columns[1]
            .results
            .scenarios
            .iter_mut()
            .find(|s| s.name == "net/new-netns-observed")
            .unwrap();
        scenario.steps.retain(|s| s.number < 6);
        let c = compare(&columns, Options::default());
        let init = c
            .different
            .iter()
            .find(|d| d.name == "pid/init-observed")
            .unwrap();
        assert!(init.outcome_differs && init.outcomes[2].is_none());
        assert!(init.steps.is_empty());
        let netns = c
            .different
            .iter()
            .find(|d| d.name == "net/new-netns-observed")
            .unwrap();
        assert_eq!(netns.steps[0].not_run, [1]);
        assert_eq!(netns.steps[0].variants[1].columns, [2]);
    }

    #[test]
    fn one_file_or_identical_files_differ_nowhere() {
        let columns = testdata::columns();
        let c = compare(&columns[..1], Options::default());
        assert!(!c.differs());
        let twice = vec![columns[0].clone(), columns[0].clone()];
        let c = compare(
            &twice,
            Options {
                command_output: true,
            },
        );
        assert!(!c.differs() && c.tools.is_empty() && c.features.is_empty());
        assert_eq!(c.identical(), 9);
    }
}
