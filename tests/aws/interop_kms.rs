//! KMS interop with the Python reference ESDK over moto: the reference
//! (StrictAwsKmsMasterKeyProvider, its endpoint pointed at moto through
//! AWS_ENDPOINT_URL_KMS) decrypts envseal's KMS messages, and envseal
//! decrypts the reference's, with each key alone and by discovery.
#![cfg(feature = "kms")]

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::moto::{create_key, moto};
use envseal::kms::AwsBounds;
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
    let client = common::moto::client("us-east-1", &moto().url, AwsBounds::default()).await;
    let aes = common::aes("app", "aes", &[3u8; 32]);
    let mut jobs = Vec::new();
    for (i, (suite, policy)) in SUITES.iter().enumerate() {
        let kms: Arc<dyn Keyring> =
            Arc::new(KmsKeyring::builder(client.clone(), [&k1, &k2]).build().unwrap());
        let keyring = MultiKeyring::from_keyrings(vec![kms, aes.clone()]).unwrap();
        let plaintext = common::bytes(10_000 + i, i as u64);
        let msg = dir.path().join(format!("env-{i}.msg"));
        let message = crate::common::async_client(&config(*suite), &keyring)
            .encrypt(&context(), &plaintext)
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
    let client = common::moto::client("us-east-1", &moto().url, AwsBounds::default()).await;
    for (i, (suite, _)) in SUITES.iter().enumerate() {
        let message = std::fs::read(dir.path().join(format!("ref-{i}.msg"))).unwrap();
        let want = std::fs::read(dir.path().join(format!("ref-{i}.plain"))).unwrap();
        let keyrings: Vec<(&str, Arc<dyn Keyring>)> = vec![
            (
                "first key",
                Arc::new(KmsKeyring::builder(client.clone(), [&k1]).build().unwrap()),
            ),
            (
                "second key",
                Arc::new(KmsKeyring::builder(client.clone(), [&k2]).build().unwrap()),
            ),
            (
                "discovery",
                Arc::new(KmsDiscoveryKeyring::builder(client.clone()).build().unwrap()),
            ),
        ];
        for (label, keyring) in keyrings {
            let out = crate::common::async_client(&config(*suite), keyring.clone())
                .decrypt(&context(), &message)
                .await
                .unwrap_or_else(|e| panic!("suite {suite} {label}: {e}"));
            assert_eq!(*out.plaintext, want, "suite {suite} {label}");
            assert_eq!(out.suite, *suite);
        }
    }
}

// ---- the AWS KMS RSA keyring, against tests/interop/kms_server.py (moto
// with real RSA-OAEP decryption) and the Python MPL (mpl_ref.py) ----

fn kms_env(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL_KMS", moto().url.clone()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_CONFIG_FILE", dir.join("none").display().to_string()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("none").display().to_string(),
        ),
    ]
}

fn mpl(dir: &Path, jobs: &[Vec<String>]) -> Vec<Result<String, String>> {
    let env = kms_env(dir);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    common::reference("mpl_ref.py", dir, jobs, &env)
}

