//! envseal against raw AES-256-GCM (aws-lc-rs) and the AWS Encryption SDK for
//! Rust (`aws-esdk`), one-shot encrypt and decrypt with a raw AES keyring.
//!
//! Groups are `peer/<op>/<suite hex>/<size>` with the functions `raw`,
//! `envseal` (every core, its default), `envseal-1t` (one thread),
//! `envseal-into` (a reused output buffer, every core) and
//! `aws-esdk` (one thread: it has no parallel frames); every group has `Throughput::Bytes(size)`.
//! envseal's calls are in `../envseal_side.rs`, shared with the main crate's
//! `throughput` bench.
//! Before a group is timed, the two implementations' messages are checked to
//! decrypt in the other one (interop sanity check).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use aws_esdk::client as esdk_client;
use aws_esdk::material_providers::client as mpl_client;
use aws_esdk::material_providers::types::keyring::KeyringRef;
use aws_esdk::material_providers::types::material_providers_config::MaterialProvidersConfig;
use aws_esdk::material_providers::types::{AesWrappingAlg, EsdkAlgorithmSuiteId, EsdkCommitmentPolicy};
use aws_esdk::types::aws_encryption_sdk_config::AwsEncryptionSdkConfig;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use envseal::AlgorithmSuite;
use rand::{rngs::SmallRng, RngCore, SeedableRng};
use tokio::runtime::Runtime;

// envseal's side, also compiled by the main crate's `throughput` bench so
// that `cargo test --benches` keeps it in step with envseal's API.
#[path = "../envseal_side.rs"]
mod envseal_side;
use envseal_side::{Envseal, CONTEXT, FRAME_LENGTH, KEY, KEY_NAME, NAMESPACE};

/// (label, bytes). `PEER_BENCH_SIZES=1KiB,64KiB` keeps a subset.
const SIZES: [(&str, usize); 4] = [
    ("1KiB", 1 << 10),
    ("64KiB", 64 << 10),
    ("1MiB", 1 << 20),
    ("64MiB", 64 << 20),
];

#[derive(Clone, Copy)]
struct Suite {
    hex: &'static str,
    envseal: AlgorithmSuite,
    esdk: EsdkAlgorithmSuiteId,
}

const SUITES: [Suite; 2] = [
    Suite {
        hex: "0478",
        envseal: AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        esdk: EsdkAlgorithmSuiteId::AlgAes256GcmHkdfSha512CommitKey,
    },
    Suite {
        hex: "0578",
        envseal: AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
        esdk: EsdkAlgorithmSuiteId::AlgAes256GcmHkdfSha512CommitKeyEcdsaP384,
    },
];

/// The AWS Encryption SDK side: client, raw AES keyring, context.
struct Esdk {
    client: esdk_client::Client,
    keyring: KeyringRef,
    context: HashMap<String, String>,
}

impl Esdk {
    fn new(rt: &Runtime) -> Self {
        let config = AwsEncryptionSdkConfig::builder()
            .commitment_policy(EsdkCommitmentPolicy::RequireEncryptRequireDecrypt)
            .build()
            .expect("aws-esdk config");
        let client = esdk_client::Client::from_conf(config).expect("aws-esdk client");
        let mpl =
            mpl_client::Client::from_conf(MaterialProvidersConfig::builder().build().expect("mpl config"))
                .expect("mpl client");
        let keyring = rt
            .block_on(
                mpl.create_raw_aes_keyring()
                    .key_namespace(NAMESPACE)
                    .key_name(KEY_NAME)
                    .wrapping_key(KEY.to_vec())
                    .wrapping_alg(AesWrappingAlg::AlgAes256GcmIv12Tag16)
                    .send(),
            )
            .expect("aws-esdk raw AES keyring");
        let context = CONTEXT
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Esdk {
            client,
            keyring,
            context,
        }
    }

    fn encrypt(&self, rt: &Runtime, suite: EsdkAlgorithmSuiteId, plaintext: &[u8]) -> Vec<u8> {
        let out = rt
            .block_on(
                self.client
                    .encrypt()
                    .plaintext(plaintext)
                    .keyring(self.keyring.clone())
                    .encryption_context(self.context.clone())
                    .algorithm_suite_id(suite)
                    .frame_length(i64::from(FRAME_LENGTH))
                    .send(),
            )
            .expect("aws-esdk encrypt");
        out.ciphertext.expect("aws-esdk ciphertext").into_inner()
    }

    fn decrypt(&self, rt: &Runtime, message: &[u8]) -> Result<Vec<u8>, String> {
        let out = rt
            .block_on(
                self.client
                    .decrypt()
                    .ciphertext(message)
                    .keyring(self.keyring.clone())
                    .encryption_context(self.context.clone())
                    .send(),
            )
            .map_err(|e| format!("{e:?}"))?;
        Ok(out
            .plaintext
            .ok_or("aws-esdk decrypt: no plaintext")?
            .into_inner())
    }
}

/// Raw AES-256-GCM, one seal over the whole buffer (the baseline).
struct Raw {
    key: LessSafeKey,
}

impl Raw {
    fn new() -> Self {
        Raw {
            key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).expect("aes key")),
        }
    }

    fn nonce() -> Nonce {
        Nonce::assume_unique_for_key([1u8; 12])
    }

    fn seal(&self, buf: &mut [u8]) -> Tag {
        self.key
            .seal_in_place_separate_tag(Self::nonce(), Aad::empty(), buf)
            .expect("seal")
    }

    fn open(&self, buf: &mut [u8], tag: &Tag) {
        self.key
            .open_in_place_separate_tag(Self::nonce(), Aad::empty(), tag.as_ref(), buf)
            .expect("open");
    }
}

