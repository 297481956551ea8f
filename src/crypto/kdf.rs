//! Key derivation: data key -> content-encryption key (+ commitment key).
//!
//! Spec: `framework/algorithm-suites.md` (key derivation settings) and
//! `framework/transitive-requirements.md`; digest in notes section 7.

use zeroize::Zeroizing;

use super::{Aead, Backend, CResult, CryptoError, Expand, HashAlg};
use crate::suite::{AlgorithmSuite, Kdf};

/// `DERIVEKEY` label for the committing suites' encryption key.
const DERIVE_KEY_LABEL: &[u8] = b"DERIVEKEY";
/// `COMMITKEY` label for the commitment key (no suite id).
const COMMIT_KEY_LABEL: &[u8] = b"COMMITKEY";

/// The keys one message uses.
pub(crate) struct DerivedKeys {
    /// Content-encryption key, ready for AES-GCM.
    pub aead: Box<dyn Aead>,
    /// The commitment value for committing suites (the v2 suite data).
    pub commitment: Option<Zeroizing<[u8; 32]>>,
}

/// Derives the content key (and commitment) for `suite` from the data key.
///
/// Non-committing HKDF: PRK = Extract(zero salt, pdk); key = Expand(PRK,
/// suite_id || message_id). Committing: PRK = Extract(message_id, pdk);
/// key = Expand(PRK, suite_id || "DERIVEKEY"); commit = Expand(PRK, "COMMITKEY").
pub(crate) fn derive_keys(
    backend: Backend,
    suite: AlgorithmSuite,
    data_key: &[u8],
    message_id: &[u8],
) -> CResult<DerivedKeys> {
    if data_key.len() != suite.data_key_len() || message_id.len() != suite.message_id_len() {
        return Err(CryptoError);
    }
    let p = backend.provider();
    let suite_id = suite.id().to_be_bytes();
    let key_len = suite.encryption_key_len();
    match suite.kdf() {
        Kdf::Identity => Ok(DerivedKeys {
            aead: p.aead(data_key)?,
            commitment: None,
        }),
        Kdf::HkdfSha256 | Kdf::HkdfSha384 => {
            let hash = if suite.kdf() == Kdf::HkdfSha256 {
                HashAlg::Sha256
            } else {
                HashAlg::Sha384
            };
            let mut key = Zeroizing::new([0u8; 32]);
            p.hkdf(
                hash,
                &[],
                data_key,
                &mut [Expand {
                    info: &[&suite_id, message_id],
                    out: &mut key[..key_len],
                }],
            )?;
            Ok(DerivedKeys {
                aead: p.aead(&key[..key_len])?,
                commitment: None,
            })
        }
        Kdf::HkdfSha512Commit => {
            let mut key = Zeroizing::new([0u8; 32]);
            let mut commit = Zeroizing::new([0u8; 32]);
            p.hkdf(
                HashAlg::Sha512,
                message_id,
                data_key,
                &mut [
                    Expand {
                        info: &[&suite_id, DERIVE_KEY_LABEL],
                        out: &mut key[..],
                    },
                    Expand {
                        info: &[COMMIT_KEY_LABEL],
                        out: &mut commit[..],
                    },
                ],
            )?;
            Ok(DerivedKeys {
                aead: p.aead(&key[..])?,
                commitment: Some(commit),
            })
        }
    }
}
