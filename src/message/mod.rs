//! The encrypt and decrypt engines, streaming and one-shot.

use zeroize::Zeroizing;

use crate::config::Config;
use crate::error::Result;
use crate::format::EncryptionContext;
use crate::materials::Source;
use crate::suite::AlgorithmSuite;

mod buffer;
mod decrypt;
mod encrypt;
mod frames;
mod job;

pub use decrypt::DecryptReader;
pub(crate) use decrypt::{header_getters, Parsed};
pub use encrypt::{EncryptWriter, Encryptor};
#[cfg(feature = "tokio")]
mod tokio_io;
#[cfg(feature = "tokio")]
pub(crate) use tokio_io::{read_header, Feed};
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
