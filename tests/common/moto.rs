//! moto's KMS server (`moto_server`, PyPI moto 5.2.5) on a free loopback
//! port, one per test binary, plus helpers to make keys and clients.
//!
//! The server runs under a small shell that kills it when this process's
//! end of its stdin pipe closes, i.e. when the test binary exits.
//!
//! moto does not validate DynamoDB requests (an expression real DynamoDB
//! refuses passes), so the tests reach moto only through the DynamoDB
//! checker, tests/ddb-check/proxy.js: a loopback proxy that validates every
//! DynamoDB request with DynamoDB's rules (the npm package dynalite's
//! validators), refuses an invalid one as DynamoDB does and forwards the
//! rest, KMS too. [`Moto::url`] is the proxy's; without the checker the
//! tests that need moto fail, they never run unchecked.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use envseal::kms::aws_config::{BehaviorVersion, Region, SdkConfig};
use envseal::kms::aws_sdk_kms;
use envseal::kms::{AwsBounds, KmsClient};

pub const ACCOUNT: &str = "123456789012";

pub struct Moto {
    /// The DynamoDB checker's URL, in front of moto: what every client uses.
    pub url: String,
    /// moto's own port (its log file is named after it).
    pub port: u16,
    _child: Mutex<(Child, ChildStdin)>,
    _check: Mutex<(Child, ChildStdin)>,
}

/// The server: `ENVSEAL_MOTO_SERVER`, else tests/interop/kms_server.py
/// (moto's server with real RSA-OAEP decryption and ECDH for asymmetric
/// KMS keys; it runs on the test venv's Python, which must have moto).
fn moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("ENVSEAL_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    assert!(
        venv.exists() || std::env::var_os("ENVSEAL_PYTHON").is_some(),
        "moto is needed for the KMS tests: run scripts/test (it installs moto) \
         or set ENVSEAL_MOTO_SERVER"
    );
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/kms_server.py")
}

/// The DynamoDB checker: `ENVSEAL_DDB_CHECK` (the path of proxy.js, set
/// by scripts/test), else tests/ddb-check/proxy.js once `npm ci` has
/// installed its dependencies there. Panics, with what to do, when there
/// is none.
fn ddb_check() -> PathBuf {
    if let Some(p) = std::env::var_os("ENVSEAL_DDB_CHECK") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "ENVSEAL_DDB_CHECK={} is not a file", p.display());
        return p;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ddb-check");
    assert!(
        dir.join("node_modules/dynalite/validations/index.js").is_file(),
        "the tests reach moto (KMS and DynamoDB) only through the DynamoDB checker, \
         tests/ddb-check/proxy.js (moto does not validate DynamoDB requests): run scripts/test, \
         which installs it, or `npm ci --prefix tests/ddb-check`, or set ENVSEAL_DDB_CHECK"
    );
    dir.join("proxy.js")
}

/// Starts the checker (Node.js, `ENVSEAL_NODE` or `node`) in front of
/// `upstream`; it exits when its stdin closes. Returns it and its port.
fn start_check(upstream: &str) -> (Child, ChildStdin, u16) {
    use std::io::BufRead;
    let node = std::env::var_os("ENVSEAL_NODE").unwrap_or_else(|| "node".into());
    let script = ddb_check();
    let log_path = std::env::temp_dir().join(format!("envseal-ddb-check-{}.log", std::process::id()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(&node)
        .arg(&script)
        .arg("--upstream")
        .arg(upstream)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start the DynamoDB checker ({} {}): {e}; Node.js is needed (scripts/test checks it)",
                node.to_string_lossy(),
                script.display()
            )
        });
    let stdin = child.stdin.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!(
                "the DynamoDB checker did not start ({}): {line:?}\n{log}",
                script.display()
            )
        });
    (child, stdin, port)
}

