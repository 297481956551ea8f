//! Raw AES keyring. Spec: `framework/raw-aes-keyring.md`.
//!
//! EDK: provider id = namespace; provider info = key name || tag length in
//! bits (u32, 128) || IV length (u32, 12) || IV; ciphertext = GCM(data key)
//! || tag, with the serialized full encryption context as AAD.

use std::sync::OnceLock;

use async_trait::async_trait;

use super::{DecryptionMaterials, EncryptionMaterials, Keyring};
use crate::crypto::{Aead, Backend, CResult, CryptoError, DataKey, WrappingKey, IV_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::format::EncryptedDataKey;

const TAG_BITS: u32 = (TAG_LEN * 8) as u32;

/// Wraps data keys with a local AES-GCM key (128, 192 or 256 bits).
pub struct RawAesKeyring {
    namespace: String,
    name: String,
    key: WrappingKey,
    /// The wrapping key ready for AES-GCM (key schedule; on aws-lc also the
    /// GHASH table) on the first backend it is used with, built once instead
    /// of per message (about 0.15 µs). Wiped on drop like the key.
    aead: OnceLock<(Backend, Box<dyn Aead>)>,
}

impl std::fmt::Debug for RawAesKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawAesKeyring")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("key", &self.key)
            .finish()
    }
}

impl RawAesKeyring {
    /// A keyring for `namespace` (the provider id) and key `name`.
    ///
    /// # Errors
    /// [`Error::Config`] if the namespace starts with `aws-kms` or the name
    /// does not fit the provider-info field.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>, key: WrappingKey) -> Result<Self> {
        let namespace = namespace.into();
        let name = name.into();
        super::check_raw_names(&namespace, &name, 8 + IV_LEN)?;
        Ok(RawAesKeyring {
            namespace,
            name,
            key,
            aead: OnceLock::new(),
        })
    }

    /// Runs `f` with the wrapping key's AES-GCM state for `backend`.
    fn with_aead<T>(&self, backend: Backend, f: impl FnOnce(&dyn Aead) -> T) -> CResult<T> {
        if let Some((b, aead)) = self.aead.get() {
            if *b == backend {
                return Ok(f(aead.as_ref()));
            }
        }
        let fresh = backend.provider().aead(self.key.expose_secret())?;
        match self.aead.set((backend, fresh)) {
            Ok(()) => match self.aead.get() {
                Some((_, aead)) => Ok(f(aead.as_ref())),
                None => Err(CryptoError),
            },
            // Cached for another backend (or by a racing call): use this one once.
            Err((_, fresh)) => Ok(f(fresh.as_ref())),
        }
    }

    fn provider_info(&self, iv: &[u8; IV_LEN]) -> Vec<u8> {
        let mut info = Vec::with_capacity(self.name.len() + 8 + IV_LEN);
        info.extend_from_slice(self.name.as_bytes());
        info.extend_from_slice(&TAG_BITS.to_be_bytes());
        info.extend_from_slice(&(IV_LEN as u32).to_be_bytes());
        info.extend_from_slice(iv);
        info
    }

    /// The IV from an EDK's provider info, if the EDK is for this keyring.
    fn match_edk(&self, edk: &EncryptedDataKey) -> Option<[u8; IV_LEN]> {
        if edk.provider_id != self.namespace {
            return None;
        }
        let info = edk.provider_info.as_slice();
        let name = self.name.as_bytes();
        if info.len() != name.len() + 8 + IV_LEN || !info.starts_with(name) {
            return None;
        }
        let rest = &info[name.len()..];
        if rest[..4] != TAG_BITS.to_be_bytes() || rest[4..8] != (IV_LEN as u32).to_be_bytes() {
            return None;
        }
        rest[8..].try_into().ok()
    }
}

#[async_trait]
impl Keyring for RawAesKeyring {
    async fn on_encrypt(&self, materials: &mut EncryptionMaterials) -> Result<()> {
        if materials.data_key().is_none() {
            materials.generate_data_key()?;
        }
        let backend = materials.backend();
        let aad = materials.context().serialize()?;
        let mut iv = [0u8; IV_LEN];
        materials.fill_random(&mut iv)?;
        let wrap_err = || {
            Error::keyring(
                format!("raw AES {}/{}", self.namespace, self.name),
                "wrapping the data key failed",
            )
        };
        let data_key = materials.data_key().ok_or_else(wrap_err)?;
        // The buffer holds the plaintext data key until sealed: keep it zeroizing.
        let mut staged = zeroize::Zeroizing::new(Vec::with_capacity(data_key.len() + TAG_LEN));
        staged.extend_from_slice(data_key.expose_secret());
        let tag = self
            .with_aead(backend, |aead| aead.seal_in_place(&iv, &aad, &mut staged))
            .and_then(|sealed| sealed)
            .map_err(|_| wrap_err())?;
        staged.extend_from_slice(&tag);
        let ciphertext = std::mem::take(&mut *staged);
        let edk = EncryptedDataKey {
            provider_id: self.namespace.clone(),
            provider_info: self.provider_info(&iv),
            ciphertext,
        };
        materials.add_encrypted_data_key(edk);
        Ok(())
    }

    async fn on_decrypt(
        &self,
        materials: &DecryptionMaterials,
        edks: &[EncryptedDataKey],
    ) -> Result<Option<DataKey>> {
        let want_len = materials.suite().data_key_len();
        let mut matched = false;
        let mut aad = None;
        for edk in edks {
            let Some(iv) = self.match_edk(edk) else {
                continue;
            };
            matched = true;
            if edk.ciphertext.len() != want_len + TAG_LEN {
                continue;
            }
            let aad = match &aad {
                Some(a) => a,
                None => aad.insert(materials.context().serialize()?),
            };
            let mut buf = zeroize::Zeroizing::new(edk.ciphertext.clone());
            // A failed unwrap moves on to the next EDK: a message may carry
            // several EDKs under the same name.
            let opened = self
                .with_aead(materials.backend(), |aead| aead.open_in_place(&iv, aad, &mut buf))
                .map_err(|_| Error::Decrypt)?;
            if let Ok(n) = opened {
                buf.truncate(n);
                return Ok(Some(DataKey::new(buf)));
            }
        }
        // An EDK for this key that does not unwrap (wrong key bytes, tampered
        // EDK or a different encryption context) reads like every other failed
        // cryptographic check.
        if matched {
            Err(Error::Decrypt)
        } else {
            Ok(None)
        }
    }
}
