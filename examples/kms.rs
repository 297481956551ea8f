//! Envelope encryption under an AWS KMS key, every KMS call bounded.
//!
//! Run against AWS (credentials and region from the usual chain):
//!   `ENVSEAL_KMS_KEY_ID=arn:aws:kms:... cargo run --example kms`
//! or against a local KMS such as moto's server (what `scripts/test` does):
//!   `AWS_ENDPOINT_URL_KMS=http://127.0.0.1:5000 AWS_REGION=us-east-1 \
//!    ENVSEAL_KMS_KEY_ID=<key arn> cargo run --example kms`

use std::time::Duration;

use envseal::kms::{AwsBounds, KmsClient};
use envseal::KmsKeyring;
use envseal::{Client, EncryptionContext};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key_id =
        std::env::var("ENVSEAL_KMS_KEY_ID").map_err(|_| "set ENVSEAL_KMS_KEY_ID to a KMS key ARN")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // 1. One KMS client for the process: timeouts, a 3 s deadline per
        //    keyring operation and capped retries. AWS_ENDPOINT_URL_KMS,
        //    when set, points it at another endpoint.
        let kms = KmsClient::builder()
            .bounds(AwsBounds::builder().deadline(Duration::from_secs(3)).build()?)
            .build()
            .await?;
        // 2. A keyring over it and a client around the keyring.
        let client = Client::new(KmsKeyring::builder(kms.clone(), [key_id.as_str()]).build()?)?;
        let context = EncryptionContext::from([("tenant", "acme")]);
        // 3. GenerateDataKey on encrypt, Decrypt on decrypt: one call each.
        let message = client.encrypt(&context, b"a record").await?;
        let decrypted = client.decrypt(&context, &message).await?;
        assert_eq!(&decrypted.plaintext[..], b"a record");
        let stats = kms.stats();
        println!(
            "KMS: {} calls ({} GenerateDataKey, {} Decrypt), {} attempts, {} throttles",
            stats.calls(),
            stats.generate_data_key_calls,
            stats.decrypt_calls,
            stats.attempts,
            stats.throttles
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
