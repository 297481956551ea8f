//! Streams for tokio (feature `tokio`): encrypt to an [`AsyncWrite`] and
//! decrypt from an [`AsyncRead`], with the sync streams' guarantees.
//!
//! The async types drive the sync streams' machinery without ever blocking
//! a runtime thread on it: the I/O happens on the runtime, a batch of
//! frames is sealed or opened on the rayon pool (with several threads)
//! while the task waits to be woken, and each call into the sync machinery
//! has what it needs first, so it neither waits for input nor for the pool.
//! With one thread ([`crate::ConfigBuilder::threads`]) a batch (256 KiB) is
//! sealed or opened on the runtime thread, a fraction of a millisecond.

use std::io::{self, Read};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

use super::decrypt::{DecryptReader, Parsed};
use super::encrypt::{EncryptWriter, Encryptor};
use crate::config::Config;
use crate::error::{Error, FormatError, Result};
use crate::format::header::{parse_header, HeaderLimits};
use crate::format::EncryptionContext;
use crate::suite::AlgorithmSuite;

/// The sync machinery of an async stream: dropped (its batch buffers wiped,
/// megabytes) on the rayon pool, not on the runtime's thread, unless it
/// wipes little (a small message: a hand-off to the pool would cost more).
struct OffThread<T: Wiped + Send + 'static>(Option<T>);

/// What dropping a stream's machinery wipes (see [`OffThread`]).
trait Wiped {
    /// Bytes wiped on drop; `usize::MAX` while a batch is in the background.
    fn wipe_bytes(&self) -> usize;
}

impl Wiped for EncryptWriter<io::Sink> {
    fn wipe_bytes(&self) -> usize {
        EncryptWriter::wipe_bytes(self)
    }
}

impl Wiped for DecryptReader<Feed> {
    fn wipe_bytes(&self) -> usize {
        DecryptReader::wipe_bytes(self)
    }
}

impl<T: Wiped + Send + 'static> std::ops::Deref for OffThread<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_ref().expect("present until dropped")
    }
}

impl<T: Wiped + Send + 'static> std::ops::DerefMut for OffThread<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("present until dropped")
    }
}

#[cfg(test)]
thread_local! {
    /// Test support: async streams this thread dropped on the pool.
    pub(crate) static DROPPED_OFF_THREAD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl<T: Wiped + Send + 'static> Drop for OffThread<T> {
    fn drop(&mut self) {
        if let Some(inner) = self.0.take() {
            if inner.wipe_bytes() <= super::job::ON_RUNTIME_BYTES {
                drop(inner);
            } else {
                #[cfg(test)]
                DROPPED_OFF_THREAD.with(|n| n.set(n.get() + 1));
                rayon::spawn(move || drop(inner));
            }
        }
    }
}

/// Writes plaintext as an ESDK message to an [`AsyncWrite`]: the building
/// block [`Client::encrypt_stream`](crate::Client::encrypt_stream) returns
/// (or [`Encryptor::into_async_writer`]).
///
/// You **MUST** call [`AsyncWriteExt::shutdown`](tokio::io::AsyncWriteExt::shutdown)
/// when done: it writes the final frame and, for signed suites, the footer
/// (and shuts the output down). Without it the message is truncated and
/// will not decrypt. Memory is bounded as for [`EncryptWriter`].
pub struct AsyncEncryptWriter<W> {
    core: OffThread<EncryptWriter<io::Sink>>,
    output: W,
    /// The regular frames left at shutdown went to the pool.
    tail_flushed: bool,
    /// The final frame and footer are queued (by `poll_shutdown`).
    finished: bool,
    failed: bool,
}

