//! Plain-text listings (`kernels list`, `rootfs list`): rows in aligned columns, the disk
//! space a tree uses, and sizes the way apt prints them.

use std::path::Path;

/// `rows` (the first is usually the heading) as left-aligned columns two spaces apart, one
/// line each, without trailing spaces.
pub(crate) fn aligned<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A size in bytes the way apt prints it: `26.7 MB`.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Bytes used by a tree (symbolic links not followed, other file systems not entered).
pub(crate) fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fn walk(path: &Path, dev: u64) -> u64 {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return 0;
        };
        if !meta.is_dir() {
            return meta.blocks() * 512;
        }
        if meta.dev() != dev {
            return 0;
        }
        let inside: u64 = std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| walk(&e.path(), dev))
                    .sum()
            })
            .unwrap_or(0);
        meta.blocks() * 512 + inside
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) => walk(path, meta.dev()),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_without_trailing_spaces() {
        let rows = [
            ["NAME".to_string(), "SIZE".to_string(), "PATH".to_string()],
            ["busybox".to_string(), "2.1 MB".to_string(), String::new()],
        ];
        assert_eq!(aligned(&rows), "NAME     SIZE    PATH\nbusybox  2.1 MB\n");
    }

    #[test]
    fn sizes_read_like_apt() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(26_700_000), "26.7 MB");
        assert_eq!(human_size(1_500_000_000), "1.5 GB");
    }
}
