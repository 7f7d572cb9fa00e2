//! `nsconform rootfs build|list|path`: root filesystems built on demand into the cache.
//!
//! `build NAME [--force]` makes a known tree (`busybox` in milliseconds, `debian-bookworm`
//! and `debian-trixie` with `debootstrap` in one to three minutes); `list` shows which are
//! built, their size and tool versions; `path NAME` prints a built tree's directory. Exit
//! codes: 0 done, 1 failed or not built, 2 an unknown name. See `docs/rootfs.md`.

use std::process::ExitCode;

use super::{emit, BAD_INPUT};
use crate::listing::{disk_usage, human_size};
use crate::rootfs::{self, BuildOptions, Interrupt, Known, Outcome, Stamp};

/// `nsconform rootfs ...`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum RootfsArgs {
    /// Build a root filesystem into the cache: busybox, debian-bookworm or debian-trixie.
    Build {
        /// The tree's name.
        name: String,
        /// Build it again even if it is already built (default: keep the built one).
        #[arg(long)]
        force: bool,
    },
    /// List the known root filesystems: built or not, size, tool versions.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the directory of a built root filesystem (exit 1 when it is not built).
    Path {
        /// The tree's name.
        name: String,
    },
}

/// Run `nsconform rootfs`.
pub(crate) fn main(args: RootfsArgs) -> ExitCode {
    match args {
        RootfsArgs::Build { name, force } => build(&name, force),
        RootfsArgs::List { json } => list(json),
        RootfsArgs::Path { name } => match rootfs::resolve(&name) {
            Ok(dir) if !name.contains('/') => {
                emit(&format!("{}\n", dir.display()));
                ExitCode::SUCCESS
            }
            Ok(_) | Err(rootfs::RootfsError::Unknown(_)) => {
                eprintln!("nsconform rootfs path: {}", unknown(&name));
                ExitCode::from(BAD_INPUT)
            }
            Err(err) => {
                eprintln!("nsconform rootfs path: {err}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The message for a name that is not a known tree.
fn unknown(name: &str) -> String {
    format!(
        "unknown root filesystem `{name}` (known: {})",
        rootfs::known_names().join(", ")
    )
}

/// `rootfs build NAME [--force]`.
fn build(name: &str, force: bool) -> ExitCode {
    let Some(known) = Known::parse(name) else {
        eprintln!("nsconform rootfs build: {}", unknown(name));
        return ExitCode::from(BAD_INPUT);
    };
    let options = BuildOptions {
        force,
        // Only a Debian build is slow enough to be interrupted; it must clean up after itself.
        interrupt: if known.fast() {
            Interrupt::never()
        } else {
            Interrupt::catch()
        },
        ..BuildOptions::default()
    };
    let started = std::time::Instant::now();
    match rootfs::build(known, &options) {
        Ok(Outcome::Built(dir)) => {
            let size = human_size(disk_usage(&dir));
            emit(&format!(
                "built {name} in {:.1} s: {} ({size})\n",
                started.elapsed().as_secs_f64(),
                dir.display()
            ));
            ExitCode::SUCCESS
        }
        Ok(Outcome::Kept(dir)) => {
            emit(&format!(
                "{name} is already built: {} (kept; `--force` builds it again)\n",
                dir.display()
            ));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("nsconform rootfs build {name}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// One row of `list`.
struct Row {
    name: &'static str,
    built: Option<(std::path::PathBuf, Stamp, u64)>,
}

/// `rootfs list [--json]`.
fn list(json: bool) -> ExitCode {
    let dir = rootfs::rootfs_dir();
    let rows: Vec<Row> = rootfs::known_names()
        .iter()
        .filter_map(|name| Known::parse(name))
        .map(|known| Row {
            name: known.name(),
            built: rootfs::built_in(&dir, known).map(|(path, stamp)| {
                let size = disk_usage(&path);
                (path, stamp, size)
            }),
        })
        .collect();
    if json {
        emit(&format!("{:#}\n", list_json(&rows)));
    } else {
        emit(&list_table(&rows));
    }
    ExitCode::SUCCESS
}

/// `list` as a table.
fn list_table(rows: &[Row]) -> String {
    let mut lines = vec![[
        "NAME".to_string(),
        "BUILT".to_string(),
        "SIZE".to_string(),
        "TOOLS".to_string(),
        "PATH".to_string(),
    ]];
    for row in rows {
        lines.push(match &row.built {
            None => [
                row.name.to_string(),
                "no".to_string(),
                "-".to_string(),
                "-".to_string(),
                format!("(nsconform rootfs build {})", row.name),
            ],
            Some((path, stamp, size)) => {
                let tools: Vec<String> = stamp
                    .tools
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect();
                [
                    row.name.to_string(),
                    stamp.built_at.clone(),
                    human_size(*size),
                    tools.join(", "),
                    path.display().to_string(),
                ]
            }
        });
    }
    crate::listing::aligned(&lines)
}

/// `list` as JSON: an array of `{name, built, path, size, stamp}`.
fn list_json(rows: &[Row]) -> serde_json::Value {
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| match &row.built {
            None => serde_json::json!({"name": row.name, "built": false}),
            Some((path, stamp, size)) => serde_json::json!({
                "name": row.name,
                "built": true,
                "path": path,
                "size": size,
                "stamp": stamp,
            }),
        })
        .collect();
    serde_json::Value::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_json_show_built_and_missing_trees() {
        let mut stamp = Stamp::now("busybox");
        stamp
            .tools
            .insert("busybox".to_string(), "1.35.0".to_string());
        let rows = vec![
            Row {
                name: "busybox",
                built: Some(("/c/rootfs/busybox".into(), stamp, 2_000_000)),
            },
            Row {
                name: "debian-trixie",
                built: None,
            },
        ];
        let table = list_table(&rows);
        assert!(table.starts_with("NAME"), "{table}");
        assert!(table.contains("busybox 1.35.0"), "{table}");
        assert!(table.contains("2.0 MB"), "{table}");
        assert!(
            table.contains("(nsconform rootfs build debian-trixie)"),
            "{table}"
        );
        let json = list_json(&rows);
        assert_eq!(json[0]["built"], true);
        assert_eq!(json[0]["stamp"]["name"], "busybox");
        assert_eq!(json[1]["built"], false);
    }
}
