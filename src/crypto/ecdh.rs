//! ECDH keys for the ECDH keyrings: curves P-256, P-384, P-521, their key
//! formats (PKCS#8 private keys; SubjectPublicKeyInfo or SEC1 public keys,
//! PEM or DER) and the key derivation of `framework/raw-ecdh-keyring.md`.
//!
//! Parsing, the on-curve check and point compression use the RustCrypto
//! curve crates on every backend; the key agreement itself (one scalar
//! multiplication) runs on the backend ([`super::Provider::ecdh`]).

use std::fmt;

// The traits are elliptic-curve's, the same for the three curve crates.
use p256::elliptic_curve::sec1::ToEncodedPoint;
#[cfg(not(feature = "fips"))]
use p256::pkcs8::EncodePrivateKey;
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use zeroize::Zeroizing;

use super::{Backend, CResult, CryptoError};
use crate::suite::Curve;

/// Runs `$body` with `$c` bound to the RustCrypto curve crate of `$curve`.
macro_rules! with_curve {
    ($curve:expr, |$c:ident| $body:expr) => {
        match $curve {
            Curve::P256 => {
                use p256 as $c;
                $body
            }
            Curve::P384 => {
                use p384 as $c;
                $body
            }
            Curve::P521 => {
                use p521 as $c;
                $body
            }
        }
    };
}
#[cfg(feature = "rustcrypto")]
pub(crate) use with_curve;

/// A peer's (or one's own) ECDH public key, checked to be on the curve.
#[derive(Clone, PartialEq, Eq)]
pub struct EcdhPublicKey {
    curve: Curve,
    compressed: Vec<u8>,
}

impl fmt::Debug for EcdhPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcdhPublicKey")
            .field("curve", &self.curve)
            .field("compressed", &hex_short(&self.compressed))
            .finish()
    }
}

fn hex_short(b: &[u8]) -> String {
    b.iter().take(8).map(|x| format!("{x:02x}")).collect::<String>() + "…"
}

/// Why a key could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EcdhKeyError {
    /// The bytes are no public key in a form read here (PEM `PUBLIC KEY`,
    /// DER SubjectPublicKeyInfo, a SEC1 point) for the curve.
    NotPublicKey {
        /// The curve asked for.
        curve: Curve,
    },
    /// The bytes are no PKCS#8 EC private key (PEM `PRIVATE KEY` or DER)
    /// for the curve.
    NotPrivateKey {
        /// The curve asked for.
        curve: Curve,
    },
    /// A key, but on another curve than the one asked for.
    WrongCurve {
        /// The curve asked for.
        expected: Curve,
        /// The key's curve.
        found: Curve,
    },
    /// A SEC1 point of the curve's length that is not on the curve.
    NotOnCurve {
        /// The curve asked for.
        curve: Curve,
    },
}

impl fmt::Display for EcdhKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EcdhKeyError::NotPublicKey { curve } => write!(
                f,
                "not an EC public key on {curve} (PEM \"PUBLIC KEY\", DER SubjectPublicKeyInfo or a SEC1 point)"
            ),
            EcdhKeyError::NotPrivateKey { curve } => write!(
                f,
                "not a PKCS#8 EC private key on {curve} (PEM \"PRIVATE KEY\" or DER)"
            ),
            EcdhKeyError::WrongCurve { expected, found } => {
                write!(f, "an EC key on {found}, not on {expected}")
            }
            EcdhKeyError::NotOnCurve { curve } => write!(f, "a SEC1 point that is not on {curve}"),
        }
    }
}

impl std::error::Error for EcdhKeyError {}

/// Every curve, for telling a key of another curve apart from no key.
const CURVES: [Curve; 3] = [Curve::P256, Curve::P384, Curve::P521];

