//! One-shot decrypt of a message in memory: structure, signature and every
//! tag checked before any plaintext is returned; frames opened straight
//! into the output, on several threads for large messages.

use zeroize::{Zeroize, Zeroizing};

use crate::config::Config;
use crate::crypto::{Aead, HeaderAuthenticated, Verifier, TAG_LEN};
use crate::error::{Error, FormatError, LimitError, Result};
use crate::format::body::{body_aad, BodyPart, FINAL_FRAME_MARKER, MAX_NON_FRAMED_LEN};
use crate::format::header::{parse_header, ContentType, HeaderLimits, ParsedHeader};
use crate::format::EncryptionContext;
use crate::materials::Source;
use crate::message::buffer;
use crate::message::frames::Frames;
use crate::message::{DecryptInfo, Decrypted};

use super::*;

/// One-shot decrypt of a message held in memory. The body is checked
/// whole (structure, signature, every tag) before any plaintext is
/// returned; frames open straight into the plaintext buffer, on several
/// threads for large messages.
pub(crate) async fn decrypt_slice(
    config: &Config,
    source: Source<'_>,
    reproduced: &EncryptionContext,
    message: &[u8],
) -> Result<Decrypted> {
    let mut plaintext = Vec::new();
    let verified = decrypt_slice_into(config, source, reproduced, message, &mut plaintext).await?;
    Ok(Decrypted {
        plaintext: Zeroizing::new(plaintext),
        encryption_context: verified.encryption_context,
        suite: verified.suite,
    })
}

/// One-shot decrypt into `out` (its allocation reused when large enough).
/// On error `out` is zeroized and left empty: no unauthenticated byte stays.
pub(crate) async fn decrypt_slice_into(
    config: &Config,
    source: Source<'_>,
    reproduced: &EncryptionContext,
    message: &[u8],
    out: &mut Vec<u8>,
) -> Result<DecryptInfo> {
    let result = decrypt_slice_inner(config, source, reproduced, message, out).await;
    if result.is_err() {
        out.zeroize();
        out.clear();
    }
    result
}

pub(super) async fn decrypt_slice_inner(
    config: &Config,
    source: Source<'_>,
    reproduced: &EncryptionContext,
    message: &[u8],
    out: &mut Vec<u8>,
) -> Result<DecryptInfo> {
    let limits = HeaderLimits {
        max_edks: config.max_encrypted_data_keys,
        max_header_size: config.max_header_size,
        max_frame_length: config.max_frame_length,
    };
    let header = parse_header(message, &limits)?;
    config.commitment_policy.check_decrypt(header.body.suite)?;
    let (authenticated, opened) = open_header(&header, config, source, reproduced).await?;
    let body = Cursor {
        bytes: message,
        pos: header.len,
    };
    open_body(
        &authenticated,
        &header,
        opened.aead.as_ref(),
        opened.verifier,
        body,
        config,
        out,
    )?;
    Ok(DecryptInfo {
        encryption_context: opened.context,
        suite: header.body.suite,
    })
}

/// Reads fields off a message in memory, with the streaming reader's errors.
pub(super) struct Cursor<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8]> {
        let rest = &self.bytes[self.pos..];
        if rest.len() < n {
            return Err(FormatError::Truncated(field).into());
        }
        self.pos += n;
        Ok(&rest[..n])
    }

    pub(super) fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    pub(super) fn u32(&mut self, field: &'static str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }
}

/// Where the parts of a framed body lie in the message.
pub(super) struct FramedLayout<'a> {
    /// The regular frames, back to back.
    pub(super) regular: &'a [u8],
    pub(super) final_iv: [u8; 12],
    pub(super) final_seq: u32,
    /// Ciphertext and tag of the final frame.
    pub(super) final_sealed: &'a [u8],
}

pub(super) fn framed_layout<'a>(body: &mut Cursor<'a>, frame_length: u32) -> Result<FramedLayout<'a>> {
    let f = frame_length as usize;
    let start = body.pos;
    let mut seq = 1u32;
    loop {
        let first = body.u32("frame sequence number")?;
        if first == FINAL_FRAME_MARKER {
            break;
        }
        if first != seq {
            return Err(FormatError::Invalid {
                field: "frame sequence number",
                reason: "out of order",
            }
            .into());
        }
        body.take(12, "frame IV")?;
        body.take(f + TAG_LEN, "frame")?;
        // seq < FINAL_FRAME_MARKER here, so this cannot overflow.
        seq += 1;
    }
    let regular = &body.bytes[start..body.pos - 4];
    let final_seq = body.u32("final frame sequence number")?;
    let final_iv = body.array::<12>("final frame IV")?;
    let len = body.u32("final frame length")?;
    if final_seq != seq {
        return Err(FormatError::Invalid {
            field: "final frame sequence number",
            reason: "out of order",
        }
        .into());
    }
    if len > frame_length {
        return Err(FormatError::Invalid {
            field: "final frame length",
            reason: "longer than the frame length",
        }
        .into());
    }
    let final_sealed = body.take(len as usize + TAG_LEN, "final frame")?;
    Ok(FramedLayout {
        regular,
        final_iv,
        final_seq,
        final_sealed,
    })
}

