//! Telling a message's data key from a wrong one: the key commitment, then
//! the header tag.
//!
//! Spec: `client-apis/decrypt.md` ("Verify the header"; key commitment for
//! committing suites). The engine opens every message through
//! [`KeyCheck::open`]; a keyring whose unwrap cannot tell a wrong key by
//! itself (raw RSA with PKCS#1 v1.5 under implicit rejection) asks
//! [`KeyCheck::matches`] before it answers, so a wrong key lets the next
//! encrypted data key and keyring try.

use subtle::ConstantTimeEq;

use super::{derive_keys, Backend, CResult, CryptoError, DerivedKeys, IV_LEN, TAG_LEN};
use crate::suite::AlgorithmSuite;

/// What one message's header binds a data key to.
pub(crate) struct KeyCheck {
    pub(crate) backend: Backend,
    pub(crate) suite: AlgorithmSuite,
    pub(crate) message_id: Vec<u8>,
    /// The header's key commitment (committing suites).
    pub(crate) commitment: Option<[u8; 32]>,
    /// The header body, then the serialized pairs the caller reproduced
    /// that the header does not store: the header tag's AAD.
    pub(crate) aad: Vec<u8>,
    pub(crate) iv: [u8; IV_LEN],
    pub(crate) tag: [u8; TAG_LEN],
}

/// Proof that a data key matched the header's commitment and tag. Only
/// [`KeyCheck::open`] makes one.
pub(crate) struct HeaderAuthenticated(());

impl KeyCheck {
    /// Derives the message keys from `data_key` and verifies the key
    /// commitment (constant time) and then the header tag.
    pub(crate) fn open(&self, data_key: &[u8]) -> CResult<(DerivedKeys, HeaderAuthenticated)> {
        let keys = derive_keys(self.backend, self.suite, data_key, &self.message_id)?;
        match (&keys.commitment, &self.commitment) {
            (None, None) => {}
            (Some(expected), Some(found)) if bool::from(expected[..].ct_eq(&found[..])) => {}
            _ => return Err(CryptoError),
        }
        let mut tag = self.tag;
        keys.aead.open_in_place(&self.iv, &self.aad, &mut tag)?;
        Ok((keys, HeaderAuthenticated(())))
    }

    /// Whether `data_key` is this message's data key. The same work whether
    /// the key is wrong or random.
    pub(crate) fn matches(&self, data_key: &[u8]) -> bool {
        self.open(data_key).is_ok()
    }
}
