//! Credentials that stay valid, against stand-ins on loopback: a container
//! credentials endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI`) handing out
//! short-lived session credentials, a KMS stand-in that rejects expired
//! tokens with `ExpiredTokenException`, and an IMDSv2 stand-in whose first
//! connects time out.
//!
//! The credential chain reads the process environment, so each scenario runs
//! in a child process of this test binary with an environment of its own:
//! a parent test starts the stand-ins and runs `child_*` (ignored when run
//! directly) with `--exact --ignored`, then checks the child's exit status
//! and the `RESULT key=value` lines it printed.
#![cfg(feature = "kms")]

use crate::common;

use std::collections::HashMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::fake_kms::FakeKms;
use common::stand_in::{CredentialEndpoint, Imds, Mode};
use envseal::kms::{AwsBounds, CredentialOptions, KmsClient, RetryMode};
use envseal::{Config, EncryptionContext, Error, KmsKeyring};

const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555";
const STATIC_KEY: &str = "AKIASTATICENVKEY0001";

/// Runs `child` in a child process with exactly `vars` (plus PATH and a
/// HOME without AWS files) as its environment.
fn run_child(child: &str, vars: &[(&str, String)]) -> (Output, HashMap<String, String>) {
    let home = std::env::temp_dir().join(format!("envseal-credentials-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    // This binary's test names start with the module's path in it
    // (`credentials::child_…`): `--exact` needs the full name.
    let child: &str = &format!("{}::{child}", module_path!().split_once("::").unwrap().1);
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([child, "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("AWS_CONFIG_FILE", home.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("no-credentials"))
        .env("AWS_REGION", "us-east-1")
        .env("ENVSEAL_CHILD", "1");
    if let Some(filter) = std::env::var_os("ENVSEAL_LOG") {
        cmd.env("ENVSEAL_LOG", filter);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results = stdout
        .lines()
        // libtest prints "test name ... " before the first line of output.
        .filter_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    (out, results)
}

fn child_ok(out: &Output) {
    assert!(
        out.status.success(),
        "child failed: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn num(results: &HashMap<String, String>, key: &str) -> u64 {
    results
        .get(key)
        .unwrap_or_else(|| panic!("no RESULT {key} in {results:?}"))
        .parse()
        .unwrap()
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set: run through the parent test"))
}

fn in_child() -> bool {
    std::env::var_os("ENVSEAL_CHILD").is_some()
}

fn context() -> EncryptionContext {
    [("purpose", "credentials-test")].into_iter().collect()
}

fn bounds(deadline: Duration) -> AwsBounds {
    AwsBounds::builder()
        .connect_timeout(Duration::from_millis(300))
        .read_timeout(Duration::from_secs(1))
        .attempt_timeout(Duration::from_secs(2))
        .deadline(deadline)
        .retry_mode(RetryMode::Standard)
        .initial_backoff(Duration::from_millis(10))
        .max_backoff(Duration::from_millis(100))
        .build()
        .unwrap()
}

/// A client from the environment (the default chain), KMS at `ENVSEAL_KMS_URL`.
async fn client_from_env(deadline: Duration, options: CredentialOptions) -> KmsClient {
    KmsClient::builder()
        .endpoint_url(env("ENVSEAL_KMS_URL"))
        .bounds(bounds(deadline))
        .credentials(options)
        .build()
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------
// Refresh ahead of expiry, and one retry after ExpiredTokenException.

#[test]
fn long_run_with_expiring_credentials_has_no_failures() {
    // Credentials live 3 s; every 4th token KMS stops accepting after 1 s
    // (revoked early), so some calls do meet ExpiredTokenException.
    let endpoint = CredentialEndpoint::start("/creds", Duration::from_secs(3), Some(4));
    let kms = FakeKms::start_checking(endpoint.kms_check(STATIC_KEY));
    let seconds = std::env::var("ENVSEAL_CREDENTIALS_RUN_SECS").unwrap_or_else(|_| "30".into());
    let (out, r) = run_child(
        "child_encrypt_decrypt_loop",
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.url.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("ENVSEAL_KMS_URL", kms.url.clone()),
            ("ENVSEAL_RUN_SECS", seconds.clone()),
        ],
    );
    child_ok(&out);
    eprintln!("run results: {r:?}; endpoint requests {}", endpoint.requests());
    let secs: u64 = seconds.parse().unwrap();
    let (ops, failures) = (num(&r, "ops"), num(&r, "failures"));
    assert_eq!(failures, 0, "{r:?}");
    assert!(ops >= secs * 10, "only {ops} encrypt+decrypt in {secs} s: {r:?}");
    // A 3 s lifetime, refreshed at half of it: one load about every 1.5 s
    // (plus reloads after early revocations).
    let refreshes = num(&r, "credential_refreshes");
    assert!(refreshes >= secs / 2, "{refreshes} refreshes in {secs} s: {r:?}");
    assert!(endpoint.requests() as u64 >= refreshes);
    assert!(num(&r, "expired_token_retries") >= 1, "{r:?}");
    assert_eq!(
        num(&r, "expired_token_retries"),
        num(&r, "expired_token_retry_successes")
    );
    assert_eq!(r.get("provider").map(String::as_str), Some("EcsContainer"));
    // Every KMS request was signed with container credentials.
    let seen = kms.calls();
    assert!(
        seen.len() as u64 >= ops * 2,
        "{} KMS requests for {ops} round trips",
        seen.len()
    );
}

#[tokio::test]
#[ignore = "a child process of long_run_with_expiring_credentials_has_no_failures"]
async fn child_encrypt_decrypt_loop() {
    assert!(in_child());
    let secs: u64 = env("ENVSEAL_RUN_SECS").parse().unwrap();
    let client = client_from_env(Duration::from_secs(5), CredentialOptions::default()).await;
    let keyring = KmsKeyring::builder(client.clone(), [KEY]).build().unwrap();
    let config = Config::default();
    let (mut ops, mut failures) = (0u64, 0u64);
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let payload = format!("record {ops}");
        let result = async {
            let message = crate::common::async_client(&config, &keyring)
                .encrypt(&context(), payload.as_bytes())
                .await?;
            crate::common::async_client(&config, &keyring)
                .decrypt(&context(), &message)
                .await
        }
        .await;
        match result {
            Ok(d) if d.plaintext.as_slice() == payload.as_bytes() => ops += 1,
            Ok(_) => panic!("wrong plaintext"),
            Err(e) => {
                failures += 1;
                eprintln!("failure: {e}");
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = client.stats();
    println!("RESULT ops={ops}");
    println!("RESULT failures={failures}");
    println!("RESULT credential_refreshes={}", s.credential_refreshes);
    println!(
        "RESULT credential_refresh_failures={}",
        s.credential_refresh_failures
    );
    println!("RESULT expired_token_retries={}", s.expired_token_retries);
    println!(
        "RESULT expired_token_retry_successes={}",
        s.expired_token_retry_successes
    );
    println!(
        "RESULT provider={}",
        client.credentials_provider().unwrap_or("none")
    );
    eprintln!("{s:?}");
}

// ---------------------------------------------------------------------------
// A container endpoint that fails or hangs: bounded by the deadline, named.

#[test]
fn failing_container_endpoint_is_bounded_and_named() {
    for mode in [Mode::Error500, Mode::Hang] {
        let endpoint = CredentialEndpoint::start("/creds", Duration::from_secs(3600), None);
        *endpoint.mode.lock().unwrap() = mode;
        let kms = FakeKms::start_checking(endpoint.kms_check(STATIC_KEY));
        let (out, r) = run_child(
            "child_encrypt_once",
            &[
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.url.clone()),
                ("AWS_EC2_METADATA_DISABLED", "true".into()),
                ("ENVSEAL_KMS_URL", kms.url.clone()),
                ("ENVSEAL_DEADLINE_MS", "1500".into()),
            ],
        );
        child_ok(&out);
        let error = r
            .get("error")
            .unwrap_or_else(|| panic!("{mode:?}: expected an error: {r:?}"));
        assert_eq!(
            r.get("kind").map(String::as_str),
            Some("Credentials"),
            "{mode:?}: {error}"
        );
        assert!(
            error.contains("credentials from EcsContainer"),
            "{mode:?}: {error}"
        );
        let elapsed = num(&r, "elapsed_ms");
        assert!(elapsed <= 1500 + 400, "{mode:?}: took {elapsed} ms: {error}");
        assert!(endpoint.requests() >= 1);
        assert!(
            kms.calls().is_empty(),
            "{mode:?}: KMS was called without credentials"
        );
    }
}

#[tokio::test]
#[ignore = "a child process of other tests"]
async fn child_encrypt_once() {
    assert!(in_child());
    let deadline = Duration::from_millis(env("ENVSEAL_DEADLINE_MS").parse().unwrap());
    // The SDK's container provider has its own 5 s read timeout; the load
    // timeout and the deadline bound it here.
    let client = client_from_env(deadline, CredentialOptions::default()).await;
    let keyring = KmsKeyring::builder(client.clone(), [KEY]).build().unwrap();
    let start = Instant::now();
    let result = crate::common::async_client(&Config::default(), &keyring)
        .encrypt(&context(), b"one record")
        .await;
    println!("RESULT elapsed_ms={}", start.elapsed().as_millis());
    println!(
        "RESULT provider={}",
        client.credentials_provider().unwrap_or("none")
    );
    match result {
        Ok(message) => {
            let back = crate::common::async_client(&Config::default(), &keyring)
                .decrypt(&context(), &message)
                .await
                .unwrap();
            assert_eq!(back.plaintext.as_slice(), b"one record");
            println!("RESULT ok=1");
        }
        Err(Error::Aws(e)) => {
            println!("RESULT kind={:?}", e.kind);
            println!("RESULT error={e}");
        }
        Err(e) => panic!("not a KMS error: {e}"),
    }
}

// ---------------------------------------------------------------------------
// Shadowing: static keys in the environment hide the container role.

#[test]
fn environment_keys_shadowing_the_container_role_are_reported() {
    let endpoint = CredentialEndpoint::start("/creds", Duration::from_secs(3600), None);
    let kms = FakeKms::start_checking(endpoint.kms_check(STATIC_KEY));
    let (out, r) = run_child(
        "child_shadowing",
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.url.clone()),
            ("AWS_ACCESS_KEY_ID", STATIC_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", "static-secret".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("ENVSEAL_KMS_URL", kms.url.clone()),
        ],
    );
    child_ok(&out);
    // The static keys won: the endpoint was never asked.
    assert_eq!(r.get("provider").map(String::as_str), Some("Environment"));
    assert_eq!(endpoint.requests(), 0);
    assert_eq!(r.get("shadowed").map(String::as_str), Some("EcsContainer"));
    // Warned once through tracing, though two clients were built.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings = stderr.matches("shadows EcsContainer").count();
    assert_eq!(warnings, 1, "stderr:\n{stderr}");
    assert!(stderr.contains("AWS_CONTAINER_CREDENTIALS_FULL_URI"), "{stderr}");

    // With only the container endpoint set, its credentials are used.
    let (out, r) = run_child(
        "child_shadowing",
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.url.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("ENVSEAL_KMS_URL", kms.url.clone()),
        ],
    );
    child_ok(&out);
    assert_eq!(r.get("provider").map(String::as_str), Some("EcsContainer"));
    assert_eq!(r.get("shadowed").map(String::as_str), Some(""));
    assert_eq!(endpoint.requests(), 2, "one load per client, then cached");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("shadows"));
}

#[tokio::test]
#[ignore = "a child process of environment_keys_shadowing_the_container_role_are_reported"]
async fn child_shadowing() {
    assert!(in_child());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter("envseal=warn")
        .init();
    let sources = envseal::kms::CredentialSources::from_env();
    let shadowed: Vec<&str> = sources.shadowed().into_iter().map(|(p, _)| p).collect();
    println!("RESULT shadowed={}", shadowed.join(","));
    for _ in 0..2 {
        let client = client_from_env(Duration::from_secs(3), CredentialOptions::default()).await;
        let keyring = KmsKeyring::builder(client.clone(), [KEY]).build().unwrap();
        let message = crate::common::async_client(&Config::default(), &keyring)
            .encrypt(&context(), b"x")
            .await
            .unwrap();
        crate::common::async_client(&Config::default(), &keyring)
            .decrypt(&context(), &message)
            .await
            .unwrap();
        println!(
            "RESULT provider={}",
            client.credentials_provider().unwrap_or("none")
        );
    }
}

// ---------------------------------------------------------------------------
// IMDS: connect timeouts are retried within a deadline.

#[test]
fn imds_connect_timeouts_are_retried() {
    // Connects hang for 1 s; the IMDS connect timeout is 300 ms.
    let imds = Imds::start(Duration::from_millis(1000));
    let (out, r) = run_child(
        "child_resolve",
        &[
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url.clone()),
            ("ENVSEAL_KMS_URL", "http://127.0.0.1:9".into()),
            ("ENVSEAL_IMDS_ATTEMPTS", "8".into()),
        ],
    );
    child_ok(&out);
    assert_eq!(
        r.get("provider").map(String::as_str),
        Some("Ec2InstanceMetadata"),
        "{r:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        r.get("access_key_id").map(String::as_str),
        Some("ASIAINSTANCEROLE0001")
    );
    // The blackout started before the child did, so the child waits a
    // little less than 1 s; one 300 ms attempt would have failed sooner.
    let elapsed = num(&r, "elapsed_ms");
    assert!((500..=6000).contains(&elapsed), "{elapsed} ms");
    assert!(imds.requests() >= 3, "token, role, credentials");

    // One attempt (the SDK's default behaviour on a connect timeout): fails.
    let imds = Imds::start(Duration::from_millis(1000));
    let (out, r) = run_child(
        "child_resolve",
        &[
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url.clone()),
            ("ENVSEAL_KMS_URL", "http://127.0.0.1:9".into()),
            ("ENVSEAL_IMDS_ATTEMPTS", "1".into()),
        ],
    );
    child_ok(&out);
    assert!(r.contains_key("error"), "{r:?}");

    // AWS_EC2_METADATA_DISABLED: IMDS is never asked.
    let imds = Imds::start(Duration::ZERO);
    let (out, r) = run_child(
        "child_resolve",
        &[
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("ENVSEAL_KMS_URL", "http://127.0.0.1:9".into()),
            ("ENVSEAL_IMDS_ATTEMPTS", "4".into()),
        ],
    );
    child_ok(&out);
    assert!(r.contains_key("error"), "{r:?}");
    assert_eq!(imds.requests(), 0);
}

#[tokio::test]
#[ignore = "a child process of imds_connect_timeouts_are_retried"]
async fn child_resolve() {
    assert!(in_child());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(std::env::var("ENVSEAL_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    let attempts: u32 = env("ENVSEAL_IMDS_ATTEMPTS").parse().unwrap();
    let options = CredentialOptions::builder()
        .imds_max_attempts(attempts)
        .imds_connect_timeout(Duration::from_millis(300))
        .imds_read_timeout(Duration::from_millis(500))
        .imds_deadline(Duration::from_secs(6))
        .load_timeout(Duration::from_secs(7))
        .build()
        .unwrap();
    let client = client_from_env(Duration::from_secs(8), options).await;
    let start = Instant::now();
    match client.resolve_credentials().await {
        Ok(info) => {
            println!("RESULT provider={}", info.provider);
            println!("RESULT access_key_id={}", info.access_key_id);
        }
        Err(e) => println!("RESULT error={e}"),
    }
    println!("RESULT elapsed_ms={}", start.elapsed().as_millis());
}

// ---------------------------------------------------------------------------
// `envseal doctor`: bounded validation against an STS stand-in.

/// Runs `envseal doctor` with `vars` as the environment (plus a HOME
/// without AWS files, IMDS off, region us-east-1); returns the output and
/// the wall time.
fn doctor(args: &[&str], vars: &[(&str, String)]) -> (Output, Duration) {
    let home = std::env::temp_dir().join(format!("envseal-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_envseal"));
    cmd.arg("doctor")
        .args(args)
        .env_clear()
        .env("HOME", &home)
        .env("AWS_CONFIG_FILE", home.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("no-credentials"))
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let out = cmd.output().unwrap();
    (out, start.elapsed())
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn doctor_retries_only_propagation_errors_within_its_deadline() {
    use common::stand_in::{Sts, StsAnswer, ACCOUNT, CALLER_ARN};
    let endpoint = CredentialEndpoint::start("/creds", Duration::from_secs(3600), None);
    let kms = FakeKms::start_checking(endpoint.kms_check(STATIC_KEY));
    let container = ("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.url.clone());

    // InvalidClientTokenId twice (a new key not yet visible), then accepted.
    let sts = Sts::start(vec![
        StsAnswer::InvalidClientTokenId,
        StsAnswer::InvalidClientTokenId,
        StsAnswer::Ok,
    ]);
    let args = [
        "--kms-key",
        KEY,
        "--kms-endpoint",
        &kms.url,
        "--sts-endpoint",
        &sts.url,
    ];
    let (out, _) = doctor(&args, std::slice::from_ref(&container));
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(sts.requests(), 3);
    assert!(
        stdout.contains("credentials: ok: from EcsContainer, access key ASIA…0001, expires "),
        "{stdout}"
    );
    let identity = stdout.lines().find(|l| l.starts_with("identity: ")).unwrap();
    assert!(
        identity.contains(&format!("account {ACCOUNT}, arn {CALLER_ARN}")),
        "{identity}"
    );
    assert!(identity.contains("[3 attempts, "), "{identity}");
    let key = stdout.lines().find(|l| l.starts_with("key ")).unwrap();
    assert!(
        key.starts_with(&format!(
            "key {KEY}: ok: Enabled, ENCRYPT_DECRYPT, SYMMETRIC_DEFAULT [1 attempt"
        )),
        "{key}"
    );
    assert!(stdout.contains("environment: ok: container (AWS_CONTAINER_CREDENTIALS_FULL_URI), IMDS disabled"));
    assert!(stdout.trim_end().ends_with("doctor: ok"), "{stdout}");
    assert!(stderr.is_empty(), "{stderr}");

    // Never accepted: fails at the default 3 s deadline after several
    // attempts (backoff 100, 200, 400, 800, 1600 ms), exit 1, one line.
    let sts = Sts::start(vec![StsAnswer::InvalidClientTokenId]);
    let args = ["--sts-endpoint", &sts.url];
    let (out, elapsed) = doctor(&args, std::slice::from_ref(&container));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(elapsed >= Duration::from_millis(3000), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(3000 + 1000), "{elapsed:?}");
    assert!((5..=6).contains(&sts.requests()), "{} requests", sts.requests());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "envseal: doctor: identity: STS GetCallerIdentity failed (HTTP 403, InvalidClientTokenId)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("still not accepted at the deadline"), "{stderr}");
    assert!(
        stderr.contains(&format!("(after {} attempts in ", sts.requests())),
        "{stderr}"
    );

    // AccessDenied: no retry.
    let sts = Sts::start(vec![StsAnswer::AccessDenied]);
    let args = ["--sts-endpoint", &sts.url];
    let (out, elapsed) = doctor(&args, std::slice::from_ref(&container));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(sts.requests(), 1);
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert!(
        stderr.contains("(HTTP 403, AccessDenied)") && stderr.contains("(after 1 attempt in "),
        "{stderr}"
    );
}

#[test]
fn doctor_reports_shadowing_and_credential_failures() {
    use common::stand_in::{Sts, StsAnswer};
    let endpoint = CredentialEndpoint::start("/creds", Duration::from_secs(3600), None);
    let sts = Sts::start(vec![StsAnswer::Ok]);
    let vars = [
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.url.clone()),
        ("AWS_ACCESS_KEY_ID", STATIC_KEY.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "static-secret".to_owned()),
    ];
    let (out, _) = doctor(&["--sts-endpoint", &sts.url], &vars);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("WARNING: AWS_ACCESS_KEY_ID in the environment shadows EcsContainer (AWS_CONTAINER_CREDENTIALS_FULL_URI)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("credentials: ok: from Environment, access key AKIA…0001, no expiry"),
        "{stdout}"
    );
    assert_eq!(endpoint.requests(), 0);
    assert!(!stdout.contains("static-secret") && !stderr.contains("static-secret"));

    // Keys in the environment on a host with an instance role (IMDS).
    let imds = Imds::start(Duration::ZERO);
    let (out, _) = doctor(
        &["--sts-endpoint", &sts.url],
        &[
            ("AWS_ACCESS_KEY_ID", STATIC_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "static-secret".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "false".to_owned()),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url.clone()),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("WARNING: AWS_ACCESS_KEY_ID in the environment shadows Ec2InstanceMetadata (instance role envseal-test-role)"),
        "{stdout}"
    );
    assert!(stdout.contains("credentials: ok: from Environment"), "{stdout}");

    // The container endpoint failing: the credentials step fails, named,
    // within the deadline.
    *endpoint.mode.lock().unwrap() = Mode::Hang;
    let vars = [("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.url.clone())];
    let (out, elapsed) = doctor(&["--sts-endpoint", &sts.url, "--deadline-ms", "1000"], &vars);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
    assert!(stderr.starts_with("envseal: doctor: credentials: credentials from EcsContainer not resolved within the 1000 ms deadline"), "{stderr}");
    assert!(!stdout.contains("identity:"), "{stdout}");

    // Failing fast (HTTP 500): doctor stops at the credentials step, with
    // one failed load and no identity step (which would load them again).
    *endpoint.mode.lock().unwrap() = Mode::Error500;
    let (out, _) = doctor(&["--sts-endpoint", &sts.url, "--deadline-ms", "3000"], &vars);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.starts_with("envseal: doctor: credentials: "), "{stderr}");
    assert!(!stdout.contains("identity:"), "{stdout}");
    assert!(stdout.contains("credential loads=0 load failures=1 "), "{stdout}");
}
