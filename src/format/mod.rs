//! The ESDK message codec: bytes to structs and back.
//!
//! Pure byte handling: no keys, no I/O, no cryptography. Parsing is total:
//! any input gives a value or a typed error naming the field, and every
//! length is checked against the bytes present and the configured limits
//! before anything is allocated for it.

pub(crate) mod body;
mod context;
pub(crate) mod frame;
pub(crate) mod header;
pub(crate) mod reader;

pub use context::{EncryptionContext, PUBLIC_KEY_FIELD, RESERVED_PREFIX};
pub use header::{ContentType, EncryptedDataKey};
