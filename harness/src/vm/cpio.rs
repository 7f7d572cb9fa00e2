//! A writer for the "newc" cpio format, the format the kernel unpacks an initramfs from.
//!
//! Each entry is a 110-byte ASCII header (the magic `070701` and thirteen 8-digit hex
//! fields), the path without a leading `/` and with a NUL, padding to a multiple of four
//! bytes, then the contents, padded the same way. The archive ends with an entry named
//! `TRAILER!!!`. Entries must come parents first: the kernel does not create missing
//! directories. The archive is written uncompressed (under TCG the kernel's decompression
//! would cost more than reading the larger file does).

use std::io::{self, Read, Write};

/// Errors writing an archive.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CpioError {
    /// Writing failed.
    #[error("writing the archive: {0}")]
    Io(#[from] io::Error),
    /// A file's contents were shorter or longer than announced.
    #[error("{path}: expected {expected} bytes, got {actual} (did it change while being read?)")]
    SizeChanged {
        /// The entry.
        path: String,
        /// The size in the header.
        expected: u64,
        /// The bytes actually copied.
        actual: u64,
    },
    /// A size or number does not fit the format's 32-bit fields.
    #[error("{0}: too large for a cpio archive")]
    TooLarge(String),
}

/// File type bits of `st_mode`.
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// Streams a newc archive to `W`.
pub(crate) struct CpioWriter<W: Write> {
    out: W,
    next_ino: u32,
    written: u64,
}

/// The fields of one header that differ between entries.
struct Header<'a> {
    path: &'a str,
    mode: u32,
    nlink: u32,
    size: u64,
    rdev: (u32, u32),
}

impl<W: Write> CpioWriter<W> {
    /// A writer that appends entries to `out`.
    pub(crate) fn new(out: W) -> CpioWriter<W> {
        CpioWriter {
            out,
            next_ino: 1,
            written: 0,
        }
    }

    /// A directory (`path` without a leading `/`), permissions from `perm`.
    pub(crate) fn dir(&mut self, path: &str, perm: u32) -> Result<(), CpioError> {
        self.header(&Header {
            path,
            mode: S_IFDIR | (perm & 0o7777),
            nlink: 2,
            size: 0,
            rdev: (0, 0),
        })
    }

    /// A regular file with these contents.
    pub(crate) fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> Result<(), CpioError> {
        self.file_from(path, perm, data.len() as u64, data)
    }

    /// A regular file of `size` bytes read from `contents` (which must give exactly that).
    pub(crate) fn file_from(
        &mut self,
        path: &str,
        perm: u32,
        size: u64,
        contents: impl Read,
    ) -> Result<(), CpioError> {
        self.header(&Header {
            path,
            mode: S_IFREG | (perm & 0o7777),
            nlink: 1,
            size,
            rdev: (0, 0),
        })?;
        let copied = io::copy(&mut contents.take(size), &mut self.out)?;
        if copied != size {
            return Err(CpioError::SizeChanged {
                path: path.to_string(),
                expected: size,
                actual: copied,
            });
        }
        self.written += copied;
        self.pad()
    }

    /// A symbolic link to `target`.
    pub(crate) fn symlink(&mut self, path: &str, target: &str) -> Result<(), CpioError> {
        self.header(&Header {
            path,
            mode: S_IFLNK | 0o777,
            nlink: 1,
            size: target.len() as u64,
            rdev: (0, 0),
        })?;
        self.out.write_all(target.as_bytes())?;
        self.written += target.len() as u64;
        self.pad()
    }

