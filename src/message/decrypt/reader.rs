//! [`DecryptReader`]: the plaintext of a streaming decrypt, released batch
//! by batch once every tag in it verifies.
//!
//! Regular frames are read a batch at a time in large reads. With several
//! threads batches are opened in the background (their tags checked across
//! the pool, the signature's hash absorbing them beside them) while the
//! next batch is read and the caller takes the one before. Two batches are
//! queued on the pool when the suite does not sign, so that the pool does
//! not idle while the reading thread wakes up, releases a batch and starts
//! the next; one when it signs (the hash takes the batches in order). At
//! most three batches of ciphertext (two opening, one read ahead) and four
//! of plaintext (two opening, the released one, a spare), whatever the
//! message size.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::sync::Arc;

use crate::config::Config;
use crate::crypto::{HeaderAuthenticated, Verifier, TAG_LEN};
use crate::error::{Error, FormatError, LimitError, Result};
use crate::format::body::{body_aad, BodyPart};
use crate::format::frame::{
    self, regular_len, Stop, FINAL_HEADER_LEN, MAX_SIGNATURE_LEN, NON_FRAMED_HEADER_LEN,
};
use crate::format::header::{ContentType, ParsedHeader};
use crate::format::reader::Reader;
use crate::format::EncryptionContext;
use crate::message::buffer::Staging;
use crate::message::frames::{batch_frames, FrameKeys, Frames, MIN_TASK_BYTES};
use crate::message::job::{self, Job};
use crate::suite::AlgorithmSuite;

use super::*;

/// The most plaintext of a batch a stream opens on its own thread when no
/// other is under way (see `DecryptReader::start`): about 10 µs of
/// AES-GCM, the order of a hand-over to the pool and back.
const INLINE_BATCH_BYTES: usize = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Body,
    Done,
    Failed,
}

/// Regular frames as read: `count` frames from sequence number `seq`.
struct Batch {
    sealed: Staging,
    count: usize,
    seq: u32,
}

/// A batch opened in the background, with the buffers and verifier it held.
struct Opened {
    sealed: Staging,
    plain: Staging,
    count: usize,
    verifier: Option<Box<dyn Verifier>>,
    result: Result<()>,
}

/// Checks a batch's tags into `plain` and lets the verifier absorb it (on
/// several threads side by side); on failure `plain` holds no plaintext.
fn open_batch(
    frames: Frames<'_>,
    batch: &Batch,
    plain: &mut Staging,
    verifier: Option<&mut Box<dyn Verifier>>,
) -> Result<()> {
    let sealed = batch.sealed.as_slice();
    let out = plain.sized_mut(batch.count * frames.frame_length);
    match verifier {
        Some(v) if frames.threads > 1 => {
            rayon::join(|| v.update(sealed), || frames.open(batch.seq, sealed, out)).1
        }
        Some(v) => {
            v.update(sealed);
            frames.open(batch.seq, sealed, out)
        }
        None => frames.open(batch.seq, sealed, out),
    }
}

