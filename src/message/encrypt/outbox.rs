//! Where an [`EncryptWriter`](super::EncryptWriter) writes: the caller's
//! writer, or the queue of sealed buffers an async stream writes out.

use std::io::{self, Write};

use crate::message::buffer::Staging;

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
    pub(super) fn put(&mut self, buf: &mut Staging) -> io::Result<()> {
        match self {
            Out::Write(w) => w.write_all(buf.as_slice()),
            Out::Queue(q) => {
                q.push(buf);
                Ok(())
            }
        }
    }

    pub(super) fn put_slice(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Out::Write(w) => w.write_all(bytes),
            Out::Queue(q) => {
                q.push_slice(bytes);
                Ok(())
            }
        }
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        match self {
            Out::Write(w) => w.flush(),
            Out::Queue(_) => Ok(()),
        }
    }

    /// A buffer the writer is done with: kept by a queue for reuse (no
    /// wipe on an async runtime's thread), else dropped.
    pub(super) fn recycle(&mut self, buf: Staging) {
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

    pub(super) fn push_slice(&mut self, bytes: &[u8]) {
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

    /// Bytes its buffers wipe when dropped.
    pub(super) fn wipe_bytes(&self) -> usize {
        self.queue.iter().chain(&self.free).map(Staging::dirty).sum()
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
