//! Re-encryption: a message decrypted under one client's keyrings and
//! encrypted again under another's, as one stream. The message format does
//! not allow swapping encrypted data keys in place (the header tag and, for
//! signed suites, the signature cover them, and re-tagging the header under
//! the same derived key would reuse its key and IV), so rotating the keys
//! of stored data is a decrypt and a fresh encrypt. Here the plaintext goes
//! only from the decrypting reader into the new message's batches (one
//! copy, both buffers wiped), never to the caller; memory is bounded by the
//! two streams' batches, whatever the message size (a non-framed message
//! kept non-framed is the exception: its body is held whole, up to the
//! config's `max_body_size`).

use std::io::{Read, Write};

use crate::blocking::Client;
use crate::error::{Error, Result};
use crate::format::{ContentType, EncryptionContext, RESERVED_PREFIX};
use crate::message::{DecryptReader, Encryptor};
use crate::suite::AlgorithmSuite;

/// What a re-encrypted message changes: by default nothing but its keys
/// (the old message's suite, frame length and encryption context).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReencryptOptions {
    suite: Option<AlgorithmSuite>,
    frame_length: Option<u32>,
    added: EncryptionContext,
}

impl ReencryptOptions {
    /// A builder of options that keep everything.
    pub fn builder() -> ReencryptOptionsBuilder {
        ReencryptOptionsBuilder(ReencryptOptions::default())
    }
}

/// Builds [`ReencryptOptions`].
#[derive(Clone, Debug)]
pub struct ReencryptOptionsBuilder(ReencryptOptions);

impl ReencryptOptionsBuilder {
    /// The new message's suite (default: the old message's, or its
    /// counterpart when the encrypting client's commitment policy forbids
    /// it). The encrypting client's commitment policy must allow it.
    pub fn suite(mut self, suite: AlgorithmSuite) -> Self {
        self.0.suite = Some(suite);
        self
    }

    /// The new message's frame length (default: the old message's; 0 is
    /// non-framed).
    pub fn frame_length(mut self, frame_length: u32) -> Self {
        self.0.frame_length = Some(frame_length);
        self
    }

    /// Pairs added to the carried encryption context (stored in the new
    /// message). A pair the old message has already must have the same
    /// value.
    pub fn add_context(mut self, context: EncryptionContext) -> Self {
        for (k, v) in context.iter() {
            self.0.added.insert(k, v);
        }
        self
    }

    /// Checks the options.
    ///
    /// # Errors
    /// [`Error::Config`] for an added key with the reserved `aws-crypto-`
    /// prefix (those pairs belong to a message's suite, not to its data).
    pub fn build(self) -> Result<ReencryptOptions> {
        if let Some((k, _)) = self.0.added.iter().find(|(k, _)| k.starts_with(RESERVED_PREFIX)) {
            return Err(Error::config(
                "reencrypt context",
                format!("key {k:?} uses the reserved prefix \"{RESERVED_PREFIX}\""),
            ));
        }
        Ok(self.0)
    }
}

/// A message being re-encrypted: its old header verified and its data key
/// unwrapped, the new message's materials and header made. Look at both,
/// then [`Reencryptor::reencrypt_into`]. From [`Client::reencryptor`].
pub struct Reencryptor<R> {
    reader: DecryptReader<R>,
    encryptor: Encryptor,
    context: EncryptionContext,
}

impl<R> std::fmt::Debug for Reencryptor<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reencryptor")
            .field("reader", &self.reader)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

impl<R: Read> Reencryptor<R> {
    /// The old message's suite.
    pub fn old_suite(&self) -> AlgorithmSuite {
        self.reader.suite()
    }

    /// The old message's authenticated encryption context (its stored
    /// pairs and the reproduced ones).
    pub fn old_encryption_context(&self) -> &EncryptionContext {
        self.reader.encryption_context()
    }

    /// The new message's encryption context: the old one without the
    /// reserved `aws-crypto-` pairs (its signing key), plus the added pairs.
    pub fn encryption_context(&self) -> &EncryptionContext {
        &self.context
    }

    /// The new message's encryptor, before any plaintext (its header).
    pub fn encryptor(&self) -> &Encryptor {
        &self.encryptor
    }

