//! Throughput of envseal against raw AES-256-GCM from the same backend
//! (aws-lc-rs), in the same run: one-shot and streaming, suites 0x0478 and
//! 0x0578, frame lengths 4096 and 65536, one thread and every core.
//!
//! Run: `cargo bench --bench throughput` (or `scripts/bench` for the table).
//! Set `ENVSEAL_BENCH_SIZES=1k,64k` to run fewer sizes. One-shot encrypts
//! write into a reused output buffer (`Client::encrypt_into`), as the raw
//! baseline seals a reused buffer; one-shot decrypts likewise write into a
//! reused buffer (`Client::decrypt_into`). `*-fresh-vec` allocates a new
//! `Vec` per message (`Client::encrypt`/`decrypt`), paying the page faults
//! of fresh memory (about 2 µs per 4 KiB page on the 2-vCPU VM).
//! `raw-aes-256-gcm-out-of-place` seals the plaintext into a second buffer
//! as envseal does, which shows what the extra memory traffic costs;
//! `raw-aes-256-gcm-frames-N` seals it frame by frame (N bytes each, out of
//! place), the floor for a framed message on this backend.
//! `stream-async-*`: the tokio streams, beside the sync stream of the same
//! case. Every streaming path runs at every size with both frame lengths
//! (the default thread setting), so that `scripts/bench_summary.py` can
//! set each against the one-shot of the same size, direction and frame
//! length from the same run (the streams-against-one-shot table).

use std::hint::black_box;
use std::io::{BufRead, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use envseal::{AlgorithmSuite, Client, Config, EncryptionContext, Keyring, RawAesKeyring, WrappingKey};

// envseal's side of the peer benchmark (benches/peer, its own workspace so
// that this build never compiles aws-esdk): compiled here so that
// `cargo test --benches` keeps it in step with envseal's API, and run once
// in test mode (`peer_envseal_check`).
#[path = "peer/envseal_side.rs"]
mod peer_envseal;

const SIZES: [(&str, usize); 4] = [
    ("1k", 1 << 10),
    ("64k", 64 << 10),
    ("1m", 1 << 20),
    ("64m", 64 << 20),
];

struct Case {
    name: &'static str,
    suite: AlgorithmSuite,
    frame_length: u32,
    threads: usize,
    streaming: bool,
}

const CASES: [Case; 15] = [
    case(
        "0478-f4096-1t",
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        4096,
        1,
        false,
    ),
    case(
        "0478-f65536-1t",
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        65536,
        1,
        false,
    ),
    case(
        "0478-f4096-all",
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        4096,
        0,
        false,
    ),
    case(
        "0478-f65536-all",
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        65536,
        0,
        false,
    ),
    case(
        "0578-f4096-1t",
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
        4096,
        1,
        false,
    ),
    case(
        "0578-f4096-all",
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
        4096,
        0,
        false,
    ),
    case(
        "0478-f4096-1t-fresh-vec",
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        4096,
        1,
        false,
    ),
    case(
        "stream-0478-f4096-1t",
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        4096,
        1,
        true,
    ),
    case(
        "stream-0478-f4096-all",
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        4096,
        0,
        true,
    ),
    case(
        "stream-0478-f65536-1t",
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        65536,
        1,
        true,
    ),
    case(
        "stream-0478-f65536-all",
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        65536,
        0,
        true,
    ),
    case(
        "stream-copy-0478-f4096-all",
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        4096,
        0,
        true,
    ),
    case(
        "stream-copy-0478-f65536-all",
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        65536,
        0,
        true,
    ),
    case(
        "stream-0578-f4096-1t",
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
        4096,
        1,
        true,
    ),
    case(
        "stream-0578-f4096-all",
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
        4096,
        0,
        true,
    ),
];

const fn case(
    name: &'static str,
    suite: AlgorithmSuite,
    frame_length: u32,
    threads: usize,
    streaming: bool,
) -> Case {
    Case {
        name,
        suite,
        frame_length,
        threads,
        streaming,
    }
}

fn sizes() -> Vec<(&'static str, usize)> {
    match std::env::var("ENVSEAL_BENCH_SIZES") {
        Ok(list) => SIZES
            .into_iter()
            .filter(|(name, _)| list.split(',').any(|s| s.trim() == *name))
            .collect(),
        Err(_) => SIZES.to_vec(),
    }
}

fn configure(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, size: usize) {
    group.throughput(Throughput::Bytes(size as u64));
    group.warm_up_time(Duration::from_millis(500));
    if size >= 16 << 20 {
        group.sample_size(10).measurement_time(Duration::from_secs(3));
    } else {
        group.sample_size(30).measurement_time(Duration::from_secs(2));
    }
}

fn raw_key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[0x11; 32]).unwrap())
}

