//! The data-key cache's entry ids (spec `framework/caching-cmm.md`,
//! Appendix A: "Cache Entry Identifier Formulas"), and the memo that spares
//! a manager hashing the same inputs again.

use std::sync::Mutex;

use crate::crypto::sha512_concat;
use crate::error::{FormatError, Result};
use crate::format::{EncryptedDataKey, EncryptionContext};
use crate::suite::AlgorithmSuite;

/// A cache entry's identifier: a SHA-512 digest (spec
/// `framework/caching-cmm.md`, Appendix A).
pub(super) type EntryId = [u8; 64];

/// The last encrypt and decrypt entry ids a manager computed and their
/// inputs: records under one context, and messages under one cached data
/// key, reuse the id instead of hashing again (the ids' SHA-512 blocks cost
/// about a microsecond a message, a quarter of a cached 1 KiB record). A
/// contended memo is skipped, never waited for; a decrypt memo holds at
/// most [`MEMO_MAX_EDK_BYTES`] of encrypted data keys.
#[derive(Default)]
pub(super) struct IdMemo {
    pub(super) encrypt: Mutex<Option<Memo<Vec<String>>>>,
    pub(super) decrypt: Mutex<Option<Memo<Vec<EncryptedDataKey>>>>,
}

/// An id and its inputs: suite, context, and the required keys (encrypt)
/// or the encrypted data keys (decrypt).
type Memo<T> = (AlgorithmSuite, EncryptionContext, T, EntryId);

/// The most encrypted data key bytes a decrypt memo holds.
pub(super) const MEMO_MAX_EDK_BYTES: usize = 4096;

impl IdMemo {
    pub(super) fn encrypt_id(
        &self,
        partition: &[u8; 64],
        suite: AlgorithmSuite,
        context: &EncryptionContext,
        required: &[String],
    ) -> Result<EntryId> {
        let mut memo = self.encrypt.try_lock().ok();
        if let Some(Some((s, c, r, id))) = memo.as_deref() {
            if *s == suite && c == context && r.as_slice() == required {
                return Ok(*id);
            }
        }
        let id = encrypt_entry_id(partition, suite, context, required)?;
        if let Some(memo) = memo.as_deref_mut() {
            *memo = Some((suite, context.clone(), required.to_vec(), id));
        }
        Ok(id)
    }

    pub(super) fn decrypt_id(
        &self,
        partition: &[u8; 64],
        suite: AlgorithmSuite,
        edks: &[EncryptedDataKey],
        context: &EncryptionContext,
    ) -> Result<EntryId> {
        let mut memo = self.decrypt.try_lock().ok();
        if let Some(Some((s, c, e, id))) = memo.as_deref() {
            if *s == suite && e.as_slice() == edks && c == context {
                return Ok(*id);
            }
        }
        let id = decrypt_entry_id(partition, suite, edks, context)?;
        let size: usize = edks
            .iter()
            .map(|e| e.provider_id.len() + e.provider_info.len() + e.ciphertext.len())
            .sum();
        if let (Some(memo), true) = (memo.as_deref_mut(), size <= MEMO_MAX_EDK_BYTES) {
            *memo = Some((suite, context.clone(), edks.to_vec(), id));
        }
        Ok(id)
    }
}

/// An encrypt entry's id. Spec `framework/caching-cmm.md`, Appendix A,
/// "Encryption Materials, With Algorithm Suite" (envseal's requests always
/// name a suite): SHA-512(SHA-512(partition) || 01 || suite id ||
/// SHA-512(serialized context)).
///
/// With required encryption context keys (the required-context CMM in
/// front of this one), SHA-512 of those keys (count, then each u16
/// length-prefixed, sorted) follows inside the digest: the
/// cached materials carry the header built for them (required pairs are
/// authenticated, not stored), so requests with the same context but other
/// required keys must not share an entry, and the spec's formula does not
/// tell them apart. Without required keys the id is the spec's.
pub(super) fn encrypt_entry_id(
    partition: &[u8; 64],
    suite: AlgorithmSuite,
    context: &EncryptionContext,
    required: &[String],
) -> Result<EntryId> {
    let context = sha512_concat(&[&context.serialize()?]);
    let suite = suite.id().to_be_bytes();
    if required.is_empty() {
        return Ok(sha512_concat(&[partition, &[0x01], &suite, &context]));
    }
    let mut sorted: Vec<&str> = required.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut keys = Vec::with_capacity(8 + sorted.iter().map(|k| 2 + k.len()).sum::<usize>());
    keys.extend_from_slice(&(sorted.len() as u64).to_be_bytes());
    for k in sorted {
        keys.extend_from_slice(&u16_len(k.as_bytes(), "required encryption context key")?.to_be_bytes());
        keys.extend_from_slice(k.as_bytes());
    }
    let keys = sha512_concat(&[&keys]);
    Ok(sha512_concat(&[partition, &[0x01], &suite, &context, &keys]))
}

/// A decrypt entry's id. Spec `framework/caching-cmm.md`, Appendix A,
/// "Decryption Materials": SHA-512(SHA-512(partition) || suite id || the
/// sorted SHA-512 digests of the serialized encrypted data keys || 64 zero
/// bytes || SHA-512(serialized context)). The context is the materials'
/// (stored pairs and the caller's reproduced ones, which the keyrings
/// authenticate too).
pub(super) fn decrypt_entry_id(
    partition: &[u8; 64],
    suite: AlgorithmSuite,
    edks: &[EncryptedDataKey],
    context: &EncryptionContext,
) -> Result<EntryId> {
    let mut digests = Vec::with_capacity(edks.len());
    let mut serialized = Vec::new();
    for edk in edks {
        // Serialized as in the message header (data-format/message-header.md).
        serialized.clear();
        for field in [edk.provider_id.as_bytes(), &edk.provider_info, &edk.ciphertext] {
            serialized.extend_from_slice(&u16_len(field, "encrypted data key")?.to_be_bytes());
            serialized.extend_from_slice(field);
        }
        digests.push(sha512_concat(&[&serialized]));
    }
    digests.sort_unstable();
    let context = sha512_concat(&[&context.serialize()?]);
    let suite = suite.id().to_be_bytes();
    let mut parts: Vec<&[u8]> = Vec::with_capacity(digests.len() + 4);
    parts.push(partition);
    parts.push(&suite);
    parts.extend(digests.iter().map(|d| &d[..]));
    parts.push(&[0; 64]);
    parts.push(&context);
    Ok(sha512_concat(&parts))
}

/// A field's length as the format's u16 prefix.
fn u16_len(bytes: &[u8], field: &'static str) -> Result<u16> {
    u16::try_from(bytes.len()).map_err(|_| {
        FormatError::Invalid {
            field,
            reason: "longer than 65535 bytes",
        }
        .into()
    })
}
