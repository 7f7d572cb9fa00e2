//! Checks of the steps: one action each, fields that go with it, known actors, errno names,
//! and placeholders that name something (with positions inside the string when possible).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use toml::Spanned;

use super::{valid_name, Checker, HOST_ACTOR};
use crate::scenario::model::{Actor, ObservationKind, Step};
use crate::template::{self, Placeholder};

pub(super) fn check_step(
    checker: &mut Checker<'_>,
    number: usize,
    step: &Spanned<Step>,
    captured: &mut BTreeSet<String>,
) {
    let span = step.span();
    let step = step.get_ref();
    let actors = &checker.loaded.scenario.actors;
    if let Some(actor) = &step.actor {
        let name = actor.get_ref();
        if name != HOST_ACTOR && !actors.contains_key(name.as_str()) {
            checker.error_at(
                actor,
                format!(
                    "unknown actor `{name}` (declared actors: {})",
                    declared(actors)
                ),
            );
        }
    }
    let actions = [
        step.run.is_some(),
        step.argv.is_some(),
        step.write.is_some(),
        step.start.is_some(),
        step.observe.is_some(),
    ];
    match actions.iter().filter(|a| **a).count() {
        0 => checker.error(
            Some(span.clone()),
            format!("step {number} needs one of `run`, `argv`, `write`, `start` or `observe`"),
        ),
        1 => {}
        _ => checker.error(
            Some(span.clone()),
            format!(
                "step {number} has more than one of `run`, `argv`, `write`, `start` and `observe`"
            ),
        ),
    }
    check_observe(checker, number, &span, step, captured);
    if let Some(range) = &step.kernel {
        if let Err(message) = crate::requires::parse_kernel_range(range.get_ref()) {
            checker.error_at(range, message);
        }
        if step.capture.is_some() {
            checker.error_at(
                range,
                "a step gated by `kernel` cannot `capture` (later steps would lack the value)",
            );
        }
    }
    let is_command = step.run.is_some() || step.argv.is_some();
    if let Some(run) = &step.run {
        if run.get_ref().trim().is_empty() {
            checker.error_at(run, "`run` must not be empty");
        }
    }
    if let Some(argv) = &step.argv {
        if argv
            .get_ref()
            .first()
            .is_none_or(|program| program.is_empty())
        {
            checker.error_at(argv, "`argv` needs a program as its first element");
        }
    }
    if let Some(start) = &step.start {
        let name = start.get_ref();
        if !actors.contains_key(name.as_str()) {
            checker.error_at(
                start,
                format!(
                    "`start` names unknown actor `{name}` (declared actors: {})",
                    declared(actors)
                ),
            );
        }
        if step.actor.is_some() {
            checker.error_at(
                start,
                "a `start` step names its actor in `start`, not `actor`",
            );
        }
    }
    if step.content.is_some() && step.write.is_none() {
        checker.error(
            Some(span.clone()),
            format!("step {number}: `content` goes with `write`"),
        );
    }
    if let Some(error) = &step.error {
        if step.write.is_none() && step.start.is_none() {
            checker.error_at(
                error,
                "`error` goes with `write` or `start`; commands use `status` and `stderr`",
            );
        } else if crate::errno::from_name(error.get_ref()).is_none() {
            checker.error_at(
                error,
                format!(
                    "unknown errno name `{}` (expected e.g. EPERM, EINVAL)",
                    error.get_ref()
                ),
            );
        }
    }
    if !is_command {
        for (field, present) in [
            ("status", step.status.is_some()),
            ("stdout", step.stdout.is_some()),
            ("stderr", step.stderr.is_some()),
            ("stdin", step.stdin.is_some()),
            ("capture", step.capture.is_some()),
        ] {
            if present {
                checker.error(
                    Some(span.clone()),
                    format!("step {number}: `{field}` goes with `run` or `argv`"),
                );
            }
        }
    }
    for (text, field_span) in step.template_texts() {
        let field_span = field_span.unwrap_or_else(|| span.clone());
        check_placeholders(checker, text, field_span, captured);
    }
    if let Some(capture) = &step.capture {
        if !valid_name(capture.get_ref()) {
            checker.error_at(
                capture,
                "a capture name uses only letters, digits, `-` and `_`",
            );
        }
        captured.insert(capture.get_ref().clone());
    }
}

