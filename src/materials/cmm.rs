//! The default materials manager. Spec: `framework/default-cmm.md`,
//! `framework/required-encryption-context-cmm.md` (reproduced context).

use std::sync::Arc;

use base64::Engine as _;

use super::{DecryptionMaterials, EncryptionMaterials, Keyring};
use crate::crypto::{Backend, DataKey, KeyCheck, RandomPool, Signer, Verifier};
use crate::error::{Error, FormatError, LimitError, PolicyError, Result};
use crate::format::header::{materials_section, ParsedHeader};
use crate::format::{EncryptedDataKey, EncryptionContext, PUBLIC_KEY_FIELD, RESERVED_PREFIX};
use crate::suite::AlgorithmSuite;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What an encrypt asks the materials for.
#[derive(Clone, Copy)]
pub(crate) struct EncryptRequest<'a> {
    pub suite: AlgorithmSuite,
    pub context: &'a EncryptionContext,
    pub backend: Backend,
    pub max_edks: Option<usize>,
    /// Required encryption context keys: authenticated, not stored.
    pub required: &'a [String],
}

/// Encryption materials ready for the message engine. Immutable, so a
/// cache shares one value among the messages that reuse it.
pub(crate) struct EncryptMaterialsOut {
    pub data_key: DataKey,
    /// The full context (stored pairs, public key, authenticated-only pairs).
    pub context: EncryptionContext,
    /// The stored context and encrypted data keys as serialized in the header.
    pub header_section: Vec<u8>,
    /// The required (authenticated-only) pairs, serialized: appended to the
    /// header body in the header tag's AAD (empty when there are none).
    pub auth_only: Vec<u8>,
    /// The encrypted data keys, as in the header section.
    pub edks: Vec<EncryptedDataKey>,
    /// For signed suites: the signing key, nothing absorbed. Each message
    /// signs with [`Signer::fresh`].
    pub signer: Option<Box<dyn Signer>>,
}

impl EncryptMaterialsOut {
    /// The header stores `context` minus the `required` keys; those pairs
    /// are authenticated only.
    pub(crate) fn new(
        data_key: DataKey,
        edks: Vec<EncryptedDataKey>,
        context: EncryptionContext,
        required: &[String],
        signer: Option<Box<dyn Signer>>,
    ) -> Result<Self> {
        let mut stored = context.clone();
        let mut auth_only = EncryptionContext::new();
        for k in required {
            if let Some(v) = stored.remove(k) {
                auth_only.insert(k.clone(), v);
            }
        }
        Ok(EncryptMaterialsOut {
            header_section: materials_section(&stored, &edks)?,
            auth_only: auth_only.serialize()?,
            edks,
            data_key,
            context,
            signer,
        })
    }
}

/// Gets encryption materials: validates the caller's context, creates the
/// signing key for signed suites, and asks the keyring for the data key.
pub(crate) async fn encryption_materials(
    keyring: &dyn Keyring,
    request: EncryptRequest<'_>,
    random: Option<RandomPool>,
) -> Result<EncryptMaterialsOut> {
    let EncryptRequest {
        suite,
        context,
        backend,
        max_edks,
        required,
    } = request;
    if let Some((k, _)) = context.iter().find(|(k, _)| k.starts_with(RESERVED_PREFIX)) {
        return Err(Error::config(
            "encryption context",
            format!("key {k:?} uses the reserved prefix \"{RESERVED_PREFIX}\""),
        ));
    }
    if let Some(k) = required.iter().find(|k| !context.contains_key(k)) {
        return Err(Error::config(
            "encryption context",
            format!("the required key {k:?} is not in the encryption context"),
        ));
    }
    let mut full = context.clone();
    let signer = match suite.signature() {
        Some(curve) => {
            let (signer, public) = backend
                .provider()
                .signer(curve)
                .map_err(|_| Error::Backend("signing key generation"))?;
            full.insert(PUBLIC_KEY_FIELD, B64.encode(public));
            Some(signer)
        }
        None => None,
    };
    let mut materials = EncryptionMaterials::new(suite, full, backend, random);
    keyring.on_encrypt(&mut materials).await?;
    let (data_key, edks, context) = materials.into_parts();
    let data_key = data_key.ok_or_else(|| Error::keyring("encrypt", "no keyring generated a data key"))?;
    if edks.is_empty() {
        return Err(Error::keyring(
            "encrypt",
            "no keyring produced an encrypted data key",
        ));
    }
    if let Some(max) = max_edks {
        if edks.len() > max {
            return Err(LimitError::TooManyEncryptedDataKeys {
                found: edks.len(),
                max,
            }
            .into());
        }
    }
    EncryptMaterialsOut::new(data_key, edks, context, required, signer)
}

/// Decryption materials ready for the message engine.
pub(crate) struct DecryptMaterialsOut {
    pub data_key: DataKey,
    /// Stored pairs plus reproduced pairs.
    pub context: EncryptionContext,
    /// Opens the header with the data key (commitment, header tag).
    pub check: Arc<KeyCheck>,
    pub verifier: Option<Box<dyn Verifier>>,
}

/// Gets decryption materials: reconciles the reproduced context with the
/// stored one, checks the public key against the suite, and asks the
/// keyring for the data key.
pub(crate) async fn decryption_materials(
    source: super::Source<'_>,
    header: &ParsedHeader,
    reproduced: &EncryptionContext,
    backend: Backend,
) -> Result<DecryptMaterialsOut> {
    let suite = header.body.suite;
    let stored = &header.body.context;
    let edks = &header.body.edks;
    let mut full = stored.clone();
    // Reproduced pairs the header does not store: authenticated through
    // the header tag's AAD, after the header body.
    let mut authenticated_only = EncryptionContext::new();
    for (k, v) in reproduced.iter() {
        match stored.get(k) {
            Some(stored_v) if stored_v == v => {}
            Some(_) => return Err(PolicyError::ContextMismatch(k.to_owned()).into()),
            None => {
                full.insert(k, v);
                authenticated_only.insert(k, v);
            }
        }
    }
    let mut aad = header.body_bytes.clone();
    authenticated_only.serialize_into(&mut aad)?;
    let check = Arc::new(KeyCheck {
        backend,
        suite,
        message_id: header.body.message_id.clone(),
        commitment: header.body.suite_data,
        aad,
        iv: header.auth.iv,
        tag: header.auth.tag,
    });
    let verifier = match (suite.signature(), stored.get(PUBLIC_KEY_FIELD)) {
        (Some(curve), Some(encoded)) => {
            let point = B64.decode(encoded).map_err(|_| FormatError::Invalid {
                field: "aws-crypto-public-key",
                reason: "not base64",
            })?;
            Some(
                backend
                    .provider()
                    .verifier(curve, &point)
                    .map_err(|_| FormatError::Invalid {
                        field: "aws-crypto-public-key",
                        reason: "not a valid public key for the suite's curve",
                    })?,
            )
        }
        (None, None) => None,
        _ => return Err(PolicyError::PublicKeyMismatch.into()),
    };
    let materials = DecryptionMaterials::new(suite, full, backend, check);
    let data_key = match source.on_decrypt(&materials, edks).await? {
        Some(k) if k.len() == suite.data_key_len() => k,
        Some(_) => return Err(Error::Decrypt),
        None => return Err(Error::NoMatchingKey { edks: edks.len() }),
    };
    Ok(DecryptMaterialsOut {
        data_key,
        check: Arc::clone(materials.key_check()),
        context: materials.context().clone(),
        verifier,
    })
}
