//! The branch key store: branch keys in a DynamoDB table, each protected by
//! one KMS key, as the AWS Cryptographic Material Providers Library keeps
//! them (spec: `framework/branch-key-store.md`). Tables and keys written by
//! either side are read by the other.
//!
//! Every DynamoDB call runs on envseal's call engine under the same
//! [`AwsBounds`] as the KMS calls (connect, read and attempt timeouts,
//! capped adaptive retries in its own retry partition), and one deadline
//! covers each key store operation, KMS and DynamoDB calls together. The
//! DynamoDB calls, and the hierarchical keyrings' branch key cache hits and
//! misses, are counted in the store's own [`AwsCounters`] (its KMS calls in
//! the KMS client's) and traced (span `dynamodb_call`).
//!
//! Only this module and [`crate::kms`] name the AWS SDK.

mod beacon;
mod dynamodb;
mod info;
mod items;
mod key;
#[cfg(test)]
mod tests;
mod versions;

use std::fmt;
use std::sync::Arc;

use aws_sdk_dynamodb as ddb;

use crate::error::{Error, Result};
use crate::format::EncryptionContext;
use crate::kms::{
    AwsBounds, AwsCounters, AwsErrorKind, AwsService, AwsStats, CachedProvider, CallArgs, Deadline, KmsArn,
    KmsClient, UnwrappedKey,
};
pub use beacon::BeaconKeyMaterials;
use dynamodb::{Condition, ConditionalPut, Table};
pub use info::{KeyStoreInfo, KmsConfiguration};
pub(crate) use items::format_version;
use items::{check_item, create_time, kms_context, uuid_v4, Attr, ItemType, NewItem, ENC};
use key::KeyBytes;
pub use versions::BranchKeyVersion;

/// Length of a branch key.
pub const BRANCH_KEY_LEN: usize = 32;

/// A branch key, unwrapped: what the hierarchical keyring derives its
/// per-message wrapping keys from. The key is wiped on drop and never
/// printed; it stays in the heap allocation KMS's answer was decoded into,
/// so moving the materials (into a cache, through an async return) never
/// copies it.
pub struct BranchKeyMaterials {
    branch_key_id: String,
    version: String,
    version_bytes: [u8; 16],
    encryption_context: EncryptionContext,
    key: KeyBytes,
}

impl fmt::Debug for BranchKeyMaterials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BranchKeyMaterials")
            .field("branch_key_id", &self.branch_key_id)
            .field("version", &self.version)
            .field("encryption_context", &self.encryption_context)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl BranchKeyMaterials {
    /// Materials made up in unit tests (no store).
    #[cfg(test)]
    pub(crate) fn for_tests(branch_key_id: &str, version_bytes: [u8; 16], key: [u8; BRANCH_KEY_LEN]) -> Self {
        BranchKeyMaterials {
            branch_key_id: branch_key_id.to_owned(),
            version: format_version(version_bytes),
            version_bytes,
            encryption_context: EncryptionContext::new(),
            key: KeyBytes::new(zeroize::Zeroizing::new(key.to_vec())).expect("32 bytes"),
        }
    }

    /// The branch key id.
    pub fn branch_key_id(&self) -> &str {
        &self.branch_key_id
    }

    /// The version: a UUID in its 36-character form.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The version's 16 bytes (as in every hierarchical EDK).
    pub fn version_bytes(&self) -> [u8; 16] {
        self.version_bytes
    }

    /// The custom encryption context the branch key was created with.
    pub fn encryption_context(&self) -> &EncryptionContext {
        &self.encryption_context
    }

    /// The branch key itself.
    pub fn expose_secret(&self) -> &[u8; BRANCH_KEY_LEN] {
        self.key.expose()
    }
}

/// A branch key store over one DynamoDB table and one KMS key.
///
/// Cheap to clone; clones share the clients, counters and retry state.
#[derive(Clone)]
pub struct KeyStore {
    inner: Arc<StoreInner>,
}

