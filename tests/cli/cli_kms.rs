//! The CLI's KMS options against moto (and a throttling fault server):
//! `--kms-key` (repeatable, mixed with raw keys), `--kms-discovery` with a
//! filter, `--kms-endpoint`, `--region`, the bounds flags, `--grant-token`,
//! `--kms-stats`, and one-line typed KMS errors.
#![cfg(feature = "kms")]

use crate::common;
#[path = "cli_kms/awscli.rs"]
mod awscli;
#[cfg(feature = "hierarchy")]
#[path = "cli_kms/ddb_check.rs"]
mod ddb_check;
#[cfg(feature = "hierarchy")]
#[path = "cli_kms/key_store.rs"]
mod key_store;
#[cfg(feature = "hierarchy")]
#[path = "cli_kms/reencrypt.rs"]
mod reencrypt;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::fault::{Action, FaultServer};
use common::moto::{create_key, moto, ACCOUNT};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_envseal");

/// Runs envseal with static test credentials and no other AWS configuration.
fn envseal(dir: &Path, args: &[&str]) -> Output {
    envseal_env(dir, args, &[])
}

fn envseal_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    test_env(Command::new(BIN).args(args), dir)
        .envs(env.iter().copied())
        .output()
        .expect("run envseal")
}

/// Static test credentials and no other AWS configuration (no shared
/// files, no instance metadata), `HOME` in `dir`.
fn test_env<'c>(c: &'c mut Command, dir: &Path) -> &'c mut Command {
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-aws-credentials"))
}

#[track_caller]
fn ok(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "envseal failed: {err}");
    err
}

#[track_caller]
fn fails(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected failure; stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.starts_with("envseal: ") && err.ends_with('\n'), "{err:?}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.len() == 1 || (lines.len() == 2 && lines[1].starts_with("hint: ")),
        "one line, then at most a hint line: {err:?}"
    );
    err
}

struct Files {
    dir: TempDir,
}

