//! [`DecryptReader`]: the plaintext of a streaming decrypt, released frame
//! by frame once each tag verifies.

use std::io::{self, Read};

use zeroize::{Zeroize, Zeroizing};

use crate::config::Config;
use crate::crypto::{Aead, HeaderAuthenticated, Verifier, TAG_LEN};
use crate::error::{Error, FormatError, LimitError, Result};
use crate::format::body::{body_aad, BodyPart, FINAL_FRAME_MARKER, MAX_NON_FRAMED_LEN};
use crate::format::header::{ContentType, ParsedHeader};
use crate::format::EncryptionContext;
use crate::message::buffer;
use crate::message::frames::{Frames, MIN_TASK_BYTES};
use crate::suite::AlgorithmSuite;

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Body,
    Done,
    Failed,
}

/// Reads the plaintext of a message whose header has been authenticated.
/// Every byte it returns has passed its frame's tag (and, for the final
/// frame or a non-framed body, the signature if the suite signs).
///
/// Errors surface as `io::Error`s wrapping [`Error`]; recover it with
/// [`Error::from_io`]. After an error the reader stays failed.
pub struct DecryptReader<R> {
    pub(super) input: Input<R>,
    pub(super) suite: AlgorithmSuite,
    pub(super) message_id: Vec<u8>,
    pub(super) content_type: ContentType,
    pub(super) frame_length: u32,
    pub(super) aead: Box<dyn Aead>,
    pub(super) verifier: Option<Box<dyn Verifier>>,
    pub(super) context: EncryptionContext,
    pub(super) max_body_size: u64,
    pub(super) threads: usize,
    /// Regular frames read per batch (opened together, on several threads).
    pub(super) batch_frames: usize,
    /// Regular frames as read (sequence number, IV, ciphertext, tag).
    pub(super) sealed: Vec<u8>,
    /// Plaintext of the current batch (or the final frame / body: its
    /// ciphertext and tag, then its plaintext after opening).
    pub(super) buf: Zeroizing<Vec<u8>>,
    pub(super) out_pos: usize,
    pub(super) out_end: usize,
    pub(super) seq: u32,
    /// The final frame's marker was read while filling a batch.
    pub(super) final_marker_read: bool,
    pub(super) aad: Vec<u8>,
    pub(super) state: State,
}

