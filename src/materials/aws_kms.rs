//! AWS KMS keyrings. Spec: `framework/aws-kms/aws-kms-mrk-keyring.md`,
//! `aws-kms-mrk-discovery-keyring.md`, `aws-kms-mrk-multi-keyrings.md`.
//!
//! Both keyrings are multi-Region-key aware: an encrypted data key wrapped
//! under `mrk-…` in one region is unwrapped by its replica in another.
//! Every keyring operation (one encrypt or one decrypt) has one deadline,
//! [`AwsBounds::deadline`](crate::kms::AwsBounds), across all its KMS calls.

use std::collections::BTreeSet;

use async_trait::async_trait;

use super::{DecryptionMaterials, EncryptionMaterials, Keyring};
use crate::crypto::DataKey;
use crate::error::{Error, FormatError, Result};
use crate::format::EncryptedDataKey;
use crate::kms::{
    check_identifier, duplicate_multi_region_keys, mrk_match, AwsError, AwsErrorKind, AwsOperation, CallArgs,
    KmsArn, KmsClient,
};

/// Provider id of every KMS encrypted data key.
const PROVIDER_ID: &str = "aws-kms";
/// The field a malformed `aws-kms` provider info is refused as.
const PROVIDER_INFO: &str = "aws-kms provider info";

/// A KMS response must name a key by full ARN (spec: the response `KeyId`
/// MUST be a valid AWS KMS key ARN).
fn response_arn(key_id: Option<String>, op: AwsOperation, asked: &str) -> Result<String, Box<AwsError>> {
    match key_id {
        Some(id) if id.parse::<KmsArn>().is_ok_and(|a| a.resource_type() == "key") => Ok(id),
        _ => Err(Box::new(
            AwsError::new(AwsErrorKind::InvalidResponse, op, asked)
                .with_message("the response KeyId is not a KMS key ARN"),
        )),
    }
}

/// The encrypted data key KMS wrapped under `arn`.
fn kms_edk(arn: String, ciphertext: Vec<u8>) -> EncryptedDataKey {
    EncryptedDataKey {
        provider_id: PROVIDER_ID.into(),
        provider_info: arn.into_bytes(),
        ciphertext,
    }
}

/// Checks a returned data key's length against the suite.
fn check_key_len(len: usize, want: usize, op: AwsOperation, key_id: &str) -> Result<(), Box<AwsError>> {
    if len == want {
        Ok(())
    } else {
        Err(Box::new(
            AwsError::new(AwsErrorKind::InvalidResponse, op, key_id)
                .with_message(format!("data key of {len} bytes, the suite needs {want}")),
        ))
    }
}

/// The ARN in a KMS encrypted data key (`aws-kms`, `aws-kms-rsa`); the
/// specs require decrypt to fail when one does not carry a key ARN, here
/// with a format error naming `field`, its provider info.
pub(super) fn edk_arn(edk: &EncryptedDataKey, field: &'static str) -> Result<KmsArn> {
    std::str::from_utf8(&edk.provider_info)
        .ok()
        .and_then(|s| s.parse::<KmsArn>().ok())
        .filter(|a| a.resource_type() == "key")
        .ok_or(
            FormatError::Invalid {
                field,
                reason: "not a KMS key ARN",
            }
            .into(),
        )
}

/// Unwraps one encrypted data key with `Decrypt` under `key_id` and checks
/// the response (key id, key length).
async fn decrypt_one(
    client: &KmsClient,
    key_id: &str,
    edk: &EncryptedDataKey,
    materials: &DecryptionMaterials,
    grant_tokens: &[String],
    deadline: crate::kms::Deadline,
) -> Result<DataKey, Box<AwsError>> {
    let args = CallArgs {
        key_id,
        context: materials.context(),
        grant_tokens,
        deadline,
    };
    let out = client.decrypt(args, &edk.ciphertext).await.map_err(Box::new)?;
    if out.key_id.as_deref() != Some(key_id) {
        return Err(Box::new(
            AwsError::new(AwsErrorKind::InvalidResponse, AwsOperation::Decrypt, key_id)
                .with_message("the response KeyId is not the key that was asked for"),
        ));
    }
    check_key_len(
        out.plaintext.len(),
        materials.suite().data_key_len(),
        AwsOperation::Decrypt,
        key_id,
    )?;
    Ok(DataKey::new(out.plaintext))
}

