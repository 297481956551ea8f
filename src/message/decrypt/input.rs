//! The input of a streaming decrypt: bytes read past the header, then the
//! reader; reads that grow with the bytes received, never with a length
//! field's claim.

use std::io::{self, Read};

use crate::error::{FormatError, Result};
use crate::message::buffer::Staging;

/// Input: bytes already read past the header, then the reader.
pub(super) struct Input<R> {
    pub(super) pending: Vec<u8>,
    pub(super) pos: usize,
    pub(super) inner: R,
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
        loop {
            match self.inner.read(out) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    pub(super) fn exact(&mut self, out: &mut [u8], field: &'static str) -> Result<()> {
        let mut filled = 0;
        while filled < out.len() {
            match self.read_some(&mut out[filled..])? {
                0 => return Err(FormatError::Truncated(field).into()),
                n => filled += n,
            }
        }
        Ok(())
    }

    pub(super) fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        self.exact(&mut a, field)?;
        Ok(a)
    }

    /// Reads until `buf` holds `want` bytes or the input ends, into the
    /// room it has in as few reads as the input allows. Past that room and
    /// `first` bytes the buffer grows with the bytes actually received
    /// (doubling), never with what a length field claims.
    pub(super) fn fill(&mut self, buf: &mut Staging, want: usize, first: usize) -> io::Result<()> {
        let first = first.max(64 << 10);
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
        if buf.len() < n {
            return Err(FormatError::Truncated(field).into());
        }
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
