//! Messages whose hierarchical EDKs name several versions of one branch
//! key (spec `framework/aws-kms/aws-kms-hierarchical-keyring.md`,
//! OnDecrypt): each EDK is opened with the AAD of its own version; each
//! distinct version costs at most one key store read per decrypt, a failed
//! read included; one deadline bounds the whole decrypt; and when no EDK
//! opens, the error lists every EDK's failure.

use super::*;

use common::Edks;
use envseal::{EncryptedDataKey, MultiKeyring};

/// A config that reads and writes messages of up to 2,000 EDKs.
fn many_edks() -> Config {
    Config::builder()
        .commitment_policy(CommitmentPolicy::RequireEncryptRequireDecrypt)
        .suite(SUITE)
        .max_encrypted_data_keys(2000)
        .build()
        .unwrap()
}

/// The hierarchical EDKs of `message`.
fn hierarchy_edks(message: &[u8]) -> Vec<EncryptedDataKey> {
    let d = crate::common::parse(&many_edks(), message).unwrap();
    d.encrypted_data_keys()
        .iter()
        .filter(|e| e.provider_id == HIERARCHY_PROVIDER_ID)
        .cloned()
        .collect()
}

/// A hierarchical EDK for `id` naming `version`, with junk in the salt, IV,
/// wrapped key and tag (from `seed`).
fn junk_edk(id: &str, version: [u8; 16], seed: u64) -> EncryptedDataKey {
    let mut ct = common::bytes(16 + 12 + 16 + 32 + 16, seed);
    ct[28..44].copy_from_slice(&version);
    EncryptedDataKey {
        provider_id: HIERARCHY_PROVIDER_ID.into(),
        provider_info: id.as_bytes().to_vec(),
        ciphertext: ct,
    }
}

/// xorshift64: the tests' reproducible draws.
fn draws(mut x: u64) -> impl FnMut() -> u64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn random_version(next: &mut impl FnMut() -> u64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&next().to_be_bytes());
    v[8..].copy_from_slice(&next().to_be_bytes());
    v
}

/// A store on `t` whose DynamoDB calls each take `delay` more (through a
/// fault server in front of moto) and whose operations have `deadline`.
async fn slow_store(t: &str, kms_key: &str, delay: Duration, deadline: Duration) -> (FaultServer, KeyStore) {
    let fault = FaultServer::start(Some(moto().url.clone()), vec![Action::DelayProxy(delay)]);
    let bounds = AwsBounds::builder().deadline(deadline).build().unwrap();
    let store = KeyStore::builder(t, kms_key)
        .kms_client(kms_client(bounds).await)
        .endpoint_url(&fault.url)
        .build()
        .await
        .unwrap();
    (fault, store)
}

/// EDKs of versions 1 and 2, the first one corrupted: the second opens
/// with its own version's AAD (before, the first EDK's version was reused
/// for every later EDK, so this failed). When none opens, the error lists
/// each EDK's failure in order.
#[tokio::test]
async fn each_edk_is_opened_with_its_own_versions_aad() {
    let Fixture { store, id, .. } = fixture("two-versions").await;
    let v1 = store.get_active_branch_key(&id).await.unwrap();
    let old = seal(&keyring(&store, &id, Duration::from_secs(60)), b"v1")
        .await
        .unwrap();
    let v2 = store.version_key(&id).await.unwrap();
    let mut bad_v1 = hierarchy_edks(&old).remove(0);
    bad_v1.ciphertext[50] ^= 1; // in the wrapped key
    let fresh = keyring(&store, &id, Duration::from_secs(60));
    let both = MultiKeyring::new(Some(Arc::new(Edks(vec![bad_v1.clone()]))), vec![fresh]).unwrap();
    let message = seal(&both, b"two versions").await.unwrap();
    assert_eq!(
        edk_versions(&message),
        [(id.clone(), v1.version_bytes()), (id.clone(), version_bytes(&v2))]
    );
    let reader = keyring(&store, &id, Duration::from_secs(60));
    let out = open(&reader, &message).await.unwrap();
    assert_eq!(&*out.plaintext, b"two versions");

    // Version 1 corrupted, version 2 corrupted, a version that does not
    // exist: three failures, each listed.
    let mut bad_v2 = hierarchy_edks(&message).remove(1);
    bad_v2.ciphertext[20] ^= 1; // in the IV
    let missing = junk_edk(&id, [7; 16], 1);
    let none_open = Edks(vec![bad_v1, bad_v2, missing]);
    let message = seal(&none_open, b"x").await.unwrap();
    let err = open(&reader, &message).await.unwrap_err();
    let Error::Keyrings(all) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(all.len(), 3, "{err}");
    assert!(matches!(all[..2], [Error::Decrypt, Error::Decrypt]), "{err}");
    let Error::Aws(e) = &all[2] else { panic!("{err}") };
    assert_eq!(
        (e.kind.clone(), e.operation),
        (AwsErrorKind::NotFound, AwsOperation::GetItem)
    );
}