fn throughput(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keyring: Arc<dyn Keyring> =
        Arc::new(RawAesKeyring::new("bench", "key-1", WrappingKey::from_slice(&[7; 32]).unwrap()).unwrap());
    let context: EncryptionContext = [("purpose", "bench"), ("tenant", "acme")].into_iter().collect();
    for (label, size) in sizes() {
        let plaintext: Vec<u8> = (0..size).map(|i| (i * 131 % 251) as u8).collect();

        let mut group = c.benchmark_group(format!("encrypt/{label}"));
        configure(&mut group, size);
        // The baseline: one AES-256-GCM seal over the whole buffer.
        let key = raw_key();
        let mut buf = plaintext.clone();
        group.bench_function("raw-aes-256-gcm", |b| {
            b.iter(|| {
                key.seal_in_place_separate_tag(Nonce::assume_unique_for_key([0; 12]), Aad::empty(), &mut buf)
                    .unwrap()
            })
        });
        // The same seal out of place, into a reused buffer, as envseal's
        // one-shot encrypt writes: the cost of a second buffer's memory traffic.
        let mut sealed = vec![0u8; size];
        group.bench_function("raw-aes-256-gcm-out-of-place", |b| {
            b.iter(|| {
                let mut tag = [0u8; 16];
                key.seal_out_of_place_scatter(
                    Nonce::assume_unique_for_key([0; 12]),
                    Aad::empty(),
                    &plaintext,
                    &mut sealed,
                    &[],
                    &mut tag,
                )
                .unwrap();
                tag
            })
        });
        // The floor for any framed message: the same out-of-place seal cut
        // into frames (frame-sized seals with a frame-like AAD), without the
        // format. aws-lc's fixed cost per seal shows here.
        for frame in [4096usize, 65536] {
            if size < 2 * frame {
                continue;
            }
            group.bench_function(format!("raw-aes-256-gcm-frames-{frame}"), |b| {
                b.iter(|| {
                    for (i, (pt, ct)) in plaintext
                        .chunks_exact(frame)
                        .zip(sealed.chunks_exact_mut(frame))
                        .enumerate()
                    {
                        let mut tag = [0u8; 16];
                        let mut nonce = [0u8; 12];
                        nonce[8..].copy_from_slice(&(i as u32).to_be_bytes());
                        key.seal_out_of_place_scatter(
                            Nonce::assume_unique_for_key(nonce),
                            Aad::from(&[0u8; 76]),
                            pt,
                            ct,
                            &[],
                            &mut tag,
                        )
                        .unwrap();
                        black_box(tag);
                    }
                })
            });
        }
        drop(sealed);
        sha384_floor(&mut group, &plaintext);
        for case in &CASES {
            let config = case_config(case);
            group.bench_function(BenchmarkId::from_parameter(case.name), |b| {
                if case.streaming {
                    // `stream-copy-*` reads the plaintext through
                    // `EncryptWriter::copy_from` (batches sealed in the
                    // background while the next is read); `stream-*`
                    // hands it over in one `write_all`.
                    let copy = case.name.starts_with("stream-copy");
                    let feed = if copy { Feed::Copy } else { Feed::Whole };
                    let client = blocking_for(&keyring, &config);
                    b.iter(|| seal_stream(&client, &context, &plaintext, feed))
                } else if case.name.ends_with("fresh-vec") {
                    // A new output Vec per message (fresh pages from the OS).
                    let client = client_for(&keyring, &config);
                    b.iter(|| black_box(rt.block_on(client.encrypt(&context, &plaintext)).unwrap()))
                } else {
                    // The output buffer is reused, as a service loop would.
                    let client = client_for(&keyring, &config);
                    let mut out = Vec::new();
                    b.iter(|| {
                        rt.block_on(client.encrypt_into(&context, &plaintext, &mut out))
                            .unwrap()
                    })
                }
            });
        }
        // The tokio writer (an `AsyncWrite`), beside the sync stream of the
        // same case: the plaintext in one `write_all` (which the writer
        // copies into its batches), then `shutdown`; `stream-async-copy-*`
        // reads it from an `AsyncRead` with `copy_from`, straight into the
        // batches, as the sync `stream-copy-*` does.
        for (name, sync_name) in ASYNC_CASES.iter() {
            let case = CASES.iter().find(|c| c.name == *sync_name).unwrap();
            let client = client_for(&keyring, &case_config(case));
            let copy = name.starts_with("stream-async-copy");
            group.bench_function(*name, |b| {
                let feed = if copy { Feed::Copy } else { Feed::Whole };
                b.iter(|| seal_stream_async(&rt, &client, &context, &plaintext, feed))
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("decrypt/{label}"));
        configure(&mut group, size);
        let mut sealed = plaintext.clone();
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key([0; 12]), Aad::empty(), &mut sealed)
            .unwrap();
        sealed.extend_from_slice(tag.as_ref());
        // The baseline: one AES-256-GCM open over the whole buffer, out of
        // place into a reused buffer (no copy to restore the ciphertext).
        let (ct, tag) = sealed.split_at(size);
        let mut work = vec![0u8; size];
        group.bench_function("raw-aes-256-gcm", |b| {
            b.iter(|| {
                key.open_separate_gather(
                    Nonce::assume_unique_for_key([0; 12]),
                    Aad::empty(),
                    ct,
                    tag,
                    &mut work,
                )
                .unwrap()
            })
        });
        // The floor for opening a framed message: frame-sized opens out of
        // place, without the format.
        let framed: Vec<(usize, Vec<u8>, Vec<[u8; 16]>)> = [4096usize, 65536]
            .into_iter()
            .filter(|&f| size >= 2 * f)
            .map(|frame| {
                let mut ct = plaintext.clone();
                let tags = ct
                    .chunks_exact_mut(frame)
                    .enumerate()
                    .map(|(i, chunk)| {
                        let tag = key
                            .seal_in_place_separate_tag(frame_nonce(i), Aad::from(&[0u8; 76]), chunk)
                            .unwrap();
                        tag.as_ref().try_into().unwrap()
                    })
                    .collect();
                (frame, ct, tags)
            })
            .collect();
        for (frame, ct, tags) in &framed {
            group.bench_function(format!("raw-aes-256-gcm-frames-{frame}"), |b| {
                b.iter(|| {
                    for (i, ((c, t), out)) in ct
                        .chunks_exact(*frame)
                        .zip(tags)
                        .zip(work.chunks_exact_mut(*frame))
                        .enumerate()
                    {
                        key.open_separate_gather(frame_nonce(i), Aad::from(&[0u8; 76]), c, t, out)
                            .unwrap();
                    }
                })
            });
        }
        drop(framed);
        sha384_floor(&mut group, &plaintext);
        for case in &CASES {
            let config = case_config(case);
            let message = rt
                .block_on(client_for(&keyring, &config).encrypt(&context, &plaintext))
                .unwrap();
            group.bench_function(BenchmarkId::from_parameter(case.name), |b| {
                if case.streaming {
                    // `stream-*` takes the verified plaintext where the
                    // reader holds it (`BufRead`); `stream-copy-*` copies
                    // it out in 64 KiB reads, as `io::copy` would.
                    let copy = case.name.starts_with("stream-copy");
                    let mut out = vec![0u8; 1 << 16];
                    let client = blocking_for(&keyring, &config);
                    b.iter(|| open_stream(&client, &context, &message, copy, &mut out))
                } else if case.name.ends_with("fresh-vec") {
                    let client = client_for(&keyring, &config);
                    b.iter(|| black_box(rt.block_on(client.decrypt(&context, &message)).unwrap()))
                } else {
                    // The plaintext buffer is reused, as a service loop would.
                    let client = client_for(&keyring, &config);
                    let mut out = Vec::new();
                    b.iter(|| {
                        rt.block_on(client.decrypt_into(&context, &message, &mut out))
                            .unwrap()
                    })
                }
            });
        }
        // The tokio reader (an `AsyncBufRead`), beside the sync stream of
        // the same case: the verified plaintext taken where it lies, or
        // (`stream-async-copy-*`, as the sync `stream-copy-*`) copied out
        // in 64 KiB reads.
        for (name, sync_name) in ASYNC_CASES.iter() {
            let case = CASES.iter().find(|c| c.name == *sync_name).unwrap();
            let config = case_config(case);
            let client = client_for(&keyring, &config);
            let message = rt
                .block_on(client_for(&keyring, &config).encrypt(&context, &plaintext))
                .unwrap();
            let copy = name.starts_with("stream-async-copy");
            let mut out = vec![0u8; 1 << 16];
            group.bench_function(*name, |b| {
                b.iter(|| open_stream_async(&rt, &client, &context, &message, copy, &mut out))
            });
        }
        group.finish();
    }
}

/// The tokio streams, each with the sync streaming case it is measured
/// against in the same run.
const ASYNC_CASES: [(&str, &str); 4] = [
    ("stream-async-0478-f4096-all", "stream-0478-f4096-all"),
    ("stream-async-0478-f65536-all", "stream-0478-f65536-all"),
    ("stream-async-copy-0478-f4096-all", "stream-copy-0478-f4096-all"),
    ("stream-async-copy-0478-f65536-all", "stream-copy-0478-f65536-all"),
];

/// The floor of a signed stream: one SHA-384 pass over the bytes (the
/// signature hashes the whole message, in order, on one core).
fn sha384_floor(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, data: &[u8]) {
    group.bench_function("sha384", |b| {
        b.iter(|| black_box(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, data)))
    });
}

