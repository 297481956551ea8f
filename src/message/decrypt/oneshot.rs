//! One-shot decrypt of a message in memory: structure, signature and every
//! tag checked before any plaintext is returned; frames opened straight
//! into the output, on several threads for large messages.

use zeroize::{Zeroize, Zeroizing};

use crate::config::Config;
use crate::crypto::{Aead, HeaderAuthenticated, Verifier, TAG_LEN};
use crate::error::{Error, FormatError, LimitError, Result};
use crate::format::body::{body_aad, BodyPart};
use crate::format::frame::{self, Stop};
use crate::format::header::{parse_header, ContentType, HeaderLimits, ParsedHeader};
use crate::format::reader::Reader;
use crate::format::EncryptionContext;
use crate::materials::Source;
use crate::message::buffer;
use crate::message::frames::{Frames, MIN_TASK_BYTES};
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
    let mut body = Reader::new(message);
    body.take(header.len, "header")?;
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

/// Where the parts of a framed body lie in the message.
struct FramedLayout<'a> {
    /// The regular frames, back to back.
    regular: &'a [u8],
    last: frame::FinalFrameHeader,
    /// Ciphertext and tag of the final frame.
    final_sealed: &'a [u8],
}

fn framed_layout<'a>(body: &mut Reader<'a>, frame_length: u32) -> Result<FramedLayout<'a>> {
    let regular = frame::read_regular_frames(body, 1, frame_length, usize::MAX)?;
    if let Stop::Truncated(field) = regular.stop {
        return Err(FormatError::Truncated(field).into());
    }
    let last = frame::read_final_frame_header(body, 1 + regular.count as u64, frame_length)?;
    let final_sealed = body.take(last.len as usize + TAG_LEN, "final frame")?;
    Ok(FramedLayout {
        regular: regular.bytes,
        last,
        final_sealed,
    })
}

/// The footer (signature, if signed) and the end of the message: the
/// signed bytes and the signature, checked by [`verify_footer`].
fn read_footer<'a>(body: &mut Reader<'a>, signed: bool) -> Result<Option<(&'a [u8], &'a [u8])>> {
    // The signature covers the header and the body.
    let covered = body.consumed();
    let sig = if signed {
        Some((covered, frame::read_footer(body)?))
    } else {
        None
    };
    if body.remaining() != 0 {
        return Err(FormatError::TrailingData.into());
    }
    Ok(sig)
}

/// Checks the signature [`read_footer`] found.
fn verify_footer(verifier: Option<Box<dyn Verifier>>, footer: Option<(&[u8], &[u8])>) -> Result<()> {
    match (verifier, footer) {
        (Some(mut v), Some((covered, sig))) => {
            v.update(covered);
            v.verify(sig).map_err(|_| Error::Decrypt)
        }
        (None, None) => Ok(()),
        _ => Err(Error::Internal("a signature without its verifier")),
    }
}

/// Runs the signature check and the opening of the body side by side on
/// several threads (the SHA-384 on one core, the AES-GCM on the others),
/// one after the other on one or for a body of less than 256 KiB (`len`
/// bytes: not worth a hand-off to the pool). The caller wipes the
/// plaintext if either fails: nothing is released before both pass.
fn verify_and_open(
    threads: usize,
    len: usize,
    verifier: Option<Box<dyn Verifier>>,
    footer: Option<(&[u8], &[u8])>,
    open: impl FnOnce() -> Result<()> + Send,
) -> Result<()> {
    if verifier.is_some() && threads > 1 && len >= MIN_TASK_BYTES / 4 {
        let (verified, opened) = rayon::join(move || verify_footer(verifier, footer), open);
        return verified.and(opened);
    }
    verify_footer(verifier, footer)?;
    open()
}

pub(super) fn open_body(
    _authenticated: &HeaderAuthenticated,
    header: &ParsedHeader,
    aead: &dyn Aead,
    verifier: Option<Box<dyn Verifier>>,
    mut body: Reader<'_>,
    config: &Config,
    out: &mut Vec<u8>,
) -> Result<()> {
    let message_id = &header.body.message_id;
    let max = config.max_body_size;
    match header.body.content_type {
        ContentType::Framed => {
            let layout = framed_layout(&mut body, header.body.frame_length)?;
            let footer = read_footer(&mut body, verifier.is_some())?;
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
            let threads = frames.threads;
            verify_and_open(threads, regular_len, verifier, footer, || {
                frames.open(1, layout.regular, regular_out)?;
                let mut aad = Vec::with_capacity(96);
                body_aad(
                    &mut aad,
                    message_id,
                    BodyPart::FinalFrame,
                    layout.last.seq,
                    final_ct.len() as u64,
                );
                open_to(aead, &layout.last.iv, &aad, final_ct, final_tag, final_out)
            })
        }
        ContentType::NonFramed => {
            let frame::NonFramedHeader { iv, len } = frame::read_non_framed_header(&mut body)?;
            // The plaintext's length, as the encrypt counts it.
            if len > max {
                return Err(LimitError::BodyTooLarge { found: len, max }.into());
            }
            let sealed = body.take(len as usize + TAG_LEN, "body")?;
            let footer = read_footer(&mut body, verifier.is_some())?;
            let (ct, tag) = sealed.split_at(len as usize);
            buffer::sized(out, ct.len());
            let mut aad = Vec::with_capacity(96);
            body_aad(&mut aad, message_id, BodyPart::NonFramed, 1, len);
            verify_and_open(config.effective_threads(), ct.len(), verifier, footer, || {
                open_to(aead, &iv, &aad, ct, tag, out)
            })
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
