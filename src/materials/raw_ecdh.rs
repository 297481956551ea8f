//! The raw ECDH keyring. Spec: `framework/raw-ecdh-keyring.md`,
//! `framework/key-agreement-schemas.md`; bytes as the Material Providers
//! Library writes them (notes: hierarchy-and-keyrings.md).
//!
//! Per message: shared secret Z = x(ECDH(private, peer)); 32 random bytes
//! of salt; 64 bytes of SP 800-108 counter-mode HMAC-SHA384 keyed with Z
//! (label = the fixed info, context = the salt): a commitment key, then
//! the wrapping key; AES-256-GCM with a zero IV and the fixed info as AAD.
//!
//! - fixed info = `ecdh-key-derivation` 00 curve 00 `HMAC_SHA384` 00
//!   sender ‖ recipient (compressed points) 00 01 00 serialized context.
//! - EDK: provider id `raw-ecdh`; provider info = 01 ‖ u32 ‖ recipient ‖
//!   u32 ‖ sender; ciphertext = salt (32) ‖ commitment key (32) ‖
//!   encrypted data key ‖ tag (16).

use std::sync::OnceLock;

use async_trait::async_trait;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{DecryptionMaterials, EncryptionMaterials, Keyring};
use crate::crypto::{ecdh_keying_material, Backend, DataKey, EcdhPrivateKey, EcdhPublicKey, IV_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::format::{EncryptedDataKey, EncryptionContext};
use crate::suite::Curve;

/// The raw ECDH keyring's provider id.
pub const RAW_ECDH_PROVIDER_ID: &str = "raw-ecdh";
/// The AWS KMS ECDH keyring's provider id (its EDKs read like raw ones).
pub const KMS_ECDH_PROVIDER_ID: &str = "aws-kms-ecdh";
/// The keyring version in the provider info and the fixed info.
const KEYRING_VERSION: u8 = 0x01;
const SALT_LEN: usize = 32;
const COMMITMENT_LEN: usize = 32;

/// How a raw ECDH keyring agrees on keys.
enum Scheme {
    /// A static private key to a static public key, both ways.
    Static {
        sender: EcdhPrivateKey,
        recipient: EcdhPublicKey,
        /// The shared secret of the two static keys, the same for every
        /// message (the salt makes each message's keys its own): agreed
        /// once, wiped with the keyring.
        shared: OnceLock<Zeroizing<Vec<u8>>>,
    },
    /// A fresh private key per message to a static public key (encrypt only).
    Ephemeral { recipient: EcdhPublicKey },
    /// The recipient's private key, for any sender (decrypt only).
    Discovery { recipient: EcdhPrivateKey },
}

/// Wraps data keys under keys agreed by ECDH (P-256, P-384, P-521).
pub struct RawEcdhKeyring {
    curve: Curve,
    scheme: Scheme,
}

/// Public keys only: no private key and no shared secret.
impl std::fmt::Debug for RawEcdhKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("RawEcdhKeyring");
        d.field("curve", &self.curve);
        match &self.scheme {
            Scheme::Static {
                sender, recipient, ..
            } => d
                .field("scheme", &"static")
                .field("sender", sender.public_key())
                .field("recipient", recipient),
            Scheme::Ephemeral { recipient } => d.field("scheme", &"ephemeral").field("recipient", recipient),
            Scheme::Discovery { recipient } => d
                .field("scheme", &"discovery")
                .field("recipient", recipient.public_key()),
        };
        d.finish()
    }
}

/// The fixed info of the key derivation (also the wrap's AAD).
pub(crate) fn fixed_info(
    curve: Curve,
    sender: &[u8],
    recipient: &[u8],
    context: &EncryptionContext,
) -> Result<Vec<u8>> {
    let mut info = Vec::with_capacity(40 + sender.len() + recipient.len() + 64);
    info.extend_from_slice(b"ecdh-key-derivation\0");
    info.extend_from_slice(curve.name().as_bytes());
    info.extend_from_slice(b"\0HMAC_SHA384\0");
    info.extend_from_slice(sender);
    info.extend_from_slice(recipient);
    info.extend_from_slice(&[0x00, KEYRING_VERSION, 0x00]);
    context.serialize_into(&mut info)?;
    Ok(info)
}

