//! moto's KMS server (`moto_server`, PyPI moto 5.2.5) on a free loopback
//! port, one per test binary, plus helpers to make keys and clients.
//!
//! The server runs under a small shell that kills it when this process's
//! end of its stdin pipe closes, i.e. when the test binary exits.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use envseal::kms::aws_config::{BehaviorVersion, Region, SdkConfig};
use envseal::kms::aws_sdk_kms;
use envseal::kms::{KmsBounds, KmsClient};

pub const ACCOUNT: &str = "123456789012";

pub struct Moto {
    pub url: String,
    pub port: u16,
    _child: Mutex<(Child, ChildStdin)>,
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
        Moto {
            url: format!("http://127.0.0.1:{port}"),
            port,
            _child: Mutex::new((child, stdin)),
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
pub async fn client(region: &str, endpoint: &str, bounds: KmsBounds) -> KmsClient {
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
