//! The CLI's KMS options against moto (and a throttling fault server):
//! `--kms-key` (repeatable, mixed with raw keys), `--kms-discovery` with a
//! filter, `--kms-endpoint`, `--region`, the bounds flags, `--grant-token`,
//! `--kms-stats`, and one-line typed KMS errors.
#![cfg(feature = "kms")]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::fault::{Action, FaultServer};
use common::moto::{create_key, moto, ACCOUNT};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_envseal");

/// Runs envseal with static test credentials and no other AWS configuration.
fn envseal(dir: &Path, args: &[&str]) -> Output {
    envseal_env(dir, args, &[])
}

fn envseal_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-aws-credentials"))
        .envs(env.iter().copied())
        .output()
        .expect("run envseal")
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
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
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
