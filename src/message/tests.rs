//! The parallel paths write and read the same bytes as one thread.

use std::io::{Read, Write};

use super::*;
use crate::crypto::DataKey;
use crate::format::EncryptedDataKey;
use crate::materials::{EncryptMaterialsOut, RawAesKeyring};
use crate::{AlgorithmSuite, Error, WrappingKey};

/// The one-shot engines under a bare keyring (the clients add the cache).
async fn encrypt(
    config: &Config,
    keyring: &dyn crate::Keyring,
    context: &EncryptionContext,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    Encryptor::new(config, keyring, context)
        .await?
        .seal_all(plaintext)
}

async fn decrypt(
    config: &Config,
    keyring: &dyn crate::Keyring,
    context: &EncryptionContext,
    message: &[u8],
) -> Result<Decrypted> {
    decrypt_source(config, Source::Keyring(keyring), context, message).await
}

/// The sync streaming reader over `input`, under a bare keyring.
fn stream_reader<R: Read>(
    rt: &tokio::runtime::Runtime,
    config: &Config,
    keyring: &dyn crate::Keyring,
    context: &EncryptionContext,
    input: R,
) -> DecryptReader<R> {
    rt.block_on(Parsed::new(input, config).unwrap().decrypt(keyring, context))
        .unwrap()
}

const SUITE: AlgorithmSuite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;

fn config(frame_length: u32, threads: usize) -> Config {
    Config::builder()
        .suite(SUITE)
        .frame_length(frame_length)
        .threads(threads)
        .build()
        .unwrap()
}

/// An encryptor with fixed materials and message id: its output is a
/// function of the plaintext alone.
fn encryptor(config: &Config) -> Encryptor {
    let materials = EncryptMaterialsOut::new(
        DataKey::from_slice(&[0x42; 32]),
        vec![EncryptedDataKey {
            provider_id: "test".into(),
            provider_info: b"key".to_vec(),
            ciphertext: vec![1, 2, 3],
        }],
        [("purpose", "parallel test")].into_iter().collect(),
        &[],
        None,
    )
    .unwrap();
    Encryptor::with_materials(config, std::sync::Arc::new(materials), vec![7; 32]).unwrap()
}

fn plaintext(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Streams `pt` in uneven writes.
fn streamed(config: &Config, pt: &[u8]) -> Vec<u8> {
    let mut w = encryptor(config).into_writer(Vec::new()).unwrap();
    let mut rest = pt;
    let mut step = 1usize;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        w.write_all(&rest[..n]).unwrap();
        rest = &rest[n..];
        step = step * 7 % 1_000_003 + 13;
    }
    w.finish().unwrap()
}

/// A reader that hands out its bytes in uneven pieces (1 byte up to about
/// 1.5 MiB), as pipes and sockets do.
struct Uneven<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Uneven<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        self.step = self.step * 7 % 1_500_007 + 1;
        let n = self.step.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Streams `pt` through [`EncryptWriter::copy_from`], from a reader that
/// yields uneven pieces.
fn copied(config: &Config, pt: &[u8]) -> Vec<u8> {
    let mut w = encryptor(config).into_writer(Vec::new()).unwrap();
    let n = w.copy_from(&mut Uneven { data: pt, step: 1 }).unwrap();
    assert_eq!(n, pt.len() as u64);
    w.finish().unwrap()
}

