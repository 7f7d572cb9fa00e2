//! Finding scenario files and running each one in its own freshly exec'd supervisor.
//!
//! This is what both `cargo test` (through libtest-mimic) and `nsconform run` use. The
//! calling process may be multithreaded: all namespace work happens in the child.

mod catalog;
mod gather;
mod process;
mod requirements;
mod start;
mod supervised;
mod warm_pool;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

pub use catalog::Catalog;
pub(crate) use requirements::verdicts as requirement_verdicts;

use crate::report::ScenarioReport;
use supervised::Flight;
use warm_pool::WarmPool;

/// The scenario after the one in flight, taken from the queue ahead of its turn.
enum Ahead<'r, 'f> {
    /// Given to a supervisor, which gets it ready to run.
    Held(Box<Flight<'r>>),
    /// Not known ready: given out in its turn.
    File(&'f ScenarioFile),
}

/// A scenario file and the name it runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioFile {
    /// Its path under the scenarios directory, without `.toml` (e.g. `uts/hostname`).
    pub name: String,
    /// The file.
    pub path: PathBuf,
}

/// Every `*.toml` under each of `paths` (directories are walked, files taken as they are),
/// sorted by name. A name is the path relative to the directory given (or to the nearest
/// `scenarios` directory above a file).
pub fn discover(paths: &[PathBuf]) -> Result<Vec<ScenarioFile>, String> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, path, &mut found).map_err(|e| format!("{}: {e}", path.display()))?;
        } else if path.is_file() {
            found.push(ScenarioFile {
                name: name_of(path, None),
                path: path.clone(),
            });
        } else {
            return Err(format!("{}: no such file or directory", path.display()));
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found.dedup_by(|a, b| a.path == b.path);
    Ok(found)
}

fn walk(root: &Path, dir: &Path, found: &mut Vec<ScenarioFile>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(root, &path, found)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            found.push(ScenarioFile {
                name: name_of(&path, Some(root)),
                path,
            });
        }
    }
    Ok(())
}

fn name_of(path: &Path, root: Option<&Path>) -> String {
    let base = root.map(Path::to_path_buf).or_else(|| {
        path.ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == "scenarios"))
            .map(Path::to_path_buf)
    });
    let relative = base
        .as_deref()
        .and_then(|b| path.strip_prefix(b).ok())
        .unwrap_or(path);
    let text = relative.with_extension("").to_string_lossy().into_owned();
    if text.is_empty() {
        path.display().to_string()
    } else {
        text
    }
}

/// Runs scenarios with one `nsconform` binary, sharing one feature probe per run.
#[derive(Debug, Clone)]
pub struct Runner {
    exe: PathBuf,
    feature_cache: Option<PathBuf>,
    tool_path: Vec<PathBuf>,
    userland: Option<String>,
    warm: Option<Arc<WarmPool>>,
    /// Time limits of the run's files, known ahead (see [`Runner::with_catalog`]).
    limits: Arc<HashMap<PathBuf, Duration>>,
    /// The files checked ahead that may start at once (see [`Runner::check_requirements`]).
    ready: Arc<BTreeSet<PathBuf>>,
}

impl Runner {
    /// A runner using the `nsconform` binary `exe`, probing features in each supervisor.
    pub fn new(exe: impl Into<PathBuf>) -> Runner {
        Runner {
            exe: exe.into(),
            feature_cache: None,
            tool_path: Vec::new(),
            userland: None,
            warm: None,
            limits: Arc::default(),
            ready: Arc::default(),
        }
    }

    /// Take the time limits of the run's files from `catalog`, so that giving a scenario out
    /// never waits for its file to be read here (the backstop needs the limit).
    pub fn with_catalog(mut self, catalog: &Catalog) -> Runner {
        self.limits = Arc::new(catalog.limits().clone());
        self
    }

    /// Start each thread's next supervisor while its current scenario runs, so the exec and
    /// the stand-in host are ready when the scenario is (see `__supervise --warm`).
    /// `expected` is how many scenarios the run has, when known: no supervisor is started
    /// beyond them. Call [`Runner::finish`] at the end of the run.
    pub fn with_warm_supervisors(mut self, expected: Option<usize>) -> Runner {
        self.warm = Some(Arc::new(WarmPool::new(expected)));
        self
    }

    /// End the warm supervisors no scenario will use, and wait for them (each removes its
    /// stand-in host). Call it before checking that the run left nothing behind.
    pub fn finish(&self) {
        if let Some(pool) = &self.warm {
            pool.shutdown();
        }
    }

    /// Run every scenario's host inside root filesystem `userland` (a name or a path; see
    /// `nsconform run --userland`). `None` leaves `NSCONFORM_USERLAND` as inherited.
    pub fn with_userland(mut self, userland: Option<String>) -> Runner {
        self.userland = userland;
        self
    }

    /// Put the directories `dirs` (absolute) first on the `PATH` of every scenario command
    /// and of `requires.commands` lookups, in this order: each supervisor gets them in
    /// `NSCONFORM_TOOL_PATH`. Without this, supervisors inherit that variable as it is.
    pub fn with_tool_path(mut self, dirs: Vec<PathBuf>) -> Runner {
        self.tool_path = dirs;
        self
    }

    /// Probe every feature once now (`nsconform features --save FILE`) and let every
    /// supervisor read the results from `file` instead of probing again. An existing file
    /// is reused as it is when `reuse` is true (callers key its name to the boot and binary).
    pub fn with_feature_cache(
        self,
        file: impl Into<PathBuf>,
        reuse: bool,
    ) -> Result<Runner, String> {
        self.with_feature_cache_of(file, reuse, None)
    }

