//! Reading into a growing buffer without zeroing a chunk first.
//!
//! A zeroed chunk on the stack (`[0u8; 65536]`) writes every page of it before each read. In
//! a process that has just forked, or been forked, each of those pages is shared with the
//! other process until written, so every read cost a page fault per page of the chunk,
//! whatever the read returned. Reading straight into the spare capacity of a `Vec` touches
//! only the bytes the kernel writes. That room is kept small (it grows with the `Vec`): a
//! request for a large block makes the C library's allocator first merge its free small
//! blocks, writing to every page they are on.

use std::os::fd::{AsFd, AsRawFd};

use nix::errno::Errno;

/// The least room a read gets: under the C library's threshold for large blocks (1 KiB).
const LEAST_ROOM: usize = 512;

/// Read once from `fd`, appending to `buffer` at most `max` bytes, and no more than its spare
/// capacity (made at least 512 bytes); the count read (0 at end of file).
pub(crate) fn read_appending(
    fd: impl AsFd,
    buffer: &mut Vec<u8>,
    max: usize,
) -> nix::Result<usize> {
    buffer.reserve(LEAST_ROOM.min(max));
    let spare = buffer.spare_capacity_mut();
    let room = spare.len().min(max);
    // SAFETY: `spare` is writable memory owned by `buffer`, at least `room` bytes long, which
    // nothing else refers to during the call; read(2) writes at most `room` bytes there.
    let read = unsafe { libc::read(fd.as_fd().as_raw_fd(), spare.as_mut_ptr().cast(), room) };
    let read = usize::try_from(Errno::result(read)?).unwrap_or(0);
    // SAFETY: the kernel initialised the first `read` (at most `room`) bytes past the length.
    unsafe { buffer.set_len(buffer.len() + read) };
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_what_was_read_and_stops_at_max() {
        let (reader, writer) = nix::unistd::pipe().unwrap();
        nix::unistd::write(&writer, b"hello world").unwrap();
        let mut buffer = b"> ".to_vec();
        assert_eq!(read_appending(&reader, &mut buffer, 5), Ok(5));
        assert_eq!(buffer, b"> hello");
        assert_eq!(read_appending(&reader, &mut buffer, 64), Ok(6));
        assert_eq!(buffer, b"> hello world");
        // More than the least room, in several reads.
        let long = vec![b'x'; 3000];
        nix::unistd::write(&writer, &long).unwrap();
        let mut reads = 0;
        while buffer.len() < 13 + long.len() {
            assert!(read_appending(&reader, &mut buffer, 65536).unwrap() > 0);
            reads += 1;
        }
        assert!(reads > 1, "the room grows with the buffer, from 512 bytes");
        assert_eq!(&buffer[13..], &long[..]);
        drop(writer);
        assert_eq!(read_appending(&reader, &mut buffer, 64), Ok(0));
        assert_eq!(buffer.len(), 13 + long.len());
    }

    #[test]
    fn an_error_leaves_the_buffer_as_it_was() {
        let (reader, writer) = nix::unistd::pipe().unwrap();
        let mut buffer = b"kept".to_vec();
        // A write end cannot be read.
        assert_eq!(read_appending(&writer, &mut buffer, 8), Err(Errno::EBADF));
        assert_eq!(buffer, b"kept");
        drop(reader);
    }
}
