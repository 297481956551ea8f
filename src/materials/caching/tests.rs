//! Tests of the caching materials manager: eviction, the expiry sweep,
//! and the spec's cache entry ids.

use super::ids::*;
use super::*;
use crate::crypto::KeyCheck;
use crate::format::EncryptionContext;
use crate::materials::RawAesKeyring;
use crate::suite::AlgorithmSuite;
use crate::WrappingKey;
use std::time::Instant;

fn keyring() -> Arc<RawAesKeyring> {
    Arc::new(RawAesKeyring::new("ns", "k", WrappingKey::from_slice(&[1; 32]).unwrap()).unwrap())
}

fn decryption_materials(suite: AlgorithmSuite, context: EncryptionContext) -> DecryptionMaterials {
    let check = Arc::new(KeyCheck {
        backend: Backend::default(),
        suite,
        message_id: vec![0; 32],
        commitment: None,
        aad: Vec::new(),
        iv: [0; crate::crypto::IV_LEN],
        tag: [0; crate::crypto::TAG_LEN],
    });
    DecryptionMaterials::new(suite, context, Backend::default(), check)
}

mod eviction {
    use super::*;

    /// Evicted and expired materials are freed (their `DataKey`, a
    /// `Zeroizing` buffer, is wiped on drop) once no message holds them.
    #[test]
    fn evicted_and_expired_materials_are_dropped() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let keyring = keyring();
        let cache = MaterialsCache::new(1).unwrap();
        let limits = CacheLimits::builder(Duration::from_secs(60))
            .max_messages(2)
            .build()
            .unwrap();
        let cmm = CachingCmm::new(keyring, cache.clone(), limits, None, Backend::default()).unwrap();
        let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
        let get = |table: &str| {
            let context: EncryptionContext = [("t", table)].into_iter().collect();
            let request = EncryptRequest {
                suite,
                context: &context,
                backend: Backend::default(),
                max_edks: None,
                required: &[],
            };
            rt.block_on(cmm.encryption_materials(request, Some(1))).unwrap()
        };
        let a = Arc::downgrade(&get("a"));
        assert!(a.upgrade().is_some(), "held by the cache");
        drop(get("b"));
        assert!(a.upgrade().is_none(), "evicted (capacity 1) and dropped");
        assert_eq!(cache.stats().evicted, 1);

        let b = Arc::downgrade(&get("b"));
        assert!(b.upgrade().is_some());
        drop(get("b")); // third use: over max_messages, a new entry
        assert!(b.upgrade().is_none(), "expired and dropped");
        assert_eq!(cache.stats().expired, 1);
    }
}

mod sweep {
    use super::*;
    use crate::cache::sweep::wait_swept;
    use crate::materials::EncryptionMaterials;

    /// Encrypt and decrypt entries past `max_age` are dropped (their data
    /// keys wiped) within the sweep bound, with no further lookup.
    #[test]
    fn expired_entries_are_swept_without_a_lookup() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let keyring = keyring();
        let cache = MaterialsCache::new(100).unwrap();
        let max_age = Duration::from_millis(50);
        let cmm = CachingCmm::new(
            keyring.clone(),
            cache.clone(),
            CacheLimits::builder(max_age).build().unwrap(),
            None,
            Backend::default(),
        )
        .unwrap();
        let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
        let context: EncryptionContext = [("t", "a")].into_iter().collect();

        // An encrypt entry.
        let request = EncryptRequest {
            suite,
            context: &context,
            backend: Backend::default(),
            max_edks: None,
            required: &[],
        };
        let held = rt.block_on(cmm.encryption_materials(request, Some(1))).unwrap();
        let expires = Instant::now() + max_age;
        let encrypt_entry = Arc::downgrade(&held);
        drop(held);

        // A decrypt entry.
        let mut enc = EncryptionMaterials::new(suite, context.clone(), Backend::default(), None);
        rt.block_on(keyring.on_encrypt(&mut enc)).unwrap();
        let (_, edks, _) = enc.into_parts();
        let materials = decryption_materials(suite, context.clone());
        rt.block_on(cmm.decrypt_data_key(&materials, &edks))
            .unwrap()
            .unwrap();
        let decrypt_expires = Instant::now() + max_age;
        let decrypt_entry = cache
            .inner
            .held()
            .iter()
            .find_map(|e| match &***e {
                Cached::Decrypt(k) => Some(Arc::downgrade(k)),
                Cached::Encrypt { .. } => None,
            })
            .unwrap();
        // The encrypt entry, its data key's decrypt companion, the decrypt entry.
        assert_eq!(cache.stats().entries, 3);
        assert!(encrypt_entry.upgrade().is_some() && decrypt_entry.upgrade().is_some());

