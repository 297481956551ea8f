//! A key per tenant and few KMS calls: the AWS KMS Hierarchical keyring.
//! Branch keys live in a DynamoDB table (created here if missing), one per
//! tenant; each is unwrapped once (one DynamoDB GetItem, one KMS Decrypt)
//! and cached, and every record gets a fresh data key wrapped locally.
//!
//! Run against AWS (credentials and region from the usual chain):
//!   `ENVSEAL_KMS_KEY_ID=arn:aws:kms:... cargo run --example hierarchy`
//! or against moto's server (what `scripts/test` does):
//!   `AWS_ENDPOINT_URL_KMS=http://127.0.0.1:5000 AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:5000 \
//!    AWS_REGION=us-east-1 ENVSEAL_KMS_KEY_ID=<key arn> cargo run --example hierarchy`

use std::time::Duration;

use envseal::keystore::KeyStore;
use envseal::kms::{AwsErrorKind, KmsClient};
use envseal::HierarchyKeyring;
use envseal::{Client, EncryptionContext, Error};

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
const RECORDS: usize = 3_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kms_key =
        std::env::var("ENVSEAL_KMS_KEY_ID").map_err(|_| "set ENVSEAL_KMS_KEY_ID to a KMS key ARN")?;
    let table =
        std::env::var("ENVSEAL_KEY_STORE_TABLE").unwrap_or_else(|_| "envseal-example-branch-keys".into());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // 1. The key store: the table and one branch key per tenant, each
        //    bound to its tenant's encryption context (done once, not per run).
        let kms = KmsClient::builder().build().await?;
        let store = KeyStore::builder(&table, &kms_key)
            .kms_client(kms.clone())
            .build()
            .await?;
        store.create_table().await?;
        for tenant in TENANTS {
            let context = EncryptionContext::from([("tenant", tenant)]);
            match store
                .create_key(Some(&format!("tenant-{tenant}")), &context)
                .await
            {
                Ok(_) => {}
                // Created by an earlier run.
                Err(Error::Aws(e)) if e.kind == AwsErrorKind::ConditionFailed => {}
                Err(e) => return Err(e.into()),
            }
        }
        // 2. A keyring choosing the branch key by tenant, its branch keys
        //    cached for 10 minutes.
        let keyring = HierarchyKeyring::builder(store.clone(), Duration::from_secs(600))
            .branch_key_id_supplier(|ctx: &EncryptionContext| match ctx.get("tenant") {
                Some(t) => Ok(format!("tenant-{t}")),
                None => Err(Error::Misuse(
                    "records need a tenant in their encryption context".into(),
                )),
            })
            .build()?;
        let client = Client::new(keyring)?;
        let (kms_before, ddb_before) = (kms.stats().calls(), store.stats().dynamodb_calls());
        // 3. Records for every tenant, each with a data key of its own.
        let mut messages = Vec::with_capacity(RECORDS);
        for i in 0..RECORDS {
            let context = EncryptionContext::from([("tenant", TENANTS[i % TENANTS.len()])]);
            let record = format!("record {i}");
            messages.push((
                context.clone(),
                client.encrypt(&context, record.as_bytes()).await?,
            ));
        }
        for (i, (context, message)) in messages.iter().enumerate() {
            let out = client.decrypt(context, message).await?;
            assert_eq!(*out.plaintext, format!("record {i}").into_bytes());
        }
        let kms_calls = kms.stats().calls() - kms_before;
        let ddb_calls = store.stats().dynamodb_calls() - ddb_before;
        println!(
            "{RECORDS} records for {} tenants encrypted and decrypted: {kms_calls} KMS calls, \
             {ddb_calls} DynamoDB calls",
            TENANTS.len()
        );
        // One branch key per tenant on encrypt, its version on decrypt.
        assert!(kms_calls <= 2 * TENANTS.len() as u64 && ddb_calls <= 2 * TENANTS.len() as u64);
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
