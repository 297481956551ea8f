//! [`EncryptWriter`]: the body of a message, written as plaintext arrives,
//! in batches of frames sealed on the calling thread or in the background.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;

use super::outbox::{Out, Outbox};
use super::seal::{footer_bytes, seal_batch, seal_single, Collected, Sealed};
use super::Encryptor;
use crate::crypto::{Signer, TAG_LEN};
use crate::error::{Error, LimitError, Result};
use crate::format::body::BodyPart;
use crate::format::frame::{FINAL_HEADER_LEN, MAX_NON_FRAMED_LEN, NON_FRAMED_HEADER_LEN};
use crate::message::buffer::Staging;
use crate::message::frames::{batch_frames, FrameKeys, MIN_TASK_BYTES};
use crate::message::job::{self, Job};
use crate::suite::AlgorithmSuite;

/// The most `copy_from` first offers a reader (see
/// [`EncryptWriter::read_room`]).
const FIRST_READ: usize = 16 << 10;

impl Encryptor {
    pub(super) fn writer<W: Write>(self, output: Out<W>) -> EncryptWriter<W> {
        let frame_length = self.frame_length as usize;
        let batch_bytes = batch_frames(frame_length, self.threads) * frame_length;
        // A batch and a frame more (see `copy_from`), allocated once. The
        // buffers for batches in the background are taken when the first
        // one goes (a small message never needs them).
        let mut pending = Staging::pooled();
        if frame_length > 0 {
            pending.reserve(batch_bytes + frame_length);
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
            spare: Vec::new(),
            sealed: Staging::pooled(),
            inflight: VecDeque::new(),
            seq: 1,
            max_body_size: self.max_body_size,
            declared: self.plaintext_bound,
            written: 0,
            poisoned: false,
        }
    }
}

/// Writes plaintext as an ESDK message body: the building block
/// [`blocking::Client::encrypt_stream`](crate::blocking::Client::encrypt_stream) returns.
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
    /// the final frame (and a tail of at most 256 KiB with nothing in the
    /// background) seals on the runtime's thread.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn flush_tail(&mut self) -> Result<()> {
        if self.frame_length == 0 || !job::background(self.keys.threads) || self.pending.is_empty() {
            return Ok(());
        }
        let regular = self.pending.len() / self.frame_length * self.frame_length;
        // A small tail with nothing before it in the background seals with
        // the final frame, here: a hand-off to the pool would cost more.
        if regular == 0 || (self.inflight.is_empty() && regular <= job::ON_RUNTIME_BYTES) {
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
        next.reserve(self.batch_bytes + self.frame_length);
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
        while !data.is_empty() {
            if self.pending.len() == self.batch_bytes {
                // More plaintext follows, so the whole batch is regular frames.
                self.flush_batch()?;
            }
            let direct = self.direct_len(data.len());
            if direct > 0 {
                // Whole frames sealed straight from the caller's buffer (no
                // copy, nothing to wipe): they are regular frames whatever
                // follows, since a message of whole frames ends with an
                // empty final frame.
                let (frames, rest) = data.split_at(direct);
                self.emit_regular(frames)?;
                data = rest;
                continue;
            }
            let take = (self.batch_bytes - self.pending.len()).min(data.len());
            self.pending.extend(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    /// How many of the next `len` bytes written are sealed straight from
    /// the caller's buffer: whole frames when nothing is buffered before
    /// them, up to a batch when the write is large enough to split across
    /// threads, else up to a quarter of a run (256 KiB). Not for a signed
    /// stream with batches in the background (it copies its plaintext in,
    /// so that each batch's SHA-384 runs beside the next one's sealing),
    /// and for an async stream with batches in the background only a write
    /// that seals on its thread in a fraction of a millisecond, with
    /// nothing in the background (sealing here waits for the batches
    /// before): a larger one fills batches.
    pub(crate) fn direct_len(&self, len: usize) -> usize {
        let f = self.frame_length;
        if f == 0 || !self.pending.is_empty() || len < f {
            return 0;
        }
        let background = job::background(self.keys.threads);
        let most = match &self.output {
            _ if self.signer.is_some() && background => 0,
            // A run split across threads seals a whole batch; one sealed
            // on this thread alone, a quarter of a run at a time, so that
            // what it writes stays in cache (as one thread's batches).
            Out::Write(_) if len >= 2 * MIN_TASK_BYTES => self.batch_bytes,
            Out::Write(_) => self.batch_bytes.min(MIN_TASK_BYTES / 4),
            Out::Queue(_) if !self.inflight.is_empty() => 0,
            // A large write fills batches for the pool instead.
            Out::Queue(_) if background && len > job::ON_RUNTIME_BYTES => 0,
            Out::Queue(_) if background => len,
            Out::Queue(_) => self.batch_bytes,
        };
        (len.min(most) / f) * f
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

impl Encryptor {
    /// As [`Encryptor::into_writer`], for an async stream: the header and
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
    ///
    /// Bytes a read is offered count as written (a reader may write any of
    /// them) and are wiped when the writer is done, so a read is offered
    /// up to the bytes written before, or to twice what the buffer holds
    /// (at least [`FIRST_READ`] in all): a 4 KiB message wipes 16 KiB, not
    /// a whole batch, and a large one reaches whole-batch reads after a few.
    pub(crate) fn read_room(&mut self) -> &mut [u8] {
        let room = if self.frame_length == 0 {
            64 << 10
        } else {
            self.batch_bytes + self.frame_length - self.pending.len()
        };
        let len = self.pending.len();
        let end = self.pending.dirty().max(2 * len).max(FIRST_READ);
        self.pending.spare_mut(room.min(end - len))
    }

    /// Bytes the writer's buffers wipe when it is dropped; `usize::MAX`
    /// while a batch is in the background (an async stream drops a writer
    /// that wipes little on its own thread, see `OffThread`).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn wipe_bytes(&self) -> usize {
        if !self.inflight.is_empty() {
            return usize::MAX;
        }
        let queued = match &self.output {
            Out::Queue(q) => q.wipe_bytes(),
            Out::Write(_) => 0,
        };
        self.spare.iter().map(Staging::dirty).sum::<usize>()
            + self.pending.dirty()
            + self.sealed.dirty()
            + queued
    }

    /// Test support: the plaintext bytes the batch buffer will wipe.
    #[cfg(test)]
    pub(crate) fn pending_dirty(&self) -> usize {
        self.pending.dirty()
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
