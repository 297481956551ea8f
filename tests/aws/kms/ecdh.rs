//! The AWS KMS ECDH keyring against moto with real ECDH
//! (tests/interop/kms_server.py): when no EDK decrypts, every EDK's
//! failure is kept (spec `framework/aws-kms/aws-kms-ecdh-keyring.md`,
//! OnDecrypt); its Debug output never shows grant tokens.

use super::*;

use envseal::{Curve, EcdhPublicKey, KmsEcdhKeyring};

fn b_public() -> EcdhPublicKey {
    let der = std::fs::read(common::data_path("ecdh-p256-b-public.der")).unwrap();
    EcdhPublicKey::from_bytes(Curve::P256, &der).unwrap()
}

/// Two EDKs from the KMS key to B. Read with an extra context pair, both
/// fail their checks; with KMS refusing, both DeriveSharedSecret calls
/// fail: each time the error lists both (failed before: one
/// `Decrypt`, then only the first KMS error).
#[tokio::test]
async fn kms_ecdh_lists_every_edks_failure() {
    let c = client("us-east-1").await;
    let k = moto::create_ecdh_key("us-east-1", "ECC_NIST_P256").await;
    let one = || async {
        Arc::new(
            KmsEcdhKeyring::builder(c.clone())
                .static_keys(&k, b_public())
                .build()
                .await
                .unwrap(),
        )
    };
    let two = MultiKeyring::new(Some(one().await), vec![one().await]).unwrap();
    let config = Config::builder()
        .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
        .build()
        .unwrap();
    let message = crate::common::async_client(&config, &two)
        .encrypt(&context(), b"ecdh")
        .await
        .unwrap();
    let reader = one().await;
    let out = crate::common::async_client(&config, reader.clone())
        .decrypt(&context(), &message)
        .await
        .unwrap();
    assert_eq!(&*out.plaintext, b"ecdh");

    let mut extra = context();
    extra.insert("extra", "x");
    let err = crate::common::async_client(&config, reader.clone())
        .decrypt(&extra, &message)
        .await
        .unwrap_err();
    // Both EDKs fail their check: one opaque Decrypt (which check failed
    // never shows).
    assert!(matches!(&err, Error::Decrypt), "{err:?}");

    // A KMS that answers GetPublicKey, then refuses every call.
    let fault = FaultServer::start(
        Some(moto().url.clone()),
        vec![Action::Proxy, Action::Error(400, "AccessDeniedException")],
    );
    let refused = moto::client("us-east-1", &fault.url, AwsBounds::default()).await;
    let reader = std::sync::Arc::new(
        KmsEcdhKeyring::builder(refused)
            .static_keys(&k, b_public())
            .build()
            .await
            .unwrap(),
    );
    let err = crate::common::async_client(&config, &reader)
        .decrypt(&context(), &message)
        .await
        .unwrap_err();
    let Error::Keyrings(all) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(all.len(), 2, "{err}");
    for e in all {
        let Error::Aws(e) = e else { panic!("{err}") };
        assert_eq!(e.kind, AwsErrorKind::AccessDenied, "{e}");
    }
}

/// Grant tokens are bearer credentials: the keyring's Debug output counts
/// them and never shows them (failed before: the derived Debug printed
/// them).
#[tokio::test]
async fn kms_ecdh_debug_hides_grant_tokens() {
    let c = client("us-east-1").await;
    let k = moto::create_ecdh_key("us-east-1", "ECC_NIST_P256").await;
    let token = "grant-token-5f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let keyring = KmsEcdhKeyring::builder(c.clone())
        .static_keys(&k, b_public())
        .grant_tokens([token.to_owned()])
        .build()
        .await
        .unwrap();
    let shown = format!("{keyring:?}");
    assert!(!shown.contains(token), "{shown}");
    assert!(shown.contains("grant_tokens: 1") && shown.contains(&k), "{shown}");
    let discovery = KmsEcdhKeyring::builder(c)
        .discovery(Curve::P256, &k)
        .grant_tokens([token.to_owned()])
        .build()
        .await
        .unwrap();
    assert!(!format!("{discovery:?}").contains(token));
}

#[tokio::test]
async fn kms_ecdh_builder_needs_a_scheme() {
    // Neither static keys nor a discovery recipient: refused before any call.
    let c = client("us-east-1").await;
    let err = KmsEcdhKeyring::builder(c.clone()).build().await.unwrap_err();
    assert!(
        matches!(
            err,
            envseal::Error::Config {
                setting: "KMS ECDH scheme",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(c.stats().attempts, 0);
}