/// Tries each candidate `(key id to call with, edk)` in order, stopping at
/// the first success (or at the operation's deadline); when none succeeds,
/// the error carries every candidate's failure ([`Error::collected`]), as
/// the spec collects them (`aws-kms-mrk-keyring.md`, OnDecrypt).
async fn decrypt_candidates(
    client: &KmsClient,
    candidates: Vec<(String, &EncryptedDataKey)>,
    materials: &DecryptionMaterials,
    grant_tokens: &[String],
) -> Result<Option<DataKey>> {
    if candidates.is_empty() {
        return Ok(None);
    }
    let deadline = client.deadline();
    let mut failures = Vec::new();
    for (key_id, edk) in candidates {
        match decrypt_one(client, &key_id, edk, materials, grant_tokens, deadline).await {
            Ok(key) => return Ok(Some(key)),
            Err(e) => {
                let e = Error::from(e);
                let out_of_time = e.is_past_deadline();
                failures.push(e);
                if out_of_time {
                    break;
                }
            }
        }
    }
    match Error::collected(failures) {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// The AWS KMS keyring: wraps the data key under one or more KMS keys.
///
/// Encrypt: the first key generates the data key (`GenerateDataKey`) unless
/// one is already present; every other key wraps it (`Encrypt`). Decrypt:
/// only `aws-kms` encrypted data keys whose ARN matches a configured key
/// (exactly, or as a replica of a configured multi-Region key) are tried,
/// one `Decrypt` each, in message order, stopping at the first success.
/// Keys are best given as ARNs: decrypt matches the ARN stored in the
/// message, so a bare key id or alias can encrypt but never decrypt.
#[derive(Clone)]
pub struct KmsKeyring {
    client: KmsClient,
    key_ids: Vec<String>,
    grant_tokens: Vec<String>,
}

/// Builds a [`KmsKeyring`]; see [`KmsKeyring::builder`].
pub struct KmsKeyringBuilder {
    client: KmsClient,
    key_ids: Vec<String>,
    grant_tokens: Vec<String>,
}

// Grant tokens are bearer credentials for a grant: counted, never shown.
impl std::fmt::Debug for KmsKeyringBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsKeyringBuilder")
            .field("key_ids", &self.key_ids)
            .field("grant_tokens", &self.grant_tokens.len())
            .finish_non_exhaustive()
    }
}

impl KmsKeyringBuilder {
    /// Grant tokens sent with every call (default: none).
    pub fn grant_tokens<I, S>(mut self, tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.grant_tokens = tokens.into_iter().map(Into::into).collect();
        self
    }

    /// Checks the key identifiers and builds the keyring.
    ///
    /// # Errors
    /// [`Error::Config`] when there is no key, an identifier is invalid, or
    /// two identifiers are replicas of the same multi-Region key (ambiguous:
    /// the spec requires the caller to pick one region).
    pub fn build(self) -> Result<KmsKeyring> {
        let KmsKeyringBuilder {
            client,
            key_ids,
            grant_tokens,
        } = self;
        if key_ids.is_empty() {
            return Err(Error::config(
                "KMS key ids",
                "a KMS keyring needs at least one key",
            ));
        }
        for id in &key_ids {
            check_identifier(id).map_err(|e| Error::config("KMS key id", format!("{id:?}: {e}")))?;
        }
        let dups = duplicate_multi_region_keys(&key_ids);
        if !dups.is_empty() {
            return Err(Error::config(
                "KMS key ids",
                format!(
                    "these KMS keys are replicas of one multi-Region key; configure one of them: {}",
                    dups.join(", ")
                ),
            ));
        }
        Ok(KmsKeyring {
            client,
            key_ids,
            grant_tokens,
        })
    }
}

