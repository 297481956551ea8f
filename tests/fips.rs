//! The FIPS build (feature `fips`, docs/fips.md): the module is in FIPS
//! mode, and each primitive envseal uses runs inside AWS-LC-FIPS.
//!
//! aws-lc-rs keeps the module's service indicator to itself, and reading
//! AWS-LC's counter needs `unsafe` FFI, which this crate forbids. So the
//! evidence is taken from outside the process: this test runs its own
//! binary under gdb with a breakpoint on the module's function for each
//! primitive (AES-GCM seal and open, HKDF, ECDSA P-384 sign and verify,
//! RSA-OAEP encrypt and decrypt and the RSA private key operation, ECDH,
//! the SP 800-108 KDF, the DRBG) while
//! it encrypts and decrypts through envseal's public API, and fails unless
//! each primitive's breakpoint is hit, at an address inside the module's
//! code: between AWS-LC-FIPS's `BORINGSSL_bcm_text_start` and
//! `BORINGSSL_bcm_text_end`, the integrity-checked text of the module.
//! gdb and nm are needed (scripts/test installs gdb); without them the
//! test fails.
#![cfg(feature = "fips")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use envseal::{
    blocking, AlgorithmSuite, Backend, Config, Curve, EcdhPrivateKey, EcdhPublicKey, EncryptionContext,
    Error, Keyring, MultiKeyring, RawAesKeyring, RawEcdhKeyring, RawRsaKeyring, RsaPadding, RsaPrivateKey,
    RsaPublicKey, WrappingKey,
};

/// Set in the child that gdb runs: it does the work instead of tracing.
const WORKLOAD: &str = "ENVSEAL_FIPS_WORKLOAD";

fn data(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

/// Encrypts and decrypts with every primitive: a signed committing suite
/// (AES-GCM, HKDF-SHA512, ECDSA P-384) under a raw AES key (a key wrap
/// with an IV from the DRBG), a raw RSA-OAEP key and a raw ECDH key pair
/// (ECDH, the SP 800-108 KDF).
fn workload() {
    let context: EncryptionContext = [("purpose", "fips")].into_iter().collect();
    let aes = RawAesKeyring::new("fips", "aes", WrappingKey::from_slice(&[7u8; 32]).unwrap()).unwrap();
    let rsa = RawRsaKeyring::new(
        "fips",
        "rsa",
        RsaPadding::OaepSha256,
        Some(RsaPublicKey::from_pem(&data("rsa-4096-public.pem")).unwrap()),
        Some(RsaPrivateKey::from_pem(&data("rsa-4096-private.pem")).unwrap()),
    )
    .unwrap();
    let ecdh = RawEcdhKeyring::static_keys(
        EcdhPrivateKey::from_pkcs8(Curve::P256, data("ecdh-p256-a-private.pem").as_bytes()).unwrap(),
        EcdhPublicKey::from_bytes(Curve::P256, data("ecdh-p256-b-public.pem").as_bytes()).unwrap(),
    )
    .unwrap();
    let config = Config::builder()
        .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384)
        .build()
        .unwrap();
    let (aes, rsa, ecdh): (Arc<dyn Keyring>, Arc<dyn Keyring>, Arc<dyn Keyring>) =
        (Arc::new(aes), Arc::new(rsa), Arc::new(ecdh));
    let keyring = MultiKeyring::new(Some(aes.clone()), vec![rsa.clone(), ecdh.clone()]).unwrap();
    let client = blocking::Client::builder(keyring)
        .config(config.clone())
        .build()
        .unwrap();
    let message = client.encrypt(&context, b"inside the module").unwrap();
    // Each keyring alone unwraps its own encrypted data key.
    for ring in [aes, rsa, ecdh] {
        let reader = blocking::Client::builder_shared(ring)
            .config(config.clone())
            .build()
            .unwrap();
        let plain = reader.decrypt(&context, &message).unwrap();
        assert_eq!(&*plain.plaintext, b"inside the module");
    }
}

