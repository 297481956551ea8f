//! The caching materials manager and the record API (`Client`): limits,
//! LRU, partitions, single flight, shared failures, KMS call counts.

use crate::common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use envseal::{
    async_trait, AlgorithmSuite, CacheLimits, CacheLimitsBuilder, Client, Config, DataKey,
    DecryptionMaterials, EncryptedDataKey, EncryptionContext, EncryptionMaterials, Error, Keyring,
    MaterialsCache, RawAesKeyring, WrappingKey,
};

/// A raw AES keyring that counts calls, optionally slow or failing.
struct Counting {
    inner: Arc<RawAesKeyring>,
    encrypts: AtomicU64,
    decrypts: AtomicU64,
    delay: Duration,
    fail: bool,
}

impl Counting {
    fn new(name: &str) -> Arc<Self> {
        Self::with(name, Duration::ZERO, false)
    }

    fn with(name: &str, delay: Duration, fail: bool) -> Arc<Self> {
        Arc::new(Counting {
            inner: Arc::new(
                RawAesKeyring::new("cache-test", name, WrappingKey::from_slice(&[5; 32]).unwrap()).unwrap(),
            ),
            encrypts: AtomicU64::new(0),
            decrypts: AtomicU64::new(0),
            delay,
            fail,
        })
    }

    fn encrypts(&self) -> u64 {
        self.encrypts.load(Ordering::SeqCst)
    }

