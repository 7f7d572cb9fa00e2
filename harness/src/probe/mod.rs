//! Kernel and machine feature probes: "can this machine do X?", answered by trying X.
//!
//! Each probe that makes anything runs in a throw-away process (a fork of this process when
//! it is single-threaded, else `nsconform __probe FEATURE`) which first moves into
//! namespaces of its own, so whatever the probe creates (a mount, a
//! link, a namespace) goes away when that process exits: probes never add links or mounts to
//! the machine and never write sysctls. Only the plain look-ups (is cgroup v1 or v2 mounted?)
//! run in the asking process.
//!
//! A failed probe gives a one-line reason naming the call that failed and its errno, e.g.
//! `mount_setattr(MOUNT_ATTR_IDMAP): EINVAL (Invalid argument)`.
//!
//! Results are cached: once per process in a [`Cache`], and once per run when the runner
//! probes everything up front ([`write_cache`]) and points its supervisors at the file with
//! `NSCONFORM_FEATURE_CACHE` ([`Cache::from_env`]).
//!
//! The probes themselves are grouped by what they try: [`namespaces`] (namespace types and
//! user namespaces), [`mounts`] (overlayfs, tmpfs, `/proc`, idmapped mounts), [`syscalls`]
//! (pidfds, `clone3`, `setns`, nsfs, time offsets) and [`links`] (link kinds). [`child`] runs
//! them in processes of their own, [`reason`] words their failures and [`evidence`] their
//! successes.

mod child;
mod evidence;
mod links;
mod mounts;
mod namespaces;
mod reason;
mod syscalls;

use std::collections::BTreeMap;
use std::path::Path;

use crate::cgroup::cgroup2_mount;
use crate::requires::{parse_feature, Feature};

pub(crate) use evidence::succeeded;

/// The environment variable naming a file of probe results shared by the processes of one
/// run (written by [`write_cache`], read by [`Cache::from_env`]).
pub(crate) const CACHE_ENV: &str = "NSCONFORM_FEATURE_CACHE";

/// Probe results, so each feature is tried at most once per process, or once per run when
/// the results were preloaded from the run's cache file.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    results: BTreeMap<Feature, Result<(), String>>,
}

impl Cache {
    /// A cache preloaded from the file named by `NSCONFORM_FEATURE_CACHE`, when that variable
    /// is set; empty otherwise. A missing or garbled file is ignored (features are then
    /// probed as usual), and so are names in it that this build does not know.
    pub(crate) fn from_env() -> Cache {
        match std::env::var_os(CACHE_ENV) {
            Some(path) if !path.is_empty() => Cache::load(Path::new(&path)),
            _ => Cache::default(),
        }
    }

    /// A cache preloaded from a file in the format of `nsconform features --json`; empty when
    /// the file is missing or garbled.
    pub(crate) fn load(path: &Path) -> Cache {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| Cache::from_json(&text))
            .unwrap_or_default()
    }

    /// Parse `{"feature": null | "reason", ...}`; `None` when the text is not such an object.
    fn from_json(text: &str) -> Option<Cache> {
        let map: BTreeMap<String, Option<String>> = serde_json::from_str(text).ok()?;
        let results = map
            .into_iter()
            .filter_map(|(name, verdict)| {
                let feature = parse_feature(&name).ok()?;
                Some((feature, verdict.map_or(Ok(()), Err)))
            })
            .collect();
        Some(Cache { results })
    }

    /// `Ok` when `feature` is available, otherwise why not.
    pub(crate) fn probe(&mut self, feature: Feature) -> Result<(), String> {
        self.results
            .entry(feature)
            .or_insert_with(|| probe_once(feature))
            .clone()
    }

    /// Probe every known feature (one after the other, so this is fine in a process that
    /// must stay single-threaded), in listing order.
    pub(crate) fn probe_all(&mut self) -> Vec<(Feature, Result<(), String>)> {
        Feature::all()
            .into_iter()
            .map(|feature| (feature, self.probe(feature)))
            .collect()
    }

    /// The results known so far, by feature name, for the results file.
    pub(crate) fn results(&self) -> BTreeMap<String, crate::results::FeatureResult> {
        self.results
            .iter()
            .map(|(feature, verdict)| {
                let result = crate::results::FeatureResult {
                    available: verdict.is_ok(),
                    reason: verdict.clone().err(),
                };
                (feature.to_string(), result)
            })
            .collect()
    }

    /// The results probed so far as a JSON object, one feature per line, in listing order:
    /// `null` when available, otherwise the reason. [`Cache::load`] reads it back.
    pub(crate) fn to_json(&self) -> String {
        let order = Feature::all();
        let mut results: Vec<_> = self.results.iter().collect();
        results.sort_by_key(|(feature, _)| order.iter().position(|f| f == *feature));
        let lines: Vec<String> = results
            .into_iter()
            .map(|(feature, verdict)| {
                let value = match verdict {
                    Ok(()) => serde_json::Value::Null,
                    Err(reason) => serde_json::Value::from(reason.as_str()),
                };
                format!(
                    "  {}: {value}",
                    serde_json::Value::from(feature.to_string())
                )
            })
            .collect();
        if lines.is_empty() {
            "{}\n".to_string()
        } else {
            format!("{{\n{}\n}}\n", lines.join(",\n"))
        }
    }
}

