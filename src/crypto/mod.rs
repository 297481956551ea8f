//! Cryptographic primitives behind one small interface.
//!
//! envseal needs AES-GCM, HKDF, ECDSA (P-256/P-384), RSA encryption and a
//! random source. Each backend implements [`Provider`]; a [`Backend`] is a
//! cheap, copyable handle to one of them. The default is aws-lc-rs; the
//! `rustcrypto` feature adds the pure-Rust RustCrypto crates.
//!
//! Keys move into the primitives by value or are borrowed for the length of
//! one call; nothing here keeps a copy that outlives its owner.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

use crate::suite::Curve;

#[cfg(feature = "aws-lc")]
mod aws_lc;
#[cfg(feature = "rustcrypto")]
mod rustcrypto;

mod check;
mod ecdh;
mod kdf;
mod keys;

pub(crate) use check::{HeaderAuthenticated, KeyCheck};
pub(crate) use ecdh::ecdh_keying_material;
#[cfg(feature = "rustcrypto")]
pub(crate) use ecdh::with_curve;
pub use ecdh::{EcdhKeyError, EcdhPrivateKey, EcdhPublicKey};
#[cfg(feature = "hierarchy")]
pub(crate) use kdf::kdf_counter_hmac_sha256;
#[cfg(feature = "kms")]
pub(crate) use kdf::sha384_concat;
pub(crate) use kdf::sha512_concat;
pub(crate) use kdf::{derive_keys, DerivedKeys};
pub use keys::{DataKey, WrappingKey};

#[cfg(not(any(feature = "aws-lc", feature = "rustcrypto")))]
compile_error!("envseal needs a crypto backend: enable feature `aws-lc` (default) or `rustcrypto`");

#[cfg(all(feature = "fips", feature = "rustcrypto"))]
compile_error!(
    "features `fips` and `rustcrypto` cannot be combined: the FIPS build runs every primitive in \
     AWS-LC-FIPS, the validated module, and the RustCrypto crates are not a validated module; \
     build with `--features fips` and without `rustcrypto` (see docs/fips.md)"
);

/// A primitive failed. Carries no detail on purpose; callers map it to
/// [`crate::Error::Decrypt`] or to a keyring/config error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CryptoError;

pub(crate) type CResult<T> = Result<T, CryptoError>;

/// AES-GCM IV length.
pub(crate) const IV_LEN: usize = 12;
/// AES-GCM tag length.
pub(crate) const TAG_LEN: usize = 16;

/// Hash used by HKDF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

/// RSA encryption padding for the raw RSA keyring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RsaPadding {
    /// PKCS#1 v1.5.
    Pkcs1,
    /// OAEP with SHA-1 (MGF1 SHA-1), empty label.
    OaepSha1,
    /// OAEP with SHA-256 (MGF1 SHA-256), empty label.
    OaepSha256,
    /// OAEP with SHA-384 (MGF1 SHA-384), empty label.
    OaepSha384,
    /// OAEP with SHA-512 (MGF1 SHA-512), empty label.
    OaepSha512,
}

impl RsaPadding {
    /// Parses `pkcs1`, `oaep-sha1`, `oaep-sha256`, `oaep-sha384`, `oaep-sha512`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_lowercase().as_str() {
            "pkcs1" => RsaPadding::Pkcs1,
            "oaep-sha1" => RsaPadding::OaepSha1,
            "oaep-sha256" => RsaPadding::OaepSha256,
            "oaep-sha384" => RsaPadding::OaepSha384,
            "oaep-sha512" => RsaPadding::OaepSha512,
            _ => return None,
        })
    }

    /// The name `parse` accepts.
    pub const fn name(self) -> &'static str {
        match self {
            RsaPadding::Pkcs1 => "pkcs1",
            RsaPadding::OaepSha1 => "oaep-sha1",
            RsaPadding::OaepSha256 => "oaep-sha256",
            RsaPadding::OaepSha384 => "oaep-sha384",
            RsaPadding::OaepSha512 => "oaep-sha512",
        }
    }
}

/// An AES-GCM key (128, 192 or 256 bits) ready to seal or open.
pub(crate) trait Aead: Send + Sync {
    /// Encrypts `buf` in place and returns the tag.
    fn seal_in_place(&self, iv: &[u8; IV_LEN], aad: &[u8], buf: &mut [u8]) -> CResult<[u8; TAG_LEN]>;

    /// Encrypts `plaintext` into `out` (same length) and returns the tag:
    /// one pass, no copy of the plaintext first.
    fn seal_to(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> CResult<[u8; TAG_LEN]>;

    /// Decrypts `buf` = ciphertext || tag in place; returns the plaintext
    /// length. On failure the whole buffer is zeroized, so no unverified
    /// plaintext is ever left behind.
    fn open_in_place(&self, iv: &[u8; IV_LEN], aad: &[u8], buf: &mut [u8]) -> CResult<usize>;

    /// Decrypts `ciphertext` with `tag` into `out` (same length as the
    /// ciphertext). On failure `out` is zeroized.
    fn open_to(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8; TAG_LEN],
        out: &mut [u8],
    ) -> CResult<()>;
}

