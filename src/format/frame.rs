//! The layout of the message body, written and parsed: regular frames, the
//! final frame, a non-framed body and the footer. The one-shot decrypt
//! parses a message in memory with these functions; the streaming decrypt
//! parses the bytes it reads with them (through the same [`Reader`]).
//!
//! Spec: `data-format/message-body.md`, `message-footer.md`.
//! Regular frame: `seq u32 | IV 12 | ciphertext (frame length) | tag 16`.
//! Final frame: `FFFFFFFF | seq u32 | IV 12 | len u32 | ciphertext | tag 16`.
//! Non-framed: `IV 12 | len u64 | ciphertext | tag 16`.
//! Footer: `len u16 | DER signature`.

use super::reader::Reader;
use crate::error::FormatError;
use crate::suite::AlgorithmSuite;

/// Marks the final frame.
pub(crate) const FINAL_FRAME_MARKER: u32 = 0xFFFF_FFFF;
/// Largest non-framed plaintext (2^36 - 32 bytes, the GCM limit).
pub(crate) const MAX_NON_FRAMED_LEN: u64 = (1 << 36) - 32;
/// Largest footer signature accepted (DER ECDSA P-384 is at most 104 bytes).
pub(crate) const MAX_SIGNATURE_LEN: usize = 512;

const IV_LEN: usize = AlgorithmSuite::IV_LEN;
const TAG_LEN: usize = AlgorithmSuite::TAG_LEN;

/// Bytes before a regular frame's ciphertext: sequence number and IV.
pub(crate) const REGULAR_HEADER_LEN: usize = 4 + IV_LEN;
/// Bytes before the final frame's ciphertext: marker, sequence number, IV
/// and length.
pub(crate) const FINAL_HEADER_LEN: usize = 8 + IV_LEN + 4;
/// Bytes before a non-framed body's ciphertext: IV and length.
pub(crate) const NON_FRAMED_HEADER_LEN: usize = IV_LEN + 8;

/// Bytes one regular frame of `frame_length` plaintext bytes takes.
pub(crate) fn regular_len(frame_length: usize) -> usize {
    REGULAR_HEADER_LEN + frame_length + TAG_LEN
}

/// The IV every ESDK writer uses: the sequence number, zero-padded to 12 bytes.
pub(crate) fn sequence_iv(seq: u32) -> [u8; IV_LEN] {
    let mut iv = [0u8; IV_LEN];
    iv[IV_LEN - 4..].copy_from_slice(&seq.to_be_bytes());
    iv
}

/// Serializes a regular frame header (`seq | IV`).
pub(crate) fn regular_frame_header(seq: u32) -> [u8; REGULAR_HEADER_LEN] {
    let mut out = [0u8; REGULAR_HEADER_LEN];
    out[..4].copy_from_slice(&seq.to_be_bytes());
    out[4..].copy_from_slice(&sequence_iv(seq));
    out
}

/// Serializes a final frame header (`marker | seq | IV | len`).
pub(crate) fn final_frame_header(seq: u32, len: u32) -> [u8; FINAL_HEADER_LEN] {
    let mut out = [0u8; FINAL_HEADER_LEN];
    out[..4].copy_from_slice(&FINAL_FRAME_MARKER.to_be_bytes());
    out[4..8].copy_from_slice(&seq.to_be_bytes());
    out[8..8 + IV_LEN].copy_from_slice(&sequence_iv(seq));
    out[8 + IV_LEN..].copy_from_slice(&len.to_be_bytes());
    out
}

/// Serializes a non-framed body header (`IV | len u64`), IV for seq 1.
pub(crate) fn non_framed_header(len: u64) -> [u8; NON_FRAMED_HEADER_LEN] {
    let mut out = [0u8; NON_FRAMED_HEADER_LEN];
    out[..IV_LEN].copy_from_slice(&sequence_iv(1));
    out[IV_LEN..].copy_from_slice(&len.to_be_bytes());
    out
}

/// Where [`read_regular_frames`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The final frame's marker is next (not consumed).
    FinalFrame,
    /// The bytes left end inside the next frame (not consumed): the field
    /// they end in.
    Truncated(&'static str),
    /// The most frames asked for were read.
    Full,
}

/// A run of whole regular frames, back to back.
pub(crate) struct RegularFrames<'a> {
    /// The frames' bytes ([`regular_len`] each).
    pub(crate) bytes: &'a [u8],
    pub(crate) count: usize,
    pub(crate) stop: Stop,
}

