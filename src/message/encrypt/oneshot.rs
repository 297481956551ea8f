//! One-shot encrypt of a plaintext in memory: the message built in one
//! allocation of its exact size, frames sealed in place.

use std::io::Write;

use zeroize::Zeroize;

use super::seal::{footer_bytes, seal_single, FOOTER_ROOM};
use super::Encryptor;
use crate::crypto::TAG_LEN;
use crate::error::{Error, LimitError, Result};
use crate::format::body::BodyPart;
use crate::format::frame::FINAL_HEADER_LEN;
use crate::message::buffer;
use crate::message::frames::Frames;

impl Encryptor {
    /// Encrypts a whole plaintext held in memory: the message is built in
    /// one allocation of its exact size, each frame's plaintext copied into
    /// place and sealed there, on several threads for large inputs.
    #[cfg(test)]
    pub(crate) fn seal_all(self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.seal_into(plaintext, &mut out)?;
        Ok(out)
    }

    /// [`Encryptor::seal_all`] into `out`, replacing its contents and
    /// reusing its allocation when it is large enough.
    pub(crate) fn seal_into(self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if let Some(declared) = self.plaintext_bound {
            if plaintext.len() as u64 > declared {
                return Err(LimitError::PlaintextLengthBound { declared }.into());
            }
        }
        let f = self.frame_length as usize;
        if f == 0 {
            out.clear();
            let mut writer = self.into_writer(out).map_err(Error::from_io)?;
            writer.write_all(plaintext).map_err(Error::from_io)?;
            writer.finish().map_err(Error::from_io)?;
            return Ok(());
        }
        let frames = Frames {
            aead: self.aead.as_ref(),
            message_id: &self.message_id,
            frame_length: f,
            threads: self.threads,
            pieces: 1,
        };
        // A plaintext of whole frames ends with an empty final frame, as
        // the Python reference writes it (the spec allows both; Python's
        // 3.x decoder, the one aws-encryption-cli runs, rejects a full one).
        let regular = plaintext.len() / f;
        let (regular_pt, final_pt) = plaintext.split_at(regular * f);
        let final_seq = u32::try_from(regular + 1).map_err(|_| LimitError::TooManyFrames {
            max: u64::from(u32::MAX),
        })?;
        let header_len = self.header.len();
        let body_start = header_len;
        let final_start = body_start + regular * frames.regular_len();
        let end = final_start + FINAL_HEADER_LEN + final_pt.len() + TAG_LEN;
        let footer = if self.signer.is_some() { FOOTER_ROOM } else { 0 };
        // Fresh pages (touched first by the thread that seals them) or the
        // reused buffer, not cleared: every byte up to `end` is overwritten.
        buffer::sized(out, end + footer);
        out[..header_len].copy_from_slice(&self.header);
        let sealed = frames
            .seal(1, regular_pt, &mut out[body_start..final_start])
            .and_then(|()| {
                seal_single(
                    self.aead.as_ref(),
                    &self.message_id,
                    BodyPart::FinalFrame,
                    final_seq,
                    final_pt,
                    &mut out[final_start..end],
                )
            });
        if let Err(e) = sealed {
            // Plaintext may sit in frames that were not sealed.
            out.zeroize();
            return Err(e);
        }
        let mut len = end;
        if let Some(mut signer) = self.signer {
            signer.update(&out[header_len..end]);
            let footer = footer_bytes(signer)?;
            out[end..end + footer.len()].copy_from_slice(&footer);
            len += footer.len();
        }
        out.truncate(len);
        Ok(())
    }
}
