//! envseal's one error type.
//!
//! Failed cryptographic checks (data-key unwrap, key commitment, header tag,
//! frame tag, signature) all become [`Error::Decrypt`], whose message says
//! nothing about which check failed. Malformed input, limits and policy each
//! have their own variant; so do the caller's mistakes, kept apart from what
//! untrusted bytes can cause: an invalid setting ([`Error::Config`], naming
//! it), API misuse ([`Error::Misuse`]), a stream used after it failed
//! ([`Error::Poisoned`]). A failing crypto backend ([`Error::Backend`]) and
//! a broken internal invariant ([`Error::Internal`]) are the last two.

use std::io;

use crate::suite::AlgorithmSuite;

// The AWS call errors: without the `kms` feature the types stay (they are
// part of `Error`), but nothing calls their crate-internal helpers. Public
// as `envseal::kms::{AwsError, ...}`.
#[cfg_attr(not(feature = "kms"), allow(dead_code))]
pub(crate) mod aws;

use aws::AwsError;

/// Result alias used throughout envseal.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in envseal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A cryptographic check failed. Deliberately detail-free: it reads the
    /// same whether the commitment, a tag, an unwrap or the signature failed.
    #[error("authentication failed")]
    Decrypt,

    /// The bytes are not a well-formed ESDK message.
    #[error("malformed message: {0}")]
    Format(#[from] FormatError),

    /// The message exceeds a configured limit; checked before allocation.
    #[error("limit exceeded: {0}")]
    Limit(#[from] LimitError),

    /// The message or request is well-formed but refused by policy.
    #[error("refused by policy: {0}")]
    Policy(#[from] PolicyError),

    /// No keyring could decrypt any of the message's encrypted data keys.
    #[error("no keyring could decrypt any of the {edks} encrypted data key(s) in the message")]
    NoMatchingKey {
        /// Number of encrypted data keys the message carries.
        edks: usize,
    },

    /// A keyring failed for a reason other than a cryptographic check
    /// (for example it cannot encrypt, or a remote service failed). Build
    /// one with [`Error::keyring`].
    #[error("keyring {keyring}: {reason}")]
    Keyring {
        /// Which keyring (namespace/name or kind).
        keyring: String,
        /// What went wrong.
        reason: String,
        /// The underlying error, for custom keyrings that have one
        /// ([`Error::with_source`]).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// No data key was decrypted and more than one attempt failed: each
    /// failure, in the order tried, as the specifications collect them (a
    /// multi-keyring's children, `framework/multi-keyring.md`; a keyring's
    /// encrypted data keys, e.g. `aws-kms-hierarchical-keyring.md`). A
    /// nested list is flattened into this one; a lone failure is reported
    /// as itself, and so is a list of failed cryptographic checks alone:
    /// one [`Error::Decrypt`], so that which check failed (the data key's
    /// unwrap, a tag, the commitment) never shows. Beside other failures a
    /// failed check stays an opaque [`Error::Decrypt`] in the list. Display
    /// names the first few; the list holds them all.
    #[error("every attempt to decrypt the data key failed: {}", list_failures(.0))]
    Keyrings(Vec<Error>),

    /// An AWS call (KMS, STS or DynamoDB) failed: kind, operation, key or
    /// table, HTTP status, request id and attempts are in the
    /// [`AwsError`](crate::kms::AwsError).
    #[error("{0}")]
    Aws(Box<AwsError>),

    /// A setting or argument the caller gave is invalid. Never produced
    /// from message bytes.
    #[error("invalid {setting}: {reason}")]
    Config {
        /// The setting, e.g. `cache max age` or `wrapping key`.
        setting: &'static str,
        /// Why it is invalid.
        reason: String,
    },

    /// The API was used in a way it does not allow (the blocking client
    /// inside an async runtime, a keyring setting the data key twice).
    /// Never produced from message bytes.
    #[error("API misuse: {0}")]
    Misuse(String),

    /// A stream writer or reader was used after an earlier error: the
    /// message it wrote or read is incomplete.
    #[error("the stream failed earlier; the message is incomplete")]
    Poisoned,

    /// The crypto backend failed (random source, signing key, key
    /// derivation, encryption). Names only the operation.
    #[error("crypto backend failure: {0}")]
    Backend(&'static str),

    /// The FIPS build (feature `fips`) refused: its crypto module is not in
    /// FIPS mode, or what was asked is not a FIPS-approved service (RSA
    /// PKCS#1 v1.5 key wrapping). Never produced by other builds, nor from
    /// message bytes.
    #[error("FIPS 140-3: {0}")]
    Fips(String),

    /// An internal invariant broke: a bug in envseal.
    #[error("internal error (a bug in envseal): {0}")]
    Internal(&'static str),

    /// An I/O error from the underlying reader or writer.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

impl Error {
    /// A keyring's failure, without a source.
    pub fn keyring(keyring: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Keyring {
            keyring: keyring.into(),
            reason: reason.into(),
            source: None,
        }
    }

    /// Attaches `source` to an [`Error::Keyring`] (other variants are
    /// returned unchanged).
    pub fn with_source(self, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        match self {
            Error::Keyring { keyring, reason, .. } => Error::Keyring {
                keyring,
                reason,
                source: Some(source.into()),
            },
            other => other,
        }
    }

    /// An invalid setting.
    pub(crate) fn config(setting: &'static str, reason: impl Into<String>) -> Self {
        Error::Config {
            setting,
            reason: reason.into(),
        }
    }

    /// The failure of a decrypt that tried several keyrings or encrypted
    /// data keys and got no data key: `None` for no failure, a lone failure
    /// as itself, failed cryptographic checks alone as one
    /// [`Error::Decrypt`] (as detail-free as any other failed check), else
    /// [`Error::Keyrings`] with every failure in order (nested lists
    /// flattened).
    pub(crate) fn collected(failures: Vec<Error>) -> Option<Error> {
        let mut all = Vec::with_capacity(failures.len());
        for e in failures {
            match e {
                Error::Keyrings(inner) => all.extend(inner),
                e => all.push(e),
            }
        }
        match all.len() {
            0 => None,
            1 => all.pop(),
            _ if all.iter().all(|e| matches!(e, Error::Decrypt)) => Some(Error::Decrypt),
            _ => Some(Error::Keyrings(all)),
        }
    }

    /// Whether a failed cryptographic check is (or is among) this failure:
    /// such an outcome depends on the caller's own message, not only on
    /// the keys.
    pub(crate) fn has_failed_check(&self) -> bool {
        match self {
            Error::Decrypt => true,
            Error::Keyrings(all) => all.iter().any(Error::has_failed_check),
            _ => false,
        }
    }

    /// Whether this is a call that found its operation's deadline passed
    /// (every later call of the operation fails the same way at once).
    #[cfg(feature = "kms")]
    pub(crate) fn is_past_deadline(&self) -> bool {
        use aws::{AwsErrorKind, TimeoutKind};
        matches!(self, Error::Aws(k) if k.kind == AwsErrorKind::Timeout(TimeoutKind::Deadline))
    }

    /// A copy for every caller that waited on one shared operation (the
    /// cache's single keyring call). I/O errors keep their kind and text.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Decrypt => Error::Decrypt,
            Error::Format(e) => Error::Format(e.clone()),
            Error::Limit(e) => Error::Limit(e.clone()),
            Error::Policy(e) => Error::Policy(e.clone()),
            Error::NoMatchingKey { edks } => Error::NoMatchingKey { edks: *edks },
            Error::Keyring {
                keyring,
                reason,
                source,
            } => Error::Keyring {
                keyring: keyring.clone(),
                reason: reason.clone(),
                // A source is not cloneable: its text stands in for it.
                source: source.as_ref().map(|e| e.to_string().into()),
            },
            Error::Keyrings(all) => Error::Keyrings(all.iter().map(Error::duplicate).collect()),
            Error::Aws(e) => Error::Aws(e.clone()),
            Error::Config { setting, reason } => Error::Config {
                setting,
                reason: reason.clone(),
            },
            Error::Misuse(m) => Error::Misuse(m.clone()),
            Error::Poisoned => Error::Poisoned,
            Error::Backend(op) => Error::Backend(op),
            Error::Fips(m) => Error::Fips(m.clone()),
            Error::Internal(what) => Error::Internal(what),
            Error::Io(e) => Error::Io(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

/// Failures [`Error::Keyrings`] names in its Display; a hostile message
/// can make a thousand, and one log line should stay readable.
const LISTED_FAILURES: usize = 10;

/// `1) first; 2) second; ...; and N more`
fn list_failures(failures: &[Error]) -> String {
    let mut out = String::new();
    for (i, e) in failures.iter().take(LISTED_FAILURES).enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&format!("{}) {e}", i + 1));
    }
    if failures.len() > LISTED_FAILURES {
        out.push_str(&format!("; and {} more", failures.len() - LISTED_FAILURES));
    }
    out
}

/// A malformed field in a message. Names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The input ended inside the named field.
    #[error("truncated in {0}")]
    Truncated(&'static str),
    /// The named field holds a value the format does not allow.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// The header names a message version envseal does not know.
    #[error("unsupported message version 0x{0:02X}")]
    UnsupportedVersion(u8),
    /// The header names a suite ID that is not an ESDK algorithm suite.
    #[error("unknown algorithm suite 0x{0:04X}")]
    UnknownSuite(u16),
    /// Bytes follow the end of the message.
    #[error("trailing bytes after the end of the message")]
    TrailingData,
}

/// A configured limit a message exceeds. Carries the numbers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// More encrypted data keys than `max_encrypted_data_keys`.
    #[error("{found} encrypted data keys, more than max_encrypted_data_keys ({max})")]
    TooManyEncryptedDataKeys {
        /// Count in the message.
        found: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The header is larger than `max_header_size`.
    #[error("header larger than max_header_size ({max} bytes)")]
    HeaderTooLarge {
        /// Configured maximum.
        max: usize,
    },
    /// The frame length is larger than `max_frame_length`.
    #[error("frame length {found} exceeds max_frame_length ({max} bytes)")]
    FrameTooLarge {
        /// Frame length in the header.
        found: u64,
        /// Configured maximum.
        max: u64,
    },
    /// A body held whole (non-framed, or any one-shot decrypt's plaintext)
    /// is larger than `max_body_size`.
    #[error("body of {found} bytes exceeds max_body_size ({max} bytes)")]
    BodyTooLarge {
        /// Claimed or seen body size.
        found: u64,
        /// Configured maximum.
        max: u64,
    },
    /// A stream was given more plaintext than the length declared for it
    /// (spec `client-apis/encrypt.md`, "Plaintext Length Bound").
    #[error("plaintext longer than its declared length of {declared} bytes")]
    PlaintextLengthBound {
        /// The declared length.
        declared: u64,
    },
    /// The message has more frames than the format allows.
    #[error("more than {max} frames (the format's limit)")]
    TooManyFrames {
        /// Maximum frame count.
        max: u64,
    },
}

/// Policy refusals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The suite does not satisfy the commitment policy.
    #[error("algorithm suite {suite} is not allowed by commitment policy {policy}")]
    CommitmentPolicy {
        /// The suite in question.
        suite: AlgorithmSuite,
        /// The policy's name.
        policy: &'static str,
    },
    /// The message is signed and streaming release of signed messages was
    /// not enabled.
    #[error("message is signed ({0}); streaming decryption of signed messages must be enabled explicitly")]
    SignedStreaming(AlgorithmSuite),
    /// An encryption context pair required by the caller does not match the message.
    #[error("encryption context does not match: key {0:?}")]
    ContextMismatch(String),
    /// Signed suite without a public key in the context, or the reverse.
    #[error("encryption context public key does not match the suite")]
    PublicKeyMismatch,
    /// A required encryption context key (`Config::required_encryption_context_keys`)
    /// is not in the context given to decrypt.
    #[error("the required encryption context key {0:?} was not given")]
    RequiredContextKey(String),
}

impl From<AwsError> for Error {
    fn from(e: AwsError) -> Self {
        Error::Aws(Box::new(e))
    }
}

impl From<Box<AwsError>> for Error {
    fn from(e: Box<AwsError>) -> Self {
        Error::Aws(e)
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Io(io) => io,
            other => io::Error::other(other),
        }
    }
}

impl Error {
    /// Recovers an envseal error from an `io::Error` produced by a stream
    /// reader or writer, if it carries one.
    pub fn from_io(e: io::Error) -> Self {
        if !e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            return Error::Io(e);
        }
        let kind = e.kind();
        match e.into_inner().map(|b| b.downcast::<Error>()) {
            Some(Ok(inner)) => *inner,
            Some(Err(other)) => Error::Io(io::Error::new(kind, other)),
            None => Error::Io(io::Error::from(kind)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collected_failures_keep_every_one_in_order() {
        assert!(Error::collected(Vec::new()).is_none());
        assert!(matches!(
            Error::collected(vec![Error::Decrypt]),
            Some(Error::Decrypt)
        ));
        let nested = Error::Keyrings(vec![Error::Decrypt, Error::Poisoned]);
        let Some(Error::Keyrings(all)) = Error::collected(vec![Error::Backend("x"), nested, Error::Decrypt])
        else {
            panic!("a list")
        };
        assert!(matches!(
            all.as_slice(),
            [
                Error::Backend("x"),
                Error::Decrypt,
                Error::Poisoned,
                Error::Decrypt
            ]
        ));
        // Failed checks alone read as one: which check failed never shows.
        assert!(matches!(
            Error::collected(vec![
                Error::Decrypt,
                Error::Keyrings(vec![Error::Decrypt, Error::Decrypt])
            ]),
            Some(Error::Decrypt)
        ));
        // Display names the first ten and counts the rest.
        let many = Error::collected((0..1000).map(|_| Error::Poisoned).collect()).unwrap();
        let shown = many.to_string();
        let poisoned = Error::Poisoned.to_string();
        assert!(
            shown.contains(&format!("10) {poisoned}; and 990 more")),
            "{shown}"
        );
        assert!(!shown.contains("11)"), "{shown}");
        let mixed = Error::collected(vec![Error::Poisoned, Error::Decrypt]).unwrap();
        assert!(mixed.has_failed_check() && !many.has_failed_check());
    }
}
