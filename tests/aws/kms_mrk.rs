//! Multi-Region keys end to end, against a small fake KMS
//! (tests/common/fake_kms.rs; moto 5.2.5 cannot decrypt under `mrk-` keys):
//! a message wrapped under a multi-Region key in one region decrypts with
//! its replica in another, by the strict keyring and by discovery; a
//! single-Region key never matches across regions, and no call is made.
//! Also the keyrings' checks of KMS responses (wrong key id, wrong data key
//! length, missing blob) and of `aws-kms` EDKs that name no key ARN.
#![cfg(feature = "kms")]

use crate::common;
#[cfg(feature = "aws-lc")]
#[path = "kms_mrk/rsa.rs"]
mod rsa;

use common::fake_kms::{FakeKms, Quirk};
use envseal::kms::{AwsBounds, AwsErrorKind, AwsOperation, KmsClient};
use envseal::{Config, EncryptionContext, Error, KmsDiscoveryKeyring, KmsKeyring};

const MRK_EAST: &str = "arn:aws:kms:us-east-1:111122223333:key/mrk-80bd8ecdcd4342aebd84b7dc9da498a7";
const MRK_WEST: &str = "arn:aws:kms:eu-west-1:111122223333:key/mrk-80bd8ecdcd4342aebd84b7dc9da498a7";
const SRK_EAST: &str = "arn:aws:kms:us-east-1:111122223333:key/b3537ef1-d8dc-4780-9f5a-55776cbb2f7f";
const SRK_WEST: &str = "arn:aws:kms:eu-west-1:111122223333:key/b3537ef1-d8dc-4780-9f5a-55776cbb2f7f";

async fn client(fake: &FakeKms, region: &str) -> KmsClient {
    common::moto::client(region, &fake.url, AwsBounds::default()).await
}

fn context() -> EncryptionContext {
    [("record", "42")].into_iter().collect()
}

#[tokio::test]
async fn mrk_replica_decrypts_in_another_region() {
    let fake = FakeKms::start();
    let config = Config::default();
    let east = KmsKeyring::builder(client(&fake, "us-east-1").await, [MRK_EAST])
        .build()
        .unwrap();
    let message = crate::common::async_client(&config, &east)
        .encrypt(&context(), b"replicated")
        .await
        .unwrap();

    // Strict keyring configured with the replica's ARN: it matches the
    // stored us-east-1 ARN and calls Decrypt with its own, in eu-west-1.
    let west_client = client(&fake, "eu-west-1").await;
    let west = KmsKeyring::builder(west_client.clone(), [MRK_WEST])
        .build()
        .unwrap();
    let out = crate::common::async_client(&config, &west)
        .decrypt(&context(), &message)
        .await
        .unwrap();
    assert_eq!(*out.plaintext, b"replicated");
    assert_eq!(west_client.stats().decrypt_calls, 1);

    // Discovery in eu-west-1 rewrites the stored ARN's region to its own.
    let discovery = KmsDiscoveryKeyring::builder(client(&fake, "eu-west-1").await)
        .build()
        .unwrap();
    let out = crate::common::async_client(&config, &discovery)
        .decrypt(&context(), &message)
        .await
        .unwrap();
    assert_eq!(*out.plaintext, b"replicated");

    let calls = fake.calls();
    let expected = [
        ("GenerateDataKey", MRK_EAST, "us-east-1"),
        ("Decrypt", MRK_WEST, "eu-west-1"),
        ("Decrypt", MRK_WEST, "eu-west-1"),
    ];
    assert_eq!(calls.len(), expected.len(), "{calls:?}");
    for (got, want) in calls.iter().zip(expected) {
        assert_eq!((got.0.as_str(), got.1.as_str(), got.2.as_str()), want);
    }
}

