//! Unit tests of the key store's parts that need no AWS.

use std::sync::Arc;

use zeroize::Zeroizing;

use super::items::{check_item, Attr, ItemType, NewItem, ENC};
use super::*;

const KMS_KEY: &str = "arn:aws:kms:us-west-2:111122223333:key/k";
const VERSION: &str = "0f7a3a5e-3c2b-4c1e-9b8a-1d2e3f4a5b6c";

fn checked(item_type: ItemType<'_>) -> items::CheckedItem {
    let custom = EncryptionContext::from([("tenant", "t-1")]);
    let mut item = NewItem {
        branch_key_id: "bk",
        item_type,
        version: VERSION,
        create_time: "2026-12-01T16:35:53.395075Z",
        kms_arn: KMS_KEY,
        custom: &custom,
    }
    .attributes();
    item.insert(ENC.into(), Attr::B(vec![1, 2, 3]));
    check_item(&item, "bk", item_type, "logical").unwrap()
}

/// What KMS Decrypt answers: `len` key bytes in the allocation the SDK
/// decoded them into.
fn unwrapped(len: usize) -> UnwrappedKey {
    UnwrappedKey {
        plaintext: Zeroizing::new((0..len as u8).collect()),
        key_id: Some(KMS_KEY.to_owned()),
    }
}

async fn through_an_async_return<T>(value: T) -> T {
    tokio::task::yield_now().await;
    value
}

/// The branch key stays in the allocation KMS's response was decoded into
/// (which `Zeroizing<Vec<u8>>` wipes): no copy into the materials, and
/// none when the materials move through an async return, into a `Box`
/// or into the `Arc` a cache holds.
#[tokio::test]
async fn the_branch_key_stays_in_the_kms_response_allocation() {
    let unwrapped = unwrapped(BRANCH_KEY_LEN);
    let kms_buffer = unwrapped.plaintext.as_ptr();
    let materials = branch_key_materials(checked(ItemType::Active), unwrapped, KMS_KEY).unwrap();
    assert_eq!(materials.expose_secret().as_ptr(), kms_buffer);
    assert_eq!(materials.expose_secret()[..], (0..32).collect::<Vec<u8>>());
    let materials = through_an_async_return(materials).await;
    assert_eq!(materials.expose_secret().as_ptr(), kms_buffer);
    let boxed = Box::new(materials);
    assert_eq!(boxed.expose_secret().as_ptr(), kms_buffer);
    let cached = Arc::new(*boxed);
    assert_eq!(cached.expose_secret().as_ptr(), kms_buffer);
    assert_eq!(cached.version(), VERSION);
}

#[test]
fn a_branch_key_of_another_length_is_refused() {
    for len in [0, 31, 33, 64] {
        let err = branch_key_materials(checked(ItemType::Active), unwrapped(len), KMS_KEY).unwrap_err();
        let Error::Aws(e) = &err else { panic!("{err}") };
        assert_eq!(e.kind, AwsErrorKind::InvalidResponse, "{len}");
    }
    let mut other = unwrapped(BRANCH_KEY_LEN);
    other.key_id = Some("arn:aws:kms:us-west-2:111122223333:key/other".into());
    assert!(branch_key_materials(checked(ItemType::Active), other, KMS_KEY).is_err());
}

/// The beacon key too stays in KMS's allocation; its materials carry the
/// branch key id and custom context, and a key of another length is
/// refused.
#[tokio::test]
async fn beacon_key_materials_from_a_beacon_item() {
    let answer = unwrapped(BRANCH_KEY_LEN);
    let kms_buffer = answer.plaintext.as_ptr();
    let materials = beacon::beacon_key_materials(checked(ItemType::Beacon), answer, KMS_KEY).unwrap();
    let materials = Arc::new(through_an_async_return(materials).await);
    assert_eq!(materials.expose_secret().as_ptr(), kms_buffer);
    assert_eq!(materials.beacon_key_id(), "bk");
    assert_eq!(
        materials.encryption_context(),
        &EncryptionContext::from([("tenant", "t-1")])
    );
    let debug = format!("{materials:?}");
    assert!(
        debug.contains("<redacted>") && !debug.contains("[0, 1, 2"),
        "{debug}"
    );
    assert!(beacon::beacon_key_materials(checked(ItemType::Beacon), unwrapped(16), KMS_KEY).is_err());
}

/// A builder's Debug counts its grant tokens (bearer credentials) and
/// never prints them.
#[test]
fn builder_debug_does_not_print_grant_tokens() {
    let builder = KeyStore::builder("table", KMS_KEY).grant_tokens(vec!["secret-grant-token".into()]);
    let shown = format!("{builder:?}");
    assert!(!shown.contains("secret-grant-token"), "{shown}");
    assert!(shown.contains("grant_tokens: 1"), "{shown}");
}
