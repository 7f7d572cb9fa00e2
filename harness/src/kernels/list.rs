//! `nsconform kernels list`: the cached kernels as a table or as JSON.

use super::cache::CachedKernel;
use crate::listing::{disk_usage, human_size};
use serde_json::{json, Value};

/// The table printed by `nsconform kernels list`: one kernel a line, aligned columns.
pub(crate) fn table(kernels: &[CachedKernel]) -> String {
    let mut rows =
        vec![["RELEASE", "VERSION", "SUITE", "VMLINUX", "SIZE", "PATH"].map(String::from)];
    for kernel in kernels {
        let vmlinux = match (&kernel.vmlinux, &kernel.record.pvh_entry) {
            (Some(_), Some(entry)) => format!("pvh@{entry}"),
            (Some(_), None) => "yes".to_string(),
            (None, _) => "no".to_string(),
        };
        rows.push([
            kernel.release.clone(),
            kernel.record.version.clone(),
            kernel.record.suite.clone(),
            vmlinux,
            human_size(disk_usage(&kernel.dir)),
            kernel.dir.display().to_string(),
        ]);
    }
    crate::listing::aligned(&rows)
}

/// The JSON printed by `nsconform kernels list --json`: an array, one object a kernel.
pub(crate) fn json(kernels: &[CachedKernel]) -> Value {
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    Value::Array(
        kernels
            .iter()
            .map(|k| {
                json!({
                    "release": k.release,
                    "flavour": k.record.flavour,
                    "package": k.record.name,
                    "version": k.record.version,
                    "suite": k.record.suite,
                    "dir": k.dir.display().to_string(),
                    "vmlinuz": k.vmlinuz.display().to_string(),
                    "vmlinux": path(&k.vmlinux),
                    "pvh_entry": k.record.pvh_entry,
                    "compression": k.record.compression,
                    "modules": path(&k.modules),
                    "config": path(&k.config),
                    "depmod": k.record.depmod,
                    "download_size": k.record.size,
                    "disk_usage": disk_usage(&k.dir),
                    "packages": k.record.packages,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::cache::list_in;
    use super::super::cache::tests::{fake_kernel, record};
    use super::super::packages::Flavour;
    use super::*;

    #[test]
    fn table_and_json_show_each_kernel() {
        let tmp = tempfile::tempdir().expect("tempdir");
        fake_kernel(
            tmp.path(),
            &record("6.1.0-56-cloud-amd64", "6.1.192-2", Flavour::Cloud),
            true,
        );
        fake_kernel(
            tmp.path(),
            &record("5.10.0-46-cloud-amd64", "5.10.262-1", Flavour::Cloud),
            false,
        );
        let kernels = list_in(tmp.path());
        let text = table(&kernels);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("RELEASE "), "{text}");
        assert!(
            lines[1].starts_with("5.10.0-46-cloud-amd64  5.10.262-1 "),
            "{text}"
        );
        assert!(lines[1].contains(" no "), "{text}");
        assert!(lines[2].contains(" pvh@0x1000970 "), "{text}");
        let value = json(&kernels);
        assert_eq!(value[1]["release"], "6.1.0-56-cloud-amd64");
        assert_eq!(value[1]["flavour"], "cloud");
        assert_eq!(value[0]["vmlinux"], Value::Null);
        assert!(value[1]["vmlinux"]
            .as_str()
            .expect("path")
            .ends_with("/vmlinux"));
    }
}
