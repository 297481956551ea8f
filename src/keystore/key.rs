//! Key bytes from KMS, kept in the one heap allocation KMS's response was
//! decoded into: a branch key or a beacon key moves from the `Decrypt`
//! answer into its materials and on into a cache without a copy, so the
//! only copy is the one [`Zeroizing`] wipes when the materials drop.
//! (A `[u8; 32]` held by value would be copied on every move of its
//! owner, through each async return and into an `Arc`, leaving copies no
//! one wipes.)

use zeroize::Zeroizing;

use super::BRANCH_KEY_LEN;
use crate::error::Result;
use crate::kms::{AwsError, AwsErrorKind, AwsOperation, UnwrappedKey};

/// 32 key bytes in a heap allocation, wiped on drop (its spare capacity
/// too). No `Debug`, no `Clone`.
pub(crate) struct KeyBytes(Zeroizing<Vec<u8>>);

impl KeyBytes {
    /// Takes over `bytes` (no copy) if it holds exactly 32 bytes; `None`
    /// (and `bytes` wiped) otherwise.
    pub(crate) fn new(bytes: Zeroizing<Vec<u8>>) -> Option<Self> {
        (bytes.len() == BRANCH_KEY_LEN).then_some(KeyBytes(bytes))
    }

    /// The key, read in place.
    pub(crate) fn expose(&self) -> &[u8; BRANCH_KEY_LEN] {
        self.0
            .as_slice()
            .try_into()
            .expect("KeyBytes::new admits exactly BRANCH_KEY_LEN bytes")
    }
}

/// An error about KMS Decrypt's answer for an item of `branch_key_id`.
pub(super) fn invalid_answer(kms_key: &str, branch_key_id: &str, message: &str) -> AwsError {
    AwsError::new(AwsErrorKind::InvalidResponse, AwsOperation::Decrypt, kms_key)
        .with_message(format!("branch key {branch_key_id}: {message}"))
}

/// The key in KMS Decrypt's answer for an item of `branch_key_id` (`what`:
/// "branch key" or "beacon key"), kept where the answer put it.
///
/// # Errors
/// [`crate::Error::Aws`] (`InvalidResponse`) when KMS answered for another
/// key than `kms_key`, or the key is not 32 bytes.
pub(super) fn unwrapped_key(
    unwrapped: UnwrappedKey,
    kms_key: &str,
    branch_key_id: &str,
    what: &str,
) -> Result<KeyBytes> {
    if unwrapped.key_id.as_deref().is_some_and(|k| k != kms_key) {
        return Err(invalid_answer(kms_key, branch_key_id, "KMS answered for another key").into());
    }
    Ok(KeyBytes::new(unwrapped.plaintext)
        .ok_or_else(|| invalid_answer(kms_key, branch_key_id, &format!("the {what} is not 32 bytes")))?)
}
