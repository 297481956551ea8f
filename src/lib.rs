//! Envelope encryption compatible with the AWS Encryption SDK message format.
//!
//! Payloads are encrypted locally with AES-GCM under a fresh data key; a
//! keyring wraps the data key (raw AES, raw RSA, AWS KMS). The
//! messages are byte-compatible with every AWS Encryption SDK: v1 and v2
//! formats, all 11 algorithm suites, framed and non-framed bodies.
//!
//! Which API for which job:
//! - Records and streams in a service: [`Client`] (async), or
//!   [`blocking::Client`] without a runtime of your own. One handle holds
//!   the keyring, the [`Config`] and an optional [`MaterialsCache`] of data
//!   keys: `encrypt`/`decrypt` for one record, `encrypt_into`/`decrypt_into`
//!   to reuse buffers, `encrypt_stream`/`decrypt_stream` for
//!   `std::io::Write`/`Read` in memory bounded by the frame length.
//! - One message, no handle: [`encrypt`] / [`decrypt`] (async).
//! - Reading a header before any key is used (which keys, which suite):
//!   [`Decryptor::new`], then [`Client::open_stream`] or
//!   [`Decryptor::decrypt`].
//! - Policy and limits: [`Config::builder`]; keyrings: [`RawAesKeyring`],
//!   [`RawRsaKeyring`], [`MultiKeyring`] and, with the `kms` feature, the
//!   KMS keyrings in [`kms`].
//!
//! ```
//! use envseal::{blocking, EncryptionContext, RawAesKeyring, WrappingKey};
//!
//! let keyring = RawAesKeyring::new("my-app", "key-1", WrappingKey::from_slice(&[7u8; 32])?)?;
//! let client = blocking::Client::new(keyring)?;
//! let context = EncryptionContext::from([("tenant", "acme")]);
//! let message = client.encrypt(&context, b"hello")?;
//! assert_eq!(&client.decrypt(&context, &message)?.plaintext[..], b"hello");
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
    decrypt, encrypt, DecryptReader, Decrypted, Decryptor, EncryptWriter, Encryptor, Verified,
};
pub use suite::{AlgorithmSuite, Curve, Kdf, MessageVersion};

/// Re-exported: the [`Keyring`] trait is declared with it.
pub use async_trait::async_trait;
/// Re-exported: keyring implementors build [`DataKey`]s from `Zeroizing` buffers.
pub use zeroize;
