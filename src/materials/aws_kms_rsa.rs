//! The AWS KMS RSA keyring. Spec: `framework/aws-kms/aws-kms-rsa-keyring.md`.
//!
//! Encrypt is local: RSA-OAEP (SHA-1 or SHA-256, MGF1 with the same hash)
//! with the KMS key's public key over SHA-384(serialized context) ‖ data
//! key. Decrypt takes the EDKs whose key ARN matches the configured one
//! ("AWS KMS MRK Match for Decrypt": the same ARN, or a replica of the same
//! multi-Region key), asks KMS (`Decrypt` under the configured key with the
//! encryption algorithm, no context), then checks the response key id and
//! the context digest; when none decrypts, every EDK's failure is kept.
//! Signing suites are refused both ways, as the official libraries do.
//!
//! EDK: provider id `aws-kms-rsa`; provider info = the key ARN; ciphertext
//! = the RSA output.

use async_trait::async_trait;
use subtle::ConstantTimeEq;

use super::aws_kms::edk_arn;
use super::{DecryptionMaterials, EncryptionMaterials, Keyring, RsaPublicKey};
use crate::crypto::{sha384_concat, DataKey, RsaPadding};
use crate::error::{Error, Result};
use crate::format::EncryptedDataKey;
use crate::kms::{mrk_match, AwsError, AwsErrorKind, AwsOperation, CallArgs, KmsArn, KmsClient};
use crate::suite::AlgorithmSuite;

/// The AWS KMS RSA keyring's provider id.
pub const KMS_RSA_PROVIDER_ID: &str = "aws-kms-rsa";
const DIGEST_LEN: usize = 48;

/// Wraps data keys with a KMS RSA key (`RSA_2048` … `RSA_4096`,
/// `ENCRYPT_DECRYPT`): locally with its public key, unwrapped by KMS.
#[derive(Clone)]
pub struct KmsRsaKeyring {
    client: KmsClient,
    key_arn: String,
    padding: RsaPadding,
    public_key: Option<RsaPublicKey>,
    grant_tokens: Vec<String>,
}

impl std::fmt::Debug for KmsRsaKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsRsaKeyring")
            .field("key_arn", &self.key_arn)
            .field("padding", &self.padding)
            .field("public_key", &self.public_key.is_some())
            .finish_non_exhaustive()
    }
}

/// Builds a [`KmsRsaKeyring`]; see [`KmsRsaKeyring::builder`].
pub struct KmsRsaKeyringBuilder {
    client: KmsClient,
    key_arn: String,
    padding: RsaPadding,
    public_key: Option<RsaPublicKey>,
    grant_tokens: Vec<String>,
}

// Grant tokens are bearer credentials for a grant: counted, never shown.
impl std::fmt::Debug for KmsRsaKeyringBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsRsaKeyringBuilder")
            .field("key_arn", &self.key_arn)
            .field("padding", &self.padding)
            .field("public_key", &self.public_key.is_some())
            .field("grant_tokens", &self.grant_tokens.len())
            .finish_non_exhaustive()
    }
}

impl KmsRsaKeyringBuilder {
    /// The KMS key's public key (from KMS `GetPublicKey`, as PEM), needed
    /// to encrypt (default: none, the keyring only decrypts).
    pub fn public_key(mut self, key: RsaPublicKey) -> Self {
        self.public_key = Some(key);
        self
    }

    /// Grant tokens for the `Decrypt` calls (default: none).
    pub fn grant_tokens(mut self, tokens: impl IntoIterator<Item = String>) -> Self {
        self.grant_tokens = tokens.into_iter().collect();
        self
    }

    /// Checks the key and padding and builds the keyring.
    ///
    /// # Errors
    /// [`Error::Config`] when the key is not a key ARN or the padding is
    /// not one KMS offers.
    pub fn build(self) -> Result<KmsRsaKeyring> {
        let KmsRsaKeyringBuilder {
            client,
            key_arn,
            padding,
            public_key,
            grant_tokens,
        } = self;
        match key_arn.parse::<KmsArn>() {
            Ok(arn) if arn.resource_type() == "key" => {}
            _ => {
                return Err(Error::config(
                    "KMS RSA key",
                    format!("{key_arn:?} is not a KMS key ARN"),
                ))
            }
        }
        if !matches!(padding, RsaPadding::OaepSha1 | RsaPadding::OaepSha256) {
            return Err(Error::config(
                "KMS RSA padding",
                "KMS decrypts RSAES_OAEP_SHA_1 and RSAES_OAEP_SHA_256 only (oaep-sha1, oaep-sha256)",
            ));
        }
        Ok(KmsRsaKeyring {
            client,
            key_arn,
            padding,
            public_key,
            grant_tokens,
        })
    }
}

