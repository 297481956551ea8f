//! A growable buffer that never leaves copies of its contents behind when it
//! grows (a plain `Vec` may `realloc`, freeing the old bytes unwiped).

use zeroize::{Zeroize, Zeroizing};

/// Makes room for at least `additional` more bytes. If the allocation must
/// grow, the contents move to a fresh allocation and the old one is wiped.
pub(crate) fn reserve(buf: &mut Zeroizing<Vec<u8>>, additional: usize) {
    let needed = buf.len().saturating_add(additional);
    if needed <= buf.capacity() {
        return;
    }
    let new_cap = needed.max(buf.capacity().saturating_mul(2));
    let mut fresh = Zeroizing::new(Vec::with_capacity(new_cap));
    fresh.extend_from_slice(buf);
    // The old allocation is zeroized (whole capacity) when dropped here.
    *buf = fresh;
}

/// Appends bytes, growing without leaving copies behind.
pub(crate) fn extend(buf: &mut Zeroizing<Vec<u8>>, data: &[u8]) {
    reserve(buf, data.len());
    buf.extend_from_slice(data);
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_keeps_contents() {
        let mut b = Zeroizing::new(Vec::new());
        for i in 0..1000u32 {
            extend(&mut b, &i.to_be_bytes());
        }
        assert_eq!(b.len(), 4000);
        assert_eq!(&b[3996..], &999u32.to_be_bytes());
    }

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
}