    /// A character device node (`/dev/console` must exist before `/dev` is mounted, or the
    /// kernel starts init without standard input and output).
    pub(crate) fn char_device(
        &mut self,
        path: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioError> {
        self.header(&Header {
            path,
            mode: S_IFCHR | (perm & 0o7777),
            nlink: 1,
            size: 0,
            rdev: (major, minor),
        })
    }

    /// Write the trailer and hand back the output and the archive's size in bytes.
    pub(crate) fn finish(mut self) -> Result<(W, u64), CpioError> {
        self.header(&Header {
            path: "TRAILER!!!",
            mode: 0,
            nlink: 1,
            size: 0,
            rdev: (0, 0),
        })?;
        self.out.flush()?;
        Ok((self.out, self.written))
    }

    fn header(&mut self, header: &Header<'_>) -> Result<(), CpioError> {
        let size =
            u32::try_from(header.size).map_err(|_| CpioError::TooLarge(header.path.to_string()))?;
        let ino = self.next_ino;
        self.next_ino += 1;
        let name_size = header.path.len() + 1;
        let fields = [
            ino,
            header.mode,
            0, // uid: root
            0, // gid: root
            header.nlink,
            0, // mtime: fixed, so the same inputs give the same archive
            size,
            0, // dev major
            0, // dev minor
            header.rdev.0,
            header.rdev.1,
            name_size as u32,
            0, // check
        ];
        let mut text = String::with_capacity(110 + name_size);
        text.push_str("070701");
        for field in fields {
            text.push_str(&format!("{field:08X}"));
        }
        text.push_str(header.path);
        text.push('\0');
        self.out.write_all(text.as_bytes())?;
        self.written += text.len() as u64;
        self.pad()
    }

    /// Pad what was written so far to a multiple of four bytes.
    fn pad(&mut self) -> Result<(), CpioError> {
        let padding = (4 - (self.written % 4) as usize) % 4;
        self.out.write_all(&[0; 3][..padding])?;
        self.written += padding as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry read back: path, mode, (rdev major, minor), contents.
    type Entry = (String, u32, (u32, u32), Vec<u8>);

    /// Read back an archive, trailer excluded.
    fn entries(archive: &[u8]) -> Vec<Entry> {
        let mut found = Vec::new();
        let mut at = 0;
        loop {
            assert_eq!(&archive[at..at + 6], b"070701", "magic at {at}");
            let field = |i: usize| {
                let start = at + 6 + i * 8;
                let text = std::str::from_utf8(&archive[start..start + 8]).unwrap();
                u32::from_str_radix(text, 16).unwrap()
            };
            let (mode, size, rdev, name_size) = (
                field(1),
                field(6) as usize,
                (field(9), field(10)),
                field(11) as usize,
            );
            let name_start = at + 110;
            let name = std::str::from_utf8(&archive[name_start..name_start + name_size - 1])
                .unwrap()
                .to_string();
            assert_eq!(archive[name_start + name_size - 1], 0, "NUL after {name}");
            let data_start = (name_start + name_size).next_multiple_of(4);
            let data = archive[data_start..data_start + size].to_vec();
            at = (data_start + size).next_multiple_of(4);
            if name == "TRAILER!!!" {
                assert_eq!(at, archive.len(), "nothing after the trailer");
                return found;
            }
            found.push((name, mode, rdev, data));
        }
    }

    #[test]
    fn entries_round_trip_with_types_and_padding() {
        let mut writer = CpioWriter::new(Vec::new());
        writer.dir("usr", 0o755).unwrap();
        writer.file("usr/a", 0o644, b"hello").unwrap();
        writer.file("usr/empty", 0o600, b"").unwrap();
        writer.symlink("bin", "usr/bin").unwrap();
        writer.char_device("dev/console", 0o600, 5, 1).unwrap();
        let (archive, size) = writer.finish().unwrap();
        assert_eq!(size as usize, archive.len());
        assert_eq!(archive.len() % 4, 0);
        let found = entries(&archive);
        let names: Vec<&str> = found.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["usr", "usr/a", "usr/empty", "bin", "dev/console"]);
        assert_eq!(found[0].1, 0o040_755);
        assert_eq!(
            (found[1].1, found[1].3.as_slice()),
            (0o100_644, &b"hello"[..])
        );
        assert_eq!(found[3].1, 0o120_777);
        assert_eq!(found[3].3, b"usr/bin");
        assert_eq!((found[4].1, found[4].2), (0o020_600, (5, 1)));
    }

    #[test]
    fn header_is_110_bytes_of_hex_fields() {
        let mut writer = CpioWriter::new(Vec::new());
        writer.file("x", 0o755, b"ab").unwrap();
        let (archive, _) = writer.finish().unwrap();
        // 110 header + "x\0" = 112 (already aligned), then 2 bytes of data and 2 of padding.
        assert_eq!(&archive[..14], b"07070100000001");
        assert_eq!(&archive[110..112], b"x\0");
        assert_eq!(&archive[112..116], b"ab\0\0");
        assert_eq!(&archive[116..122], b"070701");
    }

    #[test]
    fn a_file_shorter_than_announced_is_an_error() {
        let mut writer = CpioWriter::new(Vec::new());
        let err = writer.file_from("f", 0o644, 10, &b"abc"[..]).unwrap_err();
        assert!(
            matches!(
                err,
                CpioError::SizeChanged {
                    expected: 10,
                    actual: 3,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn the_same_entries_give_the_same_bytes() {
        let build = || {
            let mut writer = CpioWriter::new(Vec::new());
            writer.dir("d", 0o755).unwrap();
            writer.file("d/f", 0o644, b"data").unwrap();
            writer.finish().unwrap().0
        };
        assert_eq!(build(), build());
    }
}
