//! Encrypt: materials, header, frames, footer.
//!
//! Spec: `client-apis/encrypt.md`. Header bytes and each frame are written
//! only once complete; the signer absorbs every byte before the footer.
//!
//! [`Encryptor`] (here) gets the materials and builds the header;
//! [`EncryptWriter`] (`writer.rs`) writes the body, sealing batches of
//! frames (`seal.rs`) on the calling thread or in the background, to a
//! writer or to the queue an async stream writes out (`outbox.rs`);
//! `oneshot.rs` seals a whole plaintext held in memory.

use std::io::{self, Write};
use std::sync::Arc;

use crate::config::Config;
use crate::crypto::{derive_keys, Aead, RandomPool, Signer, IV_LEN};
use crate::error::{Error, LimitError, Result};
use crate::format::header::{serialize_header_body, ContentType, HeaderAuth};
use crate::format::EncryptionContext;
use crate::materials::{EncryptMaterialsOut, EncryptRequest, Source};
use crate::suite::AlgorithmSuite;

mod oneshot;
mod outbox;
mod seal;
mod writer;

use outbox::Out;
pub use writer::EncryptWriter;

/// A message whose materials are ready and whose header is built: the
/// building block the clients' `encryptor` returns (`encrypt_stream` is
/// `encryptor` then [`Encryptor::into_writer`] or `into_async_writer`).
pub struct Encryptor {
    suite: AlgorithmSuite,
    frame_length: u32,
    message_id: Vec<u8>,
    aead: Box<dyn Aead>,
    signer: Option<Box<dyn Signer>>,
    header: Vec<u8>,
    materials: Arc<EncryptMaterialsOut>,
    max_body_size: u64,
    threads: usize,
    /// The plaintext length declared up front: a bound the writer enforces.
    plaintext_bound: Option<u64>,
}

impl std::fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("suite", &self.suite)
            .field("frame_length", &self.frame_length)
            .finish_non_exhaustive()
    }
}

impl Encryptor {
    /// Gets the data key from `keyring`, derives the message keys and builds
    /// the header for a message under `context`.
    ///
    /// # Errors
    /// [`Error::Config`] for a reserved context key, [`Error::Policy`] for a suite the policy
    /// forbids; keyring errors; [`Error::Limit`] when the keyrings produce
    /// more encrypted data keys than allowed.
    #[cfg(test)]
    pub(crate) async fn new(
        config: &Config,
        keyring: &dyn crate::Keyring,
        context: &EncryptionContext,
    ) -> Result<Self> {
        Self::from_source(config, Source::Keyring(keyring), context, None).await
    }

    pub(crate) async fn from_source(
        config: &Config,
        source: Source<'_>,
        context: &EncryptionContext,
        plaintext_len: Option<u64>,
    ) -> Result<Self> {
        let suite = config.suite();
        config.commitment_policy.check_encrypt(suite)?;
        let backend = config.backend;
        // One CSPRNG call for the message id and, when a keyring makes the
        // data key, for the key and a wrapping IV too.
        let mut message_id = vec![0u8; suite.message_id_len()];
        let random = match source {
            Source::Keyring(_) => {
                let mut pool = RandomPool::draw(backend, message_id.len() + suite.data_key_len() + IV_LEN)?;
                pool.fill(&mut message_id)?;
                Some(pool)
            }
            Source::Cached(_) => {
                backend.fill_random(&mut message_id)?;
                None
            }
        };
        let request = EncryptRequest {
            suite,
            context,
            backend,
            max_edks: config.max_encrypted_data_keys,
            required: &config.required_context_keys,
        };
        let materials = source
            .encryption_materials(request, plaintext_len, random)
            .await?;
        let mut encryptor = Self::with_materials(config, materials, message_id)?;
        encryptor.plaintext_bound = plaintext_len;
        Ok(encryptor)
    }

    /// Derives the message keys and builds the header: everything after the
    /// materials, deterministic given them and the message id.
    pub(crate) fn with_materials(
        config: &Config,
        materials: Arc<EncryptMaterialsOut>,
        message_id: Vec<u8>,
    ) -> Result<Self> {
        let suite = config.suite();
        if let Some(max) = config.max_encrypted_data_keys {
            if materials.edks.len() > max {
                return Err(LimitError::TooManyEncryptedDataKeys {
                    found: materials.edks.len(),
                    max,
                }
                .into());
            }
        }
        let keys = derive_keys(
            config.backend,
            suite,
            materials.data_key.expose_secret(),
            &message_id,
        )
        .map_err(|_| Error::Backend("key derivation"))?;
        let content_type = if config.frame_length == 0 {
            ContentType::NonFramed
        } else {
            ContentType::Framed
        };
        let mut header = serialize_header_body(
            suite,
            &message_id,
            &materials.header_section,
            content_type,
            config.frame_length,
            keys.commitment.as_deref(),
        )?;
        // Header authentication: AES-GCM over no plaintext, AAD = header
        // body || the required pairs (authenticated, not stored).
        let iv = [0u8; 12];
        let with_required;
        let aad = if materials.auth_only.is_empty() {
            &header
        } else {
            with_required = [header.as_slice(), &materials.auth_only].concat();
            &with_required
        };
        let tag = keys
            .aead
            .seal_in_place(&iv, aad, &mut [])
            .map_err(|_| Error::Backend("header authentication"))?;
        HeaderAuth { iv, tag }.serialize(suite.message_version(), &mut header);
        let mut signer = materials.signer.as_ref().map(|s| s.fresh());
        if let Some(s) = signer.as_mut() {
            s.update(&header);
        }
        Ok(Encryptor {
            suite,
            frame_length: config.frame_length,
            message_id,
            aead: keys.aead,
            signer,
            header,
            materials,
            max_body_size: config.max_body_size,
            threads: config.effective_threads(),
            plaintext_bound: None,
        })
    }

    /// The suite the message is written with.
    pub fn suite(&self) -> AlgorithmSuite {
        self.suite
    }

    /// The full encryption context written to the header (including
    /// `aws-crypto-public-key` for signed suites).
    pub fn encryption_context(&self) -> &EncryptionContext {
        &self.materials.context
    }

    /// The message's header as it will be written: the header body and
    /// its authentication tag (everything before the body). Parse it with
    /// [`blocking::Client::decryptor`](crate::blocking::Client::decryptor) to read its fields.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// Writes the header to `output` and returns the writer for the
    /// plaintext.
    ///
    /// # Errors
    /// I/O errors writing the header.
    pub fn into_writer<W: Write>(self, mut output: W) -> io::Result<EncryptWriter<W>> {
        output.write_all(&self.header)?;
        Ok(self.writer(Out::Write(output)))
    }
}
