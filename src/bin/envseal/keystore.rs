//! The branch key store: `envseal key-store ...`, and the AWS KMS
//! Hierarchical keyrings of `--branch-key-id` on encrypt and decrypt.

#[cfg(feature = "hierarchy")]
use std::io::{self, Write};

#[cfg(feature = "hierarchy")]
pub(crate) use envseal::keystore::KeyStore;
use tokio::runtime::Runtime;

use crate::cli::{AwsArgs, HierarchyArgs, KeyStoreCommand};
#[cfg(feature = "hierarchy")]
use crate::cli::{
    KeyStoreCreateArgs, KeyStoreDescribeArgs, KeyStoreKeyArgs, KeyStoreListArgs, KeyStoreVersionArgs,
};
#[cfg(feature = "hierarchy")]
use crate::error::setting_error;
use crate::error::Failure;
#[cfg(not(feature = "hierarchy"))]
use crate::error::Feature;
use crate::kms::KmsClient;

/// Built without the `hierarchy` feature: key store options are refused.
#[cfg(not(feature = "hierarchy"))]
#[derive(Clone, Debug)]
pub(crate) enum KeyStore {}

#[cfg(not(feature = "hierarchy"))]
impl KeyStore {
    pub(crate) fn counters(&self) -> std::sync::Arc<envseal::kms::AwsCounters> {
        match *self {}
    }
}

impl HierarchyArgs {
    /// Whether any key store option was given.
    pub(crate) fn used(&self) -> bool {
        !self.branch_key_id.is_empty()
            || self.key_store_table.is_some()
            || self.key_store_kms_key.is_some()
            || self.key_store_name.is_some()
    }

    /// The table and KMS key, when branch keys are used; a usage error for
    /// an incomplete set of options.
    fn table_and_key(&self) -> Result<Option<(&str, &str)>, Failure> {
        if !self.used() {
            return Ok(None);
        }
        if self.branch_key_id.is_empty() {
            return Err(Failure::Usage(
                "--key-store-table, --key-store-kms-key and --key-store-name need --branch-key-id".into(),
            ));
        }
        match (&self.key_store_table, &self.key_store_kms_key) {
            (Some(t), Some(k)) => Ok(Some((t, k))),
            _ => Err(Failure::Usage(
                "--branch-key-id needs --key-store-table and --key-store-kms-key".into(),
            )),
        }
    }

    /// The key store for `--branch-key-id`, if given.
    #[cfg(not(feature = "hierarchy"))]
    pub(crate) fn store(
        &self,
        _runtime: &Runtime,
        _kms: Option<&KmsClient>,
        _aws: &AwsArgs,
    ) -> Result<Option<KeyStore>, Failure> {
        match self.table_and_key()? {
            Some(_) => Err(Failure::NotBuilt(Feature::Hierarchy)),
            None => Ok(None),
        }
    }

    /// The key store for `--branch-key-id`, if given.
    #[cfg(feature = "hierarchy")]
    pub(crate) fn store(
        &self,
        runtime: &Runtime,
        kms: Option<&KmsClient>,
        aws: &AwsArgs,
    ) -> Result<Option<KeyStore>, Failure> {
        let Some((table, kms_key)) = self.table_and_key()? else {
            return Ok(None);
        };
        let kms = kms.ok_or_else(|| Failure::Internal("no KMS client".into()))?;
        build_store(
            runtime,
            table,
            Some(kms_key),
            self.key_store_name.as_deref(),
            None,
            kms,
            aws,
        )
        .map(Some)
    }
}

#[cfg(feature = "hierarchy")]
fn build_store(
    runtime: &Runtime,
    table: &str,
    kms_key: Option<&str>,
    logical_name: Option<&str>,
    id: Option<&str>,
    kms: &KmsClient,
    aws: &AwsArgs,
) -> Result<KeyStore, Failure> {
    let mut builder = match kms_key {
        Some(k) => KeyStore::builder(table, k),
        None => KeyStore::table_builder(table),
    }
    .kms_client(kms.clone())
    .grant_tokens(aws.grant_token.clone());
    if let Some(name) = logical_name {
        builder = builder.logical_name(name);
    }
    if let Some(id) = id {
        builder = builder.id(id);
    }
    if let Some(url) = &aws.dynamodb_endpoint {
        builder = builder.endpoint_url(url.clone());
    }
    runtime.block_on(builder.build()).map_err(setting_error)
}

#[cfg(not(feature = "hierarchy"))]
pub(crate) fn run(_cmd: &KeyStoreCommand) -> Result<(), Failure> {
    Err(Failure::NotBuilt(Feature::Hierarchy))
}

