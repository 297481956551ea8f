//! Envelope encryption compatible with the AWS Encryption SDK message format.
//!
//! Payloads are encrypted locally with AES-GCM under a fresh data key; a
//! keyring wraps the data key (raw AES, raw RSA, AWS KMS). The
//! messages are byte-compatible with every AWS Encryption SDK: v1 and v2
//! formats, all 11 algorithm suites, framed and non-framed bodies.
//!
//! Which API for which job:
//! - [`encrypt`] / [`decrypt`]: one message in memory (async).
//! - [`Encryptor`] → [`EncryptWriter`] and [`Decryptor`] → [`DecryptReader`]:
//!   streaming over `std::io::Write` / `Read` in memory bounded by the frame
//!   length.
//! - [`Client`]: a shared handle (keyring, config, data-key cache) for
//!   many records: `client.encrypt(&context, record)`.
//! - [`blocking::Blocking`]: the same without an async runtime of your own.
//! - [`Config`]: commitment policy, suite, frame length and decrypt limits.
//!
//! ```
//! use envseal::{blocking::Blocking, Config, EncryptionContext, RawAesKeyring, WrappingKey};
//!
//! let keyring = RawAesKeyring::new("my-app", "key-1", WrappingKey::from_slice(&[7u8; 32])?)?;
//! let context: EncryptionContext = [("tenant", "acme")].into_iter().collect();
//! let envseal = Blocking::new()?;
//! let message = envseal.encrypt(&Config::default(), &keyring, &context, b"hello")?;
//! let decrypted = envseal.decrypt(&Config::default(), &keyring, &context, &message)?;
//! assert_eq!(*decrypted.plaintext, b"hello");
//! # Ok::<(), envseal::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod blocking;
mod client;
mod config;
mod crypto;
mod error;
mod format;
pub mod kms;
mod materials;
mod message;
mod suite;

pub use client::{Client, ClientBuilder};
pub use config::{
    CommitmentPolicy, Config, ConfigBuilder, DEFAULT_FRAME_LENGTH, DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_FRAME_LENGTH, DEFAULT_MAX_HEADER_SIZE,
};
pub use crypto::{Backend, DataKey, RsaPadding, WrappingKey};
pub use error::{Error, FormatError, LimitError, PolicyError, Result};
pub use format::{ContentType, EncryptedDataKey, EncryptionContext, PUBLIC_KEY_FIELD, RESERVED_PREFIX};
pub use materials::{
    CacheLimits, CacheStats, DecryptionMaterials, EncryptionMaterials, Keyring, MaterialsCache, MultiKeyring,
    RawAesKeyring, RawRsaKeyring, RsaPrivateKey, RsaPublicKey, MAX_BYTES_LIMIT, MAX_MESSAGES_LIMIT,
};
#[cfg(feature = "kms")]
pub use materials::{DiscoveryFilter, KmsDiscoveryKeyring, KmsKeyring};
pub use message::{
    decrypt, decrypt_into, encrypt, DecryptReader, Decrypted, Decryptor, EncryptWriter, Encryptor, Verified,
};
pub use suite::{AlgorithmSuite, Curve, Kdf, MessageVersion};

/// Re-exported: the [`Keyring`] trait is declared with it.
pub use async_trait::async_trait;
/// Re-exported: keyring implementors build [`DataKey`]s from `Zeroizing` buffers.
pub use zeroize;