struct StoreInner {
    /// The key store id (spec: "Keystore ID").
    id: String,
    table: Table,
    logical_name: String,
    /// `None` for a store built by [`KeyStore::table_builder`].
    kms_key: Option<String>,
    kms: KmsClient,
    grant_tokens: Vec<String>,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("table", &self.inner.table.name)
            .field("logical_name", &self.inner.logical_name)
            .field("kms_key", &self.inner.kms_key)
            .finish_non_exhaustive()
    }
}

/// Builds a [`KeyStore`]; see [`KeyStore::builder`].
pub struct KeyStoreBuilder {
    id: Option<String>,
    table: String,
    kms_key: Option<String>,
    logical_name: Option<String>,
    kms: Option<KmsClient>,
    endpoint_url: Option<String>,
    bounds: Option<AwsBounds>,
    grant_tokens: Vec<String>,
    counters: Option<Arc<AwsCounters>>,
}

/// Grant tokens are bearer credentials: counted, never printed.
impl fmt::Debug for KeyStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStoreBuilder")
            .field("id", &self.id)
            .field("table", &self.table)
            .field("kms_key", &self.kms_key)
            .field("logical_name", &self.logical_name)
            .field("kms", &self.kms)
            .field("endpoint_url", &self.endpoint_url)
            .field("bounds", &self.bounds)
            .field("grant_tokens", &self.grant_tokens.len())
            .finish_non_exhaustive()
    }
}

impl KeyStoreBuilder {
    /// The key store's id, reported by [`KeyStore::key_store_info`]
    /// (default: a new version 4 UUID for each store built).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Count the DynamoDB calls and branch key cache hits into these
    /// counters (to share them between stores; default: the store's own).
    pub fn counters(mut self, counters: Arc<AwsCounters>) -> Self {
        self.counters = Some(counters);
        self
    }

    /// The logical key store name, bound into every branch key's KMS
    /// encryption context (default: the table name). Every client of one
    /// table must use the same name; it lets a table restored under
    /// another name keep working.
    pub fn logical_name(mut self, name: impl Into<String>) -> Self {
        self.logical_name = Some(name.into());
        self
    }

    /// The KMS client for the branch keys (default: one built for the
    /// key's region from the environment). The DynamoDB client shares its
    /// credentials and (unless [`Self::bounds`]) bounds.
    pub fn kms_client(mut self, client: KmsClient) -> Self {
        self.kms = Some(client);
        self
    }

    /// An explicit DynamoDB endpoint, overriding `AWS_ENDPOINT_URL_DYNAMODB`.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// Bounds for the DynamoDB calls (default: the KMS client's).
    pub fn bounds(mut self, bounds: AwsBounds) -> Self {
        self.bounds = Some(bounds);
        self
    }

    /// KMS grant tokens for the branch key calls.
    pub fn grant_tokens(mut self, tokens: Vec<String>) -> Self {
        self.grant_tokens = tokens;
        self
    }