#[test]
fn the_module_is_in_fips_mode() {
    let module = Backend::default().module();
    assert_eq!(module.name, "AWS-LC-FIPS", "{module}");
    assert!(module.fips_mode, "{module}");
    // A FIPS module version (aws-lc-fips-sys requires at least 3).
    let m = module.module_version.expect("a FIPS module version");
    assert!(m >= 3, "{module}");
    assert!(
        module
            .to_string()
            .starts_with(&format!("AWS-LC-FIPS {m}.x (AWS-LC ")),
        "{module}"
    );
    assert!(aws_lc_rs::try_fips_mode().is_ok());
    // A client builds (the FIPS mode check passes) and round-trips.
    workload();
}

#[test]
fn pkcs1_key_wrapping_is_refused() {
    let public = RsaPublicKey::from_pem(&data("rsa-4096-public.pem")).unwrap();
    let err = RawRsaKeyring::new("fips", "rsa", RsaPadding::Pkcs1, Some(public), None).unwrap_err();
    assert!(matches!(&err, Error::Fips(m) if m.contains("PKCS#1")), "{err}");
}

/// The module's function for each primitive (any of the names counts: the
/// one aws-lc-rs reaches depends on the call).
const PRIMITIVES: [(&str, &[&str]); 10] = [
    (
        "AES-GCM seal",
        &["EVP_AEAD_CTX_seal_scatter", "EVP_AEAD_CTX_seal"],
    ),
    ("AES-GCM open", &["EVP_AEAD_CTX_open_gather", "EVP_AEAD_CTX_open"]),
    ("HKDF", &["HKDF_expand", "HKDF"]),
    (
        "ECDSA sign",
        &[
            "ECDSA_do_sign",
            "EVP_DigestSign",
            "EVP_DigestSignFinal",
            "EVP_PKEY_sign",
        ],
    ),
    (
        "ECDSA verify",
        &[
            "ECDSA_do_verify",
            "EVP_DigestVerify",
            "EVP_DigestVerifyFinal",
            "EVP_PKEY_verify",
        ],
    ),
    // The RSA service's entry points and the private-key operation; the
    // OAEP padding itself is AWS-LC code outside the module's text
    // (docs/fips.md).
    (
        "RSA-OAEP encrypt and decrypt",
        &["EVP_PKEY_encrypt", "EVP_PKEY_decrypt"],
    ),
    ("RSA private key operation", &["rsa_default_private_transform"]),
    ("ECDH", &["ECDH_compute_key_fips", "EVP_PKEY_derive"]),
    ("SP 800-108 KDF", &["KBKDF_ctr_hmac"]),
    ("DRBG", &["RAND_bytes"]),
];

/// The FIPS module's symbols in this binary: name without AWS-LC-FIPS's
/// prefix -> (full name, address); and its text's start and end markers.
fn module_symbols(exe: &Path) -> BTreeMap<String, (String, u64)> {
    let out = Command::new("nm")
        .arg("--defined-only")
        .arg(exe)
        .output()
        .expect("nm is needed (binutils)");
    assert!(out.status.success(), "nm failed");
    let mut symbols = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut fields = line.split_whitespace();
        let (Some(addr), Some(_kind), Some(name)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let Ok(addr) = u64::from_str_radix(addr, 16) else {
            continue;
        };
        // The module's boundary markers are local and unprefixed.
        if name.starts_with("BORINGSSL_bcm_text_") {
            symbols.insert(name.to_owned(), (name.to_owned(), addr));
            continue;
        }
        // aws-lc-fips-sys prefixes every symbol: aws_lc_fips_0_14_4_NAME.
        let Some(rest) = name.strip_prefix("aws_lc_fips_") else {
            continue;
        };
        // Past the version's three numbers.
        let Some(bare) = rest.splitn(4, '_').nth(3) else {
            continue;
        };
        symbols.insert(bare.to_owned(), (name.to_owned(), addr));
    }
    symbols
}

