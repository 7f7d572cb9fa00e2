//! The harness's code in huge pages, so that the processes forked for every scenario start
//! with it mapped.
//!
//! A forked child gets no page-table entries for its parent's file mappings: it faults the
//! code it runs in again, 16 pages at a time, and its exit unmaps them. The orchestrator
//! and the agent of a scenario each map about a thousand pages of code that way, spread
//! over most of the executable (docs/performance.md, fifth round). Anonymous memory is
//! different: `fork` copies its entries, and a 2 MB huge page is one entry. So a process
//! that forks for every scenario (the fork server, a warm supervisor from its second
//! scenario on) calls [`move_once`]: it copies the executable's read-only segments (code,
//! read-only data) into anonymous huge pages and puts them in place of the file mapping,
//! at the same addresses with the same bytes, read-only (`sys::replace_with_huge_copy`).
//! Its forks inherit that, and so do theirs.
//!
//! A huge page covers a 2 MB-aligned span, so the executable is linked with its segments
//! 2 MB apart (`harness/build.rs`); a span is moved whole only when nothing else is mapped
//! in it, else only its 2 MB-aligned inside. Nothing moves where the kernel cannot collapse
//! memory into huge pages (`MADV_COLLAPSE`, Linux 6.1) or huge pages are disabled, nor with
//! `NSCONFORM_HUGE_CODE=0` (for `perf`, which names functions only in file mappings).

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sys::HUGE_PAGE;

/// The size of a page, as file offsets.
const PAGE: u64 = 4096;

/// Set once this process tried; forks inherit it with the memory.
static TRIED: AtomicBool = AtomicBool::new(false);

/// Errors of moving the code.
#[derive(Debug, thiserror::Error)]
enum HugeCodeError {
    /// `/proc/self/maps` or the executable could not be read.
    #[error("cannot read {0}: {1}")]
    Read(&'static str, std::io::Error),
    /// The executable's headers are not what the loader mapped.
    #[error("the executable: {0}")]
    Elf(#[from] crate::elf::ElfError),
    /// The kernel refused a step (no huge page, no `MADV_COLLAPSE`, ...).
    #[error("cannot move {0:#x}..{1:#x}: {2}")]
    Move(usize, usize, std::io::Error),
}

/// Move this process's read-only code and data into huge pages, the first time only (see
/// the module's docs): a no-op in a fork of a process that did. Must be called
/// single-threaded. What happened goes to the phase log; a failure leaves the code where
/// it was, which works the same, only slower.
pub(crate) fn move_once() {
    if TRIED.swap(true, Ordering::Relaxed)
        || std::env::var_os("NSCONFORM_HUGE_CODE").is_some_and(|v| v == "0")
    {
        return;
    }
    match move_code() {
        Ok(bytes) => crate::phase_log::mark(&format!("huge code: {} MB moved", bytes >> 20)),
        Err(e) => crate::phase_log::mark(&format!("huge code: {e}")),
    }
}

/// Move what [`plan`] finds; returns how many bytes of spans were replaced.
fn move_code() -> Result<usize, HugeCodeError> {
    let exe = std::fs::read_link("/proc/self/exe")
        .map_err(|e| HugeCodeError::Read("/proc/self/exe", e))?;
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| HugeCodeError::Read("/proc/self/maps", e))?;
    let headers = headers_of(&exe).map_err(|e| HugeCodeError::Read("the executable", e))?;
    let read_only = crate::elf::read_only_loads(&headers)?;
    let moves = plan(&parse_maps(&maps), &exe.to_string_lossy(), &read_only);
    let mut moved = 0;
    for one in moves {
        crate::sys::replace_with_huge_copy(one.span.clone(), one.content, one.executable)
            .map_err(|e| HugeCodeError::Move(one.span.start, one.span.end, e))?;
        moved += one.span.len();
    }
    Ok(moved)
}

/// The first 4 KiB of the executable, where its headers are.
fn headers_of(exe: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut headers = Vec::with_capacity(4096);
    std::fs::File::open(exe)?
        .take(4096)
        .read_to_end(&mut headers)?;
    Ok(headers)
}

/// One line of `/proc/self/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mapping {
    addresses: Range<usize>,
    /// `r-xp` and the like.
    permissions: String,
    /// Where in the file it starts (0 for anonymous memory).
    offset: u64,
    /// The file, `[heap]`, or empty.
    path: String,
}

/// The lines of `/proc/self/maps` that parse.
fn parse_maps(maps: &str) -> Vec<Mapping> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(6, ' ');
            let (start, end) = fields.next()?.split_once('-')?;
            let permissions = fields.next()?.to_owned();
            let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
            let path = fields.nth(2).unwrap_or("").trim_start().to_owned();
            Some(Mapping {
                addresses: usize::from_str_radix(start, 16).ok()?
                    ..usize::from_str_radix(end, 16).ok()?,
                permissions,
                offset,
                path,
            })
        })
        .collect()
}

/// One span to replace with a huge-page copy.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Move {
    /// 2 MB-aligned: what the copy maps.
    span: Range<usize>,
    /// Inside `span`: the bytes copied (the rest of the span is zero, unmapped before).
    content: Range<usize>,
    /// Code (read and execute) rather than read-only data.
    executable: bool,
}

