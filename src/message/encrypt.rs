//! Encrypt: materials, header, frames, footer.
//!
//! Spec: `client-apis/encrypt.md`. Header bytes and each frame are written
//! only once complete; the signer absorbs every byte before the footer.

use std::io::{self, Write};

use zeroize::Zeroizing;

use super::buffer;
use crate::config::Config;
use crate::crypto::{derive_keys, Aead, Signer, TAG_LEN};
use crate::error::{Error, LimitError, Result};
use crate::format::body::{
    body_aad, final_frame_header, non_framed_header, regular_frame_header, BodyPart, MAX_NON_FRAMED_LEN,
};
use crate::format::header::{ContentType, HeaderAuth, HeaderBody};
use crate::format::EncryptionContext;
use crate::materials::{encryption_materials, Keyring};
use crate::suite::AlgorithmSuite;

/// Room in front of the plaintext for the largest frame header
/// (final frame: marker, seq, IV, length), so a frame leaves in one write.
const HEADROOM: usize = 4 + 4 + 12 + 4;

/// A message whose materials are ready and whose header is built. Turn it
/// into an [`EncryptWriter`] with [`Encryptor::wrap_output`].
pub struct Encryptor {
    suite: AlgorithmSuite,
    frame_length: u32,
    message_id: Vec<u8>,
    aead: Box<dyn Aead>,
    signer: Option<Box<dyn Signer>>,
    header: Vec<u8>,
    context: EncryptionContext,
    max_body_size: u64,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("suite", &self.suite)
            .field("frame_length", &self.frame_length)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// Gets the data key from `keyring`, derives the message keys and builds
    /// the header for a message under `context`.
    ///
    /// # Errors
    /// [`Error::Config`] for a reserved context key or a suite the policy
    /// forbids; keyring errors; [`Error::Limit`] when the keyrings produce
    /// more encrypted data keys than allowed.
    pub async fn new(config: &Config, keyring: &dyn Keyring, context: &EncryptionContext) -> Result<Self> {
        let suite = config.suite();
        config.commitment_policy.check_encrypt(suite)?;
        let backend = config.backend;
        let materials =
            encryption_materials(keyring, suite, context, backend, config.max_encrypted_data_keys).await?;
        let mut message_id = vec![0u8; suite.message_id_len()];
        backend.fill_random(&mut message_id)?;
        let keys = derive_keys(backend, suite, materials.data_key.expose_secret(), &message_id)
            .map_err(|_| Error::Config("key derivation failed".into()))?;
        let body = HeaderBody {
            suite,
            message_id: message_id.clone(),
            context: materials.context.clone(),
            edks: materials.edks,
            content_type: if config.frame_length == 0 {
                ContentType::NonFramed
            } else {
                ContentType::Framed
            },
            frame_length: config.frame_length,
            suite_data: keys.commitment.as_deref().copied(),
        };
        let mut header = body.serialize()?;
        // Header authentication: AES-GCM over no plaintext, AAD = header body.
        let iv = [0u8; 12];
        let tag = keys
            .aead
            .seal_in_place(&iv, &header, &mut [])
            .map_err(|_| Error::Config("header authentication failed".into()))?;
        HeaderAuth { iv, tag }.serialize(suite.message_version(), &mut header);
        let mut signer = materials.signer;
        if let Some(s) = signer.as_mut() {
            s.update(&header);
        }
        Ok(Encryptor {
            suite,
            frame_length: config.frame_length,
            message_id,
            aead: keys.aead,
            signer,
            header,
            context: materials.context,
            max_body_size: config.max_body_size,
        })
    }

    /// The suite the message is written with.
    pub fn suite(&self) -> AlgorithmSuite {
        self.suite
    }

    /// The full encryption context written to the header (including
    /// `aws-crypto-public-key` for signed suites).
    pub fn encryption_context(&self) -> &EncryptionContext {
        &self.context
    }

    /// Writes the header to `output` and returns the writer for the
    /// plaintext.
    ///
    /// # Errors
    /// I/O errors writing the header.
    pub fn wrap_output<W: Write>(self, mut output: W) -> io::Result<EncryptWriter<W>> {
        output.write_all(&self.header)?;
        let mut buf = Zeroizing::new(Vec::new());
        buf.resize(HEADROOM, 0);
        Ok(EncryptWriter {
            output,
            suite: self.suite,
            frame_length: self.frame_length as usize,
            message_id: self.message_id,
            aead: self.aead,
            signer: self.signer,
            buf,
            seq: 1,
            aad: Vec::with_capacity(96),
            max_body_size: self.max_body_size,
            poisoned: false,
        })
    }
}