impl Files {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plain"), b"kms via the command line").unwrap();
        std::fs::write(dir.path().join("aes.key"), [5u8; 32]).unwrap();
        Files { dir }
    }
    fn p(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

#[tokio::test]
async fn encrypt_and_decrypt_with_kms_keys_discovery_and_raw_aes() {
    let k1 = create_key("us-east-1").await;
    let k2 = create_key("us-east-1").await;
    let f = Files::new();
    let endpoint = moto().url.clone();
    let aes = format!("app:aes:{}", f.p("aes.key"));
    let common = ["--region", "us-east-1", "--kms-endpoint", &endpoint];

    let (plain, msg) = (f.p("plain"), f.p("msg"));
    let mut args = vec!["encrypt", "-i", &plain, "-o", &msg];
    args.extend(common);
    args.extend([
        "--kms-key",
        &k1,
        "--raw-aes-key",
        &aes,
        "--kms-key",
        &k2,
        "--grant-token",
        "gt-1",
    ]);
    args.extend(["--context", "tenant=acme", "--kms-stats"]);
    let stderr = ok(&envseal(f.path(), &args));
    // The first key generated; the second KMS key wrapped with Encrypt.
    assert!(
        stderr.contains("GenerateDataKey=1 Encrypt=1 Decrypt=0"),
        "{stderr}"
    );

    // Decrypt with the second KMS key alone, with the first, with raw AES alone.
    for (n, key_args) in [
        vec!["--kms-key", k2.as_str()],
        vec!["--kms-key", k1.as_str()],
        vec!["--raw-aes-key", aes.as_str()],
    ]
    .into_iter()
    .enumerate()
    {
        let out_path = f.p(&format!("out{n}"));
        let mut args = vec!["decrypt", "-i", &msg, "-o", &out_path];
        args.extend(common);
        args.extend(key_args);
        ok(&envseal(f.path(), &args));
        assert_eq!(std::fs::read(&out_path).unwrap(), b"kms via the command line");
    }

    // Region and endpoint from the standard environment variables instead.
    let from_env = f.p("from-env");
    let env = [
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL_KMS", endpoint.as_str()),
    ];
    ok(&envseal_env(
        f.path(),
        &["decrypt", "-i", &msg, "-o", &from_env, "--kms-key", &k1],
        &env,
    ));
    assert_eq!(std::fs::read(&from_env).unwrap(), b"kms via the command line");

    // Discovery with a filter that allows moto's account.
    let disc = f.p("disc");
    let mut args = vec!["decrypt", "-i", &msg, "-o", &disc];
    args.extend(common);
    args.extend(["--kms-discovery", "--discovery-account", ACCOUNT, "--kms-stats"]);
    let stderr = ok(&envseal(f.path(), &args));
    assert!(stderr.contains("Decrypt=1"), "{stderr}");
    assert_eq!(std::fs::read(f.p("disc")).unwrap(), b"kms via the command line");

    // A filter that excludes the account: no KMS call, one-line error, no output.
    let excluded = f.p("excluded");
    let mut args = vec!["decrypt", "-i", &msg, "-o", &excluded];
    args.extend(common);
    args.extend([
        "--kms-discovery",
        "--discovery-account",
        "111122223333",
        "--kms-stats",
    ]);
    let out = envseal(f.path(), &args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    assert!(stderr.contains("no keyring could decrypt"), "{stderr}");
    assert!(stderr.contains("kms: calls=0 "), "{stderr}");
    assert!(!Path::new(&f.p("excluded")).exists());
}

#[test]
fn throttling_is_one_typed_line_and_exit_1() {
    let key = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000";
    // Standard retries: three attempts, all throttled. Adaptive (the
    // default): the client-side rate limiter may hold the third attempt past
    // the deadline; the error still says throttled, with the status.
    for mode in ["standard", "adaptive"] {
        let server = FaultServer::start(None, vec![Action::Error(429, "ThrottlingException")]);
        let f = Files::new();
        let (plain, msg) = (f.p("plain"), f.p("msg"));
        let out = envseal(
            f.path(),
            &[
                "encrypt",
                "-i",
                &plain,
                "-o",
                &msg,
                "--kms-key",
                key,
                "--region",
                "us-east-1",
                "--kms-endpoint",
                &server.url,
                "--kms-max-attempts",
                "3",
                "--kms-deadline-ms",
                "2000",
                "--kms-connect-timeout-ms",
                "500",
                "--kms-read-timeout-ms",
                "1000",
                "--kms-attempt-timeout-ms",
                "1500",
                "--kms-retry-mode",
                mode,
            ],
        );
        let line = fails(&out);
        assert_eq!(out.status.code(), Some(1));
        let requests = server.requests();
        // "… throttled (HTTP 429, ThrottlingException) after N attempt(s) …"
        let marker = "throttled (HTTP 429, ThrottlingException) after ";
        assert!(
            line.contains("KMS GenerateDataKey") && line.contains(marker),
            "{mode}: {line}"
        );
        let attempts: usize = line[line.find(marker).unwrap() + marker.len()..]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{mode}: no attempt count in {line}"));
        assert!(
            line.ends_with(&format!("\nhint: {THROTTLED_HINT}\n")),
            "{mode}: {line}"
        );
        if mode == "standard" {
            assert_eq!((attempts, requests), (3, 3), "{line}");
        } else {
            // An attempt the deadline cuts may be counted as sent before
            // its bytes reach the server.
            assert!((1..=3).contains(&attempts), "{line}");
            assert!(
                attempts == requests || attempts == requests + 1,
                "{requests} requests: {line}"
            );
        }
        assert!(!Path::new(&msg).exists(), "no output on failure");
    }
}

const THROTTLED_HINT: &str = "AWS is throttling this account: retry later, allow more time \
     (--kms-max-attempts, --kms-deadline-ms), or reuse data keys (--cache-max-age-s)";

/// An AWS failure's kind picks its hint line: access denied, and no
/// answer in time (a server that never answers), each from a loopback
/// fault server; throttling is above.
#[test]
fn aws_failures_are_one_line_and_a_hint_by_kind() {
    let key = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000";
    let cases = [
        (
            Action::Error(400, "AccessDeniedException"),
            "KMS GenerateDataKey",
            "the AWS identity in use lacks permission for this key or call \
             (`envseal doctor` shows which identity it is)",
        ),
        (
            Action::Hang,
            "KMS GenerateDataKey",
            "check the network, --region and the endpoint, or retry later; a slow link needs larger \
             --kms-attempt-timeout-ms and --kms-deadline-ms (`envseal doctor` tests the connection)",
        ),
    ];
    for (action, what, hint) in cases {
        let server = FaultServer::start(None, vec![action]);
        let f = Files::new();
        let (plain, msg) = (f.p("plain"), f.p("msg"));
        let out = envseal(
            f.path(),
            &[
                "encrypt",
                "-i",
                &plain,
                "-o",
                &msg,
                "--kms-key",
                key,
                "--region",
                "us-east-1",
                "--kms-endpoint",
                &server.url,
                "--kms-max-attempts",
                "1",
                "--kms-attempt-timeout-ms",
                "300",
                "--kms-deadline-ms",
                "600",
            ],
        );
        let err = fails(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let lines: Vec<&str> = err.lines().collect();
        assert!(lines[0].contains(what), "{err}");
        assert_eq!(lines.get(1), Some(&format!("hint: {hint}").as_str()), "{err}");
        assert!(!Path::new(&msg).exists(), "no output on failure");
    }
}

#[test]
fn kms_usage_errors() {
    let f = Files::new();
    let out = envseal(
        f.path(),
        &[
            "encrypt",
            "-i",
            &f.p("plain"),
            "-o",
            &f.p("msg"),
            "--kms-discovery",
            "--region",
            "us-east-1",
        ],
    );
    let line = fails(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(line.contains("--kms-discovery only decrypts"), "{line}");

    let out = envseal(
        f.path(),
        &[
            "encrypt",
            "-i",
            &f.p("plain"),
            "-o",
            &f.p("msg"),
            "--kms-key",
            "k",
        ],
    );
    let line = fails(&out);
    assert!(line.contains("region"), "{line}");

    let out = envseal(
        f.path(),
        &[
            "decrypt",
            "-i",
            &f.p("plain"),
            "-o",
            &f.p("x"),
            "--kms-key",
            "k",
            "--kms-max-attempts",
            "0",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}

// ---- the hierarchical keyring and `envseal key-store` ----

/// Runs envseal with moto as KMS and DynamoDB (from the environment).
#[cfg(feature = "hierarchy")]
fn envseal_ddb(dir: &Path, args: &[&str]) -> Output {
    let url = moto().url.clone();
    envseal_env(
        dir,
        args,
        &[
            ("AWS_ENDPOINT_URL_KMS", url.as_str()),
            ("AWS_ENDPOINT_URL_DYNAMODB", url.as_str()),
            ("AWS_REGION", "us-east-1"),
        ],
    )
}

/// `envseal key-store CMD --key-store-table T --key-store-kms-key K ...`.
#[cfg(feature = "hierarchy")]
fn key_store_args(cmd: &str, table: &str, kms_key: &str, more: &[&str]) -> Vec<String> {
    let mut v = vec![
        "key-store",
        cmd,
        "--key-store-table",
        table,
        "--key-store-kms-key",
        kms_key,
    ];
    v.extend(more);
    v.into_iter().map(str::to_owned).collect()
}

#[cfg(feature = "hierarchy")]
#[tokio::test]
async fn key_store_commands_and_branch_keys_mixed_with_other_keys() {
    let kms_key = create_key("us-east-1").await;
    let f = Files::new();
    let table = format!("cli-bk-{}", std::process::id());
    let t = table.as_str();
    ok(&envseal_ddb(
        f.path(),
        &["key-store", "create-table", "--key-store-table", t],
    ));
    // Again: the table exists with the right schema, which is fine.
    ok(&envseal_ddb(
        f.path(),
        &["key-store", "create-table", "--key-store-table", t],
    ));
    let out = envseal_ddb(
        f.path(),
        &[
            "key-store",
            "create-key",
            "--key-store-table",
            t,
            "--key-store-kms-key",
            &kms_key,
        ],
    );
    ok(&out);
    let random_id = String::from_utf8(out.stdout).unwrap();
    assert_eq!(random_id.trim().len(), 36, "the id alone: {random_id:?}");
    assert_eq!(random_id.lines().count(), 1);
    let random_id = random_id.trim().to_owned();
    let tenant_key = key_store_args(
        "create-key",
        t,
        &kms_key,
        &["--branch-key-id", "cli-tenant", "--context", "tenant=cli"],
    );
    let out = envseal_ddb(
        f.path(),
        &tenant_key.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    ok(&out);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "cli-tenant\n");

    // A branch key, a raw AES key and the other branch key in one message.
    let store = ["--key-store-table", t, "--key-store-kms-key", &kms_key];
    let mut enc = vec!["encrypt", "-i", "plain_"]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    enc[2] = f.p("plain");
    enc.extend([
        "-o".into(),
        f.p("msg"),
        "--branch-key-id".into(),
        random_id.clone(),
    ]);
    enc.extend(["--raw-aes-key".into(), format!("app:aes:{}", f.p("aes.key"))]);
    enc.extend([
        "--branch-key-id".into(),
        "cli-tenant".into(),
        "--kms-stats".into(),
    ]);
    enc.extend(store.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = enc.iter().map(String::as_str).collect();
    let err = ok(&envseal_ddb(f.path(), &args));
    assert!(err.contains("dynamodb: calls=2 (GetItem=2"), "{err}");
    for (n, id) in [random_id.as_str(), "cli-tenant"].iter().enumerate() {
        let out = f.p(&format!("out-{n}"));
        let mut args = vec![
            "decrypt",
            "-i",
            "",
            "-o",
            &out,
            "--branch-key-id",
            id,
            "--branch-key-ttl-s",
            "5",
        ];
        let msg = f.p("msg");
        args[2] = &msg;
        args.extend(store);
        ok(&envseal_ddb(f.path(), &args));
        assert_eq!(std::fs::read(&out).unwrap(), b"kms via the command line");
    }

    // version-key prints the new version; old messages still decrypt.
    let out = envseal_ddb(
        f.path(),
        &[
            "key-store",
            "version-key",
            "--key-store-table",
            t,
            "--key-store-kms-key",
            &kms_key,
            "--branch-key-id",
            "cli-tenant",
        ],
    );
    ok(&out);
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim().len(), 36);
    let out = f.p("after-version");
    let msg = f.p("msg");
    let mut args = vec!["decrypt", "-i", &msg, "-o", &out, "--branch-key-id", "cli-tenant"];
    args.extend(store);
    ok(&envseal_ddb(f.path(), &args));

    // An unknown branch key: one line naming service, operation, branch
    // key and cause, and no output file.
    let out = f.p("nope-out");
    let plain = f.p("plain");
    let mut args = vec!["encrypt", "-i", &plain, "-o", &out, "--branch-key-id", "nope"];
    args.extend(store);
    let err = fails(&envseal_ddb(f.path(), &args));
    assert!(
        err.contains("DynamoDB GetItem branch key nope: not found"),
        "{err}"
    );
    assert!(
        err.contains("\nhint: check --key-store-table, --region and the branch key id"),
        "{err}"
    );
    assert!(!Path::new(&out).exists());
    // The same key id twice: refused by the conditional write.
    let err = fails(&envseal_ddb(
        f.path(),
        &tenant_key.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert!(
        err.contains("DynamoDB TransactWriteItems branch key cli-tenant: conditional write refused"),
        "{err}"
    );
    assert!(
        err.contains("\nhint: the branch key already exists or changed meanwhile"),
        "{err}"
    );
}

#[cfg(feature = "hierarchy")]
#[tokio::test]
async fn branch_key_usage_errors_and_dynamodb_bounds() {
    let kms_key = create_key("us-east-1").await;
    let f = Files::new();
    let (plain, out) = (f.p("plain"), f.p("out"));
    for (args, want) in [
        (
            vec!["--branch-key-id", "x"],
            "--branch-key-id needs --key-store-table and --key-store-kms-key",
        ),
        (
            vec!["--key-store-table", "t", "--key-store-kms-key", &kms_key],
            "need --branch-key-id",
        ),
        (
            vec![
                "--branch-key-id",
                "x",
                "--key-store-table",
                "t",
                "--key-store-kms-key",
                "alias/k",
            ],
            "not a KMS key ARN",
        ),
    ] {
        let mut all = vec!["encrypt", "-i", &plain, "-o", &out];
        all.extend(args);
        let o = envseal_ddb(f.path(), &all);
        let err = fails(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(want), "{err}");
    }
    // create-key with an id of one's own but no context: a usage error.
    let o = envseal_ddb(
        f.path(),
        &[
            "key-store",
            "create-key",
            "--key-store-table",
            "t",
            "--key-store-kms-key",
            &kms_key,
            "--branch-key-id",
            "x",
        ],
    );
    fails(&o);
    assert_eq!(o.status.code(), Some(2));

    // DynamoDB that never answers, through --dynamodb-endpoint: bounded by
    // the --kms-* flags.
    let hang = FaultServer::start(None, vec![Action::Hang]);
    let started = std::time::Instant::now();
    let err = fails(&envseal_ddb(
        f.path(),
        &[
            "encrypt",
            "-i",
            &plain,
            "-o",
            &out,
            "--branch-key-id",
            "x",
            "--key-store-table",
            "t",
            "--key-store-kms-key",
            &kms_key,
            "--dynamodb-endpoint",
            &hang.url,
            "--kms-attempt-timeout-ms",
            "300",
            "--kms-deadline-ms",
            "800",
            "--kms-max-attempts",
            "2",
        ],
    ));
    let elapsed = started.elapsed();
    assert!(err.contains("DynamoDB GetItem branch key x: "), "{err}");
    assert!(
        elapsed < std::time::Duration::from_millis(3000),
        "{elapsed:?}: {err}"
    );
    assert!(hang.requests() <= 2, "{}", hang.requests());
    assert!(!Path::new(&out).exists());
}

/// `--kms-rsa-key` and `--kms-ecdh-*` against kms_server.py (real RSA-OAEP
/// and ECDH), mixed with raw ECDH keys.
#[tokio::test]
async fn kms_rsa_and_kms_ecdh_keys_on_the_command_line() {
    use envseal::kms::aws_sdk_kms::types::{KeySpec, KeyUsageType};
    let f = Files::new();
    let admin = common::moto::admin("us-east-1");
    let new_key = |spec: &str, usage: KeyUsageType| {
        let admin = admin.clone();
        let spec = KeySpec::from(spec);
        async move {
            let out = admin
                .create_key()
                .key_spec(spec)
                .key_usage(usage)
                .send()
                .await
                .unwrap();
            let arn = out.key_metadata().unwrap().arn().unwrap().to_owned();
            let public = admin.get_public_key().key_id(&arn).send().await.unwrap();
            (arn, public.public_key().unwrap().as_ref().to_vec())
        }
    };
    let url = moto().url.clone();
    let env = [
        ("AWS_ENDPOINT_URL_KMS", url.as_str()),
        ("AWS_REGION", "us-east-1"),
    ];
    let run = |args: &[&str]| envseal_env(f.path(), args, &env);
    let (plain, msg, out) = (f.p("plain"), f.p("msg"), f.p("out"));
    let none = f.p("none");

    // KMS RSA: the public key (PEM) encrypts, KMS decrypts.
    let (rsa, der) = new_key("RSA_2048", KeyUsageType::EncryptDecrypt).await;
    let pem_path = f.path().join("rsa.pem");
    let b64 = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(der)
    };
    let body: Vec<String> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    std::fs::write(
        &pem_path,
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            body.join("\n")
        ),
    )
    .unwrap();
    let pem = pem_path.display().to_string();
    let rsa_flags = ["--kms-rsa-key", rsa.as_str(), "--kms-rsa-padding", "oaep-sha256"];
    let mut enc = vec![
        "encrypt",
        "-i",
        &plain,
        "-o",
        &msg,
        "--suite",
        "0x0478",
        "--kms-rsa-public-key",
        &pem,
    ];
    enc.extend(rsa_flags);
    ok(&run(&enc));
    let mut dec = vec!["decrypt", "-i", &msg, "-o", &out];
    dec.extend(rsa_flags);
    ok(&run(&dec));
    assert_eq!(std::fs::read(&out).unwrap(), b"kms via the command line");
    // Without the public key it cannot encrypt; a signing suite is refused.
    let mut no_pub = vec!["encrypt", "-i", &plain, "-o", &none, "--suite", "0x0478"];
    no_pub.extend(rsa_flags);
    let o = run(&no_pub);
    fails(&o);
    assert_eq!(o.status.code(), Some(2));
    let mut signed = vec!["encrypt", "-i", &plain, "-o", &none, "--kms-rsa-public-key", &pem];
    signed.extend(rsa_flags);
    let err = fails(&run(&signed));
    assert!(err.contains("signing suites"), "{err}");
    assert!(!f.path().join("none").exists());

    // KMS ECDH static K -> B, read by B's raw discovery key; raw ephemeral
    // -> K's public key, read by KMS discovery.
    let (k, k_der) = new_key("ECC_NIST_P256", KeyUsageType::KeyAgreement).await;
    let k_pub = f.path().join("k.der");
    std::fs::write(&k_pub, k_der).unwrap();
    let data = |n: &str| format!("{}/tests/data/{n}", env!("CARGO_MANIFEST_DIR"));
    let stat = format!("p256:{}:{k}", data("ecdh-p256-b-public.der"));
    ok(&run(&[
        "encrypt",
        "-i",
        &plain,
        "-o",
        &f.p("ecdh.msg"),
        "--kms-ecdh-static",
        &stat,
    ]));
    let disc = format!("p256:{}", data("ecdh-p256-b-private.pem"));
    ok(&run(&[
        "decrypt",
        "-i",
        &f.p("ecdh.msg"),
        "-o",
        &f.p("ecdh.out"),
        "--raw-ecdh-discovery",
        &disc,
    ]));
    ok(&run(&[
        "decrypt",
        "-i",
        &f.p("ecdh.msg"),
        "-o",
        &f.p("ecdh2.out"),
        "--kms-ecdh-static",
        &stat,
    ]));
    let eph = format!("p256:{}", k_pub.display());
    ok(&run(&[
        "encrypt",
        "-i",
        &plain,
        "-o",
        &f.p("eph.msg"),
        "--raw-ecdh-ephemeral",
        &eph,
    ]));
    let kdisc = format!("p256:{k}");
    ok(&run(&[
        "decrypt",
        "-i",
        &f.p("eph.msg"),
        "-o",
        &f.p("eph.out"),
        "--kms-ecdh-discovery",
        &kdisc,
    ]));
    for o in ["ecdh.out", "ecdh2.out", "eph.out"] {
        assert_eq!(
            std::fs::read(f.path().join(o)).unwrap(),
            b"kms via the command line"
        );
    }
    // Discovery does not encrypt; an RSA key is not a key agreement key.
    let o = run(&[
        "encrypt",
        "-i",
        &plain,
        "-o",
        &none,
        "--kms-ecdh-discovery",
        &kdisc,
    ]);
    fails(&o);
    assert_eq!(o.status.code(), Some(2));
    let err = fails(&run(&[
        "decrypt",
        "-i",
        &f.p("eph.msg"),
        "-o",
        &none,
        "--kms-ecdh-discovery",
        &format!("p256:{rsa}"),
    ]));
    assert!(err.contains("GetPublicKey"), "{err}");
}

/// `--cache-max-*`: one run over 1,000 files with a KMS key makes one
/// GenerateDataKey call (and its decrypt one Decrypt); without the cache,
/// one a file. The metadata lines count each message's calls and hits.
#[tokio::test]
async fn a_directory_with_the_data_key_cache_makes_few_kms_calls() {
    let key = create_key("us-east-1").await;
    let f = Files::new();
    let endpoint = moto().url.clone();
    let input = f.path().join("in");
    for i in 0..1000 {
        let sub = input.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("f{i}")), vec![i as u8; 4096]).unwrap();
    }
    let kms = [
        "--region",
        "us-east-1",
        "--kms-endpoint",
        &endpoint,
        "--kms-key",
        &key,
        "--kms-stats",
    ];
    let (inp, out, dec, meta) = (f.p("in"), f.p("out"), f.p("dec"), f.p("meta.jsonl"));
    let cache = ["--cache-max-age-s", "300", "--cache-max-messages", "10000"];
    let mut args = vec![
        "encrypt",
        "-r",
        "-i",
        &inp,
        "-o",
        &out,
        "--metadata-output",
        &meta,
    ];
    args.extend(kms);
    args.extend(cache);
    let stderr = ok(&envseal(f.path(), &args));
    assert!(stderr.contains("envseal: encrypted 1000 files"), "{stderr}");
    assert!(
        stderr.contains("GenerateDataKey=1 Encrypt=0 Decrypt=0"),
        "{stderr}"
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&meta)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1000);
    // Files run --jobs at a time (the number of cores): whichever took its
    // keyring step first made the one call; every other line, a hit.
    let (missed, hit): (Vec<_>, Vec<_>) = lines.iter().partition(|l| l["cache"]["misses"] == 1);
    assert_eq!(missed.len(), 1);
    assert_eq!(missed[0]["kms"]["generate_data_key"], 1);
    assert!(hit
        .iter()
        .all(|l| l["kms"]["calls"] == 0 && l["cache"]["hits"] == 1));
    let edk = &lines[0]["header"]["encrypted_data_keys"];
    assert!(
        lines.iter().all(|l| &l["header"]["encrypted_data_keys"] == edk),
        "one data key"
    );

    let mut args = vec!["decrypt", "-r", "-i", &out, "-o", &dec];
    args.extend(kms);
    args.extend(cache);
    let stderr = ok(&envseal(f.path(), &args));
    assert!(stderr.contains("envseal: decrypted 1000 files"), "{stderr}");
    assert!(
        stderr.contains("GenerateDataKey=0 Encrypt=0 Decrypt=1"),
        "{stderr}"
    );
    for i in [0usize, 517, 999] {
        let file = std::path::Path::new(&dec).join(format!("d{}/f{i}.encrypted.decrypted", i % 10));
        assert_eq!(std::fs::read(file).unwrap(), vec![i as u8; 4096]);
    }

    // Without the cache: a data key (a KMS call) per file.
    let few = f.p("in/d3");
    let out2 = f.p("out2");
    let mut args = vec!["encrypt", "-r", "-i", &few, "-o", &out2];
    args.extend(kms);
    let stderr = ok(&envseal(f.path(), &args));
    assert!(stderr.contains("GenerateDataKey=100 "), "{stderr}");
    // A message limit of 10: a new data key every 10 files.
    let out3 = f.p("out3");
    let mut args = vec![
        "encrypt",
        "-r",
        "-i",
        &few,
        "-o",
        &out3,
        "--cache-max-age-s",
        "60",
        "--cache-max-messages",
        "10",
    ];
    args.extend(kms);
    let stderr = ok(&envseal(f.path(), &args));
    assert!(stderr.contains("GenerateDataKey=10 "), "{stderr}");
}

/// `envseal doctor` says what the calls run on: the crypto module and its
/// FIPS mode, the TLS provider, and each service's endpoint with the FIPS
/// endpoint a configured URL stands in for when AWS_USE_FIPS_ENDPOINT asks
/// for FIPS. The default build has no FIPS module: `--fips` is refused.
#[tokio::test]
async fn doctor_reports_the_crypto_module_tls_and_endpoints() {
    let key = create_key("us-east-1").await;
    let f = Files::new();
    let url = moto().url.clone();
    for fips in ["true", "false"] {
        let out = envseal_env(
            f.path(),
            &["doctor", "--kms-key", &key],
            &[
                ("AWS_REGION", "us-east-1"),
                ("AWS_ENDPOINT_URL", &url),
                ("AWS_USE_FIPS_ENDPOINT", fips),
            ],
        );
        ok(&out);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = |prefix: &str| {
            stdout
                .lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix:?} line:\n{stdout}"))
                .to_owned()
        };
        let module = envseal::Backend::default().module();
        assert_eq!(line("crypto: "), format!("crypto: {module}"));
        assert_eq!(module.fips_mode, cfg!(feature = "fips"));
        assert!(line("tls: ").starts_with("tls: rustls on aws-lc-rs"), "{stdout}");
        let kms = line("endpoint KMS: ");
        if fips == "true" {
            assert_eq!(line("fips endpoints: "), "fips endpoints: on");
            assert_eq!(
                kms,
                format!(
                    "endpoint KMS: {url} (configured; the FIPS endpoint would be https://kms-fips.us-east-1.amazonaws.com)"
                )
            );
        } else {
            assert_eq!(line("fips endpoints: "), "fips endpoints: off");
            assert_eq!(kms, format!("endpoint KMS: {url} (configured)"));
        }
        assert!(line("endpoint STS: ").starts_with(&format!("endpoint STS: {url}")));
        assert!(stdout.contains("doctor: ok"), "{stdout}");
    }

    #[cfg(not(feature = "fips"))]
    for args in [
        &["--fips", "doctor", "--kms-key", key.as_str()][..],
        &["doctor", "--fips", "--kms-key", key.as_str()][..],
    ] {
        let out = envseal_env(
            f.path(),
            args,
            &[("AWS_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", &url)],
        );
        let err = fails(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("built without FIPS 140-3 support (feature fips)"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
}