    /// Builds the store.
    ///
    /// # Errors
    /// [`Error::Config`] when the KMS key is not a key ARN (an alias or a
    /// bare key id cannot be checked against the items' `kms-arn`), the
    /// table or logical name is empty, or the bounds are invalid;
    /// [`Error::Backend`] when the system random number generator fails
    /// (making the default id).
    pub async fn build(self) -> Result<KeyStore> {
        let arn: Option<KmsArn> = match &self.kms_key {
            None => None,
            Some(k) => {
                let arn: KmsArn = k
                    .parse()
                    .map_err(|e| Error::config("key store KMS key", format!("not a KMS key ARN: {e}")))?;
                if arn.resource_type() != "key" {
                    return Err(Error::config(
                        "key store KMS key",
                        "must be a key ARN, not an alias",
                    ));
                }
                Some(arn)
            }
        };
        if self.table.is_empty() {
            return Err(Error::config("key store table", "the table name is empty"));
        }
        let logical_name = self.logical_name.unwrap_or_else(|| self.table.clone());
        if logical_name.is_empty() {
            return Err(Error::config("key store name", "the logical name is empty"));
        }
        let kms = match (self.kms, &arn) {
            (Some(k), _) => k,
            (None, Some(arn)) => KmsClient::builder().region(arn.region()).build().await?,
            (None, None) => KmsClient::builder().build().await?,
        };
        // The key's region (spec: the clients are for the KMS ARN's region).
        let region = match &arn {
            Some(arn) => arn.region().to_owned(),
            None => kms
                .region()
                .ok_or_else(|| Error::config("region", "no AWS region for DynamoDB"))?
                .to_owned(),
        };
        let bounds = self.bounds.unwrap_or_else(|| kms.bounds().clone());
        bounds.validate()?;
        let counters = self.counters.unwrap_or_default();
        let engine = kms.engine().for_service(AwsService::DynamoDb, bounds, counters);
        let sdk_config = match kms.sdk_config() {
            Some(c) => c.clone(),
            None => {
                let loader = aws_config::defaults(ddb::config::BehaviorVersion::latest())
                    .region(ddb::config::Region::new(region.clone()));
                #[cfg(feature = "fips")]
                let loader = loader.http_client(crate::kms::fips_https_client());
                loader.load().await
            }
        };
        let mut conf = ddb::config::Builder::from(&sdk_config)
            .behavior_version(ddb::config::BehaviorVersion::latest())
            .timeout_config(engine.bounds.timeout_config(engine.bounds.deadline))
            .retry_config(engine.bounds.retry_config())
            .retry_partition(engine.partition())
            .region(ddb::config::Region::new(region.clone()));
        if let Some(url) = &self.endpoint_url {
            conf = conf.endpoint_url(url.clone());
        }
        // The KMS client's FIPS endpoint setting; a configured URL is used
        // as given: AWS's endpoint rules refuse it beside the FIPS setting
        // (see KmsClientBuilder::use_fips_endpoint).
        let configured =
            self.endpoint_url.is_some() || crate::kms::configured_url(&sdk_config, "DynamoDB").is_some();
        let use_fips = kms.uses_fips_endpoints() || sdk_config.use_fips().unwrap_or(false);
        conf = conf.use_fips(use_fips && !configured);
        if let Some(cache) = &engine.credentials {
            conf = conf
                .credentials_provider(CachedProvider(Arc::clone(cache)))
                .identity_cache(ddb::config::IdentityCache::no_cache());
        }
        let table = Table {
            client: ddb::Client::from_conf(conf.build()),
            engine,
            name: self.table,
            region: Some(region),
        };
        let id = match self.id {
            Some(id) => id,
            None => uuid_v4(random16()?),
        };
        Ok(KeyStore {
            inner: Arc::new(StoreInner {
                id,
                table,
                logical_name,
                kms_key: self.kms_key,
                kms,
                grant_tokens: self.grant_tokens,
            }),
        })
    }
}

impl KeyStore {
    /// A builder for the store over `table`, protecting branch keys with
    /// the KMS key `kms_key_arn`.
    pub fn builder(table: impl Into<String>, kms_key_arn: impl Into<String>) -> KeyStoreBuilder {
        KeyStoreBuilder {
            id: None,
            table: table.into(),
            kms_key: Some(kms_key_arn.into()),
            logical_name: None,
            kms: None,
            endpoint_url: None,
            bounds: None,
            grant_tokens: Vec::new(),
            counters: None,
        }
    }

    /// A builder for a store without a KMS key, enough to create the
    /// table (region: the KMS client's); the other operations fail with
    /// [`Error::Config`].
    pub fn table_builder(table: impl Into<String>) -> KeyStoreBuilder {
        KeyStoreBuilder {
            kms_key: None,
            ..Self::builder(table, String::new())
        }
    }

    /// The DynamoDB table.
    pub fn table_name(&self) -> &str {
        &self.inner.table.name
    }

    /// The logical key store name.
    pub fn logical_name(&self) -> &str {
        &self.inner.logical_name
    }

    /// The KMS key ARN that protects the branch keys (`None` for a store
    /// from [`KeyStore::table_builder`]).
    pub fn kms_key(&self) -> Option<&str> {
        self.inner.kms_key.as_deref()
    }

