//! Decrypt in two phases: [`Decryptor::new`] parses and bounds the header;
//! [`Decryptor::decrypt`] gets the data key and verifies commitment and
//! header tag, returning a [`DecryptReader`] over the plaintext.
//!
//! Spec: `client-apis/decrypt.md`, `client-apis/streaming.md`. Order of
//! checks: header parse and limits, commitment policy, materials (keyring),
//! key commitment (constant time), header tag, then each frame's tag, then
//! the signature. A frame's plaintext is released only after its tag
//! verifies; the final frame only after the signature (if any) verifies and
//! no bytes follow the message.

use std::io::{self, Read};

use zeroize::{Zeroize, Zeroizing};

use super::buffer;
use super::frames::{Frames, MIN_TASK_BYTES};
use super::{Decrypted, Verified};
use crate::config::Config;
use crate::crypto::{Aead, HeaderAuthenticated, Verifier, TAG_LEN};
use crate::error::{Error, FormatError, LimitError, PolicyError, Result};
use crate::format::body::{body_aad, BodyPart, FINAL_FRAME_MARKER, MAX_NON_FRAMED_LEN};
use crate::format::header::{parse_header, ContentType, HeaderLimits, ParsedHeader};
use crate::format::{EncryptedDataKey, EncryptionContext};
use crate::materials::{decryption_materials, Keyring, Source};
use crate::suite::AlgorithmSuite;

/// Largest footer signature accepted (DER ECDSA P-384 is at most 104 bytes).
const MAX_SIGNATURE_LEN: usize = 512;

/// Input: bytes already read past the header, then the reader.
struct Input<R> {
    pending: Vec<u8>,
    pos: usize,
    inner: R,
}

