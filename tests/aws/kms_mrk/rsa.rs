//! The AWS KMS RSA keyring with multi-Region keys (spec
//! `framework/aws-kms/aws-kms-rsa-keyring.md`, OnDecrypt, and
//! `aws-kms-mrk-match-for-decrypt.md`), against the fake KMS with a real
//! RSA key behind it: an EDK written under one replica's ARN is decrypted
//! by a keyring configured with another replica (Decrypt is called with
//! the configured ARN, and KMS must answer with it); EDKs that name no key
//! ARN fail the decrypt; when no EDK decrypts, every EDK's failure is kept.

use super::*;

use envseal::{AlgorithmSuite, KmsRsaKeyring, MultiKeyring, RsaPadding, RsaPublicKey};

const RSA_MRK_EAST: &str = "arn:aws:kms:us-east-1:111122223333:key/mrk-1d2e3f40a1b2c3d4e5f60718293a4b5c";
const RSA_MRK_WEST: &str = "arn:aws:kms:us-west-2:111122223333:key/mrk-1d2e3f40a1b2c3d4e5f60718293a4b5c";
const RSA_SRK_WEST: &str = "arn:aws:kms:us-west-2:111122223333:key/4c3e4ad2-9d36-4a3a-8d6c-2a53e2b1f7a0";

fn unsigned() -> Config {
    Config::builder()
        .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
        .build()
        .unwrap()
}

fn public() -> RsaPublicKey {
    RsaPublicKey::from_pem(common::RSA_PUBLIC_PEM).unwrap()
}

/// Written under the us-east-1 replica (locally, with the public key),
/// decrypted by a keyring configured with the us-west-2 replica: one
/// Decrypt, under the us-west-2 ARN, signed for us-west-2 (failed before:
/// the ARNs differ, so no EDK matched). A single-Region key never matches
/// another key.
#[tokio::test]
async fn an_mrk_replica_in_another_region_decrypts_kms_rsa_edks() {
    let fake = FakeKms::start();
    fake.add_rsa_key(RSA_MRK_EAST, common::RSA_PRIVATE_PEM);
    let east = client(&fake, "us-east-1").await;
    let writer = KmsRsaKeyring::builder(east, RSA_MRK_EAST, RsaPadding::OaepSha256)
        .public_key(public())
        .build()
        .unwrap();
    let message = crate::common::async_client(&unsigned(), &writer)
        .encrypt(&context(), b"rsa replicated")
        .await
        .unwrap();
    assert!(fake.calls().is_empty(), "encrypt is local");

    let west = client(&fake, "us-west-2").await;
    let reader = KmsRsaKeyring::builder(west.clone(), RSA_MRK_WEST, RsaPadding::OaepSha256)
        .build()
        .unwrap();
    let out = crate::common::async_client(&unsigned(), &reader)
        .decrypt(&context(), &message)
        .await
        .unwrap();
    assert_eq!(&*out.plaintext, b"rsa replicated");
    let calls = fake.calls();
    assert_eq!(
        calls,
        [(
            "Decrypt".to_owned(),
            RSA_MRK_WEST.to_owned(),
            "us-west-2".to_owned()
        )]
    );

    // KMS answering for another key than the configured replica: refused.
    *fake.quirk.lock().unwrap() = Quirk::WrongKeyId;
    let err = crate::common::async_client(&unsigned(), &reader)
        .decrypt(&context(), &message)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another key"), "{err}");
    *fake.quirk.lock().unwrap() = Quirk::None;

    let srk = KmsRsaKeyring::builder(west.clone(), RSA_SRK_WEST, RsaPadding::OaepSha256)
        .build()
        .unwrap();
    let err = crate::common::async_client(&unsigned(), &srk)
        .decrypt(&context(), &message)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoMatchingKey { .. }), "{err:?}");
    assert_eq!(fake.calls().len(), 2, "no call for a key that does not match");
}

/// Spec: an `aws-kms-rsa` EDK whose provider info is not a KMS key ARN
/// fails the decrypt (before: skipped); and when no EDK decrypts, the
/// error lists every EDK's failure (before: the first only).
#[tokio::test]
async fn kms_rsa_edks_without_an_arn_fail_and_every_failure_is_kept() {
    let fake = FakeKms::start();
    fake.add_rsa_key(RSA_MRK_EAST, common::RSA_PRIVATE_PEM);
    let c = client(&fake, "us-east-1").await;
    let reader = KmsRsaKeyring::builder(c.clone(), RSA_MRK_EAST, RsaPadding::OaepSha256)
        .build()
        .unwrap();

    let not_arn = crate::common::async_client(
        &unsigned(),
        &common::Edks::junk("aws-kms-rsa", b"alias/not-a-key", 512),
    )
    .encrypt(&context(), b"x")
    .await
    .unwrap();
    let err = crate::common::async_client(&unsigned(), &reader)
        .decrypt(&context(), &not_arn)
        .await
        .unwrap_err();
    // Untrusted bytes: a format error naming the field, not a keyring's.
    assert!(
        matches!(&err, Error::Format(envseal::FormatError::Invalid { field, .. }) if field.contains("aws-kms-rsa")),
        "{err:?}"
    );
    assert!(fake.calls().is_empty());

    // A junk EDK under the key (KMS refuses it), then a real one read
    // with an extra reproduced pair (its digest does not match): both listed.
    let writer = KmsRsaKeyring::builder(c.clone(), RSA_MRK_EAST, RsaPadding::OaepSha256)
        .public_key(public())
        .build()
        .unwrap();
    let both = MultiKeyring::new(
        Some(std::sync::Arc::new(common::Edks::junk(
            "aws-kms-rsa",
            RSA_MRK_EAST.as_bytes(),
            512,
        ))),
        vec![std::sync::Arc::new(writer)],
    )
    .unwrap();
    let message = crate::common::async_client(&unsigned(), &both)
        .encrypt(&context(), b"x")
        .await
        .unwrap();
    let other: EncryptionContext = [("record", "42"), ("extra", "x")].into_iter().collect();
    let err = crate::common::async_client(&unsigned(), &reader)
        .decrypt(&other, &message)
        .await
        .unwrap_err();
    let Error::Keyrings(all) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(all.len(), 2, "{err}");
    let Error::Aws(first) = &all[0] else {
        panic!("{err}")
    };
    assert_eq!(first.kind, AwsErrorKind::InvalidCiphertext, "{first}");
    assert!(matches!(all[1], Error::Decrypt), "{err}");
    // The right context: the second EDK decrypts after the first fails.
    let out = crate::common::async_client(&unsigned(), &reader)
        .decrypt(&context(), &message)
        .await
        .unwrap();
    assert_eq!(&*out.plaintext, b"x");
}
