//! The eleven ESDK algorithm suites, as data.
//!
//! Spec: `framework/algorithm-suites.md`. Both the codec (`format`) and the
//! primitives (`crypto`) read this table; it holds no key material.

use std::fmt;

/// Message format version a suite is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::exhaustive_enums)] // the ESDK defines exactly two
pub enum MessageVersion {
    /// Version 1 (non-committing suites, 16-byte message ID).
    V1,
    /// Version 2 (committing suites, 32-byte message ID).
    V2,
}

/// How the data key becomes the content-encryption key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kdf {
    /// The data key is used as is (legacy suites `00xx`).
    Identity,
    /// HKDF-SHA256, empty salt, info = suite id || message id.
    HkdfSha256,
    /// HKDF-SHA384, empty salt, info = suite id || message id.
    HkdfSha384,
    /// HKDF-SHA512 with the message id as salt and key commitment.
    HkdfSha512Commit,
}

/// A NIST curve: the one a suite signs with (P-256, P-384) and the one an
/// ECDH keyring agrees keys on (P-256, P-384, P-521).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Curve {
    /// P-256 (`ECC_NIST_P256`); ECDSA with SHA-256.
    P256,
    /// P-384 (`ECC_NIST_P384`); ECDSA with SHA-384.
    P384,
    /// P-521 (`ECC_NIST_P521`); ECDH only, no suite signs with it.
    P521,
}

impl Curve {
    /// Parses `p256`, `p384` or `p521` (any case, `-` and `_` ignored, so
    /// `P-384` and `ECC_NIST_P384` work too).
    pub fn parse(text: &str) -> Option<Self> {
        let t: String = text
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        match t.trim_start_matches("eccnist") {
            "p256" => Some(Curve::P256),
            "p384" => Some(Curve::P384),
            "p521" => Some(Curve::P521),
            _ => None,
        }
    }

    /// The name in the ECDH key derivation's fixed info: `p256`, `p384`,
    /// `p521`.
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "p256",
            Curve::P384 => "p384",
            Curve::P521 => "p521",
        }
    }

    /// Length of a field element, and of an ECDH shared secret (the
    /// x-coordinate): 32, 48, 66.
    pub const fn field_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// Length of a SEC1 compressed public point (33, 49, 67).
    pub const fn compressed_point_len(self) -> usize {
        self.field_len() + 1
    }

    /// Length of the longest DER ECDSA signature (72, 104, 139); reference
    /// writers always emit signatures of exactly this length.
    pub const fn max_signature_len(self) -> usize {
        match self {
            Curve::P256 => 72,
            Curve::P384 => 104,
            Curve::P521 => 139,
        }
    }

    /// Length that reference ESDK writers (Python, .NET) pad signatures to
    /// by re-signing; `None` for P-521, which no suite signs with.
    pub(crate) const fn canonical_signature_len(self) -> Option<usize> {
        match self {
            Curve::P256 => Some(71),
            Curve::P384 => Some(103),
            Curve::P521 => None,
        }
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An ESDK algorithm suite.
///
/// All suites use AES-GCM with a 12-byte IV and a 16-byte tag.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AlgorithmSuite {
    /// `0x0014` AES-128-GCM, no KDF.
    Aes128GcmIv12Tag16NoKdf,
    /// `0x0046` AES-192-GCM, no KDF.
    Aes192GcmIv12Tag16NoKdf,
    /// `0x0078` AES-256-GCM, no KDF.
    Aes256GcmIv12Tag16NoKdf,
    /// `0x0114` AES-128-GCM, HKDF-SHA256.
    Aes128GcmIv12Tag16HkdfSha256,
    /// `0x0146` AES-192-GCM, HKDF-SHA256.
    Aes192GcmIv12Tag16HkdfSha256,
    /// `0x0178` AES-256-GCM, HKDF-SHA256.
    Aes256GcmIv12Tag16HkdfSha256,
    /// `0x0214` AES-128-GCM, HKDF-SHA256, ECDSA P-256.
    Aes128GcmIv12Tag16HkdfSha256EcdsaP256,
    /// `0x0346` AES-192-GCM, HKDF-SHA384, ECDSA P-384.
    Aes192GcmIv12Tag16HkdfSha384EcdsaP384,
    /// `0x0378` AES-256-GCM, HKDF-SHA384, ECDSA P-384.
    Aes256GcmIv12Tag16HkdfSha384EcdsaP384,
    /// `0x0478` AES-256-GCM, HKDF-SHA512, key commitment.
    Aes256GcmHkdfSha512CommitKey,
    /// `0x0578` AES-256-GCM, HKDF-SHA512, key commitment, ECDSA P-384 (the default).
    Aes256GcmHkdfSha512CommitKeyEcdsaP384,
}

use AlgorithmSuite as S;

