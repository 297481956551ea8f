//! GetKeyStoreInfo: the key store's configuration, as the official
//! library reports it. Spec: `framework/branch-key-store.md`
//! ("GetKeyStoreInfo", "Keystore ID", "AWS KMS Configuration").

use std::fmt;

use super::KeyStore;

/// What GetKeyStoreInfo reports: the store's id, table, logical name,
/// grant tokens and KMS configuration. `Debug` shows how many grant
/// tokens there are, not the tokens.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyStoreInfo {
    /// The key store's id: the one given to
    /// [`KeyStoreBuilder::id`](super::KeyStoreBuilder::id), or a version 4
    /// UUID made when the store was built (spec: "Keystore ID").
    pub key_store_id: String,
    /// The DynamoDB table (the spec's "keystore name").
    pub table_name: String,
    /// The logical key store name bound into every branch key.
    pub logical_name: String,
    /// The KMS grant tokens of the branch key calls.
    pub grant_tokens: Vec<String>,
    /// Which KMS key protects the branch keys (`None` for a store from
    /// [`KeyStore::table_builder`], which only creates tables).
    pub kms_configuration: Option<KmsConfiguration>,
}

impl fmt::Debug for KeyStoreInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStoreInfo")
            .field("key_store_id", &self.key_store_id)
            .field("table_name", &self.table_name)
            .field("logical_name", &self.logical_name)
            .field(
                "grant_tokens",
                &format_args!("<{} redacted>", self.grant_tokens.len()),
            )
            .field("kms_configuration", &self.kms_configuration)
            .finish()
    }
}

/// A key store's AWS KMS configuration (spec: "AWS KMS Configuration").
/// envseal's store has the first of the spec's four: one KMS key ARN.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KmsConfiguration {
    /// `KMS Key ARN`: this key wraps every branch key, and each item's
    /// `kms-arn` must be exactly this ARN.
    KmsKeyArn(String),
}

impl KeyStore {
    /// The key store's configuration (spec: GetKeyStoreInfo). Makes no
    /// call.
    pub fn key_store_info(&self) -> KeyStoreInfo {
        KeyStoreInfo {
            key_store_id: self.inner.id.clone(),
            table_name: self.inner.table.name.clone(),
            logical_name: self.inner.logical_name.clone(),
            grant_tokens: self.inner.grant_tokens.clone(),
            kms_configuration: self.inner.kms_key.clone().map(KmsConfiguration::KmsKeyArn),
        }
    }
}
