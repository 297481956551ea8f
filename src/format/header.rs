//! Message header: header body plus header authentication.
//!
//! Spec: `data-format/message-header.md`. v1 (suites 00xx-03xx):
//! version 01, type 80, suite, 16-byte message ID, AAD, EDKs, content type,
//! 4 reserved zero bytes, IV length 12, frame length; authentication = IV
//! (12) + tag (16). v2 (0478, 0578): version 02, suite, 32-byte message ID,
//! AAD, EDKs, content type, frame length, 32-byte suite data; authentication
//! = tag (16) with an implicit all-zero IV.

use super::context::{utf8, EncryptionContext};
use super::reader::{put_u16_prefixed, Reader};
use crate::error::{Error, FormatError, LimitError};
use crate::suite::{AlgorithmSuite, MessageVersion};

const V1_TYPE_CUSTOMER_AED: u8 = 0x80;
const IV_LEN: usize = AlgorithmSuite::IV_LEN;
const TAG_LEN: usize = AlgorithmSuite::TAG_LEN;

/// An encrypted data key as it appears in the header.
#[derive(Clone, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_structs)] // the format fixes these three fields
pub struct EncryptedDataKey {
    /// Key provider ID (a raw keyring's namespace, or `aws-kms`).
    pub provider_id: String,
    /// Key provider info (raw keyrings: key name and more; KMS: key ARN).
    pub provider_info: Vec<u8>,
    /// The wrapped data key.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for EncryptedDataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedDataKey")
            .field("provider_id", &self.provider_id)
            .field("provider_info", &String::from_utf8_lossy(&self.provider_info))
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// Framed or non-framed body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // the format defines exactly two
pub enum ContentType {
    /// One AES-GCM block for the whole plaintext (legacy).
    NonFramed,
    /// Sequence of frames.
    Framed,
}

impl ContentType {
    fn byte(self) -> u8 {
        match self {
            ContentType::NonFramed => 1,
            ContentType::Framed => 2,
        }
    }
}

/// Limits applied while parsing a header, before any allocation they guard.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeaderLimits {
    pub max_edks: Option<usize>,
    pub max_header_size: usize,
    pub max_frame_length: u32,
}

/// The header fields (without authentication).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HeaderBody {
    pub suite: AlgorithmSuite,
    pub message_id: Vec<u8>,
    /// The stored encryption context.
    pub context: EncryptionContext,
    pub edks: Vec<EncryptedDataKey>,
    pub content_type: ContentType,
    pub frame_length: u32,
    /// v2 only: the key commitment.
    pub suite_data: Option<[u8; 32]>,
}

/// Header authentication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HeaderAuth {
    /// v1: the serialized IV; v2: all zeros.
    pub iv: [u8; IV_LEN],
    pub tag: [u8; TAG_LEN],
}

/// A parsed header with the exact bytes that were authenticated.
#[derive(Clone, Debug)]
pub(crate) struct ParsedHeader {
    pub body: HeaderBody,
    /// Raw header body bytes (AAD for the header tag).
    pub body_bytes: Vec<u8>,
    pub auth: HeaderAuth,
    /// Total length: header body + authentication.
    pub len: usize,
}

impl HeaderBody {
    /// Serializes the header body (what the header tag authenticates).
    ///
    /// # Errors
    /// A field too long for the format.
    #[cfg(test)]
    pub(crate) fn serialize(&self) -> Result<Vec<u8>, Error> {
        let section = materials_section(&self.context, &self.edks)?;
        serialize_header_body(
            self.suite,
            &self.message_id,
            &section,
            self.content_type,
            self.frame_length,
            self.suite_data.as_ref(),
        )
    }
}

/// The part of a header body the encryption materials fix: the encryption
/// context (u16 length prefix) and the encrypted data keys (count, then
/// each key). Cached with the materials, it is copied into each header.
pub(crate) fn materials_section(
    context: &EncryptionContext,
    edks: &[EncryptedDataKey],
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(256);
    let ec = context.serialize()?;
    put_u16_prefixed(&mut out, &ec);
    let count = u16::try_from(edks.len())
        .ok()
        .filter(|&c| c > 0)
        .ok_or_else(|| Error::config("keyrings", "a message holds 1 to 65535 encrypted data keys"))?;
    out.extend_from_slice(&count.to_be_bytes());
    for edk in edks {
        for field in [edk.provider_id.as_bytes(), &edk.provider_info, &edk.ciphertext] {
            if field.len() > usize::from(u16::MAX) {
                return Err(Error::config(
                    "encrypted data key",
                    "a field is longer than 65535 bytes",
                ));
            }
            put_u16_prefixed(&mut out, field);
        }
    }
    Ok(out)
}