/// Reads up to `max` whole regular frames numbered from `first_seq`,
/// stopping before the final frame's marker or before a frame cut short by
/// the end of the bytes. A frame out of order is an error; the reader is
/// then left at its start.
pub(crate) fn read_regular_frames<'a>(
    r: &mut Reader<'a>,
    first_seq: u32,
    frame_length: u32,
    max: usize,
) -> Result<RegularFrames<'a>, FormatError> {
    let slot = regular_len(frame_length as usize);
    let start = r.position();
    let mut count = 0usize;
    let stop = loop {
        if count == max {
            break Stop::Full;
        }
        let Ok(seq) = r.clone().u32("frame sequence number") else {
            break Stop::Truncated("frame sequence number");
        };
        if seq == FINAL_FRAME_MARKER {
            break Stop::FinalFrame;
        }
        if u64::from(seq) != u64::from(first_seq) + count as u64 {
            return Err(FormatError::Invalid {
                field: "frame sequence number",
                reason: "out of order",
            });
        }
        if r.remaining() < slot {
            let field = if r.remaining() < REGULAR_HEADER_LEN {
                "frame IV"
            } else {
                "frame"
            };
            break Stop::Truncated(field);
        }
        r.take(slot, "frame")?;
        count += 1;
    };
    Ok(RegularFrames {
        bytes: r.since(start),
        count,
        stop,
    })
}

/// A regular frame's IV, ciphertext and tag (`frame`: [`regular_len`]
/// bytes, as [`read_regular_frames`] found it); `None` if it is not.
#[inline]
pub(crate) fn split_regular_frame(
    frame: &[u8],
    frame_length: usize,
) -> Option<(&[u8; IV_LEN], &[u8], &[u8; TAG_LEN])> {
    let (iv, rest) = frame.get(4..)?.split_at_checked(IV_LEN)?;
    let (ciphertext, tag) = rest.split_at_checked(frame_length)?;
    Some((iv.try_into().ok()?, ciphertext, tag.try_into().ok()?))
}

/// The final frame's header, its marker first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FinalFrameHeader {
    pub(crate) seq: u32,
    pub(crate) iv: [u8; IV_LEN],
    /// Ciphertext bytes (the tag follows).
    pub(crate) len: u32,
}

/// Reads the final frame's header ([`FINAL_HEADER_LEN`] bytes): its
/// sequence number must be `seq` (the one after the regular frames), its
/// length at most `frame_length`.
pub(crate) fn read_final_frame_header(
    r: &mut Reader<'_>,
    seq: u64,
    frame_length: u32,
) -> Result<FinalFrameHeader, FormatError> {
    if r.u32("frame sequence number")? != FINAL_FRAME_MARKER {
        return Err(FormatError::Invalid {
            field: "frame sequence number",
            reason: "not the final frame's marker",
        });
    }
    let header = FinalFrameHeader {
        seq: r.u32("final frame sequence number")?,
        iv: r.array("final frame IV")?,
        len: r.u32("final frame length")?,
    };
    if u64::from(header.seq) != seq {
        return Err(FormatError::Invalid {
            field: "final frame sequence number",
            reason: "out of order",
        });
    }
    if header.len > frame_length {
        return Err(FormatError::Invalid {
            field: "final frame length",
            reason: "longer than the frame length",
        });
    }
    Ok(header)
}

/// A non-framed body's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NonFramedHeader {
    pub(crate) iv: [u8; IV_LEN],
    /// Ciphertext bytes (the tag follows), at most [`MAX_NON_FRAMED_LEN`].
    pub(crate) len: u64,
}

/// Reads a non-framed body's header ([`NON_FRAMED_HEADER_LEN`] bytes).
pub(crate) fn read_non_framed_header(r: &mut Reader<'_>) -> Result<NonFramedHeader, FormatError> {
    let iv = r.array("body IV")?;
    let len = u64::from_be_bytes(r.array("body length")?);
    if len > MAX_NON_FRAMED_LEN {
        return Err(FormatError::Invalid {
            field: "body length",
            reason: "longer than 2^36 - 32 bytes",
        });
    }
    Ok(NonFramedHeader { iv, len })
}

/// Reads the footer's signature length, at most [`MAX_SIGNATURE_LEN`].
pub(crate) fn read_signature_len(r: &mut Reader<'_>) -> Result<usize, FormatError> {
    let len = usize::from(r.u16("signature length")?);
    if len > MAX_SIGNATURE_LEN {
        return Err(FormatError::Invalid {
            field: "signature length",
            reason: "longer than any ECDSA signature",
        });
    }
    Ok(len)
}

