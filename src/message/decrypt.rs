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

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::buffer;
use crate::config::Config;
use crate::crypto::{derive_keys, Aead, DerivedKeys, Verifier, TAG_LEN};
use crate::error::{Error, FormatError, LimitError, PolicyError, Result};
use crate::format::body::{body_aad, BodyPart, FINAL_FRAME_MARKER, MAX_NON_FRAMED_LEN};
use crate::format::header::{parse_header, ContentType, HeaderLimits, ParsedHeader};
use crate::format::{EncryptedDataKey, EncryptionContext};
use crate::materials::{decryption_materials, Keyring};
use crate::suite::AlgorithmSuite;

/// Largest footer signature accepted (DER ECDSA P-384 is at most 104 bytes).
const MAX_SIGNATURE_LEN: usize = 512;

/// Proof that the key commitment matched. Only [`verify_commitment`] makes one.
struct CommitmentVerified(());

/// Proof that the header tag verified. Only [`verify_header`] makes one.
struct HeaderAuthenticated(());

fn verify_commitment(keys: &DerivedKeys, header: &ParsedHeader) -> Result<CommitmentVerified> {
    match (&keys.commitment, &header.body.suite_data) {
        (None, None) => Ok(CommitmentVerified(())),
        (Some(expected), Some(found)) => {
            if bool::from(expected[..].ct_eq(&found[..])) {
                Ok(CommitmentVerified(()))
            } else {
                Err(Error::Decrypt)
            }
        }
        _ => Err(Error::Decrypt),
    }
}

fn verify_header(
    _commitment: &CommitmentVerified,
    aead: &dyn Aead,
    header: &ParsedHeader,
    authenticated_only: &EncryptionContext,
) -> Result<HeaderAuthenticated> {
    let mut aad = header.body_bytes.clone();
    authenticated_only.serialize_into(&mut aad)?;
    let mut tag = header.auth.tag;
    aead.open_in_place(&header.auth.iv, &aad, &mut tag)
        .map(|_| HeaderAuthenticated(()))
        .map_err(|_| Error::Decrypt)
}

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
                        allow_signed_streaming: false,
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
        let suite = self.header.body.suite;
        if suite.is_signed() && !self.allow_signed_streaming {
            return Err(PolicyError::SignedStreaming(suite).into());
        }
        let backend = self.config.backend;
        let materials = decryption_materials(
            keyring,
            suite,
            &self.header.body.context,
            reproduced,
            &self.header.body.edks,
            backend,
        )
        .await?;
        let keys = derive_keys(
            backend,
            suite,
            materials.data_key.expose_secret(),
            &self.header.body.message_id,
        )
        .map_err(|_| Error::Decrypt)?;
        let commitment = verify_commitment(&keys, &self.header)?;
        let authenticated_only: EncryptionContext = materials
            .context
            .iter()
            .filter(|(k, _)| materials.required_keys.contains(*k))
            .collect();
        let authenticated =
            verify_header(&commitment, keys.aead.as_ref(), &self.header, &authenticated_only)?;
        let mut verifier = materials.verifier;
        if let Some(v) = verifier.as_mut() {
            v.update(&self.header.body_bytes);
            let mut auth = Vec::with_capacity(28);
            self.header.auth.serialize(suite.message_version(), &mut auth);
            v.update(&auth);
        }
        Ok(DecryptReader::new(
            authenticated,
            self.input,
            self.header,
            keys.aead,
            verifier,
            materials.context,
            self.config.max_body_size,
        ))
    }
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
    /// Current frame: ciphertext || tag, then plaintext after opening.
    buf: Zeroizing<Vec<u8>>,
    out_pos: usize,
    out_end: usize,
    seq: u32,
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
        input: Input<R>,
        header: ParsedHeader,
        aead: Box<dyn Aead>,
        verifier: Option<Box<dyn Verifier>>,
        context: EncryptionContext,
        max_body_size: u64,
    ) -> Self {
        DecryptReader {
            input,
            suite: header.body.suite,
            message_id: header.body.message_id,
            content_type: header.body.content_type,
            frame_length: header.body.frame_length,
            aead,
            verifier,
            context,
            max_body_size,
            buf: Zeroizing::new(Vec::new()),
            out_pos: 0,
            out_end: 0,
            seq: 1,
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

    fn next_frame(&mut self) -> Result<()> {
        let first = self.input.array::<4>("frame sequence number")?;
        self.absorb(&first);
        if u32::from_be_bytes(first) == FINAL_FRAME_MARKER {
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
        } else {
            let seq = u32::from_be_bytes(first);
            if seq != self.seq {
                return Err(FormatError::Invalid {
                    field: "frame sequence number",
                    reason: "out of order",
                }
                .into());
            }
            let iv = self.input.array::<12>("frame IV")?;
            self.absorb(&iv);
            self.read_sealed(self.frame_length as usize, "frame")?;
            let n = self.open(&iv, BodyPart::Frame, seq, u64::from(self.frame_length))?;
            self.release(n);
            // seq < FINAL_FRAME_MARKER here, so this cannot overflow.
            self.seq = seq + 1;
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
            ContentType::Framed => self.next_frame(),
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
                    return Err(Error::Config("the message failed to decrypt earlier".into()).into());
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
