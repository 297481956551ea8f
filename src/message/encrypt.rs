//! Encrypt: materials, header, frames, footer.
//!
//! Spec: `client-apis/encrypt.md`. Header bytes and each frame are written
//! only once complete; the signer absorbs every byte before the footer.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;

use zeroize::Zeroize;

use super::buffer::{self, Staging};
use super::frames::{batch_frames, FrameKeys, Frames};
use super::job::{self, Job};
use crate::config::Config;
use crate::crypto::{derive_keys, Aead, RandomPool, Signer, IV_LEN, TAG_LEN};
use crate::error::{Error, LimitError, Result};
use crate::format::body::{body_aad, BodyPart};
use crate::format::frame::{final_frame_header, non_framed_header, sequence_iv, MAX_NON_FRAMED_LEN};
use crate::format::header::{serialize_header_body, ContentType, HeaderAuth};
use crate::format::EncryptionContext;
use crate::materials::{EncryptMaterialsOut, EncryptRequest, Keyring, Source};
use crate::suite::AlgorithmSuite;

/// A message whose materials are ready and whose header is built. Turn it
/// into an [`EncryptWriter`] with [`Encryptor::wrap_output`].
pub struct Encryptor {
    suite: AlgorithmSuite,
    frame_length: u32,
    message_id: Vec<u8>,
    aead: Box<dyn Aead>,
    signer: Option<Box<dyn Signer>>,
    header: Vec<u8>,
    materials: Arc<EncryptMaterialsOut>,
    max_body_size: u64,
    threads: usize,
    /// The plaintext length declared up front: a bound the writer enforces.
    plaintext_bound: Option<u64>,
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
    /// [`Error::Config`] for a reserved context key, [`Error::Policy`] for a suite the policy
    /// forbids; keyring errors; [`Error::Limit`] when the keyrings produce
    /// more encrypted data keys than allowed.
    pub async fn new(config: &Config, keyring: &dyn Keyring, context: &EncryptionContext) -> Result<Self> {
        Self::from_source(config, Source::Keyring(keyring), context, None).await
    }

    pub(crate) async fn from_source(
        config: &Config,
        source: Source<'_>,
        context: &EncryptionContext,
        plaintext_len: Option<u64>,
    ) -> Result<Self> {
        let suite = config.suite();
        config.commitment_policy.check_encrypt(suite)?;
        let backend = config.backend;
        // One CSPRNG call for the message id and, when a keyring makes the
        // data key, for the key and a wrapping IV too.
        let mut message_id = vec![0u8; suite.message_id_len()];
        let random = match source {
            Source::Keyring(_) => {
                let mut pool = RandomPool::draw(backend, message_id.len() + suite.data_key_len() + IV_LEN)?;
                pool.fill(&mut message_id)?;
                Some(pool)
            }
            Source::Cached(_) => {
                backend.fill_random(&mut message_id)?;
                None
            }
        };
        let request = EncryptRequest {
            suite,
            context,
            backend,
            max_edks: config.max_encrypted_data_keys,
            required: &config.required_context_keys,
        };
        let materials = source
            .encryption_materials(request, plaintext_len, random)
            .await?;
        let mut encryptor = Self::with_materials(config, materials, message_id)?;
        encryptor.plaintext_bound = plaintext_len;
        Ok(encryptor)
    }

