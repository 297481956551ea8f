//! The aws-lc-rs backend (default).

use aws_lc_rs::{
    aead::{self, Aad, LessSafeKey, Nonce, UnboundKey},
    digest,
    encoding::{AsBigEndian, EcPublicKeyCompressedBin},
    rsa::{
        OaepPrivateDecryptingKey, OaepPublicEncryptingKey, Pkcs1PrivateDecryptingKey,
        Pkcs1PublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1,
        OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OAEP_SHA512_MGF1SHA512,
    },
    signature::{self, EcdsaKeyPair, KeyPair, ParsedPublicKey, UnparsedPublicKey},
};
use std::sync::Arc;

use zeroize::{Zeroize, Zeroizing};

use super::{
    Aead, CResult, CryptoError, Provider, RsaPadding, RsaPrivate, RsaPublic, Signer, Verifier, IV_LEN,
    TAG_LEN,
};
use crate::suite::Curve;

/// The aws-lc-rs provider.
pub(crate) struct AwsLc;

/// Upper bound on re-signing to reach the canonical signature length; the
/// chance of needing more than a few tries is negligible, and a longer
/// signature is still valid DER.
const MAX_SIGN_TRIES: usize = 64;

impl Provider for AwsLc {
    fn name(&self) -> &'static str {
        "aws-lc"
    }

    fn module(&self) -> super::CryptoModule {
        super::CryptoModule {
            name: if cfg!(feature = "fips") {
                "AWS-LC-FIPS"
            } else {
                "AWS-LC"
            },
            version: Some(aws_lc_rs::awslc_version()),
            module_version: if cfg!(feature = "fips") {
                aws_lc_rs::fips_version()
            } else {
                None
            },
            fips_mode: aws_lc_rs::try_fips_mode().is_ok(),
        }
    }

    fn aead(&self, key: &[u8]) -> CResult<Box<dyn Aead>> {
        let alg = match key.len() {
            16 => &aead::AES_128_GCM,
            24 => &aead::AES_192_GCM,
            32 => &aead::AES_256_GCM,
            _ => return Err(CryptoError),
        };
        let key = UnboundKey::new(alg, key).map_err(|_| CryptoError)?;
        Ok(Box::new(GcmKey(LessSafeKey::new(key))))
    }

    fn fill_random(&self, buf: &mut [u8]) -> CResult<()> {
        aws_lc_rs::rand::fill(buf).map_err(|_| CryptoError)
    }

    fn signer(&self, curve: Curve) -> CResult<(Box<dyn Signer>, Vec<u8>)> {
        let canonical_len = curve.canonical_signature_len().ok_or(CryptoError)?;
        let (alg, hash) = signing_alg(curve)?;
        let key = EcdsaKeyPair::generate(alg).map_err(|_| CryptoError)?;
        let public: EcPublicKeyCompressedBin<'static> =
            key.public_key().as_be_bytes().map_err(|_| CryptoError)?;
        let public = public.as_ref().to_vec();
        Ok((
            Box::new(EcdsaSigner {
                key: Arc::new(key),
                hash: digest::Context::new(hash),
                canonical_len,
            }),
            public,
        ))
    }

    fn verifier(&self, curve: Curve, public_point: &[u8]) -> CResult<Box<dyn Verifier>> {
        let (alg, hash): (&'static signature::EcdsaVerificationAlgorithm, _) = match curve {
            Curve::P256 => (&signature::ECDSA_P256_SHA256_ASN1, &digest::SHA256),
            Curve::P384 => (&signature::ECDSA_P384_SHA384_ASN1, &digest::SHA384),
            // No suite signs with P-521.
            Curve::P521 => return Err(CryptoError),
        };
        let key = UnparsedPublicKey::new(alg, public_point)
            .parse()
            .map_err(|_| CryptoError)?;
        Ok(Box::new(EcdsaVerifier {
            key,
            hash: digest::Context::new(hash),
        }))
    }

    fn rsa_public_from_der(&self, spki_der: &[u8]) -> CResult<Box<dyn RsaPublic>> {
        let key = PublicEncryptingKey::from_der(spki_der).map_err(|_| CryptoError)?;
        Ok(Box::new(RsaPublicKey(key)))
    }

    fn rsa_private_from_der(&self, pkcs8_der: &[u8]) -> CResult<Box<dyn RsaPrivate>> {
        let key = PrivateDecryptingKey::from_pkcs8(pkcs8_der).map_err(|_| CryptoError)?;
        Ok(Box::new(RsaPrivateKey(key)))
    }

    fn ecdh(&self, curve: Curve, private_pkcs8: &[u8], peer: &[u8]) -> CResult<Zeroizing<Vec<u8>>> {
        use aws_lc_rs::agreement;
        let alg = match curve {
            Curve::P256 => &agreement::ECDH_P256,
            Curve::P384 => &agreement::ECDH_P384,
            Curve::P521 => &agreement::ECDH_P521,
        };
        let private =
            agreement::PrivateKey::from_private_key_der(alg, private_pkcs8).map_err(|_| CryptoError)?;
        agreement::agree(
            &private,
            agreement::UnparsedPublicKey::new(alg, peer),
            CryptoError,
            |x| Ok(Zeroizing::new(x.to_vec())),
        )
    }

    fn ecdh_ephemeral(&self, curve: Curve, peer: &[u8]) -> CResult<(Zeroizing<Vec<u8>>, Vec<u8>)> {
        use aws_lc_rs::agreement;
        let alg = match curve {
            Curve::P256 => &agreement::ECDH_P256,
            Curve::P384 => &agreement::ECDH_P384,
            Curve::P521 => &agreement::ECDH_P521,
        };
        let private = agreement::PrivateKey::generate(alg).map_err(|_| CryptoError)?;
        let public: EcPublicKeyCompressedBin<'_> = private
            .compute_public_key()
            .and_then(|p| p.as_be_bytes())
            .map_err(|_| CryptoError)?;
        let public = public.as_ref().to_vec();
        let secret = agreement::agree(
            &private,
            agreement::UnparsedPublicKey::new(alg, peer),
            CryptoError,
            |x| Ok(Zeroizing::new(x.to_vec())),
        )?;
        Ok((secret, public))
    }
}

