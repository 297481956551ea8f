//! GetBeaconKey: the beacon key every branch key has beside its versions
//! (item `beacon:ACTIVE`), which searchable encryption derives its beacon
//! HMAC keys from. Spec: `framework/branch-key-store.md` ("GetBeaconKey",
//! "Beacon Key Encryption Context", "AWS KMS Branch Key Decryption") and
//! `framework/structures.md` ("Beacon Key Materials").

use std::fmt;

use super::items::{CheckedItem, ItemType};
use super::key::{self, KeyBytes};
use super::{KeyStore, BRANCH_KEY_LEN};
use crate::error::Result;
use crate::format::EncryptionContext;
use crate::kms::UnwrappedKey;

/// A beacon key, unwrapped, with the custom encryption context of its
/// branch key. The key is wiped on drop, never printed, and stays in the
/// heap allocation KMS's answer was decoded into.
pub struct BeaconKeyMaterials {
    beacon_key_id: String,
    encryption_context: EncryptionContext,
    key: KeyBytes,
}

impl fmt::Debug for BeaconKeyMaterials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BeaconKeyMaterials")
            .field("beacon_key_id", &self.beacon_key_id)
            .field("encryption_context", &self.encryption_context)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl BeaconKeyMaterials {
    /// The beacon key id: the id of the branch key it belongs to.
    pub fn beacon_key_id(&self) -> &str {
        &self.beacon_key_id
    }

    /// The custom encryption context the branch key was created with.
    pub fn encryption_context(&self) -> &EncryptionContext {
        &self.encryption_context
    }

    /// The beacon key itself (32 bytes).
    pub fn expose_secret(&self) -> &[u8; BRANCH_KEY_LEN] {
        self.key.expose()
    }
}

impl KeyStore {
    /// The beacon key of a branch key: GetItem `beacon:ACTIVE`, the item's
    /// checks (the record format, no `version` attribute, `kms-arn` the
    /// store's KMS key), then KMS Decrypt under the item's encryption
    /// context (spec: GetBeaconKey).
    ///
    /// # Errors
    /// [`crate::Error::Config`] for a store without a KMS key;
    /// [`crate::Error::Aws`]: no such branch key (`NotFound`), an item
    /// that fails its checks or does not decrypt, a key that is not 32
    /// bytes, or a failed call.
    pub async fn get_beacon_key(&self, branch_key_id: &str) -> Result<BeaconKeyMaterials> {
        let (checked, unwrapped) = self
            .read_and_decrypt(branch_key_id, ItemType::Beacon, self.deadline())
            .await?;
        beacon_key_materials(checked, unwrapped, self.key()?)
    }
}

/// Beacon key materials from a checked beacon item and what KMS Decrypt
/// answered for it (the MPL's `ToBeaconKeyMaterials`).
pub(super) fn beacon_key_materials(
    checked: CheckedItem,
    unwrapped: UnwrappedKey,
    kms_key: &str,
) -> Result<BeaconKeyMaterials> {
    let key = key::unwrapped_key(unwrapped, kms_key, &checked.branch_key_id, "beacon key")?;
    Ok(BeaconKeyMaterials {
        beacon_key_id: checked.branch_key_id,
        encryption_context: checked.custom,
        key,
    })
}