/// The provider info: version ‖ u32 ‖ recipient ‖ u32 ‖ sender.
pub(crate) fn provider_info(recipient: &[u8], sender: &[u8]) -> Vec<u8> {
    let mut info = Vec::with_capacity(9 + recipient.len() + sender.len());
    info.push(KEYRING_VERSION);
    for key in [recipient, sender] {
        info.extend_from_slice(&(key.len() as u32).to_be_bytes());
        info.extend_from_slice(key);
    }
    info
}

/// The (recipient, sender) compressed keys of an ECDH EDK on `curve`;
/// `None` for another curve, another layout or another version.
pub(crate) fn parse_provider_info(curve: Curve, info: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = curve.compressed_point_len();
    if info.len() != 9 + 2 * n || info[0] != KEYRING_VERSION {
        return None;
    }
    let len_at = |i: usize| {
        info.get(i..i + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
    };
    if len_at(1)? as usize != n || len_at(5 + n)? as usize != n {
        return None;
    }
    Some((&info[5..5 + n], &info[9 + n..]))
}

/// Wraps `data_key` for the (sender, recipient) pair under `shared`:
/// salt ‖ commitment key ‖ encrypted key ‖ tag.
pub(crate) fn wrap(
    backend: Backend,
    materials: &mut EncryptionMaterials,
    curve: Curve,
    shared: &[u8],
    sender: &[u8],
    recipient: &[u8],
) -> Result<Vec<u8>> {
    let wrap_err = || Error::keyring(format!("ECDH {curve}"), "wrapping the data key failed");
    let info = fixed_info(curve, sender, recipient, materials.context())?;
    let mut salt = [0u8; SALT_LEN];
    materials.fill_random(&mut salt)?;
    let (commitment, wrapping) = ecdh_keying_material(shared, &info, &salt).map_err(|_| wrap_err())?;
    let aead = backend
        .provider()
        .aead(wrapping.as_slice())
        .map_err(|_| wrap_err())?;
    let data_key = materials.data_key().ok_or_else(wrap_err)?;
    let body = SALT_LEN + COMMITMENT_LEN;
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(body + data_key.len() + TAG_LEN));
    out.extend_from_slice(&salt);
    out.extend_from_slice(commitment.as_slice());
    out.extend_from_slice(data_key.expose_secret());
    let tag = aead
        .seal_in_place(&[0u8; IV_LEN], &info, &mut out[body..])
        .map_err(|_| wrap_err())?;
    out.extend_from_slice(&tag);
    Ok(std::mem::take(&mut *out))
}

/// Unwraps an ECDH EDK's ciphertext under `shared`, checking the
/// commitment key in constant time first; `None` when it does not open.
pub(crate) fn unwrap(
    materials: &DecryptionMaterials,
    curve: Curve,
    shared: &[u8],
    sender: &[u8],
    recipient: &[u8],
    ciphertext: &[u8],
) -> Result<Option<DataKey>> {
    let key_len = materials.suite().data_key_len();
    let body = SALT_LEN + COMMITMENT_LEN;
    if ciphertext.len() != body + key_len + TAG_LEN {
        return Ok(None);
    }
    let info = fixed_info(curve, sender, recipient, materials.context())?;
    let (salt, rest) = ciphertext.split_at(SALT_LEN);
    let (stored_commitment, sealed) = rest.split_at(COMMITMENT_LEN);
    let (commitment, wrapping) = ecdh_keying_material(shared, &info, salt).map_err(|_| Error::Decrypt)?;
    if !bool::from(commitment.as_slice().ct_eq(stored_commitment)) {
        return Ok(None);
    }
    let aead = materials
        .backend()
        .provider()
        .aead(wrapping.as_slice())
        .map_err(|_| Error::Decrypt)?;
    let mut buf = zeroize::Zeroizing::new(sealed.to_vec());
    match aead.open_in_place(&[0u8; IV_LEN], &info, &mut buf) {
        Ok(n) => {
            buf.truncate(n);
            Ok(Some(DataKey::new(buf)))
        }
        Err(_) => Ok(None),
    }
}

