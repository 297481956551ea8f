//! Message body: frames or a single non-framed block, and the footer.
//!
//! Spec: `data-format/message-body.md`, `message-body-aad.md`,
//! `message-footer.md`.
//! Regular frame: `seq u32 | IV 12 | ciphertext (frame length) | tag 16`.
//! Final frame: `FFFFFFFF | seq u32 | IV 12 | len u32 | ciphertext | tag 16`.
//! Non-framed: `IV 12 | len u64 | ciphertext | tag 16`.
//! Footer: `len u16 | DER signature`.

use crate::suite::AlgorithmSuite;

/// Marks the final frame.
pub(crate) const FINAL_FRAME_MARKER: u32 = 0xFFFF_FFFF;
/// Largest non-framed plaintext (2^36 - 32 bytes, the GCM limit).
pub(crate) const MAX_NON_FRAMED_LEN: u64 = (1 << 36) - 32;

const IV_LEN: usize = AlgorithmSuite::IV_LEN;

/// Which part of the body an AAD is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyPart {
    NonFramed,
    Frame,
    FinalFrame,
}

impl BodyPart {
    fn content_string(self) -> &'static [u8] {
        match self {
            BodyPart::NonFramed => b"AWSKMSEncryptionClient Single Block",
            BodyPart::Frame => b"AWSKMSEncryptionClient Frame",
            BodyPart::FinalFrame => b"AWSKMSEncryptionClient Final Frame",
        }
    }
}

/// Writes the body AAD into `out` (cleared first):
/// `message id | content string | seq u32 | plaintext length u64`.
pub(crate) fn body_aad(out: &mut Vec<u8>, message_id: &[u8], part: BodyPart, seq: u32, len: u64) {
    out.clear();
    out.extend_from_slice(message_id);
    out.extend_from_slice(part.content_string());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
}

/// The IV every ESDK writer uses: the sequence number, zero-padded to 12 bytes.
pub(crate) fn sequence_iv(seq: u32) -> [u8; IV_LEN] {
    let mut iv = [0u8; IV_LEN];
    iv[IV_LEN - 4..].copy_from_slice(&seq.to_be_bytes());
    iv
}

/// Serializes a regular frame header (`seq | IV`).
pub(crate) fn regular_frame_header(seq: u32) -> [u8; 4 + IV_LEN] {
    let mut out = [0u8; 4 + IV_LEN];
    out[..4].copy_from_slice(&seq.to_be_bytes());
    out[4..].copy_from_slice(&sequence_iv(seq));
    out
}

/// Serializes a final frame header (`marker | seq | IV | len`).
pub(crate) fn final_frame_header(seq: u32, len: u32) -> [u8; 8 + IV_LEN + 4] {
    let mut out = [0u8; 8 + IV_LEN + 4];
    out[..4].copy_from_slice(&FINAL_FRAME_MARKER.to_be_bytes());
    out[4..8].copy_from_slice(&seq.to_be_bytes());
    out[8..8 + IV_LEN].copy_from_slice(&sequence_iv(seq));
    out[8 + IV_LEN..].copy_from_slice(&len.to_be_bytes());
    out
}

/// Serializes a non-framed body header (`IV | len u64`), IV for seq 1.
pub(crate) fn non_framed_header(len: u64) -> [u8; IV_LEN + 8] {
    let mut out = [0u8; IV_LEN + 8];
    out[..IV_LEN].copy_from_slice(&sequence_iv(1));
    out[IV_LEN..].copy_from_slice(&len.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_layout() {
        let mut aad = Vec::new();
        body_aad(&mut aad, &[1; 16], BodyPart::FinalFrame, 3, 10);
        let mut want = vec![1u8; 16];
        want.extend_from_slice(b"AWSKMSEncryptionClient Final Frame");
        want.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 10]);
        assert_eq!(aad, want);
    }

    #[test]
    fn frame_headers() {
        assert_eq!(sequence_iv(258), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
        let f = final_frame_header(2, 5);
        assert_eq!(&f[..8], &[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 2]);
        assert_eq!(&f[20..], &[0, 0, 0, 5]);
        assert_eq!(regular_frame_header(1)[..4], [0, 0, 0, 1]);
        assert_eq!(non_framed_header(7)[12..], [0, 0, 0, 0, 0, 0, 0, 7]);
    }
}
