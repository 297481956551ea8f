//! Decrypt in two phases: [`Parsed::new`] parses and bounds the header
//! (under [`crate::Client::decryptor`] and
//! [`crate::blocking::Client::decryptor`]); [`Parsed::decrypt_source`] gets
//! the data key and verifies commitment and header tag, returning a
//! [`DecryptReader`] over the plaintext.
//!
//! Spec: `client-apis/decrypt.md`, `client-apis/streaming.md`. Order of
//! checks: header parse and limits, commitment policy, materials (keyring),
//! key commitment (constant time), header tag, then each frame's tag, then
//! the signature. A frame's plaintext is released only after its tag
//! verifies; the final frame only after the signature (if any) verifies and
//! no bytes follow the message.

use std::io::Read;

use crate::config::Config;
use crate::crypto::{Aead, HeaderAuthenticated, Verifier};
use crate::error::{Error, FormatError, PolicyError, Result};
use crate::format::header::{parse_header, HeaderLimits, ParsedHeader};
use crate::format::EncryptionContext;
use crate::materials::{decryption_materials, Source};

mod input;
mod oneshot;
mod reader;

use input::Input;
pub(crate) use oneshot::{decrypt_slice, decrypt_slice_into};
pub use reader::DecryptReader;

/// First phase of decryption, the header part both clients' decryptor
/// handles wrap ([`crate::Decryptor`], [`crate::blocking::Decryptor`]): the
/// header is parsed and bounded; no key has been used yet, so nothing it
/// shows is authenticated.
pub(crate) struct Parsed<R> {
    input: Input<R>,
    pub(crate) header: ParsedHeader,
    config: Config,
}

impl<R> std::fmt::Debug for Parsed<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("suite", &self.header.body.suite)
            .field("encrypted_data_keys", &self.header.body.edks.len())
            .finish_non_exhaustive()
    }
}

/// The header getters of a decryptor handle whose field `$parsed` is a
/// [`Parsed`]: one set of docs for both clients' handles.
macro_rules! header_getters {
    ($parsed:ident) => {
        /// The message's algorithm suite (not yet authenticated).
        pub fn suite(&self) -> $crate::AlgorithmSuite {
            self.$parsed.header.body.suite
        }

        /// The stored encryption context (not yet authenticated).
        pub fn encryption_context(&self) -> &$crate::EncryptionContext {
            &self.$parsed.header.body.context
        }

        /// The encrypted data keys (not yet authenticated).
        pub fn encrypted_data_keys(&self) -> &[$crate::EncryptedDataKey] {
            &self.$parsed.header.body.edks
        }

        /// The frame length (0 for a non-framed body).
        pub fn frame_length(&self) -> u32 {
            self.$parsed.header.body.frame_length
        }

        /// The message id (not yet authenticated): 16 bytes in a version 1
        /// message, 32 in version 2.
        pub fn message_id(&self) -> &[u8] {
            &self.$parsed.header.body.message_id
        }

        /// Framed or non-framed.
        pub fn content_type(&self) -> $crate::ContentType {
            self.$parsed.header.body.content_type
        }

        /// The key commitment a version 2 header stores (not yet checked).
        pub fn commitment(&self) -> Option<&[u8; 32]> {
            self.$parsed.header.body.suite_data.as_ref()
        }

        /// The header authentication: its IV (all zeros in version 2, where
        /// it is not stored) and tag (not yet checked).
        pub fn header_auth(&self) -> (&[u8; 12], &[u8; 16]) {
            (&self.$parsed.header.auth.iv, &self.$parsed.header.auth.tag)
        }

        /// The header's length in bytes, authentication included.
        pub fn header_len(&self) -> usize {
            self.$parsed.header.len
        }
    };
}
pub(crate) use header_getters;

impl<R> Parsed<R> {
    /// A header parsed from the start of `read`, the bytes read so far:
    /// those past it come first (in place), then `input`. Checks the
    /// commitment policy.
    pub(crate) fn with_header(
        header: ParsedHeader,
        read: Vec<u8>,
        input: R,
        config: &Config,
    ) -> Result<Self> {
        config.commitment_policy.check_decrypt(header.body.suite)?;
        let body_start = header.len;
        Ok(Parsed {
            input: Input::new(read, body_start, input),
            header,
            config: config.clone(),
        })
    }
}

