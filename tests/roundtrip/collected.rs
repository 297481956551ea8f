//! How failures are collected when no data key is decrypted: every
//! failure is kept, in order (spec `framework/multi-keyring.md`, OnDecrypt,
//! and each keyring's OnDecrypt over its EDKs), failed checks as opaque as
//! ever.

use super::*;

/// A keyring whose decrypt is always a failed cryptographic check.
struct FailedCheck;

#[envseal::async_trait]
impl Keyring for FailedCheck {
    async fn on_encrypt(&self, _: &mut envseal::EncryptionMaterials) -> envseal::Result<()> {
        unreachable!("decrypt only")
    }

    async fn on_decrypt(
        &self,
        _: &envseal::DecryptionMaterials,
        _: &[envseal::EncryptedDataKey],
    ) -> envseal::Result<Option<envseal::DataKey>> {
        Err(Error::Decrypt)
    }
}

/// Children that all fail their checks are each listed (before, they were
/// folded into one `Decrypt`); a nested multi-keyring's list joins the
/// outer one.
#[test]
fn multi_keyring_lists_failed_checks_too() {
    let rt = Runtime::new().unwrap();
    let msg = sealed_under_key_1(&rt, b"x");
    let inner = MultiKeyring::from_keyrings(vec![Arc::new(FailedCheck), Arc::new(Down("inner"))]).unwrap();
    let ring = MultiKeyring::from_keyrings(vec![
        Arc::new(FailedCheck),
        Arc::new(FailedCheck),
        Arc::new(inner),
    ])
    .unwrap();
    let err = rt
        .decrypt(&Config::default(), &ring, &EncryptionContext::new(), &msg)
        .unwrap_err();
    let Error::Keyrings(all) = &err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(
            all.as_slice(),
            [
                Error::Decrypt,
                Error::Decrypt,
                Error::Decrypt,
                Error::Keyring { .. }
            ]
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "every attempt to decrypt the data key failed: 1) authentication failed; 2) authentication \
         failed; 3) authentication failed; 4) keyring inner: inner is down"
    );
    let ring = MultiKeyring::from_keyrings(vec![Arc::new(FailedCheck), Arc::new(FailedCheck)]).unwrap();
    let err = rt
        .decrypt(&Config::default(), &ring, &EncryptionContext::new(), &msg)
        .unwrap_err();
    assert!(matches!(&err, Error::Keyrings(all) if all.len() == 2), "{err:?}");
}