    /// Like [`Runner::with_feature_cache`], probing only the features the scenarios of
    /// `catalog` require (the supervisors still probe anything else they need themselves).
    pub fn with_feature_cache_for(
        self,
        file: impl Into<PathBuf>,
        catalog: &Catalog,
    ) -> Result<Runner, String> {
        let needed = catalog.implied_features();
        if needed.is_empty() {
            return Ok(self);
        }
        self.with_feature_cache_of(file, false, Some(&needed))
    }

    fn with_feature_cache_of(
        mut self,
        file: impl Into<PathBuf>,
        reuse: bool,
        only: Option<&[String]>,
    ) -> Result<Runner, String> {
        let file = file.into();
        if !(reuse && file.exists()) {
            let output = Command::new(&self.exe)
                .args(["features", "--save"])
                .arg(&file)
                .args(only.unwrap_or_default())
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run {}: {e}", self.exe.display()))?;
            if !output.status.success() {
                return Err(format!(
                    "feature probing failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
        }
        self.feature_cache = Some(file);
        Ok(self)
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.exe);
        if let Some(cache) = &self.feature_cache {
            command.env(crate::probe::CACHE_ENV, cache);
        }
        if !self.tool_path.is_empty() {
            let dirs: Vec<String> = self
                .tool_path
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            command.env(crate::requires::TOOL_PATH_ENV, dirs.join(":"));
        }
        if let Some(userland) = &self.userland {
            command.env(crate::supervisor::USERLAND_ENV, userland);
        }
        command.stdin(Stdio::null());
        command
    }

    /// Check the requirements of `files` once, now, in one `nsconform __requirements`
    /// process (so each feature is probed once, with the supervisors' environment): why
    /// each file that cannot run on this machine is skipped, by path. Files that are fine,
    /// or invalid (their run reports that), are left out. The runner keeps what it learnt:
    /// the supervisor of a scenario known to be ready lets it start as soon as it is loaded.
    pub fn check_requirements(
        mut self,
        files: &[ScenarioFile],
    ) -> Result<(Runner, BTreeMap<PathBuf, String>), String> {
        let verdicts = requirements::ask(self.command(), files.iter().map(|f| &f.path))?;
        self.ready = Arc::new(verdicts.ready);
        Ok((self, verdicts.unmet))
    }

    /// Pass `signal` (e.g. SIGTERM after Ctrl-C) to the supervisors in flight that are not
    /// this process's own children (those a fork server forked), and fork no more. The
    /// caller signals the others itself: `run_each` tells it their PIDs.
    pub fn interrupt(&self, signal: nix::sys::signal::Signal) {
        if let Some(pool) = &self.warm {
            pool.signal_servers(signal);
        }
    }

    /// Run `file` in a fresh `nsconform __supervise` process. A supervisor that outlives the
    /// scenario's own timeout by 30 s is killed, so a bug in the harness cannot hang the
    /// caller either.
    pub fn run(&self, file: &ScenarioFile) -> ScenarioReport {
        Flight::start(self, file, &|_| {}, 0, false).finish(&|_| {})
    }

    /// Run the scenarios `next` gives, one after another, telling `started` and then `ended`
    /// the PID of each supervisor that is this process's own child, and `done` each
    /// scenario's final report, in order. Between `started` and `ended` the PID is an
    /// unreaped child of this process, so a caller can forward signals to it safely; it
    /// reaches the others through [`Runner::interrupt`].
    ///
    /// With warm supervisors, the next scenario starts as soon as the current one has
    /// reported, while its supervisor still removes what held it; `done` hears of a scenario
    /// once that cleanup is over, and a cleanup that failed fails its own scenario. Without
    /// them (`--paranoid`), each scenario is over, cleanup included, before `done` hears of
    /// it and the next one starts.
    pub fn run_each<'f>(
        &self,
        next: &mut dyn FnMut() -> Option<&'f ScenarioFile>,
        started: &dyn Fn(u32),
        ended: &dyn Fn(u32),
        done: &mut dyn FnMut(ScenarioReport),
    ) {
        let mut cleaning: Option<Flight<'_>> = None;
        let mut ahead: Option<Ahead<'_, 'f>> = None;
        // This thread's turns, numbered in the order its scenarios are given out.
        let mut turns = 0u64;
        let mut next_turn = || {
            turns += 1;
            turns
        };
        loop {
            let stopped = self.warm.as_ref().is_some_and(|pool| pool.stopped());
            let mut flight = match ahead.take() {
                // Interrupted: what was not let run never started.
                Some(Ahead::Held(flight)) if stopped => {
                    flight.withdraw(ended);
                    break;
                }
                Some(Ahead::File(_)) if stopped => break,
                Some(Ahead::Held(mut flight)) => {
                    flight.go();
                    *flight
                }
                Some(Ahead::File(file)) => Flight::start(self, file, started, next_turn(), false),
                None => match next() {
                    Some(file) => Flight::start(self, file, started, next_turn(), false),
                    None => break,
                },
            };
            // The next scenario gets ready while this one runs (its first actor set up),
            // when it is known ready: one whose requirements its supervisor checks first
            // would run at once, beside this one.
            if self.warm.is_some() {
                ahead = next().map(|file| match self.ready.contains(&file.path) {
                    true => Ahead::Held(Box::new(Flight::start(
                        self,
                        file,
                        started,
                        next_turn(),
                        true,
                    ))),
                    false => Ahead::File(file),
                });
            }
            if let Some(previous) = cleaning.take() {
                done(previous.finish(ended));
            }
            if self.warm.is_none() {
                done(flight.finish(ended));
            } else {
                flight.wait_report(ended);
                cleaning = Some(flight);
            }
        }
        if let Some(previous) = cleaning {
            done(previous.finish(ended));
        }
    }
}