/// The curve of a public key in `bytes` (PEM, DER or SEC1), if any.
fn public_key_curve(bytes: &[u8]) -> Option<Curve> {
    let text = std::str::from_utf8(bytes)
        .ok()
        .filter(|t| t.contains("-----BEGIN"));
    CURVES.into_iter().find(|&curve| {
        with_curve!(curve, |c| match text {
            Some(pem) => c::PublicKey::from_public_key_pem(pem.trim()).is_ok(),
            None =>
                c::PublicKey::from_public_key_der(bytes).is_ok()
                    || c::PublicKey::from_sec1_bytes(bytes).is_ok(),
        })
    })
}

/// The curve of a PKCS#8 private key in `bytes` (PEM or DER), if any.
fn private_key_curve(bytes: &[u8]) -> Option<Curve> {
    let text = std::str::from_utf8(bytes)
        .ok()
        .filter(|t| t.contains("-----BEGIN"));
    CURVES.into_iter().find(|&curve| {
        with_curve!(curve, |c| match text {
            Some(pem) => c::SecretKey::from_pkcs8_pem(pem.trim()).is_ok(),
            None => c::SecretKey::from_pkcs8_der(bytes).is_ok(),
        })
    })
}

/// Whether `bytes` has the length and tag of a SEC1 point on `curve`
/// (compressed or not).
fn sec1_shaped(curve: Curve, bytes: &[u8]) -> bool {
    match bytes.first() {
        Some(2 | 3) => bytes.len() == curve.compressed_point_len(),
        Some(4) => bytes.len() == 2 * curve.field_len() + 1,
        _ => false,
    }
}

impl EcdhPublicKey {
    /// A public key of `curve` from PEM `PUBLIC KEY`, DER
    /// SubjectPublicKeyInfo, or a SEC1 point (compressed or not).
    ///
    /// # Errors
    /// [`EcdhKeyError::WrongCurve`] for a public key of another curve,
    /// [`EcdhKeyError::NotOnCurve`] for a SEC1 point off the curve,
    /// [`EcdhKeyError::NotPublicKey`] for anything else.
    pub fn from_bytes(curve: Curve, bytes: &[u8]) -> Result<Self, EcdhKeyError> {
        let wrong = || match public_key_curve(bytes) {
            Some(found) if found != curve => EcdhKeyError::WrongCurve {
                expected: curve,
                found,
            },
            _ if sec1_shaped(curve, bytes) => EcdhKeyError::NotOnCurve { curve },
            _ => EcdhKeyError::NotPublicKey { curve },
        };
        let text = std::str::from_utf8(bytes)
            .ok()
            .filter(|t| t.contains("-----BEGIN"));
        let compressed = with_curve!(curve, |c| {
            let key = match text {
                Some(pem) => c::PublicKey::from_public_key_pem(pem.trim()).map_err(|_| wrong())?,
                None => c::PublicKey::from_public_key_der(bytes)
                    .or_else(|_| c::PublicKey::from_sec1_bytes(bytes))
                    .map_err(|_| wrong())?,
            };
            key.to_encoded_point(true).as_bytes().to_vec()
        });
        Ok(EcdhPublicKey { curve, compressed })
    }

    /// The curve.
    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// The SEC1 compressed point (as in the ECDH keyrings' EDKs).
    pub fn compressed(&self) -> &[u8] {
        &self.compressed
    }

    /// The DER SubjectPublicKeyInfo (what KMS `DeriveSharedSecret` takes).
    pub fn to_der(&self) -> Vec<u8> {
        use p256::pkcs8::EncodePublicKey;
        with_curve!(self.curve, |c| {
            c::PublicKey::from_sec1_bytes(&self.compressed)
                .ok()
                .and_then(|k| k.to_public_key_der().ok())
                .map(|d| d.as_bytes().to_vec())
                .unwrap_or_default()
        })
    }
}

/// An ECDH private key. Wiped on drop; `Debug` shows only its public key.
pub struct EcdhPrivateKey {
    curve: Curve,
    /// PKCS#8 DER, what both backends load.
    pkcs8: Zeroizing<Vec<u8>>,
    public: EcdhPublicKey,
}

