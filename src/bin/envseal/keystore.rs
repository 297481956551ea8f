//! The branch key store: `envseal key-store ...`, and the AWS KMS
//! Hierarchical keyrings of `--branch-key-id` on encrypt and decrypt.

#[cfg(feature = "hierarchy")]
use std::io::{self, Write};

#[cfg(feature = "hierarchy")]
pub(crate) use envseal::keystore::KeyStore;
use tokio::runtime::Runtime;

use crate::cli::{AwsArgs, HierarchyArgs, KeyStoreCommand};
#[cfg(feature = "hierarchy")]
use crate::cli::{KeyStoreCreateArgs, KeyStoreKeyArgs, KeyStoreVersionArgs};
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
    if let Some(url) = &aws.dynamodb_endpoint {
        builder = builder.endpoint_url(url.clone());
    }
    runtime.block_on(builder.build()).map_err(setting_error)
}

#[cfg(not(feature = "hierarchy"))]
pub(crate) fn run(_cmd: &KeyStoreCommand) -> Result<(), Failure> {
    Err(Failure::NotBuilt(Feature::Hierarchy))
}

/// `envseal key-store create-table|create-key|version-key`.
#[cfg(feature = "hierarchy")]
pub(crate) fn run(cmd: &KeyStoreCommand) -> Result<(), Failure> {
    let runtime = crate::kms::runtime()?;
    match cmd {
        KeyStoreCommand::CreateTable(args) => {
            let kms = args.aws.build_client(&runtime, None)?;
            let store = build_store(&runtime, &args.key_store_table, None, None, &kms, &args.aws)?;
            let _stats =
                crate::kms::StatsOnExit::new(&args.aws, Some(&kms)).with_dynamodb(Some(store.counters()));
            runtime.block_on(store.create_table()).map_err(setting_error)?;
            Ok(())
        }
        KeyStoreCommand::CreateKey(args) => create_key(&runtime, args),
        KeyStoreCommand::VersionKey(args) => version_key(&runtime, args),
    }
}

#[cfg(feature = "hierarchy")]
fn open_store(runtime: &Runtime, args: &KeyStoreKeyArgs) -> Result<(KeyStore, KmsClient), Failure> {
    let kms = args.aws.build_client(runtime, None)?;
    let store = build_store(
        runtime,
        &args.key_store_table,
        Some(&args.key_store_kms_key),
        args.key_store_name.as_deref(),
        &kms,
        &args.aws,
    )?;
    Ok((store, kms))
}

#[cfg(feature = "hierarchy")]
fn create_key(runtime: &Runtime, args: &KeyStoreCreateArgs) -> Result<(), Failure> {
    let (store, kms) = open_store(runtime, &args.store)?;
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
    let (store, kms) = open_store(runtime, &args.store)?;
    let _stats =
        crate::kms::StatsOnExit::new(&args.store.aws, Some(&kms)).with_dynamodb(Some(store.counters()));
    let version = runtime
        .block_on(store.version_key(&args.branch_key_id))
        .map_err(setting_error)?;
    print_line(&version)
}

#[cfg(feature = "hierarchy")]
fn print_line(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| Failure::UnwritableOutput(format!("writing output: {e}")))
}
