//! Secret key newtypes. None of them implements a revealing `Debug`; all
//! zeroize on drop; the bytes are read only through `expose_secret`.

use std::fmt;

use zeroize::Zeroizing;

/// The plaintext data key a keyring generates or unwraps (16, 24 or 32
/// bytes, the suite's KDF input length).
#[derive(Clone)]
pub struct DataKey(Zeroizing<Vec<u8>>);

impl DataKey {
    /// Wraps key bytes; the caller's buffer is moved, not copied.
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        DataKey(bytes)
    }

    /// Copies key bytes out of a slice.
    pub fn from_slice(bytes: &[u8]) -> Self {
        DataKey(Zeroizing::new(bytes.to_vec()))
    }

    /// The key bytes. Handle with care: do not log or persist them.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Key length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key is empty (never true for a usable key).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("len", &self.0.len())
            .finish_non_exhaustive()
    }
}

/// A raw AES wrapping key (16, 24 or 32 bytes) for the raw AES keyring.
#[derive(Clone)]
pub struct WrappingKey(Zeroizing<Vec<u8>>);

impl WrappingKey {
    /// Takes ownership of the key bytes.
    ///
    /// # Errors
    /// [`crate::Error::Config`] unless the key is 16, 24 or 32 bytes long.
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> crate::Result<Self> {
        match bytes.len() {
            16 | 24 | 32 => Ok(WrappingKey(bytes)),
            n => Err(crate::Error::config(
                "wrapping key",
                format!("an AES wrapping key must be 16, 24 or 32 bytes, not {n}"),
            )),
        }
    }

    /// Copies the key from a slice.
    ///
    /// # Errors
    /// As [`WrappingKey::new`].
    pub fn from_slice(bytes: &[u8]) -> crate::Result<Self> {
        Self::new(Zeroizing::new(bytes.to_vec()))
    }

    /// The key bytes.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WrappingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappingKey")
            .field("bits", &(self.0.len() * 8))
            .finish_non_exhaustive()
    }
}