/// What the DynamoDB checker has checked for one table: per operation,
/// requests `(checked, refused)`. Empty for a table it saw no request for.
pub fn ddb_checked(table: &str) -> std::collections::BTreeMap<String, (u64, u64)> {
    use std::io::Write;
    let addr = moto().url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "GET /__ddb-check/stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let stats: serde_json::Value = serde_json::from_str(body).unwrap();
    stats["tables"][table]
        .as_object()
        .map(|ops| {
            ops.iter()
                .map(|(op, c)| {
                    let n = |k: &str| c[k].as_u64().unwrap();
                    (op.clone(), (n("checked"), n("refused")))
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The process-wide moto server, started on first use.
pub fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        ddb_check(); // before moto: fail early, with what to do
        let port = free_port();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" -H 127.0.0.1 -p "$1" >"$2" 2>&1 & pid=$!; read _ ; kill $pid; wait $pid"#)
            .arg(moto_server())
            .arg(port.to_string())
            .arg(std::env::temp_dir().join(format!("envseal-moto-{port}.log")))
            .stdin(Stdio::piped())
            .spawn()
            .expect("start moto_server");
        let stdin = child.stdin.take().unwrap();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let start = Instant::now();
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("moto_server exited early: {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "moto_server did not listen on {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let (check, check_stdin, check_port) = start_check(&format!("http://127.0.0.1:{port}"));
        Moto {
            url: format!("http://127.0.0.1:{check_port}"),
            port,
            _child: Mutex::new((child, stdin)),
            _check: Mutex::new((check, check_stdin)),
        }
    })
}

/// Static test credentials; moto does not check signatures.
pub fn sdk_config(region: &str, endpoint: &str) -> SdkConfig {
    let creds = aws_sdk_kms::config::Credentials::new("testing", "testing", None, None, "envseal-tests");
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(aws_sdk_kms::config::SharedCredentialsProvider::new(creds))
        .endpoint_url(endpoint)
        .build()
}

/// An envseal client for `region` against `endpoint` with `bounds`.
pub async fn client(region: &str, endpoint: &str, bounds: AwsBounds) -> KmsClient {
    KmsClient::builder()
        .sdk_config(sdk_config(region, endpoint))
        .bounds(bounds)
        .build()
        .await
        .unwrap()
}

/// A plain SDK client on moto, for key administration.
pub fn admin(region: &str) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(&sdk_config(region, &moto().url))
}

/// Creates a symmetric key in `region`; returns its ARN.
pub async fn create_key(region: &str) -> String {
    let out = admin(region).create_key().send().await.unwrap();
    out.key_metadata().unwrap().arn().unwrap().to_owned()
}

/// Creates an asymmetric key (`spec`, `usage`) in `region`; returns its ARN.
async fn create_asymmetric_key(region: &str, spec: &str, usage: aws_sdk_kms::types::KeyUsageType) -> String {
    let key = admin(region)
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::from(spec))
        .key_usage(usage)
        .send()
        .await
        .unwrap();
    key.key_metadata().unwrap().arn().unwrap().to_owned()
}

/// A KMS RSA key (ENCRYPT_DECRYPT) and its public key as PEM.
pub async fn create_rsa_key(region: &str, spec: &str) -> (String, String) {
    use base64::Engine as _;
    let arn = create_asymmetric_key(region, spec, aws_sdk_kms::types::KeyUsageType::EncryptDecrypt).await;
    let public = admin(region).get_public_key().key_id(&arn).send().await.unwrap();
    let der = public.public_key().unwrap().as_ref().to_vec();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    );
    (arn, pem)
}

/// A KMS key agreement key (KEY_AGREEMENT, an ECC_NIST_* spec); returns its ARN.
pub async fn create_ecdh_key(region: &str, spec: &str) -> String {
    create_asymmetric_key(region, spec, aws_sdk_kms::types::KeyUsageType::KeyAgreement).await
}

/// Reads the moto log (for failure messages).
pub fn moto_log() -> String {
    let mut s = String::new();
    let path = std::env::temp_dir().join(format!("envseal-moto-{}.log", moto().port));
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}
