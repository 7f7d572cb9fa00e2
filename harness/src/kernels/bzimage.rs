//! Finding the compressed kernel inside a `vmlinuz` (an x86 bzImage).
//!
//! A bzImage is real-mode setup code followed by a small decompressor and, inside it, the
//! compressed `vmlinux` ELF (the "payload"). Since boot protocol 2.08 the setup header says
//! where the payload is (`payload_offset` and `payload_length`, counted from the start of
//! the protected-mode code, which follows `setup_sects + 1` sectors of 512 bytes). The
//! kernel build appends the uncompressed size as 4 little-endian bytes to the stream; for
//! gzip those bytes are gzip's own size field, for the other formats they are extra.
//!
//! When there is no usable header, the image is searched for the magic numbers of the
//! formats instead (as the kernel's `scripts/extract-vmlinux` does); each match is a
//! candidate that the caller tries in turn, keeping the first that decompresses to an ELF.

/// Errors of the payload search.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PayloadError {
    /// Neither the header nor a search found a compressed stream.
    #[error("no compressed kernel found in the image (no bzImage header, no known magic number)")]
    NotFound,
}

/// A compression format the kernel build can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    /// `CONFIG_KERNEL_GZIP`.
    Gzip,
    /// `CONFIG_KERNEL_XZ`.
    Xz,
    /// `CONFIG_KERNEL_ZSTD` (Debian 7.x).
    Zstd,
    /// `CONFIG_KERNEL_LZ4`, in lz4's legacy frame format (Debian 5.10 to 6.12).
    Lz4,
}

impl Compression {
    /// The format's name, as in `CONFIG_KERNEL_*`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
        }
    }

    /// The magic number a stream of this format starts with.
    fn magic(self) -> &'static [u8] {
        match self {
            Compression::Gzip => &[0x1f, 0x8b, 0x08],
            Compression::Xz => &[0xfd, b'7', b'z', b'X', b'Z', 0x00],
            Compression::Zstd => &[0x28, 0xb5, 0x2f, 0xfd],
            Compression::Lz4 => &[0x02, 0x21, 0x4c, 0x18],
        }
    }

    /// The format whose magic number starts `data`, if any.
    fn detect(data: &[u8]) -> Option<Compression> {
        ALL.into_iter().find(|c| data.starts_with(c.magic()))
    }
}

/// Every supported format.
const ALL: [Compression; 4] = [
    Compression::Gzip,
    Compression::Xz,
    Compression::Zstd,
    Compression::Lz4,
];

/// At most this many magic-number matches are returned by the search.
const MAX_CANDIDATES: usize = 16;

/// A compressed stream found in an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Payload<'a> {
    /// Its format.
    pub(crate) compression: Compression,
    /// Offset in the image.
    pub(crate) offset: usize,
    /// The stream (without the appended size, when the header gave the length).
    pub(crate) data: &'a [u8],
    /// The uncompressed size the build appended, when the header gave the length.
    pub(crate) size: Option<u32>,
}

/// The candidate payloads of an image, best first: the one the header points at, then
/// every magic-number match in order of position.
pub(crate) fn find_payloads(image: &[u8]) -> Result<Vec<Payload<'_>>, PayloadError> {
    let mut out: Vec<Payload<'_>> = from_header(image).into_iter().collect();
    let mut offset = 0;
    while out.len() < MAX_CANDIDATES && offset < image.len() {
        let rest = &image[offset..];
        let Some(compression) = Compression::detect(rest) else {
            offset += 1;
            continue;
        };
        if !out.iter().any(|p| p.offset == offset) {
            out.push(Payload {
                compression,
                offset,
                data: rest,
                size: None,
            });
        }
        offset += 1;
    }
    if out.is_empty() {
        return Err(PayloadError::NotFound);
    }
    Ok(out)
}

