//! A growable buffer that never leaves copies of its contents behind when it
//! grows (a plain `Vec` may `realloc`, freeing the old bytes unwiped).

use zeroize::Zeroizing;

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
}
