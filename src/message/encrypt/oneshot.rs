//! One-shot encrypt of a plaintext in memory: the message built in one
//! allocation of its exact size, frames sealed in place.

use std::io::Write;

use zeroize::Zeroize;

use super::seal::{footer_bytes, seal_single, FOOTER_ROOM};
use super::Encryptor;
use crate::crypto::{Signer, TAG_LEN};
use crate::error::{Error, LimitError, Result};
use crate::format::body::BodyPart;
use crate::format::frame::FINAL_HEADER_LEN;
use crate::message::buffer;
use crate::message::frames::{Frames, MIN_TASK_BYTES};

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
        let mut signer = self.signer;
        let sealed = seal_regular(
            &frames,
            signer.as_mut(),
            regular_pt,
            &mut out[body_start..final_start],
        )
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
        if let Some(mut signer) = signer {
            // The regular frames are hashed already (see `seal_regular`).
            signer.update(&out[final_start..end]);
            let footer = footer_bytes(signer)?;
            out[end..end + footer.len()].copy_from_slice(&footer);
            len += footer.len();
        }
        out.truncate(len);
        Ok(())
    }
}

/// Seals the regular frames of a one-shot message, and for a signed suite
/// hashes them: on several threads in runs of a quarter of
/// [`MIN_TASK_BYTES`] (a 1 MiB message in four), each run
/// hashed while the next one seals (the SHA-384 on one core, the AES-GCM on
/// another, the bytes hashed while they are still in cache); on one thread
/// or in a single run, sealed then hashed.
fn seal_regular(
    frames: &Frames<'_>,
    signer: Option<&mut Box<dyn Signer>>,
    plaintext: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let Some(signer) = signer else {
        return frames.seal(1, plaintext, out);
    };
    let run = (MIN_TASK_BYTES / 4 / frames.frame_length).max(1);
    if frames.threads <= 1 || plaintext.len() <= run * frames.frame_length {
        frames.seal(1, plaintext, out)?;
        signer.update(out);
        return Ok(());
    }
    let one = Frames {
        threads: 1,
        ..*frames
    };
    // On a pool thread throughout, where each `join` costs a hand-off
    // (from outside the pool, each would block on a round trip to it).
    rayon::scope(|_| {
        let mut previous: Option<&[u8]> = None;
        let runs = out
            .chunks_mut(run * frames.regular_len())
            .zip(plaintext.chunks(run * frames.frame_length));
        for (i, (sealed, plain)) in runs.enumerate() {
            let seq = u32::try_from(1 + i * run).map_err(|_| LimitError::TooManyFrames {
                max: u64::from(u32::MAX),
            })?;
            match previous.take() {
                Some(earlier) => rayon::join(|| signer.update(earlier), || one.seal(seq, plain, sealed)).1?,
                None => one.seal(seq, plain, sealed)?,
            }
            previous = Some(sealed);
        }
        if let Some(earlier) = previous {
            signer.update(earlier);
        }
        Ok(())
    })
}
