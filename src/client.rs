//! The record API: one shared handle holding the keyring, the policy and
//! the data-key cache.

use std::fmt;
use std::io::Read;
use std::sync::Arc;

use zeroize::Zeroize;

use crate::cache::CacheStats;
use crate::config::Config;
use crate::error::Result;
use crate::format::EncryptionContext;
use crate::materials::{CacheLimits, CachingCmm, Keyring, MaterialsCache, Source};
#[cfg(feature = "tokio")]
use crate::message::header_getters;
use crate::message::{
    decrypt_source, decrypt_source_into, DecryptInfo, DecryptReader, Decrypted, Encryptor, Parsed,
};

/// Encrypts and decrypts records (and streams) with one keyring, one
/// [`Config`] and, optionally, a [`MaterialsCache`] of data keys.
///
/// Cheap to clone: clones share the keyring, the cache and its counters.
/// `Send + Sync`, so one client serves every task of a service.
///
/// ```
/// # async fn demo() -> envseal::Result<()> {
/// use std::time::Duration;
/// use envseal::{CacheLimits, Client, EncryptionContext, MaterialsCache, RawAesKeyring, WrappingKey};
///
/// let keyring = RawAesKeyring::new("my-app", "key-1", WrappingKey::from_slice(&[7u8; 32])?)?;
/// let client = Client::builder(keyring)
///     .cache(
///         MaterialsCache::new(1000)?,
///         CacheLimits::builder(Duration::from_secs(300)).max_messages(10_000).build()?,
///     )
///     .build()?;
/// let context: EncryptionContext = [("table", "customers")].into_iter().collect();
/// let message = client.encrypt(&context, b"a record").await?;
/// assert_eq!(*client.decrypt(&context, &message).await?.plaintext, b"a record");
/// # Ok(()) }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    keyring: Arc<dyn Keyring>,
    cmm: Option<CachingCmm>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .field("cache", &self.inner.cmm)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    config: Config,
    keyring: Arc<dyn Keyring>,
    cache: Option<(MaterialsCache, CacheLimits)>,
    partition: Option<String>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The policy, suite, frame length and limits (default: `Config::default()`).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Reuses data keys from `cache` under `limits`. Without it every
    /// message asks the keyring.
    pub fn cache(mut self, cache: MaterialsCache, limits: CacheLimits) -> Self {
        self.cache = Some((cache, limits));
        self
    }

    /// Names this client's partition of the cache: clients that share a
    /// cache and a partition name share data keys, so give the same name
    /// only to clients with the same keyring. Default: a random partition
    /// of this client's own.
    pub fn partition(mut self, name: impl Into<String>) -> Self {
        self.partition = Some(name.into());
        self
    }

    /// The client.
    ///
    /// # Errors
    /// [`crate::Error::Backend`] if the random source fails; in the FIPS
    /// build (feature `fips`), [`crate::Error::Fips`] when the crypto
    /// module is not in FIPS mode.
    pub fn build(self) -> Result<Client> {
        self.config.backend.require_fips_mode()?;
        let cmm = match self.cache {
            Some((cache, limits)) => Some(CachingCmm::new(
                Arc::clone(&self.keyring),
                cache,
                limits,
                self.partition.as_deref(),
                self.config.backend,
            )?),
            None => None,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                config: self.config,
                keyring: self.keyring,
                cmm,
            }),
        })
    }
}

impl Client {
    /// A client around `keyring` with the default [`Config`] and no cache.
    ///
    /// # Errors
    /// As [`ClientBuilder::build`].
    pub fn new(keyring: impl Keyring + 'static) -> Result<Self> {
        Self::builder(keyring).build()
    }

    /// A builder around `keyring`.
    pub fn builder(keyring: impl Keyring + 'static) -> ClientBuilder {
        Self::builder_shared(Arc::new(keyring))
    }

    /// A builder around a keyring shared with other code.
    pub fn builder_shared(keyring: Arc<dyn Keyring>) -> ClientBuilder {
        ClientBuilder {
            config: Config::default(),
            keyring,
            cache: None,
            partition: None,
        }
    }

