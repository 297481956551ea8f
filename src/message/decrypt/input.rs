//! The input of a streaming decrypt: bytes read past the header, then the
//! reader; reads that grow with the bytes received, never with a length
//! field's claim.

use std::io::{self, Read};

use zeroize::Zeroizing;

use crate::error::{FormatError, Result};
use crate::message::buffer;

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

    /// Reads exactly `n` bytes into `buf` (cleared first). Memory grows with
    /// the bytes actually received, not with what a length field claims.
    pub(super) fn read_vec(
        &mut self,
        buf: &mut Zeroizing<Vec<u8>>,
        n: usize,
        field: &'static str,
    ) -> Result<()> {
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
    pub(super) fn read_append(&mut self, buf: &mut Vec<u8>, n: usize, field: &'static str) -> Result<()> {
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

    pub(super) fn at_end(&mut self) -> Result<bool> {
        let mut b = [0u8; 1];
        Ok(self.read_some(&mut b)? == 0)
    }
}