/// The footer (signature, if signed) and the end of the message.
pub(super) fn check_footer(body: &mut Cursor<'_>, verifier: Option<Box<dyn Verifier>>) -> Result<()> {
    let signed_end = body.pos;
    if let Some(mut v) = verifier {
        let len = usize::from(u16::from_be_bytes(body.array::<2>("signature length")?));
        if len > MAX_SIGNATURE_LEN {
            return Err(FormatError::Invalid {
                field: "signature length",
                reason: "longer than any ECDSA signature",
            }
            .into());
        }
        let sig = body.take(len, "signature")?;
        if body.pos != body.bytes.len() {
            return Err(FormatError::TrailingData.into());
        }
        // The signature covers the header and the body.
        v.update(&body.bytes[..signed_end]);
        return v.verify(sig).map_err(|_| Error::Decrypt);
    }
    if body.pos != body.bytes.len() {
        return Err(FormatError::TrailingData.into());
    }
    Ok(())
}

pub(super) fn open_body(
    _authenticated: &HeaderAuthenticated,
    header: &ParsedHeader,
    aead: &dyn Aead,
    verifier: Option<Box<dyn Verifier>>,
    mut body: Cursor<'_>,
    config: &Config,
    out: &mut Vec<u8>,
) -> Result<()> {
    let message_id = &header.body.message_id;
    let max = config.max_body_size;
    match header.body.content_type {
        ContentType::Framed => {
            let layout = framed_layout(&mut body, header.body.frame_length)?;
            check_footer(&mut body, verifier)?;
            let frames = Frames {
                aead,
                message_id,
                frame_length: header.body.frame_length as usize,
                threads: config.effective_threads(),
                pieces: 1,
            };
            let regular_len = layout.regular.len() / frames.regular_len() * frames.frame_length;
            let (final_ct, final_tag) = layout.final_sealed.split_at(layout.final_sealed.len() - TAG_LEN);
            let total = (regular_len + final_ct.len()) as u64;
            if total > max {
                return Err(LimitError::BodyTooLarge { found: total, max }.into());
            }
            buffer::sized(out, regular_len + final_ct.len());
            let (regular_out, final_out) = out.split_at_mut(regular_len);
            frames.open(1, layout.regular, regular_out)?;
            let mut aad = Vec::with_capacity(96);
            body_aad(
                &mut aad,
                message_id,
                BodyPart::FinalFrame,
                layout.final_seq,
                final_ct.len() as u64,
            );
            open_to(aead, &layout.final_iv, &aad, final_ct, final_tag, final_out)
        }
        ContentType::NonFramed => {
            let iv = body.array::<12>("body IV")?;
            let len = u64::from_be_bytes(body.array::<8>("body length")?);
            if len > MAX_NON_FRAMED_LEN {
                return Err(FormatError::Invalid {
                    field: "body length",
                    reason: "longer than 2^36 - 32 bytes",
                }
                .into());
            }
            // The plaintext's length, as the encrypt counts it.
            if len > max {
                return Err(LimitError::BodyTooLarge { found: len, max }.into());
            }
            let sealed = body.take(len as usize + TAG_LEN, "body")?;
            check_footer(&mut body, verifier)?;
            let (ct, tag) = sealed.split_at(len as usize);
            buffer::sized(out, ct.len());
            let mut aad = Vec::with_capacity(96);
            body_aad(&mut aad, message_id, BodyPart::NonFramed, 1, len);
            open_to(aead, &iv, &aad, ct, tag, out)
        }
    }
}

pub(super) fn open_to(
    aead: &dyn Aead,
    iv: &[u8; 12],
    aad: &[u8],
    ct: &[u8],
    tag: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::Decrypt)?;
    aead.open_to(iv, aad, ct, tag, out).map_err(|_| Error::Decrypt)
}