/// 1,000 EDKs whose versions are drawn from 20 (the active one and 19 that
/// do not exist): one GetItem per distinct version, failures included,
/// and the decrypt ends within its deadline with every EDK's failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_edks_of_twenty_versions_cost_one_read_per_version() {
    let Fixture {
        kms_key,
        table: t,
        store: plain,
        id,
    } = fixture("hostile-20").await;
    let active = plain.get_active_branch_key(&id).await.unwrap();
    let deadline = Duration::from_secs(4);
    let (_fault, store) = slow_store(&t, &kms_key, Duration::from_millis(20), deadline).await;
    let mut next = draws(0x5eed_0020);
    let mut versions = vec![active.version_bytes()];
    versions.extend((0..19).map(|_| random_version(&mut next)));
    let edks: Vec<_> = (0..1000u64)
        .map(|i| junk_edk(&id, versions[(next() % 20) as usize], i))
        .collect();
    let distinct: std::collections::BTreeSet<_> =
        edks.iter().map(|e| e.ciphertext[28..44].to_vec()).collect();
    let message = crate::common::async_client(&many_edks(), &Edks(edks))
        .encrypt(&context(), b"hostile")
        .await
        .unwrap();

    let reader = keyring(&store, &id, Duration::from_secs(60));
    let (before, kms_before) = (store.stats(), store.kms_client().stats());
    let started = Instant::now();
    let err = crate::common::async_client(&many_edks(), &reader)
        .decrypt(&EncryptionContext::new(), &message)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    let (after, kms_after) = (store.stats(), store.kms_client().stats());
    let reads = after.get_item_calls - before.get_item_calls;
    println!(
        "1000 EDKs, {} distinct versions: {reads} GetItem, {} KMS Decrypt, {elapsed:?}",
        distinct.len(),
        kms_after.decrypt_calls - kms_before.decrypt_calls
    );
    assert_eq!(reads, distinct.len() as u64, "one GetItem per distinct version");
    assert_eq!(
        kms_after.decrypt_calls - kms_before.decrypt_calls,
        1,
        "the active version's"
    );
    assert!(elapsed < deadline, "{elapsed:?}");
    let Error::Keyrings(all) = &err else {
        panic!("{err}")
    };
    assert_eq!(all.len(), 1000, "every EDK's failure");
    for e in all {
        match e {
            Error::Decrypt => {}
            Error::Aws(k) => assert_eq!(k.kind, AwsErrorKind::NotFound, "{k}"),
            other => panic!("{other}"),
        }
    }
    assert!(err.to_string().contains("and 990 more"), "{err}");
}

/// 1,000 EDKs of 1,000 distinct versions, none of them existing, each
/// read taking 30 ms: the decrypt stops at its deadline with a typed
/// error, instead of 30 s of reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_distinct_versions_end_at_the_deadline() {
    let Fixture {
        kms_key,
        table: t,
        id,
        ..
    } = fixture("hostile-1000").await;
    let deadline = Duration::from_millis(1500);
    let (_fault, store) = slow_store(&t, &kms_key, Duration::from_millis(30), deadline).await;
    let mut next = draws(0x5eed_1000);
    let edks: Vec<_> = (0..1000u64)
        .map(|i| junk_edk(&id, random_version(&mut next), i))
        .collect();
    let message = crate::common::async_client(&many_edks(), &Edks(edks))
        .encrypt(&context(), b"hostile")
        .await
        .unwrap();
    let reader = keyring(&store, &id, Duration::from_secs(60));
    let before = store.stats();
    let started = Instant::now();
    let err = crate::common::async_client(&many_edks(), &reader)
        .decrypt(&EncryptionContext::new(), &message)
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    let reads = store.stats().get_item_calls - before.get_item_calls;
    println!("1000 distinct versions: {reads} GetItem in {elapsed:?}");
    // Slack for a loaded test machine; without the deadline it would be
    // 1,000 reads of 30 ms or more.
    assert!(elapsed < deadline + Duration::from_secs(1), "{elapsed:?}");
    let Error::Keyrings(all) = &err else {
        panic!("{err}")
    };
    assert!(
        all.len() < 1000 && all.len() as u64 == reads,
        "{} failures, {reads} reads",
        all.len()
    );
    let (last, rest) = all.split_last().unwrap();
    let Error::Aws(last) = last else { panic!("{last}") };
    assert_eq!(
        last.kind,
        AwsErrorKind::Timeout(envseal::kms::TimeoutKind::Deadline),
        "{last}"
    );
    for e in rest {
        let Error::Aws(k) = e else { panic!("{e}") };
        assert_eq!(
            (k.kind.clone(), k.operation),
            (AwsErrorKind::NotFound, AwsOperation::GetItem)
        );
    }
}
