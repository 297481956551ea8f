//! The policy bundle: commitment policy, suite, frame length and limits.

use crate::crypto::Backend;
use crate::error::{Error, PolicyError, Result};
use crate::suite::AlgorithmSuite;

/// Which suites may be written and read. Spec: `client-apis/client.md`,
/// `framework/commitment-policy.md`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CommitmentPolicy {
    /// Write and read only key-committing suites (the default).
    #[default]
    RequireEncryptRequireDecrypt,
    /// Write committing suites; read any.
    RequireEncryptAllowDecrypt,
    /// Write only non-committing (v1) suites; read any.
    ForbidEncryptAllowDecrypt,
}

impl CommitmentPolicy {
    /// Every policy.
    pub const ALL: [CommitmentPolicy; 3] = [
        CommitmentPolicy::RequireEncryptRequireDecrypt,
        CommitmentPolicy::RequireEncryptAllowDecrypt,
        CommitmentPolicy::ForbidEncryptAllowDecrypt,
    ];

    /// Kebab-case name, e.g. `require-encrypt-require-decrypt`.
    pub const fn name(self) -> &'static str {
        match self {
            CommitmentPolicy::RequireEncryptRequireDecrypt => "require-encrypt-require-decrypt",
            CommitmentPolicy::RequireEncryptAllowDecrypt => "require-encrypt-allow-decrypt",
            CommitmentPolicy::ForbidEncryptAllowDecrypt => "forbid-encrypt-allow-decrypt",
        }
    }

    /// Parses the kebab-case or the ESDK's SCREAMING_SNAKE name.
    pub fn parse(text: &str) -> Option<Self> {
        let norm = text.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL.into_iter().find(|p| p.name() == norm)
    }

    /// Whether `suite` may be used to encrypt.
    pub const fn allows_encrypt(self, suite: AlgorithmSuite) -> bool {
        match self {
            CommitmentPolicy::ForbidEncryptAllowDecrypt => !suite.is_committing(),
            _ => suite.is_committing(),
        }
    }

    /// Whether a message with `suite` may be decrypted.
    pub const fn allows_decrypt(self, suite: AlgorithmSuite) -> bool {
        match self {
            CommitmentPolicy::RequireEncryptRequireDecrypt => suite.is_committing(),
            _ => true,
        }
    }

    /// The suite used to encrypt when none is chosen.
    pub const fn default_suite(self) -> AlgorithmSuite {
        match self {
            CommitmentPolicy::ForbidEncryptAllowDecrypt => {
                AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha384EcdsaP384
            }
            _ => AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
        }
    }

    pub(crate) fn check_encrypt(self, suite: AlgorithmSuite) -> Result<()> {
        if self.allows_encrypt(suite) {
            Ok(())
        } else {
            Err(PolicyError::CommitmentPolicy {
                suite,
                policy: self.name(),
            }
            .into())
        }
    }

    pub(crate) fn check_decrypt(self, suite: AlgorithmSuite) -> Result<()> {
        if self.allows_decrypt(suite) {
            Ok(())
        } else {
            Err(PolicyError::CommitmentPolicy {
                suite,
                policy: self.name(),
            }
            .into())
        }
    }
}

/// Default frame length (bytes of plaintext per frame), as in every ESDK.
pub const DEFAULT_FRAME_LENGTH: u32 = 4096;
/// Default largest header accepted on decrypt.
pub const DEFAULT_MAX_HEADER_SIZE: usize = 1 << 20;
/// Default largest frame length accepted on decrypt.
pub const DEFAULT_MAX_FRAME_LENGTH: u32 = 64 << 20;
/// Default largest body held whole in memory (non-framed messages).
pub const DEFAULT_MAX_BODY_SIZE: u64 = 256 << 20;

/// How envseal encrypts and what it accepts on decrypt.
///
/// `Config::default()` follows the AWS Encryption SDK v2+ defaults: commitment
/// policy require-encrypt-require-decrypt, suite
/// `AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384`, frame length 4096.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub(crate) commitment_policy: CommitmentPolicy,
    pub(crate) suite: Option<AlgorithmSuite>,
    pub(crate) frame_length: u32,
    pub(crate) max_encrypted_data_keys: Option<usize>,
    pub(crate) max_header_size: usize,
    pub(crate) max_frame_length: u32,
    pub(crate) max_body_size: u64,
    pub(crate) backend: Backend,
    pub(crate) threads: usize,
    pub(crate) allow_signed_streaming: bool,
    /// Encryption context keys that must be given and are authenticated
    /// but not stored (sorted, no duplicates).
    pub(crate) required_context_keys: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            commitment_policy: CommitmentPolicy::default(),
            suite: None,
            frame_length: DEFAULT_FRAME_LENGTH,
            max_encrypted_data_keys: None,
            max_header_size: DEFAULT_MAX_HEADER_SIZE,
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            backend: Backend::default(),
            threads: 0,
            allow_signed_streaming: false,
            required_context_keys: Vec::new(),
        }
    }
}

