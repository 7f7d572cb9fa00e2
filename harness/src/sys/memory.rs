//! Memory mappings: a copy of read-only code or data in huge pages, in place.

use std::io;

use super::ensure_single_threaded;

/// `MADV_COLLAPSE` (Linux 6.1), which `libc` does not name: make a range huge pages now.
const MADV_COLLAPSE: libc::c_int = 25;

/// The size of a huge page (x86-64 PMD).
pub(crate) const HUGE_PAGE: usize = 2 << 20;

/// Replace what maps `span` (2 MB-aligned) with anonymous huge pages holding a copy of the
/// bytes now at `content` (page-aligned, inside `span`, readable) at the same addresses,
/// read-only, and executable if `executable`; the rest of the span reads as zeros. For the
/// executable's own read-only segments (`huge_code.rs`): the caller checked that nothing
/// else is mapped in `span` and that `content` is never written. Refused with `EDEADLK` in
/// a multithreaded process; on any error the old mapping stays.
pub(crate) fn replace_with_huge_copy(
    span: std::ops::Range<usize>,
    content: std::ops::Range<usize>,
    executable: bool,
) -> io::Result<()> {
    ensure_single_threaded()?;
    let length = span.len();
    // A 2 MB-aligned stretch of fresh memory: map one huge page more and trim.
    // SAFETY: a new private anonymous mapping at an address the kernel picks touches
    // nothing that exists.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            length + HUGE_PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let raw = raw as usize;
    let copy = raw.next_multiple_of(HUGE_PAGE);
    let unmap = |start: usize, length: usize| {
        if length > 0 {
            // SAFETY: only parts of the mapping made above, which nothing else uses.
            unsafe { libc::munmap(start as *mut libc::c_void, length) };
        }
    };
    unmap(raw, copy - raw);
    unmap(copy + length, raw + length + HUGE_PAGE - (copy + length));
    let fail = |error: io::Error| {
        unmap(copy, length);
        Err(error)
    };
    let area = copy as *mut libc::c_void;
    // Huge pages from the first touch where the system allows it; MADV_COLLAPSE below
    // decides.
    // SAFETY: advice on the mapping made above.
    unsafe { libc::madvise(area, length, libc::MADV_HUGEPAGE) };
    // SAFETY: `content` is readable (the caller's contract), the destination lies inside
    // the new writable mapping (`content` is inside `span`, which has its length), and
    // the two do not overlap (the new mapping is fresh).
    unsafe {
        std::ptr::copy_nonoverlapping(
            content.start as *const u8,
            (copy + content.start - span.start) as *mut u8,
            content.len(),
        );
    }
    // SAFETY: advice on the mapping made above.
    if unsafe { libc::madvise(area, length, MADV_COLLAPSE) } != 0 {
        return fail(io::Error::last_os_error());
    }
    let protection = if executable {
        libc::PROT_READ | libc::PROT_EXEC
    } else {
        libc::PROT_READ
    };
    // SAFETY: changes only the mapping made above, which nothing else uses.
    if unsafe { libc::mprotect(area, length, protection) } != 0 {
        return fail(io::Error::last_os_error());
    }
    // SAFETY: moves the copy over `span` in one step; every address there that was mapped
    // (only the executable's read-only mapping, per the caller) reads the same bytes after
    // as before, so code running from it, this function's callers included, goes on
    // unchanged. The process is single-threaded (checked above).
    let moved = unsafe {
        libc::mremap(
            area,
            length,
            length,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            span.start as *mut libc::c_void,
        )
    };
    if moved == libc::MAP_FAILED {
        return fail(io::Error::last_os_error());
    }
    Ok(())
}