impl KmsKeyring {
    /// A builder over `key_ids` (the first generates).
    pub fn builder<I, S>(client: KmsClient, key_ids: I) -> KmsKeyringBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        KmsKeyringBuilder {
            client,
            key_ids: key_ids.into_iter().map(Into::into).collect(),
            grant_tokens: Vec::new(),
        }
    }

    /// The configured key identifiers, generator first.
    pub fn key_ids(&self) -> &[String] {
        &self.key_ids
    }

    /// The client (for its counters).
    pub fn client(&self) -> &KmsClient {
        &self.client
    }
}

// Grant tokens are bearer credentials for a grant: counted, never shown.
impl std::fmt::Debug for KmsKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsKeyring")
            .field("key_ids", &self.key_ids)
            .field("grant_tokens", &self.grant_tokens.len())
            .field("client", &self.client)
            .finish()
    }
}

impl std::fmt::Debug for KmsDiscoveryKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsDiscoveryKeyring")
            .field("region", &self.region)
            .field("filter", &self.filter)
            .field("grant_tokens", &self.grant_tokens.len())
            .finish()
    }
}

#[async_trait]
impl Keyring for KmsKeyring {
    async fn on_encrypt(&self, materials: &mut EncryptionMaterials) -> Result<()> {
        let deadline = self.client.deadline();
        let mut wrap_with = self.key_ids.as_slice();
        if materials.data_key().is_none() {
            let generator = &self.key_ids[0];
            let args = CallArgs {
                key_id: generator,
                context: materials.context(),
                grant_tokens: &self.grant_tokens,
                deadline,
            };
            let op = AwsOperation::GenerateDataKey;
            let out = self
                .client
                .generate_data_key(args, materials.suite().data_key_len())
                .await?;
            check_key_len(
                out.plaintext.len(),
                materials.suite().data_key_len(),
                op,
                generator,
            )?;
            let arn = response_arn(out.key_id, op, generator)?;
            materials.set_data_key(DataKey::new(out.plaintext))?;
            materials.add_encrypted_data_key(kms_edk(arn, out.ciphertext));
            wrap_with = &self.key_ids[1..];
        }
        for key_id in wrap_with {
            let data_key = materials
                .data_key()
                .ok_or_else(|| Error::Internal("no data key to wrap"))?;
            let args = CallArgs {
                key_id,
                context: materials.context(),
                grant_tokens: &self.grant_tokens,
                deadline,
            };
            let out = self.client.encrypt(args, data_key.expose_secret()).await?;
            let arn = response_arn(out.key_id, AwsOperation::Encrypt, key_id)?;
            materials.add_encrypted_data_key(kms_edk(arn, out.ciphertext));
        }
        Ok(())
    }

    async fn on_decrypt(
        &self,
        materials: &DecryptionMaterials,
        edks: &[EncryptedDataKey],
    ) -> Result<Option<DataKey>> {
        let mut candidates = Vec::new();
        for edk in edks.iter().filter(|e| e.provider_id == PROVIDER_ID) {
            let arn = edk_arn(edk, PROVIDER_INFO)?.to_string();
            if let Some(key_id) = self.key_ids.iter().find(|k| mrk_match(k, &arn)) {
                candidates.push((key_id.clone(), edk));
            }
        }
        decrypt_candidates(&self.client, candidates, materials, &self.grant_tokens).await
    }
}

/// Which KMS keys a discovery keyring may use: one partition and a set of
/// account ids. Checked before any KMS call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveryFilter {
    partition: String,
    accounts: BTreeSet<String>,
}

impl DiscoveryFilter {
    /// A filter for `partition` (e.g. `aws`) and the given accounts.
    ///
    /// # Errors
    /// [`Error::Config`] for an empty partition, no accounts, or an empty account id.
    pub fn new<I, S>(partition: impl Into<String>, accounts: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let partition = partition.into();
        let accounts: BTreeSet<String> = accounts.into_iter().map(Into::into).collect();
        if partition.is_empty() || accounts.is_empty() || accounts.iter().any(String::is_empty) {
            return Err(Error::config(
                "discovery filter",
                "a discovery filter needs a partition and at least one account id",
            ));
        }
        Ok(DiscoveryFilter { partition, accounts })
    }