impl KmsRsaKeyring {
    /// A builder for the KMS RSA key `key_arn` with `padding`
    /// ([`RsaPadding::OaepSha1`] or [`RsaPadding::OaepSha256`]). Encrypting
    /// needs the key's public key ([`KmsRsaKeyringBuilder::public_key`]).
    pub fn builder(
        client: KmsClient,
        key_arn: impl Into<String>,
        padding: RsaPadding,
    ) -> KmsRsaKeyringBuilder {
        KmsRsaKeyringBuilder {
            client,
            key_arn: key_arn.into(),
            padding,
            public_key: None,
            grant_tokens: Vec::new(),
        }
    }

    fn algorithm(&self) -> &'static str {
        match self.padding {
            RsaPadding::OaepSha1 => "RSAES_OAEP_SHA_1",
            _ => "RSAES_OAEP_SHA_256",
        }
    }

    fn name(&self) -> String {
        format!("AWS KMS RSA {}", self.key_arn)
    }

    fn refuse_signing(&self, suite: AlgorithmSuite) -> Result<()> {
        if suite.signature().is_some() {
            return Err(Error::keyring(
                self.name(),
                format!(
                    "the AWS KMS RSA keyring does not work with signing suites ({suite}); use an unsigned \
                     suite such as 0x0478"
                ),
            ));
        }
        Ok(())
    }
}

/// SHA-384 of the serialized encryption context.
fn context_digest(materials_context: &crate::EncryptionContext) -> Result<[u8; DIGEST_LEN]> {
    Ok(sha384_concat(&[&materials_context.serialize()?]))
}

#[async_trait]
impl Keyring for KmsRsaKeyring {
    async fn on_encrypt(&self, materials: &mut EncryptionMaterials) -> Result<()> {
        self.refuse_signing(materials.suite())?;
        let public = self
            .public_key
            .as_ref()
            .ok_or_else(|| Error::keyring(self.name(), "encrypting needs the KMS key's public key"))?;
        if materials.data_key().is_none() {
            materials.generate_data_key()?;
        }
        let digest = context_digest(materials.context())?;
        let data_key = materials
            .data_key()
            .ok_or_else(|| Error::keyring(self.name(), "no data key"))?;
        let mut plaintext = zeroize::Zeroizing::new(Vec::with_capacity(DIGEST_LEN + data_key.len()));
        plaintext.extend_from_slice(&digest);
        plaintext.extend_from_slice(data_key.expose_secret());
        let ciphertext = public.encrypt(self.padding, &plaintext)?;
        materials.add_encrypted_data_key(EncryptedDataKey {
            provider_id: KMS_RSA_PROVIDER_ID.to_owned(),
            provider_info: self.key_arn.clone().into_bytes(),
            ciphertext,
        });
        Ok(())
    }

    async fn on_decrypt(
        &self,
        materials: &DecryptionMaterials,
        edks: &[EncryptedDataKey],
    ) -> Result<Option<DataKey>> {
        // Spec: the provider info MUST be a KMS key ARN (else OnDecrypt
        // fails), and MRK Match for Decrypt with the configured key picks
        // this keyring's EDKs (aws-kms-mrk-match-for-decrypt.md).
        let mut ours: Vec<&EncryptedDataKey> = Vec::new();
        for edk in edks.iter().filter(|e| e.provider_id == KMS_RSA_PROVIDER_ID) {
            let arn = edk_arn(edk, "aws-kms-rsa provider info")?.to_string();
            if mrk_match(&self.key_arn, &arn) {
                ours.push(edk);
            }
        }
        if ours.is_empty() {
            return Ok(None);
        }
        self.refuse_signing(materials.suite())?;
        let digest = context_digest(materials.context())?;
        let key_len = materials.suite().data_key_len();
        let deadline = self.client.deadline();
        let empty = crate::EncryptionContext::new();
        let mut failures = Vec::new();
        for edk in ours {
            let args = CallArgs {
                key_id: &self.key_arn,
                context: &empty,
                grant_tokens: &self.grant_tokens,
                deadline,
            };
            let invalid = |m: &str| -> Error {
                AwsError::new(
                    AwsErrorKind::InvalidResponse,
                    AwsOperation::Decrypt,
                    &self.key_arn,
                )
                .with_message(m)
                .into()
            };
            let result: Result<()> = match self
                .client
                .decrypt_rsa(args, &edk.ciphertext, self.algorithm())
                .await
            {
                Err(e) => Err(Error::from(e)),
                Ok(out) if out.key_id.as_deref() != Some(self.key_arn.as_str()) => {
                    Err(invalid("KMS answered for another key"))
                }
                Ok(out) if out.plaintext.len() != DIGEST_LEN + key_len => Err(invalid(
                    "the RSA plaintext is not a context digest and a data key",
                )),
                Ok(out) => {
                    if bool::from(out.plaintext[..DIGEST_LEN].ct_eq(&digest)) {
                        return Ok(Some(DataKey::from_slice(&out.plaintext[DIGEST_LEN..])));
                    }
                    Err(Error::Decrypt)
                }
            };
            if let Err(e) = result {
                let out_of_time = e.is_past_deadline();
                failures.push(e);
                if out_of_time {
                    break;
                }
            }
        }
        Err(Error::collected(failures).unwrap_or(Error::Decrypt))
    }
}