fn frame_nonce(i: usize) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[8..].copy_from_slice(&(i as u32).to_be_bytes());
    Nonce::assume_unique_for_key(nonce)
}

fn client_for(keyring: &Arc<dyn Keyring>, config: &Config) -> Client {
    Client::builder_shared(Arc::clone(keyring))
        .config(config.clone())
        .build()
        .unwrap()
}

/// The blocking client, for the sync streams (std I/O).
fn blocking_for(keyring: &Arc<dyn Keyring>, config: &Config) -> envseal::blocking::Client {
    envseal::blocking::Client::builder_shared(Arc::clone(keyring))
        .config(config.clone())
        .build()
        .unwrap()
}

/// A case's config; signed messages stream (the 0x0578 stream cases).
fn case_config(case: &Case) -> Config {
    Config::builder()
        .suite(case.suite)
        .frame_length(case.frame_length)
        .threads(case.threads)
        .allow_signed_streaming(true)
        .build()
        .unwrap()
}

/// The sync streaming encrypt: the plaintext in one `write_all` (sealed
/// straight from it), read through `copy_from`, or written in pieces.
fn seal_stream(
    client: &envseal::blocking::Client,
    context: &EncryptionContext,
    plaintext: &[u8],
    feed: Feed,
) {
    let mut w = client.encrypt_stream(context, std::io::sink()).unwrap();
    match feed {
        Feed::Whole => w.write_all(plaintext).unwrap(),
        Feed::Copy => drop(w.copy_from(&mut &plaintext[..]).unwrap()),
        Feed::Pieces => plaintext.chunks(PIECE).for_each(|p| w.write_all(p).unwrap()),
    }
    w.finish().unwrap();
}