    fn allows(&self, arn: &KmsArn) -> bool {
        arn.partition() == self.partition && self.accounts.contains(arn.account())
    }
}

/// The AWS KMS discovery keyring: decrypts with whatever KMS key the message
/// names, in the client's region, if the (optional) discovery filter allows
/// its partition and account. It cannot encrypt.
///
/// Multi-Region keys are called in the client's region (the ARN's region
/// replaced); a single-Region key in another region is skipped without a
/// call. To discover across regions, put one discovery keyring per region
/// (`KmsClient::with_region`) in a [`MultiKeyring`](crate::MultiKeyring).
#[derive(Clone)]
pub struct KmsDiscoveryKeyring {
    client: KmsClient,
    region: String,
    filter: Option<DiscoveryFilter>,
    grant_tokens: Vec<String>,
}

/// Builds a [`KmsDiscoveryKeyring`]; see [`KmsDiscoveryKeyring::builder`].
pub struct KmsDiscoveryKeyringBuilder {
    client: KmsClient,
    filter: Option<DiscoveryFilter>,
    grant_tokens: Vec<String>,
}

// Grant tokens are bearer credentials for a grant: counted, never shown.
impl std::fmt::Debug for KmsDiscoveryKeyringBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsDiscoveryKeyringBuilder")
            .field("filter", &self.filter)
            .field("grant_tokens", &self.grant_tokens.len())
            .finish_non_exhaustive()
    }
}

impl KmsDiscoveryKeyringBuilder {
    /// Only keys in this partition and these accounts (default: any;
    /// a filter is strongly advised).
    pub fn filter(mut self, filter: DiscoveryFilter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Grant tokens sent with every call (default: none).
    pub fn grant_tokens<I, S>(mut self, tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.grant_tokens = tokens.into_iter().map(Into::into).collect();
        self
    }

    /// Builds the keyring, in the client's region.
    ///
    /// # Errors
    /// [`Error::Config`] when the client has no region.
    pub fn build(self) -> Result<KmsDiscoveryKeyring> {
        let region = self
            .client
            .region()
            .ok_or_else(|| Error::config("region", "a KMS discovery keyring needs a client region"))?
            .to_owned();
        Ok(KmsDiscoveryKeyring {
            client: self.client,
            region,
            filter: self.filter,
            grant_tokens: self.grant_tokens,
        })
    }
}

impl KmsDiscoveryKeyring {
    /// A builder over `client` (whose region the keyring uses).
    pub fn builder(client: KmsClient) -> KmsDiscoveryKeyringBuilder {
        KmsDiscoveryKeyringBuilder {
            client,
            filter: None,
            grant_tokens: Vec::new(),
        }
    }

    /// The client (for its counters).
    pub fn client(&self) -> &KmsClient {
        &self.client
    }
}

#[async_trait]
impl Keyring for KmsDiscoveryKeyring {
    async fn on_encrypt(&self, _materials: &mut EncryptionMaterials) -> Result<()> {
        Err(Error::keyring(
            "aws-kms discovery",
            "a discovery keyring cannot encrypt",
        ))
    }

    async fn on_decrypt(
        &self,
        materials: &DecryptionMaterials,
        edks: &[EncryptedDataKey],
    ) -> Result<Option<DataKey>> {
        let mut candidates = Vec::new();
        for edk in edks.iter().filter(|e| e.provider_id == PROVIDER_ID) {
            let arn = edk_arn(edk, PROVIDER_INFO)?;
            if self.filter.as_ref().is_some_and(|f| !f.allows(&arn)) {
                continue;
            }
            let key_id = if arn.is_multi_region() {
                arn.with_region(&self.region).to_string()
            } else if arn.region() == self.region {
                arn.to_string()
            } else {
                continue;
            };
            candidates.push((key_id, edk));
        }
        decrypt_candidates(&self.client, candidates, materials, &self.grant_tokens).await
    }
}
