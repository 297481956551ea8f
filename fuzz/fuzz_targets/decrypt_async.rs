//! The tokio decrypt stream fed in fuzzer-chosen chunk sizes, with
//! `Poll::Pending` at fuzzer-chosen points: never a panic, never more
//! plaintext out than the message could hold, nothing after a failure.
//!
//! It drives the public async door, `Client::decrypt_stream`, and so
//! `AsyncDecryptReader` (src/message/tokio_io.rs): its own header read and
//! its read-ahead state machine, which reads each step's input ahead into
//! the sync reader's buffers (src/message/decrypt/) and must resume
//! correctly whichever read returned `Pending` or how little it returned.
//! The `decrypt_stream` target drives the sync reader, which pulls its
//! input itself and never sees `Pending`, so none of that is reached there.
//!
//! Input: byte 0, then its low 4 bits' count of chunk-size bytes (each
//! read hands out at most `size + 1` bytes, the sizes taken in turn; none:
//! 64), then bits 4..=6's count of pending bytes (their bits, in turn, say
//! whether a read first returns `Pending` and wakes itself; none: never),
//! then the message. Bit 7 picks the client with `threads(1)` (batches open
//! on the runtime's thread) over the default (on the rayon pool, the task
//! woken when they are done). The first chunk size also sets the size of
//! the reads from the decrypt stream, as in `decrypt_stream`.
//!
//! Beyond the `decrypt_stream` checks: a read after an error is an error
//! and a read after the end returns nothing; the end (a read of 0) comes
//! only once the message is complete; and when the one-shot decrypt
//! accepts the message, the stream yields exactly its plaintext.
#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll};

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// An `AsyncRead` that hands out the input in chunks whose sizes cycle
/// through `sizes` (each 1..=256) and returns `Pending` (waking itself
/// first) before the reads whose bit in `pending` is set.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    pending: &'a [u8],
    turn: usize,
    /// This turn's `Pending` was returned: the next poll reads.
    waited: bool,
}

impl Chunked<'_> {
    fn pends(&self) -> bool {
        let bits = self.pending.len() * 8;
        bits != 0 && {
            let bit = self.turn % bits;
            self.pending[bit / 8] & (1 << (bit % 8)) != 0
        }
    }
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.waited && self.pends() {
            self.waited = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.waited = false;
        let size = self
            .sizes
            .get(self.turn % self.sizes.len().max(1))
            .map_or(64, |s| usize::from(*s) + 1);
        self.turn += 1;
        let n = size.min(buf.remaining()).min(self.data.len());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&layout, rest)) = input.split_first() else {
        return;
    };
    let (sizes, rest) = rest.split_at(usize::from(layout & 0x0f).min(rest.len()));
    let (pending, data) = rest.split_at(usize::from((layout >> 4) & 0x07).min(rest.len()));
    let client = &envseal_fuzz::async_clients()[usize::from(layout >> 7)];
    let context = envseal::EncryptionContext::new();
    let rt = envseal_fuzz::runtime();
    let reader = Chunked {
        data,
        sizes,
        pending,
        turn: 0,
        waited: false,
    };
    rt.block_on(async {
        let Ok(mut out) = client.decrypt_stream(&context, reader).await else {
            return;
        };
        let mut buf = vec![0u8; 1 + sizes.first().map_or(100, |s| usize::from(*s) * 37)];
        let mut plaintext = Vec::new();
        let ended = loop {
            match out.read(&mut buf).await {
                Ok(0) => break true,
                Ok(n) => plaintext.extend_from_slice(&buf[..n]),
                Err(_) => break false,
            }
            assert!(plaintext.len() <= data.len(), "more plaintext than message bytes");
        };
        for _ in 0..2 {
            match out.read(&mut buf).await {
                Ok(0) => assert!(ended, "a read after an error succeeded"),
                Ok(_) => panic!("bytes after the stream ended or failed"),
                Err(_) => assert!(!ended, "a read after the end failed"),
            }
        }
        if ended {
            assert!(out.is_complete(), "the stream ended before the message did");
        }
        if let Ok(one_shot) = client.decrypt(&context, data).await {
            assert!(ended, "the stream failed on a message one-shot decrypt accepts");
            assert!(
                *one_shot.plaintext == plaintext,
                "the stream's plaintext differs from one-shot decrypt's"
            );
        }
    });
});
