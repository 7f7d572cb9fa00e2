//! Warming up: a fresh process faults in every page of code the first time it runs it, so
//! a warm supervisor, its orchestrator and its spare actor each run, while they wait, the
//! code their scenario will need first — loading a scenario, planning an actor, the messages
//! of a step, the events and the report — on a scenario of their own, and drop the results.

use std::path::Path;

use crate::report::{Outcome, ScenarioReport};

/// A scenario a warm supervisor and its orchestrator load while they wait, so the code that
/// loads the real one is already paged in: a fresh process faults in every page of code the
/// first time it runs it.
const WARM_UP_SCENARIO: &str = r#"
description = "warm-up"
timeout = "5s"
[requires]
commands = ["sh"]
[actors.a]
unshare = ["user", "uts", "pid", "net", "mount", "ipc"]
map = "root"
mount_proc = true
[[steps]]
actor = "a"
run = "echo {{hostname}} {{pid.a}}"
stdout = "[..]"
status = 0
"#;

/// Load [`WARM_UP_SCENARIO`], plan its actor and encode the messages of its first step, and
/// drop it all (in a warm supervisor, orchestrator or spare actor, while it waits).
pub(crate) fn warm_up() {
    let Ok(loaded) =
        crate::scenario::load::load_str(Path::new("warm-up.toml"), WARM_UP_SCENARIO.into())
    else {
        return;
    };
    // The events of a step and the report, as the orchestrator writes them and the
    // supervisor reads them; the comparison of a command's output.
    let record = crate::report::StepRecord::begun(1, 1, "a".into(), "echo".into());
    let events = [
        crate::report::Event::StepStarted {
            number: 1,
            line: 1,
            actor: "a".into(),
            action: "echo".into(),
        },
        crate::report::Event::StepFinished(record.clone()),
        crate::report::Event::Finished,
    ];
    for event in &events {
        if let Ok(bytes) = serde_json::to_vec(event) {
            let _ = serde_json::from_slice::<crate::report::Event>(&bytes);
        }
    }
    let mut report = ScenarioReport::new("warm-up", "warm-up.toml", Outcome::Passed);
    report.steps.push(record);
    let _ = serde_json::to_string(&report);
    let _ = crate::expect::text("stdout", "[..]\n".into(), "warm-up\n");
    if let Some((name, actor)) = loaded.scenario.actors.iter().next() {
        let context = crate::actor::plan::PlanContext {
            uid: 0,
            gid: 0,
            join_pid: None,
        };
        crate::actor::protocol::warm_up(&crate::actor::plan::plan(name.get_ref(), actor, context));
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::WARM_UP_SCENARIO;

    #[test]
    fn the_warm_up_scenario_is_valid_and_has_an_actor_to_plan() {
        let loaded =
            crate::scenario::load::load_str(Path::new("warm-up.toml"), WARM_UP_SCENARIO.into())
                .expect("the warm-up scenario loads");
        assert_eq!(loaded.scenario.actors.len(), 1);
        assert_eq!(loaded.scenario.steps.len(), 1);
    }
}