    /// Derives the message keys and builds the header: everything after the
    /// materials, deterministic given them and the message id.
    pub(crate) fn with_materials(
        config: &Config,
        materials: Arc<EncryptMaterialsOut>,
        message_id: Vec<u8>,
    ) -> Result<Self> {
        let suite = config.suite();
        if let Some(max) = config.max_encrypted_data_keys {
            if materials.edk_count > max {
                return Err(LimitError::TooManyEncryptedDataKeys {
                    found: materials.edk_count,
                    max,
                }
                .into());
            }
        }
        let keys = derive_keys(
            config.backend,
            suite,
            materials.data_key.expose_secret(),
            &message_id,
        )
        .map_err(|_| Error::Backend("key derivation"))?;
        let content_type = if config.frame_length == 0 {
            ContentType::NonFramed
        } else {
            ContentType::Framed
        };
        let mut header = serialize_header_body(
            suite,
            &message_id,
            &materials.header_section,
            content_type,
            config.frame_length,
            keys.commitment.as_deref(),
        )?;
        // Header authentication: AES-GCM over no plaintext, AAD = header
        // body || the required pairs (authenticated, not stored).
        let iv = [0u8; 12];
        let with_required;
        let aad = if materials.auth_only.is_empty() {
            &header
        } else {
            with_required = [header.as_slice(), &materials.auth_only].concat();
            &with_required
        };
        let tag = keys
            .aead
            .seal_in_place(&iv, aad, &mut [])
            .map_err(|_| Error::Backend("header authentication"))?;
        HeaderAuth { iv, tag }.serialize(suite.message_version(), &mut header);
        let mut signer = materials.signer.as_ref().map(|s| s.fresh());
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
            materials,
            max_body_size: config.max_body_size,
            threads: config.effective_threads(),
            plaintext_bound: None,
        })
    }

    /// The suite the message is written with.
    pub fn suite(&self) -> AlgorithmSuite {
        self.suite
    }

    /// The full encryption context written to the header (including
    /// `aws-crypto-public-key` for signed suites).
    pub fn encryption_context(&self) -> &EncryptionContext {
        &self.materials.context
    }

    /// The message's header as it will be written: the header body and
    /// its authentication tag (everything before the body). Parse it with
    /// [`Decryptor::new`](crate::Decryptor::new) to read its fields.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// Writes the header to `output` and returns the writer for the
    /// plaintext.
    ///
    /// # Errors
    /// I/O errors writing the header.
    pub fn wrap_output<W: Write>(self, mut output: W) -> io::Result<EncryptWriter<W>> {
        output.write_all(&self.header)?;
        Ok(self.writer(Out::Write(output)))
    }

    fn writer<W: Write>(self, output: Out<W>) -> EncryptWriter<W> {
        let frame_length = self.frame_length as usize;
        let batch_bytes = batch_frames(frame_length, self.threads) * frame_length;
        // A batch and a frame more (see `copy_from`), allocated once.
        let (mut pending, mut spare) = (Staging::pooled(), Staging::pooled());
        if frame_length > 0 {
            pending.reserve(batch_bytes + frame_length);
            spare.reserve(batch_bytes + frame_length);
        }
        EncryptWriter {
            output,
            suite: self.suite,
            frame_length,
            batch_bytes,
            keys: Arc::new(FrameKeys {
                aead: self.aead,
                message_id: self.message_id,
                frame_length,
                threads: self.threads,
            }),
            signer: self.signer,
            pending,
            spare: vec![spare],
            sealed: Staging::pooled(),
            inflight: VecDeque::new(),
            seq: 1,
            max_body_size: self.max_body_size,
            declared: self.plaintext_bound,
            written: 0,
            poisoned: false,
        }
    }

    /// Encrypts a whole plaintext held in memory: the message is built in
    /// one allocation of its exact size, each frame's plaintext copied into
    /// place and sealed there, on several threads for large inputs.
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
            let mut writer = self.wrap_output(out).map_err(Error::from_io)?;
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

/// Bytes before a final frame's ciphertext: marker, sequence number, IV, length.
const FINAL_HEADER_LEN: usize = 4 + 4 + 12 + 4;
/// Bytes before a non-framed body's ciphertext: IV, length.
const NON_FRAMED_HEADER_LEN: usize = 12 + 8;
/// Room for the footer: length and a DER ECDSA signature (at most 104 bytes).
const FOOTER_ROOM: usize = 2 + 128;

