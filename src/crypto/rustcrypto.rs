//! The pure-Rust RustCrypto backend (feature `rustcrypto`).
//!
//! Mirrors `aws_lc.rs` in behaviour: the same key sizes are accepted, the
//! same failures are reported, `open_in_place` wipes the buffer on failure and
//! signers re-sign to the canonical DER length.
//!
//! **Caveat:** RSA decryption uses the `rsa` crate, which is not constant-time
//! (RUSTSEC-2023-0071, "Marvin"). Blinding is applied, which does not fully
//! close that side channel.

use aes_gcm::{
    aead::{consts::U12, AeadInPlace, KeyInit},
    Aes128Gcm, Aes256Gcm, AesGcm, Nonce, Tag,
};
use ecdsa::signature::{hazmat::RandomizedPrehashSigner, DigestVerifier};
use rand_core::OsRng;
use rsa::{
    pkcs1::der::Decode as _,
    pkcs8::{DecodePrivateKey, SubjectPublicKeyInfoRef},
    traits::PublicKeyParts,
    BigUint, Oaep, Pkcs1v15Encrypt,
};
// sha2 0.10, as re-exported by rsa: the version the ECDSA and RSA crates use.
use rsa::sha2::{Digest, Sha256, Sha384, Sha512};
use zeroize::{Zeroize, Zeroizing};

use super::{
    Aead, CResult, CryptoError, Provider, RsaPadding, RsaPrivate, RsaPublic, Signer, Verifier, IV_LEN,
    TAG_LEN,
};
use crate::suite::Curve;

/// AES-192-GCM with a 96-bit nonce (aes-gcm has no alias for it).
type Aes192Gcm = AesGcm<aes::Aes192, U12>;

/// The RustCrypto provider.
pub(crate) struct RustCrypto;

/// Upper bound on re-signing to reach the canonical signature length (as in
/// the aws-lc backend).
const MAX_SIGN_TRIES: usize = 64;

/// Upper bound on drawing a private scalar; a 256/384-bit random string is out
/// of range with negligible probability.
const MAX_KEYGEN_TRIES: usize = 64;

/// RSA modulus sizes aws-lc accepts (bits, inclusive).
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