impl AlgorithmSuite {
    /// Every suite, in ID order.
    pub const ALL: [AlgorithmSuite; 11] = [
        S::Aes128GcmIv12Tag16NoKdf,
        S::Aes192GcmIv12Tag16NoKdf,
        S::Aes256GcmIv12Tag16NoKdf,
        S::Aes128GcmIv12Tag16HkdfSha256,
        S::Aes192GcmIv12Tag16HkdfSha256,
        S::Aes256GcmIv12Tag16HkdfSha256,
        S::Aes128GcmIv12Tag16HkdfSha256EcdsaP256,
        S::Aes192GcmIv12Tag16HkdfSha384EcdsaP384,
        S::Aes256GcmIv12Tag16HkdfSha384EcdsaP384,
        S::Aes256GcmHkdfSha512CommitKey,
        S::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
    ];

    /// AES-GCM IV length for every suite.
    pub const IV_LEN: usize = 12;
    /// AES-GCM tag length for every suite.
    pub const TAG_LEN: usize = 16;
    /// Length of the v2 algorithm suite data (the commitment key).
    pub const COMMITMENT_LEN: usize = 32;

    /// The two-byte suite ID written in the header.
    pub const fn id(self) -> u16 {
        match self {
            S::Aes128GcmIv12Tag16NoKdf => 0x0014,
            S::Aes192GcmIv12Tag16NoKdf => 0x0046,
            S::Aes256GcmIv12Tag16NoKdf => 0x0078,
            S::Aes128GcmIv12Tag16HkdfSha256 => 0x0114,
            S::Aes192GcmIv12Tag16HkdfSha256 => 0x0146,
            S::Aes256GcmIv12Tag16HkdfSha256 => 0x0178,
            S::Aes128GcmIv12Tag16HkdfSha256EcdsaP256 => 0x0214,
            S::Aes192GcmIv12Tag16HkdfSha384EcdsaP384 => 0x0346,
            S::Aes256GcmIv12Tag16HkdfSha384EcdsaP384 => 0x0378,
            S::Aes256GcmHkdfSha512CommitKey => 0x0478,
            S::Aes256GcmHkdfSha512CommitKeyEcdsaP384 => 0x0578,
        }
    }

    /// Looks a suite up by its ID; `None` for IDs that are not ESDK suites.
    pub fn from_id(id: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The ESDK name, e.g. `AES_256_GCM_HKDF_SHA512_COMMIT_KEY`.
    pub const fn name(self) -> &'static str {
        match self {
            S::Aes128GcmIv12Tag16NoKdf => "AES_128_GCM_IV12_TAG16_NO_KDF",
            S::Aes192GcmIv12Tag16NoKdf => "AES_192_GCM_IV12_TAG16_NO_KDF",
            S::Aes256GcmIv12Tag16NoKdf => "AES_256_GCM_IV12_TAG16_NO_KDF",
            S::Aes128GcmIv12Tag16HkdfSha256 => "AES_128_GCM_IV12_TAG16_HKDF_SHA256",
            S::Aes192GcmIv12Tag16HkdfSha256 => "AES_192_GCM_IV12_TAG16_HKDF_SHA256",
            S::Aes256GcmIv12Tag16HkdfSha256 => "AES_256_GCM_IV12_TAG16_HKDF_SHA256",
            S::Aes128GcmIv12Tag16HkdfSha256EcdsaP256 => "AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256",
            S::Aes192GcmIv12Tag16HkdfSha384EcdsaP384 => "AES_192_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384",
            S::Aes256GcmIv12Tag16HkdfSha384EcdsaP384 => "AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384",
            S::Aes256GcmHkdfSha512CommitKey => "AES_256_GCM_HKDF_SHA512_COMMIT_KEY",
            S::Aes256GcmHkdfSha512CommitKeyEcdsaP384 => "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384",
        }
    }

