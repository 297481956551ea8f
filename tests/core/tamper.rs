//! Hostile bytes: every truncation point and a sweep of single-bit flips of
//! sample messages must fail cleanly (no panic, no plaintext beyond whole
//! verified regular frames); property tests for round trips and for
//! parse-never-panics.

use crate::common;

use std::io::Read;

use common::{aes, bytes, config_for, rsa};
use envseal::{AlgorithmSuite, Backend, Config, EncryptionContext, Error, RsaPadding};
use proptest::prelude::*;

struct Sample {
    name: String,
    /// The sample's config (signed messages stream) and keyring.
    client: envseal::blocking::Client,
    msg: Vec<u8>,
    frame: usize,
}

fn samples() -> Vec<Sample> {
    let mut out = Vec::new();
    let cases: [(AlgorithmSuite, u32, usize); 6] = [
        (AlgorithmSuite::Aes256GcmHkdfSha512CommitKey, 64, 150),
        (AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384, 64, 150),
        (AlgorithmSuite::Aes128GcmIv12Tag16HkdfSha256EcdsaP256, 32, 40),
        (AlgorithmSuite::Aes192GcmIv12Tag16HkdfSha256, 0, 50),
        (AlgorithmSuite::Aes128GcmIv12Tag16NoKdf, 16, 0),
        (AlgorithmSuite::Aes256GcmHkdfSha512CommitKey, 4096, 1),
    ];
    for (i, (suite, frame, len)) in cases.into_iter().enumerate() {
        let config = config_for(suite, frame, Backend::default());
        let ring = if i == 2 {
            rsa(Backend::default(), "ns", "rsa", RsaPadding::OaepSha256)
        } else {
            aes("ns", "k", &[i as u8; 32])
        };
        let context: EncryptionContext = [("k", "v")].into_iter().collect();
        let client = crate::common::client(&config, ring);
        let msg = client.encrypt(&context, &bytes(len, i as u64)).unwrap();
        out.push(Sample {
            name: format!("{suite:?} frame {frame} len {len}"),
            client,
            msg,
            frame: frame as usize,
        });
    }
    out
}

fn assert_fails(s: &Sample, bad: &[u8], what: &str) {
    if let Ok(d) = s.client.decrypt(&EncryptionContext::new(), bad) {
        panic!(
            "{}: {what}: one-shot decrypt succeeded ({} bytes)",
            s.name,
            d.plaintext.len()
        );
    }
    match crate::common::stream(&s.client, bad) {
        Ok(_) => panic!("{}: {what}: streaming decrypt succeeded", s.name),
        Err((_, released)) => {
            assert!(
                released == 0 || (s.frame > 0 && released % s.frame == 0),
                "{}: {what}: released {released} bytes",
                s.name
            );
        }
    }
}

#[test]
fn every_truncation_fails() {
    let mut count = 0;
    for s in samples() {
        assert!(s.client.decrypt(&EncryptionContext::new(), &s.msg).is_ok());
        for cut in 0..s.msg.len() {
            assert_fails(&s, &s.msg[..cut], &format!("truncated to {cut}"));
            count += 1;
        }
    }
    println!("{count} truncations rejected");
}

#[test]
fn every_single_bit_flip_fails() {
    let mut count = 0;
    for s in samples() {
        for pos in 0..s.msg.len() {
            // Every bit of the first 64 bytes (header fields), one rotating bit elsewhere.
            let bits: Vec<u8> = if pos < 64 {
                (0..8).collect()
            } else {
                vec![(pos % 8) as u8]
            };
            for bit in bits {
                let mut bad = s.msg.clone();
                bad[pos] ^= 1 << bit;
                assert_fails(&s, &bad, &format!("bit {bit} of byte {pos} flipped"));
                count += 1;
            }
        }
    }
    println!("{count} bit flips rejected");
}