impl fmt::Debug for EcdhPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcdhPrivateKey")
            .field("curve", &self.curve)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl EcdhPrivateKey {
    /// A private key of `curve` from PKCS#8, PEM (`PRIVATE KEY`) or DER.
    ///
    /// # Errors
    /// [`EcdhKeyError::WrongCurve`] for a private key of another curve,
    /// [`EcdhKeyError::NotPrivateKey`] for anything else.
    pub fn from_pkcs8(curve: Curve, bytes: &[u8]) -> Result<Self, EcdhKeyError> {
        let wrong = || match private_key_curve(bytes) {
            Some(found) if found != curve => EcdhKeyError::WrongCurve {
                expected: curve,
                found,
            },
            _ => EcdhKeyError::NotPrivateKey { curve },
        };
        let text = std::str::from_utf8(bytes)
            .ok()
            .filter(|t| t.contains("-----BEGIN"));
        #[cfg(not(feature = "fips"))]
        let (pkcs8, compressed) = with_curve!(curve, |c| {
            let key = match text {
                Some(pem) => c::SecretKey::from_pkcs8_pem(pem.trim()).map_err(|_| wrong())?,
                None => c::SecretKey::from_pkcs8_der(bytes).map_err(|_| wrong())?,
            };
            let der = key.to_pkcs8_der().map_err(|_| wrong())?;
            let public = key.public_key().to_encoded_point(true).as_bytes().to_vec();
            (Zeroizing::new(der.as_bytes().to_vec()), public)
        });
        // The FIPS build checks the private key and derives its public key
        // in the module (AWS-LC-FIPS's EC key validation), not in
        // RustCrypto: only the PEM armour is taken off here.
        #[cfg(feature = "fips")]
        let (pkcs8, compressed) = {
            use aws_lc_rs::agreement;
            use aws_lc_rs::encoding::{AsBigEndian, EcPublicKeyCompressedBin};
            let der = match text {
                Some(pem) => {
                    let (label, der) =
                        p256::pkcs8::der::pem::decode_vec(pem.trim().as_bytes()).map_err(|_| wrong())?;
                    let der = Zeroizing::new(der);
                    if label != "PRIVATE KEY" {
                        return Err(wrong());
                    }
                    der
                }
                None => Zeroizing::new(bytes.to_vec()),
            };
            let alg = match curve {
                Curve::P256 => &agreement::ECDH_P256,
                Curve::P384 => &agreement::ECDH_P384,
                Curve::P521 => &agreement::ECDH_P521,
            };
            let key = agreement::PrivateKey::from_private_key_der(alg, &der).map_err(|_| wrong())?;
            let public: EcPublicKeyCompressedBin<'static> = key
                .compute_public_key()
                .and_then(|p| p.as_be_bytes())
                .map_err(|_| wrong())?;
            (der, public.as_ref().to_vec())
        };
        Ok(EcdhPrivateKey {
            curve,
            pkcs8,
            public: EcdhPublicKey { curve, compressed },
        })
    }

    /// The curve.
    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// The matching public key.
    pub fn public_key(&self) -> &EcdhPublicKey {
        &self.public
    }

    /// ECDH of a fresh key pair with `peer`, on `backend` (the ephemeral
    /// scheme): the shared secret and the fresh public key.
    pub(crate) fn agree_ephemeral(
        backend: Backend,
        peer: &EcdhPublicKey,
    ) -> CResult<(Zeroizing<Vec<u8>>, EcdhPublicKey)> {
        let (secret, compressed) = backend.provider().ecdh_ephemeral(peer.curve, &peer.compressed)?;
        if secret.len() != peer.curve.field_len() || compressed.len() != peer.curve.compressed_point_len() {
            return Err(CryptoError);
        }
        Ok((
            secret,
            EcdhPublicKey {
                curve: peer.curve,
                compressed,
            },
        ))
    }

    /// The shared secret with `peer` (the x-coordinate), on `backend`.
    pub(crate) fn agree(&self, backend: Backend, peer: &EcdhPublicKey) -> CResult<Zeroizing<Vec<u8>>> {
        if peer.curve != self.curve {
            return Err(CryptoError);
        }
        let secret = backend
            .provider()
            .ecdh(self.curve, &self.pkcs8, &peer.compressed)?;
        if secret.len() != self.curve.field_len() {
            return Err(CryptoError);
        }
        Ok(secret)
    }
}