#[tokio::test]
async fn single_region_key_never_matches_across_regions() {
    let fake = FakeKms::start();
    let config = Config::default();
    let east = KmsKeyring::builder(client(&fake, "us-east-1").await, [SRK_EAST])
        .build()
        .unwrap();
    let message = crate::common::async_client(&config, &east)
        .encrypt(&context(), b"local")
        .await
        .unwrap();

    let c = client(&fake, "eu-west-1").await;
    let strict = KmsKeyring::builder(c.clone(), [SRK_WEST]).build().unwrap();
    let err = crate::common::async_client(&config, &strict)
        .decrypt(&context(), &message)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoMatchingKey { edks: 1 }), "{err:?}");
    let discovery = KmsDiscoveryKeyring::builder(c.clone()).build().unwrap();
    let err = crate::common::async_client(&config, &discovery)
        .decrypt(&context(), &message)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoMatchingKey { edks: 1 }), "{err:?}");
    assert_eq!(c.stats().calls(), 0);
    assert_eq!(fake.calls().len(), 1, "only the GenerateDataKey");

    // The same key in its own region decrypts.
    let out = crate::common::async_client(&config, &east)
        .decrypt(&context(), &message)
        .await
        .unwrap();
    assert_eq!(*out.plaintext, b"local");
}

#[tokio::test]
async fn two_replicas_of_one_mrk_in_one_keyring_are_refused() {
    let fake = FakeKms::start();
    let err = KmsKeyring::builder(client(&fake, "us-east-1").await, [MRK_EAST, MRK_WEST])
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains(MRK_EAST) && err.to_string().contains(MRK_WEST),
        "{err}"
    );
}

#[tokio::test]
async fn bad_kms_responses_are_refused() {
    let fake = FakeKms::start();
    let config = Config::default();
    let c = client(&fake, "us-east-1").await;
    let keyring = KmsKeyring::builder(c.clone(), [SRK_EAST]).build().unwrap();
    let good = crate::common::async_client(&config, &keyring)
        .encrypt(&context(), b"ok")
        .await
        .unwrap();
    let two = KmsKeyring::builder(c.clone(), [SRK_EAST, MRK_EAST])
        .build()
        .unwrap();

    let cases = [
        (Quirk::ShortKey, AwsOperation::GenerateDataKey, "bytes"),
        (
            Quirk::NotAnArn,
            AwsOperation::GenerateDataKey,
            "not a KMS key ARN",
        ),
        (
            Quirk::NoCiphertext,
            AwsOperation::GenerateDataKey,
            "CiphertextBlob",
        ),
    ];
    for (quirk, op, text) in cases {
        *fake.quirk.lock().unwrap() = quirk;
        let err = crate::common::async_client(&config, &two)
            .encrypt(&context(), b"x")
            .await
            .unwrap_err();
        let Error::Aws(err) = err else {
            panic!("{quirk:?}: {err:?}")
        };
        assert_eq!(err.kind, AwsErrorKind::InvalidResponse, "{quirk:?}: {err}");
        assert_eq!(err.operation, op, "{quirk:?}: {err}");
        assert!(err.to_string().contains(text), "{quirk:?}: {err}");
    }

    for (quirk, text) in [(Quirk::WrongKeyId, "not the key"), (Quirk::ShortKey, "bytes")] {
        *fake.quirk.lock().unwrap() = quirk;
        let err = crate::common::async_client(&config, &keyring)
            .decrypt(&context(), &good)
            .await
            .unwrap_err();
        let Error::Aws(err) = err else {
            panic!("{quirk:?}: {err:?}")
        };
        assert_eq!(err.kind, AwsErrorKind::InvalidResponse, "{quirk:?}: {err}");
        assert_eq!(err.operation, AwsOperation::Decrypt);
        assert!(err.to_string().contains(text), "{quirk:?}: {err}");
    }
    *fake.quirk.lock().unwrap() = Quirk::None;
    crate::common::async_client(&config, &keyring)
        .decrypt(&context(), &good)
        .await
        .unwrap();
}