impl<R: Read> Parsed<R> {
    /// Reads and parses the header from `input`, enforcing the header size,
    /// encrypted-data-key count and frame-length limits and the commitment
    /// policy before any keyring is asked.
    ///
    /// # Errors
    /// [`Error::Format`], [`Error::Limit`], [`Error::Policy`], [`Error::Io`].
    pub(crate) fn new(mut input: R, config: &Config) -> Result<Self> {
        let limits = HeaderLimits {
            max_edks: config.max_encrypted_data_keys,
            max_header_size: config.max_header_size,
            max_frame_length: config.max_frame_length,
        };
        let mut buf = Vec::new();
        loop {
            match parse_header(&buf, &limits) {
                Ok(header) => {
                    config.commitment_policy.check_decrypt(header.body.suite)?;
                    return Parsed::with_header(header, buf, input, config);
                }
                Err(Error::Format(FormatError::Truncated(field))) => {
                    // Read ahead, doubling each time, so a large header is
                    // parsed O(log n) times, never past the size limit.
                    let target = (buf.len() * 2)
                        .max(4096)
                        .min(limits.max_header_size)
                        .max(buf.len() + 1);
                    let before = buf.len();
                    // Room up front: no small probe read, no regrowth.
                    buf.reserve_exact(target - before);
                    (&mut input)
                        .take((target - before) as u64)
                        .read_to_end(&mut buf)?;
                    if buf.len() == before {
                        return Err(FormatError::Truncated(field).into());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Gets the data key from `keyring` (tests of the engine without a
    /// client); see [`Parsed::decrypt_source`].
    #[cfg(test)]
    pub(crate) async fn decrypt(
        self,
        keyring: &dyn crate::materials::Keyring,
        reproduced: &EncryptionContext,
    ) -> Result<DecryptReader<R>> {
        self.decrypt_source(Source::Keyring(keyring), reproduced).await
    }

    /// Gets the data key from `source` and verifies the key commitment and
    /// the header. `reproduced` is the caller's encryption context: pairs
    /// the header stores must match, and pairs it does not store are
    /// authenticated through the header tag (the ESDK's reproduced context).
    ///
    /// # Errors
    /// [`Error::NoMatchingKey`] when no keyring could unwrap a data key;
    /// [`Error::Decrypt`] when a cryptographic check fails;
    /// [`Error::Policy`] for a context mismatch or a signed message without
    /// [`ConfigBuilder::allow_signed_streaming`](crate::ConfigBuilder::allow_signed_streaming).
    pub(crate) async fn decrypt_source(
        self,
        source: Source<'_>,
        reproduced: &EncryptionContext,
    ) -> Result<DecryptReader<R>> {
        let suite = self.header.body.suite;
        if suite.is_signed() && !self.config.allow_signed_streaming {
            return Err(PolicyError::SignedStreaming(suite).into());
        }
        let (authenticated, mut opened) = open_header(&self.header, &self.config, source, reproduced).await?;
        if let Some(v) = opened.verifier.as_mut() {
            v.update(&self.header.body_bytes);
            let mut auth = Vec::with_capacity(28);
            self.header.auth.serialize(suite.message_version(), &mut auth);
            v.update(&auth);
        }
        Ok(DecryptReader::new(
            authenticated,
            opened,
            self.input,
            self.header,
            &self.config,
        ))
    }
}

/// A message whose header has been authenticated: the keys for its body.
struct Opened {
    aead: Box<dyn Aead>,
    verifier: Option<Box<dyn Verifier>>,
    context: EncryptionContext,
}

/// Gets the data key, derives the message keys, and verifies the key
/// commitment and the header tag.
async fn open_header(
    header: &ParsedHeader,
    config: &Config,
    source: Source<'_>,
    reproduced: &EncryptionContext,
) -> Result<(HeaderAuthenticated, Opened)> {
    if let Some(k) = config
        .required_context_keys
        .iter()
        .find(|k| !reproduced.contains_key(k))
    {
        return Err(PolicyError::RequiredContextKey(k.clone()).into());
    }
    let materials = decryption_materials(source, header, reproduced, config.backend).await?;
    let (keys, authenticated) = materials
        .check
        .open(materials.data_key.expose_secret())
        .map_err(|_| Error::Decrypt)?;
    Ok((
        authenticated,
        Opened {
            aead: keys.aead,
            verifier: materials.verifier,
            context: materials.context,
        },
    ))
}