    /// The KMS key, which every operation but [`Self::create_table`] needs.
    fn key(&self) -> Result<&str> {
        self.kms_key().ok_or_else(|| {
            Error::config(
                "key store KMS key",
                "this key store has no KMS key: only create_table works",
            )
        })
    }

    /// The KMS client (its counters count the branch keys' KMS calls).
    pub fn kms_client(&self) -> &KmsClient {
        &self.inner.kms
    }

    /// A snapshot of the store's counters: its DynamoDB calls (attempts,
    /// retries, throttles, timeouts, latency) and the hierarchical
    /// keyrings' branch key cache hits and misses. Its KMS calls are in
    /// [`KmsClient::stats`] of [`Self::kms_client`].
    pub fn stats(&self) -> AwsStats {
        self.inner.table.engine.stats.snapshot()
    }

    /// The store's live counters (see [`Self::stats`]).
    pub fn counters(&self) -> Arc<AwsCounters> {
        Arc::clone(&self.inner.table.engine.stats)
    }

    /// Starts the clock for one key store or keyring operation.
    pub(crate) fn deadline(&self) -> Deadline {
        self.inner.kms.deadline()
    }

    fn kms_args<'a>(&'a self, context: &'a EncryptionContext, deadline: Deadline) -> Result<CallArgs<'a>> {
        Ok(CallArgs {
            key_id: self.key()?,
            context,
            grant_tokens: &self.inner.grant_tokens,
            deadline,
        })
    }

    /// Creates the table with the key store's key schema (`branch-key-id`
    /// hash key, `type` range key, both strings), unless it exists; returns
    /// its ARN.
    ///
    /// # Errors
    /// [`Error::Config`] when the table exists with another key schema or
    /// key attribute types;
    /// [`Error::Aws`] for a failed call.
    pub async fn create_table(&self) -> Result<String> {
        let deadline = self.deadline();
        match self.inner.table.describe(deadline).await? {
            Some((arn, true)) => Ok(arn),
            Some((_, false)) => Err(Error::config(
                "key store table",
                format!(
                    "table {} exists with another key schema (want branch-key-id HASH and type RANGE, both of type S)",
                    self.table_name()
                ),
            )),
            None => Ok(self.inner.table.create(deadline).await?),
        }
    }

    /// Creates a branch key and returns its id: a new UUID, or
    /// `branch_key_id`, which needs a custom encryption context (stored as
    /// `aws-crypto-ec:` attributes and bound into every version). Writes
    /// the version, ACTIVE and beacon items in one conditional transaction.
    ///
    /// # Errors
    /// [`Error::Config`] for a chosen id without an encryption context;
    /// [`Error::Aws`] for a failed call (kind `ConditionFailed` when the
    /// branch key exists already).
    pub async fn create_key(
        &self,
        branch_key_id: Option<&str>,
        context: &EncryptionContext,
    ) -> Result<String> {
        let id = match branch_key_id {
            Some("") => return Err(Error::config("branch key id", "the branch key id is empty")),
            Some(_) if context.is_empty() => {
                return Err(Error::config(
                    "branch key id",
                    "a branch key id of your own needs an encryption context",
                ))
            }
            Some(id) => id.to_owned(),
            None => uuid_v4(random16()?),
        };
        let deadline = self.deadline();
        let version = uuid_v4(random16()?);
        let now = create_time(std::time::SystemTime::now());
        let kms_arn = self.key()?;
        let new_item = |item_type| NewItem {
            branch_key_id: &id,
            item_type,
            version: &version,
            create_time: &now,
            kms_arn,
            custom: context,
        };
        let (version_item, active_item) = self
            .wrapped_version(
                new_item(ItemType::Version(&version)),
                new_item(ItemType::Active),
                deadline,
            )
            .await?;
        let mut beacon = new_item(ItemType::Beacon).attributes();
        let beacon_ctx = self.context_of(&beacon, &id)?;
        let beacon_enc = self
            .inner
            .kms
            .generate_data_key_without_plaintext(self.kms_args(&beacon_ctx, deadline)?, BRANCH_KEY_LEN as i32)
            .await?;
        beacon.insert(ENC.into(), Attr::B(beacon_enc));
        let puts = [version_item, active_item, beacon].map(|item| ConditionalPut {
            item,
            condition: Condition::NotExists,
        });
        self.inner.table.put_all(&id, puts.into(), deadline).await?;
        tracing::info!(branch_key_id = %id, version = %version, "branch key created");
        Ok(id)
    }