        wait_swept(&encrypt_entry, expires, "the encrypt entry");
        wait_swept(&decrypt_entry, decrypt_expires, "the decrypt entry");
        let stats = cache.stats();
        assert_eq!((stats.entries, stats.expired, stats.hits), (0, 3, 0));
    }
}

mod read_back {
    use super::*;

    /// A message is read back with no keyring call while its data key is
    /// cached for encrypt: the encrypt entry's first use stores the decrypt
    /// entry its messages look up, with the full context (required pairs
    /// reproduced); another context, or a full cache, gets none.
    #[tokio::test(start_paused = true)]
    async fn a_cached_data_key_decrypts_its_own_messages() {
        let cache = MaterialsCache::new(100).unwrap();
        let max_age = Duration::from_secs(60);
        let limits = CacheLimits::builder(max_age).build().unwrap();
        let cmm = CachingCmm::new(keyring(), cache.clone(), limits, None, Backend::default()).unwrap();
        let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
        let context: EncryptionContext = [("t", "a"), ("r", "x")].into_iter().collect();
        let required = ["r".to_owned()];
        let request = EncryptRequest {
            suite,
            context: &context,
            backend: Backend::default(),
            max_edks: None,
            required: &required,
        };
        let materials = cmm.encryption_materials(request, Some(1)).await.unwrap();
        assert_eq!(cache.stats().loads, 1);

        // The reader's context: the stored pairs plus the reproduced one.
        let reader = decryption_materials(suite, context.clone());
        let key = cmm
            .decrypt_data_key(&reader, &materials.edks)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(key.expose_secret(), materials.data_key.expose_secret());
        let stats = cache.stats();
        assert_eq!((stats.loads, stats.hits, stats.entries), (1, 1, 2), "{stats:?}");

        // Without the required pair: another entry, so a keyring call (which
        // fails: the raw AES keyring authenticates the whole context).
        let stored_only: EncryptionContext = [("t", "a")].into_iter().collect();
        let other = decryption_materials(suite, stored_only);
        assert!(cmm.decrypt_data_key(&other, &materials.edks).await.is_err());
        assert_eq!(cache.stats().load_failures, 1);

        // Past the encrypt entry's age the companion is gone with it.
        tokio::time::advance(max_age).await;
        assert!(cmm
            .decrypt_data_key(&reader, &materials.edks)
            .await
            .unwrap()
            .is_some());
        assert_eq!(cache.stats().loads, 2);

        // A full cache stores no companion: capacity 1 holds the encrypt entry.
        let small = MaterialsCache::new(1).unwrap();
        let cmm = CachingCmm::new(keyring(), small.clone(), limits, None, Backend::default()).unwrap();
        cmm.encryption_materials(request, Some(1)).await.unwrap();
        let stats = small.stats();
        assert_eq!((stats.entries, stats.evicted), (1, 0), "{stats:?}");
    }
}

mod ids {
    use super::*;
    use crate::materials::EncryptionMaterials;
    use AlgorithmSuite as S;

    /// Bytes the cache's entries hold: each id, the slot, and a decrypt
    /// entry's data key.
    fn entry_bytes(cache: &MaterialsCache) -> usize {
        cache
            .inner
            .held()
            .iter()
            .map(|e| {
                let held = match &***e {
                    Cached::Decrypt(k) => k.len(),
                    Cached::Encrypt { .. } => 0,
                };
                Cache::<EntryId, Cached, Error>::entry_size() + held
            })
            .sum()
    }

    fn edk(provider_id: &str, info: &[u8], ciphertext: &[u8]) -> EncryptedDataKey {
        EncryptedDataKey {
            provider_id: provider_id.to_owned(),
            provider_info: info.to_vec(),
            ciphertext: ciphertext.to_vec(),
        }
    }