/// Probe every feature and write the results to `path` for [`Cache::from_env`] (the format of
/// `nsconform features --json`). The file is written under a temporary name and renamed, so
/// a reader never sees half of it. Safe to call from a multithreaded process: the probes
/// run in child processes.
pub(crate) fn write_cache(path: &Path, only: Option<&[Feature]>) -> std::io::Result<()> {
    let mut cache = Cache::default();
    match only {
        Some(features) => {
            for feature in features {
                let _ = cache.probe(*feature);
            }
        }
        None => {
            cache.probe_all();
        }
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&temporary, cache.to_json())?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

/// Probe `feature` once: look-ups here, everything else in a throw-away process.
fn probe_once(feature: Feature) -> Result<(), String> {
    match feature {
        Feature::Cgroup1 => {
            if mounted_fs_types().iter().any(|t| t == "cgroup") {
                Ok(())
            } else {
                Err(
                    "no cgroup v1 hierarchy is mounted (no cgroup entry in /proc/self/mountinfo)"
                        .to_string(),
                )
            }
        }
        Feature::Cgroup2 => match cgroup2_mount() {
            Some(_) => Ok(()),
            None => {
                Err("cgroup v2 is not mounted (no cgroup2 entry in /proc/self/mountinfo)".into())
            }
        },
        _ => child::probe_in_child(feature),
    }
}

/// The file system types of this process's mounts, from `/proc/self/mountinfo`.
fn mounted_fs_types() -> Vec<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mountinfo
        .lines()
        .filter_map(|line| {
            let (_, after) = line.split_once(" - ")?;
            Some(after.split_whitespace().next()?.to_string())
        })
        .collect()
}

/// The body of `nsconform __probe FEATURE`: try the feature in this (throw-away) process.
pub(crate) fn probe_here(feature: Feature) -> Result<(), String> {
    match feature {
        Feature::Namespace(kind) => namespaces::try_namespace(kind),
        Feature::Userns => namespaces::try_userns(),
        Feature::UnprivilegedUserns => namespaces::try_unprivileged_userns(),
        Feature::Cgroup1 | Feature::Cgroup2 => probe_once(feature),
        Feature::Overlayfs => mounts::try_overlayfs(),
        Feature::OverlayfsInUserns => mounts::try_overlayfs_in_userns(),
        Feature::TmpfsInUserns => mounts::try_tmpfs_in_userns(),
        Feature::ProcInUserns => mounts::try_proc_in_userns(),
        Feature::IdmappedMounts => mounts::try_idmapped_mount(),
        Feature::Pidfd => syscalls::try_pidfd(),
        Feature::Clone3 => syscalls::try_clone3(),
        Feature::SetnsPidfd => syscalls::try_setns_pidfd(),
        Feature::NsfsIoctl => syscalls::try_ns_get_userns(),
        Feature::TimeOffsets => syscalls::try_time_offsets(),
        Feature::Link(kind) => links::try_link_in_new_netns(kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requires::LinkKind;
    use std::io::Write;

    #[test]
    fn loads_results_from_a_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(
            br#"{"pidfd": null, "link:dummy": "ip link add d0 type dummy: Error: Unknown device type.", "warp-drive": null}"#,
        )
        .unwrap();
        let mut cache = Cache::load(file.path());
        // Answered from the file, without probing (a probe here would run the test binary).
        assert_eq!(cache.probe(Feature::Pidfd), Ok(()));
        assert_eq!(
            cache.probe(Feature::Link(LinkKind::Dummy)),
            Err("ip link add d0 type dummy: Error: Unknown device type.".to_string())
        );
        // Unknown names are skipped.
        assert_eq!(cache.results.len(), 2);
    }

    #[test]
    fn ignores_missing_and_garbled_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Cache::load(&dir.path().join("absent.json"))
            .results
            .is_empty());
        for garbage in ["", "{", "[1, 2]", r#"{"pidfd": 3}"#, "not json at all"] {
            let path = dir.path().join("garbled.json");
            std::fs::write(&path, garbage).unwrap();
            assert!(Cache::load(&path).results.is_empty(), "{garbage}");
        }
    }

    #[test]
    fn json_round_trips_in_listing_order() {
        let mut cache = Cache::default();
        let all = Feature::all();
        for (i, feature) in all.iter().enumerate() {
            let verdict = if i % 3 == 0 {
                Err(format!("reason \"{i}\"\twith escapes"))
            } else {
                Ok(())
            };
            cache.results.insert(*feature, verdict);
        }
        let json = cache.to_json();
        let names: Vec<String> = json
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix('"')?
                    .split('"')
                    .next()
                    .map(String::from)
            })
            .collect();
        let expected: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(names, expected);
        let path = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(path.path(), &json).unwrap();
        assert_eq!(Cache::load(path.path()).results, cache.results);
        assert_eq!(Cache::default().to_json(), "{}\n");
    }
}