#[tokio::test]
async fn aws_kms_edks_without_a_key_arn_fail_before_any_call() {
    let fake = FakeKms::start();
    let config = Config::default();
    let aes = common::aes("app", "k", &[2u8; 32]);
    for info in [
        &b"not-an-arn"[..],
        b"arn:aws:kms:us-east-1:1:alias/x",
        b"\xff\xfe",
        b"arn:aws:kms:r:1:key/\x1b[2Jevil",
    ] {
        let multi = envseal::MultiKeyring::from_keyrings(vec![
            aes.clone(),
            std::sync::Arc::new(common::Edks::junk("aws-kms", info, 64)),
        ])
        .unwrap();
        let message = crate::common::async_client(&config, &multi)
            .encrypt(&context(), b"m")
            .await
            .unwrap();
        let c = client(&fake, "us-east-1").await;
        for keyring in [
            std::sync::Arc::new(KmsKeyring::builder(c.clone(), [SRK_EAST]).build().unwrap())
                as std::sync::Arc<dyn envseal::Keyring>,
            std::sync::Arc::new(KmsDiscoveryKeyring::builder(c.clone()).build().unwrap()),
        ] {
            let result = crate::common::async_client(&config, keyring.clone())
                .decrypt(&context(), &message)
                .await;
            match (info.starts_with(b"arn:aws:kms:r:1:key/"), result) {
                // A well-formed key ARN (with junk bytes): tried, or skipped
                // as another region's; never a panic, never success.
                (true, r) => assert!(r.is_err()),
                (false, Err(Error::Format(envseal::FormatError::Invalid { field, .. }))) => {
                    assert_eq!(field, "aws-kms provider info");
                }
                (false, other) => panic!("{info:?}: {other:?}"),
            }
        }
        assert_eq!(c.stats().calls(), 0, "{info:?}");
        // The raw AES key still opens the message.
        crate::common::async_client(&config, aes.clone())
            .decrypt(&context(), &message)
            .await
            .unwrap();
    }
}

/// The KMS RSA keyring's checks of a Decrypt answer: another key's id, a
/// plaintext of the wrong length, a digest that does not match. Each is a
/// clean typed error; the message is wrapped locally, so no call on encrypt.
#[tokio::test]
async fn kms_rsa_keyring_checks_the_decrypt_response() {
    use envseal::{AlgorithmSuite, KmsRsaKeyring, RsaPadding, RsaPublicKey};
    let fake = FakeKms::start();
    let client = client(&fake, "us-east-1").await;
    let pem = std::fs::read_to_string(common::data_path("rsa-4096-public.pem")).unwrap();
    let public = RsaPublicKey::from_pem(&pem).unwrap();
    let keyring = KmsRsaKeyring::builder(client, SRK_EAST, RsaPadding::OaepSha256)
        .public_key(public)
        .build()
        .unwrap();
    let config = Config::builder()
        .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
        .build()
        .unwrap();
    let message = crate::common::async_client(&config, &keyring)
        .encrypt(&context(), b"x")
        .await
        .unwrap();
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
    for (quirk, text) in [
        (Quirk::WrongKeyId, Some("another key")),
        (Quirk::ShortKey, Some("not a context digest")),
        (Quirk::None, None),
    ] {
        *fake.quirk.lock().unwrap() = quirk;
        let err = crate::common::async_client(&config, &keyring)
            .decrypt(&context(), &message)
            .await
            .unwrap_err();
        match text {
            Some(text) => {
                let Error::Aws(err) = err else {
                    panic!("{quirk:?}: {err:?}")
                };
                assert_eq!(err.kind, AwsErrorKind::InvalidResponse, "{quirk:?}: {err}");
                assert_eq!(err.operation, AwsOperation::Decrypt);
                assert!(err.to_string().contains(text), "{quirk:?}: {err}");
            }
            None => assert!(matches!(err, Error::Decrypt), "{quirk:?}: {err:?}"),
        }
    }
    let calls = fake.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(
        calls
            .iter()
            .all(|(op, key, _)| op == "Decrypt" && key == SRK_EAST),
        "{calls:?}"
    );
}