impl<R: Read> Input<R> {
    fn read_some(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.pending.len() {
            let n = out.len().min(self.pending.len() - self.pos);
            out[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
            self.pos += n;
            if self.pos == self.pending.len() {
                self.pending = Vec::new();
                self.pos = 0;
            }
            return Ok(n);
        }
        loop {
            match self.inner.read(out) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    fn exact(&mut self, out: &mut [u8], field: &'static str) -> Result<()> {
        let mut filled = 0;
        while filled < out.len() {
            match self.read_some(&mut out[filled..])? {
                0 => return Err(FormatError::Truncated(field).into()),
                n => filled += n,
            }
        }
        Ok(())
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        self.exact(&mut a, field)?;
        Ok(a)
    }

    /// Reads exactly `n` bytes into `buf` (cleared first). Memory grows with
    /// the bytes actually received, not with what a length field claims.
    fn read_vec(&mut self, buf: &mut Zeroizing<Vec<u8>>, n: usize, field: &'static str) -> Result<()> {
        const STEP: usize = 1 << 20;
        buf.clear();
        while buf.len() < n {
            let want = (n - buf.len()).min(STEP.max(buf.len()));
            buffer::reserve(buf, want);
            let start = buf.len();
            buf.resize(start + want, 0);
            let got = self.exact(&mut buf[start..], field);
            if got.is_err() {
                buf.truncate(start);
                return got;
            }
        }
        Ok(())
    }

    /// Appends exactly `n` bytes to `buf`, growing with the bytes received.
    fn read_append(&mut self, buf: &mut Vec<u8>, n: usize, field: &'static str) -> Result<()> {
        const STEP: usize = 1 << 20;
        let end = buf.len() + n;
        while buf.len() < end {
            let want = (end - buf.len()).min(STEP.max(buf.len()));
            let start = buf.len();
            buf.resize(start + want, 0);
            let got = self.exact(&mut buf[start..], field);
            if got.is_err() {
                buf.truncate(start);
                return got;
            }
        }
        Ok(())
    }

    fn at_end(&mut self) -> Result<bool> {
        let mut b = [0u8; 1];
        Ok(self.read_some(&mut b)? == 0)
    }
}

/// First phase of decryption: the header is parsed and bounded; no key has
/// been used yet, so nothing it shows is authenticated.
pub struct Decryptor<R> {
    input: Input<R>,
    header: ParsedHeader,
    config: Config,
    allow_signed_streaming: bool,
}

impl<R> std::fmt::Debug for Decryptor<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("suite", &self.header.body.suite)
            .field("encrypted_data_keys", &self.header.body.edks.len())
            .finish_non_exhaustive()
    }
}

impl<R: Read> Decryptor<R> {
    /// Reads and parses the header from `input`, enforcing the header size,
    /// encrypted-data-key count and frame-length limits and the commitment
    /// policy before any keyring is asked.
    ///
    /// # Errors
    /// [`Error::Format`], [`Error::Limit`], [`Error::Policy`], [`Error::Io`].
    pub fn new(mut input: R, config: &Config) -> Result<Self> {
        let limits = HeaderLimits {
            max_edks: config.max_encrypted_data_keys,
            max_header_size: config.max_header_size,
            max_frame_length: config.max_frame_length,
        };
        let mut buf = Vec::new();
        loop {
            match parse_header(&buf, &limits) {
                Ok(header) => {
                    config.commitment_policy.check_decrypt(header.body.suite)?;
                    let pending = buf.split_off(header.len);
                    return Ok(Decryptor {
                        input: Input {
                            pending,
                            pos: 0,
                            inner: input,
                        },
                        header,
                        config: config.clone(),
                        allow_signed_streaming: config.allow_signed_streaming,
                    });
                }
                Err(Error::Format(FormatError::Truncated(field))) => {
                    // Read ahead, doubling each time, so a large header is
                    // parsed O(log n) times, never past the size limit.
                    let target = (buf.len() * 2)
                        .max(4096)
                        .min(limits.max_header_size)
                        .max(buf.len() + 1);
                    let before = buf.len();
                    (&mut input)
                        .take((target - before) as u64)
                        .read_to_end(&mut buf)?;
                    if buf.len() == before {
                        return Err(FormatError::Truncated(field).into());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The message's algorithm suite (not yet authenticated).
    pub fn suite(&self) -> AlgorithmSuite {
        self.header.body.suite
    }

    /// The stored encryption context (not yet authenticated).
    pub fn encryption_context(&self) -> &EncryptionContext {
        &self.header.body.context
    }

    /// The encrypted data keys (not yet authenticated).
    pub fn encrypted_data_keys(&self) -> &[EncryptedDataKey] {
        &self.header.body.edks
    }

    /// The frame length (0 for a non-framed body).
    pub fn frame_length(&self) -> u32 {
        self.header.body.frame_length
    }

    /// Allows streaming decryption of signed messages.
    ///
    /// **Warning:** regular frames of a signed message are then released as
    /// soon as their tag verifies, *before* the signature is checked at the
    /// end. The final frame is still held back until the signature verifies,
    /// so a read error at any point means the output must be discarded. Use
    /// it when the output goes somewhere you can roll back (a temporary file
    /// renamed on success, a transaction). Without it, [`Decryptor::decrypt`]
    /// refuses signed messages.
    pub fn allow_signed_streaming(mut self) -> Self {
        self.allow_signed_streaming = true;
        self
    }

    /// Gets the data key from `keyring` and verifies the key commitment and
    /// the header. `reproduced` is the caller's encryption context: pairs
    /// the header stores must match, and pairs it does not store are
    /// authenticated through the header tag (the ESDK's reproduced context).
    ///
    /// # Errors
    /// [`Error::NoMatchingKey`] when no keyring could unwrap a data key;
    /// [`Error::Decrypt`] when a cryptographic check fails;
    /// [`Error::Policy`] for a context mismatch or a signed message without
    /// [`Decryptor::allow_signed_streaming`].
    pub async fn decrypt(
        self,
        keyring: &dyn Keyring,
        reproduced: &EncryptionContext,
    ) -> Result<DecryptReader<R>> {
        self.decrypt_source(Source::Keyring(keyring), reproduced).await
    }

    pub(crate) async fn decrypt_source(
        self,
        source: Source<'_>,
        reproduced: &EncryptionContext,
    ) -> Result<DecryptReader<R>> {
        let suite = self.header.body.suite;
        if suite.is_signed() && !self.allow_signed_streaming {
            return Err(PolicyError::SignedStreaming(suite).into());
        }
        let (authenticated, mut opened) = open_header(&self.header, &self.config, source, reproduced).await?;
        if let Some(v) = opened.verifier.as_mut() {
            v.update(&self.header.body_bytes);
            let mut auth = Vec::with_capacity(28);
            self.header.auth.serialize(suite.message_version(), &mut auth);
            v.update(&auth);
        }
        Ok(DecryptReader::new(
            authenticated,
            opened,
            self.input,
            self.header,
            &self.config,
        ))
    }
}

/// A message whose header has been authenticated: the keys for its body.
struct Opened {
    aead: Box<dyn Aead>,
    verifier: Option<Box<dyn Verifier>>,
    context: EncryptionContext,
}

/// Gets the data key, derives the message keys, and verifies the key
/// commitment and the header tag.
async fn open_header(
    header: &ParsedHeader,
    config: &Config,
    source: Source<'_>,
    reproduced: &EncryptionContext,
) -> Result<(HeaderAuthenticated, Opened)> {
    let materials = decryption_materials(source, header, reproduced, config.backend).await?;
    let (keys, authenticated) = materials
        .check
        .open(materials.data_key.expose_secret())
        .map_err(|_| Error::Decrypt)?;
    Ok((
        authenticated,
        Opened {
            aead: keys.aead,
            verifier: materials.verifier,
            context: materials.context,
        },
    ))
}

/// One-shot decrypt of a message held in memory. The body is checked
/// whole (structure, signature, every tag) before any plaintext is
/// returned; frames open straight into the plaintext buffer, on several
/// threads for large messages.
pub(crate) async fn decrypt_slice(
    config: &Config,
    source: Source<'_>,
    reproduced: &EncryptionContext,
    message: &[u8],
) -> Result<Decrypted> {
    let mut plaintext = Vec::new();
    let verified = decrypt_slice_into(config, source, reproduced, message, &mut plaintext).await?;
    Ok(Decrypted {
        plaintext: Zeroizing::new(plaintext),
        encryption_context: verified.encryption_context,
        suite: verified.suite,
    })
}

/// One-shot decrypt into `out` (its allocation reused when large enough).
/// On error `out` is zeroized and left empty: no unauthenticated byte stays.
pub(crate) async fn decrypt_slice_into(
    config: &Config,
    source: Source<'_>,
    reproduced: &EncryptionContext,
    message: &[u8],
    out: &mut Vec<u8>,
) -> Result<Verified> {
    let result = decrypt_slice_inner(config, source, reproduced, message, out).await;
    if result.is_err() {
        out.zeroize();
        out.clear();
    }
    result
}

async fn decrypt_slice_inner(
    config: &Config,
    source: Source<'_>,
    reproduced: &EncryptionContext,
    message: &[u8],
    out: &mut Vec<u8>,
) -> Result<Verified> {
    let limits = HeaderLimits {
        max_edks: config.max_encrypted_data_keys,
        max_header_size: config.max_header_size,
        max_frame_length: config.max_frame_length,
    };
    let header = parse_header(message, &limits)?;
    config.commitment_policy.check_decrypt(header.body.suite)?;
    let (authenticated, opened) = open_header(&header, config, source, reproduced).await?;
    let body = Cursor {
        bytes: message,
        pos: header.len,
    };
    open_body(
        &authenticated,
        &header,
        opened.aead.as_ref(),
        opened.verifier,
        body,
        config,
        out,
    )?;
    Ok(Verified {
        encryption_context: opened.context,
        suite: header.body.suite,
    })
}

/// Reads fields off a message in memory, with the streaming reader's errors.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8]> {
        let rest = &self.bytes[self.pos..];
        if rest.len() < n {
            return Err(FormatError::Truncated(field).into());
        }
        self.pos += n;
        Ok(&rest[..n])
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
}

/// Where the parts of a framed body lie in the message.
struct FramedLayout<'a> {
    /// The regular frames, back to back.
    regular: &'a [u8],
    final_iv: [u8; 12],
    final_seq: u32,
    /// Ciphertext and tag of the final frame.
    final_sealed: &'a [u8],
}

fn framed_layout<'a>(body: &mut Cursor<'a>, frame_length: u32) -> Result<FramedLayout<'a>> {
    let f = frame_length as usize;
    let start = body.pos;
    let mut seq = 1u32;
    loop {
        let first = body.u32("frame sequence number")?;
        if first == FINAL_FRAME_MARKER {
            break;
        }
        if first != seq {
            return Err(FormatError::Invalid {
                field: "frame sequence number",
                reason: "out of order",
            }
            .into());
        }
        body.take(12, "frame IV")?;
        body.take(f + TAG_LEN, "frame")?;
        // seq < FINAL_FRAME_MARKER here, so this cannot overflow.
        seq += 1;
    }
    let regular = &body.bytes[start..body.pos - 4];
    let final_seq = body.u32("final frame sequence number")?;
    let final_iv = body.array::<12>("final frame IV")?;
    let len = body.u32("final frame length")?;
    if final_seq != seq {
        return Err(FormatError::Invalid {
            field: "final frame sequence number",
            reason: "out of order",
        }
        .into());
    }
    if len > frame_length {
        return Err(FormatError::Invalid {
            field: "final frame length",
            reason: "longer than the frame length",
        }
        .into());
    }
    let final_sealed = body.take(len as usize + TAG_LEN, "final frame")?;
    Ok(FramedLayout {
        regular,
        final_iv,
        final_seq,
        final_sealed,
    })
}

/// The footer (signature, if signed) and the end of the message.
fn check_footer(body: &mut Cursor<'_>, verifier: Option<Box<dyn Verifier>>) -> Result<()> {
    let signed_end = body.pos;
    if let Some(mut v) = verifier {
        let len = usize::from(u16::from_be_bytes(body.array::<2>("signature length")?));
        if len > MAX_SIGNATURE_LEN {
            return Err(FormatError::Invalid {
                field: "signature length",
                reason: "longer than any ECDSA signature",
            }
            .into());
        }
        let sig = body.take(len, "signature")?;
        if body.pos != body.bytes.len() {
            return Err(FormatError::TrailingData.into());
        }
        // The signature covers the header and the body.
        v.update(&body.bytes[..signed_end]);
        return v.verify(sig).map_err(|_| Error::Decrypt);
    }
    if body.pos != body.bytes.len() {
        return Err(FormatError::TrailingData.into());
    }
    Ok(())
}

fn open_body(
    _authenticated: &HeaderAuthenticated,
    header: &ParsedHeader,
    aead: &dyn Aead,
    verifier: Option<Box<dyn Verifier>>,
    mut body: Cursor<'_>,
    config: &Config,
    out: &mut Vec<u8>,
) -> Result<()> {
    let message_id = &header.body.message_id;
    let max = config.max_body_size;
    match header.body.content_type {
        ContentType::Framed => {
            let layout = framed_layout(&mut body, header.body.frame_length)?;
            check_footer(&mut body, verifier)?;
            let frames = Frames {
                aead,
                message_id,
                frame_length: header.body.frame_length as usize,
                threads: config.effective_threads(),
            };
            let regular_len = layout.regular.len() / frames.regular_len() * frames.frame_length;
            let (final_ct, final_tag) = layout.final_sealed.split_at(layout.final_sealed.len() - TAG_LEN);
            let total = (regular_len + final_ct.len()) as u64;
            if total > max {
                return Err(LimitError::BodyTooLarge { found: total, max }.into());
            }
            buffer::sized(out, regular_len + final_ct.len());
            let (regular_out, final_out) = out.split_at_mut(regular_len);
            frames.open(1, layout.regular, regular_out)?;
            let mut aad = Vec::with_capacity(96);
            body_aad(
                &mut aad,
                message_id,
                BodyPart::FinalFrame,
                layout.final_seq,
                final_ct.len() as u64,
            );
            open_to(aead, &layout.final_iv, &aad, final_ct, final_tag, final_out)
        }
        ContentType::NonFramed => {
            let iv = body.array::<12>("body IV")?;
            let len = u64::from_be_bytes(body.array::<8>("body length")?);
            if len > MAX_NON_FRAMED_LEN {
                return Err(FormatError::Invalid {
                    field: "body length",
                    reason: "longer than 2^36 - 32 bytes",
                }
                .into());
            }
            if len + TAG_LEN as u64 > max {
                return Err(LimitError::BodyTooLarge { found: len, max }.into());
            }
            let sealed = body.take(len as usize + TAG_LEN, "body")?;
            check_footer(&mut body, verifier)?;
            let (ct, tag) = sealed.split_at(len as usize);
            buffer::sized(out, ct.len());
            let mut aad = Vec::with_capacity(96);
            body_aad(&mut aad, message_id, BodyPart::NonFramed, 1, len);
            open_to(aead, &iv, &aad, ct, tag, out)
        }
    }
}

fn open_to(aead: &dyn Aead, iv: &[u8; 12], aad: &[u8], ct: &[u8], tag: &[u8], out: &mut [u8]) -> Result<()> {
    let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::Decrypt)?;
    aead.open_to(iv, aad, ct, tag, out).map_err(|_| Error::Decrypt)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
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
    input: Input<R>,
    suite: AlgorithmSuite,
    message_id: Vec<u8>,
    content_type: ContentType,
    frame_length: u32,
    aead: Box<dyn Aead>,
    verifier: Option<Box<dyn Verifier>>,
    context: EncryptionContext,
    max_body_size: u64,
    threads: usize,
    /// Regular frames read per batch (opened together, on several threads).
    batch_frames: usize,
    /// Regular frames as read (sequence number, IV, ciphertext, tag).
    sealed: Vec<u8>,
    /// Plaintext of the current batch (or the final frame / body: its
    /// ciphertext and tag, then its plaintext after opening).
    buf: Zeroizing<Vec<u8>>,
    out_pos: usize,
    out_end: usize,
    seq: u32,
    /// The final frame's marker was read while filling a batch.
    final_marker_read: bool,
    aad: Vec<u8>,
    state: State,
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
    fn new(
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

    fn absorb(&mut self, bytes: &[u8]) {
        if let Some(v) = self.verifier.as_mut() {
            v.update(bytes);
        }
    }

    fn open(&mut self, iv: &[u8; 12], part: BodyPart, seq: u32, len: u64) -> Result<usize> {
        body_aad(&mut self.aad, &self.message_id, part, seq, len);
        self.aead
            .open_in_place(iv, &self.aad, &mut self.buf)
            .map_err(|_| Error::Decrypt)
    }

    /// Footer signature (if signed) and end of input.
    fn finish_message(&mut self) -> Result<()> {
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
    fn next_frames(&mut self) -> Result<()> {
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
    fn final_frame(&mut self) -> Result<()> {
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

    fn non_framed(&mut self) -> Result<()> {
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
    fn read_sealed(&mut self, len: usize, field: &'static str) -> Result<()> {
        self.input.read_vec(&mut self.buf, len + TAG_LEN, field)?;
        if let Some(v) = self.verifier.as_mut() {
            v.update(&self.buf);
        }
        Ok(())
    }

    fn release(&mut self, n: usize) {
        self.out_pos = 0;
        self.out_end = n;
    }

    fn advance(&mut self) -> Result<()> {
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