struct GcmKey(LessSafeKey);

impl Aead for GcmKey {
    fn seal_to(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> CResult<[u8; TAG_LEN]> {
        let mut tag = [0u8; TAG_LEN];
        self.0
            .seal_out_of_place_scatter(
                Nonce::assume_unique_for_key(*iv),
                Aad::from(aad),
                plaintext,
                out,
                &[],
                &mut tag,
            )
            .map_err(|_| CryptoError)?;
        Ok(tag)
    }

    fn seal_in_place(&self, iv: &[u8; IV_LEN], aad: &[u8], buf: &mut [u8]) -> CResult<[u8; TAG_LEN]> {
        let tag = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*iv), Aad::from(aad), buf)
            .map_err(|_| CryptoError)?;
        tag.as_ref().try_into().map_err(|_| CryptoError)
    }

    fn open_in_place(&self, iv: &[u8; IV_LEN], aad: &[u8], buf: &mut [u8]) -> CResult<usize> {
        if buf.len() < TAG_LEN {
            buf.zeroize();
            return Err(CryptoError);
        }
        match self
            .0
            .open_in_place(Nonce::assume_unique_for_key(*iv), Aad::from(aad), buf)
        {
            Ok(plaintext) => Ok(plaintext.len()),
            Err(_) => {
                // aws-lc leaves the buffer unspecified on failure: wipe it.
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
        let result = self.open_to_inner(iv, aad, ciphertext, tag, out);
        if result.is_err() {
            out.zeroize();
        }
        result
    }
}

impl GcmKey {
    fn open_to_inner(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; TAG_LEN],
        out: &mut [u8],
    ) -> CResult<()> {
        if out.len() != ciphertext.len() {
            return Err(CryptoError);
        }
        self.0
            .open_separate_gather(
                Nonce::assume_unique_for_key(*iv),
                Aad::from(aad),
                ciphertext,
                tag,
                out,
            )
            .map_err(|_| CryptoError)
    }
}

