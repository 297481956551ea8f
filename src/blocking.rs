//! The [`Client`](crate::Client) for callers without an async runtime.
//!
//! [`Client`] wraps an async [`crate::Client`] with a single-threaded tokio
//! runtime of its own, like reqwest's `blocking::Client`: the same methods
//! over std I/O (`Read`/`Write` where the async client takes tokio's), the
//! same config and data-key cache. Do not call it from inside an async
//! task; use the async client there.

use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;

use zeroize::Zeroize;

use crate::cache::CacheStats;
use crate::client::ClientBuilder as AsyncBuilder;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::format::EncryptionContext;
use crate::materials::{CacheLimits, Keyring, MaterialsCache};
use crate::message::{
    header_getters, DecryptInfo, DecryptReader, Decrypted, EncryptWriter, Encryptor, Parsed,
};

/// Encrypts and decrypts records and streams without an async runtime of
/// your own. Cheap to clone: clones share the keyring, the cache and the
/// runtime (threads calling one client take turns driving it).
///
/// Inside a tokio runtime (a task, a `spawn_blocking` closure, under
/// `Handle::enter`) every method that runs the keyring (all but
/// `decryptor`, which only parses; its `decrypt` does) returns
/// [`Error::Misuse`]: use the async
/// client there, [`Client::as_async`] (from `spawn_blocking`:
/// `handle.block_on(client.as_async().encrypt(..))`).
///
/// ```
/// use envseal::{blocking, EncryptionContext, RawAesKeyring, WrappingKey};
///
/// let keyring = RawAesKeyring::new("my-app", "key-1", WrappingKey::from_slice(&[7u8; 32])?)?;
/// let client = blocking::Client::new(keyring)?;
/// let context = EncryptionContext::from([("tenant", "acme")]);
/// let message = client.encrypt(&context, b"hello")?;
/// assert_eq!(&client.decrypt(&context, &message)?.plaintext[..], b"hello");
/// # Ok::<(), envseal::Error>(())
/// ```
#[derive(Clone)]
pub struct Client {
    inner: crate::Client,
    runtime: Arc<OwnedRuntime>,
}

