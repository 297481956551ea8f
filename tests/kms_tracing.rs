//! What KMS calls log through `tracing`: an event per attempt with its
//! number, latency, status and outcome (throttles at WARN), one event per
//! failed call, and never a data key. One global subscriber per binary
//! (thread-scoped subscribers can miss events of callsites that other test
//! threads hit first), tests serialized on a lock, each reading the log
//! lines of its own fault server.
#![cfg(feature = "kms")]

mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::fault::{Action, FaultServer};
use common::moto;
use envseal::kms::{AwsBounds, AwsErrorKind, RetryMode};
use envseal::{Config, EncryptionContext, Error, KmsKeyring};

const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000";

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log so far, and a lock that runs the tests one at a time.
fn log() -> (&'static Buf, std::sync::MutexGuard<'static, ()>) {
    static LOG: OnceLock<Buf> = OnceLock::new();
    static SERIAL: Mutex<()> = Mutex::new(());
    let buf = LOG.get_or_init(|| {
        let buf = Buf::default();
        let writer = buf.clone();
        // envseal at its most verbose, the AWS SDK at debug (its TRACE
        // level dumps HTTP bodies, data keys included: never enable that in
        // production).
        tracing_subscriber::fmt()
            .with_env_filter(
                "envseal=trace,aws_smithy_runtime=debug,aws_sdk_kms=debug,aws_sdk_dynamodb=debug,aws_smithy_http_client=debug",
            )
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        buf
    });
    let guard = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    buf.0.lock().unwrap().clear();
    (buf, guard)
}

fn text(buf: &Buf) -> String {
    String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned()
}

fn context() -> EncryptionContext {
    [("fault", "test")].into_iter().collect()
}

fn bounds() -> AwsBounds {
    AwsBounds::builder()
        .max_attempts(3)
        .initial_backoff(Duration::from_millis(10))
        .max_backoff(Duration::from_millis(50))
        .retry_mode(RetryMode::Standard)
        .build()
        .unwrap()
}

#[test]
fn attempts_are_traced_with_status_and_outcome() {
    let (buf, _serial) = log();
    let server = FaultServer::start(None, vec![Action::Error(429, "ThrottlingException")]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = moto::client("us-east-1", &server.url, bounds()).await;
        let keyring = KmsKeyring::builder(client, [KEY]).build().unwrap();
        let err = crate::common::async_client(&Config::default(), &keyring)
            .encrypt(&context(), b"x")
            .await
            .unwrap_err();
        let Error::Aws(err) = err else { panic!("{err:?}") };
        assert_eq!(err.kind, AwsErrorKind::Throttled);
    });
    let log = text(buf);
    let throttled: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("kms attempt throttled"))
        .collect();
    assert_eq!(throttled.len(), 3, "{log}");
    for (i, line) in throttled.iter().enumerate() {
        assert!(line.contains("WARN") && line.contains("status=429"), "{line}");
        assert!(line.contains(&format!("attempt={}", i + 1)), "{line}");
        assert!(
            line.contains("operation=\"GenerateDataKey\"") || line.contains("operation=GenerateDataKey"),
            "{line}"
        );
        assert!(line.contains("latency_ms="), "{line}");
    }
    let failed: Vec<&str> = log.lines().filter(|l| l.contains("kms call failed")).collect();
    assert_eq!(failed.len(), 1, "{log}");
    assert!(
        failed[0].contains("Throttled") && failed[0].contains("attempts=3"),
        "{}",
        failed[0]
    );
}

#[test]
fn data_keys_never_reach_the_logs() {
    let (buf, _serial) = log();
    let fake = common::fake_kms::FakeKms::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = moto::client("us-east-1", &fake.url, bounds()).await;
        let keyring = KmsKeyring::builder(client, [KEY]).build().unwrap();
        let message = crate::common::async_client(&Config::default(), &keyring)
            .encrypt(&context(), b"x")
            .await
            .unwrap();
        crate::common::async_client(&Config::default(), &keyring)
            .decrypt(&context(), &message)
            .await
            .unwrap();
    });
    let log = text(buf);
    assert!(log.contains("kms attempt ok"), "{log}");
    use base64::Engine;
    let key = common::fake_kms::data_key(32);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&key);
    assert!(!log.contains(&b64), "the data key (base64) is in the log");
    assert!(
        !log.contains(&hex::encode(&key)),
        "the data key (hex) is in the log"
    );
    assert!(
        !log.contains(&format!("{:?}", &key[..8])),
        "the data key (bytes) is in the log"
    );
}

/// The key store's DynamoDB calls are traced like KMS calls: a
/// `dynamodb_call` span with the operation and branch key, an event per
/// attempt (throttles at WARN with their status) and one per failed call.
#[cfg(feature = "hierarchy")]
#[test]
fn dynamodb_attempts_are_traced_and_branch_keys_never_logged() {
    use envseal::keystore::KeyStore;
    let (buf, _serial) = log();
    let server = FaultServer::start(
        None,
        vec![Action::Error(400, "ProvisionedThroughputExceededException")],
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let branch_key = rt.block_on(async {
        let client = moto::client("us-east-1", &server.url, bounds()).await;
        let store = KeyStore::builder("traced", KEY)
            .kms_client(client)
            .build()
            .await
            .unwrap();
        let err = store.get_active_branch_key("bk-traced").await.unwrap_err();
        let Error::Aws(err) = err else { panic!("{err:?}") };
        assert_eq!(err.kind, AwsErrorKind::Throttled);
        // A real read through moto: the branch key must not reach the log.
        let key = moto::create_key("us-east-1").await;
        let client = moto::client("us-east-1", &moto::moto().url, bounds()).await;
        let store = KeyStore::builder("traced-ok", &key)
            .kms_client(client)
            .build()
            .await
            .unwrap();
        store.create_table().await.unwrap();
        let id = store.create_key(None, &EncryptionContext::new()).await.unwrap();
        *store.get_active_branch_key(&id).await.unwrap().expose_secret()
    });
    let log = text(buf);
    let throttled: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("dynamodb attempt throttled"))
        .collect();
    assert_eq!(throttled.len(), 3, "{log}");
    for line in &throttled {
        assert!(line.contains("WARN") && line.contains("status=400"), "{line}");
        assert!(line.contains("dynamodb_call"), "{line}");
        assert!(line.contains("GetItem") && line.contains("bk-traced"), "{line}");
    }
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("dynamodb call failed") && l.contains("GetItem"))
        .collect();
    assert_eq!(failed.len(), 1, "{log}");
    assert!(
        failed[0].contains("Throttled") && failed[0].contains("attempts=3"),
        "{}",
        failed[0]
    );
    // Table operations name the table, not a branch key.
    assert!(
        log.contains("dynamodb_call{operation=\"DescribeTable\" table=\"traced-ok\""),
        "{log}"
    );
    assert!(
        log.contains("dynamodb attempt ok") && log.contains("kms attempt ok"),
        "{log}"
    );
    use base64::Engine;
    assert!(
        !log.contains(&hex::encode(branch_key)),
        "the branch key (hex) is in the log"
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(branch_key);
    assert!(!log.contains(&b64), "the branch key (base64) is in the log");
}
