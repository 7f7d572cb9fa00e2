//! Checks a parsed scenario for what its types cannot say: references between actors and
//! steps, placeholders, map lines, durations, requirement names, and combinations that make
//! no sense (a `map` without a user namespace, a step with two commands, ...).

use std::collections::BTreeSet;
use std::ops::Range;

use toml::Spanned;

use super::load::{Diagnostic, LoadedScenario};
use super::model::{Actor, Join, Mapping, NsKind};
use crate::requires::{parse_duration, parse_feature, parse_kernel_range};

/// The implicit actor that stands for the host (the "other terminal").
pub(crate) const HOST_ACTOR: &str = "host";

/// Collects diagnostics with positions in one scenario file.
pub(super) struct Checker<'a> {
    pub(super) loaded: &'a LoadedScenario,
    diagnostics: Vec<Diagnostic>,
}

impl Checker<'_> {
    pub(super) fn error(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let d = Diagnostic::at(
            &self.loaded.path,
            &self.loaded.source,
            span.map(|s| s.start),
            message.into(),
        );
        self.diagnostics.push(d);
    }

    pub(super) fn error_at<T>(&mut self, value: &Spanned<T>, message: impl Into<String>) {
        self.error(Some(value.span()), message);
    }
}

/// Validate `loaded`, returning every problem found (empty when valid).
pub(crate) fn validate(loaded: &LoadedScenario) -> Vec<Diagnostic> {
    let mut checker = Checker {
        loaded,
        diagnostics: Vec::new(),
    };
    let scenario = &loaded.scenario;
    if scenario.description.trim().is_empty() {
        checker.error(None, "`description` must not be empty");
    }
    if let Some(timeout) = &scenario.timeout {
        if let Err(message) = parse_duration(timeout.get_ref()) {
            checker.error_at(timeout, message);
        }
    }
    check_requires(&mut checker);
    for (name, actor) in &scenario.actors {
        check_actor(&mut checker, name, actor);
    }
    check_actor_graph(&mut checker);
    if scenario.steps.is_empty() {
        checker.error(None, "a scenario needs at least one `[[steps]]`");
    }
    let mut captured = BTreeSet::new();
    for (index, step) in scenario.steps.iter().enumerate() {
        check_step(&mut checker, index + 1, step, &mut captured);
    }
    checker.diagnostics
}

mod steps;
use steps::check_step;

fn check_requires(checker: &mut Checker<'_>) {
    let requires = &checker.loaded.scenario.requires;
    if let Some(kernel) = &requires.kernel {
        if let Err(message) = parse_kernel_range(kernel.get_ref()) {
            checker.error_at(kernel, message);
        }
    }
    for feature in &requires.features {
        if let Err(message) = parse_feature(feature.get_ref()) {
            checker.error_at(feature, message);
        }
    }
    for command in &requires.commands {
        if command.get_ref().is_empty() || command.get_ref().contains('/') {
            checker.error_at(
                command,
                "a required command is a program name looked up on PATH",
            );
        }
    }
    if let Some(tool) = &checker.loaded.scenario.tool {
        let name = tool.get_ref();
        if !requires.commands.iter().any(|c| c.get_ref() == name) {
            checker.error_at(
                tool,
                format!("`tool = \"{name}\"` must also be in `requires.commands`, so a machine without it skips the scenario"),
            );
        }
    }
    for name in &requires.rootfs {
        let spec = name.get_ref();
        if !spec.contains('/') && !crate::rootfs::known_names().contains(&spec.as_str()) {
            checker.error_at(
                name,
                format!(
                    "unknown root filesystem `{spec}` (known: {}; or a path)",
                    crate::rootfs::known_names().join(", ")
                ),
            );
        }
    }
}

pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_actor(checker: &mut Checker<'_>, name: &Spanned<String>, actor: &Actor) {
    let actors = &checker.loaded.scenario.actors;
    if name.get_ref() == HOST_ACTOR {
        checker.error_at(
            name,
            "`host` is the implicit host actor and cannot be declared",
        );
    } else if !valid_name(name.get_ref()) {
        checker.error_at(name, "an actor name uses only letters, digits, `-` and `_`");
    }
    let mut seen = BTreeSet::new();
    for kind in &actor.unshare {
        if !seen.insert(*kind.get_ref()) {
            checker.error_at(
                kind,
                format!("namespace `{}` is listed twice", kind.get_ref()),
            );
        }
    }
    let creates = |kind: NsKind| seen.contains(&kind);
    if let Some(rootfs) = &actor.rootfs {
        let wanted = rootfs.get_ref();
        let scenario = &checker.loaded.scenario;
        let problem = if !scenario
            .requires
            .rootfs
            .iter()
            .any(|r| r.get_ref() == wanted)
        {
            Some(format!(
                "`rootfs = \"{wanted}\"` needs `{wanted}` in `requires.rootfs`"
            ))
        } else if !creates(NsKind::Mount) {
            Some("`rootfs` needs `mount` in `unshare` (pivot_root happens in the actor's own mount namespace)".to_string())
        } else if scenario.host == crate::scenario::model::HostMode::Real {
            Some(
                "`rootfs` needs the stand-in host, which offers the tree at /run/nsconform/rootfs"
                    .to_string(),
            )
        } else {
            None
        };
        if let Some(message) = problem {
            checker.error_at(rootfs, message);
        }
    }
    if let Some(join) = &actor.join {
        let target = join.get_ref().actor();
        if !actors.contains_key(target) {
            checker.error_at(join, format!("`join` names unknown actor `{target}`"));
        } else if target == name.get_ref() {
            checker.error_at(join, "an actor cannot join itself");
        }
        if let Join::Some(some) = join.get_ref() {
            if some.namespaces.is_empty() {
                checker.error_at(join, "`join.namespaces` must list at least one namespace");
            }
        }
        if actor.parent.is_some() {
            checker.error_at(
                join,
                "`join` and `parent` cannot be combined: a joiner starts on the host",
            );
        }
    }
    if let Some(parent) = &actor.parent {
        if !actors.contains_key(parent.get_ref().as_str()) {
            checker.error_at(
                parent,
                format!("`parent` names unknown actor `{}`", parent.get_ref()),
            );
        } else if parent.get_ref() == name.get_ref() {
            checker.error_at(parent, "an actor cannot be its own parent");
        }
    }
    if let Some(map) = &actor.map {
        if !creates(NsKind::User) {
            checker.error_at(map, "`map` needs `user` in `unshare`");
        }
        if let Mapping::Explicit(explicit) = map.get_ref() {
            for line in explicit.uid.iter().chain(&explicit.gid) {
                if let Err(message) = parse_map_line(line) {
                    checker.error_at(map, message);
                }
            }
        }
    }
    if actor.mount_proc && !creates(NsKind::Pid) {
        checker.error(
            Some(name.span()),
            format!(
                "actor `{}`: `mount_proc` needs `pid` in `unshare`",
                name.get_ref()
            ),
        );
    }
    if actor.propagation.is_some() && !creates(NsKind::Mount) && !actor.mount_proc {
        checker.error(
            Some(name.span()),
            format!(
                "actor `{}`: `propagation` needs `mount` in `unshare`",
                name.get_ref()
            ),
        );
    }
    if actor.time_offsets.is_some() && !creates(NsKind::Time) {
        checker.error(
            Some(name.span()),
            format!(
                "actor `{}`: `time_offsets` needs `time` in `unshare`",
                name.get_ref()
            ),
        );
    }
    if actor.group.is_some() && actor.user.is_none() {
        checker.error(
            Some(name.span()),
            format!("actor `{}`: `group` needs `user`", name.get_ref()),
        );
    }
    if let Some(cgroup) = &actor.cgroup {
        if checker.loaded.scenario.host == super::model::HostMode::Real {
            checker.error_at(
                cgroup,
                "`cgroup` needs the stand-in host (the scenario's own cgroup), not host = \"real\"",
            );
        }
        let ok = cgroup
            .get_ref()
            .split('/')
            .all(|part| valid_name(part) && part != "." && part != "..");
        if !ok {
            checker.error_at(
                cgroup,
                "`cgroup` is a relative path of names (letters, digits, `-`, `_`)",
            );
        }
    }
}

/// Parse a map line `INSIDE OUTSIDE COUNT` into its three numbers.
pub(crate) fn parse_map_line(line: &str) -> Result<(u32, u32, u32), String> {
    let numbers: Vec<&str> = line.split_whitespace().collect();
    let parse = |text: &str| text.parse::<u32>().ok();
    match numbers.as_slice() {
        [inside, outside, count] => match (parse(inside), parse(outside), parse(count)) {
            (Some(inside), Some(outside), Some(count)) if count > 0 => Ok((inside, outside, count)),
            (Some(_), Some(_), Some(_)) => Err("a map line's COUNT must be at least 1".to_string()),
            _ => Err(format!(
                "invalid map line `{line}`: the three fields are unsigned 32-bit numbers"
            )),
        },
        _ => Err(format!(
            "invalid map line `{line}`: expected `INSIDE OUTSIDE COUNT`"
        )),
    }
}

/// Reject cycles through `join` and `parent` (an actor must start after the ones it needs).
fn check_actor_graph(checker: &mut Checker<'_>) {
    // Each actor depends on at most one other, so one walk per unvisited actor, stopping at
    // anything already walked, finds every cycle in linear time.
    let actors = &checker.loaded.scenario.actors;
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut cycles = Vec::new();
    for start in actors.keys() {
        let mut path: Vec<&str> = Vec::new();
        let mut on_path: BTreeSet<&str> = BTreeSet::new();
        let mut current = Some(start.get_ref().as_str());
        while let Some(name) = current {
            if done.contains(name) {
                break;
            }
            if on_path.contains(name) {
                let position = path.iter().position(|n| *n == name).unwrap_or(0);
                let mut names: Vec<&str> = path[position..].to_vec();
                names.push(name);
                cycles.push((start.span(), names.join(" -> ")));
                break;
            }
            path.push(name);
            on_path.insert(name);
            current = actors.get(name).and_then(dependency);
        }
        done.extend(path);
    }
    for (span, cycle) in cycles {
        checker.error(
            Some(span),
            format!("actors depend on each other in a cycle: {cycle}"),
        );
    }
}

/// The actor that must exist before `actor` can start.
pub(crate) fn dependency(actor: &Actor) -> Option<&str> {
    actor
        .join
        .as_ref()
        .map(|join| join.get_ref().actor())
        .or(actor.parent.as_ref().map(|p| p.get_ref().as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("0 1000 1", Ok((0, 1000, 1)))]
    #[case("  0   100000   65536 ", Ok((0, 100000, 65536)))]
    #[case("0 1000", Err("expected `INSIDE OUTSIDE COUNT`"))]
    #[case("0 -1 1", Err("unsigned 32-bit"))]
    #[case("0 1 0", Err("at least 1"))]
    fn parses_map_lines(#[case] line: &str, #[case] expected: Result<(u32, u32, u32), &str>) {
        match (parse_map_line(line), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(got), Err(want)) => assert!(got.contains(want), "{got}"),
            (got, want) => panic!("{line}: got {got:?}, want {want:?}"),
        }
    }
}
