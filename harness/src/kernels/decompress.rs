//! Decompressing a kernel payload (gzip, xz, zstd or lz4's legacy format) in memory.
//!
//! The decoders stop at the end of the first stream, so bytes after it (a size field, a
//! signature) do no harm. Output is capped, so a damaged or hostile image cannot fill
//! memory. lz4's legacy format, used by the kernel build (`lz4 -l`), is a 4-byte magic
//! number and then blocks, each a 4-byte little-endian length and an lz4 block of at most
//! 8 MiB once decompressed; lz4 libraries no longer read it, so it is done here.

use super::bzimage::Compression;
use std::io::Read;

/// At most this many bytes are produced (a vmlinux is 30 to 80 MiB).
pub(crate) const MAX_OUTPUT: usize = 1 << 30;

/// The magic number of lz4's legacy format, little-endian.
const LZ4_LEGACY_MAGIC: u32 = 0x184c_2102;

/// The largest decompressed block of lz4's legacy format.
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

/// Errors of decompression.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecompressError {
    /// The stream is damaged or not what its magic number says.
    #[error("{format} stream is damaged: {detail}")]
    Corrupt {
        /// The format.
        format: &'static str,
        /// What the decoder said.
        detail: String,
    },
    /// More than [`MAX_OUTPUT`] bytes.
    #[error("{format} stream decompresses to more than {MAX_OUTPUT} bytes")]
    TooLarge {
        /// The format.
        format: &'static str,
    },
}

/// Decompress one stream of the given format.
pub(crate) fn decompress(
    compression: Compression,
    data: &[u8],
) -> Result<Vec<u8>, DecompressError> {
    let format = compression.name();
    let corrupt = |detail: String| DecompressError::Corrupt { format, detail };
    let out = match compression {
        Compression::Gzip => read_capped(flate2::read::GzDecoder::new(data)),
        Compression::Xz => read_capped(liblzma::read::XzDecoder::new(data)),
        Compression::Zstd => {
            let decoder = ruzstd::decoding::StreamingDecoder::new(data)
                .map_err(|e| corrupt(e.to_string()))?;
            read_capped(decoder)
        }
        Compression::Lz4 => return lz4_legacy(data),
    };
    match out {
        Ok(bytes) if bytes.len() > MAX_OUTPUT => Err(DecompressError::TooLarge { format }),
        Ok(bytes) => Ok(bytes),
        Err(err) => Err(corrupt(err.to_string())),
    }
}

/// Read a decoder to its end, at most one byte past [`MAX_OUTPUT`].
fn read_capped(reader: impl Read) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    reader.take(MAX_OUTPUT as u64 + 1).read_to_end(&mut out)?;
    Ok(out)
}

/// Decompress lz4's legacy format, stopping at the end of the input or at the first length
/// that cannot be a block (the size the kernel build appends, or trailing bytes).
fn lz4_legacy(data: &[u8]) -> Result<Vec<u8>, DecompressError> {
    let format = Compression::Lz4.name();
    let corrupt = |detail: String| DecompressError::Corrupt { format, detail };
    let mut rest = match data.strip_prefix(&LZ4_LEGACY_MAGIC.to_le_bytes()) {
        Some(rest) => rest,
        None => return Err(corrupt("no legacy magic number".to_string())),
    };
    let mut out = Vec::new();
    while let Some((length, after)) = rest.split_first_chunk::<4>() {
        let length = u32::from_le_bytes(*length);
        if length == LZ4_LEGACY_MAGIC {
            rest = after; // concatenated streams
            continue;
        }
        let length = length as usize;
        if length == 0
            || length > after.len()
            || length > lz4_flex::block::get_maximum_output_size(LZ4_LEGACY_BLOCK)
        {
            break;
        }
        let (block, next) = after.split_at(length);
        let start = out.len();
        if start > MAX_OUTPUT {
            return Err(DecompressError::TooLarge { format });
        }
        out.resize(start + LZ4_LEGACY_BLOCK, 0);
        let written = lz4_flex::block::decompress_into(block, &mut out[start..])
            .map_err(|e| corrupt(format!("block at output offset {start}: {e}")))?;
        out.truncate(start + written);
        rest = next;
    }
    if out.is_empty() {
        return Err(corrupt("no block".to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Something that compresses but not to nothing, 20 MiB so lz4 needs three blocks.
    fn sample() -> Vec<u8> {
        (0..20u32 << 20)
            .map(|i| (i % 251) as u8 ^ (i >> 13) as u8)
            .collect()
    }

    /// The same data in lz4's legacy format, as `lz4 -l` writes it.
    fn lz4_legacy_stream(data: &[u8]) -> Vec<u8> {
        let mut out = LZ4_LEGACY_MAGIC.to_le_bytes().to_vec();
        for chunk in data.chunks(LZ4_LEGACY_BLOCK) {
            let block = lz4_flex::block::compress(chunk);
            out.extend_from_slice(&u32::try_from(block.len()).expect("fits").to_le_bytes());
            out.extend_from_slice(&block);
        }
        out
    }

    #[test]
    fn lz4_legacy_round_trips_and_ignores_the_appended_size() {
        let data = sample();
        let mut stream = lz4_legacy_stream(&data);
        stream.extend_from_slice(&u32::try_from(data.len()).expect("fits").to_le_bytes());
        assert_eq!(
            decompress(Compression::Lz4, &stream).expect("decompresses"),
            data
        );
    }

    #[test]
    fn gzip_round_trips() {
        let data = sample();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&data).expect("compress");
        let mut stream = encoder.finish().expect("finish");
        stream.extend_from_slice(b"trailing");
        assert_eq!(
            decompress(Compression::Gzip, &stream).expect("decompresses"),
            data
        );
    }

    #[test]
    fn xz_round_trips() {
        let data = sample();
        let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 0);
        encoder.write_all(&data).expect("compress");
        let stream = encoder.finish().expect("finish");
        assert_eq!(
            decompress(Compression::Xz, &stream).expect("decompresses"),
            data
        );
    }

    #[test]
    fn zstd_round_trips_and_ignores_the_appended_size() {
        let data = sample();
        let mut stream = ruzstd::encoding::compress_to_vec(
            &data[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        stream.extend_from_slice(&u32::try_from(data.len()).expect("fits").to_le_bytes());
        assert_eq!(
            decompress(Compression::Zstd, &stream).expect("decompresses"),
            data
        );
    }

    #[test]
    fn damaged_streams_are_errors() {
        let junk = [
            0x02, 0x21, 0x4c, 0x18, 8, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ];
        assert!(matches!(
            decompress(Compression::Lz4, &junk),
            Err(DecompressError::Corrupt { .. })
        ));
        let junk = [0xfd, b'7', b'z', b'X', b'Z', 0x00, 1, 2, 3];
        assert!(matches!(
            decompress(Compression::Xz, &junk),
            Err(DecompressError::Corrupt { .. })
        ));
        let junk = [0x28, 0xb5, 0x2f, 0xfd, 0xff];
        assert!(matches!(
            decompress(Compression::Zstd, &junk),
            Err(DecompressError::Corrupt { .. })
        ));
    }
}
