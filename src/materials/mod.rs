//! Keyrings and the materials they work on.
//!
//! A [`Keyring`] wraps the data key on encrypt (adding encrypted data keys)
//! and unwraps it on decrypt. Unwrapping has three outcomes, as in age's
//! `Identity::unwrap_stanza`: no encrypted data key is for this keyring
//! (`Ok(None)`), one is but it failed (`Err`), or the data key (`Ok(Some)`).

use async_trait::async_trait;

use std::sync::Arc;

use crate::crypto::{Backend, DataKey, KeyCheck, RandomPool};
use crate::error::{Error, Result};
use crate::format::{EncryptedDataKey, EncryptionContext};
use crate::suite::AlgorithmSuite;

#[cfg(feature = "kms")]
mod aws_kms;
#[cfg(feature = "kms")]
mod aws_kms_ecdh;
#[cfg(feature = "kms")]
mod aws_kms_rsa;
mod caching;
mod cmm;
#[cfg(feature = "hierarchy")]
mod hierarchy;
mod multi;
mod raw_aes;
mod raw_ecdh;
mod raw_rsa;

pub use crate::cache::CACHE_SWEEP_INTERVAL;
#[cfg(feature = "kms")]
pub use aws_kms::{DiscoveryFilter, KmsDiscoveryKeyring, KmsKeyring};
#[cfg(feature = "kms")]
pub use aws_kms::{KmsDiscoveryKeyringBuilder, KmsKeyringBuilder};
#[cfg(feature = "kms")]
pub use aws_kms_ecdh::{KmsEcdhKeyring, KmsEcdhKeyringBuilder};
#[cfg(feature = "kms")]
pub use aws_kms_rsa::{KmsRsaKeyring, KmsRsaKeyringBuilder, KMS_RSA_PROVIDER_ID};
pub(crate) use caching::CachingCmm;
pub use caching::{
    CacheLimits, CacheLimitsBuilder, MaterialsCache, MaterialsCacheBuilder, MAX_BYTES_LIMIT,
    MAX_MESSAGES_LIMIT,
};
pub(crate) use cmm::{decryption_materials, encryption_materials, EncryptMaterialsOut, EncryptRequest};
#[cfg(feature = "hierarchy")]
pub use hierarchy::{
    BranchKeyCache, BranchKeyCacheBuilder, BranchKeyIdSupplier, HierarchyKeyring, HierarchyKeyringBuilder,
    DEFAULT_BRANCH_KEY_CACHE_CAPACITY, HIERARCHY_PROVIDER_ID,
};
pub use raw_ecdh::{RawEcdhKeyring, KMS_ECDH_PROVIDER_ID, RAW_ECDH_PROVIDER_ID};

/// Where a message's data key comes from: a keyring every time, or a
/// caching manager in front of one.
#[derive(Clone, Copy)]
pub(crate) enum Source<'a> {
    Keyring(&'a dyn Keyring),
    Cached(&'a CachingCmm),
}

impl Source<'_> {
    /// Encryption materials for a message of `plaintext_len` bytes.
    /// `random`: bytes drawn ahead for a keyring's data key and IVs (unused
    /// when the materials come from a cache).
    pub(crate) async fn encryption_materials(
        self,
        request: EncryptRequest<'_>,
        plaintext_len: Option<u64>,
        random: Option<RandomPool>,
    ) -> Result<std::sync::Arc<EncryptMaterialsOut>> {
        match self {
            Source::Keyring(k) => Ok(std::sync::Arc::new(
                encryption_materials(k, request, random).await?,
            )),
            Source::Cached(c) => c.encryption_materials(request, plaintext_len).await,
        }
    }

    /// The data key for a message's encrypted data keys.
    pub(crate) async fn on_decrypt(
        self,
        materials: &DecryptionMaterials,
        edks: &[EncryptedDataKey],
    ) -> Result<Option<DataKey>> {
        match self {
            Source::Keyring(k) => k.on_decrypt(materials, edks).await,
            Source::Cached(c) => c.decrypt_data_key(materials, edks).await,
        }
    }
}
pub use multi::MultiKeyring;
pub use raw_aes::RawAesKeyring;
pub use raw_rsa::{RawRsaKeyring, RsaPrivateKey, RsaPublicKey};

/// Checks a raw keyring's namespace and key name: the namespace must not
/// claim the `aws-kms` provider ids, and both must fit their u16 length
/// fields (`name_overhead`: bytes the provider info adds after the name).
pub(crate) fn check_raw_names(namespace: &str, name: &str, name_overhead: usize) -> Result<()> {
    if namespace.starts_with("aws-kms") {
        return Err(Error::config(
            "keyring namespace",
            "a raw keyring namespace must not start with \"aws-kms\"",
        ));
    }
    if namespace.len() > usize::from(u16::MAX) || name.len() + name_overhead > usize::from(u16::MAX) {
        return Err(Error::config(
            "keyring name",
            "namespace or name longer than 65535 bytes",
        ));
    }
    Ok(())
}

/// What a keyring sees and fills in on encrypt.
#[derive(Debug)]
pub struct EncryptionMaterials {
    suite: AlgorithmSuite,
    context: EncryptionContext,
    data_key: Option<DataKey>,
    edks: Vec<EncryptedDataKey>,
    backend: Backend,
    /// Random bytes drawn with the message id, for the data key and IVs.
    random: Option<RandomPool>,
}

