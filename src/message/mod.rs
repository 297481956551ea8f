//! The encrypt and decrypt engines, streaming and one-shot.

use std::io::{Read, Write};

use zeroize::Zeroizing;

use crate::config::Config;
use crate::error::{Error, LimitError, Result};
use crate::format::EncryptionContext;
use crate::materials::Keyring;
use crate::suite::AlgorithmSuite;

mod buffer;
mod decrypt;
mod encrypt;

pub use decrypt::{DecryptReader, Decryptor};
pub use encrypt::{EncryptWriter, Encryptor};

/// The result of a one-shot decrypt. Everything in it has been authenticated.
#[derive(Clone)]
#[non_exhaustive]
pub struct Decrypted {
    /// The plaintext.
    pub plaintext: Vec<u8>,
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
    let encryptor = Encryptor::new(config, keyring, context).await?;
    let overhead = 1024 + plaintext.len() / 64;
    let out = Vec::with_capacity(plaintext.len() + overhead);
    let mut writer = encryptor.wrap_output(out).map_err(Error::from_io)?;
    writer.write_all(plaintext).map_err(Error::from_io)?;
    writer.finish().map_err(Error::from_io)
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
    let decryptor = Decryptor::new(message, config)?.allow_signed_streaming();
    let mut reader = decryptor.decrypt(keyring, context).await?;
    // The plaintext is held whole: `max_body_size` bounds it, framed or not.
    let max = config.max_body_size;
    // Capacity for everything that can arrive, so the buffer never
    // reallocates (which would leave unwiped plaintext behind).
    let cap = message
        .len()
        .min(usize::try_from(max.saturating_add(1)).unwrap_or(usize::MAX));
    let mut plaintext = Zeroizing::new(Vec::with_capacity(cap));
    (&mut reader)
        .take(max.saturating_add(1))
        .read_to_end(&mut plaintext)
        .map_err(Error::from_io)?;
    if plaintext.len() as u64 > max {
        return Err(LimitError::BodyTooLarge {
            found: plaintext.len() as u64,
            max,
        }
        .into());
    }
    Ok(Decrypted {
        plaintext: std::mem::take(&mut *plaintext),
        encryption_context: reader.encryption_context().clone(),
        suite: reader.suite(),
    })
}