/// Incremental ECDSA signer over a freshly generated key pair.
pub(crate) trait Signer: Send + Sync {
    /// A signer with the same key and nothing absorbed: a cached signing
    /// key signs each message that reuses it from the start.
    fn fresh(&self) -> Box<dyn Signer>;
    /// Absorbs message bytes.
    fn update(&mut self, data: &[u8]);
    /// DER signature over everything absorbed. Re-signs until the DER has the
    /// curve's canonical length, as the reference ESDK writers do.
    fn sign(self: Box<Self>) -> CResult<Vec<u8>>;
}

/// Incremental ECDSA verifier.
pub(crate) trait Verifier: Send {
    /// Absorbs message bytes.
    fn update(&mut self, data: &[u8]);
    /// Checks a DER signature over everything absorbed.
    fn verify(self: Box<Self>, signature_der: &[u8]) -> CResult<()>;
}

/// RSA public key (encrypt only).
pub(crate) trait RsaPublic: Send + Sync {
    fn encrypt(&self, padding: RsaPadding, plaintext: &[u8]) -> CResult<Vec<u8>>;
}

/// RSA private key (decrypt only).
pub(crate) trait RsaPrivate: Send + Sync {
    fn decrypt(&self, padding: RsaPadding, ciphertext: &[u8]) -> CResult<Zeroizing<Vec<u8>>>;
}

/// One HKDF-Expand output: the info pieces (concatenated) and where to write.
pub(crate) struct Expand<'a> {
    pub info: &'a [&'a [u8]],
    pub out: &'a mut [u8],
}

/// The primitives a backend provides.
pub(crate) trait Provider: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// The library the primitives run in, and whether it is in FIPS mode.
    fn module(&self) -> CryptoModule;
    /// An AES-GCM key; `key` is 16, 24 or 32 bytes.
    fn aead(&self, key: &[u8]) -> CResult<Box<dyn Aead>>;
    /// Fills `buf` from the system CSPRNG.
    fn fill_random(&self, buf: &mut [u8]) -> CResult<()>;
    /// Generates a signing key pair; returns the signer and the SEC1
    /// compressed public point.
    fn signer(&self, curve: Curve) -> CResult<(Box<dyn Signer>, Vec<u8>)>;
    /// A verifier for a SEC1 (compressed or not) public point.
    fn verifier(&self, curve: Curve, public_point: &[u8]) -> CResult<Box<dyn Verifier>>;
    /// Parses a DER SubjectPublicKeyInfo RSA public key.
    fn rsa_public_from_der(&self, spki_der: &[u8]) -> CResult<Box<dyn RsaPublic>>;
    /// Parses a DER PKCS#8 RSA private key.
    fn rsa_private_from_der(&self, pkcs8_der: &[u8]) -> CResult<Box<dyn RsaPrivate>>;
    /// ECDH: the x-coordinate of `private` (PKCS#8 DER) times `peer` (a
    /// SEC1 point on the same curve).
    fn ecdh(&self, curve: Curve, private_pkcs8: &[u8], peer: &[u8]) -> CResult<Zeroizing<Vec<u8>>>;
    /// ECDH with a fresh key pair: the shared secret and the fresh public
    /// key (SEC1 compressed).
    fn ecdh_ephemeral(&self, curve: Curve, peer: &[u8]) -> CResult<(Zeroizing<Vec<u8>>, Vec<u8>)>;
}

/// The cryptographic library a [`Backend`]'s primitives run in, as
/// [`Backend::module`] reports it (for `envseal doctor` and logs).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CryptoModule {
    /// `AWS-LC`, `AWS-LC-FIPS` (the validated module, feature `fips`) or
    /// `RustCrypto`.
    pub name: &'static str,
    /// The library's release (AWS-LC's own version string, e.g. `4.2.0`),
    /// when known.
    pub version: Option<&'static str>,
    /// The FIPS module version the build corresponds to (an integer that
    /// names a validation submission: `4` for the module aws-lc-fips-sys
    /// 0.14.4 builds), from the module's headers; `None` outside the FIPS
    /// build.
    pub module_version: Option<u32>,
    /// Whether the module reports that it runs in FIPS mode (AWS-LC's
    /// `FIPS_mode()`): true only in the FIPS build.
    pub fips_mode: bool,
}

impl fmt::Display for CryptoModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)?;
        match (self.module_version, self.version) {
            (Some(m), Some(v)) => write!(f, " {m}.x (AWS-LC {v})")?,
            (Some(m), None) => write!(f, " {m}.x")?,
            (None, Some(v)) => write!(f, " {v}")?,
            (None, None) => {}
        }
        f.write_str(if self.fips_mode {
            ", FIPS mode on"
        } else {
            ", FIPS mode off"
        })
    }
}