impl EncryptionMaterials {
    /// `random`: bytes drawn ahead for this message (see [`RandomPool`]).
    pub(crate) fn new(
        suite: AlgorithmSuite,
        context: EncryptionContext,
        backend: Backend,
        random: Option<RandomPool>,
    ) -> Self {
        EncryptionMaterials {
            suite,
            context,
            data_key: None,
            edks: Vec::new(),
            backend,
            random,
        }
    }

    /// The algorithm suite of the message being written.
    pub fn suite(&self) -> AlgorithmSuite {
        self.suite
    }

    /// The full encryption context (including `aws-crypto-public-key` for
    /// signed suites). Keyrings that bind the context (raw AES, KMS) bind this.
    pub fn context(&self) -> &EncryptionContext {
        &self.context
    }

    /// The data key, once a generator has set it.
    pub fn data_key(&self) -> Option<&DataKey> {
        self.data_key.as_ref()
    }

    /// The encrypted data keys added so far.
    pub fn encrypted_data_keys(&self) -> &[EncryptedDataKey] {
        &self.edks
    }

    /// The crypto backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Sets the data key (a generator does this once).
    ///
    /// # Errors
    /// [`Error::Misuse`] if a data key is already set or the length is not
    /// the suite's data key length.
    pub fn set_data_key(&mut self, key: DataKey) -> Result<()> {
        if self.data_key.is_some() {
            return Err(Error::Misuse("the data key was already generated".into()));
        }
        if key.len() != self.suite.data_key_len() {
            return Err(Error::Misuse(format!(
                "data key of {} bytes, suite {} needs {}",
                key.len(),
                self.suite,
                self.suite.data_key_len()
            )));
        }
        self.data_key = Some(key);
        Ok(())
    }

    /// Generates a random data key of the suite's length and sets it.
    ///
    /// # Errors
    /// As [`EncryptionMaterials::set_data_key`], or if the random source fails.
    pub fn generate_data_key(&mut self) -> Result<&DataKey> {
        let mut key = zeroize::Zeroizing::new(vec![0u8; self.suite.data_key_len()]);
        self.fill_random(&mut key)?;
        self.set_data_key(DataKey::new(key))?;
        self.data_key
            .as_ref()
            .ok_or_else(|| Error::Internal("data key missing after generation"))
    }

    /// Fills `buf` with random bytes from the backend's CSPRNG, for a
    /// keyring's IVs or nonces (taken from bytes drawn ahead with the
    /// message id when there are any left).
    ///
    /// # Errors
    /// [`Error::Backend`] if the random source fails.
    pub fn fill_random(&mut self, buf: &mut [u8]) -> Result<()> {
        match self.random.as_mut() {
            Some(pool) => pool.fill(buf),
            None => self.backend.fill_random(buf),
        }
    }

    /// Adds an encrypted data key.
    pub fn add_encrypted_data_key(&mut self, edk: EncryptedDataKey) {
        self.edks.push(edk);
    }

    pub(crate) fn into_parts(self) -> (Option<DataKey>, Vec<EncryptedDataKey>, EncryptionContext) {
        (self.data_key, self.edks, self.context)
    }
}

/// What a keyring sees on decrypt.
#[derive(Clone)]
pub struct DecryptionMaterials {
    suite: AlgorithmSuite,
    context: EncryptionContext,
    backend: Backend,
    check: Arc<KeyCheck>,
}

impl std::fmt::Debug for DecryptionMaterials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptionMaterials")
            .field("suite", &self.suite)
            .field("context", &self.context)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl DecryptionMaterials {
    pub(crate) fn new(
        suite: AlgorithmSuite,
        context: EncryptionContext,
        backend: Backend,
        check: Arc<KeyCheck>,
    ) -> Self {
        DecryptionMaterials {
            suite,
            context,
            backend,
            check,
        }
    }

    /// Whether `key` is the message's data key (it opens the header: key
    /// commitment and header tag). For keyrings whose unwrap cannot tell a
    /// wrong key by itself; the same work for any wrong key.
    pub(crate) fn is_data_key(&self, key: &[u8]) -> bool {
        self.check.matches(key)
    }

    pub(crate) fn key_check(&self) -> &Arc<KeyCheck> {
        &self.check
    }

    /// The message's algorithm suite.
    pub fn suite(&self) -> AlgorithmSuite {
        self.suite
    }

    /// The full encryption context: stored pairs plus the caller's
    /// reproduced pairs that the header does not store.
    pub fn context(&self) -> &EncryptionContext {
        &self.context
    }

    /// The crypto backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// Wraps and unwraps data keys. Implementations are `Send + Sync` and
/// async, because remote keyrings (KMS) are.
#[async_trait]
pub trait Keyring: Send + Sync {
    /// On encrypt: if the materials have no data key and this keyring can
    /// generate one, generate it; then add this keyring's encrypted data
    /// key(s).
    ///
    /// # Errors
    /// Any failure to generate or wrap; the whole encrypt fails.
    async fn on_encrypt(&self, materials: &mut EncryptionMaterials) -> Result<()>;

    /// On decrypt: try the encrypted data keys that belong to this keyring,
    /// in order. `Ok(None)`: none of them is for this keyring.
    ///
    /// # Errors
    /// At least one was for this keyring but none could be unwrapped.
    async fn on_decrypt(
        &self,
        materials: &DecryptionMaterials,
        edks: &[EncryptedDataKey],
    ) -> Result<Option<DataKey>>;
}
