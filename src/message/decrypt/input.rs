//! The input of a streaming decrypt: bytes read past the header, then the
//! reader; reads that grow with the bytes received, never with a length
//! field's claim. What it reads is parsed with `format`'s [`Reader`], as
//! the one-shot decrypt parses a message in memory.

use std::collections::VecDeque;
use std::io::{self, Read};

use crate::error::{FormatError, Result};
use crate::format::reader::Reader;
use crate::message::buffer::Staging;

/// Input: bytes already read past the header (or put back), the buffers an
/// async reader read ahead, then the reader.
pub(super) struct Input<R> {
    pub(super) pending: Vec<u8>,
    pub(super) pos: usize,
    /// Buffers read ahead by an async reader (in order, each with the
    /// position read up to): a batch read that starts at one takes it
    /// whole, without a copy.
    pub(super) ahead: VecDeque<(Staging, usize)>,
    /// Buffers emptied, for the next reads ahead.
    pub(super) spent: Vec<Staging>,
    pub(super) inner: R,
}

/// Most emptied buffers kept for reading ahead (a batch each).
const SPENT_MAX: usize = 2;

impl<R> Input<R> {
    /// The bytes of `pending` from `pos` on come first, then the reader.
    pub(super) fn new(pending: Vec<u8>, pos: usize, inner: R) -> Self {
        Input {
            pending,
            pos,
            ahead: VecDeque::new(),
            spent: Vec::new(),
            inner,
        }
    }

    /// Bytes held before the reader: put back and read ahead.
    pub(super) fn held(&self) -> usize {
        let ahead: usize = self.ahead.iter().map(|(b, pos)| b.len() - pos).sum();
        self.pending.len() - self.pos + ahead
    }

    /// Copies the held bytes at `offset..offset + out.len()` (counted from
    /// the next byte to read) into `out` without taking them; false if
    /// fewer are held.
    pub(super) fn peek(&self, offset: usize, out: &mut [u8]) -> bool {
        let pending = &self.pending[self.pos..];
        let held = std::iter::once(pending).chain(self.ahead.iter().map(|(b, pos)| &b.as_slice()[*pos..]));
        let (mut skip, mut filled) = (offset, 0);
        for part in held {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            let part = &part[skip..];
            skip = 0;
            let n = part.len().min(out.len() - filled);
            out[filled..filled + n].copy_from_slice(&part[..n]);
            filled += n;
            if filled == out.len() {
                return true;
            }
        }
        out.is_empty()
    }

    /// Appends `bytes` after everything held (before the reader's next),
    /// in the buffers read ahead: the first of them then starts where the
    /// body does, so that batch reads take them whole.
    pub(super) fn queue(&mut self, bytes: &[u8]) {
        if self.ahead.is_empty() {
            let (pending, pos) = (std::mem::take(&mut self.pending), std::mem::take(&mut self.pos));
            self.push_ahead().extend(&pending[pos..]);
        }
        if let Some((b, _)) = self.ahead.back_mut() {
            b.extend(bytes);
        }
    }

    /// A new, empty buffer at the end of those read ahead (an emptied one
    /// if there is one; those are cleared when they are retired).
    fn push_ahead(&mut self) -> &mut Staging {
        let fresh = self.spent.pop().unwrap_or_else(Staging::pooled_public);
        self.ahead.push_back((fresh, 0));
        &mut self.ahead.back_mut().expect("just pushed").0
    }

    /// Room for more bytes read ahead, after everything held, in buffers
    /// of `chunk` bytes (the size of a batch read, so that each batch read
    /// takes a buffer whole). A buffer of up to 8 MiB is sized whole when
    /// first read into (growing it would copy it, and wipe the old one, per
    /// doubling); a larger one (a frame length beyond the batch size, as a
    /// hostile header may claim) grows with the bytes received, doubling.
    pub(super) fn ahead_room(&mut self, chunk: usize) -> &mut [u8] {
        const WHOLE: usize = 8 << 20;
        if self.ahead.back().is_none_or(|(b, _)| b.len() >= chunk) {
            self.push_ahead();
        }
        let (buf, _) = self.ahead.back_mut().expect("a buffer to read ahead into");
        let left = chunk - buf.len();
        let n = if chunk <= WHOLE {
            left
        } else {
            let room = buf.capacity().saturating_sub(buf.len());
            left.min(room.max(buf.len()).max(WHOLE))
        };
        buf.spare_mut(n)
    }

    /// Takes the `n` bytes just read into [`Input::ahead_room`].
    pub(super) fn ahead_done(&mut self, n: usize) {
        if let Some((buf, _)) = self.ahead.back_mut() {
            buf.advance(n);
        }
    }

    fn retire(&mut self, mut buf: Staging) {
        if self.spent.len() < SPENT_MAX {
            buf.clear();
            self.spent.push(buf);
        }
    }
}