/// Which implementation of the primitives to use. Cheap to copy.
///
/// [`Backend::default()`] is aws-lc-rs when the `aws-lc` feature is on (the
/// default), RustCrypto otherwise.
#[derive(Clone, Copy)]
pub struct Backend(&'static dyn Provider);

impl Backend {
    /// The aws-lc-rs backend.
    #[cfg(feature = "aws-lc")]
    pub fn aws_lc() -> Self {
        Backend(&aws_lc::AwsLc)
    }

    /// The pure-Rust RustCrypto backend.
    ///
    /// **Warning:** its RSA decryption (`rsa` crate) is not constant-time
    /// (RUSTSEC-2023-0071); prefer aws-lc for raw RSA keyrings that decrypt
    /// attacker-supplied messages in a setting where timing can be observed.
    #[cfg(feature = "rustcrypto")]
    pub fn rustcrypto() -> Self {
        Backend(&rustcrypto::RustCrypto)
    }

    /// Every backend compiled in, default first.
    pub fn all() -> Vec<Backend> {
        [
            #[cfg(feature = "aws-lc")]
            Backend::aws_lc(),
            #[cfg(feature = "rustcrypto")]
            Backend::rustcrypto(),
        ]
        .to_vec()
    }

    /// The backend's name: `aws-lc` or `rustcrypto`.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    pub(crate) fn provider(&self) -> &'static dyn Provider {
        self.0
    }

    /// The library this backend's primitives run in and its FIPS mode.
    pub fn module(&self) -> CryptoModule {
        self.0.module()
    }

    /// In the FIPS build (feature `fips`), checks that the module runs in
    /// FIPS mode: every client build calls it, so that nothing is
    /// encrypted or decrypted outside it. Elsewhere nothing to check.
    ///
    /// # Errors
    /// [`crate::Error::Fips`] when the FIPS build's module is not in FIPS
    /// mode.
    pub(crate) fn require_fips_mode(&self) -> crate::Result<()> {
        #[cfg(feature = "fips")]
        {
            let module = self.module();
            if !module.fips_mode {
                return Err(crate::Error::Fips(format!(
                    "the crypto module ({module}) is not in FIPS mode; this envseal was built with \
                     feature `fips` and runs nothing outside it"
                )));
            }
        }
        Ok(())
    }

    /// Fills `buf` with random bytes.
    pub(crate) fn fill_random(&self, buf: &mut [u8]) -> crate::Result<()> {
        self.0
            .fill_random(buf)
            .map_err(|_| crate::Error::Backend("random source"))
    }
}

/// Random bytes for one message, drawn from the backend's CSPRNG in one call
/// and handed out in order, each wiped from the pool as it is taken. A call
/// to the CSPRNG costs about the same for 12 or 96 bytes (aws-lc: about
/// 0.35 µs, most of it reseeding checks and RDRAND), and an uncached
/// message needs three draws (message id, data key, wrapping IV). Once the
/// pool runs short, requests go to the CSPRNG directly.
pub(crate) struct RandomPool {
    /// On the heap, so that moving the pool (into the materials) copies a
    /// pointer, never the bytes that become the data key.
    bytes: Zeroizing<Vec<u8>>,
    next: usize,
    backend: Backend,
}

impl RandomPool {
    /// The most a pool holds.
    pub(crate) const CAPACITY: usize = 96;

    /// Draws `len` bytes (at most [`Self::CAPACITY`]) in one call.
    pub(crate) fn draw(backend: Backend, len: usize) -> crate::Result<Self> {
        let mut bytes = Zeroizing::new(vec![0u8; len.min(Self::CAPACITY)]);
        backend.fill_random(&mut bytes)?;
        Ok(RandomPool {
            bytes,
            next: 0,
            backend,
        })
    }

    /// Fills `buf` from the pool, or from the CSPRNG if too few bytes are left.
    pub(crate) fn fill(&mut self, buf: &mut [u8]) -> crate::Result<()> {
        let Some(taken) = self
            .bytes
            .get_mut(self.next..)
            .and_then(|rest| rest.get_mut(..buf.len()))
        else {
            return self.backend.fill_random(buf);
        };
        buf.copy_from_slice(taken);
        taken.zeroize();
        self.next += buf.len();
        Ok(())
    }
}

impl fmt::Debug for RandomPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RandomPool")
            .field("left", &(self.bytes.len() - self.next))
            .finish_non_exhaustive()
    }
}

impl Default for Backend {
    fn default() -> Self {
        #[cfg(feature = "aws-lc")]
        {
            Backend::aws_lc()
        }
        #[cfg(not(feature = "aws-lc"))]
        {
            Backend::rustcrypto()
        }
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Backend").field(&self.name()).finish()
    }
}

impl PartialEq for Backend {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}
impl Eq for Backend {}

#[cfg(test)]
mod tests;