impl Provider for RustCrypto {
    fn name(&self) -> &'static str {
        "rustcrypto"
    }

    fn module(&self) -> super::CryptoModule {
        super::CryptoModule {
            name: "RustCrypto",
            version: None,
            module_version: None,
            fips_mode: false,
        }
    }

    fn aead(&self, key: &[u8]) -> CResult<Box<dyn Aead>> {
        let cipher = match key.len() {
            16 => GcmCipher::Aes128(Aes128Gcm::new_from_slice(key).map_err(|_| CryptoError)?),
            24 => GcmCipher::Aes192(Aes192Gcm::new_from_slice(key).map_err(|_| CryptoError)?),
            32 => GcmCipher::Aes256(Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError)?),
            _ => return Err(CryptoError),
        };
        Ok(Box::new(cipher))
    }

    fn fill_random(&self, buf: &mut [u8]) -> CResult<()> {
        os_random(buf)
    }

    fn signer(&self, curve: Curve) -> CResult<(Box<dyn Signer>, Vec<u8>)> {
        let canonical_len = curve.canonical_signature_len().ok_or(CryptoError)?;
        match curve {
            Curve::P256 => {
                let key: p256::ecdsa::SigningKey = generate_key(32, 0xff, &mut os_random)?;
                let public = key.verifying_key().to_encoded_point(true).as_bytes().to_vec();
                Ok((
                    Box::new(EcdsaSigner::P256 {
                        key,
                        hash: Sha256::new(),
                        canonical_len,
                    }),
                    public,
                ))
            }
            Curve::P384 => {
                let key: p384::ecdsa::SigningKey = generate_key(48, 0xff, &mut os_random)?;
                let public = key.verifying_key().to_encoded_point(true).as_bytes().to_vec();
                Ok((
                    Box::new(EcdsaSigner::P384 {
                        key,
                        hash: Sha384::new(),
                        canonical_len,
                    }),
                    public,
                ))
            }
            // No suite signs with P-521.
            Curve::P521 => Err(CryptoError),
        }
    }

    fn verifier(&self, curve: Curve, public_point: &[u8]) -> CResult<Box<dyn Verifier>> {
        // Accept exactly what aws-lc accepts: SEC1 compressed (0x02/0x03) or
        // uncompressed (0x04) points. The `sec1` crate would also take the
        // identity (0x00) and "compact" (0x05) encodings; refuse those here.
        if curve == Curve::P521 {
            // No suite signs with P-521.
            return Err(CryptoError);
        }
        let field_len = curve.field_len();
        let well_formed = match public_point.first() {
            Some(0x02 | 0x03) => public_point.len() == 1 + field_len,
            Some(0x04) => public_point.len() == 1 + 2 * field_len,
            _ => false,
        };
        if !well_formed {
            return Err(CryptoError);
        }
        Ok(match curve {
            Curve::P256 => Box::new(EcdsaVerifier::P256 {
                key: p256::ecdsa::VerifyingKey::from_sec1_bytes(public_point).map_err(|_| CryptoError)?,
                hash: Sha256::new(),
            }),
            Curve::P384 => Box::new(EcdsaVerifier::P384 {
                key: p384::ecdsa::VerifyingKey::from_sec1_bytes(public_point).map_err(|_| CryptoError)?,
                hash: Sha384::new(),
            }),
            Curve::P521 => return Err(CryptoError),
        })
    }

    fn rsa_public_from_der(&self, spki_der: &[u8]) -> CResult<Box<dyn RsaPublic>> {
        // `RsaPublicKey::from_public_key_der` caps the modulus at 4096 bits;
        // aws-lc takes 2048..=8192, so parse the SPKI here and apply that range.
        let spki = SubjectPublicKeyInfoRef::from_der(spki_der).map_err(|_| CryptoError)?;
        spki.algorithm
            .assert_algorithm_oid(rsa::pkcs1::ALGORITHM_OID)
            .map_err(|_| CryptoError)?;
        match spki.algorithm.parameters {
            Some(p) if p.is_null() => {}
            _ => return Err(CryptoError),
        }
        let key_bytes = spki.subject_public_key.as_bytes().ok_or(CryptoError)?;
        let pkcs1 = rsa::pkcs1::RsaPublicKey::from_der(key_bytes).map_err(|_| CryptoError)?;
        let n = BigUint::from_bytes_be(pkcs1.modulus.as_bytes());
        let e = BigUint::from_bytes_be(pkcs1.public_exponent.as_bytes());
        let key = rsa::RsaPublicKey::new_with_max_size(n, e, RSA_MAX_BITS).map_err(|_| CryptoError)?;
        check_rsa_size(key.n().bits())?;
        Ok(Box::new(RsaPublicKey(key)))
    }

    fn rsa_private_from_der(&self, pkcs8_der: &[u8]) -> CResult<Box<dyn RsaPrivate>> {
        // `from_pkcs8_der` validates the key (and precomputes CRT values).
        let key = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8_der).map_err(|_| CryptoError)?;
        check_rsa_size(key.n().bits())?;
        Ok(Box::new(RsaPrivateKey(key)))
    }

    fn ecdh(&self, curve: Curve, private_pkcs8: &[u8], peer: &[u8]) -> CResult<Zeroizing<Vec<u8>>> {
        super::with_curve!(curve, |c| {
            let private = <c::SecretKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_der(private_pkcs8)
                .map_err(|_| CryptoError)?;
            let peer = c::PublicKey::from_sec1_bytes(peer).map_err(|_| CryptoError)?;
            // The scalar copy is wiped too (SecretKey wipes only its own).
            let scalar = Zeroizing::new(private.to_nonzero_scalar());
            let shared = c::ecdh::diffie_hellman(&*scalar, peer.as_affine());
            Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
        })
    }

    fn ecdh_ephemeral(&self, curve: Curve, peer: &[u8]) -> CResult<(Zeroizing<Vec<u8>>, Vec<u8>)> {
        ecdh_ephemeral_with(curve, peer, &mut os_random)
    }
}

/// ECDH with a fresh key pair: (shared secret, the new public key as a
/// compressed point). The private scalar is drawn from `fill` by
/// [`generate_key`], so a failing random source is an error, never a panic
/// (as `EphemeralSecret::random(&mut OsRng)` would panic) and never a loop.
fn ecdh_ephemeral_with(
    curve: Curve,
    peer: &[u8],
    fill: &mut dyn FnMut(&mut [u8]) -> CResult<()>,
) -> CResult<(Zeroizing<Vec<u8>>, Vec<u8>)> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    // 521 bits in 66 bytes: the top byte keeps one bit, so a draw is
    // rarely above the group order.
    let top_mask = if curve == Curve::P521 { 0x01 } else { 0xff };
    super::with_curve!(curve, |c| {
        let peer = c::PublicKey::from_sec1_bytes(peer).map_err(|_| CryptoError)?;
        let private: c::SecretKey = generate_key(curve.field_len(), top_mask, fill)?;
        let public = private.public_key().to_encoded_point(true).as_bytes().to_vec();
        let scalar = Zeroizing::new(private.to_nonzero_scalar());
        let shared = c::ecdh::diffie_hellman(&*scalar, peer.as_affine());
        Ok((Zeroizing::new(shared.raw_secret_bytes().to_vec()), public))
    })
}