/// The static scheme's shared secret, agreed on first use.
fn static_secret<'a>(
    cell: &'a OnceLock<Zeroizing<Vec<u8>>>,
    backend: Backend,
    sender: &EcdhPrivateKey,
    recipient: &EcdhPublicKey,
) -> crate::crypto::CResult<&'a [u8]> {
    if let Some(z) = cell.get() {
        return Ok(z);
    }
    let z = sender.agree(backend, recipient)?;
    Ok(cell.get_or_init(|| z))
}

impl RawEcdhKeyring {
    /// Static keys: `sender` (this side's private key) to `recipient` (the
    /// other side's public key). Encrypts, and decrypts messages between
    /// the two keys in either direction.
    ///
    /// # Errors
    /// [`Error::Config`] when the keys are on different curves.
    pub fn static_keys(sender: EcdhPrivateKey, recipient: EcdhPublicKey) -> Result<Self> {
        if sender.curve() != recipient.curve() {
            return Err(Error::config(
                "raw ECDH keys",
                format!(
                    "the sender key is on {} and the recipient key on {}",
                    sender.curve(),
                    recipient.curve()
                ),
            ));
        }
        Ok(RawEcdhKeyring {
            curve: sender.curve(),
            scheme: Scheme::Static {
                sender,
                recipient,
                shared: OnceLock::new(),
            },
        })
    }

    /// A fresh key pair per message to `recipient` (encrypt only: its
    /// decrypt fails, as the spec requires): only the recipient's private
    /// key decrypts ([`Self::discovery`]).
    pub fn ephemeral(recipient: EcdhPublicKey) -> Self {
        RawEcdhKeyring {
            curve: recipient.curve(),
            scheme: Scheme::Ephemeral { recipient },
        }
    }

    /// Decrypts whatever was sent to `recipient`'s public key, by any
    /// sender (decrypt only; raw and AWS KMS ECDH messages alike).
    pub fn discovery(recipient: EcdhPrivateKey) -> Self {
        RawEcdhKeyring {
            curve: recipient.curve(),
            scheme: Scheme::Discovery { recipient },
        }
    }

    /// The curve.
    pub fn curve(&self) -> Curve {
        self.curve
    }

    fn name(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Static { .. } => "static",
            Scheme::Ephemeral { .. } => "ephemeral",
            Scheme::Discovery { .. } => "discovery",
        };
        format!("raw ECDH {} {scheme}", self.curve)
    }
}

#[async_trait]
impl Keyring for RawEcdhKeyring {
    async fn on_encrypt(&self, materials: &mut EncryptionMaterials) -> Result<()> {
        let backend = materials.backend();
        let agree_err = || Error::keyring(self.name(), "the key agreement failed");
        let ephemeral;
        let (shared, sender, recipient) = match &self.scheme {
            Scheme::Static {
                sender,
                recipient,
                shared,
            } => {
                let z = static_secret(shared, backend, sender, recipient).map_err(|_| agree_err())?;
                (Zeroizing::new(z.to_vec()), sender.public_key(), recipient)
            }
            Scheme::Ephemeral { recipient } => {
                let (z, public) =
                    EcdhPrivateKey::agree_ephemeral(backend, recipient).map_err(|_| agree_err())?;
                ephemeral = public;
                (z, &ephemeral, recipient)
            }
            Scheme::Discovery { .. } => {
                return Err(Error::keyring(
                    self.name(),
                    "a discovery keyring only decrypts; encrypt with the static or ephemeral scheme",
                ))
            }
        };
        if materials.data_key().is_none() {
            materials.generate_data_key()?;
        }
        let (sender, recipient) = (sender.compressed(), recipient.compressed());
        let ciphertext = wrap(backend, materials, self.curve, &shared, sender, recipient)?;
        materials.add_encrypted_data_key(EncryptedDataKey {
            provider_id: RAW_ECDH_PROVIDER_ID.to_owned(),
            provider_info: provider_info(recipient, sender),
            ciphertext,
        });
        Ok(())
    }