impl Config {
    /// A builder starting from the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder(Config::default())
    }

    /// A builder starting from this config (one message's variant of it).
    pub(crate) fn to_builder(&self) -> ConfigBuilder {
        ConfigBuilder(self.clone())
    }

    /// The commitment policy.
    pub fn commitment_policy(&self) -> CommitmentPolicy {
        self.commitment_policy
    }

    /// The suite encrypt uses.
    pub fn suite(&self) -> AlgorithmSuite {
        self.suite.unwrap_or(self.commitment_policy.default_suite())
    }

    /// Plaintext bytes per frame on encrypt; 0 writes a non-framed body.
    pub fn frame_length(&self) -> u32 {
        self.frame_length
    }

    /// Largest number of encrypted data keys accepted (`None`: no limit).
    pub fn max_encrypted_data_keys(&self) -> Option<usize> {
        self.max_encrypted_data_keys
    }

    /// The required encryption context keys (see
    /// [`ConfigBuilder::required_encryption_context_keys`]).
    pub fn required_encryption_context_keys(&self) -> &[String] {
        &self.required_context_keys
    }

    /// Whether streaming decryption releases signed messages.
    pub fn signed_streaming_allowed(&self) -> bool {
        self.allow_signed_streaming
    }

    /// The crypto backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Threads that seal or open the frames of one message: 0 (the default)
    /// means every core (rayon's global pool), 1 keeps a message on the
    /// calling thread.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The thread count to use: `threads`, or every core for 0.
    pub(crate) fn effective_threads(&self) -> usize {
        match self.threads {
            0 => rayon::current_num_threads(),
            n => n,
        }
    }
}

/// Builds a [`Config`]; every setting has a documented default.
#[derive(Clone, Debug)]
pub struct ConfigBuilder(Config);

impl ConfigBuilder {
    /// Commitment policy (default require-encrypt-require-decrypt).
    pub fn commitment_policy(mut self, policy: CommitmentPolicy) -> Self {
        self.0.commitment_policy = policy;
        self
    }

    /// Suite to encrypt with (default: the policy's default suite).
    pub fn suite(mut self, suite: AlgorithmSuite) -> Self {
        self.0.suite = Some(suite);
        self
    }

    /// Plaintext bytes per frame (default 4096; 0 = non-framed, legacy).
    pub fn frame_length(mut self, frame_length: u32) -> Self {
        self.0.frame_length = frame_length;
        self
    }

    /// Most encrypted data keys a message may carry, on encrypt and decrypt
    /// (default: no limit). Checked before any keyring is called.
    pub fn max_encrypted_data_keys(mut self, max: usize) -> Self {
        self.0.max_encrypted_data_keys = Some(max);
        self
    }

    /// Largest header accepted on decrypt (default 1 MiB).
    pub fn max_header_size(mut self, bytes: usize) -> Self {
        self.0.max_header_size = bytes;
        self
    }

    /// Largest frame length accepted on decrypt (default 64 MiB).
    pub fn max_frame_length(mut self, bytes: u32) -> Self {
        self.0.max_frame_length = bytes;
        self
    }

    /// Largest body held whole in memory, counted as its plaintext's
    /// length: a non-framed message on encrypt and on decrypt (what a writer
    /// under a limit wrote, a reader under the same limit reads), and a
    /// one-shot decrypt's whole plaintext (default 256 MiB).
    pub fn max_body_size(mut self, bytes: u64) -> Self {
        self.0.max_body_size = bytes;
        self
    }

    /// Threads per message for its frames (default 0: every core). Frames
    /// are independent AES-GCM operations, so a message splits across
    /// threads once it has at least 1 MiB of frames per thread; the output is
    /// the same bytes as on one thread. 1 keeps every message on the calling
    /// thread (no thread pool is started).
    pub fn threads(mut self, threads: usize) -> Self {
        self.0.threads = threads;
        self
    }

    /// Lets streaming decryption (the clients' `decrypt_stream` and
    /// `decryptor`) release signed messages (default: off: they are refused
    /// with [`PolicyError::SignedStreaming`](crate::PolicyError::SignedStreaming)).
    /// The only switch for it. One-shot decrypt always checks the signature
    /// first.
    ///
    /// **Warning:** regular frames of a signed message are then released as
    /// soon as their tag verifies, *before* the signature is checked at the
    /// end. The final frame is still held back until the signature verifies,
    /// so a read error at any point means the output must be discarded. Use
    /// it when the output goes somewhere you can roll back (a temporary file
    /// renamed on success, a transaction).
    pub fn allow_signed_streaming(mut self, allow: bool) -> Self {
        self.0.allow_signed_streaming = allow;
        self
    }

    /// Encryption context keys every message must have (default: none), as
    /// the ESDK's required encryption context CMM has them. On encrypt each
    /// must be in the context; its pair is authenticated (the keyrings and
    /// the header tag see it) but not stored in the header, so whoever
    /// decrypts must supply it again. On decrypt each must be in the
    /// reproduced context. A data-key cache keeps messages with different
    /// required keys apart.
    pub fn required_encryption_context_keys<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        let mut keys: Vec<String> = keys.into_iter().map(Into::into).collect();
        keys.sort();
        keys.dedup();
        self.0.required_context_keys = keys;
        self
    }

    /// Crypto backend (default aws-lc when compiled in).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.0.backend = backend;
        self
    }

    /// Checks the combination and returns the config.
    ///
    /// # Errors
    /// [`Error::Policy`] if the chosen suite is not allowed by the policy;
    /// [`Error::Config`] if `max_encrypted_data_keys` is 0 or a required
    /// context key uses the reserved `aws-crypto-` prefix.
    pub fn build(self) -> Result<Config> {
        let c = self.0;
        if let Some(suite) = c.suite {
            if !c.commitment_policy.allows_encrypt(suite) {
                return Err(PolicyError::CommitmentPolicy {
                    suite,
                    policy: c.commitment_policy.name(),
                }
                .into());
            }
        }
        if c.max_encrypted_data_keys == Some(0) {
            return Err(Error::config("max encrypted data keys", "must be at least 1"));
        }
        if let Some(k) = c
            .required_context_keys
            .iter()
            .find(|k| k.starts_with(crate::format::RESERVED_PREFIX))
        {
            return Err(Error::config(
                "required encryption context keys",
                format!(
                    "key {k:?} uses the reserved prefix \"{}\"",
                    crate::format::RESERVED_PREFIX
                ),
            ));
        }
        Ok(c)
    }
}
