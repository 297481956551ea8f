//! Streaming decrypt fed in fuzzer-chosen chunk sizes, read with
//! fuzzer-chosen buffer sizes: never a panic, and never more plaintext out
//! than the message could hold.
//!
//! Through the public door, `blocking::Client::decryptor` then its
//! `decrypt`, of a client built once in a static whose config allows
//! signed streaming (the lower layer is not public).
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;

/// A reader that hands out the input in chunks whose sizes cycle through
/// `sizes` (each 1..=256).
struct Chunked<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    turn: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self
            .sizes
            .get(self.turn % self.sizes.len().max(1))
            .map_or(64, |s| usize::from(*s) + 1);
        self.turn += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fuzz_target!(|input: &[u8]| {
    let (split, rest) = match input.split_first() {
        Some((s, rest)) => (usize::from(*s) % 16, rest),
        None => return,
    };
    let (sizes, data) = rest.split_at(split.min(rest.len()));
    let reader = Chunked { data, sizes, turn: 0 };
    let Ok(decryptor) = envseal_fuzz::blocking_client().decryptor(reader) else {
        return;
    };
    let context = envseal::EncryptionContext::new();
    let Ok(mut out) = decryptor.decrypt(&context) else {
        return;
    };
    let mut buf = vec![0u8; 1 + sizes.first().map_or(100, |s| usize::from(*s) * 37)];
    let mut total = 0usize;
    loop {
        match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
    assert!(total <= data.len(), "more plaintext than message bytes");
});
