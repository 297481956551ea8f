//! KMS interop with the Python reference ESDK over moto: the reference
//! (StrictAwsKmsMasterKeyProvider, its endpoint pointed at moto through
//! AWS_ENDPOINT_URL_KMS) decrypts envseal's KMS messages, and envseal
//! decrypts the reference's, with each key alone and by discovery.
#![cfg(feature = "kms")]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::moto::{create_key, moto};
use envseal::kms::KmsBounds;
use envseal::{
    AlgorithmSuite, Config, EncryptionContext, Keyring, KmsDiscoveryKeyring, KmsKeyring, MultiKeyring,
};
use serde_json::Value;

/// Runs reference jobs in one Python process with moto as its KMS.
fn reference(dir: &Path, jobs: &[Vec<String>]) -> Vec<Result<(), String>> {
    let job_file = dir.join("jobs.json");
    std::fs::write(&job_file, serde_json::to_vec(jobs).unwrap()).unwrap();
    let out = Command::new(common::python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/esdk_ref.py"))
        .arg("batch")
        .arg(&job_file)
        .env("AWS_ENDPOINT_URL_KMS", &moto().url)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("none"))
        .output()
        .expect("run the Python reference");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    results
        .into_iter()
        .map(|r| match r["ok"].as_bool() {
            Some(true) => Ok(()),
            _ => Err(r["error"].as_str().unwrap_or("?").to_owned()),
        })
        .collect()
}

fn job(mode: &str, input: &Path, output: &Path, keys: &[&str], extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        mode.into(),
        "--input".into(),
        input.display().to_string(),
        "--output".into(),
        output.display().to_string(),
        "--context-json".into(),
        input.with_extension("ctx").display().to_string(),
    ];
    for k in keys {
        v.push("--kms-key".into());
        v.push((*k).into());
    }
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

fn context() -> EncryptionContext {
    [("service", "interop"), ("région", "ünïcode")]
        .into_iter()
        .collect()
}

fn write_context(path: &Path) {
    let map: serde_json::Map<String, Value> = context()
        .iter()
        .map(|(k, v)| (k.to_owned(), Value::from(v)))
        .collect();
    std::fs::write(path.with_extension("ctx"), serde_json::to_vec(&map).unwrap()).unwrap();
}

const SUITES: [(AlgorithmSuite, &str); 3] = [
    (
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
        "require-encrypt-require-decrypt",
    ),
    (
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        "require-encrypt-require-decrypt",
    ),
    (
        AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha384EcdsaP384,
        "forbid-encrypt-allow-decrypt",
    ),
];

fn config(suite: AlgorithmSuite) -> Config {
    common::strict_config(suite)
}

#[tokio::test]
async fn reference_decrypts_envseal_kms_messages() {
    let k1 = create_key("us-east-1").await;
    let k2 = create_key("us-east-1").await;
    let dir = tempfile::tempdir().unwrap();
    let client = common::moto::client("us-east-1", &moto().url, KmsBounds::default()).await;
    let aes = common::aes("app", "aes", &[3u8; 32]);
    let mut jobs = Vec::new();
    for (i, (suite, policy)) in SUITES.iter().enumerate() {
        let kms: Arc<dyn Keyring> = Arc::new(KmsKeyring::new(client.clone(), [&k1, &k2]).unwrap());
        let keyring = MultiKeyring::from_keyrings(vec![kms, aes.clone()]).unwrap();
        let plaintext = common::bytes(10_000 + i, i as u64);
        let msg = dir.path().join(format!("env-{i}.msg"));
        let message = envseal::encrypt(&config(*suite), &keyring, &context(), &plaintext)
            .await
            .unwrap();
        std::fs::write(&msg, &message).unwrap();
        std::fs::write(dir.path().join(format!("env-{i}.plain")), &plaintext).unwrap();
        write_context(&msg);
        for (j, keys) in [vec![k1.as_str()], vec![k2.as_str()]].iter().enumerate() {
            let out = dir.path().join(format!("env-{i}-{j}.out"));
            jobs.push(job("decrypt", &msg, &out, keys, &["--commitment-policy", policy]));
        }
    }
    let results = reference(dir.path(), &jobs);
    for (n, r) in results.iter().enumerate() {
        assert!(r.is_ok(), "job {n}: {r:?}");
        let (i, j) = (n / 2, n % 2);
        let got = std::fs::read(dir.path().join(format!("env-{i}-{j}.out"))).unwrap();
        let want = std::fs::read(dir.path().join(format!("env-{i}.plain"))).unwrap();
        assert_eq!(got, want, "suite {i} key {j}");
    }
    assert_eq!(results.len(), SUITES.len() * 2);
}

#[tokio::test]
async fn envseal_decrypts_reference_kms_messages() {
    let k1 = create_key("us-east-1").await;
    let k2 = create_key("us-east-1").await;
    let dir = tempfile::tempdir().unwrap();
    let mut jobs = Vec::new();
    for (i, (suite, policy)) in SUITES.iter().enumerate() {
        let plain = dir.path().join(format!("ref-{i}.plain"));
        std::fs::write(&plain, common::bytes(5000 + i * 777, 100 + i as u64)).unwrap();
        write_context(&plain);
        let suite_hex = format!("{:04X}", suite.id());
        let msg = dir.path().join(format!("ref-{i}.msg"));
        let extra = [
            "--suite",
            suite_hex.as_str(),
            "--commitment-policy",
            policy,
            "--frame-length",
            "1024",
        ];
        jobs.push(job("encrypt", &plain, &msg, &[&k1, &k2], &extra));
    }
    for (n, r) in reference(dir.path(), &jobs).into_iter().enumerate() {
        r.unwrap_or_else(|e| panic!("reference encrypt {n}: {e}"));
    }
    let client = common::moto::client("us-east-1", &moto().url, KmsBounds::default()).await;
    for (i, (suite, _)) in SUITES.iter().enumerate() {
        let message = std::fs::read(dir.path().join(format!("ref-{i}.msg"))).unwrap();
        let want = std::fs::read(dir.path().join(format!("ref-{i}.plain"))).unwrap();
        let keyrings: Vec<(&str, Box<dyn Keyring>)> = vec![
            (
                "first key",
                Box::new(KmsKeyring::new(client.clone(), [&k1]).unwrap()),
            ),
            (
                "second key",
                Box::new(KmsKeyring::new(client.clone(), [&k2]).unwrap()),
            ),
            (
                "discovery",
                Box::new(KmsDiscoveryKeyring::new(client.clone()).unwrap()),
            ),
        ];
        for (label, keyring) in keyrings {
            let out = envseal::decrypt(&config(*suite), keyring.as_ref(), &context(), &message)
                .await
                .unwrap_or_else(|e| panic!("suite {suite} {label}: {e}"));
            assert_eq!(*out.plaintext, want, "suite {suite} {label}");
            assert_eq!(out.suite, *suite);
        }
    }
}