/// Both paddings, both backends: envseal's messages read by Python and
/// by envseal (KMS decrypts), Python's read by envseal; signing suites
/// refused; a changed context fails the digest check.
#[tokio::test]
async fn kms_rsa_keyring_round_trips_and_interop() {
    use envseal::{KmsRsaKeyring, RsaPadding, RsaPublicKey};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (arn, pem) = common::moto::create_rsa_key("us-east-1", "RSA_2048").await;
    let pem_file = d.join("rsa.pem");
    std::fs::write(&pem_file, &pem).unwrap();
    let client = common::moto::client("us-east-1", &moto().url, AwsBounds::default()).await;
    let ctx = context();
    write_context(&d.join("x.msg"));
    let ctx_file = d.join("x.ctx").display().to_string();
    let unsigned = config(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey);
    let mut jobs = Vec::new();
    let mut ours = Vec::new();
    for (padding, name) in [
        (RsaPadding::OaepSha1, "oaep-sha1"),
        (RsaPadding::OaepSha256, "oaep-sha256"),
    ] {
        for backend in envseal::Backend::all() {
            let public = RsaPublicKey::from_pem_with(backend, &pem).unwrap();
            let keyring = KmsRsaKeyring::builder(client.clone(), &arn, padding)
                .public_key(public)
                .build()
                .unwrap();
            let cfg = Config::builder()
                .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
                .backend(backend)
                .build()
                .unwrap();
            let m = crate::common::async_client(&cfg, &keyring)
                .encrypt(&ctx, b"kms rsa")
                .await
                .unwrap();
            // KMS (the server) unwraps it for envseal too.
            let reader = KmsRsaKeyring::builder(client.clone(), &arn, padding)
                .build()
                .unwrap();
            let out = crate::common::async_client(&cfg, &reader)
                .decrypt(&EncryptionContext::new(), &m)
                .await
                .unwrap();
            assert_eq!(&*out.plaintext, b"kms rsa");
            // An extra reproduced pair changes the digest: refused.
            let extra: EncryptionContext = [("extra", "x")].into_iter().collect();
            let err = crate::common::async_client(&cfg, &reader)
                .decrypt(&extra, &m)
                .await
                .unwrap_err();
            assert!(matches!(err, envseal::Error::Decrypt), "{err}");
            let signed = crate::common::async_client(&Config::default(), &keyring)
                .encrypt(&ctx, b"x")
                .await
                .unwrap_err();
            assert!(signed.to_string().contains("signing suites"), "{signed}");
            let msg = d.join(format!("rs-{name}-{}.msg", backend.name()));
            std::fs::write(&msg, &m).unwrap();
            let out = d.join(format!("rs-{name}-{}.out", backend.name()));
            ours.push(out.clone());
            jobs.push(
                [
                    "decrypt",
                    "--input",
                    &msg.display().to_string(),
                    "--output",
                    &out.display().to_string(),
                    "--kms-rsa-key",
                    &arn,
                    "--kms-rsa-padding",
                    name,
                    "--context-json",
                    &ctx_file,
                ]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            );
        }
        let plain = d.join(format!("py-{name}.plain"));
        std::fs::write(&plain, b"python kms rsa").unwrap();
        let py_msg = d.join(format!("py-{name}.msg"));
        jobs.push(
            [
                "encrypt",
                "--input",
                &plain.display().to_string(),
                "--output",
                &py_msg.display().to_string(),
                "--kms-rsa-key",
                &arn,
                "--kms-rsa-padding",
                name,
                "--kms-rsa-public-key",
                &pem_file.display().to_string(),
                "--suite",
                "0478",
                "--context-json",
                &ctx_file,
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        );
    }
    for (n, r) in mpl(d, &jobs).into_iter().enumerate() {
        r.unwrap_or_else(|e| panic!("reference job {n}: {e}"));
    }
    for out in ours {
        assert_eq!(std::fs::read(out).unwrap(), b"kms rsa");
    }
    for (padding, name) in [
        (RsaPadding::OaepSha1, "oaep-sha1"),
        (RsaPadding::OaepSha256, "oaep-sha256"),
    ] {
        let m = std::fs::read(d.join(format!("py-{name}.msg"))).unwrap();
        let reader = KmsRsaKeyring::builder(client.clone(), &arn, padding)
            .build()
            .unwrap();
        let out = crate::common::async_client(&unsigned, &reader)
            .decrypt(&EncryptionContext::new(), &m)
            .await
            .unwrap();
        assert_eq!(&*out.plaintext, b"python kms rsa");
        // The other padding does not decrypt it (KMS refuses).
        let other = if padding == RsaPadding::OaepSha1 {
            RsaPadding::OaepSha256
        } else {
            RsaPadding::OaepSha1
        };
        let wrong = KmsRsaKeyring::builder(client.clone(), &arn, other)
            .build()
            .unwrap();
        let err = crate::common::async_client(&unsigned, &wrong)
            .decrypt(&EncryptionContext::new(), &m)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, envseal::Error::Aws(e) if e.kind == envseal::kms::AwsErrorKind::InvalidCiphertext),
            "{err}"
        );
    }
    assert!(
        KmsRsaKeyring::builder(client.clone(), "alias/x", RsaPadding::OaepSha1)
            .build()
            .is_err()
    );
    assert!(KmsRsaKeyring::builder(client, &arn, RsaPadding::Pkcs1)
        .build()
        .is_err());
}