/// How a streaming encrypt gets its plaintext: one `write_all` of all of
/// it, `copy_from` a reader, or `write_all`s of [`PIECE`] bytes (as a
/// service writes the chunks of a request body as they come).
#[derive(Clone, Copy)]
enum Feed {
    Whole,
    Copy,
    Pieces,
}

const PIECE: usize = 64 << 10;

/// The tokio writer: the plaintext in one `write_all` (which it copies
/// into its batches), or read from an `AsyncRead` with `copy_from`, then
/// `shutdown`.
fn seal_stream_async(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    context: &EncryptionContext,
    plaintext: &[u8],
    feed: Feed,
) {
    rt.block_on(async {
        use tokio::io::AsyncWriteExt;
        let mut w = client.encrypt_stream(context, tokio::io::sink()).await.unwrap();
        match feed {
            Feed::Whole => w.write_all(plaintext).await.unwrap(),
            Feed::Copy => drop(w.copy_from(&mut &plaintext[..]).await.unwrap()),
            Feed::Pieces => {
                for piece in plaintext.chunks(PIECE) {
                    w.write_all(piece).await.unwrap();
                }
            }
        }
        w.shutdown().await.unwrap();
    })
}

/// The sync streaming decrypt: the verified plaintext taken where the
/// reader holds it (`BufRead`), or copied out in reads of `out`'s size.
fn open_stream(
    client: &envseal::blocking::Client,
    context: &EncryptionContext,
    message: &[u8],
    copy: bool,
    out: &mut [u8],
) {
    let mut r = client.decrypt_stream(context, message).unwrap();
    if copy {
        while r.read(out).unwrap() > 0 {}
    } else {
        loop {
            let n = black_box(r.fill_buf().unwrap()).len();
            if n == 0 {
                break;
            }
            r.consume(n);
        }
    }
    assert!(r.is_complete());
}