/// A 32-byte key, wiped on drop.
pub(crate) type Key32 = Zeroizing<[u8; 32]>;

/// The ECDH keyrings' keying material: SP 800-108 counter mode with
/// HMAC-SHA384 keyed with the shared secret, label = `fixed_info`, context
/// = the 32-byte salt, 64 bytes out: a commitment key, then the wrapping key.
pub(crate) fn ecdh_keying_material(
    shared_secret: &[u8],
    fixed_info: &[u8],
    salt: &[u8],
) -> CResult<(Key32, Key32)> {
    let okm = super::kdf::kdf_counter_hmac_sha384_64(shared_secret, fixed_info, salt)?;
    let mut commitment = Zeroizing::new([0u8; 32]);
    let mut wrapping = Zeroizing::new([0u8; 32]);
    commitment.copy_from_slice(&okm[..32]);
    wrapping.copy_from_slice(&okm[32..]);
    Ok((commitment, wrapping))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    /// Each way a key fails to read is its own error, and Display keeps
    /// the texts users saw before (what forms are read, on which curve).
    #[test]
    fn key_errors_say_what_went_wrong() {
        let (p256, p384) = (Curve::P256, Curve::P384);
        let public_der = data("ecdh-p256-b-public.der");
        let private_pem = data("ecdh-p256-a-private.pem");
        assert!(EcdhPublicKey::from_bytes(p256, &public_der).is_ok());
        assert!(EcdhPrivateKey::from_pkcs8(p256, &private_pem).is_ok());

        let wrong = EcdhKeyError::WrongCurve {
            expected: p384,
            found: p256,
        };
        assert_eq!(EcdhPublicKey::from_bytes(p384, &public_der).unwrap_err(), wrong);
        assert_eq!(EcdhPrivateKey::from_pkcs8(p384, &private_pem).unwrap_err(), wrong);
        assert_eq!(wrong.to_string(), "an EC key on p256, not on p384");
        // A SEC1 point of the curve's length and tag, but off the curve.
        let mut off = vec![4u8];
        off.extend([1u8; 64]);
        assert_eq!(
            EcdhPublicKey::from_bytes(p256, &off).unwrap_err(),
            EcdhKeyError::NotOnCurve { curve: p256 }
        );
        let not_public = EcdhPublicKey::from_bytes(p256, b"not a key").unwrap_err();
        assert_eq!(not_public, EcdhKeyError::NotPublicKey { curve: p256 });
        assert_eq!(
            not_public.to_string(),
            "not an EC public key on p256 (PEM \"PUBLIC KEY\", DER SubjectPublicKeyInfo or a SEC1 point)"
        );
        // A private key where a public key goes, and the reverse.
        assert_eq!(
            EcdhPublicKey::from_bytes(p256, &private_pem).unwrap_err(),
            EcdhKeyError::NotPublicKey { curve: p256 }
        );
        let not_private = EcdhPrivateKey::from_pkcs8(p256, &public_der).unwrap_err();
        assert_eq!(not_private, EcdhKeyError::NotPrivateKey { curve: p256 });
        assert_eq!(
            not_private.to_string(),
            "not a PKCS#8 EC private key on p256 (PEM \"PRIVATE KEY\" or DER)"
        );
    }
}