    fn b64(id: EntryId) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(id)
    }

    /// The ESDK's cross-implementation cache id vectors (the AWS Encryption
    /// SDK for Java's `CacheIdentifierTests`, "pythonTestVecs" and the
    /// digest vectors; the Python ESDK 4.0.7's
    /// `build_*_materials_cache_key` gives the same six ids).
    #[test]
    fn entry_ids_match_the_esdk_vectors() {
        let partition = sha512_concat(&[b"c15b9079-6d0e-42b6-8784-5e804b025692"]);
        let empty = EncryptionContext::new();
        let full: EncryptionContext = [("this", "is"), ("a", "non-empty"), ("encryption", "context")]
            .into_iter()
            .collect();
        let blobs = [
            edk(
                "this is a provider ID",
                b"this is some key info",
                b"super secret key, now with encryption!",
            ),
            edk(
                "another provider ID!",
                b"this is some different key info",
                b"better super secret key, now with encryption!",
            ),
        ];
        let p384 = S::Aes256GcmIv12Tag16HkdfSha384EcdsaP384;
        assert_eq!(
            b64(encrypt_entry_id(&partition, p384, &empty, &[]).unwrap()),
            "3icBIkLK4V3fVwbm3zSxUdUQV6ZvZYUOLl8buN36g6gDMqAkghcGryxX7QiVABkW1JhB6GRp5z+bzbiuciBcKQ=="
        );
        assert_eq!(
            b64(encrypt_entry_id(&partition, p384, &full, &[]).unwrap()),
            "mRNK7qhTb/kJiiyGPgAevp0gwFRcET4KeeNYwZHhoEDvSUzQiDgl8Of+YRDaVzKxAqpNBgcAuFXde9JlaRRsmw=="
        );
        assert_eq!(
            b64(decrypt_entry_id(&partition, S::Aes128GcmIv12Tag16HkdfSha256, &blobs[..1], &empty).unwrap()),
            "n0zVzk9QIVxhz6ET+aJIKKOJNxtpGtSe1yAbu7WU5l272Iw/jmhlER4psDHJs9Mr8KYiIvLGSXzggNDCc23+9w=="
        );
        assert_eq!(
            b64(decrypt_entry_id(&partition, p384, &blobs, &full).unwrap()),
            "+rtwUe38CGnczGmYu12iqGWHIyDyZ44EvYQ4S6ACmsgS8VaEpiw0RTGpDk6Z/7YYN/jVHOAcNKDyCNP8EmstFg=="
        );

        // Digest vectors: NUL bytes, a supplementary-plane key, empty fields.
        let partition = sha512_concat(&[b"partition ID"]);
        let context: EncryptionContext = [
            ("\0\0TEST", "\0\0test"),
            ("\u{10000}", "UTF-16 surrogate"),
            ("\u{ABCD}", "\\uABCD"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            hex::encode(
                encrypt_entry_id(&partition, S::Aes128GcmIv12Tag16HkdfSha256, &context, &[]).unwrap()
            ),
            "3dc70ff1d4621059b97179563ab6592dff4319bfaf8ed1a819c96d33d3194d5c\
             354a361e879d0356e4d9e868170ebc9e934fa5eaf6e6d11de4ee801645723fa9"
        );
        let blobs = [
            edk("", b"", b""),
            edk("\0", b"\0", b"\0"),
            edk("\u{81}", b"\x81", b"\x81"),
            edk("abc", &[0xde, 0xad, 0xbe, 0xef], &[0xba, 0xd0, 0xca, 0xfe]),
        ];
        let expected = "e16344634350fe8cb51e69ec4e0681c84ac7ef2df427bd4de4aefbebcd3ead22\
                        95f1b15a98ce60699e0efbf69dbbc12e2552b16eff84a6e9b5766ee4d69a7897";
        let p256 = S::Aes128GcmIv12Tag16HkdfSha256EcdsaP256;
        assert_eq!(
            hex::encode(decrypt_entry_id(&partition, p256, &blobs, &context).unwrap()),
            expected
        );
        // The keys' order does not matter.
        let mut reversed = blobs.to_vec();
        reversed.reverse();
        assert_eq!(
            hex::encode(decrypt_entry_id(&partition, p256, &reversed, &context).unwrap()),
            expected
        );

        // envseal's required keys enter the digest (as a set); without
        // them the id is the spec's.
        let id = |required: &[&str]| {
            let required: Vec<String> = required.iter().map(|k| k.to_string()).collect();
            encrypt_entry_id(&partition, p384, &full, &required).unwrap()
        };
        assert_ne!(id(&["this"]), id(&[]));
        assert_ne!(id(&["this"]), id(&["this", "a"]));
        assert_eq!(id(&["this", "a"]), id(&["a", "this"]));
    }

    /// The memo gives the id the formula gives, whatever came before, and
    /// holds no large header's keys.
    #[test]
    fn memoized_ids_are_the_formulas() {
        let memo = IdMemo::default();
        let partition = sha512_concat(&[b"p"]);
        let suites = [
            S::Aes256GcmHkdfSha512CommitKey,
            S::Aes256GcmIv12Tag16HkdfSha384EcdsaP384,
        ];
        let contexts: [EncryptionContext; 2] = [
            [("t", "a")].into_iter().collect(),
            [("t", "b")].into_iter().collect(),
        ];
        let required = [vec![], vec!["t".to_owned()]];
        let edks = [vec![edk("a", b"1", b"x")], vec![edk("a", b"1", b"y")]];
        for i in [0, 0, 1, 0, 2, 2, 4, 3, 3, 7, 0] {
            let (s, c, r, e) = (
                suites[i & 1],
                &contexts[(i >> 1) & 1],
                &required[(i >> 2) & 1],
                &edks[(i >> 2) & 1],
            );
            assert_eq!(
                memo.encrypt_id(&partition, s, c, r).unwrap(),
                encrypt_entry_id(&partition, s, c, r).unwrap()
            );
            assert_eq!(
                memo.decrypt_id(&partition, s, e, c).unwrap(),
                decrypt_entry_id(&partition, s, e, c).unwrap()
            );
        }
        let large = vec![edk("a", b"1", &[0; MEMO_MAX_EDK_BYTES])];
        memo.decrypt_id(&partition, suites[0], &large, &contexts[0])
            .unwrap();
        assert!(memo
            .decrypt
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|m| m.2 == edks[0]));
    }

    /// 256 decrypt entries of messages with 10,000 encrypted data keys no
    /// keyring of the manager can open (plus one it can) hold a bounded few
    /// hundred bytes each, not the header's size; the same keys in another
    /// order hit the same entry.
    #[test]
    fn decrypt_entries_are_bounded_and_ignore_edk_order() {
        const MESSAGES: usize = 256;
        const SKIPPED: usize = 10_000;
        const MOST_PER_ENTRY: usize = 512;
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let keyring = keyring();
        let cache = MaterialsCache::new(1000).unwrap();
        let limits = CacheLimits::builder(Duration::from_secs(600)).build().unwrap();
        let cmm = CachingCmm::new(keyring.clone(), cache.clone(), limits, None, Backend::default()).unwrap();
        let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
        let context: EncryptionContext = [("tenant", "t")].into_iter().collect();
        let materials = decryption_materials(suite, context.clone());
        // Another keyring's keys: skipped without a call, as in a header
        // written for many recipients.
        let mut edks: Vec<EncryptedDataKey> = (0..SKIPPED as u32 + 1)
            .map(|i| EncryptedDataKey {
                provider_id: "other".to_owned(),
                provider_info: i.to_be_bytes().to_vec(),
                ciphertext: vec![7; 32],
            })
            .collect();
        let mut first = None;
        for m in 0..MESSAGES {
            let mut enc = EncryptionMaterials::new(suite, context.clone(), Backend::default(), None);
            rt.block_on(keyring.on_encrypt(&mut enc)).unwrap();
            let (data_key, ours, _) = enc.into_parts();
            // The one it can open, among the others.
            edks[SKIPPED / 2] = ours.into_iter().next().unwrap();
            let got = rt
                .block_on(cmm.decrypt_data_key(&materials, &edks))
                .unwrap()
                .unwrap();
            assert_eq!(got.expose_secret(), data_key.unwrap().expose_secret());
            let held = entry_bytes(&cache);
            assert!(
                held <= (m + 1) * MOST_PER_ENTRY,
                "{} entries hold {held} bytes: more than {MOST_PER_ENTRY} each",
                m + 1
            );
            first.get_or_insert_with(|| (edks.clone(), got));
        }
        let stats = cache.stats();
        assert_eq!(
            (stats.entries, stats.misses, stats.hits),
            (MESSAGES as u64, MESSAGES as u64, 0)
        );
        eprintln!("{MESSAGES} entries hold {} bytes", entry_bytes(&cache));

        // The first message's keys in reverse order: the same entry.
        let (mut edks, key) = first.unwrap();
        edks.reverse();
        let got = rt
            .block_on(cmm.decrypt_data_key(&materials, &edks))
            .unwrap()
            .unwrap();
        assert_eq!(got.expose_secret(), key.expose_secret());
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (1, MESSAGES as u64));
    }
}