/// Serializes a header body around a [`materials_section`].
pub(crate) fn serialize_header_body(
    suite: AlgorithmSuite,
    message_id: &[u8],
    materials_section: &[u8],
    content_type: ContentType,
    frame_length: u32,
    suite_data: Option<&[u8; 32]>,
) -> Result<Vec<u8>, Error> {
    let version = suite.message_version();
    if message_id.len() != suite.message_id_len() {
        return Err(Error::Internal("message id length does not match the suite"));
    }
    // Room for the header tag too (and the v1 IV), appended by the caller.
    let mut out = Vec::with_capacity(4 + message_id.len() + materials_section.len() + 10 + 32 + 28);
    match version {
        MessageVersion::V1 => {
            out.extend_from_slice(&[0x01, V1_TYPE_CUSTOMER_AED]);
        }
        MessageVersion::V2 => out.push(0x02),
    }
    out.extend_from_slice(&suite.id().to_be_bytes());
    out.extend_from_slice(message_id);
    out.extend_from_slice(materials_section);
    out.push(content_type.byte());
    match version {
        MessageVersion::V1 => {
            out.extend_from_slice(&[0, 0, 0, 0]);
            out.push(IV_LEN as u8);
            out.extend_from_slice(&frame_length.to_be_bytes());
        }
        MessageVersion::V2 => {
            out.extend_from_slice(&frame_length.to_be_bytes());
            let data = suite_data.ok_or_else(|| Error::Internal("v2 header needs suite data"))?;
            out.extend_from_slice(data);
        }
    }
    Ok(out)
}

impl HeaderAuth {
    /// Serializes the authentication section for `version`.
    pub(crate) fn serialize(&self, version: MessageVersion, out: &mut Vec<u8>) {
        if version == MessageVersion::V1 {
            out.extend_from_slice(&self.iv);
        }
        out.extend_from_slice(&self.tag);
    }
}

fn invalid(field: &'static str, reason: &'static str) -> Error {
    FormatError::Invalid { field, reason }.into()
}

/// Parses a header from the start of `input`.
///
/// Returns [`FormatError::Truncated`] when `input` ends inside the header;
/// a streaming caller reads more and tries again (up to the header size
/// limit). Every count and length is checked against the bytes present
/// and the limits before anything is allocated for it.
pub(crate) fn parse_header(input: &[u8], limits: &HeaderLimits) -> Result<ParsedHeader, Error> {
    match parse_inner(input, limits) {
        Err(Error::Format(FormatError::Truncated(_))) if input.len() >= limits.max_header_size => {
            Err(LimitError::HeaderTooLarge {
                max: limits.max_header_size,
            }
            .into())
        }
        Ok(h) if h.len > limits.max_header_size => Err(LimitError::HeaderTooLarge {
            max: limits.max_header_size,
        }
        .into()),
        other => other,
    }
}