    /// Makes a new version of a branch key ACTIVE (older versions stay
    /// readable). The ACTIVE item is authenticated with KMS first, and the
    /// write fails if it changed since it was read.
    ///
    /// # Errors
    /// [`Error::Aws`]: no such branch key (`NotFound`), an item that fails
    /// its checks or authentication, a refused write (`ConditionFailed`).
    pub async fn version_key(&self, branch_key_id: &str) -> Result<String> {
        let deadline = self.deadline();
        let (checked, _) = self.read_item(branch_key_id, ItemType::Active, deadline).await?;
        // Authenticate the ACTIVE item: KMS re-encrypts it under its own
        // context only if every attribute is what it was written with.
        self.inner
            .kms
            .re_encrypt(
                self.kms_args(&checked.kms_context, deadline)?,
                &checked.kms_context,
                &checked.enc,
            )
            .await?;
        let version = uuid_v4(random16()?);
        let now = create_time(std::time::SystemTime::now());
        let kms_arn = self.key()?;
        let new_item = |item_type| NewItem {
            branch_key_id,
            item_type,
            version: &version,
            create_time: &now,
            kms_arn,
            custom: &checked.custom,
        };
        let (version_item, active_item) = self
            .wrapped_version(
                new_item(ItemType::Version(&version)),
                new_item(ItemType::Active),
                deadline,
            )
            .await?;
        let puts = vec![
            ConditionalPut {
                item: version_item,
                condition: Condition::NotExists,
            },
            ConditionalPut {
                item: active_item,
                condition: Condition::EncUnchanged(checked.enc.clone()),
            },
        ];
        self.inner.table.put_all(branch_key_id, puts, deadline).await?;
        tracing::info!(branch_key_id, version = %version, "branch key versioned");
        Ok(version)
    }

    /// The ACTIVE version of a branch key, unwrapped by KMS.
    ///
    /// # Errors
    /// [`Error::Aws`]: no such branch key (`NotFound`), an item that fails
    /// its checks, or a failed call.
    pub async fn get_active_branch_key(&self, branch_key_id: &str) -> Result<BranchKeyMaterials> {
        self.get_branch_key(branch_key_id, None, self.deadline()).await
    }

    /// One version of a branch key, unwrapped by KMS.
    ///
    /// # Errors
    /// As [`Self::get_active_branch_key`].
    pub async fn get_branch_key_version(
        &self,
        branch_key_id: &str,
        version: &str,
    ) -> Result<BranchKeyMaterials> {
        self.get_branch_key(branch_key_id, Some(version), self.deadline())
            .await
    }

    /// GetItem, the item's checks, then KMS Decrypt under its context.
    pub(crate) async fn get_branch_key(
        &self,
        branch_key_id: &str,
        version: Option<&str>,
        deadline: Deadline,
    ) -> Result<BranchKeyMaterials> {
        let want = version.map_or(ItemType::Active, ItemType::Version);
        let (checked, unwrapped) = self.read_and_decrypt(branch_key_id, want, deadline).await?;
        branch_key_materials(checked, unwrapped, self.key()?)
    }

    /// GetItem and the item's checks ([`Self::read_item`]), then KMS
    /// Decrypt of its `enc` under its encryption context (spec "AWS KMS
    /// Branch Key Decryption"): a branch key version's or a beacon key's.
    async fn read_and_decrypt(
        &self,
        branch_key_id: &str,
        want: ItemType<'_>,
        deadline: Deadline,
    ) -> Result<(items::CheckedItem, UnwrappedKey)> {
        let (checked, _) = self.read_item(branch_key_id, want, deadline).await?;
        let unwrapped = self
            .inner
            .kms
            .decrypt(self.kms_args(&checked.kms_context, deadline)?, &checked.enc)
            .await?;
        Ok((checked, unwrapped))
    }