impl<W> std::fmt::Debug for AsyncEncryptWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncEncryptWriter")
            .field("core", &*self.core)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// The writer for the plaintext, to an [`AsyncWrite`] (feature
    /// `tokio`): the header goes out with the first bytes written. What
    /// [`Client::encrypt_stream`](crate::Client::encrypt_stream) returns.
    pub fn into_async_writer<W: AsyncWrite + Unpin>(self, output: W) -> AsyncEncryptWriter<W> {
        AsyncEncryptWriter {
            core: OffThread(Some(self.wrap_queue())),
            output,
            tail_flushed: false,
            finished: false,
            failed: false,
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncEncryptWriter<W> {
    /// The suite the message is written with.
    pub fn suite(&self) -> AlgorithmSuite {
        self.core.suite()
    }

    /// The output, once the stream is shut down (or to abandon it).
    pub fn into_inner(self) -> W {
        self.output
    }

    /// Encrypts everything `reader` yields, until it ends, and returns how
    /// many bytes it read: as [`EncryptWriter::copy_from`], the plaintext is
    /// read straight into the batch buffer (no copy beside the read itself,
    /// where `tokio::io::copy` or [`AsyncWriteExt::write_all`] copy it in),
    /// each batch sealed on the pool while the next is read and the sealed
    /// ones are written out. Call
    /// [`AsyncWriteExt::shutdown`](tokio::io::AsyncWriteExt::shutdown) after it.
    ///
    /// # Errors
    /// Read errors (as they are), write errors, the declared plaintext
    /// length exceeded; the writer is then failed.
    ///
    /// [`AsyncWriteExt::write_all`]: tokio::io::AsyncWriteExt::write_all
    pub async fn copy_from<R: AsyncRead + Unpin + ?Sized>(&mut self, reader: &mut R) -> io::Result<u64> {
        let mut total = 0u64;
        std::future::poll_fn(|cx| self.poll_copy(cx, reader, &mut total)).await
    }

    fn poll_copy<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        cx: &mut Context<'_>,
        reader: &mut R,
        total: &mut u64,
    ) -> Poll<io::Result<u64>> {
        if self.finished {
            return Poll::Ready(Err(io::Error::other("write after shutdown")));
        }
        loop {
            if self.failed {
                return Poll::Ready(Err(Error::Poisoned.into()));
            }
            if self.core.read_batch_full() {
                // The batch seals once there is room on the pool (the
                // oldest batch done and out, if it is full).
                ready!(self.poll_ready_for_core(cx, false))?;
                if let Err(e) = self.core.flush_batch() {
                    self.failed = true;
                    return Poll::Ready(Err(e.into()));
                }
            } else if let Poll::Ready(Err(e)) = self.poll_drain(cx) {
                self.failed = true;
                return Poll::Ready(Err(e));
            }
            let mut buf = ReadBuf::new(self.core.read_room());
            let read = Pin::new(&mut *reader).poll_read(cx, &mut buf);
            let n = buf.filled().len();
            match read {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Poll::Ready(Err(e)) => {
                    self.failed = true;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(())) if n == 0 => return Poll::Ready(Ok(*total)),
                Poll::Ready(Ok(())) => {}
            }
            if let Err(e) = self.core.read_done(n) {
                self.failed = true;
                return Poll::Ready(Err(e.into()));
            }
            *total += n as u64;
        }
    }

    /// Writes out every queued byte.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let outbox = self.core.outbox();
        while let Some(bytes) = outbox.front() {
            let n = ready!(Pin::new(&mut self.output).poll_write(cx, bytes))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            outbox.advance(n);
        }
        Poll::Ready(Ok(()))
    }

    /// Output written and room on the pool for the next batch (`all`: no
    /// batch in the background at all): a call into the writer now neither
    /// blocks nor lets the queue grow past the batches it holds.
    fn poll_ready_for_core(&mut self, cx: &mut Context<'_>, all: bool) -> Poll<io::Result<()>> {
        if self.failed {
            return Poll::Ready(Err(Error::Poisoned.into()));
        }
        if let Err(e) = ready!(self.poll_drain(cx)) {
            self.failed = true;
            return Poll::Ready(Err(e));
        }
        if all {
            ready!(self.core.poll_idle(cx));
        } else {
            ready!(self.core.poll_room(cx));
        }
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for AsyncEncryptWriter<W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(Err(io::Error::other("write after shutdown")));
        }
        if this.failed {
            return Poll::Ready(Err(Error::Poisoned.into()));
        }
        if this.core.batch_full() {
            // The write seals a batch: room on the pool first (the
            // oldest batch done and written out, if it is full).
            ready!(this.poll_ready_for_core(cx, false))?;
        } else if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            // Otherwise the plaintext only joins the batch, while the one
            // before seals and the sealed ones go out.
            this.failed = true;
            return Poll::Ready(Err(e));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = this.core.write_room().min(data.len());
        match io::Write::write(&mut *this.core, &data[..n]) {
            Ok(n) => Poll::Ready(Ok(n)),
            Err(e) => {
                this.failed = true;
                Poll::Ready(Err(e))
            }
        }
    }

    /// Writes out what is sealed and flushes the output. Plaintext short of
    /// a batch stays buffered until more comes or the stream is shut down.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(Err(Error::Poisoned.into()));
        }
        if let Err(e) = ready!(this.poll_drain(cx)) {
            this.failed = true;
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.output).poll_flush(cx)
    }

    /// Seals the final frame (and the footer), writes everything out and
    /// shuts the output down.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(Err(Error::Poisoned.into()));
        }
        if !this.finished {
            ready!(this.poll_ready_for_core(cx, false))?;
            if !this.tail_flushed {
                // The last regular frames seal on the pool too.
                this.tail_flushed = true;
                if let Err(e) = this.core.flush_tail() {
                    this.failed = true;
                    return Poll::Ready(Err(e.into()));
                }
            }
            ready!(this.poll_ready_for_core(cx, true))?;
            if let Err(e) = this.core.finish_body() {
                this.failed = true;
                return Poll::Ready(Err(e));
            }
            this.finished = true;
        }
        if let Err(e) = ready!(this.poll_drain(cx)) {
            this.failed = true;
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.output).poll_shutdown(cx)
    }
}