// ---- the AWS KMS ECDH keyring (KMS DeriveSharedSecret on kms_server.py) ----

fn strs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Every curve: KMS static messages read by envseal's KMS and raw
/// discovery keyrings and by Python's; raw ephemeral messages to the KMS
/// key's public key read by KMS discovery on both sides; Python's KMS
/// static messages read by envseal.
#[tokio::test]
async fn kms_ecdh_keyring_interop_with_raw_ecdh_and_python() {
    use envseal::{Curve, EcdhPrivateKey, EcdhPublicKey, KmsEcdhKeyring, RawEcdhKeyring};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let client = common::moto::client("us-east-1", &moto().url, AwsBounds::default()).await;
    let ctx = context();
    write_context(&d.join("x.msg"));
    let ctx_file = d.join("x.ctx").display().to_string();
    let mut jobs = Vec::new();
    let mut checks = Vec::new();
    for (cname, curve, spec) in [
        ("p256", Curve::P256, "ECC_NIST_P256"),
        ("p384", Curve::P384, "ECC_NIST_P384"),
        ("p521", Curve::P521, "ECC_NIST_P521"),
    ] {
        let k = common::moto::create_ecdh_key("us-east-1", spec).await;
        let b_priv = common::data_path(&format!("ecdh-{cname}-b-private.pem"));
        let b_pub = common::data_path(&format!("ecdh-{cname}-b-public.der"));
        let b_private = EcdhPrivateKey::from_pkcs8(curve, &std::fs::read(&b_priv).unwrap()).unwrap();
        let b_public = EcdhPublicKey::from_bytes(curve, &std::fs::read(&b_pub).unwrap()).unwrap();
        let kms_static = std::sync::Arc::new(
            KmsEcdhKeyring::builder(client.clone())
                .static_keys(&k, b_public.clone())
                .build()
                .await
                .unwrap(),
        );
        let kms_discovery = std::sync::Arc::new(
            KmsEcdhKeyring::builder(client.clone())
                .discovery(curve, &k)
                .build()
                .await
                .unwrap(),
        );
        assert_eq!(kms_static.kms_public_key(), kms_discovery.kms_public_key());
        let k_pub = d.join(format!("{cname}-kms.der"));
        std::fs::write(&k_pub, kms_static.kms_public_key().to_der()).unwrap();
        let raw_discovery = Arc::new(RawEcdhKeyring::discovery(b_private));
        for (hex, suite) in [
            ("0478", AlgorithmSuite::Aes256GcmHkdfSha512CommitKey),
            ("0578", AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384),
        ] {
            let cfg = config(suite);
            // KMS static K -> B.
            let m = crate::common::async_client(&cfg, &kms_static)
                .encrypt(&ctx, b"kms ecdh")
                .await
                .unwrap();
            let header = crate::common::parse(&cfg, &m[..]).unwrap();
            assert_eq!(header.encrypted_data_keys()[0].provider_id, "aws-kms-ecdh");
            for reader in [
                kms_static.clone() as Arc<dyn Keyring>,
                raw_discovery.clone() as Arc<dyn Keyring>,
            ] {
                let out = crate::common::async_client(&cfg, reader)
                    .decrypt(&EncryptionContext::new(), &m)
                    .await
                    .unwrap();
                assert_eq!(&*out.plaintext, b"kms ecdh");
            }
            let msg = d.join(format!("rs-{cname}-{hex}.msg"));
            std::fs::write(&msg, &m).unwrap();
            for (flag, spec) in [
                ("--raw-ecdh-discovery", format!("{cname}:{b_priv}")),
                ("--kms-ecdh-static", format!("{cname}:{b_pub}:{k}")),
            ] {
                let out = d.join(format!("rs-{cname}-{hex}{flag}.out"));
                jobs.push(strs(&[
                    "decrypt",
                    "--input",
                    &msg.display().to_string(),
                    "--output",
                    &out.display().to_string(),
                    flag,
                    &spec,
                    "--context-json",
                    &ctx_file,
                ]));
                checks.push((out, b"kms ecdh".to_vec()));
            }
            // Raw ephemeral -> the KMS key's public key; KMS discovery reads it.
            let to_k = std::sync::Arc::new(RawEcdhKeyring::ephemeral(kms_static.kms_public_key().clone()));
            let m = crate::common::async_client(&cfg, &to_k)
                .encrypt(&ctx, b"to kms")
                .await
                .unwrap();
            let out = crate::common::async_client(&cfg, &kms_discovery)
                .decrypt(&EncryptionContext::new(), &m)
                .await
                .unwrap();
            assert_eq!(&*out.plaintext, b"to kms");
            let msg = d.join(format!("eph-{cname}-{hex}.msg"));
            std::fs::write(&msg, &m).unwrap();
            let out = d.join(format!("eph-{cname}-{hex}.out"));
            jobs.push(strs(&[
                "decrypt",
                "--input",
                &msg.display().to_string(),
                "--output",
                &out.display().to_string(),
                "--kms-ecdh-discovery",
                &format!("{cname}:{k}"),
                "--context-json",
                &ctx_file,
            ]));
            checks.push((out, b"to kms".to_vec()));
            // Python writes KMS static K -> B.
            let plain = d.join(format!("py-{cname}-{hex}.plain"));
            std::fs::write(&plain, b"python kms ecdh").unwrap();
            let py = d.join(format!("py-{cname}-{hex}.msg"));
            jobs.push(strs(&[
                "encrypt",
                "--input",
                &plain.display().to_string(),
                "--output",
                &py.display().to_string(),
                "--kms-ecdh-static",
                &format!("{cname}:{b_pub}:{k}"),
                "--suite",
                hex,
                "--context-json",
                &ctx_file,
            ]));
        }
        // A discovery keyring does not encrypt.
        assert!(crate::common::async_client(
            &config(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey),
            &kms_discovery
        )
        .encrypt(&ctx, b"x")
        .await
        .is_err());
    }
    for (n, r) in mpl(d, &jobs).into_iter().enumerate() {
        r.unwrap_or_else(|e| panic!("reference job {n} {:?}: {e}", jobs[n]));
    }
    for (out, want) in &checks {
        assert_eq!(&std::fs::read(out).unwrap(), want, "{}", out.display());
    }
    assert_eq!(checks.len(), 3 * 2 * 3);
    for (cname, curve) in [
        ("p256", Curve::P256),
        ("p384", Curve::P384),
        ("p521", Curve::P521),
    ] {
        let b_priv = common::data_path(&format!("ecdh-{cname}-b-private.pem"));
        let raw_discovery = std::sync::Arc::new(RawEcdhKeyring::discovery(
            EcdhPrivateKey::from_pkcs8(curve, &std::fs::read(&b_priv).unwrap()).unwrap(),
        ));
        for hex in ["0478", "0578"] {
            let m = std::fs::read(d.join(format!("py-{cname}-{hex}.msg"))).unwrap();
            let out = crate::common::async_client(&Config::default(), &raw_discovery)
                .decrypt(&EncryptionContext::new(), &m)
                .await
                .unwrap();
            assert_eq!(&*out.plaintext, b"python kms ecdh");
        }
    }
    // A KMS key that is not for key agreement is refused when the keyring is made.
    let symmetric = create_key("us-east-1").await;
    let err = KmsEcdhKeyring::builder(client)
        .discovery(Curve::P256, &symmetric)
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, envseal::Error::Aws(_)), "{err}");
}
