//! Naming the columns of a report.
//!
//! A column is named after its kernel release (`uname -r`). Where two columns share it, the
//! distribution is added (`6.1.0-27-amd64 (debian 12)`); where that is still shared, the
//! file name is used instead. `--label NAME=FILE` names a column explicitly. Names that are
//! still the same after all this get a suffix: `#2`, `#3`, ...

use std::path::{Path, PathBuf};

use super::input::Input;
use super::model::Column;

/// Why a `--label` cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LabelError {
    /// Not `NAME=FILE`, or an empty name.
    #[error("--label {0}: expected NAME=FILE with a non-empty NAME")]
    Syntax(String),
    /// FILE is not one of the files being compared.
    #[error("--label {name}={file}: {file} is not one of the results files given")]
    UnknownFile {
        /// The name.
        name: String,
        /// The file.
        file: String,
    },
}

/// A parsed `--label NAME=FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Override {
    /// The column name.
    pub(crate) name: String,
    /// The results file it names.
    pub(crate) file: PathBuf,
}

/// Parse `NAME=FILE` (split at the first `=`).
pub(crate) fn parse_override(text: &str) -> Result<Override, LabelError> {
    match text.split_once('=') {
        Some((name, file)) if !name.trim().is_empty() && !file.is_empty() => Ok(Override {
            name: name.trim().to_string(),
            file: PathBuf::from(file),
        }),
        _ => Err(LabelError::Syntax(text.to_string())),
    }
}

/// Turn the inputs into columns with unique labels, in order.
pub(crate) fn label(inputs: Vec<Input>, overrides: &[Override]) -> Result<Vec<Column>, LabelError> {
    let mut names: Vec<Option<String>> = vec![None; inputs.len()];
    for o in overrides {
        let matching: Vec<usize> = (0..inputs.len())
            .filter(|&i| same_file(Path::new(&inputs[i].file), &o.file))
            .collect();
        if matching.is_empty() {
            return Err(LabelError::UnknownFile {
                name: o.name.clone(),
                file: o.file.display().to_string(),
            });
        }
        for i in matching {
            names[i] = Some(o.name.clone());
        }
    }
    let mut labels: Vec<String> = inputs
        .iter()
        .zip(&names)
        .map(|(input, name)| name.clone().unwrap_or_else(|| kernel(input)))
        .collect();
    // Refine the default names that collide: first with the distribution, then the file.
    for refine in [with_distribution as fn(&Input) -> String, file_stem] {
        let clashing: Vec<usize> = (0..labels.len())
            .filter(|&i| {
                names[i].is_none() && labels.iter().filter(|l| **l == labels[i]).count() > 1
            })
            .collect();
        for i in clashing {
            labels[i] = refine(&inputs[i]);
        }
    }
    let labels = unique(labels);
    Ok(inputs
        .into_iter()
        .zip(labels)
        .map(|(input, label)| Column {
            label,
            file: input.file,
            results: input.results,
            vm: input.vm,
        })
        .collect())
}

fn kernel(input: &Input) -> String {
    let release = &input.results.machine.kernel_release;
    if release.is_empty() {
        file_stem(input)
    } else {
        release.clone()
    }
}

fn with_distribution(input: &Input) -> String {
    let d = input
        .results
        .userland
        .as_ref()
        .map_or(&input.results.machine.distribution, |u| &u.distribution);
    let distribution = format!("{} {}", d.id, d.version_id).trim().to_string();
    if distribution.is_empty() {
        kernel(input)
    } else {
        format!("{} ({distribution})", kernel(input))
    }
}

fn file_stem(input: &Input) -> String {
    let path = Path::new(&input.file);
    path.file_stem()
        .map_or_else(|| input.file.clone(), |s| s.to_string_lossy().into_owned())
}

/// Whether `a` and `b` name the same file: equal as given, or after resolving both.
fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// Keep the first of equal labels as it is and suffix the others `#2`, `#3`, ...
pub(crate) fn unique(labels: Vec<String>) -> Vec<String> {
    let mut taken: Vec<String> = Vec::with_capacity(labels.len());
    for label in labels {
        let mut candidate = label.clone();
        let mut n = 1;
        while taken.contains(&candidate) {
            n += 1;
            candidate = format!("{label} #{n}");
        }
        taken.push(candidate);
    }
    taken
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::testdata;

    fn labels_of(inputs: Vec<Input>, overrides: &[Override]) -> Vec<String> {
        label(inputs, overrides)
            .unwrap()
            .into_iter()
            .map(|c| c.label)
            .collect()
    }

    #[test]
    fn names_columns_after_kernels() {
        assert_eq!(
            labels_of(testdata::inputs(), &[]),
            ["6.18.44-fc-v595", "5.10.0-32-amd64", "6.1.0-27-cloud-amd64"]
        );
    }

    #[test]
    fn adds_the_distribution_then_the_file_then_a_suffix() {
        let host = testdata::input("host-6.18.json");
        let mut other_distribution = host.clone();
        other_distribution.results.machine.distribution.id = "ubuntu".to_string();
        other_distribution.results.machine.distribution.version_id = "24.04".to_string();
        other_distribution.file = "ubuntu.json".to_string();
        assert_eq!(
            labels_of(vec![host.clone(), other_distribution], &[]),
            [
                "6.18.44-fc-v595 (debian 12)",
                "6.18.44-fc-v595 (ubuntu 24.04)"
            ]
        );
        let mut renamed = host.clone();
        renamed.file = "elsewhere/other-tools.json".to_string();
        assert_eq!(
            labels_of(vec![host.clone(), renamed], &[]),
            ["host-6.18", "other-tools"]
        );
        assert_eq!(
            labels_of(vec![host.clone(), host.clone(), host], &[]),
            ["host-6.18", "host-6.18 #2", "host-6.18 #3"]
        );
    }

    #[test]
    fn overrides_name_columns_and_are_checked() {
        let inputs = testdata::inputs();
        let file = inputs[1].file.clone();
        let named = parse_override(&format!("old kernel={file}")).unwrap();
        let same = parse_override(&format!("6.18.44-fc-v595={file}")).unwrap();
        assert_eq!(
            labels_of(inputs.clone(), &[named]),
            ["6.18.44-fc-v595", "old kernel", "6.1.0-27-cloud-amd64"]
        );
        assert_eq!(
            labels_of(inputs.clone(), &[same]),
            // The default name that clashes with a given one is the one refined.
            [
                "6.18.44-fc-v595 (debian 12)",
                "6.18.44-fc-v595",
                "6.1.0-27-cloud-amd64"
            ]
        );
        assert!(matches!(
            parse_override("nofile"),
            Err(LabelError::Syntax(_))
        ));
        assert!(matches!(
            parse_override("=x.json"),
            Err(LabelError::Syntax(_))
        ));
        let unknown = parse_override("x=missing.json").unwrap();
        assert_eq!(
            label(inputs, &[unknown]).unwrap_err().to_string(),
            "--label x=missing.json: missing.json is not one of the results files given"
        );
    }
}
