//! How the guest hands its results file to the host over the second serial port.
//!
//! The port is a byte pipe into a file on the host, so the bytes need a frame that tells a
//! complete transfer from a cut one (the guest crashed or was killed mid-way) and from noise
//! before it:
//!
//! ```text
//! NSCONFORM-RESULTS-BEGIN exit=1 length=48213 fnv1a64=8c3a...\n
//! <length bytes: the results file, as written>
//! \nNSCONFORM-RESULTS-END\n
//! ```
//!
//! `exit` is the exit status of `nsconform run` inside the guest, which the host passes on.
//! `fnv1a64` is the 64-bit FNV-1a hash of the payload, in hex. A guest that has no results
//! file (the run could not write one) sends an empty payload with its exit status.

/// Errors reading a frame back.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Nothing came over the port, or not the start of a frame.
    #[error("no results came back (no begin marker on the results port)")]
    NoBegin,
    /// The begin line is not in the expected form.
    #[error("the results header is garbled: {0:?}")]
    BadHeader(String),
    /// The transfer stopped before the end.
    #[error("the results were cut off after {got} of {expected} bytes")]
    Truncated {
        /// Bytes announced.
        expected: usize,
        /// Bytes present.
        got: usize,
    },
    /// The end marker is not where the length says.
    #[error("no end marker after the results")]
    NoEnd,
    /// The bytes changed on the way.
    #[error("the results are damaged (checksum {actual:016x}, expected {expected:016x})")]
    Checksum {
        /// The hash in the header.
        expected: u64,
        /// The hash of what arrived.
        actual: u64,
    },
}

const BEGIN: &str = "NSCONFORM-RESULTS-BEGIN";
const END: &[u8] = b"\nNSCONFORM-RESULTS-END\n";

/// What the guest sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    /// Exit status of the run inside the guest.
    pub(crate) exit: u8,
    /// The results file (empty when the run wrote none).
    pub(crate) payload: Vec<u8>,
}

/// The 64-bit FNV-1a hash.
pub(crate) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The bytes to send for `payload` and `exit`.
pub(crate) fn encode(exit: u8, payload: &[u8]) -> Vec<u8> {
    let header = format!(
        "{BEGIN} exit={exit} length={} fnv1a64={:016x}\n",
        payload.len(),
        fnv1a64(payload)
    );
    let mut out = Vec::with_capacity(header.len() + payload.len() + END.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(END);
    out
}

/// Find and check the frame in what the port delivered (anything before the begin marker,
/// such as a line the kernel printed there, is skipped).
pub(crate) fn decode(received: &[u8]) -> Result<Frame, FrameError> {
    let start = find(received, BEGIN.as_bytes()).ok_or(FrameError::NoBegin)?;
    let rest = &received[start..];
    let line_end = rest
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| FrameError::BadHeader(String::from_utf8_lossy(rest).into_owned()))?;
    let header = String::from_utf8_lossy(&rest[..line_end]).into_owned();
    let (exit, length, hash) =
        parse_header(&header).ok_or_else(|| FrameError::BadHeader(header.clone()))?;
    let body = &rest[line_end + 1..];
    if body.len() < length {
        return Err(FrameError::Truncated {
            expected: length,
            got: body.len(),
        });
    }
    let payload = &body[..length];
    if !body[length..].starts_with(END) {
        return Err(FrameError::NoEnd);
    }
    let actual = fnv1a64(payload);
    if actual != hash {
        return Err(FrameError::Checksum {
            expected: hash,
            actual,
        });
    }
    Ok(Frame {
        exit,
        payload: payload.to_vec(),
    })
}

/// `exit`, `length` and hash from `BEGIN exit=N length=N fnv1a64=HEX`.
fn parse_header(line: &str) -> Option<(u8, usize, u64)> {
    let mut words = line.split(' ');
    if words.next()? != BEGIN {
        return None;
    }
    let exit = words.next()?.strip_prefix("exit=")?.parse().ok()?;
    let length = words.next()?.strip_prefix("length=")?.parse().ok()?;
    let hash = u64::from_str_radix(words.next()?.strip_prefix("fnv1a64=")?, 16).ok()?;
    words.next().is_none().then_some((exit, length, hash))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_with_noise_before_it() {
        let payload = b"{\"schema\": \"nsconform-results/1\"}\n\x00\xff binary too";
        let mut sent = b"[    3.2] serial8250: ttyS1 at I/O 0x2f8\r\n".to_vec();
        sent.extend(encode(1, payload));
        let frame = decode(&sent).unwrap();
        assert_eq!(frame.exit, 1);
        assert_eq!(frame.payload, payload);
    }

    #[test]
    fn an_empty_payload_is_a_valid_frame() {
        let frame = decode(&encode(2, b"")).unwrap();
        assert_eq!((frame.exit, frame.payload.len()), (2, 0));
    }

    #[test]
    fn nothing_sent_is_no_begin() {
        assert_eq!(decode(b""), Err(FrameError::NoBegin));
        assert_eq!(decode(b"garbage\n"), Err(FrameError::NoBegin));
    }

    #[test]
    fn a_cut_transfer_is_truncated_or_has_no_end() {
        let sent = encode(0, b"0123456789");
        let header_len = sent.iter().position(|b| *b == b'\n').unwrap() + 1;
        assert_eq!(
            decode(&sent[..header_len + 4]),
            Err(FrameError::Truncated {
                expected: 10,
                got: 4
            })
        );
        assert_eq!(decode(&sent[..header_len + 12]), Err(FrameError::NoEnd));
        assert!(matches!(decode(&sent[..30]), Err(FrameError::BadHeader(_))));
    }

    #[test]
    fn a_changed_byte_fails_the_checksum() {
        let mut sent = encode(0, b"results");
        let at = sent.iter().position(|b| *b == b'\n').unwrap() + 2;
        sent[at] = b'X';
        assert!(matches!(decode(&sent), Err(FrameError::Checksum { .. })));
    }

    #[test]
    fn a_garbled_header_is_reported() {
        let sent = b"NSCONFORM-RESULTS-BEGIN exit=x length=1 fnv1a64=0\nA\nNSCONFORM-RESULTS-END\n";
        assert!(matches!(decode(sent), Err(FrameError::BadHeader(_))));
    }

    #[test]
    fn fnv1a64_matches_the_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