/// Seals a final frame or a non-framed body into `out` (its header, the
/// ciphertext of `plaintext`, the tag).
fn seal_single(
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
fn footer_bytes(signer: Box<dyn Signer>) -> Result<Vec<u8>> {
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
fn seal_batch(
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
struct Sealed {
    plaintext: Staging,
    sealed: Staging,
    /// The batch before (signed suites), hashed by this task: written next.
    hashed: Option<Staging>,
    signer: Option<Box<dyn Signer>>,
    result: Result<()>,
}

/// What [`EncryptWriter::collect`] hands back: the batch just sealed, and
/// for a signed suite the one before it, now hashed, to write first.
struct Collected {
    sealed: Staging,
    earlier: Option<Staging>,
}

/// Writes plaintext as an ESDK message body.
///
/// You **MUST** call [`EncryptWriter::finish`] when done: it writes the final
/// frame and, for signed suites, the footer. Without it the message is
/// truncated and will not decrypt.
///
/// Plaintext is buffered in batches of whole frames: at least 256 KiB on one
/// thread, and with several threads (see [`crate::ConfigBuilder::threads`])
/// about 1 MiB per thread, sealed across them. With several threads full
/// batches are sealed in the background while the next one is written and
/// the ones before go to the output: two batches queued on the pool (so
/// that it does not idle while the writing thread hands over the next), or
/// for a signed suite one, the batch before it being hashed beside its
/// sealing. Memory stays bounded (three batches of plaintext, the one
/// filling and two sealing; four of ciphertext, two sealing and two on
/// their way out) whatever the message size.
/// [`EncryptWriter::copy_from`] reads straight into the batch buffer.
pub struct EncryptWriter<W: Write> {
    output: Out<W>,
    suite: AlgorithmSuite,
    /// 0 = non-framed.
    frame_length: usize,
    /// Plaintext held before a batch of regular frames is sealed.
    batch_bytes: usize,
    keys: Arc<FrameKeys>,
    /// With the writer, or with the batch sealing in the background.
    signer: Option<Box<dyn Signer>>,
    /// Buffered plaintext (a non-framed body is held whole).
    pending: Staging,
    /// Plaintext buffers for the next batches, while `pending` fills.
    spare: Vec<Staging>,
    /// Sealed frames on their way out (wiped when dropped: a backend that
    /// seals in place copies the plaintext in first).
    sealed: Staging,
    /// The batches sealing in the background, oldest first.
    inflight: VecDeque<Job<Sealed>>,
    seq: u32,
    max_body_size: u64,
    /// The plaintext length declared up front, if any: a bound.
    declared: Option<u64>,
    /// Plaintext bytes accepted so far.
    written: u64,
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
    /// The suite the message is written with.
    pub fn suite(&self) -> AlgorithmSuite {
        self.suite
    }

    /// Seals `plaintext` (whole frames) as regular frames on this thread
    /// (and the pool) and writes them.
    fn emit_regular(&mut self, plaintext: &[u8]) -> Result<()> {
        if plaintext.is_empty() {
            return Ok(());
        }
        self.drain()?;
        let count = plaintext.len() / self.frame_length;
        let mut sealed = std::mem::take(&mut self.sealed);
        let result = seal_batch(
            self.keys.frames(),
            self.seq,
            plaintext,
            &mut sealed,
            self.signer.as_mut(),
        )
        .and_then(|()| Ok(self.output.put(&mut sealed)?));
        self.sealed = sealed;
        if result.is_ok() {
            // Sealed, so within the frame count (`seal_batch` checks it).
            self.seq += count as u32;
        }
        result
    }

    /// Seals the final frame or the non-framed body and writes it.
    fn emit_single(&mut self, part: BodyPart, plaintext: &[u8]) -> Result<()> {
        self.drain()?;
        let head = if part == BodyPart::FinalFrame {
            FINAL_HEADER_LEN
        } else {
            NON_FRAMED_HEADER_LEN
        };
        let mut sealed = std::mem::take(&mut self.sealed);
        let result = seal_single(
            self.keys.aead.as_ref(),
            &self.keys.message_id,
            part,
            self.seq,
            plaintext,
            sealed.sized_mut(head + plaintext.len() + TAG_LEN),
        )
        .and_then(|()| {
            if let Some(s) = self.signer.as_mut() {
                s.update(sealed.as_slice());
            }
            Ok(self.output.put(&mut sealed)?)
        });
        self.sealed = sealed;
        result
    }

    /// Waits for the batch sealing in the background, if any: its
    /// ciphertext, with the signer and plaintext buffer it held back.
    fn collect(&mut self) -> Result<Option<Collected>> {
        let Some(job) = self.inflight.pop_front() else {
            return Ok(None);
        };
        let done = job.wait()?;
        self.signer = done.signer;
        self.spare.push(done.plaintext);
        done.result?;
        Ok(Some(Collected {
            sealed: done.sealed,
            earlier: done.hashed,
        }))
    }

    /// Most batches sealing in the background (see [`job::depth`]; for a
    /// signed suite each task hashes the batch before its own).
    fn depth(&self) -> usize {
        job::depth(self.keys.threads, self.suite.is_signed())
    }

    /// Waits for the background batches and writes them out in order
    /// (hashing each first for a signed suite, after the one before it).
    fn drain(&mut self) -> Result<()> {
        while let Some(done) = self.collect()? {
            if let Some(mut earlier) = done.earlier {
                self.output.put(&mut earlier)?;
                self.output.recycle(earlier);
            }
            let mut sealed = done.sealed;
            if let Some(s) = self.signer.as_mut() {
                s.update(sealed.as_slice());
            }
            let result = self.output.put(&mut sealed);
            let old = std::mem::replace(&mut self.sealed, sealed);
            self.output.recycle(old);
            result?;
        }
        Ok(())
    }

    /// The first `batch_bytes` of `pending` are a batch of regular frames
    /// (more plaintext follows): seals them, in the background when there
    /// are several threads, keeping the rest in `pending`.
    pub(crate) fn flush_batch(&mut self) -> Result<()> {
        self.flush_cut(self.batch_bytes)
    }

    /// The regular frames still pending (all but the final frame's
    /// plaintext) handed to the pool as a batch of their own, when batches
    /// seal in the background: the async writer's shutdown, so that only
    /// the final frame seals on the runtime's thread.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn flush_tail(&mut self) -> Result<()> {
        if self.frame_length == 0 || !job::background(self.keys.threads) || self.pending.is_empty() {
            return Ok(());
        }
        let regular = self.pending.len() / self.frame_length * self.frame_length;
        if regular == 0 {
            return Ok(());
        }
        self.flush_cut(regular)
    }

    /// As [`EncryptWriter::flush_batch`], with the first `cut` bytes of
    /// `pending` (whole frames) as the batch.
    fn flush_cut(&mut self, cut: usize) -> Result<()> {
        if !job::background(self.keys.threads) {
            let mut pending = std::mem::take(&mut self.pending);
            let result = self.emit_regular(&pending.as_slice()[..cut]);
            let rest = pending.len() - cut;
            if rest > 0 {
                pending.as_mut_slice().copy_within(cut.., 0);
            }
            pending.truncate(rest);
            self.pending = pending;
            return result;
        }
        // With the pool full, the oldest batch is done by now (it had the
        // filling time of the batches since): its ciphertext goes out while
        // this one seals. For a signed suite it is hashed beside this one's
        // sealing first, and the one before it goes out.
        let collected = if self.inflight.len() >= self.depth() {
            self.collect()?
        } else {
            None
        };
        let (to_hash, to_write) = match collected {
            None => (None, None),
            Some(done) if self.signer.is_some() => (Some(done.sealed), done.earlier),
            Some(done) => (None, Some(done.sealed)),
        };
        let mut next = self.spare.pop().unwrap_or_else(Staging::pooled);
        next.clear();
        next.extend(&self.pending.as_slice()[cut..]);
        let mut plaintext = std::mem::replace(&mut self.pending, next);
        plaintext.truncate(cut);
        let count = cut / self.frame_length;
        let seq = self.seq;
        self.seq = seq.checked_add(count as u32).ok_or(LimitError::TooManyFrames {
            max: u64::from(u32::MAX),
        })?;
        let keys = Arc::clone(&self.keys);
        // The buffer a batch written out left, or one from the pool (none
        // came back while the pool had room).
        let mut sealed = std::mem::take(&mut self.sealed);
        if sealed.capacity() == 0 {
            sealed = Staging::pooled();
        }
        let mut signer = self.signer.take();
        self.inflight.push_back(Job::spawn(move || {
            let frames = keys.background_frames();
            let result = match (to_hash.as_ref(), signer.as_mut()) {
                (Some(earlier), Some(s)) => {
                    rayon::join(
                        || s.update(earlier.as_slice()),
                        || seal_batch(frames, seq, plaintext.as_slice(), &mut sealed, None),
                    )
                    .1
                }
                _ => seal_batch(frames, seq, plaintext.as_slice(), &mut sealed, None),
            };
            Sealed {
                plaintext,
                sealed,
                hashed: to_hash,
                signer,
                result,
            }
        }));
        if let Some(mut earlier) = to_write {
            let result = self.output.put(&mut earlier);
            self.sealed = earlier;
            result?;
        }
        Ok(())
    }

    /// Counts `n` more plaintext bytes against the declared length.
    fn accept(&mut self, n: usize) -> Result<()> {
        // Spec `client-apis/encrypt.md`, "Plaintext Length Bound": never
        // encrypt more than was declared (a cached data key counted only
        // that much); the write that would cross it fails whole.
        let written = self.written.saturating_add(n as u64);
        if let Some(declared) = self.declared.filter(|&d| written > d) {
            return Err(LimitError::PlaintextLengthBound { declared }.into());
        }
        self.written = written;
        Ok(())
    }

    fn write_inner(&mut self, mut data: &[u8]) -> Result<()> {
        self.accept(data.len())?;
        if self.frame_length == 0 {
            self.check_body_len(data.len())?;
            self.pending.extend(data);
            return Ok(());
        }
        // A signed stream with batches in the background copies its
        // plaintext in rather than sealing whole batches straight from the
        // caller's buffer: there each batch's SHA-384 runs beside the next
        // one's sealing, where straight from the buffer the two take turns.
        let overlap = self.signer.is_some() && job::background(self.keys.threads);
        while !data.is_empty() {
            if self.pending.len() == self.batch_bytes {
                // More plaintext follows, so the whole batch is regular frames.
                self.flush_batch()?;
            }
            if self.pending.is_empty() && data.len() > self.batch_bytes && !overlap {
                // A whole batch straight from the caller's buffer (sealed
                // across the threads), with at least one byte left over for
                // the final frame.
                let (batch, rest) = data.split_at(self.batch_bytes);
                self.emit_regular(batch)?;
                data = rest;
                continue;
            }
            let take = (self.batch_bytes - self.pending.len()).min(data.len());
            self.pending.extend(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    fn copy_inner<R: Read + ?Sized>(&mut self, reader: &mut R) -> Result<u64> {
        let start = self.written;
        loop {
            if self.read_batch_full() {
                self.flush_batch()?;
            }
            let room = self.read_room();
            let want = room.len();
            let n = match reader.read(room) {
                Ok(0) => return Ok(self.written - start),
                Ok(n) => n.min(want),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Io(e)),
            };
            self.read_done(n)?;
        }
    }

    /// Encrypts everything `reader` yields, until it ends, and returns how
    /// many bytes it read. It reads straight into the batch buffer, in
    /// reads of a batch; with several threads each batch is sealed in the
    /// background while the next is read and the previous one is written,
    /// so reading, sealing and writing overlap. Call
    /// [`EncryptWriter::finish`] after it.
    ///
    /// # Errors
    /// Read errors (as they are), write errors, the declared plaintext
    /// length exceeded; the writer is then failed.
    pub fn copy_from<R: Read + ?Sized>(&mut self, reader: &mut R) -> io::Result<u64> {
        if self.poisoned {
            return Err(Error::Poisoned.into());
        }
        self.copy_inner(reader).map_err(|e| {
            self.poisoned = true;
            match e {
                Error::Io(e) => e,
                other => other.into(),
            }
        })
    }

    /// Writes the final frame (or the non-framed body) and the footer,
    /// flushes, and returns the output.
    ///
    /// # Errors
    /// I/O errors, or an earlier write failed.
    pub fn finish(mut self) -> io::Result<W> {
        self.finish_body()?;
        match self.output {
            Out::Write(w) => Ok(w),
            Out::Queue(_) => Err(Error::Internal("a queued writer finished as a sync one").into()),
        }
    }

    /// The final frame (or the non-framed body), the footer and a flush;
    /// the writer takes no more plaintext after it.
    pub(crate) fn finish_body(&mut self) -> io::Result<()> {
        if self.poisoned {
            return Err(Error::Poisoned.into());
        }
        // Whatever happens next, nothing more is written.
        self.poisoned = true;
        let pending = std::mem::take(&mut self.pending);
        let plaintext = pending.as_slice();
        if self.frame_length == 0 {
            self.emit_single(BodyPart::NonFramed, plaintext)?;
        } else {
            // Whole frames end with an empty final frame (see `seal_into`).
            let f = self.frame_length;
            let (regular_pt, final_pt) = plaintext.split_at(plaintext.len() / f * f);
            self.emit_regular(regular_pt)?;
            self.emit_single(BodyPart::FinalFrame, final_pt)?;
        }
        // Wiped when the writer is dropped (not here, on an async runtime's
        // thread in the middle of a shutdown).
        self.pending = pending;
        self.pending.clear();
        if let Some(signer) = self.signer.take() {
            let footer = footer_bytes(signer)?;
            self.output.put_slice(&footer)?;
        }
        self.output.flush()
    }
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.poisoned {
            return Err(Error::Poisoned.into());
        }
        match self.write_inner(data) {
            Ok(()) => Ok(data.len()),
            Err(e) => {
                self.poisoned = true;
                Err(e.into())
            }
        }
    }

    /// Flushes the output. Buffered plaintext stays buffered until a batch
    /// is full or [`EncryptWriter::finish`] is called.
    fn flush(&mut self) -> io::Result<()> {
        self.output.flush()
    }
}

/// Where a writer's bytes go: the caller's writer, or (the async streams)
/// a queue of whole buffers that the async side writes out, taken over
/// without a copy.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) enum Out<W> {
    Write(W),
    Queue(Outbox),
}

impl<W: Write> Out<W> {
    /// Writes `buf`, or queues it (leaving a recycled buffer in its place).
    fn put(&mut self, buf: &mut Staging) -> io::Result<()> {
        match self {
            Out::Write(w) => w.write_all(buf.as_slice()),
            Out::Queue(q) => {
                q.push(buf);
                Ok(())
            }
        }
    }

    fn put_slice(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Out::Write(w) => w.write_all(bytes),
            Out::Queue(q) => {
                q.push_slice(bytes);
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Out::Write(w) => w.flush(),
            Out::Queue(_) => Ok(()),
        }
    }

    /// A buffer the writer is done with: kept by a queue for reuse (no
    /// wipe on an async runtime's thread), else dropped.
    fn recycle(&mut self, buf: Staging) {
        if let Out::Queue(q) = self {
            q.keep(buf);
        }
    }
}

/// The bytes of an async stream not yet written, in the buffers they were
/// sealed into, and a few emptied buffers for the writer to seal into next.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
#[derive(Default)]
pub(crate) struct Outbox {
    queue: std::collections::VecDeque<Staging>,
    /// Bytes of the front buffer already written.
    written: usize,
    free: Vec<Staging>,
}

/// Emptied buffers an outbox keeps for reuse.
const OUTBOX_FREE: usize = 3;

#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
impl Outbox {
    fn push(&mut self, buf: &mut Staging) {
        if !buf.is_empty() {
            let spare = self.free.pop().unwrap_or_else(Staging::pooled);
            self.queue.push_back(std::mem::replace(buf, spare));
        }
    }

    fn push_slice(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            // The header or the footer: small, not worth a batch buffer.
            let mut buf = Staging::default();
            buf.extend(bytes);
            self.queue.push_back(buf);
        }
    }

    /// A written buffer: kept for the next batches, or wiped and freed on
    /// the rayon pool (a batch is megabytes to wipe, not for a runtime's
    /// thread); a small one (header, footer) is just dropped.
    fn keep(&mut self, mut buf: Staging) {
        if buf.capacity() < 64 << 10 {
            return;
        }
        if self.free.len() < OUTBOX_FREE {
            buf.clear();
            self.free.push(buf);
        } else {
            rayon::spawn(move || drop(buf));
        }
    }

    /// The next bytes to write, if any.
    pub(crate) fn front(&self) -> Option<&[u8]> {
        self.queue.front().map(|b| &b.as_slice()[self.written..])
    }

    /// `n` bytes of [`Outbox::front`] were written.
    pub(crate) fn advance(&mut self, n: usize) {
        self.written += n;
        if let Some(front) = self.queue.front() {
            if self.written >= front.len() {
                self.written = 0;
                if let Some(buf) = self.queue.pop_front() {
                    self.keep(buf);
                }
            }
        }
    }
}

impl Encryptor {
    /// As [`Encryptor::wrap_output`], for an async stream: the header and
    /// every sealed batch go to the writer's [`Outbox`].
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn wrap_queue(self) -> EncryptWriter<io::Sink> {
        let mut queue = Outbox::default();
        queue.push_slice(&self.header);
        self.writer(Out::Queue(queue))
    }
}

#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
impl EncryptWriter<io::Sink> {
    /// The queued output of an async stream.
    pub(crate) fn outbox(&mut self) -> &mut Outbox {
        match &mut self.output {
            Out::Queue(q) => q,
            Out::Write(_) => unreachable!("an async stream's writer queues its output"),
        }
    }
}

impl<W: Write> EncryptWriter<W> {
    /// Ready when no batch is sealing in the background, so that
    /// [`EncryptWriter::finish_body`] does not wait on the pool.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn poll_idle(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        // They may finish in any order: woken by the first still running.
        for job in &self.inflight {
            std::task::ready!(job.poll_ready(cx));
        }
        std::task::Poll::Ready(())
    }

    /// Ready when the next batch can go to the pool without waiting: there
    /// is room beside the batches sealing, or the oldest one is done (see
    /// [`EncryptWriter::flush_batch`]).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn poll_room(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.inflight.len() < self.depth() {
            return std::task::Poll::Ready(());
        }
        job::poll_idle(self.inflight.front(), cx)
    }

    /// Whether the next write seals a batch (and so may wait for the one
    /// before). The async writer passes on at most [`EncryptWriter::write_room`]
    /// bytes per call, so a write seals at most one batch and never waits
    /// on one it started itself.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn batch_full(&self) -> bool {
        self.frame_length != 0 && self.pending.len() >= self.batch_bytes
    }

    /// Whether the plaintext read by `copy_from` (sync or async) holds a
    /// whole batch and more, so that the batch is sealed
    /// ([`EncryptWriter::flush_batch`]) before the next read: a byte past
    /// it shows that the final frame comes later.
    pub(crate) fn read_batch_full(&self) -> bool {
        self.frame_length != 0 && self.pending.len() > self.batch_bytes
    }

    /// Where `copy_from` (sync or async) reads next: straight into the
    /// batch buffer, up to a batch and one frame, or 64 KiB more of a
    /// non-framed body.
    pub(crate) fn read_room(&mut self) -> &mut [u8] {
        let want = if self.frame_length == 0 {
            64 << 10
        } else {
            self.batch_bytes + self.frame_length - self.pending.len()
        };
        self.pending.spare_mut(want)
    }

    /// Takes the `n` bytes just read into [`EncryptWriter::read_room`].
    pub(crate) fn read_done(&mut self, n: usize) -> Result<()> {
        self.accept(n)?;
        if self.frame_length == 0 {
            self.check_body_len(n)?;
        }
        self.pending.advance(n);
        Ok(())
    }

    /// A non-framed body is held whole until `finish` (its length precedes
    /// it): `more` bytes past what is held must stay within the configured
    /// body size.
    fn check_body_len(&self, more: usize) -> Result<()> {
        let total = (self.pending.len() + more) as u64;
        let max = self.max_body_size.min(MAX_NON_FRAMED_LEN);
        if total > max {
            return Err(LimitError::BodyTooLarge { found: total, max }.into());
        }
        Ok(())
    }

    /// The most plaintext one write takes (see [`EncryptWriter::batch_full`]).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn write_room(&self) -> usize {
        if self.frame_length == 0 {
            usize::MAX
        } else if self.pending.len() < self.batch_bytes {
            self.batch_bytes - self.pending.len()
        } else {
            self.batch_bytes
        }
    }
}
