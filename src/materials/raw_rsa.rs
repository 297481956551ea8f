//! Raw RSA keyring. Spec: `framework/raw-rsa-keyring.md`.
//!
//! EDK: provider id = namespace, provider info = key name, ciphertext = RSA
//! encryption of the data key. RSA binds no encryption context. Encrypt
//! needs the public key (never derived from a private key); decrypt needs
//! the private key.

use std::sync::Arc;

use async_trait::async_trait;
use subtle::{Choice, ConditionallySelectable};
use zeroize::Zeroizing;

use super::{DecryptionMaterials, EncryptionMaterials, Keyring};
use crate::crypto::{Backend, DataKey, RsaPadding, RsaPrivate, RsaPublic};
use crate::error::{Error, Result};
use crate::format::EncryptedDataKey;

fn decode_pem(pem: &str, want_label: &str) -> Result<Zeroizing<Vec<u8>>> {
    let (label, der) = pem_rfc7468::decode_vec(pem.trim().as_bytes())
        .map_err(|e| Error::config("RSA key", format!("not a PEM document: {e}")))?;
    let der = Zeroizing::new(der);
    if label != want_label {
        return Err(Error::config(
            "RSA key",
            format!("expected a PEM \"{want_label}\" block, found \"{label}\""),
        ));
    }
    Ok(der)
}

/// An RSA public key (encrypt side), parsed for one backend.
#[derive(Clone)]
pub struct RsaPublicKey(Arc<dyn RsaPublic>);

impl RsaPublicKey {
    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) with the default backend.
    ///
    /// # Errors
    /// [`Error::Config`] if the PEM or key is invalid.
    pub fn from_pem(pem: &str) -> Result<Self> {
        Self::from_pem_with(Backend::default(), pem)
    }

    /// As [`RsaPublicKey::from_pem`] with a chosen backend.
    ///
    /// # Errors
    /// As [`RsaPublicKey::from_pem`].
    pub fn from_pem_with(backend: Backend, pem: &str) -> Result<Self> {
        let der = decode_pem(pem, "PUBLIC KEY")?;
        let key = backend
            .provider()
            .rsa_public_from_der(&der)
            .map_err(|_| Error::config("RSA public key", "not a valid RSA public key"))?;
        Ok(RsaPublicKey(Arc::from(key)))
    }
}

impl RsaPublicKey {
    /// RSA encryption with `padding` (the KMS RSA keyring encrypts locally).
    #[cfg_attr(not(feature = "kms"), allow(dead_code))]
    pub(crate) fn encrypt(&self, padding: crate::RsaPadding, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.0
            .encrypt(padding, plaintext)
            .map_err(|_| Error::Backend("RSA encryption"))
    }
}

impl std::fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RsaPublicKey")
    }
}

/// An RSA private key (decrypt side), parsed for one backend.
#[derive(Clone)]
pub struct RsaPrivateKey(Arc<dyn RsaPrivate>);

impl RsaPrivateKey {
    /// Parses a PEM `PRIVATE KEY` (PKCS#8) with the default backend.
    ///
    /// # Errors
    /// [`Error::Config`] if the PEM or key is invalid.
    pub fn from_pem(pem: &str) -> Result<Self> {
        Self::from_pem_with(Backend::default(), pem)
    }

    /// As [`RsaPrivateKey::from_pem`] with a chosen backend.
    ///
    /// # Errors
    /// As [`RsaPrivateKey::from_pem`].
    pub fn from_pem_with(backend: Backend, pem: &str) -> Result<Self> {
        let der = decode_pem(pem, "PRIVATE KEY")?;
        let key = backend
            .provider()
            .rsa_private_from_der(&der)
            .map_err(|_| Error::config("RSA private key", "not a valid RSA private key"))?;
        Ok(RsaPrivateKey(Arc::from(key)))
    }
}

impl std::fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaPrivateKey").finish_non_exhaustive()
    }
}

/// Wraps data keys with RSA (PKCS#1 v1.5 or OAEP).
#[derive(Debug, Clone)]
pub struct RawRsaKeyring {
    namespace: String,
    name: String,
    padding: RsaPadding,
    public: Option<RsaPublicKey>,
    private: Option<RsaPrivateKey>,
}

