//! The value parsers of the command line's options and the key specs
//! they make.

use std::path::PathBuf;

use envseal::{AlgorithmSuite, CommitmentPolicy, EncryptionContext, RsaPadding};

use crate::error::Failure;

#[derive(Clone, Debug)]
pub(crate) struct AesKeySpec {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) file: PathBuf,
}

#[derive(Clone, Debug)]
pub(crate) struct RsaKeySpec {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) padding: RsaPadding,
    pub(crate) file: PathBuf,
}

/// A raw ECDH key option: the curve and one or two files.
#[derive(Clone, Debug)]
pub(crate) struct EcdhSpec {
    pub(crate) curve: envseal::Curve,
    pub(crate) files: Vec<PathBuf>,
}

fn parse_ecdh(s: &str, files: usize, want: &str) -> Result<EcdhSpec, String> {
    let parts: Vec<&str> = s.splitn(files + 1, ':').collect();
    if parts.len() != files + 1 || parts.iter().any(|p| p.is_empty()) {
        return Err(format!("expected {want}"));
    }
    let curve = envseal::Curve::parse(parts[0])
        .ok_or_else(|| format!("unknown curve {:?} (expected p256, p384 or p521)", parts[0]))?;
    Ok(EcdhSpec {
        curve,
        files: parts[1..].iter().map(PathBuf::from).collect(),
    })
}

pub(crate) fn parse_ecdh_static(s: &str) -> Result<EcdhSpec, String> {
    parse_ecdh(s, 2, "CURVE:SENDER_PRIVATE_PEM:RECIPIENT_PUBLIC_FILE")
}

pub(crate) fn parse_ecdh_one(s: &str) -> Result<EcdhSpec, String> {
    parse_ecdh(s, 1, "CURVE:KEY_FILE")
}

/// A `--kms-ecdh-*` option: the curve, a public key file (static) and the
/// KMS key ARN.
#[derive(Clone, Debug)]
pub(crate) struct KmsEcdhSpec {
    pub(crate) curve: envseal::Curve,
    pub(crate) public_file: Option<PathBuf>,
    pub(crate) arn: String,
}

fn ecdh_curve(text: &str) -> Result<envseal::Curve, String> {
    envseal::Curve::parse(text).ok_or_else(|| format!("unknown curve {text:?} (expected p256, p384 or p521)"))
}

pub(crate) fn parse_kms_ecdh_static(s: &str) -> Result<KmsEcdhSpec, String> {
    match s.splitn(3, ':').collect::<Vec<_>>()[..] {
        [curve, file, arn] if !file.is_empty() && arn.starts_with("arn:") => Ok(KmsEcdhSpec {
            curve: ecdh_curve(curve)?,
            public_file: Some(PathBuf::from(file)),
            arn: arn.to_owned(),
        }),
        _ => Err("expected CURVE:RECIPIENT_PUBLIC_FILE:SENDER_KMS_ARN".into()),
    }
}

pub(crate) fn parse_kms_ecdh_discovery(s: &str) -> Result<KmsEcdhSpec, String> {
    match s.split_once(':') {
        Some((curve, arn)) if arn.starts_with("arn:") => Ok(KmsEcdhSpec {
            curve: ecdh_curve(curve)?,
            public_file: None,
            arn: arn.to_owned(),
        }),
        _ => Err("expected CURVE:RECIPIENT_KMS_ARN".into()),
    }
}

pub(crate) fn parse_aes_spec(s: &str) -> Result<AesKeySpec, String> {
    let mut parts = s.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(namespace), Some(name), Some(file)) if !file.is_empty() => Ok(AesKeySpec {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            file: PathBuf::from(file),
        }),
        _ => Err("expected NAMESPACE:NAME:FILE".into()),
    }
}

pub(crate) fn parse_rsa_spec(s: &str) -> Result<RsaKeySpec, String> {
    let mut parts = s.splitn(4, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(namespace), Some(name), Some(padding), Some(file)) if !file.is_empty() => {
            let padding = RsaPadding::parse(padding).ok_or_else(|| {
                format!(
                    "unknown RSA padding {padding:?} (expected oaep-sha1, oaep-sha256, oaep-sha384, oaep-sha512 or pkcs1)"
                )
            })?;
            Ok(RsaKeySpec {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                padding,
                file: PathBuf::from(file),
            })
        }
        _ => Err("expected NAMESPACE:NAME:PADDING:PEMFILE".into()),
    }
}

pub(crate) fn parse_context_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
        None => Err("expected KEY=VALUE".into()),
    }
}

/// The encryption context of the `--context` pairs; a key given twice is
/// a usage error.
pub(crate) fn build_context(pairs: &[(String, String)]) -> Result<EncryptionContext, Failure> {
    let mut ctx = EncryptionContext::new();
    for (k, v) in pairs {
        if ctx.insert(k.clone(), v.clone()).is_some() {
            return Err(Failure::Usage(format!(
                "--context key {k:?} given more than once"
            )));
        }
    }
    Ok(ctx)
}

pub(crate) fn parse_policy(s: &str) -> Result<CommitmentPolicy, String> {
    CommitmentPolicy::parse(s).ok_or_else(|| {
        "expected require-encrypt-require-decrypt, require-encrypt-allow-decrypt or forbid-encrypt-allow-decrypt"
            .into()
    })
}

pub(crate) fn parse_suite(s: &str) -> Result<AlgorithmSuite, String> {
    AlgorithmSuite::parse(s).ok_or_else(|| {
        "unknown algorithm suite (expected an ESDK name such as AES_256_GCM_HKDF_SHA512_COMMIT_KEY or a hex ID such as 0x0478)"
            .into()
    })
}