    /// Reads one item and checks it against the record format and the
    /// store's KMS key.
    async fn read_item(
        &self,
        branch_key_id: &str,
        want: ItemType<'_>,
        deadline: Deadline,
    ) -> Result<(items::CheckedItem, items::Item)> {
        let sort_key = want.sort_key();
        let fetched = self
            .inner
            .table
            .get_item(branch_key_id, &sort_key, deadline)
            .await?;
        let bad_item = |m: String| -> Error {
            fetched
                .error(
                    AwsErrorKind::InvalidResponse,
                    branch_key_id,
                    format!("item {sort_key}: {m}"),
                )
                .into()
        };
        let item = &fetched.item;
        let checked = check_item(item, branch_key_id, want, &self.inner.logical_name)
            .map_err(|e| bad_item(e.to_string()))?;
        let kms_key = self.key()?;
        if checked.kms_arn != kms_key {
            return Err(bad_item(format!(
                "its kms-arn {} is not the key store's KMS key {kms_key}",
                checked.kms_arn
            )));
        }
        Ok((checked, fetched.item))
    }

    /// The KMS context of new attributes, as an error naming the branch key.
    fn context_of(&self, item: &items::Item, branch_key_id: &str) -> Result<EncryptionContext> {
        kms_context(item, &self.inner.logical_name).map_err(|m| {
            Error::config(
                "branch key encryption context",
                format!("branch key {branch_key_id}: {m}"),
            )
        })
    }

    /// A new version's two items: the decrypt-only copy from
    /// GenerateDataKeyWithoutPlaintext, and the ACTIVE copy re-encrypted
    /// from it under the ACTIVE context.
    async fn wrapped_version(
        &self,
        version: NewItem<'_>,
        active: NewItem<'_>,
        deadline: Deadline,
    ) -> Result<(items::Item, items::Item)> {
        let mut version_item = version.attributes();
        let mut active_item = active.attributes();
        let version_ctx = self.context_of(&version_item, version.branch_key_id)?;
        let active_ctx = self.context_of(&active_item, version.branch_key_id)?;
        let kms = &self.inner.kms;
        let version_enc = kms
            .generate_data_key_without_plaintext(
                self.kms_args(&version_ctx, deadline)?,
                BRANCH_KEY_LEN as i32,
            )
            .await?;
        let active_enc = kms
            .re_encrypt(self.kms_args(&version_ctx, deadline)?, &active_ctx, &version_enc)
            .await?;
        version_item.insert(ENC.into(), Attr::B(version_enc));
        active_item.insert(ENC.into(), Attr::B(active_enc));
        Ok((version_item, active_item))
    }
}

/// Branch key materials from a checked item and what KMS Decrypt answered
/// for it (spec: "Branch Key Materials From Authenticated Encryption
/// Context").
fn branch_key_materials(
    checked: items::CheckedItem,
    unwrapped: UnwrappedKey,
    kms_key: &str,
) -> Result<BranchKeyMaterials> {
    let id = &checked.branch_key_id;
    // The key stays where KMS's answer put it: no copy to wipe.
    let key = key::unwrapped_key(unwrapped, kms_key, id, "branch key")?;
    let version_bytes = checked
        .version
        .as_deref()
        .and_then(items::parse_version)
        .ok_or_else(|| key::invalid_answer(kms_key, id, "the version is not a UUID"))?;
    Ok(BranchKeyMaterials {
        branch_key_id: checked.branch_key_id,
        version: format_version(version_bytes),
        version_bytes,
        encryption_context: checked.custom,
        key,
    })
}

/// 16 random bytes for a UUID v4.
fn random16() -> Result<[u8; 16]> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|_| Error::Backend("the system random number generator failed"))?;
    Ok(b)
}