/// Reads the plaintext of a message whose header has been authenticated:
/// the building block [`blocking::Client::decrypt_stream`](crate::blocking::Client::decrypt_stream) returns.
/// Every byte it returns has passed its frame's tag (and, for the final
/// frame or a non-framed body, the signature if the suite signs).
///
/// It is also a [`BufRead`]: [`BufRead::fill_buf`] lends the verified
/// plaintext of the current batch without a copy.
///
/// Errors surface as `io::Error`s wrapping [`Error`]; recover it with
/// [`Error::from_io`]. After an error the reader stays failed.
pub struct DecryptReader<R> {
    pub(super) input: Input<R>,
    pub(super) suite: AlgorithmSuite,
    pub(super) content_type: ContentType,
    pub(super) frame_length: u32,
    keys: Arc<FrameKeys>,
    /// With the reader, or with the batch opening in the background.
    pub(super) verifier: Option<Box<dyn Verifier>>,
    pub(super) context: EncryptionContext,
    pub(super) max_body_size: u64,
    /// Regular frames read per batch.
    batch_frames: usize,
    /// The buffer the next batch is read into.
    sealed: Staging,
    /// Released plaintext (or the final frame / body: its ciphertext and
    /// tag, then its plaintext after opening).
    pub(super) buf: Staging,
    /// Plaintext buffers for the batches handed to the pool.
    spare: Vec<Staging>,
    /// The batch read ahead (or the error reading it, reported in turn).
    next: Option<Result<Batch>>,
    /// The batches opening in the background, oldest first.
    inflight: VecDeque<Job<Opened>>,
    pub(super) out_pos: usize,
    pub(super) out_end: usize,
    /// Sequence number of the next frame to release.
    pub(super) seq: u32,
    /// Sequence number of the next frame to read.
    read_seq: u32,
    /// The final frame's marker was seen (and put back) while reading.
    pub(super) final_marker_read: bool,
    pub(super) aad: Vec<u8>,
    pub(super) state: State,
    /// Reads no batch ahead of the one it starts (an async stream: its
    /// input is read ahead into the input's buffers before each step).
    lazy: bool,
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
        opened: super::Opened,
        input: Input<R>,
        header: ParsedHeader,
        config: &Config,
    ) -> Self {
        let super::Opened {
            aead,
            verifier,
            context,
        } = opened;
        let threads = config.effective_threads();
        let frame_length = header.body.frame_length;
        DecryptReader {
            input,
            suite: header.body.suite,
            content_type: header.body.content_type,
            frame_length,
            keys: Arc::new(FrameKeys {
                aead,
                message_id: header.body.message_id,
                frame_length: frame_length as usize,
                threads,
            }),
            verifier,
            context,
            max_body_size: config.max_body_size,
            batch_frames: batch_frames(frame_length as usize, threads),
            // Ciphertext only (it changes places with the input's buffers).
            sealed: Staging::pooled_public(),
            buf: Staging::pooled(),
            spare: Vec::new(),
            next: None,
            inflight: VecDeque::new(),
            out_pos: 0,
            out_end: 0,
            seq: 1,
            read_seq: 1,
            final_marker_read: false,
            aad: Vec::with_capacity(96),
            state: State::Body,
            lazy: false,
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

    /// Bytes the reader's buffers wipe when it is dropped; `usize::MAX`
    /// while a batch is in the background (see `wipe_bytes` on the writer).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn wipe_bytes(&self) -> usize {
        if !self.inflight.is_empty() {
            return usize::MAX;
        }
        self.spare.iter().map(Staging::dirty).sum::<usize>() + self.buf.dirty()
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
        debug_assert!(
            !self.buf.is_public(),
            "plaintext opened into a buffer that is not wiped"
        );
        body_aad(&mut self.aad, &self.keys.message_id, part, seq, len);
        self.keys
            .aead
            .open_in_place(iv, &self.aad, self.buf.as_mut_slice())
            .map_err(|_| Error::Decrypt)
    }

    /// Footer signature (if signed) and end of input.
    pub(super) fn finish_message(&mut self) -> Result<()> {
        if let Some(verifier) = self.verifier.take() {
            let len = self.input.parse(&mut [0u8; 2], frame::read_signature_len)?;
            let mut sig = [0u8; MAX_SIGNATURE_LEN];
            let sig = self.input.parse(&mut sig[..len], |r| r.take(len, "signature"))?;
            verifier.verify(sig).map_err(|_| Error::Decrypt)?;
        }
        if !self.input.at_end()? {
            return Err(FormatError::TrailingData.into());
        }
        Ok(())
    }

    /// Reads up to a batch of regular frames in one large read; what lies
    /// past them (part of a frame, the final frame) goes back to the input.
    /// `None` once the final frame's marker is next.
    fn read_batch(&mut self) -> Result<Option<Batch>> {
        let slot = regular_len(self.frame_length as usize);
        // The place it leaves stays a ciphertext buffer (the next read may
        // take an input buffer whole in exchange for it).
        let mut sealed = std::mem::replace(&mut self.sealed, Staging::empty_public());
        sealed.clear();
        // A batch of the configured size is read in one go; only a frame
        // length beyond it (a header's claim) makes the buffer grow with
        // the bytes received.
        let want = self.batch_frames * slot;
        let first = want.min(4 * MIN_TASK_BYTES * self.keys.threads.max(1));
        if let Err(e) = self.input.fill(&mut sealed, want, first) {
            self.sealed = sealed;
            return Err(e.into());
        }
        let data = sealed.as_slice();
        let mut r = Reader::new(data);
        let scanned = frame::read_regular_frames(&mut r, self.read_seq, self.frame_length, self.batch_frames)
            .map(|frames| (frames.count, frames.stop));
        let pos = r.position();
        self.input.unread(&data[pos..]);
        sealed.truncate(pos);
        let (count, stop) = match scanned {
            Ok(scanned) => scanned,
            Err(e) => {
                self.sealed = sealed;
                return Err(e.into());
            }
        };
        self.final_marker_read = stop == Stop::FinalFrame;
        if count == 0 {
            self.sealed = sealed;
            return match stop {
                Stop::FinalFrame => Ok(None),
                // Less than a frame and no final frame: the input ended.
                Stop::Truncated(field) => Err(FormatError::Truncated(field).into()),
                Stop::Full => Err(Error::Internal("a batch of no frames")),
            };
        }
        let batch = Batch {
            sealed,
            count,
            seq: self.read_seq,
        };
        self.read_seq += count as u32;
        Ok(Some(batch))
    }

    /// Reads the next batch, unless one is read already or the final frame
    /// is next; an error waits its turn behind the batches before it.
    fn read_ahead(&mut self) {
        if self.next.is_none() && !self.final_marker_read {
            self.next = self.read_batch().transpose();
        }
    }

    /// Hands `batch` to the pool, or opens it here when it is small and
    /// nothing else is under way (a small message, the tail of one): the
    /// caller would wait for it next, and handing it over would cost more
    /// than the opening.
    fn start(&mut self, batch: Batch) {
        let keys = Arc::clone(&self.keys);
        let mut plain = self.spare.pop().unwrap_or_else(Staging::pooled);
        let mut verifier = self.verifier.take();
        let plaintext = batch.count * self.frame_length as usize;
        // The last batch (the final frame follows) with nothing else under
        // way: the caller waits for it next, so it opens here, across the
        // threads as a one-shot decrypt would (an async reader, which never
        // blocks its thread on the pool, only what one thread opens in a
        // fraction of a millisecond).
        let last = self.final_marker_read && (!self.lazy || plaintext <= job::ON_RUNTIME_BYTES);
        let here = self.inflight.is_empty() && (plaintext <= INLINE_BATCH_BYTES || last);
        let lazy = self.lazy;
        let open = move || {
            let frames = match (here, lazy) {
                // On an async runtime's thread: never waiting on the pool.
                (true, true) => Frames {
                    threads: 1,
                    ..keys.frames()
                },
                (true, false) => keys.frames(),
                (false, _) => keys.background_frames(),
            };
            let result = open_batch(frames, &batch, &mut plain, verifier.as_mut());
            Opened {
                sealed: batch.sealed,
                plain,
                count: batch.count,
                verifier,
                result,
            }
        };
        self.inflight.push_back(if here {
            Job::ready(open())
        } else {
            Job::spawn(open)
        });
    }

    /// Most batches opening in the background (see [`job::depth`]).
    fn depth(&self) -> usize {
        job::depth(self.keys.threads, self.suite.is_signed())
    }

    /// Keeps the pool fed: starts batches read ahead until `depth` are in
    /// the background, and reads the next one ahead. A lazy reader reads
    /// one batch at most, and starts it if there is room.
    fn feed_pool(&mut self) {
        loop {
            self.read_ahead();
            if self.inflight.len() >= self.depth() {
                return;
            }
            match self.next.take() {
                Some(Ok(batch)) => self.start(batch),
                other => {
                    self.next = other;
                    return;
                }
            }
            if self.lazy {
                return;
            }
        }
    }

    /// Whether a lazy reader's step starts a batch without waiting: there
    /// is room on the pool beside the batch still opening, and no final
    /// frame or read error is next.
    fn room_to_start(&self) -> bool {
        !self.inflight.is_empty()
            && self.inflight.len() < self.depth()
            && self.next.is_none()
            && !self.final_marker_read
    }

    /// Waits for the oldest batch in the background and releases it.
    fn release_oldest(&mut self, job: Job<Opened>) -> Result<()> {
        let done = job.wait()?;
        self.verifier = done.verifier;
        self.sealed = done.sealed;
        self.spare.push(std::mem::replace(&mut self.buf, done.plain));
        done.result?;
        self.seq += done.count as u32;
        self.release(done.count * self.frame_length as usize);
        Ok(())
    }

    /// Opens a batch on this thread (and the pool) and releases it.
    fn open_here(&mut self, batch: Batch) -> Result<()> {
        let mut plain = std::mem::take(&mut self.buf);
        let result = open_batch(self.keys.frames(), &batch, &mut plain, self.verifier.as_mut());
        self.sealed = batch.sealed;
        self.buf = plain;
        result?;
        self.seq += batch.count as u32;
        self.release(batch.count * self.frame_length as usize);
        Ok(())
    }

    /// Releases the next batch of regular frames once its tags verify; or,
    /// after the last one, the final frame and the footer. A lazy reader's
    /// step may instead only start a batch (see [`DecryptReader::poll_idle`]).
    pub(super) fn next_frames(&mut self) -> Result<()> {
        if self.lazy {
            return self.next_frames_lazy();
        }
        // The reads happen here, after the caller took the batch before:
        // `depth` batches go to the pool and one more is read ahead, the
        // oldest is released, and the one read ahead takes its place on the
        // pool while the caller takes it (a batch is released once the two
        // after it are read, not more).
        self.feed_pool();
        if let Some(job) = self.inflight.pop_front() {
            self.release_oldest(job)?;
            if self.inflight.len() < self.depth() {
                if let Some(Ok(batch)) = self.next.take_if(|n| n.is_ok()) {
                    self.start(batch);
                }
            }
            return Ok(());
        }
        match self.next.take() {
            None => self.final_frame(),
            Some(Err(e)) => Err(e),
            Some(Ok(batch)) => self.open_here(batch),
        }
    }

    /// A lazy reader's step (an async stream's, whose input is read ahead
    /// before each step): it reads at most the one batch it starts.
    fn next_frames_lazy(&mut self) -> Result<()> {
        if self.room_to_start() && self.inflight.front().is_some_and(|job| !job.is_finished()) {
            // Nothing to release yet: one more batch goes to the pool (or
            // the final frame's marker is found next).
            self.feed_pool();
            return Ok(());
        }
        if let Some(job) = self.inflight.pop_front() {
            self.release_oldest(job)?;
            // The next batch goes to the pool while the caller takes this one.
            self.feed_pool();
            return Ok(());
        }
        self.read_ahead();
        match self.next.take() {
            None => self.final_frame(),
            Some(Err(e)) => Err(e),
            Some(Ok(batch)) if self.depth() > 0 => {
                // Released by a later step, once the async reader has
                // polled it done: nothing yet.
                self.start(batch);
                Ok(())
            }
            Some(Ok(batch)) => self.open_here(batch),
        }
    }

    /// The final frame (its marker next in the input) and the footer.
    pub(super) fn final_frame(&mut self) -> Result<()> {
        let mut head = [0u8; FINAL_HEADER_LEN];
        let (seq, frame_length) = (u64::from(self.seq), self.frame_length);
        let last = self.input.parse(&mut head, |r| {
            frame::read_final_frame_header(r, seq, frame_length)
        })?;
        self.absorb(&head);
        let (seq, len) = (last.seq, last.len);
        self.read_sealed(len as usize, "final frame")?;
        let n = self.open(&last.iv, BodyPart::FinalFrame, seq, u64::from(len))?;
        self.finish_message()?;
        self.release(n);
        self.state = State::Done;
        Ok(())
    }

    pub(super) fn non_framed(&mut self) -> Result<()> {
        let mut head = [0u8; NON_FRAMED_HEADER_LEN];
        let frame::NonFramedHeader { iv, len } =
            self.input.parse(&mut head, frame::read_non_framed_header)?;
        self.absorb(&head);
        // The plaintext's length, as the one-shot decrypt and the encrypt
        // count it: what a writer under the same limit wrote is read back.
        if len > self.max_body_size {
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
        self.input.read_exact_into(&mut self.buf, len + TAG_LEN, field)?;
        if let Some(v) = self.verifier.as_mut() {
            v.update(self.buf.as_slice());
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

    /// Makes verified plaintext available unless the message is done;
    /// a failure fails the reader for good and wipes what it held.
    fn refill(&mut self) -> io::Result<()> {
        while self.out_pos == self.out_end {
            if self.state == State::Done {
                return Ok(());
            }
            self.step()?;
        }
        Ok(())
    }

    /// One step: the next batch, or the final frame and footer (or the
    /// non-framed body). A failure fails the reader for good and wipes
    /// what it held.
    pub(crate) fn step(&mut self) -> io::Result<()> {
        match self.state {
            State::Done => return Ok(()),
            State::Failed => return Err(Error::Poisoned.into()),
            State::Body => {}
        }
        if let Err(e) = self.advance() {
            self.state = State::Failed;
            self.buf.wipe();
            self.spare.iter_mut().for_each(Staging::wipe);
            self.next = None;
            self.inflight.clear();
            self.out_pos = 0;
            self.out_end = 0;
            return Err(e.into());
        }
        Ok(())
    }

    /// Verified plaintext not yet taken.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn released(&self) -> &[u8] {
        &self.buf.as_slice()[self.out_pos..self.out_end]
    }

    /// Whether the message is over: verified and fully taken, or failed.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn is_over(&self) -> bool {
        self.out_pos == self.out_end && self.state != State::Body
    }

    /// How an async stream reads ahead of [`DecryptReader::step`]: in
    /// buffers of `chunk` bytes (a batch read, so each batch is taken
    /// without a copy), until `target` bytes are held or the input ends.
    /// The plan changes as bytes arrive (a non-framed body's length): ask
    /// again after each read.
    /// `target` is the most input one step reads: a batch of regular
    /// frames until the final frame's marker has been read (an async
    /// stream's reader is lazy: a step reads the batch it starts, none
    /// beyond; fewer bytes than a batch are read only at the end of the
    /// input), then the final frame, the longest footer and one byte to
    /// tell that the input ends (a step of its own); or a whole non-framed
    /// body, as long as its declared length (only its IV and length when
    /// the step will refuse that). So a batch is released once the batch
    /// after the one opening beside it has arrived, as in the sync reader.
    /// Holding that much before each step, a step never waits for input.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn read_ahead_plan(&self) -> (usize, usize) {
        let footer = 2 + MAX_SIGNATURE_LEN + 1;
        match self.content_type {
            ContentType::Framed => {
                let slot = regular_len(self.frame_length as usize);
                let last = FINAL_HEADER_LEN + self.frame_length as usize + TAG_LEN;
                let chunk = self.batch_frames.saturating_mul(slot);
                let target = if self.final_marker_read {
                    last + footer
                } else {
                    chunk
                };
                (chunk, target)
            }
            ContentType::NonFramed => {
                // The body's IV and length first; then the length it
                // declares, unless the step will refuse that length.
                let head = NON_FRAMED_HEADER_LEN;
                let mut bytes = [0u8; NON_FRAMED_HEADER_LEN];
                let target = if self.input.peek(0, &mut bytes) {
                    match frame::read_non_framed_header(&mut Reader::new(&bytes)) {
                        Ok(h) if h.len <= self.max_body_size => match usize::try_from(h.len) {
                            Ok(declared) => (head + TAG_LEN + footer).saturating_add(declared),
                            Err(_) => head,
                        },
                        _ => head,
                    }
                } else {
                    head
                };
                (256 << 10, target)
            }
        }
    }

    /// Makes the reader lazy (see [`DecryptReader::read_ahead_plan`]).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn set_lazy(&mut self) {
        self.lazy = true;
    }

    /// Input bytes held ahead of the reader.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn held(&self) -> usize {
        self.input.held()
    }

    /// Room to read ahead into (see [`DecryptReader::read_ahead_plan`]).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn ahead_room(&mut self, chunk: usize) -> &mut [u8] {
        self.input.ahead_room(chunk)
    }

    /// Takes `n` bytes just read into [`DecryptReader::ahead_room`].
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn ahead_done(&mut self, n: usize) {
        self.input.ahead_done(n);
    }

    /// Appends input bytes after everything held.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn queue_input(&mut self, bytes: &[u8]) {
        self.input.queue(bytes);
    }

    /// Ready when the next [`DecryptReader::step`] does not wait on the
    /// pool: no batch is opening in the background, the oldest one is
    /// done, or (a lazy reader) the step will start one more beside it.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn poll_idle(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.lazy && self.room_to_start() {
            return std::task::Poll::Ready(());
        }
        job::poll_idle(self.inflight.front(), cx)
    }

    /// The reader the input comes from.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn source_mut(&mut self) -> &mut R {
        &mut self.input.inner
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() && self.state != State::Failed {
            return Ok(0);
        }
        self.refill()?;
        let n = out.len().min(self.out_end - self.out_pos);
        out[..n].copy_from_slice(&self.buf.as_slice()[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

impl<R: Read> BufRead for DecryptReader<R> {
    /// The verified plaintext not yet consumed, refilled (a batch, or the
    /// final frame once the signature verifies) when it runs out; empty at
    /// the end of the message.
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.refill()?;
        Ok(&self.buf.as_slice()[self.out_pos..self.out_end])
    }

    fn consume(&mut self, n: usize) {
        self.out_pos = (self.out_pos + n).min(self.out_end);
    }
}