fn payload(len: usize) -> Vec<u8> {
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let mut buf = vec![0u8; len];
    rng.fill_bytes(&mut buf);
    buf
}

/// Messages each side wrote must decrypt in the other one.
fn interop_check(
    rt: &Runtime,
    esdk: &Esdk,
    seal: &Envseal,
    suite: Suite,
    client: &envseal::Client,
    pt: &[u8],
    size: &str,
) {
    let case = format!("suite 0x{} {size}", suite.hex);
    let from_esdk = esdk.encrypt(rt, suite.esdk, pt);
    match seal.decrypt(rt, client, &from_esdk) {
        Ok(out) => assert!(
            *out == pt,
            "{case}: envseal decrypted aws-esdk's message to other bytes"
        ),
        Err(e) => panic!("{case}: envseal cannot decrypt aws-esdk's message: {e}"),
    }
    let from_envseal = seal.encrypt(rt, client, pt);
    match esdk.decrypt(rt, &from_envseal) {
        Ok(out) => assert!(
            out == pt,
            "{case}: aws-esdk decrypted envseal's message to other bytes"
        ),
        Err(e) => panic!(
            "{case}: aws-esdk cannot decrypt envseal's message ({} bytes, header {:02x?}): {e}",
            from_envseal.len(),
            &from_envseal[..from_envseal.len().min(48)]
        ),
    }
    eprintln!(
        "interop ok: {case} (message bytes: envseal {}, aws-esdk {})",
        from_envseal.len(),
        from_esdk.len()
    );
}

fn sizes() -> Vec<(&'static str, usize)> {
    match std::env::var("PEER_BENCH_SIZES") {
        Ok(list) => {
            let want: Vec<String> = list.split(',').map(|s| s.trim().to_ascii_lowercase()).collect();
            SIZES
                .iter()
                .copied()
                .filter(|(l, _)| want.contains(&l.to_ascii_lowercase()))
                .collect()
        }
        Err(_) => SIZES.to_vec(),
    }
}

fn peer(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let esdk = Esdk::new(&rt);
    let seal = Envseal::new();
    let raw = Raw::new();

    for (size_label, size) in sizes() {
        let pt = payload(size);
        let big = size >= (16 << 20);
        for suite in SUITES {
            let config = Envseal::config(suite.envseal, 0);
            let client = Envseal::client(&config);
            let client_1t = Envseal::client(&Envseal::config(suite.envseal, 1));
            interop_check(&rt, &esdk, &seal, suite, &client, &pt, size_label);

            let configure = |g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>| {
                g.throughput(Throughput::Bytes(size as u64));
                // Small messages: many samples, so the median rides out this
                // VM's noisy neighbours (±15% between runs at 10 samples).
                g.sample_size(if big { 10 } else { 60 });
                g.warm_up_time(Duration::from_secs(1));
                g.measurement_time(Duration::from_secs(if big { 3 } else { 2 }));
                if big {
                    // Few, long iterations: one per sample is enough.
                    g.sampling_mode(SamplingMode::Flat);
                }
            };

            // --- encrypt ---
            {
                let mut g = c.benchmark_group(format!("peer/encrypt/{}/{size_label}", suite.hex));
                configure(&mut g);
                let mut buf = pt.clone();
                g.bench_function("raw", |b| b.iter(|| black_box(raw.seal(black_box(&mut buf)))));
                g.bench_function("envseal", |b| {
                    b.iter(|| black_box(seal.encrypt(&rt, &client, black_box(&pt))))
                });
                g.bench_function("envseal-1t", |b| {
                    b.iter(|| black_box(seal.encrypt(&rt, &client_1t, black_box(&pt))))
                });
                let mut out = Vec::new();
                g.bench_function("envseal-into", |b| {
                    b.iter(|| seal.encrypt_into(&rt, &client, black_box(&pt), &mut out))
                });
                g.bench_function("aws-esdk", |b| {
                    b.iter(|| black_box(esdk.encrypt(&rt, suite.esdk, black_box(&pt))))
                });
                g.finish();
            }

            // --- decrypt (each side reads its own message) ---
            {
                let mut g = c.benchmark_group(format!("peer/decrypt/{}/{size_label}", suite.hex));
                configure(&mut g);
                // Raw: open in place, re-sealing outside the timed part so each
                // iteration opens a valid ciphertext.
                let mut buf = pt.clone();
                let tag = raw.seal(&mut buf);
                g.bench_function("raw", |b| {
                    b.iter_batched_ref(
                        || buf.clone(),
                        |ct| raw.open(black_box(ct), &tag),
                        if big {
                            BatchSize::PerIteration
                        } else {
                            BatchSize::LargeInput
                        },
                    )
                });
                let msg = seal.encrypt(&rt, &client, &pt);
                g.bench_function("envseal", |b| {
                    b.iter(|| {
                        black_box(
                            seal.decrypt(&rt, &client, black_box(&msg))
                                .expect("envseal decrypt"),
                        )
                    })
                });
                g.bench_function("envseal-1t", |b| {
                    b.iter(|| {
                        black_box(
                            seal.decrypt(&rt, &client_1t, black_box(&msg))
                                .expect("envseal decrypt"),
                        )
                    })
                });
                let mut out = Vec::new();
                g.bench_function("envseal-into", |b| {
                    b.iter(|| black_box(seal.decrypt_into(&rt, &client, black_box(&msg), &mut out)))
                });
                let msg = esdk.encrypt(&rt, suite.esdk, &pt);
                g.bench_function("aws-esdk", |b| {
                    b.iter(|| black_box(esdk.decrypt(&rt, black_box(&msg)).expect("aws-esdk decrypt")))
                });
                g.finish();
            }
        }
    }
}

criterion_group!(benches, peer);
criterion_main!(benches);