    async fn on_decrypt(
        &self,
        materials: &DecryptionMaterials,
        edks: &[EncryptedDataKey],
    ) -> Result<Option<DataKey>> {
        // Spec (raw-ecdh-keyring.md, OnDecrypt): the ephemeral scheme MUST
        // fail; each matching EDK is tried and its failure collected.
        if let Scheme::Ephemeral { .. } = self.scheme {
            return Err(Error::keyring(
                self.name(),
                "the ephemeral scheme only encrypts; decrypt with the recipient's private key \
                 (the discovery scheme)",
            ));
        }
        let backend = materials.backend();
        let mut failures = Vec::new();
        for edk in edks {
            if edk.provider_id != RAW_ECDH_PROVIDER_ID && edk.provider_id != KMS_ECDH_PROVIDER_ID {
                continue;
            }
            let Some((recipient, sender)) = parse_provider_info(self.curve, &edk.provider_info) else {
                continue;
            };
            let shared = match &self.scheme {
                Scheme::Discovery { recipient: own } => {
                    if own.public_key().compressed() != recipient {
                        continue;
                    }
                    EcdhPublicKey::from_bytes(self.curve, sender)
                        .map_err(|_| crate::crypto::CryptoError)
                        .and_then(|peer| own.agree(backend, &peer))
                }
                Scheme::Static {
                    sender: own,
                    recipient: peer,
                    shared,
                } => {
                    let (mine, theirs) = (own.public_key().compressed(), peer.compressed());
                    let ours =
                        (sender == mine && recipient == theirs) || (sender == theirs && recipient == mine);
                    if !ours {
                        continue;
                    }
                    static_secret(shared, backend, own, peer).map(|z| Zeroizing::new(z.to_vec()))
                }
                Scheme::Ephemeral { .. } => return Err(Error::Internal("ephemeral ECDH decrypt")),
            };
            // A sender key that is no point of the curve comes from the
            // message's bytes: a failed check like any other, as opaque.
            let Ok(shared) = shared else {
                failures.push(Error::Decrypt);
                continue;
            };
            match unwrap(materials, self.curve, &shared, sender, recipient, &edk.ciphertext)? {
                Some(key) => return Ok(Some(key)),
                None => failures.push(Error::Decrypt),
            }
        }
        match Error::collected(failures) {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_info_round_trips_and_refuses_other_layouts() {
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            let n = curve.compressed_point_len();
            let (r, s) = (vec![2u8; n], vec![3u8; n]);
            let info = provider_info(&r, &s);
            let want = match curve {
                Curve::P256 => 75,
                Curve::P384 => 107,
                _ => 143,
            };
            assert_eq!(info.len(), want, "{curve}");
            assert_eq!(parse_provider_info(curve, &info), Some((&r[..], &s[..])));
            let mut bad = info.clone();
            bad[0] = 2;
            assert_eq!(parse_provider_info(curve, &bad), None, "version");
            let mut bad = info.clone();
            bad[4] ^= 1;
            assert_eq!(parse_provider_info(curve, &bad), None, "length field");
            assert_eq!(
                parse_provider_info(curve, &info[..info.len() - 1]),
                None,
                "truncated"
            );
            let other = if curve == Curve::P256 {
                Curve::P384
            } else {
                Curve::P256
            };
            assert_eq!(parse_provider_info(other, &info), None, "another curve");
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let pem = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/ecdh-p256-a-private.pem"
        ))
        .unwrap();
        let der = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/ecdh-p256-b-public.der"
        ))
        .unwrap();
        let private = EcdhPrivateKey::from_pkcs8(Curve::P256, &pem).unwrap();
        let public = EcdhPublicKey::from_bytes(Curve::P256, &der).unwrap();
        let keyring = RawEcdhKeyring::static_keys(private, public).unwrap();
        let Scheme::Static {
            sender,
            recipient,
            shared,
        } = &keyring.scheme
        else {
            unreachable!()
        };
        let z = static_secret(shared, Backend::default(), sender, recipient)
            .unwrap()
            .to_vec();
        let hex: String = z.iter().map(|b| format!("{b:02x}")).collect();
        let shown = format!("{keyring:?}");
        assert!(
            shown.contains("static") && !shown.contains(&hex) && !shown.contains(&format!("{:?}", &z[..4])),
            "{shown}"
        );
    }

    #[test]
    fn fixed_info_layout() {
        let ctx = EncryptionContext::from([("a", "b")]);
        let info = fixed_info(Curve::P384, b"S", b"R", &ctx).unwrap();
        let mut want = b"ecdh-key-derivation\0p384\0HMAC_SHA384\0SR\0\x01\0".to_vec();
        want.extend_from_slice(&ctx.serialize().unwrap());
        assert_eq!(info, want);
    }
}
