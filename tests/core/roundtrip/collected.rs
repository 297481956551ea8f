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

/// Every child's failure is listed, failed checks as opaque `Decrypt`s,
/// and a nested multi-keyring's list joins the outer one; children that
/// only fail their checks read as one `Decrypt`.
#[test]
fn multi_keyring_lists_every_childs_failure() {
    let msg = sealed_under_key_1(b"x");
    let inner = MultiKeyring::from_keyrings(vec![Arc::new(FailedCheck), Arc::new(Down("inner"))]).unwrap();
    let ring = MultiKeyring::from_keyrings(vec![
        Arc::new(FailedCheck),
        Arc::new(FailedCheck),
        Arc::new(inner),
    ])
    .unwrap();
    let err = crate::common::client(&Config::default(), &ring)
        .decrypt(&EncryptionContext::new(), &msg)
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
    let err = crate::common::client(&Config::default(), &ring)
        .decrypt(&EncryptionContext::new(), &msg)
        .unwrap_err();
    // Failed checks alone: one opaque Decrypt, as a single failed check.
    assert!(matches!(&err, Error::Decrypt), "{err:?}");
}

/// Raw ECDH (spec `framework/raw-ecdh-keyring.md`, OnDecrypt): each EDK's
/// failure is collected, a sender key that is no point as a failed check
/// (it was skipped); failed checks alone read as one opaque `Decrypt`. The
/// ephemeral scheme refuses to decrypt (before: "not mine", so the message
/// read as for someone else).
#[test]
fn raw_ecdh_lists_every_edks_failure_and_ephemeral_refuses_to_decrypt() {
    use envseal::{Curve, RawEcdhKeyring};
    let curve = Curve::P256;
    let config = Config::builder()
        .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
        .build()
        .unwrap();
    let to_b = || Arc::new(RawEcdhKeyring::ephemeral(ecdh_public(curve, "b", "der")));
    let two = MultiKeyring::new(Some(to_b()), vec![to_b()]).unwrap();
    let m = crate::common::client(&config, &two)
        .encrypt(&ctx(&[]), b"two")
        .unwrap();
    let b = Arc::new(RawEcdhKeyring::discovery(ecdh_private(curve, "b")));
    assert_eq!(
        &*crate::common::client(&config, &b)
            .decrypt(&ctx(&[]), &m)
            .unwrap()
            .plaintext,
        b"two"
    );

    // EDK 1: a commitment key byte altered; EDK 2: its sender key is no
    // point (provider info = 01, u32, recipient, u32, sender). The keyring
    // reads the EDKs before the header tag is checked.
    let edks = crate::common::parse(&config, &m[..])
        .unwrap()
        .encrypted_data_keys()
        .to_vec();
    assert_eq!(edks.len(), 2);
    let at = |m: &[u8], needle: &[u8]| m.windows(needle.len()).position(|w| w == needle).unwrap();
    let mut bad = m.clone();
    let c1 = at(&bad, &edks[0].ciphertext);
    bad[c1 + 40] ^= 1;
    let p2 = at(&bad, &edks[1].provider_info);
    bad[p2 + 1 + 4 + 33 + 4] = 0x07;
    // Both are failed checks on the message's bytes (the sender key that is
    // no point too): one opaque Decrypt, whichever check failed.
    let err = crate::common::client(&config, &b)
        .decrypt(&ctx(&[]), &bad)
        .unwrap_err();
    assert!(matches!(&err, Error::Decrypt), "{err:?}");

    let err = crate::common::client(&config, to_b())
        .decrypt(&ctx(&[]), &m)
        .unwrap_err();
    let Error::Keyring { keyring, reason, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(
        keyring.contains("ephemeral") && reason.contains("only encrypts"),
        "{err}"
    );
}
