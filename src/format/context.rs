//! Encryption context: string pairs bound to a message.
//!
//! Spec: `framework/structures.md` (encryption context serialization),
//! `data-format/message-header.md` (AAD). Empty context serializes to zero
//! bytes; otherwise a u16 count then (u16 key, u16 value) pairs sorted by
//! the raw UTF-8 bytes of the key.

use std::collections::BTreeMap;
use std::fmt;

use super::reader::{put_u16_prefixed, Reader};
use crate::error::FormatError;

/// Prefix of keys reserved for the ESDK itself.
pub const RESERVED_PREFIX: &str = "aws-crypto-";
/// Key under which signed messages carry the verification key.
pub const PUBLIC_KEY_FIELD: &str = "aws-crypto-public-key";

/// An encryption context: non-secret key/value pairs authenticated with the
/// message. Ordered by the UTF-8 bytes of the keys, as the format requires.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts a pair, returning the previous value for the key.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.0.insert(key.into(), value.into())
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Removes a pair.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Pairs in serialization order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Canonical serialization (zero bytes when empty).
    ///
    /// # Errors
    /// [`FormatError::Invalid`] if a key, a value or the whole serialization
    /// does not fit the format's u16 length fields.
    pub fn serialize(&self) -> Result<Vec<u8>, FormatError> {
        let mut out = Vec::new();
        self.serialize_into(&mut out)?;
        Ok(out)
    }

    /// Appends the canonical serialization to `out`.
    pub(crate) fn serialize_into(&self, out: &mut Vec<u8>) -> Result<(), FormatError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let count = u16::try_from(self.0.len()).map_err(|_| FormatError::Invalid {
            field: "encryption context",
            reason: "more than 65535 pairs",
        })?;
        let start = out.len();
        out.extend_from_slice(&count.to_be_bytes());
        for (k, v) in &self.0 {
            for s in [k, v] {
                if s.len() > usize::from(u16::MAX) {
                    return Err(FormatError::Invalid {
                        field: "encryption context",
                        reason: "key or value longer than 65535 bytes",
                    });
                }
                put_u16_prefixed(out, s.as_bytes());
            }
        }
        if out.len() - start > usize::from(u16::MAX) {
            return Err(FormatError::Invalid {
                field: "encryption context",
                reason: "serialized context longer than 65535 bytes",
            });
        }
        Ok(())
    }

    /// Parses a serialized context (the bytes inside the header's AAD
    /// field). Empty input is the empty context. Rejects a zero pair count,
    /// duplicate keys, invalid UTF-8 and trailing bytes.
    ///
    /// # Errors
    /// [`FormatError`] naming the problem.
    pub fn parse(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut map = BTreeMap::new();
        if bytes.is_empty() {
            return Ok(EncryptionContext(map));
        }
        let mut r = Reader::new(bytes);
        let count = r.u16("encryption context pair count")?;
        if count == 0 {
            return Err(FormatError::Invalid {
                field: "encryption context pair count",
                reason: "zero pairs in a non-empty context",
            });
        }
        for _ in 0..count {
            let k = utf8(
                r.u16_prefixed("encryption context key")?,
                "encryption context key",
            )?;
            let v = utf8(
                r.u16_prefixed("encryption context value")?,
                "encryption context value",
            )?;
            if map.insert(k, v).is_some() {
                return Err(FormatError::Invalid {
                    field: "encryption context key",
                    reason: "duplicate key",
                });
            }
        }
        r.expect_end("encryption context")?;
        Ok(EncryptionContext(map))
    }
}

pub(crate) fn utf8(bytes: &[u8], field: &'static str) -> Result<String, FormatError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| FormatError::Invalid {
        field,
        reason: "not UTF-8",
    })
}

impl fmt::Debug for EncryptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for EncryptionContext {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        EncryptionContext(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// `EncryptionContext::from([("tenant", "acme")])`.
impl<K: Into<String>, V: Into<String>, const N: usize> From<[(K, V); N]> for EncryptionContext {
    fn from(pairs: [(K, V); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a EncryptionContext {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_zero_bytes() {
        assert_eq!(EncryptionContext::new().serialize().unwrap(), Vec::<u8>::new());
        assert_eq!(EncryptionContext::parse(&[]).unwrap(), EncryptionContext::new());
    }

    #[test]
    fn sorted_by_utf8_bytes() {
        let ec: EncryptionContext = [("b", "2"), ("a", "1"), ("\u{e9}", "3"), ("Z", "4")]
            .into_iter()
            .collect();
        let bytes = ec.serialize().unwrap();
        assert_eq!(&bytes[..2], &[0, 4]);
        // "Z" (0x5A) < "a" < "b" < "é" (0xC3 0xA9)
        assert_eq!(&bytes[2..5], &[0, 1, b'Z']);
        assert_eq!(EncryptionContext::parse(&bytes).unwrap(), ec);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(EncryptionContext::parse(&[0, 0]).is_err());
        assert!(EncryptionContext::parse(&[0, 1, 0, 1, b'a']).is_err());
        // duplicate key
        let dup = [0, 2, 0, 1, b'a', 0, 0, 0, 1, b'a', 0, 0];
        assert!(EncryptionContext::parse(&dup).is_err());
        // invalid UTF-8
        assert!(EncryptionContext::parse(&[0, 1, 0, 1, 0xFF, 0, 0]).is_err());
        // trailing
        assert!(EncryptionContext::parse(&[0, 1, 0, 1, b'a', 0, 0, 9]).is_err());
    }

    #[test]
    fn too_large_is_an_error() {
        let mut ec = EncryptionContext::new();
        ec.insert("k", "v".repeat(70_000));
        assert!(ec.serialize().is_err());
    }
}