#[test]
fn parallel_output_is_byte_for_byte_the_sequential_output() {
    let mut cases = 0;
    for frame_length in [4096u32, 65536, 1000] {
        let f = frame_length as usize;
        let sizes = [0, 1, f - 1, f, f + 1, 3 * f, (5 << 20) + 17, 8 << 20];
        for len in sizes {
            let pt = plaintext(len);
            let reference = encryptor(&config(frame_length, 1)).seal_all(&pt).unwrap();
            for threads in [1, 2, 3, 8] {
                let c = config(frame_length, threads);
                assert_eq!(
                    encryptor(&c).seal_all(&pt).unwrap(),
                    reference,
                    "one-shot, frame {frame_length}, {len} bytes, {threads} threads"
                );
                assert_eq!(
                    streamed(&c, &pt),
                    reference,
                    "streaming, frame {frame_length}, {len} bytes, {threads} threads"
                );
                assert_eq!(
                    copied(&c, &pt),
                    reference,
                    "copy_from, frame {frame_length}, {len} bytes, {threads} threads"
                );
                cases += 3;
            }
        }
    }
    assert_eq!(cases, 3 * 8 * 4 * 3);
}

#[test]
fn parallel_decrypt_reads_what_was_written() {
    let keyring = RawAesKeyring::new("ns", "k", WrappingKey::from_slice(&[3; 32]).unwrap()).unwrap();
    let context = EncryptionContext::new();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let pt = plaintext((6 << 20) + 5);
    let message = rt
        .block_on(encrypt(&config(4096, 2), &keyring, &context, &pt))
        .unwrap();
    for threads in [1, 2, 4] {
        let c = config(4096, threads);
        let one_shot = rt.block_on(decrypt(&c, &keyring, &context, &message)).unwrap();
        assert!(*one_shot.plaintext == pt, "one-shot, {threads} threads");
        let mut reader = stream_reader(&rt, &c, &keyring, &context, &message[..]);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert!(out == pt, "streaming, {threads} threads");
        assert!(reader.is_complete());
        // From an uneven input, taken through BufRead in uneven pieces.
        let input = Uneven {
            data: &message,
            step: 3,
        };
        let mut reader = stream_reader(&rt, &c, &keyring, &context, input);
        let mut out = Vec::new();
        let mut step = 1usize;
        loop {
            let chunk = std::io::BufRead::fill_buf(&mut reader).unwrap();
            if chunk.is_empty() {
                break;
            }
            step = step * 5 % 300_007 + 1;
            let n = step.min(chunk.len());
            out.extend_from_slice(&chunk[..n]);
            std::io::BufRead::consume(&mut reader, n);
        }
        assert!(out == pt, "BufRead, uneven input, {threads} threads");
        assert!(reader.is_complete());
    }
    // A flipped bit in the last regular frame fails every path.
    let mut bad = message.clone();
    let at = bad.len() - 4096;
    bad[at] ^= 1;
    for threads in [1, 2] {
        let c = config(4096, threads);
        assert!(matches!(
            rt.block_on(decrypt(&c, &keyring, &context, &bad)),
            Err(Error::Decrypt)
        ));
    }
}

#[test]
fn signed_streams_round_trip_on_every_thread_count() {
    let keyring = RawAesKeyring::new("ns", "k", WrappingKey::from_slice(&[3; 32]).unwrap()).unwrap();
    let context = EncryptionContext::new();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let pt = plaintext((5 << 20) + 3);
    for threads in [1, 2, 4] {
        let c = Config::builder()
            .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384)
            .frame_length(4096)
            .threads(threads)
            .allow_signed_streaming(true)
            .build()
            .unwrap();
        // One-shot: each run hashed while the next seals (several
        // threads); read back by the streaming reader, which hashes in order.
        let enc = rt.block_on(Encryptor::new(&c, &keyring, &context)).unwrap();
        let message = enc.seal_all(&pt).unwrap();
        let mut reader = stream_reader(&rt, &c, &keyring, &context, &message[..]);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert!(out == pt && reader.is_complete(), "one-shot, {threads} threads");
        // A flipped bit in the signature fails the one-shot decrypt, which
        // checks it beside the opening, and leaves no plaintext.
        let mut bad = message.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let mut out = b"earlier".to_vec();
        let failed = rt.block_on(decrypt_source_into(
            &c,
            Source::Keyring(&keyring),
            &context,
            &bad,
            &mut out,
        ));
        assert!(
            matches!(failed, Err(Error::Decrypt)) && out.is_empty(),
            "{threads} threads"
        );
        let enc = rt.block_on(Encryptor::new(&c, &keyring, &context)).unwrap();
        let mut w = enc.into_writer(Vec::new()).unwrap();
        w.copy_from(&mut Uneven { data: &pt, step: 5 }).unwrap();
        let message = w.finish().unwrap();
        let one_shot = rt.block_on(decrypt(&c, &keyring, &context, &message)).unwrap();
        assert!(*one_shot.plaintext == pt, "{threads} threads");
        let mut reader = stream_reader(&rt, &c, &keyring, &context, &message[..]);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert!(out == pt && reader.is_complete(), "streaming, {threads} threads");
        // A flipped bit in the signature: everything but the final frame
        // may be released, the final frame never.
        let mut bad = message.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let mut reader = stream_reader(&rt, &c, &keyring, &context, &bad[..]);
        let mut out = Vec::new();
        assert!(reader.read_to_end(&mut out).is_err(), "{threads} threads");
        assert!(out.len() < pt.len() && pt.starts_with(&out), "{threads} threads");
    }
}

