//! A growable buffer that never leaves copies of its contents behind when it
//! grows (a plain `Vec` may `realloc`, freeing the old bytes unwiped).

use std::sync::{Mutex, PoisonError};

use zeroize::Zeroize;

/// `out` set to `len` bytes, every one of which the caller then overwrites:
/// a fresh zeroed allocation (pages straight from the OS, no memset) unless
/// its capacity already suffices; a reused buffer is not cleared first (a
/// 64 MiB memset costs a third of the AES-GCM), only a grown tail is
/// zero-filled. The caller's earlier bytes (an earlier plaintext, say) are
/// wiped where they would outlive this call: in a buffer being replaced and
/// past the new length. One-shot encrypt and decrypt size their output
/// with it; a failure wipes the whole buffer.
pub(crate) fn sized(out: &mut Vec<u8>, len: usize) {
    if out.capacity() < len {
        out.zeroize();
        *out = vec![0u8; len];
    } else {
        if let Some(tail) = out.get_mut(len..) {
            tail.zeroize();
        }
        out.resize(len, 0);
    }
}

/// Staging buffers kept for the next stream (a stream's batch buffers are
/// megabytes: fresh pages cost a fault each, about 2 µs on a small VM). A
/// buffer is wiped before it goes back, unless it only ever held ciphertext
/// ([`Staging::pooled_public`]); at most [`POOL_MAX`] are kept, each at most
/// [`POOL_MAX_BYTES`]: the buffers one stream on several threads holds at
/// once (an async decrypt: batches in flight, released, read ahead; about
/// 27 MiB of 2.25 MiB buffers, kept between streams).
static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
const POOL_MAX: usize = 12;
const POOL_MAX_BYTES: usize = 4 << 20;

/// Allocation sizes: past 64 KiB, whole multiples of 256 KiB (see
/// [`Staging::ensure`]).
fn size_class(len: usize) -> usize {
    const STEP: usize = 256 << 10;
    if len <= 64 << 10 {
        len
    } else {
        len.div_ceil(STEP).saturating_mul(STEP)
    }
}

/// A reusable staging buffer: its allocation keeps its length (zero-filled
/// once, when it grows; grown without leaving copies behind) and `len` bytes
/// of it are in use, so refilling it costs no memset. Wiped when dropped (up
/// to the most it ever held), then kept in the pool if there is room.
#[derive(Default)]
pub(crate) struct Staging {
    buf: Vec<u8>,
    len: usize,
    /// Bytes that may hold data: wiped on drop.
    dirty: usize,
    /// Only ever holds ciphertext (a decrypt's input): not wiped on drop.
    public: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.public {
            let end = self.dirty.min(self.buf.len());
            self.buf[..end].zeroize();
        }
        if (64 << 10..=POOL_MAX_BYTES).contains(&self.buf.len()) {
            let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
            if pool.len() < POOL_MAX {
                pool.push(std::mem::take(&mut self.buf));
                return;
            }
        }
        // Past its length the allocation was never written.
        self.buf.clear();
    }
}

impl Staging {
    /// A staging buffer from the pool (a wiped allocation an earlier stream
    /// left), or an empty one.
    pub(crate) fn pooled() -> Self {
        let buf = POOL
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        Staging {
            buf,
            len: 0,
            dirty: 0,
            public: false,
        }
    }

    /// As [`Staging::pooled`], for a buffer that only ever holds
    /// ciphertext (a decrypt's input): nothing secret to wipe when it is
    /// dropped. Its bytes go back to the pool as they are.
    pub(crate) fn pooled_public() -> Self {
        let mut buf = Staging::pooled();
        buf.public = true;
        buf
    }

    /// An empty, unallocated buffer for ciphertext only (see
    /// [`Staging::pooled_public`]).
    pub(crate) fn empty_public() -> Self {
        Staging {
            buf: Vec::new(),
            len: 0,
            dirty: 0,
            public: true,
        }
    }