fn parse_inner(input: &[u8], limits: &HeaderLimits) -> Result<ParsedHeader, Error> {
    let mut r = Reader::new(input);
    let version = match r.u8("version")? {
        0x01 => MessageVersion::V1,
        0x02 => MessageVersion::V2,
        v => return Err(FormatError::UnsupportedVersion(v).into()),
    };
    if version == MessageVersion::V1 && r.u8("type")? != V1_TYPE_CUSTOMER_AED {
        return Err(invalid("type", "must be 0x80"));
    }
    let suite_id = r.u16("algorithm suite id")?;
    let suite = AlgorithmSuite::from_id(suite_id).ok_or(FormatError::UnknownSuite(suite_id))?;
    if suite.message_version() != version {
        return Err(invalid(
            "algorithm suite id",
            "suite does not belong to this message version",
        ));
    }
    let message_id = r.take(suite.message_id_len(), "message id")?.to_vec();
    let ec_bytes = r.u16_prefixed("encryption context")?;
    let context = EncryptionContext::parse(ec_bytes)?;

    let edk_count = usize::from(r.u16("encrypted data key count")?);
    if edk_count == 0 {
        return Err(invalid("encrypted data key count", "must be at least 1"));
    }
    if let Some(max) = limits.max_edks {
        if edk_count > max {
            return Err(LimitError::TooManyEncryptedDataKeys {
                found: edk_count,
                max,
            }
            .into());
        }
    }
    let mut edks = Vec::new();
    for _ in 0..edk_count {
        let provider_id = utf8(r.u16_prefixed("key provider id")?, "key provider id")?;
        let provider_info = r.u16_prefixed("key provider info")?.to_vec();
        let ciphertext = r.u16_prefixed("encrypted data key")?.to_vec();
        edks.push(EncryptedDataKey {
            provider_id,
            provider_info,
            ciphertext,
        });
    }
    let content_type = match r.u8("content type")? {
        1 => ContentType::NonFramed,
        2 => ContentType::Framed,
        _ => return Err(invalid("content type", "must be 1 (non-framed) or 2 (framed)")),
    };
    let (frame_length, suite_data) = match version {
        MessageVersion::V1 => {
            if r.array::<4>("reserved")? != [0, 0, 0, 0] {
                return Err(invalid("reserved", "must be zero"));
            }
            if usize::from(r.u8("IV length")?) != IV_LEN {
                return Err(invalid("IV length", "must be 12"));
            }
            (r.u32("frame length")?, None)
        }
        MessageVersion::V2 => {
            let frame_length = r.u32("frame length")?;
            (frame_length, Some(r.array::<32>("algorithm suite data")?))
        }
    };
    match content_type {
        ContentType::NonFramed if frame_length != 0 => {
            return Err(invalid("frame length", "must be 0 for a non-framed body"));
        }
        ContentType::Framed if frame_length == 0 => {
            return Err(invalid("frame length", "must be positive for a framed body"));
        }
        _ => {}
    }
    if frame_length > limits.max_frame_length {
        return Err(LimitError::FrameTooLarge {
            found: u64::from(frame_length),
            max: u64::from(limits.max_frame_length),
        }
        .into());
    }
    let body_len = r.position();
    let iv = match version {
        MessageVersion::V1 => r.array::<IV_LEN>("header IV")?,
        MessageVersion::V2 => [0u8; IV_LEN],
    };
    let tag = r.array::<TAG_LEN>("header authentication tag")?;
    Ok(ParsedHeader {
        body: HeaderBody {
            suite,
            message_id,
            context,
            edks,
            content_type,
            frame_length,
            suite_data,
        },
        body_bytes: input[..body_len].to_vec(),
        auth: HeaderAuth { iv, tag },
        len: r.position(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HeaderLimits {
        HeaderLimits {
            max_edks: None,
            max_header_size: 1 << 20,
            max_frame_length: u32::MAX,
        }
    }

    fn sample(suite: AlgorithmSuite) -> HeaderBody {
        HeaderBody {
            suite,
            message_id: vec![7; suite.message_id_len()],
            context: [("a", "b"), ("ключ", "значение")].into_iter().collect(),
            edks: vec![EncryptedDataKey {
                provider_id: "ns".into(),
                provider_info: b"name".to_vec(),
                ciphertext: vec![1, 2, 3],
            }],
            content_type: ContentType::Framed,
            frame_length: 4096,
            suite_data: suite.is_committing().then_some([9; 32]),
        }
    }

    #[test]
    fn round_trip_every_suite() {
        for suite in AlgorithmSuite::ALL {
            let body = sample(suite);
            let mut bytes = body.serialize().unwrap();
            let auth = HeaderAuth {
                iv: [0; 12],
                tag: [5; 16],
            };
            auth.serialize(suite.message_version(), &mut bytes);
            bytes.extend_from_slice(b"body follows");
            let parsed = parse_header(&bytes, &limits()).unwrap();
            assert_eq!(parsed.body, body);
            assert_eq!(parsed.auth, auth);
            assert_eq!(&bytes[parsed.len..], b"body follows");
            // Every strict prefix is truncated, never a panic or a success.
            for cut in 0..parsed.len {
                match parse_header(&bytes[..cut], &limits()) {
                    Err(Error::Format(FormatError::Truncated(_))) => {}
                    other => panic!("prefix {cut}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn limits_are_enforced() {
        let body = sample(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey);
        let mut bytes = body.serialize().unwrap();
        bytes.extend_from_slice(&[0; 16]);
        let l = HeaderLimits {
            max_edks: Some(0),
            ..limits()
        };
        assert!(matches!(
            parse_header(&bytes, &l),
            Err(Error::Limit(LimitError::TooManyEncryptedDataKeys {
                found: 1,
                max: 0
            }))
        ));
        let l = HeaderLimits {
            max_frame_length: 1024,
            ..limits()
        };
        assert!(matches!(
            parse_header(&bytes, &l),
            Err(Error::Limit(LimitError::FrameTooLarge { .. }))
        ));
        let l = HeaderLimits {
            max_header_size: 10,
            ..limits()
        };
        assert!(matches!(
            parse_header(&bytes, &l),
            Err(Error::Limit(LimitError::HeaderTooLarge { .. }))
        ));
    }

    #[test]
    fn rejects_bad_fields() {
        let mut bytes = sample(AlgorithmSuite::Aes128GcmIv12Tag16HkdfSha256)
            .serialize()
            .unwrap();
        bytes.extend_from_slice(&[0; 28]);
        let mut b = bytes.clone();
        b[1] = 0x81;
        assert!(parse_header(&b, &limits()).is_err());
        let mut b = bytes.clone();
        b[2..4].copy_from_slice(&0x0478u16.to_be_bytes());
        assert!(parse_header(&b, &limits()).is_err());
        let mut b = bytes.clone();
        b[2..4].copy_from_slice(&0x0070u16.to_be_bytes());
        assert!(matches!(
            parse_header(&b, &limits()),
            Err(Error::Format(FormatError::UnknownSuite(0x0070)))
        ));
        let mut b = bytes;
        b[0] = 3;
        assert!(matches!(
            parse_header(&b, &limits()),
            Err(Error::Format(FormatError::UnsupportedVersion(3)))
        ));
    }
}