impl<R: Read> Input<R> {
    pub(super) fn read_some(&mut self, out: &mut [u8]) -> io::Result<usize> {
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
        while let Some((buf, pos)) = self.ahead.front_mut() {
            let n = out.len().min(buf.len() - *pos);
            out[..n].copy_from_slice(&buf.as_slice()[*pos..*pos + n]);
            *pos += n;
            if *pos == buf.len() {
                if let Some((buf, _)) = self.ahead.pop_front() {
                    self.retire(buf);
                }
            }
            if n > 0 || out.is_empty() {
                return Ok(n);
            }
        }
        loop {
            match self.inner.read(out) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// Reads until `out` is full or the input ends: the bytes read.
    fn read_up_to(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < out.len() {
            match self.read_some(&mut out[filled..])? {
                0 => break,
                n => filled += n,
            }
        }
        Ok(filled)
    }

    /// Reads `buf.len()` bytes (fewer only where the input ends) and parses
    /// them with `parse` through a [`Reader`], whose errors name the field
    /// the input ended in.
    pub(super) fn parse<'b, T>(
        &mut self,
        buf: &'b mut [u8],
        parse: impl FnOnce(&mut Reader<'b>) -> Result<T, FormatError>,
    ) -> Result<T> {
        let n = self.read_up_to(buf)?;
        let buf: &'b [u8] = buf;
        Ok(parse(&mut Reader::new(&buf[..n]))?)
    }

    /// Reads until `buf` holds `want` bytes or the input ends, into the
    /// room it has in as few reads as the input allows. Past that room and
    /// `first` bytes the buffer grows with the bytes actually received
    /// (doubling), never with what a length field claims.
    pub(super) fn fill(&mut self, buf: &mut Staging, want: usize, first: usize) -> io::Result<()> {
        let first = first.max(64 << 10);
        let whole = self
            .ahead
            .front()
            .is_some_and(|(b, pos)| *pos == 0 && b.len() <= want);
        if buf.is_empty() && buf.is_public() && self.pos == self.pending.len() && whole {
            // A buffer read ahead, starting where this read does and no
            // longer than it: taken whole, in exchange for `buf`, which is
            // public too (a buffer that plaintext is opened into in place
            // never changes places with the input's).
            if let Some((mut ahead, _)) = self.ahead.pop_front() {
                std::mem::swap(buf, &mut ahead);
                self.retire(ahead);
            }
        }
        while buf.len() < want {
            let room = buf.capacity() - buf.len();
            let n = (want - buf.len()).min(room.max(buf.len()).max(first));
            let got = self.read_some(buf.spare_mut(n))?;
            if got == 0 {
                break;
            }
            buf.advance(got);
        }
        Ok(())
    }

    /// Reads exactly `n` bytes into `buf` (cleared first).
    pub(super) fn read_exact_into(&mut self, buf: &mut Staging, n: usize, field: &'static str) -> Result<()> {
        buf.clear();
        self.fill(buf, n, 0)?;
        Reader::new(buf.as_slice()).take(n, field)?;
        Ok(())
    }

    /// Puts `bytes` back in front of what is still to be read.
    pub(super) fn unread(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut pending = Vec::with_capacity(bytes.len() + self.pending.len() - self.pos);
        pending.extend_from_slice(bytes);
        pending.extend_from_slice(&self.pending[self.pos..]);
        self.pending = pending;
        self.pos = 0;
    }

    pub(super) fn at_end(&mut self) -> Result<bool> {
        let mut b = [0u8; 1];
        Ok(self.read_some(&mut b)? == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_takes_a_buffer_read_ahead_whole_only_in_exchange_for_a_public_one() {
        let mut input = Input::new(b"ab".to_vec(), 0, &[][..]);
        // What was read with the header goes first, into the first buffer.
        input.queue(b"cd");
        let room = input.ahead_room(8);
        room[..4].copy_from_slice(b"efgh");
        input.ahead_done(4);
        let room = input.ahead_room(8);
        room[..3].copy_from_slice(b"ijk");
        input.ahead_done(3);
        assert_eq!(input.held(), 11);
        // Peeked across the buffers, nothing taken.
        let mut peeked = [0u8; 5];
        assert!(input.peek(6, &mut peeked));
        assert_eq!(&peeked, b"ghijk");
        assert!(!input.peek(7, &mut peeked));
        assert_eq!(input.held(), 11);

        let mut public = Staging::empty_public();
        input.fill(&mut public, 8, 0).unwrap();
        assert_eq!(public.as_slice(), b"abcdefgh");
        assert!(public.is_public());
        // Taken whole: the buffer left the queue, the empty one went spare.
        assert_eq!((input.ahead.len(), input.spent.len()), (1, 1));

        // A buffer that may hold plaintext gets a copy, never an exchange.
        let mut private = Staging::default();
        input.fill(&mut private, 8, 0).unwrap();
        assert_eq!(private.as_slice(), b"ijk");
        assert!(!private.is_public());
        assert_eq!(input.held(), 0);
    }
}