fn check_rsa_size(bits: usize) -> CResult<()> {
    if (RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(CryptoError)
    }
}

/// The system CSPRNG, fallibly.
fn os_random(buf: &mut [u8]) -> CResult<()> {
    getrandom::getrandom(buf).map_err(|_| CryptoError)
}

/// Draws a private scalar of `len` bytes from `fill` (its top byte masked
/// with `top_mask`), rejection-sampled at most [`MAX_KEYGEN_TRIES`] times:
/// a failing source is an error, never a panic (as `SigningKey::random`
/// and `EphemeralSecret::random` panic when the OS source fails), and a
/// source stuck above the group order is an error, never a loop.
fn generate_key<K>(len: usize, top_mask: u8, fill: &mut dyn FnMut(&mut [u8]) -> CResult<()>) -> CResult<K>
where
    K: TryFromSlice,
{
    let mut bytes = Zeroizing::new([0u8; 66]);
    let bytes = &mut bytes[..len];
    for _ in 0..MAX_KEYGEN_TRIES {
        fill(bytes)?;
        bytes[0] &= top_mask;
        if let Ok(key) = K::try_from_slice(bytes) {
            return Ok(key);
        }
    }
    Err(CryptoError)
}

/// `from_slice` of the ECDSA signing keys and the ECDH secret keys.
trait TryFromSlice: Sized {
    fn try_from_slice(bytes: &[u8]) -> CResult<Self>;
}

/// P-256, P-384 and P-521 secret keys (one `elliptic-curve` crate).
impl<C: p256::elliptic_curve::Curve> TryFromSlice for p256::elliptic_curve::SecretKey<C> {
    fn try_from_slice(bytes: &[u8]) -> CResult<Self> {
        Self::from_slice(bytes).map_err(|_| CryptoError)
    }
}

impl TryFromSlice for p256::ecdsa::SigningKey {
    fn try_from_slice(bytes: &[u8]) -> CResult<Self> {
        Self::from_slice(bytes).map_err(|_| CryptoError)
    }
}

impl TryFromSlice for p384::ecdsa::SigningKey {
    fn try_from_slice(bytes: &[u8]) -> CResult<Self> {
        Self::from_slice(bytes).map_err(|_| CryptoError)
    }
}

enum GcmCipher {
    Aes128(Aes128Gcm),
    Aes192(Aes192Gcm),
    Aes256(Aes256Gcm),
}