    /// Parses an ESDK suite name (with or without the `ALG_` prefix, any
    /// case) or a hex ID such as `0x0478`.
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        if let Some(hex) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            return u16::from_str_radix(hex, 16).ok().and_then(Self::from_id);
        }
        let upper = t.to_ascii_uppercase();
        let name = upper.strip_prefix("ALG_").unwrap_or(&upper);
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Message format version this suite is written in.
    pub const fn message_version(self) -> MessageVersion {
        if self.is_committing() {
            MessageVersion::V2
        } else {
            MessageVersion::V1
        }
    }

    /// Length in bytes of the AES key used for content encryption.
    pub const fn encryption_key_len(self) -> usize {
        match self {
            S::Aes128GcmIv12Tag16NoKdf
            | S::Aes128GcmIv12Tag16HkdfSha256
            | S::Aes128GcmIv12Tag16HkdfSha256EcdsaP256 => 16,
            S::Aes192GcmIv12Tag16NoKdf
            | S::Aes192GcmIv12Tag16HkdfSha256
            | S::Aes192GcmIv12Tag16HkdfSha384EcdsaP384 => 24,
            _ => 32,
        }
    }

    /// Length of the plaintext data key keyrings generate and unwrap
    /// (the KDF input). Equal to the encryption key length for every suite.
    pub const fn data_key_len(self) -> usize {
        self.encryption_key_len()
    }

    /// Key derivation function.
    pub const fn kdf(self) -> Kdf {
        match self {
            S::Aes128GcmIv12Tag16NoKdf | S::Aes192GcmIv12Tag16NoKdf | S::Aes256GcmIv12Tag16NoKdf => {
                Kdf::Identity
            }
            S::Aes128GcmIv12Tag16HkdfSha256
            | S::Aes192GcmIv12Tag16HkdfSha256
            | S::Aes256GcmIv12Tag16HkdfSha256
            | S::Aes128GcmIv12Tag16HkdfSha256EcdsaP256 => Kdf::HkdfSha256,
            S::Aes192GcmIv12Tag16HkdfSha384EcdsaP384 | S::Aes256GcmIv12Tag16HkdfSha384EcdsaP384 => {
                Kdf::HkdfSha384
            }
            S::Aes256GcmHkdfSha512CommitKey | S::Aes256GcmHkdfSha512CommitKeyEcdsaP384 => {
                Kdf::HkdfSha512Commit
            }
        }
    }

    /// Whether the suite commits to its key (v2 suites).
    pub const fn is_committing(self) -> bool {
        matches!(
            self,
            S::Aes256GcmHkdfSha512CommitKey | S::Aes256GcmHkdfSha512CommitKeyEcdsaP384
        )
    }

    /// The signature curve, if the suite signs.
    pub const fn signature(self) -> Option<Curve> {
        match self {
            S::Aes128GcmIv12Tag16HkdfSha256EcdsaP256 => Some(Curve::P256),
            S::Aes192GcmIv12Tag16HkdfSha384EcdsaP384
            | S::Aes256GcmIv12Tag16HkdfSha384EcdsaP384
            | S::Aes256GcmHkdfSha512CommitKeyEcdsaP384 => Some(Curve::P384),
            _ => None,
        }
    }

    /// Whether the suite signs (has a footer).
    pub const fn is_signed(self) -> bool {
        self.signature().is_some()
    }

    /// Length of the message ID for this suite's message version.
    pub const fn message_id_len(self) -> usize {
        match self.message_version() {
            MessageVersion::V1 => 16,
            MessageVersion::V2 => 32,
        }
    }

    /// Length of the v2 algorithm suite data (0 for v1 suites).
    pub const fn suite_data_len(self) -> usize {
        if self.is_committing() {
            Self::COMMITMENT_LEN
        } else {
            0
        }
    }
}

impl fmt::Debug for AlgorithmSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(0x{:04X})", self.name(), self.id())
    }
}

impl fmt::Display for AlgorithmSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_names_parse_back() {
        for (curve, name, len) in [
            (Curve::P256, "p256", 33),
            (Curve::P384, "p384", 49),
            (Curve::P521, "p521", 67),
        ] {
            assert_eq!(curve.to_string(), name);
            assert_eq!(Curve::parse(name), Some(curve));
            assert_eq!(curve.compressed_point_len(), len);
        }
        assert_eq!(Curve::parse("ECC_NIST_P384"), Some(Curve::P384));
        assert_eq!(Curve::parse("P-521"), Some(Curve::P521));
        assert_eq!(Curve::parse("p224"), None);
    }

    #[test]
    fn ids_round_trip_and_parse() {
        for s in AlgorithmSuite::ALL {
            assert_eq!(AlgorithmSuite::from_id(s.id()), Some(s));
            assert_eq!(AlgorithmSuite::parse(s.name()), Some(s));
            assert_eq!(AlgorithmSuite::parse(&format!("ALG_{}", s.name())), Some(s));
            assert_eq!(AlgorithmSuite::parse(&format!("0x{:04x}", s.id())), Some(s));
            assert_eq!(s.data_key_len(), s.encryption_key_len());
        }
        for bad in [0x0000u16, 0x0070, 0x0074, 0x6700, 0x6701, 0x0479] {
            assert_eq!(AlgorithmSuite::from_id(bad), None);
        }
        assert_eq!(AlgorithmSuite::parse("nope"), None);
        assert_eq!(AlgorithmSuite::parse("0xzz"), None);
    }

    #[test]
    fn table_matches_spec() {
        let committing: Vec<u16> = AlgorithmSuite::ALL
            .iter()
            .filter(|s| s.is_committing())
            .map(|s| s.id())
            .collect();
        assert_eq!(committing, [0x0478, 0x0578]);
        let signed: Vec<u16> = AlgorithmSuite::ALL
            .iter()
            .filter(|s| s.is_signed())
            .map(|s| s.id())
            .collect();
        assert_eq!(signed, [0x0214, 0x0346, 0x0378, 0x0578]);
        assert_eq!(
            AlgorithmSuite::Aes192GcmIv12Tag16HkdfSha384EcdsaP384.encryption_key_len(),
            24
        );
    }
}
