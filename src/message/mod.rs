//! The encrypt and decrypt engines, streaming and one-shot.

use zeroize::Zeroizing;

use crate::config::Config;
use crate::error::Result;
use crate::format::EncryptionContext;
use crate::materials::{Keyring, Source};
use crate::suite::AlgorithmSuite;

mod buffer;
mod decrypt;
mod encrypt;
mod frames;
mod job;

pub use decrypt::{DecryptReader, Decryptor};
pub use encrypt::{EncryptWriter, Encryptor};
#[cfg(feature = "tokio")]
mod tokio_io;
#[cfg(feature = "tokio")]
pub use tokio_io::{AsyncDecryptReader, AsyncEncryptWriter};

/// The result of a one-shot decrypt. Everything in it has been authenticated.
#[derive(Clone)]
#[non_exhaustive]
pub struct Decrypted {
    /// The plaintext, wiped when dropped.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The authenticated encryption context (stored plus reproduced pairs).
    pub encryption_context: EncryptionContext,
    /// The message's algorithm suite.
    pub suite: AlgorithmSuite,
}

/// What [`Client::decrypt_into`](crate::Client::decrypt_into) authenticated
/// besides the plaintext.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DecryptInfo {
    /// The authenticated encryption context (stored plus reproduced pairs).
    pub encryption_context: EncryptionContext,
    /// The message's algorithm suite.
    pub suite: AlgorithmSuite,
}

impl std::fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decrypted")
            .field("plaintext_len", &self.plaintext.len())
            .field("encryption_context", &self.encryption_context)
            .field("suite", &self.suite)
            .finish()
    }
}

/// Encrypts `plaintext` into one ESDK message.
///
/// # Errors
/// See [`Encryptor::new`]; I/O errors cannot occur writing to memory.
pub async fn encrypt(
    config: &Config,
    keyring: &dyn Keyring,
    context: &EncryptionContext,
    plaintext: &[u8],
) -> Result<Vec<u8>> {
    Encryptor::new(config, keyring, context)
        .await?
        .seal_all(plaintext)
}

/// Decrypts one whole ESDK message. Nothing is returned unless every check,
/// including the signature of signed suites, passed.
///
/// `context` is the reproduced encryption context: every pair must be in
/// the message (stored in the header, or authenticated as a required pair).
///
/// # Errors
/// See [`Decryptor::new`] and [`Decryptor::decrypt`]; trailing bytes after
/// the message are [`crate::FormatError::TrailingData`].
pub async fn decrypt(
    config: &Config,
    keyring: &dyn Keyring,
    context: &EncryptionContext,
    message: &[u8],
) -> Result<Decrypted> {
    decrypt_source(config, Source::Keyring(keyring), context, message).await
}

pub(crate) async fn decrypt_source_into(
    config: &Config,
    source: Source<'_>,
    context: &EncryptionContext,
    message: &[u8],
    out: &mut Vec<u8>,
) -> Result<DecryptInfo> {
    decrypt::decrypt_slice_into(config, source, context, message, out).await
}

pub(crate) async fn decrypt_source(
    config: &Config,
    source: Source<'_>,
    context: &EncryptionContext,
    message: &[u8],
) -> Result<Decrypted> {
    decrypt::decrypt_slice(config, source, context, message).await
}

#[cfg(test)]
mod tests;
