//! The message body's AAD: what each frame (or the non-framed block)
//! authenticates besides its ciphertext. The body's layout is in
//! `frame.rs`.
//!
//! Spec: `data-format/message-body-aad.md`.

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
}