impl<R> std::fmt::Debug for DecryptReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptReader")
            .field("suite", &self.suite)
            .field("seq", &self.seq)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<R: Read> DecryptReader<R> {
    pub(super) fn new(
        _authenticated: HeaderAuthenticated,
        opened: Opened,
        input: Input<R>,
        header: ParsedHeader,
        config: &Config,
    ) -> Self {
        let Opened {
            aead,
            verifier,
            context,
        } = opened;
        let threads = config.effective_threads();
        let frame_length = header.body.frame_length;
        let batch_frames = match (frame_length as usize, threads) {
            (0, _) | (_, 0..=1) => 1,
            (f, threads) => (threads * MIN_TASK_BYTES / f).max(1),
        };
        DecryptReader {
            input,
            suite: header.body.suite,
            message_id: header.body.message_id,
            content_type: header.body.content_type,
            frame_length,
            aead,
            verifier,
            context,
            max_body_size: config.max_body_size,
            threads,
            batch_frames,
            sealed: Vec::new(),
            buf: Zeroizing::new(Vec::new()),
            out_pos: 0,
            out_end: 0,
            seq: 1,
            final_marker_read: false,
            aad: Vec::with_capacity(96),
            state: State::Body,
        }
    }

    /// The message's algorithm suite.
    pub fn suite(&self) -> AlgorithmSuite {
        self.suite
    }

    /// The authenticated encryption context: stored pairs plus the caller's
    /// reproduced pairs.
    pub fn encryption_context(&self) -> &EncryptionContext {
        &self.context
    }

    /// Whether the whole message (including any signature) has verified.
    pub fn is_complete(&self) -> bool {
        self.state == State::Done && self.out_pos == self.out_end
    }

    pub(super) fn absorb(&mut self, bytes: &[u8]) {
        if let Some(v) = self.verifier.as_mut() {
            v.update(bytes);
        }
    }

    pub(super) fn open(&mut self, iv: &[u8; 12], part: BodyPart, seq: u32, len: u64) -> Result<usize> {
        body_aad(&mut self.aad, &self.message_id, part, seq, len);
        self.aead
            .open_in_place(iv, &self.aad, &mut self.buf)
            .map_err(|_| Error::Decrypt)
    }

    /// Footer signature (if signed) and end of input.
    pub(super) fn finish_message(&mut self) -> Result<()> {
        if let Some(verifier) = self.verifier.take() {
            let len = usize::from(u16::from_be_bytes(self.input.array::<2>("signature length")?));
            if len > MAX_SIGNATURE_LEN {
                return Err(FormatError::Invalid {
                    field: "signature length",
                    reason: "longer than any ECDSA signature",
                }
                .into());
            }
            let mut sig = vec![0u8; len];
            self.input.exact(&mut sig, "signature")?;
            verifier.verify(&sig).map_err(|_| Error::Decrypt)?;
        }
        if !self.input.at_end()? {
            return Err(FormatError::TrailingData.into());
        }
        Ok(())
    }

    /// Reads up to a batch of regular frames and opens them together; or,
    /// after the final frame's marker, the final frame and the footer.
    pub(super) fn next_frames(&mut self) -> Result<()> {
        if self.final_marker_read {
            return self.final_frame();
        }
        let f = self.frame_length as usize;
        self.sealed.clear();
        let mut count = 0usize;
        while count < self.batch_frames {
            let first = self.input.array::<4>("frame sequence number")?;
            self.absorb(&first);
            if u32::from_be_bytes(first) == FINAL_FRAME_MARKER {
                self.final_marker_read = true;
                break;
            }
            // `seq` stays below FINAL_FRAME_MARKER: it is a sequence number read.
            let seq = self.seq + count as u32;
            if u32::from_be_bytes(first) != seq {
                return Err(FormatError::Invalid {
                    field: "frame sequence number",
                    reason: "out of order",
                }
                .into());
            }
            let iv = self.input.array::<12>("frame IV")?;
            self.absorb(&iv);
            let start = self.sealed.len();
            self.sealed.extend_from_slice(&first);
            self.sealed.extend_from_slice(&iv);
            self.input.read_append(&mut self.sealed, f + TAG_LEN, "frame")?;
            if let Some(v) = self.verifier.as_mut() {
                v.update(&self.sealed[start + 16..]);
            }
            count += 1;
        }
        if count == 0 {
            return self.final_frame();
        }
        let frames = Frames {
            aead: self.aead.as_ref(),
            message_id: &self.message_id,
            frame_length: f,
            threads: self.threads,
        };
        self.buf.clear();
        buffer::reserve(&mut self.buf, count * f);
        self.buf.resize(count * f, 0);
        frames.open(self.seq, &self.sealed, &mut self.buf)?;
        self.release(count * f);
        self.seq += count as u32;
        Ok(())
    }

    /// The final frame (its marker already read) and the footer.
    pub(super) fn final_frame(&mut self) -> Result<()> {
        {
            let seq_bytes = self.input.array::<4>("final frame sequence number")?;
            let iv = self.input.array::<12>("final frame IV")?;
            let len_bytes = self.input.array::<4>("final frame length")?;
            for part in [&seq_bytes[..], &iv, &len_bytes] {
                self.absorb(part);
            }
            let seq = u32::from_be_bytes(seq_bytes);
            let len = u32::from_be_bytes(len_bytes);
            if seq != self.seq {
                return Err(FormatError::Invalid {
                    field: "final frame sequence number",
                    reason: "out of order",
                }
                .into());
            }
            if len > self.frame_length {
                return Err(FormatError::Invalid {
                    field: "final frame length",
                    reason: "longer than the frame length",
                }
                .into());
            }
            self.read_sealed(len as usize, "final frame")?;
            let n = self.open(&iv, BodyPart::FinalFrame, seq, u64::from(len))?;
            self.finish_message()?;
            self.release(n);
            self.state = State::Done;
        }
        Ok(())
    }

    pub(super) fn non_framed(&mut self) -> Result<()> {
        let iv = self.input.array::<12>("body IV")?;
        let len_bytes = self.input.array::<8>("body length")?;
        self.absorb(&iv);
        self.absorb(&len_bytes);
        let len = u64::from_be_bytes(len_bytes);
        if len > MAX_NON_FRAMED_LEN {
            return Err(FormatError::Invalid {
                field: "body length",
                reason: "longer than 2^36 - 32 bytes",
            }
            .into());
        }
        if len + TAG_LEN as u64 > self.max_body_size {
            return Err(LimitError::BodyTooLarge {
                found: len,
                max: self.max_body_size,
            }
            .into());
        }
        self.read_sealed(len as usize, "body")?;
        let n = self.open(&iv, BodyPart::NonFramed, 1, len)?;
        self.finish_message()?;
        self.release(n);
        self.state = State::Done;
        Ok(())
    }

    /// Reads `len` bytes of ciphertext plus the tag into the frame buffer
    /// and feeds them to the signature verifier.
    pub(super) fn read_sealed(&mut self, len: usize, field: &'static str) -> Result<()> {
        self.input.read_vec(&mut self.buf, len + TAG_LEN, field)?;
        if let Some(v) = self.verifier.as_mut() {
            v.update(&self.buf);
        }
        Ok(())
    }

    pub(super) fn release(&mut self, n: usize) {
        self.out_pos = 0;
        self.out_end = n;
    }

    pub(super) fn advance(&mut self) -> Result<()> {
        match self.content_type {
            ContentType::Framed => self.next_frames(),
            ContentType::NonFramed => self.non_framed(),
        }
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.out_pos < self.out_end {
                let n = out.len().min(self.out_end - self.out_pos);
                out[..n].copy_from_slice(&self.buf[self.out_pos..self.out_pos + n]);
                self.out_pos += n;
                return Ok(n);
            }
            match self.state {
                State::Done => return Ok(0),
                State::Failed => {
                    return Err(Error::Poisoned.into());
                }
                State::Body if out.is_empty() => return Ok(0),
                State::Body => {}
            }
            if let Err(e) = self.advance() {
                self.state = State::Failed;
                self.buf.zeroize();
                self.out_pos = 0;
                self.out_end = 0;
                return Err(e.into());
            }
        }
    }
}
