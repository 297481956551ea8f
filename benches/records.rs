//! 1 KiB records, suite 0x0478, with a cached data key, against the
//! per-message limit measured in the same run: the primitives every ESDK
//! message needs (32 random bytes for the message id, HKDF-SHA512 extract
//! and the two expands for key and commitment, the AES-256-GCM key
//! schedule, the header tag, the body seal of 1 KiB). `limit` takes HKDF
//! from RustCrypto's hkdf as envseal does, the rest from aws-lc-rs;
//! `limit-aws-lc-hkdf` takes HKDF from aws-lc-rs too. The summary divides
//! by the faster of the two.
//!
//! `record-1k-per-message-key`: a new data key for every message (no
//! data-key cache), wrapped by the raw AES keyring, and by the hierarchical
//! keyring with its branch key cached (moto is its key store; one HMAC-SHA256
//! and one AES-GCM wrap more than raw AES, by design); by the raw ECDH
//! keyring (static and ephemeral-to-discovery, P-256, beside one P-256
//! agreement from aws-lc); and with moto, by the KMS RSA keyring (local
//! RSA-OAEP encrypt, a KMS Decrypt per message) and the KMS ECDH static
//! keyring (a KMS DeriveSharedSecret per message both ways, as the MPL's;
//! a data-key cache amortizes it like any KMS call).
//!
//! After the criterion groups, a KMS run against moto (when
//! `ENVSEAL_MOTO_SERVER` or `.venv/bin/moto_server` exists): 1,000,000
//! records through a KMS keyring with max messages 10,000, printing
//! records per second and GenerateDataKey calls per million records.
//!
//! Run: `cargo bench --bench records`.

#[path = "../tests/common/moto.rs"]
#[allow(dead_code)]
mod moto;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::hkdf::{Salt, HKDF_SHA512};
use criterion::{criterion_group, Criterion, Throughput};
use envseal::keystore::KeyStore;
use envseal::kms::AwsBounds;
use envseal::HierarchyKeyring;
use envseal::{
    AlgorithmSuite, CacheLimits, Client, Config, EncryptionContext, KmsKeyring, MaterialsCache,
    RawAesKeyring, WrappingKey,
};
use hkdf::Hkdf;
use sha2::Sha512;

const RECORD: usize = 1024;

fn config() -> Config {
    Config::builder()
        .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
        .threads(1)
        .build()
        .unwrap()
}

fn context() -> EncryptionContext {
    [("table", "customers"), ("tenant", "acme")].into_iter().collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

struct Len(usize);
impl aws_lc_rs::hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn records(c: &mut Criterion) {
    let rt = runtime();
    let keyring = RawAesKeyring::new("bench", "key-1", WrappingKey::from_slice(&[7; 32]).unwrap()).unwrap();
    let client = Client::builder(keyring)
        .config(config())
        .cache(
            MaterialsCache::new(100).unwrap(),
            CacheLimits::builder(Duration::from_secs(3600)).build().unwrap(),
        )
        .build()
        .unwrap();
    let context = context();
    let record: Vec<u8> = (0..RECORD).map(|i| (i * 7) as u8).collect();
    // The real header of such a message, for the limit's header tag.
    let sample = rt.block_on(client.encrypt(&context, &record)).unwrap();
    let header_len = sample.len() - (4 + 4 + 12 + 4 + RECORD + 16) - 16;

    let mut group = c.benchmark_group("record-1k");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));

    let data_key = [9u8; 32];
    let mut body = record.clone();
    let header_aad = vec![1u8; header_len];
    let body_aad = [2u8; 32 + 34 + 12];
    // The primitives after HKDF: key schedule, header tag, body seal.
    let mut seal = |key: &[u8; 32]| {
        let gcm = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).unwrap());
        let header_tag = gcm
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::from(&header_aad),
                &mut [],
            )
            .unwrap();
        let body_tag = gcm
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([1; 12]),
                Aad::from(&body_aad),
                &mut body,
            )
            .unwrap();
        (header_tag, body_tag)
    };
    group.bench_function("limit", |b| {
        b.iter(|| {
            let mut message_id = [0u8; 32];
            aws_lc_rs::rand::fill(&mut message_id).unwrap();
            let hk = Hkdf::<Sha512>::new(Some(&message_id), &data_key);
            let mut key = [0u8; 32];
            let mut commit = [0u8; 32];
            hk.expand_multi_info(&[&[0x04, 0x78], b"DERIVEKEY"], &mut key)
                .unwrap();
            hk.expand(b"COMMITKEY", &mut commit).unwrap();
            black_box((seal(&key), commit))
        })
    });
    group.bench_function("limit-aws-lc-hkdf", |b| {
        b.iter(|| {
            let mut message_id = [0u8; 32];
            aws_lc_rs::rand::fill(&mut message_id).unwrap();
            let prk = Salt::new(HKDF_SHA512, &message_id).extract(&data_key);
            let mut key = [0u8; 32];
            let mut commit = [0u8; 32];
            prk.expand(&[&[0x04, 0x78], b"DERIVEKEY"], Len(32))
                .unwrap()
                .fill(&mut key)
                .unwrap();
            prk.expand(&[b"COMMITKEY"], Len(32))
                .unwrap()
                .fill(&mut commit)
                .unwrap();
            black_box((seal(&key), commit))
        })
    });

    let mut out = Vec::new();
    group.bench_function("envseal-cached-encrypt", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    client.encrypt_into(&context, &record, &mut out).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("envseal-cached-decrypt", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(client.decrypt(&context, &sample).await.unwrap());
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    per_message_key(c, &rt, &context, &record);
}

/// Whether moto's server is there (scripts/test installs it).
fn moto_available() -> bool {
    std::env::var_os("ENVSEAL_MOTO_SERVER").is_some()
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".venv/bin/moto_server")
            .exists()
}