/// Writes plaintext as an ESDK message body.
///
/// You **MUST** call [`EncryptWriter::finish`] when done: it writes the final
/// frame and, for signed suites, the footer. Without it the message is
/// truncated and will not decrypt.
pub struct EncryptWriter<W: Write> {
    output: W,
    suite: AlgorithmSuite,
    /// 0 = non-framed.
    frame_length: usize,
    message_id: Vec<u8>,
    aead: Box<dyn Aead>,
    signer: Option<Box<dyn Signer>>,
    /// `HEADROOM` bytes, then buffered plaintext, then room for the tag.
    buf: Zeroizing<Vec<u8>>,
    seq: u32,
    aad: Vec<u8>,
    max_body_size: u64,
    poisoned: bool,
}

impl<W: Write> std::fmt::Debug for EncryptWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptWriter")
            .field("suite", &self.suite)
            .field("frame_length", &self.frame_length)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl<W: Write> EncryptWriter<W> {
    fn buffered(&self) -> usize {
        self.buf.len() - HEADROOM
    }

    /// Seals the buffered plaintext as one frame (or the non-framed body)
    /// and writes it out.
    fn seal_and_write(&mut self, part: BodyPart) -> Result<()> {
        let len = self.buffered();
        let (start, iv) = match part {
            BodyPart::Frame => {
                let h = regular_frame_header(self.seq);
                let start = HEADROOM - h.len();
                self.buf[start..HEADROOM].copy_from_slice(&h);
                (start, crate::format::body::sequence_iv(self.seq))
            }
            BodyPart::FinalFrame => {
                let len32 = u32::try_from(len).map_err(|_| Error::Config("frame too long".into()))?;
                let h = final_frame_header(self.seq, len32);
                self.buf[..HEADROOM].copy_from_slice(&h);
                (0, crate::format::body::sequence_iv(self.seq))
            }
            BodyPart::NonFramed => {
                let h = non_framed_header(len as u64);
                let start = HEADROOM - h.len();
                self.buf[start..HEADROOM].copy_from_slice(&h);
                (start, crate::format::body::sequence_iv(1))
            }
        };
        let seq = if part == BodyPart::NonFramed { 1 } else { self.seq };
        body_aad(&mut self.aad, &self.message_id, part, seq, len as u64);
        let tag = self
            .aead
            .seal_in_place(&iv, &self.aad, &mut self.buf[HEADROOM..])
            .map_err(|_| Error::Config("encryption failed".into()))?;
        buffer::extend(&mut self.buf, &tag);
        let frame = &self.buf[start..];
        if let Some(s) = self.signer.as_mut() {
            s.update(frame);
        }
        self.output.write_all(frame)?;
        self.buf.truncate(HEADROOM);
        Ok(())
    }

    fn write_inner(&mut self, mut data: &[u8]) -> Result<()> {
        if self.frame_length == 0 {
            // A non-framed body is held whole until `finish` (its length
            // precedes it): bounded by the configured body size.
            let total = (self.buffered() + data.len()) as u64;
            let max = self.max_body_size.min(MAX_NON_FRAMED_LEN);
            if total > max {
                return Err(LimitError::BodyTooLarge { found: total, max }.into());
            }
            buffer::extend(&mut self.buf, data);
            return Ok(());
        }
        while !data.is_empty() {
            if self.buffered() == self.frame_length {
                // More plaintext follows, so the full buffer is a regular frame.
                if self.seq == u32::MAX {
                    return Err(LimitError::TooManyFrames {
                        max: u64::from(u32::MAX),
                    }
                    .into());
                }
                self.seal_and_write(BodyPart::Frame)?;
                self.seq += 1;
            }
            let take = (self.frame_length - self.buffered()).min(data.len());
            // Room for the tag too, so sealing never reallocates.
            buffer::reserve(&mut self.buf, take + TAG_LEN);
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// Writes the final frame (or the non-framed body) and the footer,
    /// flushes, and returns the output.
    ///
    /// # Errors
    /// I/O errors, or an earlier write failed.
    pub fn finish(mut self) -> io::Result<W> {
        if self.poisoned {
            return Err(Error::Config("an earlier write failed; the message is incomplete".into()).into());
        }
        let part = if self.frame_length == 0 {
            BodyPart::NonFramed
        } else {
            BodyPart::FinalFrame
        };
        self.seal_and_write(part)?;
        if let Some(signer) = self.signer.take() {
            let sig = signer
                .sign()
                .map_err(|_| Error::Config("signing the message failed".into()))?;
            let len = u16::try_from(sig.len()).map_err(|_| Error::Config("signature too long".into()))?;
            self.output.write_all(&len.to_be_bytes())?;
            self.output.write_all(&sig)?;
        }
        self.output.flush()?;
        Ok(self.output)
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.poisoned {
            return Err(Error::Config("an earlier write failed; the message is incomplete".into()).into());
        }
        match self.write_inner(data) {
            Ok(()) => Ok(data.len()),
            Err(e) => {
                self.poisoned = true;
                Err(e.into())
            }
        }
    }

    /// Flushes the output. Buffered plaintext stays buffered until a frame
    /// is full or [`EncryptWriter::finish`] is called.
    fn flush(&mut self) -> io::Result<()> {
        self.output.flush()
    }
}