    /// The client's config.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The cache's counters (`None` without a cache).
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.inner.cmm.as_ref().map(|c| c.cache().stats())
    }

    fn source(&self) -> Source<'_> {
        match &self.inner.cmm {
            Some(c) => Source::Cached(c),
            None => Source::Keyring(self.inner.keyring.as_ref()),
        }
    }

    /// Encrypts one record into one ESDK message.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for a reserved context key or a missing required
    /// one, [`Error::Policy`](crate::Error::Policy) for a suite the commitment policy forbids;
    /// keyring errors; [`Error::Limit`](crate::Error::Limit) when the keyrings produce more
    /// encrypted data keys than allowed or the plaintext is too large for
    /// one message.
    pub async fn encrypt(&self, context: &EncryptionContext, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.encrypt_into(context, plaintext, &mut out).await?;
        Ok(out)
    }

    /// Encrypts one record into `out` (its contents are replaced), reusing
    /// `out`'s allocation: a loop over records allocates no output buffers.
    ///
    /// # Errors
    /// As [`Client::encrypt`]; on error `out` is zeroized and left empty.
    pub async fn encrypt_into(
        &self,
        context: &EncryptionContext,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let config = &self.inner.config;
        let encryptor =
            Encryptor::from_source(config, self.source(), context, Some(plaintext.len() as u64)).await;
        let result = encryptor.and_then(|e| e.seal_into(plaintext, out));
        if result.is_err() {
            // The caller's buffer may hold plaintext of frames not sealed.
            out.zeroize();
        }
        result
    }

    /// Decrypts one whole ESDK message. Nothing is returned unless every
    /// check, including the signature of signed suites, passed.
    ///
    /// `context` is the reproduced encryption context: every pair must be
    /// in the message (stored in the header, or authenticated as a required
    /// pair).
    ///
    /// # Errors
    /// [`Error::Format`](crate::Error::Format), [`Error::Limit`](crate::Error::Limit), [`Error::Policy`](crate::Error::Policy) for the header
    /// (trailing bytes after the message are
    /// [`FormatError::TrailingData`](crate::FormatError::TrailingData));
    /// [`Error::Policy`](crate::Error::Policy) when `context` does not match
    /// the message or misses a required key;
    /// [`Error::NoMatchingKey`](crate::Error::NoMatchingKey) when no keyring could unwrap a data key;
    /// [`Error::Aws`](crate::Error::Aws) and other keyring errors;
    /// [`Error::Decrypt`](crate::Error::Decrypt) when a cryptographic check fails.
    pub async fn decrypt(&self, context: &EncryptionContext, message: &[u8]) -> Result<Decrypted> {
        decrypt_source(&self.inner.config, self.source(), context, message).await
    }

    /// Decrypts one message into `out` (its contents are replaced), reusing
    /// its allocation when large enough: a loop over large messages saves
    /// the page faults of a fresh buffer each time. On error `out` is
    /// zeroized and left empty.
    ///
    /// # Errors
    /// As [`Client::decrypt`].
    pub async fn decrypt_into(
        &self,
        context: &EncryptionContext,
        message: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<DecryptInfo> {
        decrypt_source_into(&self.inner.config, self.source(), context, message, out).await
    }

    /// Starts a streaming encryption into `output`, an [`AsyncWrite`](tokio::io::AsyncWrite)
    /// (feature `tokio`): the header goes out with the first bytes written.
    /// You **must** call [`shutdown`](tokio::io::AsyncWriteExt::shutdown)
    /// when done: it writes the final frame and the footer.
    ///
    /// The plaintext length is not declared, so the keyring is asked (the
    /// data-key cache is bypassed). To declare it, as a bound the writer
    /// enforces and so that the data key may come from the cache, use
    /// [`Client::encryptor`] with `Some(len)`, then
    /// [`Encryptor::into_async_writer`].
    ///
    /// # Errors
    /// As [`Client::encryptor`].
    #[cfg(feature = "tokio")]
    pub async fn encrypt_stream<W: tokio::io::AsyncWrite + Unpin>(
        &self,
        context: &EncryptionContext,
        output: W,
    ) -> Result<crate::AsyncEncryptWriter<W>> {
        Ok(self.encryptor(context, None).await?.into_async_writer(output))
    }

    /// Starts a streaming decryption of `input`, an [`AsyncRead`](tokio::io::AsyncRead)
    /// (feature `tokio`): [`Client::decryptor`] then
    /// [`Decryptor::decrypt`](crate::Decryptor::decrypt). Reads and parses
    /// the header, gets the data key (through the cache, if any) and
    /// verifies the header; the reader then releases each batch of frames
    /// once its tags verify. Signed messages need
    /// [`ConfigBuilder::allow_signed_streaming`](crate::ConfigBuilder::allow_signed_streaming).
    ///
    /// # Errors
    /// As [`Client::decryptor`] and [`Decryptor::decrypt`](crate::Decryptor::decrypt).
    #[cfg(feature = "tokio")]
    pub async fn decrypt_stream<R: tokio::io::AsyncRead + Unpin>(
        &self,
        context: &EncryptionContext,
        input: R,
    ) -> Result<crate::AsyncDecryptReader<R>> {
        self.decryptor(input).await?.decrypt(context).await
    }

    /// The first half of a streaming encryption, for a caller that wants to
    /// look at the header (its message id, data keys, stored context:
    /// [`Encryptor::header`]) before anything is written, or to declare the
    /// plaintext length: materials from the keyring or the cache, under
    /// this client's config. Then `Encryptor::into_async_writer` (feature `tokio`; or
    /// [`Encryptor::into_writer`]).
    ///
    /// With `plaintext_len` known (and within the cache's byte limit) the
    /// data key may come from the cache; with `None` the keyring is asked.
    /// `plaintext_len` is a bound the writer enforces: the write that would
    /// take the plaintext past it fails with
    /// [`LimitError::PlaintextLengthBound`](crate::LimitError::PlaintextLengthBound)
    /// and the writer is poisoned (no further output, `finish` fails), so a
    /// cached data key never encrypts more than its byte limit. Writing less
    /// is fine.
    ///
    /// # Errors
    /// [`Error::Config`](crate::Error::Config) for a reserved context key or a missing required
    /// one, [`Error::Policy`](crate::Error::Policy) for a suite the commitment policy forbids;
    /// keyring errors; [`Error::Limit`](crate::Error::Limit) when the keyrings produce more
    /// encrypted data keys than allowed.
    pub async fn encryptor(
        &self,
        context: &EncryptionContext,
        plaintext_len: Option<u64>,
    ) -> Result<Encryptor> {
        Encryptor::from_source(&self.inner.config, self.source(), context, plaintext_len).await
    }

    /// [`Client::encryptor`] under `config` (a variant of this client's)
    /// rather than the client's own.
    pub(crate) async fn encryptor_with(
        &self,
        config: &Config,
        context: &EncryptionContext,
        plaintext_len: Option<u64>,
    ) -> Result<Encryptor> {
        Encryptor::from_source(config, self.source(), context, plaintext_len).await
    }

    /// The first half of a streaming decryption (feature `tokio`): reads and
    /// parses the header of `input` under this client's config (limits and
    /// commitment policy enforced), without calling any keyring, so the
    /// caller can look at the suite, the stored context and the encrypted
    /// data keys first. Then [`Decryptor::decrypt`](crate::Decryptor::decrypt)
    /// with this client's keyring and cache.
    ///
    /// # Errors
    /// [`Error::Format`](crate::Error::Format), [`Error::Limit`](crate::Error::Limit), [`Error::Policy`](crate::Error::Policy), [`Error::Io`](crate::Error::Io).
    #[cfg(feature = "tokio")]
    pub async fn decryptor<R: tokio::io::AsyncRead + Unpin>(&self, input: R) -> Result<Decryptor<R>> {
        Decryptor::new(input, self).await
    }

    /// The second half of a streaming decryption: the data key from this
    /// client's keyring or cache, the header verified.
    pub(crate) async fn open_parsed<R: Read>(
        &self,
        parsed: Parsed<R>,
        context: &EncryptionContext,
    ) -> Result<DecryptReader<R>> {
        parsed.decrypt_source(self.source(), context).await
    }
}