/// The client's runtime; shut down without blocking when the last clone
/// drops, so dropping a client inside an async context does not panic.
struct OwnedRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::Client")
            .field("client", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Builds a [`blocking::Client`](Client): the async builder's settings, then
/// a runtime.
pub struct ClientBuilder {
    inner: AsyncBuilder,
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("blocking::ClientBuilder")
            .field("client", &self.inner)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// As [`crate::ClientBuilder::config`].
    pub fn config(mut self, config: Config) -> Self {
        self.inner = self.inner.config(config);
        self
    }

    /// As [`crate::ClientBuilder::cache`].
    pub fn cache(mut self, cache: MaterialsCache, limits: CacheLimits) -> Self {
        self.inner = self.inner.cache(cache, limits);
        self
    }

    /// As [`crate::ClientBuilder::partition`].
    pub fn partition(mut self, name: impl Into<String>) -> Self {
        self.inner = self.inner.partition(name);
        self
    }

    /// Drives the client on `runtime` instead of a current-thread runtime
    /// of its own (default). For a caller that made its keyrings on a
    /// runtime it owns (a KMS ECDH keyring asks KMS for its public key when
    /// made): the client's calls then run where the KMS client's pooled
    /// connections are driven. The client shuts it down, without blocking,
    /// when its last clone drops.
    pub fn runtime(mut self, runtime: tokio::runtime::Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// The client.
    ///
    /// # Errors
    /// As [`crate::ClientBuilder::build`]; [`Error::Io`] if the runtime
    /// cannot be created.
    pub fn build(self) -> Result<Client> {
        let inner = self.inner.build()?;
        let runtime = match self.runtime {
            Some(runtime) => runtime,
            None => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(Error::Io)?,
        };
        Ok(Client {
            inner,
            runtime: Arc::new(OwnedRuntime(Some(runtime))),
        })
    }
}

impl Client {
    /// A client around `keyring` with the default [`Config`] and no cache.
    ///
    /// # Errors
    /// [`Error::Io`] if the runtime cannot be created.
    pub fn new(keyring: impl Keyring + 'static) -> Result<Self> {
        Self::builder(keyring).build()
    }

    /// A builder around `keyring`.
    pub fn builder(keyring: impl Keyring + 'static) -> ClientBuilder {
        Self::wrap(crate::Client::builder(keyring))
    }

    /// A builder around a keyring shared with other code.
    pub fn builder_shared(keyring: Arc<dyn Keyring>) -> ClientBuilder {
        Self::wrap(crate::Client::builder_shared(keyring))
    }

    fn wrap(inner: AsyncBuilder) -> ClientBuilder {
        ClientBuilder { inner, runtime: None }
    }

    /// The async client this one drives.
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }

    /// The client's config.
    pub fn config(&self) -> &Config {
        self.inner.config()
    }

    /// The cache's counters (`None` without a cache).
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.inner.cache_stats()
    }

    /// Runs a future to completion, refusing (instead of panicking) inside
    /// an async runtime.
    fn run<T>(&self, fut: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::Misuse(
                "the blocking client cannot run inside an async runtime; use the async client".into(),
            ));
        }
        match &self.runtime.0 {
            // No refresh ahead from a call: see `cache::without_refresh`.
            Some(rt) => crate::cache::without_refresh(|| rt.block_on(fut)),
            None => Err(Error::Internal("the blocking client's runtime is gone")),
        }
    }

    /// As [`crate::Client::encrypt`].
    ///
    /// # Errors
    /// As [`crate::Client::encrypt`]; [`Error::Misuse`] inside an async runtime.
    pub fn encrypt(&self, context: &EncryptionContext, plaintext: &[u8]) -> Result<Vec<u8>> {
        self.run(self.inner.encrypt(context, plaintext))
    }

    /// As [`crate::Client::encrypt_into`].
    ///
    /// # Errors
    /// As [`crate::Client::encrypt_into`] (`out` zeroized and left empty);
    /// [`Error::Misuse`] inside an async runtime.
    pub fn encrypt_into(
        &self,
        context: &EncryptionContext,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let result = self.run(self.inner.encrypt_into(context, plaintext, out));
        if result.is_err() {
            out.zeroize();
        }
        result
    }

    /// As [`crate::Client::decrypt`].
    ///
    /// # Errors
    /// As [`crate::Client::decrypt`]; [`Error::Misuse`] inside an async runtime.
    pub fn decrypt(&self, context: &EncryptionContext, message: &[u8]) -> Result<Decrypted> {
        self.run(self.inner.decrypt(context, message))
    }

    /// As [`crate::Client::decrypt_into`].
    ///
    /// # Errors
    /// As [`crate::Client::decrypt_into`] (`out` zeroized and left empty);
    /// [`Error::Misuse`] inside an async runtime.
    pub fn decrypt_into(
        &self,
        context: &EncryptionContext,
        message: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<DecryptInfo> {
        let result = self.run(self.inner.decrypt_into(context, message, out));
        if result.is_err() {
            out.zeroize();
        }
        result
    }

    /// Starts a streaming encryption into `output`: the header is written
    /// at once. You **must** call [`EncryptWriter::finish`].
    ///
    /// The plaintext length is not declared, so the keyring is asked (the
    /// data-key cache is bypassed). To declare it, as a bound the writer
    /// enforces and so that the data key may come from the cache, use
    /// [`Client::encryptor`] with `Some(len)`, then [`Encryptor::into_writer`].
    ///
    /// # Errors
    /// As [`Client::encryptor`]; [`Error::Io`] writing the header.
    pub fn encrypt_stream<W: Write>(
        &self,
        context: &EncryptionContext,
        output: W,
    ) -> Result<EncryptWriter<W>> {
        self.encryptor(context, None)?
            .into_writer(output)
            .map_err(Error::from_io)
    }

    /// Starts a streaming decryption of `input`: [`Client::decryptor`] then
    /// [`Decryptor::decrypt`]. Signed messages need
    /// [`ConfigBuilder::allow_signed_streaming`](crate::ConfigBuilder::allow_signed_streaming).
    ///
    /// # Errors
    /// As [`Client::decryptor`] and [`Decryptor::decrypt`].
    pub fn decrypt_stream<R: Read>(&self, context: &EncryptionContext, input: R) -> Result<DecryptReader<R>> {
        self.decryptor(input)?.decrypt(context)
    }

    /// As [`crate::Client::encryptor`]: the materials and the header, then
    /// [`Encryptor::into_writer`].
    ///
    /// # Errors
    /// As [`crate::Client::encryptor`].
    pub fn encryptor(&self, context: &EncryptionContext, plaintext_len: Option<u64>) -> Result<Encryptor> {
        self.run(self.inner.encryptor(context, plaintext_len))
    }

    /// [`Client::encryptor`] under `config`, a variant of this client's
    /// (one message's suite, frame length and required keys).
    pub(crate) fn encryptor_with(
        &self,
        config: &Config,
        context: &EncryptionContext,
        plaintext_len: Option<u64>,
    ) -> Result<Encryptor> {
        self.run(self.inner.encryptor_with(config, context, plaintext_len))
    }

    /// As [`crate::Client::decryptor`], over std I/O: reads and parses the
    /// header of `input` under this client's config (limits and commitment
    /// policy enforced), without calling any keyring; then
    /// [`Decryptor::decrypt`] with this client's keyring and cache.
    ///
    /// # Errors
    /// [`Error::Format`], [`Error::Limit`], [`Error::Policy`], [`Error::Io`].
    pub fn decryptor<R: Read>(&self, input: R) -> Result<Decryptor<R>> {
        Ok(Decryptor {
            parsed: Parsed::new(input, self.config())?,
            client: self.clone(),
        })
    }
}

/// A message whose header is read and parsed, before any keyring is asked:
/// from [`Client::decryptor`]. Look at the suite, the stored context and the
/// encrypted data keys (nothing is authenticated yet), then
/// [`Decryptor::decrypt`] with the client's keyring and cache. The async
/// twin is [`crate::Decryptor`].
pub struct Decryptor<R> {
    parsed: Parsed<R>,
    client: Client,
}

impl<R> fmt::Debug for Decryptor<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.parsed.fmt(f)
    }
}

impl<R: Read> Decryptor<R> {
    header_getters!(parsed);

    /// Gets the data key from the keyring (or cache) of the client that
    /// made this decryptor and verifies the key commitment and the header;
    /// the reader then releases each frame once its tag verifies.
    /// `context` is the reproduced encryption context: pairs the header
    /// stores must match, and pairs it does not store are authenticated
    /// through the header tag (the ESDK's reproduced context).
    ///
    /// # Errors
    /// [`Error::NoMatchingKey`] when no keyring could unwrap a data key;
    /// [`Error::Decrypt`] when a cryptographic check fails;
    /// [`Error::Policy`] for a context mismatch or a signed message without
    /// [`ConfigBuilder::allow_signed_streaming`](crate::ConfigBuilder::allow_signed_streaming);
    /// [`Error::Misuse`] inside an async runtime.
    pub fn decrypt(self, context: &EncryptionContext) -> Result<DecryptReader<R>> {
        let Decryptor { parsed, client } = self;
        client.run(client.inner.open_parsed(parsed, context))
    }
}
