//! Key derivation: data key -> content-encryption key (+ commitment key).
//!
//! Spec: `framework/algorithm-suites.md` (key derivation settings) and
//! `framework/transitive-requirements.md`; digest in notes section 7.

#[cfg(not(feature = "fips"))]
use hkdf::Hkdf;
#[cfg(not(feature = "fips"))]
use zeroize::Zeroize;
use zeroize::Zeroizing;

use super::{Aead, Backend, CResult, CryptoError, Expand, HashAlg};
use crate::suite::{AlgorithmSuite, Kdf};

/// `DERIVEKEY` label for the committing suites' encryption key.
const DERIVE_KEY_LABEL: &[u8] = b"DERIVEKEY";
/// `COMMITKEY` label for the commitment key (no suite id).
const COMMIT_KEY_LABEL: &[u8] = b"COMMITKEY";

/// One HKDF-Extract, then one Expand per output (RFC 5869). An empty salt
/// means hash-length zero bytes.
///
/// Both backends use RustCrypto's `hkdf` here: it keys HMAC with the PRK
/// once for all expands (a committing message hashes 10 SHA-512 blocks,
/// where aws-lc's HKDF hashes 12 and sets up each call anew), which halves
/// the largest cost of a small message. The PRK is wiped here and the
/// keyed HMAC and SHA-2 states on drop (`zeroize` features); the crates'
/// short-lived stack temporaries (the padded key block, each T(i) before it
/// is copied out) are overwritten afterwards by [`scrub_stack`].
///
/// The FIPS build derives in the validated module instead (see the other
/// `hkdf`).
#[cfg(not(feature = "fips"))]
pub(crate) fn hkdf(hash: HashAlg, salt: &[u8], ikm: &[u8], outputs: &mut [Expand<'_>]) -> CResult<()> {
    use sha2::{Sha256, Sha384, Sha512};
    // `None`: RFC 5869's default salt, which HMAC pads exactly like an empty key.
    let salt = if salt.is_empty() { None } else { Some(salt) };
    macro_rules! run {
        ($h:ty) => {{
            let (mut prk, hk) = Hkdf::<$h>::extract(salt, ikm);
            prk.as_mut_slice().zeroize();
            outputs
                .iter_mut()
                .try_for_each(|o| hk.expand_multi_info(o.info, o.out).map_err(|_| CryptoError))
        }};
    }
    let result = match hash {
        HashAlg::Sha256 => run!(Sha256),
        HashAlg::Sha384 => run!(Sha384),
        HashAlg::Sha512 => run!(Sha512),
    };
    scrub_stack();
    result
}

/// HKDF in the FIPS build (feature `fips`): aws-lc's, so that the key
/// derivation runs in AWS-LC-FIPS, the validated module, as the ESDK's FIPS
/// builds do. aws-lc-rs runs the whole HKDF (extract and expand) once per
/// output, in the module.
#[cfg(feature = "fips")]
pub(crate) fn hkdf(hash: HashAlg, salt: &[u8], ikm: &[u8], outputs: &mut [Expand<'_>]) -> CResult<()> {
    use aws_lc_rs::hkdf::{self, KeyType as _};
    /// An output length, as aws-lc's expand takes it.
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let alg = match hash {
        HashAlg::Sha256 => hkdf::HKDF_SHA256,
        HashAlg::Sha384 => hkdf::HKDF_SHA384,
        HashAlg::Sha512 => hkdf::HKDF_SHA512,
    };
    // An empty salt is RFC 5869's default, hash-length zeros, and is given
    // as such: the same bytes out (HMAC pads both to the same block), and
    // AWS-LC-FIPS's service indicator approves HKDF only with a salt.
    let zeros = [0u8; 64];
    let salt = if salt.is_empty() {
        &zeros[..alg.len()]
    } else {
        salt
    };
    let prk = hkdf::Salt::new(alg, salt).extract(ikm);
    outputs.iter_mut().try_for_each(|o| {
        prk.expand(o.info, Len(o.out.len()))
            .and_then(|okm| okm.fill(o.out))
            .map_err(|_| CryptoError)
    })
}

/// SP 800-108 KDF in counter mode with HMAC in the FIPS build: aws-lc's
/// KBKDF (in the validated module) over the same fixed input as the
/// RustCrypto path, `label || 00 || context || L` with L the output length
/// in bits (32-bit big-endian), each block HMAC(key, i (u32) || that);
/// `N` bytes out.
#[cfg(feature = "fips")]
fn kbkdf_aws_lc<const N: usize>(
    hash: aws_lc_rs::kdf::KbkdfCtrHmacAlgorithmId,
    key: &[u8],
    label: &[u8],
    context: &[u8],
) -> CResult<Zeroizing<[u8; N]>> {
    use aws_lc_rs::kdf::{get_kbkdf_ctr_hmac_algorithm, kbkdf_ctr_hmac};
    let alg = get_kbkdf_ctr_hmac_algorithm(hash).ok_or(CryptoError)?;
    let bits = u32::try_from(N * 8).map_err(|_| CryptoError)?;
    let mut info = Vec::with_capacity(label.len() + context.len() + 5);
    info.extend_from_slice(label);
    info.push(0);
    info.extend_from_slice(context);
    info.extend_from_slice(&bits.to_be_bytes());
    let mut out = Zeroizing::new([0u8; N]);
    kbkdf_ctr_hmac(alg, key, &info, &mut out[..]).map_err(|_| CryptoError)?;
    Ok(out)
}

/// Overwrites the stack the hkdf and hmac crates just used below this
/// frame (their padded key blocks and T(i) outputs are plain locals that
/// nothing wipes): a 4 KiB zeroed local in a frame of its own, kept by
/// `black_box`. Best effort, as any stack wiping in Rust; about 50 ns.
#[cfg(not(feature = "fips"))]
#[inline(never)]
fn scrub_stack() {
    let area = [0u8; 4096];
    std::hint::black_box(&area);
}

/// The output size of [`kdf_counter_hmac_sha256`]: one AES-256 key.
#[cfg(all(feature = "hierarchy", not(feature = "fips")))]
struct Key256;

#[cfg(all(feature = "hierarchy", not(feature = "fips")))]
impl hmac::digest::common::KeySizeUser for Key256 {
    type KeySize = hmac::digest::consts::U32;
}

/// SP 800-108 KDF in counter mode with HMAC-SHA256, 32 bytes out (one
/// block): HMAC(key, 00000001 || label || 00 || context || 00000100).
/// The hierarchical keyring's wrapping key (label `aws-kms-hierarchy`,
/// context = the EDK's 16-byte salt).
#[cfg(all(feature = "hierarchy", not(feature = "fips")))]
pub(crate) fn kdf_counter_hmac_sha256(
    key: &[u8],
    label: &[u8],
    context: &[u8],
) -> CResult<Zeroizing<[u8; 32]>> {
    use kbkdf::{Counter, Kbkdf, Params};
    use sha2::Sha256;
    let params = Params::builder(key)
        .with_label(label)
        .with_context(context)
        .build();
    let mut block = Counter::<hmac::Hmac<Sha256>, Key256>::default()
        .derive(params)
        .map_err(|_| CryptoError)?;
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(block.as_slice());
    block.as_mut_slice().zeroize();
    scrub_stack();
    Ok(out)
}

/// [`kdf_counter_hmac_sha256`] in the FIPS build, through aws-lc.
#[cfg(all(feature = "hierarchy", feature = "fips"))]
pub(crate) fn kdf_counter_hmac_sha256(
    key: &[u8],
    label: &[u8],
    context: &[u8],
) -> CResult<Zeroizing<[u8; 32]>> {
    kbkdf_aws_lc(
        aws_lc_rs::kdf::KbkdfCtrHmacAlgorithmId::Sha256,
        key,
        label,
        context,
    )
}

/// SHA-384 of the concatenated parts (the hierarchical keyring's cache
/// entry ids, the KMS RSA keyring's context digest): aws-lc's when it is
/// built (in the FIPS build, the validated module's), else RustCrypto's.
#[cfg_attr(not(any(feature = "hierarchy", feature = "kms")), allow(dead_code))]
pub(crate) fn sha384_concat(parts: &[&[u8]]) -> [u8; 48] {
    #[cfg(feature = "aws-lc")]
    {
        use aws_lc_rs::digest;
        let mut h = digest::Context::new(&digest::SHA384);
        for p in parts {
            h.update(p);
        }
        let mut out = [0u8; 48];
        out.copy_from_slice(h.finish().as_ref());
        out
    }
    #[cfg(not(feature = "aws-lc"))]
    {
        use sha2::{Digest, Sha384};
        let mut h = Sha384::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }
}

/// SHA-512 of the concatenated parts (the caching materials manager's
/// cache entry ids, spec `framework/caching-cmm.md` Appendix A). Digests
/// of public data (ids, contexts, encrypted data keys), so whichever
/// backend is selected: aws-lc's when it is built (a decrypt id hashes
/// every encrypted data key of a header, up to thousands), else
/// RustCrypto's.
#[cfg(feature = "aws-lc")]
pub(crate) fn sha512_concat(parts: &[&[u8]]) -> [u8; 64] {
    use aws_lc_rs::digest;
    let mut h = digest::Context::new(&digest::SHA512);
    for p in parts {
        h.update(p);
    }
    let mut out = [0u8; 64];
    out.copy_from_slice(h.finish().as_ref());
    out
}

/// SHA-512 of the concatenated parts, RustCrypto's (see the aws-lc one).
#[cfg(any(not(feature = "aws-lc"), test))]
#[cfg_attr(feature = "aws-lc", allow(dead_code))]
pub(crate) fn sha512_concat_rustcrypto(parts: &[&[u8]]) -> [u8; 64] {
    use sha2::{Digest, Sha512};
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(not(feature = "aws-lc"))]
pub(crate) use sha512_concat_rustcrypto as sha512_concat;

/// The output size of [`kdf_counter_hmac_sha384_64`].
#[cfg(not(feature = "fips"))]
struct Key512;

#[cfg(not(feature = "fips"))]
impl hmac::digest::common::KeySizeUser for Key512 {
    type KeySize = hmac::digest::consts::U64;
}

/// SP 800-108 KDF in counter mode with HMAC-SHA384, 64 bytes out (two
/// blocks, the second cut to 16 bytes): block i = HMAC(key, i (u32) ||
/// label || 00 || context || 00000200). The ECDH keyrings' commitment and
/// wrapping keys (label = fixed info, context = the 32-byte salt).
#[cfg(not(feature = "fips"))]
pub(crate) fn kdf_counter_hmac_sha384_64(
    key: &[u8],
    label: &[u8],
    context: &[u8],
) -> CResult<Zeroizing<[u8; 64]>> {
    use kbkdf::{Counter, Kbkdf, Params};
    use sha2::Sha384;
    let params = Params::builder(key)
        .with_label(label)
        .with_context(context)
        .build();
    let mut block = Counter::<hmac::Hmac<Sha384>, Key512>::default()
        .derive(params)
        .map_err(|_| CryptoError)?;
    let mut out = Zeroizing::new([0u8; 64]);
    out.copy_from_slice(block.as_slice());
    block.as_mut_slice().zeroize();
    scrub_stack();
    Ok(out)
}

/// [`kdf_counter_hmac_sha384_64`] in the FIPS build, through aws-lc.
#[cfg(feature = "fips")]
pub(crate) fn kdf_counter_hmac_sha384_64(
    key: &[u8],
    label: &[u8],
    context: &[u8],
) -> CResult<Zeroizing<[u8; 64]>> {
    kbkdf_aws_lc(
        aws_lc_rs::kdf::KbkdfCtrHmacAlgorithmId::Sha384,
        key,
        label,
        context,
    )
}

/// The keys one message uses.
pub(crate) struct DerivedKeys {
    /// Content-encryption key, ready for AES-GCM.
    pub aead: Box<dyn Aead>,
    /// The commitment value for committing suites (the v2 suite data).
    pub commitment: Option<Zeroizing<[u8; 32]>>,
}

/// Derives the content key (and commitment) for `suite` from the data key.
///
/// Non-committing HKDF: PRK = Extract(zero salt, pdk); key = Expand(PRK,
/// suite_id || message_id). Committing: PRK = Extract(message_id, pdk);
/// key = Expand(PRK, suite_id || "DERIVEKEY"); commit = Expand(PRK, "COMMITKEY").
pub(crate) fn derive_keys(
    backend: Backend,
    suite: AlgorithmSuite,
    data_key: &[u8],
    message_id: &[u8],
) -> CResult<DerivedKeys> {
    if data_key.len() != suite.data_key_len() || message_id.len() != suite.message_id_len() {
        return Err(CryptoError);
    }
    let p = backend.provider();
    let suite_id = suite.id().to_be_bytes();
    let key_len = suite.encryption_key_len();
    match suite.kdf() {
        Kdf::Identity => Ok(DerivedKeys {
            aead: p.aead(data_key)?,
            commitment: None,
        }),
        Kdf::HkdfSha256 | Kdf::HkdfSha384 => {
            let hash = if suite.kdf() == Kdf::HkdfSha256 {
                HashAlg::Sha256
            } else {
                HashAlg::Sha384
            };
            let mut key = Zeroizing::new([0u8; 32]);
            hkdf(
                hash,
                &[],
                data_key,
                &mut [Expand {
                    info: &[&suite_id, message_id],
                    out: &mut key[..key_len],
                }],
            )?;
            Ok(DerivedKeys {
                aead: p.aead(&key[..key_len])?,
                commitment: None,
            })
        }
        Kdf::HkdfSha512Commit => {
            let mut key = Zeroizing::new([0u8; 32]);
            let mut commit = Zeroizing::new([0u8; 32]);
            hkdf(
                HashAlg::Sha512,
                message_id,
                data_key,
                &mut [
                    Expand {
                        info: &[&suite_id, DERIVE_KEY_LABEL],
                        out: &mut key[..],
                    },
                    Expand {
                        info: &[COMMIT_KEY_LABEL],
                        out: &mut commit[..],
                    },
                ],
            )?;
            Ok(DerivedKeys {
                aead: p.aead(&key[..])?,
                commitment: Some(commit),
            })
        }
    }
}

#[cfg(test)]
mod sha512_tests {
    use super::*;

    /// The cache ids' SHA-512 gives FIPS 180-2's answer for "abc" and the
    /// same digests from aws-lc and RustCrypto, however the input is split.
    #[test]
    fn sha512_concat_known_answer_and_backends_agree() {
        let abc = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                   2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";
        assert_eq!(hex::encode(sha512_concat(&[b"a", b"", b"bc"])), abc);
        let long = vec![0x5a; 1000];
        for parts in [&[][..], &[&b""[..]], &[&long[..7], &long[7..]], &[&long[..]]] {
            assert_eq!(sha512_concat(parts), sha512_concat_rustcrypto(parts));
        }
    }
}