/// Whole frames written at once are sealed straight from the caller's
/// buffer: nothing is copied into the batch buffer (nor left to wipe) but
/// the tail short of a frame, and the bytes are those of the one-shot
/// encrypt, on one thread or several.
#[test]
fn whole_frames_are_sealed_from_the_callers_buffer() {
    for threads in [1, 2] {
        let config = config(4096, threads);
        for (len, most) in [(4096, 0), (64 << 10, 0), ((64 << 10) + 100, 100), (3 << 20, 0)] {
            let pt = plaintext(len);
            let mut w = encryptor(&config).into_writer(Vec::new()).unwrap();
            w.write_all(&pt).unwrap();
            let dirty = w.pending_dirty();
            assert!(dirty <= most, "{len} bytes written: {dirty} copied in");
            let message = w.finish().unwrap();
            assert_eq!(message, encryptor(&config).seal_all(&pt).unwrap(), "{len} bytes");
        }
    }
}

/// A write seals straight from the caller's buffer a whole batch when the
/// run is split across threads (2 MiB and more here), and otherwise a
/// quarter of a run at a time, as one thread's batches (what it writes
/// stays in cache); whole frames only, and nothing once bytes are buffered.
#[test]
fn direct_writes_seal_in_cache_sized_runs_unless_split() {
    let w = encryptor(&config(4096, 2)).into_writer(Vec::new()).unwrap();
    assert_eq!(w.direct_len(1 << 20), 256 << 10);
    assert_eq!(w.direct_len(100_000), 24 * 4096);
    assert_eq!(w.direct_len(4000), 0);
    assert_eq!(w.direct_len(8 << 20), 2 << 20);
    let one = encryptor(&config(4096, 1)).into_writer(Vec::new()).unwrap();
    assert_eq!(one.direct_len(1 << 20), 256 << 10);
    let mut w = w;
    w.write_all(&[1; 100]).unwrap();
    assert_eq!(w.direct_len(1 << 20), 0);
}

/// `copy_from` offers a reader what it has read so far, doubling from
/// 16 KiB, so a small message marks (and wipes) about its own size, not a
/// whole batch; a large one still reads whole batches, and both decrypt.
#[test]
fn copy_from_marks_for_wiping_about_what_it_read() {
    for threads in [1, 2] {
        let config = config(4096, threads);
        for (len, most) in [(4096, 16 << 10), (100_000, 256 << 10)] {
            let pt = plaintext(len);
            let mut w = encryptor(&config).into_writer(Vec::new()).unwrap();
            w.copy_from(&mut &pt[..]).unwrap();
            let dirty = w.pending_dirty();
            assert!(dirty >= len && dirty <= most, "{len} bytes read: {dirty} marked");
            let message = w.finish().unwrap();
            assert_eq!(message, streamed(&config, &pt), "{len} bytes");
        }
        assert_eq!(
            copied(&config, &plaintext(5 << 20)),
            streamed(&config, &plaintext(5 << 20))
        );
    }
}