/// Reads the footer: the signature.
pub(crate) fn read_footer<'a>(r: &mut Reader<'a>) -> Result<&'a [u8], FormatError> {
    let len = read_signature_len(r)?;
    r.take(len, "signature")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_headers() {
        assert_eq!(sequence_iv(258), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
        let f = final_frame_header(2, 5);
        assert_eq!(&f[..8], &[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 2]);
        assert_eq!(&f[20..], &[0, 0, 0, 5]);
        assert_eq!(regular_frame_header(1)[..4], [0, 0, 0, 1]);
        assert_eq!(non_framed_header(7)[12..], [0, 0, 0, 0, 0, 0, 0, 7]);
    }

    /// Two regular frames of 4 bytes (zero ciphertext and tag), then the
    /// final frame's header claiming `final_len` bytes.
    fn body(final_len: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for seq in 1..=2 {
            out.extend_from_slice(&regular_frame_header(seq));
            out.extend_from_slice(&[0; 4 + TAG_LEN]);
        }
        out.extend_from_slice(&final_frame_header(3, final_len));
        out
    }

    #[test]
    fn regular_frames_stop_at_the_final_marker_and_parse_it_back() {
        let bytes = body(4);
        let mut r = Reader::new(&bytes);
        let frames = read_regular_frames(&mut r, 1, 4, usize::MAX).unwrap();
        assert_eq!((frames.count, frames.stop), (2, Stop::FinalFrame));
        assert_eq!(frames.bytes.len(), 2 * regular_len(4));
        let (iv, ct, tag) = split_regular_frame(&frames.bytes[regular_len(4)..], 4).unwrap();
        assert_eq!((iv, ct.len(), tag.len()), (&sequence_iv(2), 4, TAG_LEN));
        let head = read_final_frame_header(&mut r, 3, 4).unwrap();
        assert_eq!((head.seq, head.iv, head.len), (3, sequence_iv(3), 4));
        assert_eq!(r.remaining(), 0);
        // A longer final frame than the frame length, or one out of order.
        let bytes = body(5);
        let mut r = Reader::new(&bytes[2 * regular_len(4)..]);
        assert!(read_final_frame_header(&mut r, 3, 4).is_err());
        let mut r = Reader::new(&bytes[2 * regular_len(4)..]);
        assert!(read_final_frame_header(&mut r, 4, 5).is_err());
    }

    #[test]
    fn a_scan_names_the_field_the_bytes_end_in_and_stops_at_max() {
        let bytes = body(4);
        let slot = regular_len(4);
        for (cut, field) in [(2, "frame sequence number"), (10, "frame IV"), (20, "frame")] {
            let mut r = Reader::new(&bytes[..slot + cut]);
            let frames = read_regular_frames(&mut r, 1, 4, usize::MAX).unwrap();
            assert_eq!((frames.count, frames.stop), (1, Stop::Truncated(field)));
            assert_eq!(r.position(), slot);
        }
        let mut r = Reader::new(&bytes);
        let frames = read_regular_frames(&mut r, 1, 4, 1).unwrap();
        assert_eq!((frames.count, frames.stop), (1, Stop::Full));
        // Out of order: an error, the reader left at the frame's start.
        let mut r = Reader::new(&bytes[slot..]);
        assert!(read_regular_frames(&mut r, 1, 4, usize::MAX).is_err());
        assert_eq!(r.position(), 0);
    }

    #[test]
    fn non_framed_and_footer_bounds() {
        let head = non_framed_header(7);
        let parsed = read_non_framed_header(&mut Reader::new(&head)).unwrap();
        assert_eq!((parsed.iv, parsed.len), (sequence_iv(1), 7));
        let too_long = non_framed_header(MAX_NON_FRAMED_LEN + 1);
        assert!(read_non_framed_header(&mut Reader::new(&too_long)).is_err());
        assert_eq!(
            read_non_framed_header(&mut Reader::new(&head[..15])),
            Err(FormatError::Truncated("body length"))
        );
        assert_eq!(read_footer(&mut Reader::new(&[0, 2, 9, 8])), Ok(&[9u8, 8][..]));
        assert_eq!(
            read_footer(&mut Reader::new(&[0, 2, 9])),
            Err(FormatError::Truncated("signature"))
        );
        let long = (MAX_SIGNATURE_LEN as u16 + 1).to_be_bytes();
        assert!(read_signature_len(&mut Reader::new(&long)).is_err());
    }
}