/// A message whose header is read and parsed from an [`AsyncRead`](tokio::io::AsyncRead), before
/// any keyring is asked: from [`Client::decryptor`](crate::Client::decryptor)
/// (feature `tokio`). Look at the suite, the stored context and the
/// encrypted data keys (nothing is authenticated yet), then
/// [`Decryptor::decrypt`] with the client's keyring and cache. The blocking
/// twin is [`blocking::Decryptor`](crate::blocking::Decryptor).
#[cfg(feature = "tokio")]
pub struct Decryptor<R> {
    parsed: Parsed<crate::message::Feed>,
    input: R,
    client: Client,
}

#[cfg(feature = "tokio")]
impl<R> fmt::Debug for Decryptor<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.parsed.fmt(f)
    }
}

#[cfg(feature = "tokio")]
impl<R: tokio::io::AsyncRead + Unpin> Decryptor<R> {
    /// Reads and parses the header from `input` under `client`'s config.
    async fn new(mut input: R, client: &Client) -> Result<Self> {
        let parsed = crate::message::read_header(&mut input, client.config()).await?;
        Ok(Decryptor {
            parsed,
            input,
            client: client.clone(),
        })
    }

    header_getters!(parsed);

    /// Gets the data key from the keyring (or cache) of the client that
    /// made this decryptor and verifies the key commitment and the header;
    /// the reader then releases each batch of frames once its tags verify.
    /// `context` is the reproduced encryption context: pairs the header
    /// stores must match, and pairs it does not store are authenticated
    /// through the header tag (the ESDK's reproduced context).
    ///
    /// # Errors
    /// [`Error::NoMatchingKey`](crate::Error::NoMatchingKey) when no keyring could unwrap a data key;
    /// [`Error::Decrypt`](crate::Error::Decrypt) when a cryptographic check fails;
    /// [`Error::Policy`](crate::Error::Policy) for a context mismatch or a signed message without
    /// [`ConfigBuilder::allow_signed_streaming`](crate::ConfigBuilder::allow_signed_streaming).
    pub async fn decrypt(self, context: &EncryptionContext) -> Result<crate::AsyncDecryptReader<R>> {
        let Decryptor {
            parsed,
            input,
            client,
        } = self;
        let core = client.open_parsed(parsed, context).await?;
        Ok(crate::AsyncDecryptReader::new(core, input))
    }
}
