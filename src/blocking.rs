//! Blocking facade for callers without an async runtime.
//!
//! Keyrings are async (KMS is). [`Blocking`] owns (or borrows) a tokio
//! runtime and drives the async calls on it. Do not call it from inside an
//! async task: use the async API there.

use std::io::Read;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::format::EncryptionContext;
use crate::materials::Keyring;
use crate::message::{self, DecryptReader, Decrypted, Decryptor, Encryptor};

/// Runs envseal's async operations to completion on a runtime.
#[derive(Debug)]
pub struct Blocking {
    runtime: Runtime,
}

#[derive(Debug)]
enum Runtime {
    Owned(tokio::runtime::Runtime),
    Handle(tokio::runtime::Handle),
}

impl Blocking {
    /// A facade with its own single-threaded runtime.
    ///
    /// # Errors
    /// [`Error::Io`] if the runtime cannot be created.
    pub fn new() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Io)?;
        Ok(Blocking {
            runtime: Runtime::Owned(rt),
        })
    }

    /// A facade over a runtime the caller owns.
    pub fn with_handle(handle: tokio::runtime::Handle) -> Self {
        Blocking {
            runtime: Runtime::Handle(handle),
        }
    }

    /// Runs a future to completion.
    ///
    /// # Panics
    /// When called from inside an async runtime (tokio forbids nesting).
    /// The other methods check for that and return [`Error::Misuse`].
    pub fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        match &self.runtime {
            Runtime::Owned(rt) => rt.block_on(fut),
            Runtime::Handle(h) => h.block_on(fut),
        }
    }

    /// Runs a fallible future, refusing (instead of panicking) inside an
    /// async runtime.
    fn run<T, F: std::future::Future<Output = Result<T>>>(&self, fut: F) -> Result<T> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::Misuse(
                "the blocking facade cannot run inside an async runtime; use the async API".into(),
            ));
        }
        self.block_on(fut)
    }

    /// Blocking [`crate::encrypt`].
    ///
    /// # Errors
    /// As [`crate::encrypt`].
    pub fn encrypt(
        &self,
        config: &Config,
        keyring: &dyn Keyring,
        context: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        self.run(message::encrypt(config, keyring, context, plaintext))
    }

    /// Blocking [`crate::decrypt`].
    ///
    /// # Errors
    /// As [`crate::decrypt`].
    pub fn decrypt(
        &self,
        config: &Config,
        keyring: &dyn Keyring,
        context: &EncryptionContext,
        message: &[u8],
    ) -> Result<Decrypted> {
        self.run(message::decrypt(config, keyring, context, message))
    }

    /// Blocking [`Encryptor::new`].
    ///
    /// # Errors
    /// As [`Encryptor::new`].
    pub fn encryptor(
        &self,
        config: &Config,
        keyring: &dyn Keyring,
        context: &EncryptionContext,
    ) -> Result<Encryptor> {
        self.run(Encryptor::new(config, keyring, context))
    }

    /// Blocking [`Decryptor::decrypt`].
    ///
    /// # Errors
    /// As [`Decryptor::decrypt`].
    pub fn decrypt_stream<R: Read>(
        &self,
        decryptor: Decryptor<R>,
        keyring: &dyn Keyring,
        context: &EncryptionContext,
    ) -> Result<DecryptReader<R>> {
        self.run(decryptor.decrypt(keyring, context))
    }
}