/// A message of one batch (small, or up to a batch whose final frame
/// follows) is opened on the reading thread, never handed to the pool: the
/// reader would only wait for it. A larger one still is (and all read back).
#[test]
fn a_message_of_one_batch_is_opened_without_the_pool() {
    use crate::message::job::SPAWNED;
    let keyring = RawAesKeyring::new("ns", "k", WrappingKey::from_slice(&[3; 32]).unwrap()).unwrap();
    let context = EncryptionContext::new();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let c = config(4096, 2);
    let cases = [
        (4096, false),
        (60 << 10, false),
        (64 << 10, false),
        (1 << 20, false),
        (6 << 20, true),
    ];
    for (len, pooled) in cases {
        let pt = plaintext(len);
        let message = rt.block_on(encrypt(&c, &keyring, &context, &pt)).unwrap();
        let before = SPAWNED.with(std::cell::Cell::get);
        let mut reader = stream_reader(&rt, &c, &keyring, &context, &message[..]);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert!(out == pt && reader.is_complete(), "{len} bytes");
        let spawned = SPAWNED.with(std::cell::Cell::get) - before;
        assert_eq!(spawned > 0, pooled, "{len} bytes: {spawned} jobs on the pool");
    }
}

/// An async stream of a small message seals, opens and wipes its buffers
/// on its own thread (a hand-off to the pool would cost more than the
/// work), whether written or read with `copy_from`; a large one seals and
/// opens its batches on the pool, and its buffers, megabytes, are wiped
/// there.
#[cfg(feature = "tokio")]
#[test]
fn async_streams_keep_small_messages_on_their_thread() {
    use crate::message::job::SPAWNED;
    use crate::message::tokio_io::{read_header, AsyncDecryptReader, DROPPED_OFF_THREAD};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let keyring = RawAesKeyring::new("ns", "k", WrappingKey::from_slice(&[3; 32]).unwrap()).unwrap();
    let context = EncryptionContext::new();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let c = config(4096, 2);
    let cases = [
        (1024, false, false),
        (64 << 10, false, false),
        (64 << 10, true, false),
        (6 << 20, false, true),
        (6 << 20, true, true),
    ];
    for (len, copy, pooled) in cases {
        let pt = plaintext(len);
        let before = DROPPED_OFF_THREAD.with(std::cell::Cell::get);
        let jobs = SPAWNED.with(std::cell::Cell::get);
        let message = rt.block_on(async {
            let enc = Encryptor::new(&c, &keyring, &context).await.unwrap();
            let mut w = enc.into_async_writer(Vec::new());
            if copy {
                w.copy_from(&mut &pt[..]).await.unwrap();
            } else {
                w.write_all(&pt).await.unwrap();
            }
            w.shutdown().await.unwrap();
            w.into_inner()
        });
        let jobs = SPAWNED.with(std::cell::Cell::get) - jobs;
        assert_eq!(
            jobs > 0,
            pooled,
            "{len} bytes, copy {copy}: {jobs} batches on the pool"
        );
        let opened = rt.block_on(async {
            let mut input = &message[..];
            let parsed = read_header(&mut input, &c).await.unwrap();
            let core = parsed.decrypt(&keyring, &context).await.unwrap();
            let mut r = AsyncDecryptReader::new(core, input);
            let mut out = Vec::new();
            r.read_to_end(&mut out).await.unwrap();
            out
        });
        assert!(opened == pt, "{len} bytes");
        let off = DROPPED_OFF_THREAD.with(std::cell::Cell::get) - before;
        assert_eq!(off > 0, pooled, "{len} bytes: {off} dropped on the pool");
    }
}