#[test]
fn every_primitive_runs_inside_the_module() {
    if std::env::var_os(WORKLOAD).is_some() {
        workload();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let symbols = module_symbols(&exe);
    let bound = |name: &str| {
        symbols
            .get(name)
            .unwrap_or_else(|| panic!("no {name} symbol of AWS-LC-FIPS in {}", exe.display()))
            .1
    };
    let (start, end) = (bound("BORINGSSL_bcm_text_start"), bound("BORINGSSL_bcm_text_end"));
    assert!(start < end);

    // A breakpoint on each function the binary has; each must be in the
    // module's text.
    let mut breaks: Vec<(&str, &str, String)> = Vec::new();
    for (primitive, names) in PRIMITIVES {
        for name in names {
            if let Some((full, addr)) = symbols.get(*name) {
                assert!(
                    (start..end).contains(addr),
                    "{full} at {addr:#x} is outside the module's text {start:#x}..{end:#x}"
                );
                breaks.push((primitive, name, full.clone()));
            }
        }
        assert!(
            breaks.iter().any(|(p, _, _)| *p == primitive),
            "none of {names:?} ({primitive}) is in the binary"
        );
    }
    // The module checks the integrity of its text when the process loads
    // (a breakpoint written into it then would abort the process), so the
    // breakpoints go in once `main` is reached. No thread or process event
    // lines: gdb prints them on the workload's stdout, in the middle of its
    // lines; the workload's exit code is printed instead.
    let mut script = String::from(
        "set breakpoint pending off\nset pagination off\nset print thread-events off\n\
             set print inferior-events off\nbreak main\nrun\ndelete\n",
    );
    for (_, _, full) in &breaks {
        script.push_str(&format!("break {full}\ncommands\nsilent\ncontinue\nend\n"));
    }
    script.push_str("continue\nprintf \"workload exit code %d\\n\", $_exitcode\ninfo breakpoints\n");
    let dir = tempfile::tempdir().unwrap();
    let commands = dir.path().join("trace.gdb");
    std::fs::write(&commands, script).unwrap();
    let mut gdb = Command::new("gdb");
    gdb.args(["--batch", "--nx", "-x"]).arg(&commands).arg("--args");
    gdb.arg(&exe)
        .args([
            "--exact",
            "every_primitive_runs_inside_the_module",
            "--test-threads=1",
        ])
        .env(WORKLOAD, "1");
    let out = gdb.output().expect("gdb is needed (scripts/test installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("workload exit code 0") && text.contains("test result: ok. 1 passed"),
        "the workload failed under gdb:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `info breakpoints`: a row "N  breakpoint  keep y  ..." per breakpoint
    // (main was 1 and is deleted: breaks[i] is number i + 2), then
    // "\tbreakpoint already hit K times" once it was hit.
    let mut hits: BTreeMap<String, u64> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if let (Some(n), Some("breakpoint")) = (words.next(), words.next()) {
            current = n
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(2))
                .and_then(|i| breaks.get(i))
                .map(|(_, _, full)| full.clone());
        } else if let (Some(name), Some(k)) = (&current, line.trim().strip_prefix("breakpoint already hit "))
        {
            let k: u64 = k.split_whitespace().next().unwrap_or("0").parse().unwrap_or(0);
            *hits.entry(name.clone()).or_default() += k;
        }
    }
    let mut report = Vec::new();
    for (primitive, names) in PRIMITIVES {
        let n: u64 = breaks
            .iter()
            .filter(|(p, _, _)| *p == primitive)
            .map(|(_, _, full)| hits.get(full).copied().unwrap_or(0))
            .sum();
        report.push(format!("{primitive}: {n}"));
        assert!(n > 0, "{primitive} ({names:?}) never ran in the module:\n{text}");
    }
    eprintln!("calls into AWS-LC-FIPS: {}", report.join(", "));
}

/// `envseal doctor` with test credentials in us-east-1, no shared AWS
/// files or instance metadata (`HOME` in `home`), every service at
/// `endpoint`.
#[cfg(all(feature = "cli", feature = "kms"))]
fn doctor(home: &Path, endpoint: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_envseal"));
    c.arg("doctor")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", endpoint);
    c
}

