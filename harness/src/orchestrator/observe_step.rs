//! The `observe` step: gather the subject's, the viewpoint's and the host's parts of each
//! observation kind into one object, then check `expect.*` against it.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use serde_json::{Map, Value};

use super::{Abort, Orchestrator};
use crate::actor::protocol::{Reply, Request};
use crate::observe::{compare, host, SubjectQuery, DEFAULT_MOUNTS_UNDER};
use crate::report::StepRecord;
use crate::scenario::model::{ObservationKind, Step};

impl Orchestrator<'_> {
    /// Take the observations of `step`, performed from `viewpoint`, into `record`.
    pub(super) fn observe_step(
        &mut self,
        viewpoint: &str,
        step: &Step,
        kinds: &[ObservationKind],
        record: &mut StepRecord,
    ) -> Result<(), Abort> {
        let subject = step
            .of
            .as_ref()
            .map_or(viewpoint, |s| s.get_ref().as_str())
            .to_string();
        self.ensure_started(viewpoint).map_err(|e| e.to_string())?;
        self.ensure_started(&subject).map_err(|e| e.to_string())?;
        let pid = self.actors[subject.as_str()].pid;
        let mut observation = Value::Object(Map::new());

        let subject_kinds: Vec<ObservationKind> = kinds
            .iter()
            .copied()
            .filter(|k| {
                !matches!(
                    k,
                    ObservationKind::Maps | ObservationKind::Namespaces | ObservationKind::Time
                )
            })
            .collect();
        if !subject_kinds.is_empty() {
            let query = SubjectQuery {
                kinds: subject_kinds,
                mounts_under: step
                    .mounts_under
                    .clone()
                    .unwrap_or_else(|| vec![DEFAULT_MOUNTS_UNDER.to_string()]),
                sysctls: step.sysctls.clone(),
            };
            let dir = proc_dir(pid)?;
            let part = self.observed(&subject, &Request::Observe(query), &dir)?;
            merge(&mut observation, part);
        }
        if kinds.contains(&ObservationKind::Maps) {
            let dir = proc_dir(pid)?;
            let part = self.observed(viewpoint, &Request::ReadMaps, &dir)?;
            merge(&mut observation, part);
        }
        let candidates = self.candidates();
        let mut labels: Vec<(i32, String)> =
            vec![(std::process::id() as i32, "orchestrator".to_string())];
        for (name, actor) in &self.actors {
            labels.push((actor.pid, name.clone()));
            labels.extend(actor.fork_parent.map(|p| (p, format!("{name}.fork"))));
        }
        let pid_label = |pid: i32| {
            labels
                .iter()
                .find(|(p, _)| *p == pid)
                .map_or_else(|| pid.to_string(), |(_, name)| format!("pid.{name}"))
        };
        let part = host::observe(kinds, pid, &candidates, &pid_label).map_err(|e| e.to_string())?;
        merge(&mut observation, part);

        self.check_expectations(step, &observation, record)?;
        record.observation = Some(observation);
        Ok(())
    }

    /// Read the probe's observation from a command's output into `record`, then check
    /// `expect.*` against it. Output that is not the probe's fails the step, saying why.
    pub(super) fn probe_step(
        &mut self,
        step: &Step,
        kinds: &[ObservationKind],
        record: &mut StepRecord,
    ) -> Result<(), Abort> {
        let output = match crate::payload::label::parse(&record.stdout) {
            Ok(output) => output,
            Err(err) => {
                record.mismatches.push(crate::report::Mismatch {
                    what: "probe".to_string(),
                    expected: "the probe's observation on standard output".to_string(),
                    actual: err.to_string(),
                });
                return Ok(());
            }
        };
        let mounts_under = step
            .mounts_under
            .clone()
            .unwrap_or_else(|| vec!["/".to_string()]);
        let observation =
            crate::payload::label::observation(&output, kinds, &mounts_under, &self.candidates());
        for error in &output.errors {
            record.stderr.push_str(&format!("probe: {error}\n"));
        }
        self.check_expectations(step, &observation, record)?;
        record.observation = Some(observation);
        // The observation is the output, read; the raw JSON would only bury failures.
        record.stdout = String::new();
        Ok(())
    }

    fn check_expectations(
        &mut self,
        step: &Step,
        observation: &Value,
        record: &mut StepRecord,
    ) -> Result<(), Abort> {
        if let Some(expect) = &step.expect {
            let mut expected = compare::to_json(expect.get_ref());
            for value in expected.values_mut() {
                self.expand_json(value)?;
            }
            record
                .mismatches
                .extend(compare::compare(&expected, observation));
        }
        Ok(())
    }

    /// Ask `actor` for an observation, handing it `dir`.
    fn observed(&mut self, actor: &str, request: &Request, dir: &OwnedFd) -> Result<Value, Abort> {
        match self.request_with_fd(actor, request, Some(dir.as_raw_fd()))? {
            Reply::Observed(Ok(value)) => Ok(value),
            Reply::Observed(Err(message)) => {
                Err(format!("actor `{actor}` could not observe: {message}").into())
            }
            other => Err(Abort::from(format!(
                "actor `{actor}` answered an observation with {other:?}"
            ))),
        }
    }

    /// Labelled processes for namespace identity: the host first, then actors as started.
    pub(super) fn candidates(&self) -> Vec<host::Candidate> {
        let mut candidates = vec![("host".to_string(), std::process::id() as i32)];
        for name in &self.start_order {
            if let Some(actor) = self.actors.get(name) {
                candidates.push((name.clone(), actor.pid));
            }
        }
        candidates
    }

    /// Expand placeholders in every string of an expected value.
    pub(super) fn expand_json(&mut self, value: &mut Value) -> Result<(), Abort> {
        match value {
            Value::String(text) => *text = self.expand(text)?,
            Value::Array(items) => {
                for item in items {
                    self.expand_json(item)?;
                }
            }
            Value::Object(map) => {
                for item in map.values_mut() {
                    self.expand_json(item)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// `/proc/PID` of a host PID, as a directory descriptor to hand to an actor.
fn proc_dir(pid: i32) -> Result<OwnedFd, Abort> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    nix::fcntl::open(format!("/proc/{pid}").as_str(), flags, Mode::empty())
        .map_err(|e| Abort::from(format!("cannot open /proc/{pid}: {e}")))
}

/// Merge `part` into `into`, joining objects key by key (e.g. `pid.inside` and `pid.host`).
fn merge(into: &mut Value, part: Value) {
    match (into, part) {
        (Value::Object(target), Value::Object(source)) => {
            for (key, value) in source {
                match target.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        target.insert(key, value);
                    }
                }
            }
        }
        (target, value) => *target = value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_nested_objects() {
        let mut a = json!({"pid": {"inside": 1}, "hostname": "x"});
        merge(
            &mut a,
            json!({"pid": {"host": "pid.shell"}, "uid": {"host": 0}}),
        );
        assert_eq!(
            a,
            json!({"pid": {"inside": 1, "host": "pid.shell"}, "hostname": "x", "uid": {"host": 0}})
        );
    }
}