/// The sync reader's own input in an async stream: nothing of its own.
/// The bytes read with the header, then everything after them, are read
/// ahead into the reader's buffers before each step (see
/// [`DecryptReader::read_ahead_plan`]), so a read that reaches this is a
/// bug in the async reader: an error, unless the input has ended.
pub(crate) struct Feed {
    eof: bool,
}

impl Read for Feed {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if !out.is_empty() && !self.eof {
            return Err(io::Error::other("async input read before it arrived"));
        }
        Ok(0)
    }
}

/// Reads a message's header from `input` (the bytes that follow it stay
/// buffered) and parses it under `config`.
pub(crate) async fn read_header<R: AsyncRead + Unpin>(
    input: &mut R,
    config: &Config,
) -> Result<Parsed<Feed>> {
    let limits = HeaderLimits {
        max_edks: config.max_encrypted_data_keys,
        max_header_size: config.max_header_size,
        max_frame_length: config.max_frame_length,
    };
    let mut buf = Vec::new();
    let mut eof = false;
    loop {
        match parse_header(&buf, &limits) {
            // Parsed once: the bytes past the header come first, in place.
            Ok(header) => return Parsed::with_header(header, buf, Feed { eof }, config),
            Err(Error::Format(FormatError::Truncated(field))) => {
                if eof {
                    return Err(FormatError::Truncated(field).into());
                }
                // As the sync parser: reads that double, never past the limit.
                let target = (buf.len() * 2)
                    .max(4096)
                    .min(config.max_header_size)
                    .max(buf.len() + 1);
                let before = buf.len();
                buf.resize(target, 0);
                let n = input.read(&mut buf[before..]).await?;
                buf.truncate(before + n);
                eof = n == 0;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads the plaintext of an ESDK message from an [`AsyncRead`]: the
/// building block [`Client::decrypt_stream`](crate::Client::decrypt_stream)
/// and [`Decryptor::decrypt`](crate::Decryptor::decrypt) return. Every
/// byte it returns has passed its frame's tag (and, for the final frame,
/// the signature if the suite signs), as [`DecryptReader`]. It is also an
/// [`AsyncBufRead`], lending the verified plaintext without a copy.
///
/// Errors surface as `io::Error`s wrapping [`Error`]; recover it with
/// [`Error::from_io`]. After an error the reader stays failed.
pub struct AsyncDecryptReader<R> {
    core: OffThread<DecryptReader<Feed>>,
    input: R,
    /// Reading the input failed: the stream stays failed.
    failed: bool,
}

impl<R> std::fmt::Debug for AsyncDecryptReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncDecryptReader")
            .field("core", &*self.core)
            .finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin> AsyncDecryptReader<R> {
    pub(crate) fn new(mut core: DecryptReader<Feed>, input: R) -> Self {
        // The header's read went past it: those bytes (held by the
        // reader's input) move to the front of the buffers read ahead.
        core.queue_input(&[]);
        core.set_lazy();
        AsyncDecryptReader {
            core: OffThread(Some(core)),
            input,
            failed: false,
        }
    }

    /// The message's algorithm suite.
    pub fn suite(&self) -> AlgorithmSuite {
        self.core.suite()
    }

    /// The authenticated encryption context.
    pub fn encryption_context(&self) -> &EncryptionContext {
        self.core.encryption_context()
    }

    /// Whether the whole message (including any signature) has verified.
    pub fn is_complete(&self) -> bool {
        self.core.is_complete()
    }

    /// Makes verified plaintext available unless the message is over.
    fn poll_released(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.failed {
            return Poll::Ready(Err(Error::Poisoned.into()));
        }
        while self.core.released().is_empty() && !self.core.is_over() {
            // What the step reads, read ahead: straight into the buffers
            // its batches are taken from.
            loop {
                // Asked again after each read: a non-framed body's plan
                // grows once its length has arrived.
                let (chunk, target) = self.core.read_ahead_plan();
                if self.core.source_mut().eof || self.core.held() >= target {
                    break;
                }
                let (core, input) = (&mut self.core, &mut self.input);
                let mut buf = ReadBuf::new(core.ahead_room(chunk));
                if let Err(e) = ready!(Pin::new(input).poll_read(cx, &mut buf)) {
                    self.failed = true;
                    return Poll::Ready(Err(e));
                }
                match buf.filled().len() {
                    0 => core.source_mut().eof = true,
                    n => core.ahead_done(n),
                }
            }
            ready!(self.core.poll_idle(cx));
            self.core.step()?;
        }
        // A failed reader reports its error again.
        if self.core.released().is_empty() && !self.core.is_complete() {
            self.core.step()?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for AsyncDecryptReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_released(cx))?;
        let released = this.core.released();
        let n = released.len().min(buf.remaining());
        buf.put_slice(&released[..n]);
        io::BufRead::consume(&mut *this.core, n);
        Poll::Ready(Ok(()))
    }
}

impl<R: AsyncRead + Unpin> AsyncBufRead for AsyncDecryptReader<R> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        ready!(this.poll_released(cx))?;
        Poll::Ready(Ok(this.core.released()))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        io::BufRead::consume(&mut *self.get_mut().core, amt);
    }
}