    /// Whether this buffer only ever holds ciphertext (not wiped on drop).
    pub(crate) fn is_public(&self) -> bool {
        self.public
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes that may hold data, wiped on drop: filling them again
    /// costs no wipe more.
    pub(crate) fn dirty(&self) -> usize {
        self.dirty
    }

    /// Bytes addressable without growing.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Makes at least `len` bytes addressable, and marks them as possibly
    /// written.
    fn ensure(&mut self, len: usize) {
        let dirty = self.dirty;
        self.dirty = self.dirty.max(len);
        let have = self.buf.len();
        if have >= len {
            return;
        }
        // Zeroed pages straight from the allocator (no memset), in a size
        // class, so that the buffers of every stream and frame length are
        // interchangeable in the pool: a batch and a frame of plaintext, a
        // batch of sealed frames, a batch read ahead (2 MiB and a little).
        // Doubling (reads that grow with the bytes received), but not out
        // of the pool's sizes for a length within them.
        let doubled = have.saturating_mul(2);
        let target = if len <= POOL_MAX_BYTES {
            doubled.min(POOL_MAX_BYTES).max(len)
        } else {
            doubled.max(len)
        };
        let mut fresh = vec![0u8; size_class(target)];
        // Grown: the bytes in use move over, the old allocation is wiped.
        fresh[..self.len].copy_from_slice(&self.buf[..self.len]);
        self.buf[..dirty.min(have)].zeroize();
        self.buf = fresh;
    }

    /// Makes `len` bytes addressable now (one allocation, none while the
    /// buffer fills), without marking them written.
    pub(crate) fn reserve(&mut self, len: usize) {
        let dirty = self.dirty;
        self.ensure(len);
        self.dirty = dirty;
    }

    pub(crate) fn extend(&mut self, data: &[u8]) {
        let end = self.len + data.len();
        self.ensure(end);
        self.buf[self.len..end].copy_from_slice(data);
        self.len = end;
    }

    /// `n` bytes past the used ones, to fill; then [`Staging::advance`].
    pub(crate) fn spare_mut(&mut self, n: usize) -> &mut [u8] {
        let end = self.len + n;
        self.ensure(end);
        &mut self.buf[self.len..end]
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
        debug_assert!(self.len <= self.buf.len());
    }

    /// The first `len` bytes, in use from now on, for the caller to overwrite.
    pub(crate) fn sized_mut(&mut self, len: usize) -> &mut [u8] {
        self.ensure(len);
        self.len = len;
        &mut self.buf[..len]
    }

    /// Wipes the whole allocation (a failure may leave plaintext in it).
    pub(crate) fn wipe(&mut self) {
        self.buf.as_mut_slice().zeroize();
        self.len = 0;
        self.dirty = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_reuses_a_large_enough_allocation() {
        let mut out = vec![7u8; 100];
        let ptr = out.as_ptr();
        sized(&mut out, 40);
        assert_eq!((out.len(), out.as_ptr()), (40, ptr));
        sized(&mut out, 100);
        assert_eq!((out.len(), out.as_ptr()), (100, ptr));
        // Regrown within the capacity: the tail is zero-filled.
        assert!(out[40..].iter().all(|&b| b == 0));
        sized(&mut out, 1000);
        assert_eq!(out, vec![0u8; 1000]);
    }

    #[test]
    fn staging_keeps_its_allocation_and_tracks_what_is_used() {
        let mut s = Staging::default();
        s.extend(b"abc");
        s.spare_mut(5).copy_from_slice(b"defgh");
        s.advance(5);
        assert_eq!(s.as_slice(), b"abcdefgh");
        let ptr = s.as_slice().as_ptr();
        s.clear();
        assert!(s.is_empty());
        s.sized_mut(4).copy_from_slice(b"wxyz");
        assert_eq!((s.as_slice(), s.as_slice().as_ptr()), (&b"wxyz"[..], ptr));
        s.truncate(2);
        assert_eq!(s.as_slice(), b"wx");
        s.wipe();
        assert_eq!((s.len(), s.buf.iter().all(|&b| b == 0)), (0, true));
    }

    #[test]
    fn batch_buffers_share_a_size_class() {
        // A batch and a frame of plaintext (frames of 64 KiB and 4 KiB), a
        // batch of sealed frames, of frames read: one allocation size, so a
        // buffer one stream left serves the next whatever it holds.
        let sizes = [
            (2 << 20) + 65536,
            32 * (65536 + 32),
            (2 << 20) + 4096,
            512 * (4096 + 32),
        ];
        let class = size_class(sizes[0]);
        assert!(sizes.iter().all(|&n| size_class(n) == class), "{class}");
        let mut s = Staging::default();
        s.sized_mut(sizes[1]);
        let ptr = s.as_slice().as_ptr();
        s.clear();
        s.reserve(sizes[0]);
        assert_eq!(
            s.sized_mut(sizes[0]).as_ptr(),
            ptr,
            "grown in place of a reallocation"
        );
        // Reads that grow with the bytes received still double.
        let mut g = Staging::default();
        g.sized_mut(8 << 20);
        g.spare_mut(1);
        assert!(g.capacity() >= 16 << 20);
    }

    #[test]
    fn pooled_buffers_come_back_wiped() {
        let mut s = Staging::pooled();
        s.sized_mut(100 << 10).fill(0xAB);
        let ptr = s.as_slice().as_ptr();
        drop(s);
        // Another test may take it first; look for it among a few.
        let taken: Vec<Staging> = (0..POOL_MAX).map(|_| Staging::pooled()).collect();
        if let Some(again) = taken.iter().find(|t| t.buf.as_ptr() == ptr) {
            assert!(
                again.buf.iter().all(|&b| b == 0),
                "a pooled buffer kept its bytes"
            );
            assert_eq!(again.len(), 0);
        }
        // Too large for the pool: never kept.
        let mut big = Staging::pooled();
        big.sized_mut(POOL_MAX_BYTES + 1);
        drop(big);
        assert!(POOL.lock().unwrap().iter().all(|b| b.len() <= POOL_MAX_BYTES));
    }
}