impl RawRsaKeyring {
    /// A keyring with a public key (for encrypt), a private key (for
    /// decrypt), or both.
    ///
    /// # Errors
    /// [`Error::Config`] if neither key is given, or the namespace starts
    /// with `aws-kms`, or a name is too long; in the FIPS build (feature
    /// `fips`), [`Error::Fips`] for PKCS#1 v1.5 padding.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        padding: RsaPadding,
        public: Option<RsaPublicKey>,
        private: Option<RsaPrivateKey>,
    ) -> Result<Self> {
        let namespace = namespace.into();
        let name = name.into();
        super::check_raw_names(&namespace, &name, 0)?;
        if public.is_none() && private.is_none() {
            return Err(Error::config(
                "RSA keys",
                "a raw RSA keyring needs a public or a private key",
            ));
        }
        if cfg!(feature = "fips") && padding == RsaPadding::Pkcs1 {
            return Err(Error::Fips(
                "RSA PKCS#1 v1.5 key wrapping is not a FIPS-approved key transport; use OAEP".into(),
            ));
        }
        Ok(RawRsaKeyring {
            namespace,
            name,
            padding,
            public,
            private,
        })
    }

    fn label(&self) -> String {
        format!("raw RSA {}/{}", self.namespace, self.name)
    }
}

#[async_trait]
impl Keyring for RawRsaKeyring {
    async fn on_encrypt(&self, materials: &mut EncryptionMaterials) -> Result<()> {
        let public = self
            .public
            .as_ref()
            .ok_or_else(|| Error::keyring(self.label(), "encrypting needs an RSA public key"))?;
        if materials.data_key().is_none() {
            materials.generate_data_key()?;
        }
        let key = materials
            .data_key()
            .ok_or_else(|| Error::Internal("no data key after generation"))?;
        let ciphertext = public
            .0
            .encrypt(self.padding, key.expose_secret())
            .map_err(|_| Error::keyring(self.label(), "RSA encryption of the data key failed"))?;
        materials.add_encrypted_data_key(EncryptedDataKey {
            provider_id: self.namespace.clone(),
            provider_info: self.name.as_bytes().to_vec(),
            ciphertext,
        });
        Ok(())
    }

    async fn on_decrypt(
        &self,
        materials: &DecryptionMaterials,
        edks: &[EncryptedDataKey],
    ) -> Result<Option<DataKey>> {
        // Spec: OnDecrypt fails when the keyring has no private key.
        let private = self
            .private
            .as_ref()
            .ok_or_else(|| Error::keyring(self.label(), "decrypting needs an RSA private key"))?;
        let want_len = materials.suite().data_key_len();
        let mine = edks
            .iter()
            .filter(|e| e.provider_id == self.namespace && e.provider_info == self.name.as_bytes());
        let mut failed = false;
        for edk in mine {
            let candidate = if self.padding == RsaPadding::Pkcs1 {
                // Implicit rejection (RFC 3218 section 2.3.2): a PKCS#1 v1.5
                // padding failure must not be told apart from a wrong key,
                // or the keyring is a Bleichenbacher oracle. A random key is
                // drawn for every EDK before decrypting and kept, chosen in
                // constant time, when the unwrap fails: it then fails the
                // check below with the same work as a wrong key that passed
                // the padding check.
                let mut candidate = Zeroizing::new(vec![0u8; want_len]);
                materials.backend().fill_random(&mut candidate)?;
                let unwrapped = private.0.decrypt(self.padding, &edk.ciphertext);
                let unwrapped: &[u8] = unwrapped.as_deref().map_or(&[], |k| &k[..]);
                let good = Choice::from(u8::from(unwrapped.len() == want_len));
                for (i, byte) in candidate.iter_mut().enumerate() {
                    byte.conditional_assign(&unwrapped.get(i).copied().unwrap_or(0), good);
                }
                candidate
            } else {
                match private.0.decrypt(self.padding, &edk.ciphertext) {
                    Ok(key) if key.len() == want_len => key,
                    _ => {
                        failed = true;
                        continue;
                    }
                }
            };
            // RSA decryption does not prove the key is the message's (a
            // wrong private key can pass PKCS#1 padding): a key that does
            // not open the header is a failure of this EDK, so the next EDK
            // and the next keyring still get their turn.
            if materials.is_data_key(&candidate) {
                return Ok(Some(DataKey::new(candidate)));
            }
            failed = true;
        }
        if failed {
            Err(Error::Decrypt)
        } else {
            Ok(None)
        }
    }
}
