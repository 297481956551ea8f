//! Sealing: a batch of regular frames (on whichever thread runs it), the
//! final frame or a non-framed body, and the footer.

use crate::crypto::{Aead, Signer, TAG_LEN};
use crate::error::{Error, Result};
use crate::format::body::{body_aad, BodyPart};
use crate::format::frame::{
    final_frame_header, non_framed_header, sequence_iv, FINAL_HEADER_LEN, NON_FRAMED_HEADER_LEN,
};
use crate::message::buffer::Staging;
use crate::message::frames::Frames;

/// Room for the footer: length and a DER ECDSA signature (at most 104 bytes).
pub(super) const FOOTER_ROOM: usize = 2 + 128;

/// Seals a final frame or a non-framed body into `out` (its header, the
/// ciphertext of `plaintext`, the tag).
pub(super) fn seal_single(
    aead: &dyn Aead,
    message_id: &[u8],
    part: BodyPart,
    seq: u32,
    plaintext: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let (head_len, iv) = match part {
        BodyPart::FinalFrame => {
            let len = u32::try_from(plaintext.len())
                .map_err(|_| Error::Internal("final frame longer than the frame length"))?;
            out[..FINAL_HEADER_LEN].copy_from_slice(&final_frame_header(seq, len));
            (FINAL_HEADER_LEN, sequence_iv(seq))
        }
        BodyPart::NonFramed => {
            out[..NON_FRAMED_HEADER_LEN].copy_from_slice(&non_framed_header(plaintext.len() as u64));
            (NON_FRAMED_HEADER_LEN, sequence_iv(1))
        }
        BodyPart::Frame => return Err(Error::Internal("a regular frame is sealed in a run")),
    };
    let (body, tag_out) = out[head_len..].split_at_mut(plaintext.len());
    if tag_out.len() != TAG_LEN {
        return Err(Error::Internal("frame of the wrong length"));
    }
    let mut aad = Vec::with_capacity(96);
    body_aad(&mut aad, message_id, part, seq, plaintext.len() as u64);
    let tag = aead
        .seal_to(&iv, &aad, plaintext, body)
        .map_err(|_| Error::Backend("encryption"))?;
    tag_out.copy_from_slice(&tag);
    Ok(())
}

/// The footer: signature length and DER signature.
pub(super) fn footer_bytes(signer: Box<dyn Signer>) -> Result<Vec<u8>> {
    let sig = signer.sign().map_err(|_| Error::Backend("signing"))?;
    let len = u16::try_from(sig.len()).map_err(|_| Error::Internal("signature too long"))?;
    if sig.len() + 2 > FOOTER_ROOM {
        return Err(Error::Internal("signature too long"));
    }
    let mut out = Vec::with_capacity(2 + sig.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&sig);
    Ok(out)
}

/// Seals a batch of whole frames into `sealed` and lets the signer absorb
/// the sealed bytes: what a batch costs, on whichever thread runs it.
pub(super) fn seal_batch(
    frames: Frames<'_>,
    seq: u32,
    plaintext: &[u8],
    sealed: &mut Staging,
    signer: Option<&mut Box<dyn Signer>>,
) -> Result<()> {
    let out = sealed.sized_mut(plaintext.len() / frames.frame_length * frames.regular_len());
    frames.seal(seq, plaintext, out)?;
    if let Some(s) = signer {
        s.update(sealed.as_slice());
    }
    Ok(())
}

/// A batch sealed in the background, with the buffers and signer it held.
/// For a signed suite the batch comes back not yet hashed: the next batch's
/// task hashes it while sealing its own frames, so the serial SHA-384 never
/// waits for the sealing.
pub(super) struct Sealed {
    pub(super) plaintext: Staging,
    pub(super) sealed: Staging,
    /// The batch before (signed suites), hashed by this task: written next.
    pub(super) hashed: Option<Staging>,
    pub(super) signer: Option<Box<dyn Signer>>,
    pub(super) result: Result<()>,
}

/// What [`EncryptWriter::collect`] hands back: the batch just sealed, and
/// for a signed suite the one before it, now hashed, to write first.
pub(super) struct Collected {
    pub(super) sealed: Staging,
    pub(super) earlier: Option<Staging>,
}