    fn decrypts(&self) -> u64 {
        self.decrypts.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Keyring for Counting {
    async fn on_encrypt(&self, materials: &mut EncryptionMaterials) -> envseal::Result<()> {
        self.encrypts.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        if self.fail {
            return Err(Error::keyring("counting", "refused"));
        }
        self.inner.on_encrypt(materials).await
    }

    async fn on_decrypt(
        &self,
        materials: &DecryptionMaterials,
        edks: &[EncryptedDataKey],
    ) -> envseal::Result<Option<DataKey>> {
        self.decrypts.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.inner.on_decrypt(materials, edks).await
    }
}

fn records_config() -> Config {
    Config::builder()
        .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
        .build()
        .unwrap()
}

fn client(keyring: &Arc<Counting>, cache: &MaterialsCache, limits: CacheLimits) -> Client {
    Client::builder_shared(keyring.clone())
        .config(records_config())
        .cache(cache.clone(), limits)
        .build()
        .unwrap()
}

fn context(table: &str) -> EncryptionContext {
    [("table", table)].into_iter().collect()
}

fn limits() -> CacheLimitsBuilder {
    CacheLimits::builder(Duration::from_secs(600))
}

#[tokio::test]
async fn max_messages_bounds_keyring_calls_and_every_record_decrypts() {
    let keyring = Counting::new("k");
    let cache = MaterialsCache::new(10).unwrap();
    let c = client(&keyring, &cache, limits().max_messages(1000).build().unwrap());
    let ctx = context("t");
    let mut messages = Vec::new();
    for i in 0..20_000u32 {
        let m = c.encrypt(&ctx, &i.to_be_bytes()).await.unwrap();
        if i % 997 == 0 {
            messages.push((i, m));
        }
    }
    assert_eq!(keyring.encrypts(), 20, "20,000 records / 1,000 messages per key");
    let stats = c.cache_stats().unwrap();
    assert_eq!((stats.misses, stats.hits, stats.expired), (20, 19_980, 19));
    // Cached messages are ordinary ESDK messages: the plain API reads them.
    for (i, m) in &messages {
        let d = crate::common::async_client(&records_config(), &keyring.inner)
            .decrypt(&ctx, m)
            .await
            .unwrap();
        assert_eq!(*d.plaintext, i.to_be_bytes());
    }
    // Two messages under one cached key still differ (fresh message id).
    let a = c.encrypt(&ctx, b"same").await.unwrap();
    let b = c.encrypt(&ctx, b"same").await.unwrap();
    assert_ne!(a, b);
}

#[tokio::test]
async fn max_bytes_and_oversized_records() {
    let keyring = Counting::new("k");
    let cache = MaterialsCache::new(10).unwrap();
    let c = client(&keyring, &cache, limits().max_bytes(10 * 1024).build().unwrap());
    let ctx = context("t");
    for _ in 0..25 {
        c.encrypt(&ctx, &[1u8; 1024]).await.unwrap();
    }
    assert_eq!(keyring.encrypts(), 3, "ten 1 KiB records per key");
    // A record larger than the byte limit never uses the cache.
    c.encrypt(&ctx, &[1u8; 20 * 1024]).await.unwrap();
    assert_eq!(keyring.encrypts(), 4);
    assert_eq!(c.cache_stats().unwrap().bypasses, 1);
    // Streaming with an unknown length bypasses too.
    let enc = c
        .encryptor(&ctx, None)
        .await
        .unwrap()
        .into_writer(Vec::new())
        .unwrap();
    drop(enc);
    assert_eq!(keyring.encrypts(), 5);
}

/// The EDK section of a message: messages under one cached data key share it.
fn edks_of(message: &[u8]) -> Vec<EncryptedDataKey> {
    crate::common::parse(&records_config(), message)
        .unwrap()
        .encrypted_data_keys()
        .to_vec()
}

/// Spec `client-apis/encrypt.md`, "Plaintext Length Bound": a stream MUST
/// NOT encrypt more than the length it declared, and fails at once.
#[tokio::test]
async fn declared_length_bounds_what_a_stream_writes() {
    use std::io::Write;
    let keyring = Counting::new("k");
    let cache = MaterialsCache::new(10).unwrap();
    let c = client(&keyring, &cache, limits().max_bytes(1024).build().unwrap());
    let ctx = context("t");
    // Five streams declared at 10 bytes under one 1 KiB key: each fails on
    // the write that crosses 10 bytes, and nothing of it is written.
    for _ in 0..5 {
        let mut out = Vec::new();
        let mut w = c
            .encryptor(&ctx, Some(10))
            .await
            .unwrap()
            .into_writer(&mut out)
            .unwrap();
        w.write_all(&[7u8; 4]).unwrap();
        let crossing = w.write_all(&vec![7u8; 1 << 20]);
        assert!(crossing.is_err(), "a write past the declared length must fail");
        let err = envseal::Error::from_io(crossing.unwrap_err());
        assert!(err.to_string().contains("declared"), "{err}");
        // Poisoned: later writes and finish fail too.
        assert!(w.write_all(b"x").is_err());
        assert!(w.finish().is_err());
        assert!(
            out.len() < 1024,
            "no frame of the oversized write reached the output ({} bytes)",
            out.len()
        );
    }
    assert_eq!(
        keyring.encrypts(),
        1,
        "five 10-byte declarations fit one 1 KiB key"
    );
    // Exactly the declared length is fine, and decrypts.
    let mut out = Vec::new();
    let mut w = c
        .encryptor(&ctx, Some(10))
        .await
        .unwrap()
        .into_writer(&mut out)
        .unwrap();
    w.write_all(b"0123456789").unwrap();
    w.finish().unwrap();
    let d = crate::common::async_client(&records_config(), &keyring.inner)
        .decrypt(&ctx, &out)
        .await
        .unwrap();
    assert_eq!(&d.plaintext[..], b"0123456789");
    // A cached key covers at most its byte limit: 300-byte streams under a
    // 1,000-byte limit share a key three at a time.
    let keyring = Counting::new("k2");
    let c = client(
        &keyring,
        &MaterialsCache::new(10).unwrap(),
        limits().max_bytes(1000).build().unwrap(),
    );
    let mut edks = Vec::new();
    for _ in 0..7 {
        let mut out = Vec::new();
        let mut w = c
            .encryptor(&ctx, Some(300))
            .await
            .unwrap()
            .into_writer(&mut out)
            .unwrap();
        w.write_all(&[1u8; 300]).unwrap();
        assert!(w.write_all(&[1u8]).is_err(), "byte 301 of a 300-byte stream");
        drop(w);
        edks.push(edks_of(&out));
    }
    assert_eq!(keyring.encrypts(), 3, "keys for messages 1-3, 4-6 and 7");
    assert!(edks[0] == edks[1] && edks[1] == edks[2] && edks[2] != edks[3]);
    assert!(edks[3] == edks[4] && edks[4] == edks[5] && edks[5] != edks[6]);
}

/// A keyring that waits before it decrypts.
struct Slow(Arc<dyn Keyring>, Duration);

#[async_trait]
impl Keyring for Slow {
    async fn on_encrypt(&self, materials: &mut EncryptionMaterials) -> envseal::Result<()> {
        self.0.on_encrypt(materials).await
    }

    async fn on_decrypt(
        &self,
        materials: &DecryptionMaterials,
        edks: &[EncryptedDataKey],
    ) -> envseal::Result<Option<DataKey>> {
        tokio::time::sleep(self.1).await;
        self.0.on_decrypt(materials, edks).await
    }
}

/// An RSA keyring checks the key it unwraps against the message's header,
/// so its failure belongs to one message: a tampered message leading a
/// decrypt flight must not fail the good messages that wait on it (they
/// share its encrypted data keys through the cached encrypt entry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_check_is_not_shared_with_waiters() {
    let rsa = common::rsa(envseal::Backend::default(), "ns", "r", common::PKCS1_OR_OAEP);
    let keyring: Arc<dyn Keyring> = Arc::new(Slow(rsa, Duration::from_millis(300)));
    let client = || {
        Client::builder_shared(keyring.clone())
            .config(records_config())
            .cache(MaterialsCache::new(10).unwrap(), limits().build().unwrap())
            .build()
            .unwrap()
    };
    let ctx = context("t");
    let writer = client();
    let good = writer.encrypt(&ctx, b"good").await.unwrap();
    let mut bad = writer.encrypt(&ctx, b"bad").await.unwrap();
    assert_eq!(edks_of(&good), edks_of(&bad), "one cached data key");
    // A reader of its own (the writer reads them back from its cache).
    let c = client();
    // The message id (bytes 2..34 of a v2 header) is bound by the key
    // commitment: a changed id fails the RSA keyring's header check.
    bad[5] ^= 1;
    let (c1, c2, ctx1, ctx2) = (c.clone(), c.clone(), ctx.clone(), ctx.clone());
    let leader = tokio::spawn(async move { c1.decrypt(&ctx1, &bad).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let waiter = tokio::spawn(async move { c2.decrypt(&ctx2, &good).await });
    assert!(matches!(leader.await.unwrap(), Err(Error::Decrypt)));
    assert_eq!(&waiter.await.unwrap().unwrap().plaintext[..], b"good");
    assert!(
        c.cache_stats().unwrap().waits >= 1,
        "the good message waited on the bad one's flight"
    );
}

#[tokio::test]
async fn max_age_expires_entries() {
    let keyring = Counting::new("k");
    let cache = MaterialsCache::new(10).unwrap();
    let c = client(
        &keyring,
        &cache,
        CacheLimits::builder(Duration::from_millis(100)).build().unwrap(),
    );
    let ctx = context("t");
    c.encrypt(&ctx, b"a").await.unwrap();
    c.encrypt(&ctx, b"b").await.unwrap();
    assert_eq!(keyring.encrypts(), 1);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let m = c.encrypt(&ctx, b"c").await.unwrap();
    assert_eq!(keyring.encrypts(), 2);
    // The first data key's entry and its decrypt companion.
    assert_eq!(c.cache_stats().unwrap().expired, 2);
    // The writer reads its message back with no keyring call while the
    // data key is cached, and calls the keyring once it has expired.
    c.decrypt(&ctx, &m).await.unwrap();
    assert_eq!(keyring.decrypts(), 0);
    tokio::time::sleep(Duration::from_millis(150)).await;
    c.decrypt(&ctx, &m).await.unwrap();
    assert_eq!(keyring.decrypts(), 1);
    // Decrypt entries age out the same way (a reader: another partition).
    let reader = client(
        &keyring,
        &cache,
        CacheLimits::builder(Duration::from_millis(100)).build().unwrap(),
    );
    reader.decrypt(&ctx, &m).await.unwrap();
    reader.decrypt(&ctx, &m).await.unwrap();
    assert_eq!(keyring.decrypts(), 2);
    tokio::time::sleep(Duration::from_millis(150)).await;
    reader.decrypt(&ctx, &m).await.unwrap();
    assert_eq!(keyring.decrypts(), 3);
}

#[tokio::test]
async fn contexts_suites_and_keyrings_never_share_a_key() {
    let keyring = Counting::new("k");
    let cache = MaterialsCache::new(100).unwrap();
    let c = client(&keyring, &cache, limits().build().unwrap());
    for table in ["a", "b", "a", "b", "c"] {
        c.encrypt(&context(table), b"x").await.unwrap();
    }
    assert_eq!(keyring.encrypts(), 3, "one key per context");

    // Another suite on the same cache and keyring partition name: its own key.
    let signed = Client::builder_shared(keyring.clone())
        .config(Config::default())
        .cache(cache.clone(), limits().build().unwrap())
        .build()
        .unwrap();
    signed.encrypt(&context("a"), b"x").await.unwrap();
    assert_eq!(keyring.encrypts(), 4);

    // Another client (another keyring) sharing the cache: its own partition.
    let other_ring = Counting::new("other");
    let other = client(&other_ring, &cache, limits().build().unwrap());
    let m = other.encrypt(&context("a"), b"x").await.unwrap();
    assert_eq!(other_ring.encrypts(), 1);
    assert_eq!(keyring.encrypts(), 4);
    // ...and the first client's keyring cannot read it (different key name).
    assert!(matches!(
        c.decrypt(&context("a"), &m).await,
        Err(Error::NoMatchingKey { .. })
    ));

    // Clients that name the same partition (same keyring) do share.
    let shared = Counting::new("shared");
    let named = |ring: &Arc<Counting>| {
        Client::builder_shared(ring.clone())
            .config(records_config())
            .cache(cache.clone(), limits().build().unwrap())
            .partition("orders")
            .build()
            .unwrap()
    };
    named(&shared).encrypt(&context("a"), b"x").await.unwrap();
    named(&shared).encrypt(&context("a"), b"y").await.unwrap();
    assert_eq!(shared.encrypts(), 1);
}

#[tokio::test]
async fn signed_suite_reuses_data_key_and_signing_key() {
    let keyring = Counting::new("k");
    let cache = MaterialsCache::new(10).unwrap();
    let c = Client::builder_shared(keyring.clone())
        .config(Config::default())
        .cache(cache, limits().build().unwrap())
        .build()
        .unwrap();
    let ctx = context("t");
    let mut messages = Vec::new();
    for i in 0..10u8 {
        messages.push(c.encrypt(&ctx, &[i; 100]).await.unwrap());
    }
    assert_eq!(keyring.encrypts(), 1);
    for (i, m) in messages.iter().enumerate() {
        let d = crate::common::async_client(&Config::default(), &keyring.inner)
            .decrypt(&ctx, m)
            .await
            .unwrap();
        assert_eq!(*d.plaintext, vec![i as u8; 100]);
        assert_eq!(
            d.encryption_context.get("aws-crypto-public-key"),
            crate::common::async_client(&Config::default(), &keyring.inner)
                .decrypt(&ctx, &messages[0])
                .await
                .unwrap()
                .encryption_context
                .get("aws-crypto-public-key"),
        );
    }
}

#[tokio::test]
async fn least_recently_used_entry_is_evicted() {
    let keyring = Counting::new("k");
    let cache = MaterialsCache::new(2).unwrap();
    let c = client(&keyring, &cache, limits().build().unwrap());
    for table in ["a", "b", "a", "c"] {
        c.encrypt(&context(table), b"x").await.unwrap();
    }
    // "a"'s decrypt companion (stored while there was room, least recently
    // used from the start) went first, for "b"; "b" was least recently
    // used when "c" arrived.
    assert_eq!(keyring.encrypts(), 3);
    assert_eq!(cache.stats().evicted, 2);
    assert_eq!(cache.stats().entries, 2);
    c.encrypt(&context("a"), b"x").await.unwrap();
    assert_eq!(keyring.encrypts(), 3, "a is still cached");
    c.encrypt(&context("b"), b"x").await.unwrap();
    assert_eq!(keyring.encrypts(), 4, "b was evicted");
    cache.clear();
    assert_eq!(cache.stats().entries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_make_one_keyring_call() {
    let keyring = Counting::with("k", Duration::from_millis(200), false);
    let cache = MaterialsCache::new(10).unwrap();
    let c = client(&keyring, &cache, limits().build().unwrap());
    let tasks: Vec<_> = (0..64)
        .map(|i: u32| {
            let c = c.clone();
            tokio::spawn(async move { c.encrypt(&context("t"), &i.to_be_bytes()).await })
        })
        .collect();
    let mut messages = Vec::new();
    for t in tasks {
        messages.push(t.await.unwrap().unwrap());
    }
    assert_eq!(keyring.encrypts(), 1, "64 concurrent misses, one keyring call");
    let stats = c.cache_stats().unwrap();
    assert_eq!(stats.misses, 1);
    assert_eq!(stats.hits + stats.waits, 63, "{stats:?}");
    assert!(stats.waits >= 1, "{stats:?}");

    // Decrypt: 64 concurrent decrypts of one message by a reader (the
    // writer needs none: it reads back from its cache), one unwrap.
    let message = Arc::new(messages.pop().unwrap());
    c.decrypt(&context("t"), &message).await.unwrap();
    assert_eq!(keyring.decrypts(), 0, "the writer read back from its cache");
    let reader = client(&keyring, &cache, limits().build().unwrap());
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let c = reader.clone();
            let m = Arc::clone(&message);
            tokio::spawn(async move { c.decrypt(&context("t"), &m).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(keyring.decrypts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_call_fails_its_waiters_without_more_calls() {
    let keyring = Counting::with("k", Duration::from_millis(200), true);
    let cache = MaterialsCache::new(10).unwrap();
    let c = client(&keyring, &cache, limits().build().unwrap());
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.encrypt(&context("t"), b"x").await })
        })
        .collect();
    for t in tasks {
        match t.await.unwrap() {
            Err(Error::Keyring { reason, .. }) => assert_eq!(reason, "refused"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(keyring.encrypts(), 1);
    assert_eq!(cache.stats().entries, 0, "a failure is not cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_call_lets_the_next_caller_lead() {
    let keyring = Counting::with("k", Duration::from_millis(300), false);
    let cache = MaterialsCache::new(10).unwrap();
    let c = client(&keyring, &cache, limits().build().unwrap());
    let cancelled = tokio::time::timeout(Duration::from_millis(50), c.encrypt(&context("t"), b"x")).await;
    assert!(cancelled.is_err());
    c.encrypt(&context("t"), b"x").await.unwrap();
    assert_eq!(keyring.encrypts(), 2);
}

#[test]
fn limits_are_checked() {
    assert!(CacheLimits::builder(Duration::ZERO).build().is_err());
    assert!(limits().max_messages(0).build().is_err());
    assert!(limits().max_messages((1 << 32) + 1).build().is_err());
    assert!(limits().max_messages(1 << 32).build().is_ok());
    assert!(MaterialsCache::new(0).is_err());
    // Spec caching-cmm.md, Limit Bytes: unset means at most 2^63 - 1.
    assert_eq!(limits().build().unwrap().bytes(), (1 << 63) - 1);
    assert!(limits().max_bytes(1 << 63).build().is_err());
    assert!(limits().max_bytes(envseal::MAX_BYTES_LIMIT).build().is_ok());
    // The builder checks them, naming the limit.
    let built = limits().max_messages(0).build();
    assert!(
        matches!(
            built,
            Err(Error::Config {
                setting: "cache max messages",
                ..
            })
        ),
        "{built:?}"
    );
    let l = limits().max_messages(7).max_bytes(9).build().unwrap();
    assert_eq!(
        (l.messages(), l.bytes(), l.age()),
        (7, 9, Duration::from_secs(600))
    );
}

#[cfg(feature = "kms")]
mod kms {
    use super::*;
    use common::moto::{self, create_key, moto};
    use envseal::kms::AwsBounds;
    use envseal::KmsKeyring;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn kms_calls_per_record_with_a_cache() {
        let key = create_key("us-east-1").await;
        let kms = moto::client("us-east-1", &moto().url, AwsBounds::default()).await;
        let keyring = KmsKeyring::builder(kms.clone(), [&key]).build().unwrap();
        // Refresh ahead from half of a data key's messages: 5,000 records
        // (not the default 1,000, some 20 ms of a debug build) for moto to
        // answer the refresh in while other tests load it, so that "no
        // record waits" tests the cache rather than moto's latency.
        let policy = envseal::CachePolicy::builder().grace(0.5).build().unwrap();
        let c = Client::builder(keyring)
            .config(records_config())
            .cache(
                MaterialsCache::builder(100).policy(policy).build().unwrap(),
                limits().max_messages(10_000).build().unwrap(),
            )
            .build()
            .unwrap();
        // 64 concurrent first records: one GenerateDataKey.
        let tasks: Vec<_> = (0..64)
            .map(|i: u32| {
                let c = c.clone();
                tokio::spawn(async move { c.encrypt(&context("t"), &i.to_be_bytes()).await })
            })
            .collect();
        let mut last = Vec::new();
        for t in tasks {
            last = t.await.unwrap().unwrap();
        }
        assert_eq!(kms.stats().generate_data_key_calls, 1);
        // 100,000 records with max messages 10,000: 10 data keys, each
        // used in full (the successor refreshed ahead from the 5,001st
        // message takes over at the 10,001st), plus the successor of the
        // last one, refreshed ahead and not needed yet.
        let mut out = Vec::new();
        for i in 64..100_000u32 {
            c.encrypt_into(&context("t"), &i.to_be_bytes(), &mut out)
                .await
                .unwrap();
        }
        let stats = c.cache_stats().unwrap();
        assert_eq!(
            (stats.refreshes, stats.misses, stats.hits + stats.waits),
            (10, 1, 99_999),
            "{stats:?}"
        );
        assert!(
            stats.waits <= 63,
            "no record after the first 64 waited: {stats:?}"
        );
        let calls = kms.stats().generate_data_key_calls;
        assert!((10..=11).contains(&calls), "{calls} GenerateDataKey calls");
        // Decrypts: none for the writer while the data key is cached (its
        // messages are read back from the cache); one per data key for a
        // reader.
        for _ in 0..100 {
            c.decrypt(&context("t"), &last).await.unwrap();
        }
        assert_eq!(kms.stats().decrypt_calls, 0);
        let reader = Client::builder(KmsKeyring::builder(kms.clone(), [&key]).build().unwrap())
            .config(records_config())
            .cache(MaterialsCache::new(100).unwrap(), limits().build().unwrap())
            .build()
            .unwrap();
        for _ in 0..100 {
            reader.decrypt(&context("t"), &last).await.unwrap();
        }
        assert_eq!(kms.stats().decrypt_calls, 1);
    }
}

/// The data-key cache keeps messages with different required context keys
/// apart, even for clients sharing a cache and a partition.
#[test]
fn the_cache_is_partitioned_by_required_context_keys() {
    use envseal::{blocking, CacheLimits, Config, EncryptionContext, MaterialsCache};
    let cache = MaterialsCache::new(10).unwrap();
    let limits = CacheLimits::builder(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let client = |required: &[&str]| {
        let config = Config::builder()
            .required_encryption_context_keys(required.iter().copied())
            .build()
            .unwrap();
        blocking::Client::builder_shared(common::aes("ns", "k", &[9; 32]))
            .config(config)
            .cache(cache.clone(), limits)
            .partition("shared")
            .build()
            .unwrap()
    };
    let context = EncryptionContext::from([("tenant", "acme"), ("table", "t")]);
    let (plain, required) = (client(&[]), client(&["tenant"]));
    plain.encrypt(&context, b"a").unwrap();
    plain.encrypt(&context, b"b").unwrap();
    assert_eq!(cache.stats().misses, 1, "one data key for the plain client");
    let m = required.encrypt(&context, b"c").unwrap();
    assert_eq!(cache.stats().misses, 2, "not the plain client's data key");
    required.encrypt(&context, b"d").unwrap();
    assert_eq!(cache.stats().misses, 2);
    // And its messages need the required pair.
    let reader = client(&[]);
    assert!(reader.decrypt(&EncryptionContext::new(), &m).is_err());
    let out = reader
        .decrypt(&EncryptionContext::from([("tenant", "acme")]), &m)
        .unwrap();
    assert_eq!(&*out.plaintext, b"c");
}

/// A capacity is a bound the cache's table is sized for up front: zero and
/// anything past `MAX_CACHE_ENTRIES` are configuration errors, never a
/// capacity-overflow panic or an allocation of gigabytes.
#[test]
fn capacities_out_of_range_are_refused() {
    use envseal::MAX_CACHE_ENTRIES;
    for bad in [0, MAX_CACHE_ENTRIES + 1, usize::MAX] {
        let err = MaterialsCache::new(bad).unwrap_err();
        assert!(
            matches!(&err, envseal::Error::Config { setting, .. } if *setting == "cache capacity"),
            "{bad}: {err}"
        );
        #[cfg(feature = "hierarchy")]
        {
            let err = envseal::BranchKeyCache::new(bad).unwrap_err();
            assert!(matches!(&err, envseal::Error::Config { .. }), "{bad}: {err}");
        }
    }
    assert!(MaterialsCache::new(4096).is_ok());
}