impl Aead for GcmCipher {
    fn seal_to(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> CResult<[u8; TAG_LEN]> {
        if out.len() != plaintext.len() {
            return Err(CryptoError);
        }
        out.copy_from_slice(plaintext);
        self.seal_in_place(iv, aad, out)
    }

    fn seal_in_place(&self, iv: &[u8; IV_LEN], aad: &[u8], buf: &mut [u8]) -> CResult<[u8; TAG_LEN]> {
        let nonce = Nonce::from(*iv);
        let tag = match self {
            GcmCipher::Aes128(c) => c.encrypt_in_place_detached(&nonce, aad, buf),
            GcmCipher::Aes192(c) => c.encrypt_in_place_detached(&nonce, aad, buf),
            GcmCipher::Aes256(c) => c.encrypt_in_place_detached(&nonce, aad, buf),
        }
        .map_err(|_| CryptoError)?;
        Ok(tag.into())
    }

    fn open_in_place(&self, iv: &[u8; IV_LEN], aad: &[u8], buf: &mut [u8]) -> CResult<usize> {
        let Some(pt_len) = buf.len().checked_sub(TAG_LEN) else {
            buf.zeroize();
            return Err(CryptoError);
        };
        let nonce = Nonce::from(*iv);
        let (ciphertext, tag) = buf.split_at_mut(pt_len);
        let tag: [u8; TAG_LEN] = (&*tag).try_into().map_err(|_| CryptoError)?;
        let tag = Tag::from(tag);
        let result = match self {
            GcmCipher::Aes128(c) => c.decrypt_in_place_detached(&nonce, aad, ciphertext, &tag),
            GcmCipher::Aes192(c) => c.decrypt_in_place_detached(&nonce, aad, ciphertext, &tag),
            GcmCipher::Aes256(c) => c.decrypt_in_place_detached(&nonce, aad, ciphertext, &tag),
        };
        match result {
            Ok(()) => Ok(pt_len),
            Err(_) => {
                // aes-gcm checks the tag before decrypting, but the contract is
                // the same as aws-lc's: nothing is left in the buffer.
                buf.zeroize();
                Err(CryptoError)
            }
        }
    }

    fn open_to(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; TAG_LEN],
        out: &mut [u8],
    ) -> CResult<()> {
        if out.len() != ciphertext.len() {
            out.zeroize();
            return Err(CryptoError);
        }
        out.copy_from_slice(ciphertext);
        let nonce = Nonce::from(*iv);
        let tag = Tag::from(*tag);
        let result = match self {
            GcmCipher::Aes128(c) => c.decrypt_in_place_detached(&nonce, aad, out, &tag),
            GcmCipher::Aes192(c) => c.decrypt_in_place_detached(&nonce, aad, out, &tag),
            GcmCipher::Aes256(c) => c.decrypt_in_place_detached(&nonce, aad, out, &tag),
        };
        result.map_err(|_| {
            out.zeroize();
            CryptoError
        })
    }
}

enum EcdsaSigner {
    P256 {
        key: p256::ecdsa::SigningKey,
        hash: Sha256,
        canonical_len: usize,
    },
    P384 {
        key: p384::ecdsa::SigningKey,
        hash: Sha384,
        canonical_len: usize,
    },
}

/// Signs `digest` with fresh randomness (RFC 6979 with added entropy) until
/// the DER encoding has `canonical_len` bytes. Deterministic signing of the
/// same digest would always give the same length, hence the randomness.
macro_rules! sign_canonical {
    ($key:expr, $digest:expr, $canonical_len:expr, $sig:ty) => {{
        let mut der = Vec::new();
        for _ in 0..MAX_SIGN_TRIES {
            let sig: $sig = $key
                .sign_prehash_with_rng(&mut OsRng, $digest)
                .map_err(|_| CryptoError)?;
            der = sig.to_der().as_bytes().to_vec();
            if der.len() == $canonical_len {
                break;
            }
        }
        Ok(der)
    }};
}

impl Signer for EcdsaSigner {
    fn fresh(&self) -> Box<dyn Signer> {
        Box::new(match self {
            EcdsaSigner::P256 {
                key, canonical_len, ..
            } => EcdsaSigner::P256 {
                key: key.clone(),
                hash: Sha256::new(),
                canonical_len: *canonical_len,
            },
            EcdsaSigner::P384 {
                key, canonical_len, ..
            } => EcdsaSigner::P384 {
                key: key.clone(),
                hash: Sha384::new(),
                canonical_len: *canonical_len,
            },
        })
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            EcdsaSigner::P256 { hash, .. } => hash.update(data),
            EcdsaSigner::P384 { hash, .. } => hash.update(data),
        }
    }

    fn sign(self: Box<Self>) -> CResult<Vec<u8>> {
        match *self {
            EcdsaSigner::P256 {
                key,
                hash,
                canonical_len,
            } => {
                let digest = hash.finalize();
                sign_canonical!(key, &digest, canonical_len, p256::ecdsa::Signature)
            }
            EcdsaSigner::P384 {
                key,
                hash,
                canonical_len,
            } => {
                let digest = hash.finalize();
                sign_canonical!(key, &digest, canonical_len, p384::ecdsa::Signature)
            }
        }
    }
}

enum EcdsaVerifier {
    P256 {
        key: p256::ecdsa::VerifyingKey,
        hash: Sha256,
    },
    P384 {
        key: p384::ecdsa::VerifyingKey,
        hash: Sha384,
    },
}

impl Verifier for EcdsaVerifier {
    fn update(&mut self, data: &[u8]) {
        match self {
            EcdsaVerifier::P256 { hash, .. } => hash.update(data),
            EcdsaVerifier::P384 { hash, .. } => hash.update(data),
        }
    }