#[test]
fn failed_open_leaves_no_plaintext_in_the_released_output() {
    // Frames are read and opened in batches (256 KiB on one thread, 1 MiB
    // per thread on several): a tampered frame in the second batch leaves
    // the first batch released (it verified) and nothing of the second.
    let ring = aes("ns", "k", &[9u8; 32]);
    let frame = 64usize;
    for (threads, batch_bytes) in [(1, 256 << 10), (2, 2 << 20)] {
        let config = Config::builder()
            .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
            .frame_length(frame as u32)
            .threads(threads)
            .build()
            .unwrap();
        let batch = batch_bytes / frame;
        let pt = bytes((batch + 3) * frame + 10, 5);
        let mut msg = crate::common::client(&config, ring.clone())
            .encrypt(&EncryptionContext::new(), &pt)
            .unwrap();
        let slot = 4 + 12 + frame + 16;
        let body = msg.len() - ((batch + 3) * slot + (4 + 4 + 12 + 4 + 10 + 16));
        // The second frame of the second batch.
        msg[body + (batch + 1) * slot + 16 + 10] ^= 0x80;
        match crate::common::stream(&crate::common::client(&config, ring.clone()), &msg) {
            Err((Error::Decrypt, released)) => {
                assert_eq!(released, batch * frame, "threads {threads}");
                assert_eq!(released, batch_bytes);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_tampered_batch_behind_batches_in_flight_releases_only_those_before() {
    // With several threads two batches open in the background (one when
    // the suite signs) while the caller takes the one before: a tampered
    // frame in batch 2, 3 or 4 (of 5 and a bit) releases exactly the
    // batches before it, the ones opened beside it included, and nothing
    // of its own; an untampered message reads back whole.
    let ring = aes("ns", "k", &[9u8; 32]);
    let frame = 4096usize;
    let batch_bytes = 2usize << 20;
    let batch = batch_bytes / frame;
    let slot = 4 + 12 + frame + 16;
    for suite in [
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
    ] {
        let config = Config::builder()
            .suite(suite)
            .frame_length(frame as u32)
            .threads(2)
            .allow_signed_streaming(true)
            .build()
            .unwrap();
        let pt = bytes(5 * batch_bytes + 3 * frame + 10, 6);
        let msg = crate::common::client(&config, ring.clone())
            .encrypt(&EncryptionContext::new(), &pt)
            .unwrap();
        assert!(
            crate::common::stream(&crate::common::client(&config, ring.clone()), &msg).unwrap() == pt,
            "{suite:?}"
        );
        let body = crate::common::parse(&config, &msg[..]).unwrap().header_len();
        for tampered in [1usize, 2, 3] {
            let mut bad = msg.clone();
            // A byte of the third frame of batch `tampered` (from 0).
            bad[body + (tampered * batch + 2) * slot + 16 + 100] ^= 0x04;
            match crate::common::stream(&crate::common::client(&config, ring.clone()), &bad) {
                Err((Error::Decrypt, released)) => {
                    assert_eq!(released, tampered * batch_bytes, "{suite:?} batch {tampered}");
                }
                other => panic!("{suite:?} batch {tampered}: {:?}", other.map(|p| p.len())),
            }
        }
    }
}

#[test]
fn streams_moved_onto_a_pool_worker_open_their_batches_there() {
    // A stream made on an ordinary thread, then read and written on a
    // rayon worker (of a pool of one, as a service's own pool may be):
    // batches seal and open on that worker instead of waiting on tasks
    // queued behind it, which would never run.
    let ring = aes("ns", "k", &[9u8; 32]);
    let config = Config::builder()
        .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
        .frame_length(4096)
        .threads(2)
        .build()
        .unwrap();
    let pt = bytes((9 << 20) + 5, 8);
    let msg = crate::common::client(&config, ring.clone())
        .encrypt(&EncryptionContext::new(), &pt)
        .unwrap();
    let enc = crate::common::client(&config, ring.clone())
        .encryptor(&EncryptionContext::new(), None)
        .unwrap();
    let writer = enc.into_writer(Vec::new()).unwrap();
    let d = crate::common::client(&config, ring.clone())
        .decryptor(std::io::Cursor::new(msg))
        .unwrap();
    let reader = d.decrypt(&EncryptionContext::new()).unwrap();
    let (done, result) = std::sync::mpsc::channel();
    let plaintext = pt.clone();
    std::thread::spawn(move || {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let out = pool.install(move || {
            let mut writer = writer;
            for piece in plaintext.chunks(700_001) {
                std::io::Write::write_all(&mut writer, piece).unwrap();
            }
            let sealed = writer.finish().unwrap();
            let mut reader = reader;
            let mut opened = Vec::new();
            reader.read_to_end(&mut opened).unwrap();
            (sealed, opened)
        });
        done.send(out).unwrap();
    });
    let (sealed, opened) = result
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("a stream on a pool worker waited on its own pool");
    assert!(opened == pt);
    let d = crate::common::client(&config, ring.clone())
        .decrypt(&EncryptionContext::new(), &sealed)
        .unwrap();
    assert!(*d.plaintext == pt);
}

/// Input that arrives in pieces sent on a channel: a read waits for the
/// next piece, as a read from a socket waits for the peer.
struct Arriving {
    pieces: std::sync::mpsc::Receiver<Vec<u8>>,
    piece: Vec<u8>,
    pos: usize,
}

impl Read for Arriving {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.piece.len() {
            match self.pieces.recv() {
                Ok(piece) => (self.piece, self.pos) = (piece, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.piece.len() - self.pos);
        out[..n].copy_from_slice(&self.piece[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn the_first_batch_is_released_once_three_batches_have_arrived() {
    // Two batches open in the background and one is read ahead: the first
    // is released without waiting for a fourth to arrive.
    let ring = aes("ns", "k", &[9u8; 32]);
    let frame = 4096usize;
    let batch_bytes = 2usize << 20;
    let slot = 4 + 12 + frame + 16;
    let config = Config::builder()
        .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
        .frame_length(frame as u32)
        .threads(2)
        .build()
        .unwrap();
    let pt = bytes(5 * batch_bytes + 10, 9);
    let msg = crate::common::client(&config, ring.clone())
        .encrypt(&EncryptionContext::new(), &pt)
        .unwrap();
    let three =
        crate::common::parse(&config, &msg[..]).unwrap().header_len() + 3 * (batch_bytes / frame) * slot;
    let (send, pieces) = std::sync::mpsc::channel();
    send.send(msg[..three].to_vec()).unwrap();
    let (released, first) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let input = Arriving {
            pieces,
            piece: Vec::new(),
            pos: 0,
        };
        let d = crate::common::client(&config, ring.clone())
            .decryptor(input)
            .unwrap();
        let mut r = d.decrypt(&EncryptionContext::new()).unwrap();
        released
            .send(std::io::BufRead::fill_buf(&mut r).unwrap().len())
            .unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        out
    });
    let got = first.recv_timeout(std::time::Duration::from_secs(60));
    // The rest arrives either way, so that the reader ends.
    send.send(msg[three..].to_vec()).unwrap();
    drop(send);
    assert_eq!(got, Ok(batch_bytes), "the first batch waited for a fourth");
    let out = reader.join().unwrap();
    assert!(
        out == pt,
        "the whole plaintext, the first batch included (not consumed)"
    );
}

fn any_suite() -> impl Strategy<Value = AlgorithmSuite> {
    prop::sample::select(AlgorithmSuite::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn round_trip(
        pt in prop::collection::vec(any::<u8>(), 0..3000),
        frame in prop_oneof![Just(0u32), 1u32..700],
        suite in any_suite(),
        context in prop::collection::btree_map("[a-z\u{e9}\u{4e2d}]{1,8}", ".{0,12}", 0..4),
    ) {
        let ring = aes("ns", "k", &[1u8; 16]);
        let config = config_for(suite, frame, Backend::default());
        let context: EncryptionContext = context.into_iter().collect();
        let msg = crate::common::client(&config, ring.clone()).encrypt(&context, &pt).unwrap();
        let d = crate::common::client(&config, ring.clone()).decrypt(&context, &msg).unwrap();
        prop_assert_eq!(&d.plaintext[..], &pt[..]);
        let streamed = crate::common::stream(&crate::common::client(&config, ring.clone()), &msg).map_err(|(e, _)| e.to_string());
        prop_assert_eq!(streamed, Ok(pt));
    }

    #[test]
    fn parse_never_panics_on_garbage(data in prop::collection::vec(any::<u8>(), 0..2000)) {
        let ring = aes("ns", "k", &[1u8; 32]);
        let config = config_for(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey, 64, Backend::default());
        prop_assert!(crate::common::client(&config, ring.clone()).decrypt(&EncryptionContext::new(), &data).is_err());
        let _ = crate::common::stream(&crate::common::client(&config, ring.clone()), &data);
    }

    #[test]
    fn mutated_messages_fail_without_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let ring = aes("ns", "k", &[1u8; 32]);
        let config = Config::builder().frame_length(32).build().unwrap();
        let original = crate::common::client(&config, ring.clone()).encrypt(&EncryptionContext::new(), &bytes(100, 1)).unwrap();
        let mut msg = original.clone();
        for (i, v) in &edits {
            let at = i.index(msg.len());
            msg[at] = *v;
        }
        if truncate {
            msg.truncate(cut.index(msg.len()));
        }
        if msg != original {
            prop_assert!(crate::common::client(&config, ring.clone()).decrypt(&EncryptionContext::new(), &msg).is_err());
            prop_assert!(crate::common::stream(&crate::common::client(&config, ring.clone()), &msg).is_err());
        }
    }
}