/// `envseal doctor --fips` against moto (loopback): the module and its
/// FIPS mode, the FIPS TLS provider, and for each service the endpoint
/// used (moto, configured by URL) with the FIPS endpoint it stands in for
/// (AWS_USE_FIPS_ENDPOINT=true); the checks themselves pass.
#[cfg(all(feature = "cli", feature = "kms"))]
#[tokio::test]
async fn doctor_reports_the_module_tls_and_fips_endpoints() {
    let moto = common::moto::moto();
    let key = common::moto::create_key("us-east-1").await;
    let home = tempfile::tempdir().unwrap();
    let run = |fips_env: &str| {
        doctor(home.path(), &moto.url)
            .args(["--fips", "--kms-key", &key])
            .env("AWS_USE_FIPS_ENDPOINT", fips_env)
            .output()
            .unwrap()
    };
    for fips_env in ["true", "false"] {
        let out = run(fips_env);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = |prefix: &str| {
            stdout
                .lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix:?} line:\n{stdout}"))
                .to_owned()
        };
        let crypto = line("crypto: ");
        assert!(
            crypto.starts_with("crypto: AWS-LC-FIPS ") && crypto.ends_with(", FIPS mode on"),
            "{crypto}"
        );
        assert!(line("tls: ").contains("FIPS provider"), "{stdout}");
        // --fips asks for the FIPS endpoints whatever the environment says.
        assert_eq!(line("fips endpoints: "), "fips endpoints: on");
        assert_eq!(
            line("endpoint KMS: "),
            format!(
                "endpoint KMS: {} (configured; the FIPS endpoint would be https://kms-fips.us-east-1.amazonaws.com)",
                moto.url
            )
        );
        assert!(line("endpoint STS: ")
            .ends_with("(configured; the FIPS endpoint would be https://sts-fips.us-east-1.amazonaws.com)"));
        assert!(line("endpoint DynamoDB: ").contains("https://dynamodb-fips.us-east-1.amazonaws.com"));
        assert!(stdout.contains("doctor: ok"), "{stdout}");
    }
}

/// A TLS 1.3 server on loopback (`openssl s_server`) that offers only
/// `group` for the key exchange, with a throwaway self-signed certificate.
#[cfg(all(feature = "cli", feature = "kms"))]
struct TlsServer {
    child: std::process::Child,
    port: u16,
}

#[cfg(all(feature = "cli", feature = "kms"))]
impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(all(feature = "cli", feature = "kms"))]
fn tls_server(dir: &Path, group: &str) -> TlsServer {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if !cert.exists() {
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-subj", "/CN=localhost", "-days", "1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl is needed (scripts/test installs it)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let port = common::moto::free_port();
    let child = Command::new("openssl")
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}"), "-cert"])
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .args(["-groups", group, "-tls1_3", "-quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let server = TlsServer { child, port };
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("openssl s_server did not listen on {port}");
}

/// The HTTPS client is rustls on the FIPS provider: against a server
/// whose only key exchange is X25519 (not a FIPS-approved group; the
/// default build's provider offers it and gets as far as the certificate)
/// the handshake fails for want of a shared group, while with P-256 it
/// goes on to refuse the self-signed certificate. Through `envseal
/// doctor`'s STS call, as every AWS call is made.
#[cfg(all(feature = "cli", feature = "kms"))]
#[test]
fn tls_to_aws_offers_only_the_fips_providers_key_exchanges() {
    let dir = tempfile::tempdir().unwrap();
    let doctor = |port: u16| {
        let out = doctor(dir.path(), &format!("https://127.0.0.1:{port}"))
            .args(["--deadline-ms", "2000"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let x25519 = tls_server(dir.path(), "X25519");
    let out = doctor(x25519.port);
    assert!(
        out.contains("TLS handshake failed: received fatal alert: HandshakeFailure")
            && !out.contains("invalid peer certificate"),
        "{out}"
    );
    let p256 = tls_server(dir.path(), "P-256");
    let out = doctor(p256.port);
    assert!(
        out.contains("TLS handshake failed: invalid peer certificate"),
        "{out}"
    );
}