    fn verify(self: Box<Self>, signature_der: &[u8]) -> CResult<()> {
        match *self {
            EcdsaVerifier::P256 { key, hash } => {
                let sig = p256::ecdsa::Signature::from_der(signature_der).map_err(|_| CryptoError)?;
                key.verify_digest(hash, &sig).map_err(|_| CryptoError)
            }
            EcdsaVerifier::P384 { key, hash } => {
                let sig = p384::ecdsa::Signature::from_der(signature_der).map_err(|_| CryptoError)?;
                key.verify_digest(hash, &sig).map_err(|_| CryptoError)
            }
        }
    }
}

fn oaep(padding: RsaPadding) -> Option<Oaep> {
    match padding {
        RsaPadding::OaepSha1 => Some(Oaep::new::<sha1::Sha1>()),
        RsaPadding::OaepSha256 => Some(Oaep::new::<Sha256>()),
        RsaPadding::OaepSha384 => Some(Oaep::new::<Sha384>()),
        RsaPadding::OaepSha512 => Some(Oaep::new::<Sha512>()),
        RsaPadding::Pkcs1 => None,
    }
}

struct RsaPublicKey(rsa::RsaPublicKey);

impl RsaPublic for RsaPublicKey {
    fn encrypt(&self, padding: RsaPadding, plaintext: &[u8]) -> CResult<Vec<u8>> {
        match oaep(padding) {
            Some(scheme) => self.0.encrypt(&mut OsRng, scheme, plaintext),
            None => self.0.encrypt(&mut OsRng, Pkcs1v15Encrypt, plaintext),
        }
        .map_err(|_| CryptoError)
    }
}

struct RsaPrivateKey(rsa::RsaPrivateKey);

impl RsaPrivate for RsaPrivateKey {
    fn decrypt(&self, padding: RsaPadding, ciphertext: &[u8]) -> CResult<Zeroizing<Vec<u8>>> {
        // aws-lc requires the ciphertext to be exactly the modulus length; the
        // `rsa` crate checks this for OAEP but not for PKCS#1 v1.5.
        if ciphertext.len() != self.0.size() {
            return Err(CryptoError);
        }
        match oaep(padding) {
            Some(scheme) => self.0.decrypt_blinded(&mut OsRng, scheme, ciphertext),
            None => self.0.decrypt_blinded(&mut OsRng, Pkcs1v15Encrypt, ciphertext),
        }
        .map(Zeroizing::new)
        .map_err(|_| CryptoError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer key pair on `curve`: (secret scalar bytes, compressed point).
    fn peer(curve: Curve) -> (Vec<u8>, Vec<u8>) {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        super::super::with_curve!(curve, |c| {
            let mut bytes = vec![0x5a; curve.field_len()];
            bytes[0] = 0x01;
            let key = c::SecretKey::from_slice(&bytes).unwrap();
            (bytes, key.public_key().to_encoded_point(true).as_bytes().to_vec())
        })
    }

    #[test]
    fn ephemeral_ecdh_fails_cleanly_when_the_random_source_does() {
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            let (_, peer_public) = peer(curve);
            // The source fails: an error, not a panic.
            let failing = ecdh_ephemeral_with(curve, &peer_public, &mut |_| Err(CryptoError));
            assert!(failing.is_err(), "{curve}");
            // The source only gives values above the group order: an error
            // after a bounded number of draws, not an endless loop.
            let mut draws = 0;
            let stuck = ecdh_ephemeral_with(curve, &peer_public, &mut |b| {
                draws += 1;
                b.fill(0xff);
                Ok(())
            });
            assert!(stuck.is_err() && draws == MAX_KEYGEN_TRIES, "{curve}: {draws}");
        }
    }

    #[test]
    fn ephemeral_ecdh_agrees_with_the_peer() {
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            let (peer_secret, peer_public) = peer(curve);
            let (shared, public) = RustCrypto.ecdh_ephemeral(curve, &peer_public).unwrap();
            assert_eq!(
                (shared.len(), public.len()),
                (curve.field_len(), curve.compressed_point_len())
            );
            let theirs = super::super::with_curve!(curve, |c| {
                let secret = c::SecretKey::from_slice(&peer_secret).unwrap();
                let ours = c::PublicKey::from_sec1_bytes(&public).unwrap();
                c::ecdh::diffie_hellman(secret.to_nonzero_scalar(), ours.as_affine())
                    .raw_secret_bytes()
                    .to_vec()
            });
            assert_eq!(*shared, theirs, "{curve}");
        }
    }
}
