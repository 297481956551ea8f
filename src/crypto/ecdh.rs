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
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use zeroize::Zeroizing;

use super::{Backend, CResult, CryptoError};

/// A NIST curve the ECDH keyrings use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EcdhCurve {
    /// P-256 (`ECC_NIST_P256`).
    P256,
    /// P-384 (`ECC_NIST_P384`).
    P384,
    /// P-521 (`ECC_NIST_P521`).
    P521,
}

impl EcdhCurve {
    /// Parses `p256`, `p384` or `p521` (any case, `-` and `_` ignored, so
    /// `P-384` and `ECC_NIST_P384` work too).
    pub fn parse(text: &str) -> Option<Self> {
        let t: String = text
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        match t.trim_start_matches("eccnist") {
            "p256" => Some(EcdhCurve::P256),
            "p384" => Some(EcdhCurve::P384),
            "p521" => Some(EcdhCurve::P521),
            _ => None,
        }
    }

    /// The name in the key derivation's fixed info: `p256`, `p384`, `p521`.
    pub fn name(self) -> &'static str {
        match self {
            EcdhCurve::P256 => "p256",
            EcdhCurve::P384 => "p384",
            EcdhCurve::P521 => "p521",
        }
    }

    /// Length of a SEC1 compressed point (33, 49, 67).
    pub fn compressed_len(self) -> usize {
        self.field_len() + 1
    }

    /// Length of the shared secret, the x-coordinate (32, 48, 66).
    pub fn field_len(self) -> usize {
        match self {
            EcdhCurve::P256 => 32,
            EcdhCurve::P384 => 48,
            EcdhCurve::P521 => 66,
        }
    }
}

impl fmt::Display for EcdhCurve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs `$body` with `$c` bound to the RustCrypto curve crate of `$curve`.
macro_rules! with_curve {
    ($curve:expr, |$c:ident| $body:expr) => {
        match $curve {
            EcdhCurve::P256 => {
                use p256 as $c;
                $body
            }
            EcdhCurve::P384 => {
                use p384 as $c;
                $body
            }
            EcdhCurve::P521 => {
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
    curve: EcdhCurve,
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
pub struct EcdhKeyError(pub(crate) String);

impl fmt::Display for EcdhKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EcdhKeyError {}

impl EcdhPublicKey {
    /// A public key of `curve` from PEM `PUBLIC KEY`, DER
    /// SubjectPublicKeyInfo, or a SEC1 point (compressed or not).
    ///
    /// # Errors
    /// Not a public key of that curve (wrong curve, not on the curve,
    /// not a public key at all).
    pub fn from_bytes(curve: EcdhCurve, bytes: &[u8]) -> Result<Self, EcdhKeyError> {
        let wrong = || {
            EcdhKeyError(format!("not an EC public key on {curve} (PEM \"PUBLIC KEY\", DER SubjectPublicKeyInfo or a SEC1 point)"))
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
    pub fn curve(&self) -> EcdhCurve {
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
    curve: EcdhCurve,
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
    /// Not a PKCS#8 EC private key of that curve.
    pub fn from_pkcs8(curve: EcdhCurve, bytes: &[u8]) -> Result<Self, EcdhKeyError> {
        let wrong = || {
            EcdhKeyError(format!(
                "not a PKCS#8 EC private key on {curve} (PEM \"PRIVATE KEY\" or DER)"
            ))
        };
        let text = std::str::from_utf8(bytes)
            .ok()
            .filter(|t| t.contains("-----BEGIN"));
        let (pkcs8, compressed) = with_curve!(curve, |c| {
            let key = match text {
                Some(pem) => c::SecretKey::from_pkcs8_pem(pem.trim()).map_err(|_| wrong())?,
                None => c::SecretKey::from_pkcs8_der(bytes).map_err(|_| wrong())?,
            };
            let der = key.to_pkcs8_der().map_err(|_| wrong())?;
            let public = key.public_key().to_encoded_point(true).as_bytes().to_vec();
            (Zeroizing::new(der.as_bytes().to_vec()), public)
        });
        Ok(EcdhPrivateKey {
            curve,
            pkcs8,
            public: EcdhPublicKey { curve, compressed },
        })
    }

    /// The curve.
    pub fn curve(&self) -> EcdhCurve {
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
        if secret.len() != peer.curve.field_len() || compressed.len() != peer.curve.compressed_len() {
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