/// The tokio reader, as [`open_stream`]: `AsyncBufRead`, or copied out.
fn open_stream_async(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    context: &EncryptionContext,
    message: &[u8],
    copy: bool,
    out: &mut [u8],
) {
    rt.block_on(async {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt};
        let mut r = client.decrypt_stream(context, message).await.unwrap();
        if copy {
            while r.read(out).await.unwrap() > 0 {}
        } else {
            loop {
                let n = black_box(r.fill_buf().await.unwrap()).len();
                if n == 0 {
                    break;
                }
                std::pin::Pin::new(&mut r).consume(n);
            }
        }
        assert!(r.is_complete());
    })
}

/// Rounds of the paired async-against-sync run.
const PAIR_ROUNDS: usize = 41;
/// Messages per case per round.
const PAIR_MESSAGES: u32 = 4;

/// `ENVSEAL_BENCH_PAIRS=1`: each tokio stream against its sync stream on
/// 64 MiB, measured in turns (a few messages of one, then of the other,
/// the order swapped every round) so that a shared host's drift hits both
/// alike; prints a table of the medians and of the median per-round ratio.
fn pairs() {
    const SIZE: usize = 64 << 20;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keyring: Arc<dyn Keyring> =
        Arc::new(RawAesKeyring::new("bench", "key-1", WrappingKey::from_slice(&[7; 32]).unwrap()).unwrap());
    let context: EncryptionContext = [("purpose", "bench"), ("tenant", "acme")].into_iter().collect();
    let plaintext: Vec<u8> = (0..SIZE).map(|i| (i * 131 % 251) as u8).collect();
    let mut out = vec![0u8; 1 << 16];
    println!("| op | async case | sync case | sync MB/s | async MB/s | async of sync (median of {PAIR_ROUNDS} rounds, range) |");
    println!("|---|---|---|---:|---:|---:|");
    // The criterion cases both ways, and encrypts written in 64 KiB pieces
    // (named after the case they configure as).
    let pieces = [
        (
            "stream-async-pieces-0478-f4096-all",
            "stream-pieces-0478-f4096-all",
        ),
        (
            "stream-async-pieces-0478-f65536-all",
            "stream-pieces-0478-f65536-all",
        ),
    ];
    let rows = ASYNC_CASES
        .iter()
        .chain(&pieces)
        .map(|row| ("encrypt", row))
        .chain(ASYNC_CASES.iter().map(|row| ("decrypt", row)));
    for (op, &(name, sync_name)) in rows {
        let base = sync_name.replace("stream-pieces-", "stream-");
        let case = CASES.iter().find(|c| c.name == base).unwrap();
        let config = case_config(case);
        let client = client_for(&keyring, &config);
        let blocking = blocking_for(&keyring, &config);
        let copy = name.starts_with("stream-async-copy");
        let feed = match () {
            _ if copy => Feed::Copy,
            _ if name.starts_with("stream-async-pieces") => Feed::Pieces,
            _ => Feed::Whole,
        };
        let message = rt
            .block_on(client_for(&keyring, &config).encrypt(&context, &plaintext))
            .unwrap();
        let mut run = |asynchronous: bool| {
            let start = std::time::Instant::now();
            for _ in 0..PAIR_MESSAGES {
                match (op, asynchronous) {
                    ("encrypt", false) => seal_stream(&blocking, &context, &plaintext, feed),
                    ("encrypt", true) => seal_stream_async(&rt, &client, &context, &plaintext, feed),
                    (_, false) => open_stream(&blocking, &context, &message, copy, &mut out),
                    (_, true) => open_stream_async(&rt, &client, &context, &message, copy, &mut out),
                }
            }
            start.elapsed().as_secs_f64() / f64::from(PAIR_MESSAGES)
        };
        // Warm-up: buffers pooled, pages touched.
        run(false);
        run(true);
        let (mut sync, mut asynchronous, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..PAIR_ROUNDS {
            let (s, a) = if round % 2 == 0 {
                let s = run(false);
                (s, run(true))
            } else {
                let a = run(true);
                (run(false), a)
            };
            sync.push(s);
            asynchronous.push(a);
            ratios.push(s / a);
        }
        let mbps = |t: f64| SIZE as f64 / t / 1e6;
        let (lo, hi) = (
            ratios.iter().copied().fold(f64::MAX, f64::min),
            ratios.iter().copied().fold(0.0, f64::max),
        );
        println!(
            "| {op} | {name} | {sync_name} | {:.0} | {:.0} | {:.0}% ({:.0}-{:.0}%) |",
            mbps(median(&mut sync)),
            mbps(median(&mut asynchronous)),
            100.0 * median(&mut ratios),
            100.0 * lo,
            100.0 * hi,
        );
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The peer benchmark's envseal calls, once each on both suites with every
/// core and one thread: each message decrypts back, through both paths.
fn peer_envseal_check() {
    use peer_envseal::Envseal;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let seal = Envseal::new();
    let plaintext: Vec<u8> = (0..3 * peer_envseal::FRAME_LENGTH + 5).map(|i| i as u8).collect();
    let suites = [
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
    ];
    for suite in suites {
        for threads in [0, 1] {
            let config = Envseal::config(suite, threads);
            let client = Envseal::client(&config);
            let message = seal.encrypt(&rt, &client, &plaintext);
            let opened = seal
                .decrypt(&rt, &client, &message)
                .expect("peer envseal decrypt");
            assert!(*opened == plaintext, "peer envseal: {suite:?} round trip");
            let (mut sealed, mut out) = (Vec::new(), Vec::new());
            seal.encrypt_into(&rt, &client, &plaintext, &mut sealed);
            let info = seal.decrypt_into(&rt, &client, &message, &mut out);
            assert!(
                out == plaintext && info.suite == suite,
                "peer envseal: {suite:?} decrypt_into"
            );
            let opened = seal.decrypt(&rt, &client, &sealed).expect("peer envseal decrypt");
            assert!(*opened == plaintext, "peer envseal: {suite:?} encrypt_into");
        }
    }
    eprintln!("peer envseal side (benches/peer/envseal_side.rs): 0x0478 and 0x0578 round trips ok");
}

criterion_group!(benches, throughput);

fn main() {
    if std::env::var_os("ENVSEAL_BENCH_PAIRS").is_some() {
        pairs();
        return;
    }
    // Test mode (`cargo test --benches`: no `--bench` argument).
    if !std::env::args().any(|a| a == "--bench") {
        peer_envseal_check();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