/// Which spans to move: each mapping of the executable `exe` that comes from a read-only
/// segment (`read_only`, as file offsets), widened to whole huge pages when nothing else
/// is mapped there, else narrowed to the huge pages inside it; none if none fits.
fn plan(maps: &[Mapping], exe: &str, read_only: &[Range<u64>]) -> Vec<Move> {
    // The file's pages that a mapping shows all belong to one read-only segment (RELRO
    // shares its first page with the end of the code, but goes on).
    let from_read_only = |mapping: &Mapping| {
        let length = (mapping.addresses.end - mapping.addresses.start) as u64;
        let file = mapping.offset..mapping.offset.saturating_add(length);
        read_only.iter().any(|segment| {
            segment.start / PAGE * PAGE <= file.start
                && file.end <= segment.end.next_multiple_of(PAGE)
        })
    };
    maps.iter()
        .filter(|mapping| mapping.path == exe && !mapping.permissions.contains('w'))
        .filter(|mapping| from_read_only(mapping))
        .filter_map(|mapping| {
            let Range { start, end } = mapping.addresses;
            let whole = start / HUGE_PAGE * HUGE_PAGE..end.next_multiple_of(HUGE_PAGE);
            let alone = maps.iter().all(|other| {
                other == mapping
                    || other.addresses.end <= whole.start
                    || other.addresses.start >= whole.end
            });
            let span = if alone {
                whole
            } else {
                start.next_multiple_of(HUGE_PAGE)..end / HUGE_PAGE * HUGE_PAGE
            };
            (span.start < span.end).then(|| Move {
                content: start.max(span.start)..end.min(span.end),
                span,
                executable: mapping.permissions.contains('x'),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXE: &str = "/work/target/release/nsconform";
    const MB: usize = 1 << 20;

    /// A `/proc/self/maps` line.
    fn line(start: usize, end: usize, permissions: &str, offset: u64, path: &str) -> String {
        format!(
            "{start:x}-{end:x} {permissions} {offset:08x} fe:00 5423197                    {path}"
        )
    }

    /// The executable as it is linked (read-only data at file offset 0, code after it, then
    /// RELRO and data), loaded at `base`; `gap` is how far apart the segments are.
    fn layout(base: usize, gap: usize) -> Vec<Mapping> {
        let code = base + gap + 0x124000;
        let relro = code + 0x45d000 + gap;
        let maps = [
            line(base, base + 0x125000, "r--p", 0, EXE),
            line(code, code + 0x45d000, "r-xp", 0x124000, EXE),
            line(relro, relro + 0x1a000, "r--p", 0x580000, EXE),
            line(relro + gap, relro + gap + 0x1000, "rw-p", 0x599000, EXE),
            line(
                0x7f00_0000_0000,
                0x7f00_0001_6000,
                "r-xp",
                0x26000,
                "/usr/lib/libc.so.6",
            ),
        ]
        .join("\n");
        parse_maps(&maps)
    }

    /// The file offsets of the read-only loads of that executable.
    fn read_only() -> Vec<Range<u64>> {
        vec![0..0x124b28, 0x124b30..0x5802e0]
    }

    #[test]
    fn maps_lines_parse_with_and_without_a_path() {
        let maps = parse_maps(
            "55d0-55e0 r-xp 00124000 fe:00 5423197                    /a b/nsconform\n\
             7ffd-7ffe rw-p 00000000 00:00 0 \nnot a line",
        );
        assert_eq!(maps.len(), 2);
        assert_eq!(maps[0].addresses, 0x55d0..0x55e0);
        assert_eq!(maps[0].offset, 0x124000);
        assert_eq!(maps[0].path, "/a b/nsconform");
        assert_eq!(maps[1].path, "");
    }

    #[test]
    fn segments_2_mb_apart_move_whole() {
        let base = 0x5600_0000_0000;
        let moves = plan(&layout(base, 2 * MB), EXE, &read_only());
        assert_eq!(
            moves,
            vec![
                Move {
                    span: base..base + 2 * MB,
                    content: base..base + 0x125000,
                    executable: false,
                },
                Move {
                    span: base + 2 * MB..base + 8 * MB,
                    content: base + 2 * MB + 0x124000..base + 2 * MB + 0x581000,
                    executable: true,
                },
            ]
        );
    }

    #[test]
    fn packed_segments_move_only_the_huge_pages_inside_them() {
        // Linked 4 KiB apart: only the code is large enough to hold a whole huge page, and
        // its neighbours share the huge pages at its ends.
        let base = 0x5600_0000_0000;
        let moves = plan(&layout(base, 0x1000), EXE, &read_only());
        assert_eq!(
            moves,
            vec![Move {
                span: base + 2 * MB..base + 4 * MB,
                content: base + 2 * MB..base + 4 * MB,
                executable: true,
            }]
        );
    }

    #[test]
    fn writable_and_relro_mappings_and_other_files_stay() {
        let base = 0x5600_0000_0000;
        let moves = plan(&layout(base, 2 * MB), EXE, &read_only());
        assert!(moves.iter().all(|one| one.span.end <= base + 8 * MB));
        // The RELRO mapping is read-only but comes from a writable segment.
        assert!(plan(&layout(base, 2 * MB), EXE, &[]).is_empty());
        assert!(plan(&layout(base, 2 * MB), "/other", &read_only()).is_empty());
    }
}