/// The hierarchical keyring over a fresh branch key in moto.
fn hierarchy_keyring(rt: &tokio::runtime::Runtime) -> HierarchyKeyring {
    rt.block_on(async {
        let key = moto::create_key("us-east-1").await;
        let kms = moto::client("us-east-1", &moto::moto().url, AwsBounds::default()).await;
        let store = KeyStore::builder(format!("records-{}", std::process::id()), key)
            .kms_client(kms)
            .build()
            .await
            .unwrap();
        store.create_table().await.unwrap();
        let id = store.create_key(None, &EncryptionContext::new()).await.unwrap();
        HierarchyKeyring::builder(store, Duration::from_secs(3600))
            .branch_key_id(id)
            .build()
            .unwrap()
    })
}

/// A new data key per message: raw AES against the hierarchical keyring
/// with a cached branch key.
fn per_message_key(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    context: &EncryptionContext,
    record: &[u8],
) {
    let raw = RawAesKeyring::new("bench", "key-1", WrappingKey::from_slice(&[7; 32]).unwrap()).unwrap();
    let client = |k: Arc<dyn envseal::Keyring>| Client::builder_shared(k).config(config()).build().unwrap();
    // (name, the encrypting client, the decrypting client)
    let mut clients: Vec<(&str, Client, Client)> = Vec::new();
    let raw: Arc<dyn envseal::Keyring> = Arc::new(raw);
    clients.push(("raw-aes-keyring", client(raw.clone()), client(raw)));
    if moto_available() {
        let h: Arc<dyn envseal::Keyring> = Arc::new(hierarchy_keyring(rt));
        clients.push(("hierarchy-cached-branch-key", client(h.clone()), client(h)));
    } else {
        assert!(std::env::var("CI").is_err(), "records: no moto_server in CI");
        println!("record-1k-per-message-key: hierarchy skipped (no moto_server; scripts/test installs it)");
    }
    let ecdh_key = |who: &str, part: &str| {
        std::fs::read(format!(
            "{}/tests/data/ecdh-p256-{who}-{part}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let curve = envseal::Curve::P256;
    let a = || envseal::EcdhPrivateKey::from_pkcs8(curve, &ecdh_key("a", "private.pem")).unwrap();
    let b_public = || envseal::EcdhPublicKey::from_bytes(curve, &ecdh_key("b", "public.der")).unwrap();
    let b = || envseal::EcdhPrivateKey::from_pkcs8(curve, &ecdh_key("b", "private.pem")).unwrap();
    let ecdh_static: Arc<dyn envseal::Keyring> =
        Arc::new(envseal::RawEcdhKeyring::static_keys(a(), b_public()).unwrap());
    clients.push((
        "raw-ecdh-static-p256",
        client(ecdh_static.clone()),
        client(ecdh_static),
    ));
    // Ephemeral to B, read by B's discovery keyring: one agreement each way.
    clients.push((
        "raw-ecdh-ephemeral-discovery-p256",
        client(Arc::new(envseal::RawEcdhKeyring::ephemeral(b_public()))),
        client(Arc::new(envseal::RawEcdhKeyring::discovery(b()))),
    ));
    if moto_available() {
        clients.extend(kms_asymmetric_clients(rt, &client, b_public()));
    }
    let mut group = c.benchmark_group("record-1k-per-message-key");
    // The raw primitive under each ECDH message: one P-256 agreement (aws-lc).
    {
        use aws_lc_rs::agreement::{agree, PrivateKey, UnparsedPublicKey, ECDH_P256};
        let pem = String::from_utf8(ecdh_key("a", "private.pem")).unwrap();
        let der = pem_to_der(&pem);
        let private = PrivateKey::from_private_key_der(&ECDH_P256, &der).unwrap();
        let peer = b_public().compressed().to_vec();
        group.bench_function("ecdh-p256-agreement", |bch| {
            bch.iter(|| {
                agree(&private, UnparsedPublicKey::new(&ECDH_P256, &peer), (), |z| {
                    Ok::<_, ()>(black_box(z[0]))
                })
                .unwrap()
            })
        });
    }
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));
    for (name, client, reader) in &clients {
        let sample = rt.block_on(client.encrypt(context, record)).unwrap();
        let mut out = Vec::new();
        group.bench_function(format!("{name}-encrypt"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        client.encrypt_into(context, record, &mut out).await.unwrap();
                    }
                    start.elapsed()
                })
            })
        });
        group.bench_function(format!("{name}-decrypt"), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(reader.decrypt(context, &sample).await.unwrap());
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

/// The KMS RSA keyring (encrypt: RSA-OAEP-SHA256 locally with the KMS
/// key's public key, no KMS call; decrypt: one KMS Decrypt per message) and
/// the KMS ECDH static keyring (one KMS DeriveSharedSecret per message
/// either way), against tests/interop/kms_server.py.
fn kms_asymmetric_clients(
    rt: &tokio::runtime::Runtime,
    client: &dyn Fn(Arc<dyn envseal::Keyring>) -> Client,
    b_public: envseal::EcdhPublicKey,
) -> Vec<(&'static str, Client, Client)> {
    use envseal::{KmsEcdhKeyring, KmsRsaKeyring, RsaPadding, RsaPublicKey};
    rt.block_on(async {
        let kms = moto::client("us-east-1", &moto::moto().url, AwsBounds::default()).await;
        let (rsa_arn, rsa_pem) = moto::create_rsa_key("us-east-1", "RSA_2048").await;
        let public = RsaPublicKey::from_pem(&rsa_pem).unwrap();
        let padding = RsaPadding::OaepSha256;
        let rsa_encrypt: Arc<dyn envseal::Keyring> = Arc::new(
            KmsRsaKeyring::builder(kms.clone(), &rsa_arn, padding)
                .public_key(public)
                .build()
                .unwrap(),
        );
        let rsa_decrypt: Arc<dyn envseal::Keyring> = Arc::new(
            KmsRsaKeyring::builder(kms.clone(), &rsa_arn, padding)
                .build()
                .unwrap(),
        );
        let ecdh_arn = moto::create_ecdh_key("us-east-1", "ECC_NIST_P256").await;
        let ecdh: Arc<dyn envseal::Keyring> = Arc::new(
            KmsEcdhKeyring::builder(kms)
                .static_keys(&ecdh_arn, b_public)
                .build()
                .await
                .unwrap(),
        );
        vec![
            (
                "kms-rsa-2048-oaep-sha256",
                client(rsa_encrypt),
                client(rsa_decrypt),
            ),
            ("kms-ecdh-static-p256", client(ecdh.clone()), client(ecdh)),
        ]
    })
}

/// The DER inside a PEM block (for the aws-lc baseline's key).
fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

/// 1,000,000 records through KMS (moto) with max messages 10,000.
fn kms_records() {
    if !moto_available() {
        println!("records-kms: skipped (no moto_server; scripts/test installs it)");
        return;
    }
    let n: u64 = std::env::var("ENVSEAL_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let rt = runtime();
    rt.block_on(async {
        let key = moto::create_key("us-east-1").await;
        let kms = moto::client("us-east-1", &moto::moto().url, AwsBounds::default()).await;
        let client = Client::builder(KmsKeyring::builder(kms.clone(), [&key]).build().unwrap())
            .config(config())
            .cache(
                MaterialsCache::new(100).unwrap(),
                CacheLimits::builder(Duration::from_secs(3600))
                    .max_messages(10_000)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let context = context();
        let record = vec![5u8; RECORD];
        let mut out = Vec::new();
        let start = Instant::now();
        for _ in 0..n {
            client.encrypt_into(&context, &record, &mut out).await.unwrap();
        }
        let elapsed = start.elapsed();
        let stats = kms.stats();
        let cache = client.cache_stats().unwrap();
        println!(
            "records-kms: {n} records of 1 KiB in {:.2} s = {:.0} records/s; \
             GenerateDataKey calls {} ({:.0} per million records); cache hits {} misses {}; \
             KMS latency p50 {:?} max {:?}",
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64(),
            stats.generate_data_key_calls,
            stats.generate_data_key_calls as f64 * 1e6 / n as f64,
            cache.hits,
            cache.misses,
            stats.latency_p50,
            stats.latency_max,
        );
        assert!(stats.generate_data_key_calls <= n.div_ceil(10_000));
    });
}

criterion_group!(benches, records);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    kms_records();
}