/// The payload the setup header points at (boot protocol 2.08 and later).
fn from_header(image: &[u8]) -> Option<Payload<'_>> {
    if image.get(0x202..0x206)? != b"HdrS" || le16(image, 0x206)? < 0x0208 {
        return None;
    }
    let setup_sects = match *image.get(0x1f1)? {
        0 => 4,
        n => usize::from(n),
    };
    let offset = (setup_sects + 1) * 512 + usize::try_from(le32(image, 0x248)?).ok()?;
    let length = usize::try_from(le32(image, 0x24c)?).ok()?;
    let stream = image.get(offset..offset.checked_add(length)?)?;
    let compression = Compression::detect(stream)?;
    let (body, trailer) = stream.split_at(stream.len().checked_sub(4)?);
    let size = Some(u32::from_le_bytes(trailer.try_into().ok()?));
    let data = if compression == Compression::Gzip {
        stream
    } else {
        body
    };
    Some(Payload {
        compression,
        offset,
        data,
        size,
    })
}

/// A little-endian u16 at `at`.
fn le16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

/// A little-endian u32 at `at`.
fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A synthetic bzImage: one setup sector after the boot sector, 100 bytes of
    /// "decompressor", the stream, its size, and some trailing bytes (a signature, say).
    pub(crate) fn synthetic_bzimage(stream: &[u8], size: u32, with_size: bool) -> Vec<u8> {
        let mut image = vec![0u8; 2 * 512];
        image[0x1f1] = 1;
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        let length = stream.len() + if with_size { 4 } else { 0 };
        image[0x248..0x24c].copy_from_slice(&100u32.to_le_bytes());
        image[0x24c..0x250].copy_from_slice(&u32::try_from(length).expect("small").to_le_bytes());
        image.extend_from_slice(&[0x90; 100]);
        image.extend_from_slice(stream);
        if with_size {
            image.extend_from_slice(&size.to_le_bytes());
        }
        image.extend_from_slice(b"~Module signature appended~\n");
        image
    }

    #[test]
    fn the_header_gives_the_stream_without_its_size() {
        let stream = [&[0x28, 0xb5, 0x2f, 0xfd][..], b"zstd frame"].concat();
        let image = synthetic_bzimage(&stream, 12345, true);
        let payloads = find_payloads(&image).expect("found");
        let first = &payloads[0];
        assert_eq!(first.compression, Compression::Zstd);
        assert_eq!(first.offset, 2 * 512 + 100);
        assert_eq!(first.data, &stream[..]);
        assert_eq!(first.size, Some(12345));
        // The same stream is not listed twice by the search.
        assert!(payloads[1..].iter().all(|p| p.offset != first.offset));
    }

    #[test]
    fn gzip_keeps_its_size_field() {
        let stream = [&[0x1f, 0x8b, 0x08, 0x00][..], b"deflate"].concat();
        let image = synthetic_bzimage(&stream, 7, true);
        let first = &find_payloads(&image).expect("found")[0];
        assert_eq!(first.compression, Compression::Gzip);
        assert_eq!(first.data, [&stream[..], &7u32.to_le_bytes()].concat());
    }

    #[test]
    fn without_a_header_the_magic_numbers_are_searched() {
        let mut image = vec![0u8; 300];
        image.extend_from_slice(&[0xfd, b'7', b'z', b'X', b'Z', 0x00, 1, 2, 3]);
        image.extend_from_slice(&[0x02, 0x21, 0x4c, 0x18, 9]);
        let payloads = find_payloads(&image).expect("found");
        let found: Vec<(Compression, usize)> =
            payloads.iter().map(|p| (p.compression, p.offset)).collect();
        assert_eq!(found, [(Compression::Xz, 300), (Compression::Lz4, 309)]);
        assert_eq!(payloads[0].size, None);
        assert_eq!(payloads[0].data.len(), 14);
    }

    #[test]
    fn a_header_pointing_outside_the_image_falls_back_to_the_search() {
        let stream = [&[0x02, 0x21, 0x4c, 0x18][..], b"lz4"].concat();
        let mut image = synthetic_bzimage(&stream, 1, true);
        image[0x24c..0x250].copy_from_slice(&u32::MAX.to_le_bytes());
        let payloads = find_payloads(&image).expect("found");
        assert_eq!(payloads[0].compression, Compression::Lz4);
        assert_eq!(payloads[0].size, None);
    }

    #[test]
    fn nothing_compressed_is_an_error() {
        assert!(matches!(
            find_payloads(&[0u8; 4096]),
            Err(PayloadError::NotFound)
        ));
    }
}