fn signing_alg(
    curve: Curve,
) -> CResult<(
    &'static signature::EcdsaSigningAlgorithm,
    &'static digest::Algorithm,
)> {
    match curve {
        Curve::P256 => Ok((&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &digest::SHA256)),
        Curve::P384 => Ok((&signature::ECDSA_P384_SHA384_ASN1_SIGNING, &digest::SHA384)),
        // No suite signs with P-521.
        Curve::P521 => Err(CryptoError),
    }
}

struct EcdsaSigner {
    key: Arc<EcdsaKeyPair>,
    hash: digest::Context,
    canonical_len: usize,
}

impl Signer for EcdsaSigner {
    fn fresh(&self) -> Box<dyn Signer> {
        Box::new(EcdsaSigner {
            key: Arc::clone(&self.key),
            hash: digest::Context::new(self.hash.algorithm()),
            canonical_len: self.canonical_len,
        })
    }

    fn update(&mut self, data: &[u8]) {
        self.hash.update(data);
    }

    fn sign(self: Box<Self>) -> CResult<Vec<u8>> {
        let digest = self.hash.finish();
        let mut sig = Vec::new();
        for _ in 0..MAX_SIGN_TRIES {
            sig = self
                .key
                .sign_digest(&digest)
                .map_err(|_| CryptoError)?
                .as_ref()
                .to_vec();
            if sig.len() == self.canonical_len {
                break;
            }
        }
        Ok(sig)
    }
}

struct EcdsaVerifier {
    key: ParsedPublicKey,
    hash: digest::Context,
}

impl Verifier for EcdsaVerifier {
    fn update(&mut self, data: &[u8]) {
        self.hash.update(data);
    }

    fn verify(self: Box<Self>, signature_der: &[u8]) -> CResult<()> {
        let digest = self.hash.finish();
        self.key
            .verify_digest_sig(&digest, signature_der)
            .map_err(|_| CryptoError)
    }
}

struct RsaPublicKey(PublicEncryptingKey);

fn oaep_alg(padding: RsaPadding) -> Option<&'static aws_lc_rs::rsa::OaepAlgorithm> {
    match padding {
        RsaPadding::OaepSha1 => Some(&OAEP_SHA1_MGF1SHA1),
        RsaPadding::OaepSha256 => Some(&OAEP_SHA256_MGF1SHA256),
        RsaPadding::OaepSha384 => Some(&OAEP_SHA384_MGF1SHA384),
        RsaPadding::OaepSha512 => Some(&OAEP_SHA512_MGF1SHA512),
        RsaPadding::Pkcs1 => None,
    }
}

impl RsaPublic for RsaPublicKey {
    fn encrypt(&self, padding: RsaPadding, plaintext: &[u8]) -> CResult<Vec<u8>> {
        let mut out = vec![0u8; self.0.key_size_bytes()];
        let n = match oaep_alg(padding) {
            Some(alg) => OaepPublicEncryptingKey::new(self.0.clone())
                .and_then(|k| k.encrypt(alg, plaintext, &mut out, None).map(|c| c.len())),
            None => Pkcs1PublicEncryptingKey::new(self.0.clone())
                .and_then(|k| k.encrypt(plaintext, &mut out).map(|c| c.len())),
        }
        .map_err(|_| CryptoError)?;
        out.truncate(n);
        Ok(out)
    }
}

struct RsaPrivateKey(PrivateDecryptingKey);

impl RsaPrivate for RsaPrivateKey {
    fn decrypt(&self, padding: RsaPadding, ciphertext: &[u8]) -> CResult<Zeroizing<Vec<u8>>> {
        let mut out = Zeroizing::new(vec![0u8; self.0.key_size_bytes()]);
        let n = match oaep_alg(padding) {
            Some(alg) => OaepPrivateDecryptingKey::new(self.0.clone())
                .and_then(|k| k.decrypt(alg, ciphertext, &mut out, None).map(|p| p.len())),
            None => Pkcs1PrivateDecryptingKey::new(self.0.clone())
                .and_then(|k| k.decrypt(ciphertext, &mut out).map(|p| p.len())),
        }
        .map_err(|_| CryptoError)?;
        out.truncate(n);
        Ok(out)
    }
}
