//! The AWS KMS ECDH keyring against moto with real ECDH
//! (tests/interop/kms_server.py): its Debug output never shows grant
//! tokens.

use super::*;

use envseal::{EcdhCurve, EcdhPublicKey, KmsEcdhKeyring};

fn b_public() -> EcdhPublicKey {
    let der = std::fs::read(common::data_path("ecdh-p256-b-public.der")).unwrap();
    EcdhPublicKey::from_bytes(EcdhCurve::P256, &der).unwrap()
}

/// Grant tokens are bearer credentials: the keyring's Debug output counts
/// them and never shows them (failed before: the derived Debug printed
/// them).
#[tokio::test]
async fn kms_ecdh_debug_hides_grant_tokens() {
    let c = client("us-east-1").await;
    let k = moto::create_ecdh_key("us-east-1", "ECC_NIST_P256").await;
    let token = "grant-token-5f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let keyring = KmsEcdhKeyring::static_keys(c.clone(), &k, b_public())
        .await
        .unwrap()
        .with_grant_tokens([token.to_owned()]);
    let shown = format!("{keyring:?}");
    assert!(!shown.contains(token), "{shown}");
    assert!(shown.contains("grant_tokens: 1") && shown.contains(&k), "{shown}");
    let discovery = KmsEcdhKeyring::discovery(c, EcdhCurve::P256, &k)
        .await
        .unwrap()
        .with_grant_tokens([token.to_owned()]);
    assert!(!format!("{discovery:?}").contains(token));
}