/// `envseal key-store create-table|create-key|version-key|list-versions|describe`.
#[cfg(feature = "hierarchy")]
pub(crate) fn run(cmd: &KeyStoreCommand) -> Result<(), Failure> {
    let runtime = crate::kms::runtime()?;
    match cmd {
        KeyStoreCommand::CreateTable(args) => {
            let kms = args.aws.build_client(&runtime, None)?;
            let store = build_store(&runtime, &args.key_store_table, None, None, None, &kms, &args.aws)?;
            let _stats =
                crate::kms::StatsOnExit::new(&args.aws, Some(&kms)).with_dynamodb(Some(store.counters()));
            runtime.block_on(store.create_table()).map_err(setting_error)?;
            Ok(())
        }
        KeyStoreCommand::CreateKey(args) => create_key(&runtime, args),
        KeyStoreCommand::VersionKey(args) => version_key(&runtime, args),
        KeyStoreCommand::ListVersions(args) => list_versions(&runtime, args),
        KeyStoreCommand::Describe(args) => describe(&runtime, args),
    }
}

#[cfg(feature = "hierarchy")]
fn open_store(
    runtime: &Runtime,
    args: &KeyStoreKeyArgs,
    id: Option<&str>,
) -> Result<(KeyStore, KmsClient), Failure> {
    let kms = args.aws.build_client(runtime, None)?;
    let store = build_store(
        runtime,
        &args.key_store_table,
        Some(&args.key_store_kms_key),
        args.key_store_name.as_deref(),
        id,
        &kms,
        &args.aws,
    )?;
    Ok((store, kms))
}

#[cfg(feature = "hierarchy")]
fn create_key(runtime: &Runtime, args: &KeyStoreCreateArgs) -> Result<(), Failure> {
    let (store, kms) = open_store(runtime, &args.store, None)?;
    let _stats =
        crate::kms::StatsOnExit::new(&args.store.aws, Some(&kms)).with_dynamodb(Some(store.counters()));
    let context = crate::cli::build_context(&args.context)?;
    let id = runtime
        .block_on(store.create_key(args.branch_key_id.as_deref(), &context))
        .map_err(setting_error)?;
    print_line(&id)
}

#[cfg(feature = "hierarchy")]
fn version_key(runtime: &Runtime, args: &KeyStoreVersionArgs) -> Result<(), Failure> {
    let (store, kms) = open_store(runtime, &args.store, None)?;
    let _stats =
        crate::kms::StatsOnExit::new(&args.store.aws, Some(&kms)).with_dynamodb(Some(store.counters()));
    let version = runtime
        .block_on(store.version_key(&args.branch_key_id))
        .map_err(setting_error)?;
    print_line(&version)
}

#[cfg(feature = "hierarchy")]
fn list_versions(runtime: &Runtime, args: &KeyStoreListArgs) -> Result<(), Failure> {
    let (store, kms) = open_store(runtime, &args.store, None)?;
    let _stats =
        crate::kms::StatsOnExit::new(&args.store.aws, Some(&kms)).with_dynamodb(Some(store.counters()));
    let versions = runtime
        .block_on(store.list_versions(&args.branch_key_id))
        .map_err(setting_error)?;
    let text = if args.json {
        let list: Vec<serde_json::Value> = versions
            .iter()
            .map(|v| {
                serde_json::json!({
                    "version": v.version,
                    "create_time": v.create_time,
                    "active": v.active,
                })
            })
            .collect();
        serde_json::Value::Array(list).to_string()
    } else {
        let lines: Vec<String> = versions
            .iter()
            .map(|v| {
                let mark = if v.active { " ACTIVE" } else { "" };
                format!("{} {}{mark}", v.version, v.create_time)
            })
            .collect();
        lines.join("\n")
    };
    print_line(&text)
}

/// GetKeyStoreInfo: no call (the store is built, not used).
#[cfg(feature = "hierarchy")]
fn describe(runtime: &Runtime, args: &KeyStoreDescribeArgs) -> Result<(), Failure> {
    let (store, _kms) = open_store(runtime, &args.store, args.key_store_id.as_deref())?;
    let info = store.key_store_info();
    let kms_key_arn = match &info.kms_configuration {
        Some(envseal::keystore::KmsConfiguration::KmsKeyArn(arn)) => Some(arn.as_str()),
        _ => None,
    };
    let text = if args.json {
        serde_json::json!({
            "key_store_id": info.key_store_id,
            "key_store_name": info.table_name,
            "logical_key_store_name": info.logical_name,
            "grant_tokens": info.grant_tokens,
            "kms_configuration": { "kms_key_arn": kms_key_arn },
        })
        .to_string()
    } else {
        [
            format!("key_store_id: {}", info.key_store_id),
            format!("key_store_name: {}", info.table_name),
            format!("logical_key_store_name: {}", info.logical_name),
            format!("kms_key_arn: {}", kms_key_arn.unwrap_or("-")),
            format!("grant_tokens: {}", info.grant_tokens.join(" ")),
        ]
        .join("\n")
    };
    print_line(&text)
}

#[cfg(feature = "hierarchy")]
fn print_line(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| Failure::UnwritableOutput(format!("writing output: {e}")))
}