/// `observe` and the keys that go with it: `of`, `mounts_under`, `sysctls`, `expect`.
fn check_observe(
    checker: &mut Checker<'_>,
    number: usize,
    span: &Range<usize>,
    step: &Step,
    captured: &BTreeSet<String>,
) {
    check_probe(checker, number, span, step);
    let kinds: Vec<ObservationKind> = step
        .observe
        .as_ref()
        .or(step.probe.as_ref())
        .map(|k| k.get_ref().clone())
        .unwrap_or_default();
    let Some(observe) = step.observe.as_ref().or(step.probe.as_ref()) else {
        for (field, present) in [
            ("of", step.of.is_some()),
            ("mounts_under", step.mounts_under.is_some()),
            ("sysctls", !step.sysctls.is_empty()),
            ("expect", step.expect.is_some()),
        ] {
            if present {
                checker.error(
                    Some(span.clone()),
                    format!("step {number}: `{field}` goes with `observe` or `probe`"),
                );
            }
        }
        return;
    };
    if kinds.is_empty() {
        checker.error_at(observe, "`observe` lists at least one kind");
    }
    if let Some(of) = &step.of {
        let name = of.get_ref();
        if name != HOST_ACTOR && !checker.loaded.scenario.actors.contains_key(name.as_str()) {
            checker.error_at(of, format!("`of` names unknown actor `{name}`"));
        }
    }
    if step.mounts_under.is_some() && !kinds.contains(&ObservationKind::Mounts) {
        checker.error_at(observe, "`mounts_under` needs `mounts` in `observe`");
    }
    for path in step.mounts_under.iter().flatten() {
        if !path.starts_with('/') {
            checker.error_at(
                observe,
                format!("`mounts_under` takes absolute paths, not `{path}`"),
            );
        }
    }
    if !step.sysctls.is_empty() && !kinds.contains(&ObservationKind::Sysctl) {
        checker.error_at(observe, "`sysctls` needs `sysctl` in `observe`");
    }
    for name in &step.sysctls {
        let ok = !name.is_empty() && name.split('.').all(valid_name) && !name.contains("..");
        if !ok {
            checker.error_at(
                observe,
                format!("invalid sysctl name `{name}` (e.g. net.ipv4.ip_forward)"),
            );
        }
    }
    if kinds.contains(&ObservationKind::Sysctl) && step.sysctls.is_empty() {
        checker.error_at(observe, "`sysctl` needs the names to read in `sysctls`");
    }
    if let Some(expect) = &step.expect {
        for (field, value) in expect.get_ref() {
            match crate::observe::kind_of_field(field) {
                None => checker.error_at(
                    expect,
                    format!("`expect.{field}` is not an observed field (see docs/observations.md)"),
                ),
                Some(kind) if !kinds.contains(&kind) => checker.error_at(
                    expect,
                    format!(
                        "`expect.{field}` needs `{}` in `observe` or `probe`",
                        format!("{kind:?}").to_lowercase()
                    ),
                ),
                Some(_) => {}
            }
            let mut texts = Vec::new();
            strings_in(value, &mut texts);
            for text in texts {
                check_placeholders(checker, &text, expect.span(), captured);
            }
        }
    }
}

/// `probe`: on a command whose output is the probe's, with kinds the probe reports.
fn check_probe(checker: &mut Checker<'_>, number: usize, span: &Range<usize>, step: &Step) {
    let Some(probe) = &step.probe else {
        return;
    };
    if step.run.is_none() && step.argv.is_none() {
        checker.error(
            Some(span.clone()),
            format!("step {number}: `probe` goes with `run` or `argv` (a command that runs `{{{{probe}}}}`)"),
        );
    }
    if step.stdout.is_some() {
        checker.error(
            Some(span.clone()),
            format!("step {number}: with `probe` the standard output is the probe's; check it with `expect.*`, not `stdout`"),
        );
    }
    if step.of.is_some() {
        checker.error(
            Some(span.clone()),
            format!("step {number}: `of` goes with `observe`; the probe observes itself"),
        );
    }
    if probe.get_ref().is_empty() {
        checker.error_at(probe, "`probe` lists at least one kind");
    }
    if probe.get_ref().contains(&ObservationKind::Sysctl) {
        checker.error_at(
            probe,
            "the probe does not read sysctls: use an `observe` step",
        );
    }
}

/// Every string inside a TOML value.
fn strings_in(value: &toml::Value, out: &mut Vec<String>) {
    match value {
        toml::Value::String(text) => out.push(text.clone()),
        toml::Value::Array(items) => items.iter().for_each(|i| strings_in(i, out)),
        toml::Value::Table(table) => table.values().for_each(|v| strings_in(v, out)),
        _ => {}
    }
}

fn check_placeholders(
    checker: &mut Checker<'_>,
    text: &str,
    span: Range<usize>,
    captured: &BTreeSet<String>,
) {
    let at = |offset: usize| Some(text_offset(&checker.loaded.source, &span, text, offset));
    match template::placeholders(text) {
        Err(err) => {
            let position = at(err.offset);
            checker.error(position, err.message);
        }
        Ok(found) => {
            for (placeholder, offset) in found {
                let problem = match &placeholder {
                    Placeholder::Pid(actor)
                        if actor != HOST_ACTOR
                            && !checker.loaded.scenario.actors.contains_key(actor.as_str()) =>
                    {
                        Some(format!("`{placeholder}` names unknown actor `{actor}`"))
                    }
                    Placeholder::Var(name) if !captured.contains(name) => Some(format!(
                        "`{placeholder}` is not captured by an earlier step (`capture = \"{name}\"`)"
                    )),
                    Placeholder::Rootfs(name)
                        if !checker
                            .loaded
                            .scenario
                            .requires
                            .rootfs
                            .iter()
                            .any(|r| r.get_ref() == name) =>
                    {
                        Some(format!(
                            "`{placeholder}` needs `{name}` in `requires.rootfs`"
                        ))
                    }
                    _ => None,
                };
                if let Some(message) = problem {
                    let position = at(offset);
                    checker.error(position, message);
                }
            }
        }
    }
}

/// The byte offset in the source of byte `offset` inside a string value at `span`, when the
/// value is written literally there; otherwise the value's start.
fn text_offset(source: &str, span: &Range<usize>, text: &str, offset: usize) -> Range<usize> {
    let raw = source.get(span.clone()).unwrap_or("");
    let start = raw
        .find(text)
        .filter(|_| !text.is_empty())
        .map_or(span.start, |i| span.start + i + offset);
    start..start + 1
}

fn declared(actors: &BTreeMap<Spanned<String>, Actor>) -> String {
    let mut names: Vec<&str> = vec![HOST_ACTOR];
    names.extend(actors.keys().map(|k| k.get_ref().as_str()));
    names.join(", ")
}
