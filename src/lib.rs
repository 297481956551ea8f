#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod blocking;
mod cache;
mod client;
mod config;
mod crypto;
mod error;
mod format;
#[cfg(feature = "hierarchy")]
pub mod keystore;
pub mod kms;
mod materials;
mod message;
#[cfg(feature = "metrics")]
pub mod observe;
#[cfg(not(feature = "metrics"))]
mod observe;
mod reencrypt;
mod suite;

pub use cache::{
    CachePolicy, CachePolicyBuilder, CacheStats, DEFAULT_GRACE, DEFAULT_JITTER, DEFAULT_MAX_LOADS,
    MAX_CACHE_ENTRIES,
};
#[cfg(feature = "tokio")]
pub use client::Decryptor;
pub use client::{Client, ClientBuilder};
pub use config::{
    CommitmentPolicy, Config, ConfigBuilder, DEFAULT_FRAME_LENGTH, DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_FRAME_LENGTH, DEFAULT_MAX_HEADER_SIZE,
};
pub use crypto::{
    Backend, CryptoModule, DataKey, EcdhKeyError, EcdhPrivateKey, EcdhPublicKey, RsaPadding, WrappingKey,
};
pub use error::{Error, FormatError, LimitError, PolicyError, Result};
pub use format::{ContentType, EncryptedDataKey, EncryptionContext, PUBLIC_KEY_FIELD, RESERVED_PREFIX};
#[cfg(feature = "hierarchy")]
pub use materials::{
    BranchKeyCache, BranchKeyCacheBuilder, BranchKeyIdSupplier, HierarchyKeyring, HierarchyKeyringBuilder,
    DEFAULT_BRANCH_KEY_CACHE_CAPACITY, HIERARCHY_PROVIDER_ID,
};
pub use materials::{
    CacheLimits, DecryptionMaterials, EncryptionMaterials, Keyring, MaterialsCache, MultiKeyring,
    RawAesKeyring, RawEcdhKeyring, RawRsaKeyring, RsaPrivateKey, RsaPublicKey, CACHE_SWEEP_INTERVAL,
    KMS_ECDH_PROVIDER_ID, MAX_BYTES_LIMIT, MAX_MESSAGES_LIMIT, RAW_ECDH_PROVIDER_ID,
};
pub use materials::{CacheLimitsBuilder, MaterialsCacheBuilder};
#[cfg(feature = "kms")]
pub use materials::{
    DiscoveryFilter, KmsDiscoveryKeyring, KmsEcdhKeyring, KmsKeyring, KmsRsaKeyring, KMS_RSA_PROVIDER_ID,
};
#[cfg(feature = "kms")]
pub use materials::{
    KmsDiscoveryKeyringBuilder, KmsEcdhKeyringBuilder, KmsKeyringBuilder, KmsRsaKeyringBuilder,
};
#[cfg(feature = "tokio")]
pub use message::{AsyncDecryptReader, AsyncEncryptWriter};
pub use message::{DecryptInfo, DecryptReader, Decrypted, EncryptWriter, Encryptor};
pub use reencrypt::{ReencryptOptions, ReencryptOptionsBuilder, Reencryptor};
pub use suite::{AlgorithmSuite, Curve, Kdf, MessageVersion};

/// Re-exported: the [`Keyring`] trait is declared with it.
pub use async_trait::async_trait;
/// Re-exported: keyring implementors build [`DataKey`]s from `Zeroizing` buffers.
pub use zeroize;

// The longer docs' examples are doctests too.
#[cfg(doctest)]
#[doc = include_str!("../docs/design.md")]
struct DesignDoc;
#[cfg(all(doctest, feature = "kms"))]
#[doc = include_str!("../docs/kms.md")]
struct KmsDoc;
#[cfg(all(doctest, feature = "hierarchy"))]
#[doc = include_str!("../docs/hierarchy.md")]
struct HierarchyDoc;
#[cfg(all(doctest, feature = "metrics"))]
#[doc = include_str!("../docs/metrics.md")]
struct MetricsDoc;