    /// Streams the plaintext into the new message, written to `output`;
    /// returns `output` once the old message has verified to its end (a
    /// signed one's signature included) and the new one is complete.
    ///
    /// # Errors
    /// Any decrypt error of the old message ([`Error::Decrypt`],
    /// [`Error::Format`], ...) or [`Error::Io`]. `output` then holds part of
    /// a message (never any plaintext): discard it. A signed old message
    /// releases its frames into the new message before its signature is
    /// checked at the end, so write to something you can roll back (a
    /// temporary file renamed on success).
    pub fn reencrypt_into<W: Write>(self, output: W) -> Result<W> {
        let Reencryptor {
            mut reader,
            encryptor,
            ..
        } = self;
        let mut writer = encryptor.into_writer(output)?;
        writer.copy_from(&mut reader).map_err(Error::from_io)?;
        if !reader.is_complete() {
            return Err(Error::Internal("the old message ended before it verified"));
        }
        writer.finish().map_err(Error::from_io)
    }
}

impl Client {
    /// Re-encrypts a message: `from` reads it (its keyrings or cache unwrap
    /// the data key, its config's limits and commitment policy apply) and
    /// this client's keyrings (or cache) and config make the new one.
    /// `context` is the reproduced context the old message needs, as for
    /// [`Client::decrypt_stream`].
    ///
    /// The new message keeps the old one's suite (unless this client's
    /// commitment policy forbids it: then the suite of the other kind,
    /// signed if the old one was) and frame length unless `options` changes
    /// them, and its encryption context: every pair of
    /// the old one but the reserved `aws-crypto-` pairs (a signed suite's
    /// public key belongs to the old message), plus the pairs `options`
    /// adds. Pairs the old message did not store (reproduced ones, from a
    /// required encryption context) stay unstored: the new message requires
    /// them too, beside this client's required keys.
    ///
    /// A signed old message streams only if `from`'s config allows it
    /// ([`ConfigBuilder::allow_signed_streaming`](crate::ConfigBuilder::allow_signed_streaming)):
    /// see [`Reencryptor::reencrypt_into`].
    ///
    /// # Errors
    /// As [`Client::decryptor`] and [`Decryptor::decrypt`](crate::blocking::Decryptor::decrypt)
    /// for the old message; [`Error::Config`] for an added pair whose key
    /// the old message has with another value; as [`Client::encryptor`]
    /// for the new one ([`Error::Policy`] when this client's commitment
    /// policy does not allow the suite).
    pub fn reencryptor<R: Read>(
        &self,
        from: &Client,
        context: &EncryptionContext,
        input: R,
        options: &ReencryptOptions,
    ) -> Result<Reencryptor<R>> {
        let decryptor = from.decryptor(input)?;
        let stored = decryptor.encryption_context().clone();
        let suite = options
            .suite
            .unwrap_or_else(|| new_suite(decryptor.suite(), self.config().commitment_policy()));
        let frame_length = options.frame_length.unwrap_or(match decryptor.content_type() {
            ContentType::NonFramed => 0,
            ContentType::Framed => decryptor.frame_length(),
        });
        // The pairs the old message does not store are the reproduced ones
        // the caller gives: the new message requires them too. Its config
        // is checked before the old data key is unwrapped.
        let mut required: Vec<String> = self.config().required_encryption_context_keys().to_vec();
        required.extend(
            context
                .iter()
                .filter(|(k, _)| !k.starts_with(RESERVED_PREFIX) && !stored.contains_key(k))
                .map(|(k, _)| k.to_owned()),
        );
        let config = self
            .config()
            .to_builder()
            .suite(suite)
            .frame_length(frame_length)
            .required_encryption_context_keys(required)
            .build()?;
        let reader = decryptor.decrypt(context)?;
        let mut carried = EncryptionContext::new();
        for (k, v) in reader.encryption_context().iter() {
            if !k.starts_with(RESERVED_PREFIX) {
                carried.insert(k, v);
            }
        }
        for (k, v) in options.added.iter() {
            match carried.get(k) {
                Some(old) if old != v => {
                    return Err(Error::config(
                        "reencrypt context",
                        format!("the message has {k:?} with another value; a pair can be added, not changed"),
                    ))
                }
                _ => {
                    carried.insert(k, v);
                }
            }
        }
        let encryptor = self.encryptor_with(&config, &carried, None)?;
        Ok(Reencryptor {
            reader,
            encryptor,
            context: carried,
        })
    }
}

/// The new message's suite when none is asked for: the old one, unless
/// the encrypting client's policy forbids it (a legacy message moved under
/// a require-encrypt policy, or the other way round); then the suite of
/// the other kind, signed if the old one was signed.
fn new_suite(old: AlgorithmSuite, policy: crate::config::CommitmentPolicy) -> AlgorithmSuite {
    if policy.allows_encrypt(old) {
        return old;
    }
    match (old.is_committing(), old.is_signed()) {
        (false, true) => AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
        (false, false) => AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        (true, true) => AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha384EcdsaP384,
        (true, false) => AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha256,
    }
}
