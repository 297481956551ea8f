//! Interop with the Python reference ESDK (`aws-encryption-sdk`, pinned in
//! scripts/requirements-test.txt, installed by scripts/test): envseal writes,
//! the reference reads, and the reverse; raw AES (128/192/256) and raw RSA
//! (every padding), all 11 suites, non-framed and frame lengths 1, 4096 and
//! 65536, empty payloads and payloads of exact frame multiples, Unicode
//! encryption contexts, and a two-keyring message.
//!
//! Needs the reference: `ENVSEAL_PYTHON` (set by scripts/test) or
//! `.venv/bin/python`. Without it the test fails; it never skips silently.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::Runtime;
use common::{bytes, config_for, RSA_B_PRIVATE_PEM, RSA_B_PUBLIC_PEM, RSA_PRIVATE_PEM, RSA_PUBLIC_PEM};
use envseal::{
    AlgorithmSuite, Backend, CommitmentPolicy, Config, Decryptor, EncryptionContext, Keyring, MultiKeyring,
    RawAesKeyring, RawRsaKeyring, RsaPadding, RsaPrivateKey, RsaPublicKey, WrappingKey,
};
use serde_json::{json, Value};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/esdk_ref.py")
}

/// Runs many reference jobs (argument lists) in one Python process.
fn reference_batch(dir: &Path, jobs: &[Vec<String>]) -> Vec<Result<(), String>> {
    let job_file = dir.join(format!("jobs-{}.json", jobs.len()));
    std::fs::write(&job_file, serde_json::to_vec(&jobs).unwrap()).unwrap();
    let out = Command::new(common::python())
        .arg(script())
        .arg("batch")
        .arg(&job_file)
        .output()
        .expect("run the Python reference");
    assert!(
        out.status.success(),
        "reference batch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).expect("batch output is JSON");
    assert_eq!(results.len(), jobs.len());
    results
        .into_iter()
        .map(|r| {
            if r["ok"] == true {
                Ok(())
            } else {
                Err(r["error"].as_str().unwrap_or("?").to_owned())
            }
        })
        .collect()
}

#[derive(Clone)]
enum Key {
    Aes { bits: usize },
    Rsa(RsaPadding),
}

impl Key {
    fn label(&self) -> String {
        match self {
            Key::Aes { bits } => format!("aes-{bits}"),
            Key::Rsa(p) => format!("rsa-{}", p.name()),
        }
    }

    fn aes_bytes(bits: usize) -> Vec<u8> {
        bytes(bits / 8, bits as u64)
    }

    /// envseal keyring; `encrypt` chooses the RSA public or private half.
    fn keyring(&self, backend: Backend) -> Arc<dyn Keyring> {
        match self {
            Key::Aes { bits } => Arc::new(
                RawAesKeyring::new(
                    "interop-ns",
                    self.label(),
                    WrappingKey::from_slice(&Self::aes_bytes(*bits)).unwrap(),
                )
                .unwrap(),
            ),
            Key::Rsa(p) => Arc::new(
                RawRsaKeyring::new(
                    "interop-ns",
                    self.label(),
                    *p,
                    Some(RsaPublicKey::from_pem_with(backend, RSA_PUBLIC_PEM).unwrap()),
                    Some(RsaPrivateKey::from_pem_with(backend, RSA_PRIVATE_PEM).unwrap()),
                )
                .unwrap(),
            ),
        }
    }

    /// Reference CLI arguments.
    fn args(&self, dir: &Path, encrypt: bool) -> Vec<String> {
        match self {
            Key::Aes { bits } => {
                let f = dir.join(format!("aes-{bits}.key"));
                std::fs::write(&f, Self::aes_bytes(*bits)).unwrap();
                vec![
                    "--raw-aes-key".into(),
                    format!("interop-ns:{}:{}", self.label(), f.display()),
                ]
            }
            Key::Rsa(p) => {
                let (name, pem) = if encrypt {
                    ("public", RSA_PUBLIC_PEM)
                } else {
                    ("private", RSA_PRIVATE_PEM)
                };
                let f = dir.join(format!("rsa-{name}.pem"));
                std::fs::write(&f, pem).unwrap();
                vec![
                    "--raw-rsa-key".into(),
                    format!("interop-ns:{}:{}:{}", self.label(), p.name(), f.display()),
                ]
            }
        }
    }
}

struct Case {
    name: String,
    suite: AlgorithmSuite,
    frame: u32,
    plaintext: Vec<u8>,
    keys: Vec<Key>,
    context: EncryptionContext,
}

fn cases() -> Vec<Case> {
    let unicode: EncryptionContext = [("purpose", "interop"), ("ключ", "значение"), ("emoji 🔐", "値 ✓")]
        .into_iter()
        .collect();
    let mut out = Vec::new();
    let mut n = 0u64;
    for suite in AlgorithmSuite::ALL {
        for frame in [0u32, 1, 4096, 65536] {
            let payloads: Vec<(&str, Vec<u8>)> = match frame {
                0 => vec![("empty", vec![]), ("10k", bytes(10_000, n))],
                1 => vec![
                    ("empty", vec![]),
                    ("exact-3", bytes(3, n)),
                    ("odd-17", bytes(17, n)),
                ],
                f => vec![
                    ("empty", vec![]),
                    ("exact-2", bytes(2 * f as usize, n)),
                    ("odd", bytes(f as usize + 1234, n)),
                ],
            };
            for (label, pt) in payloads {
                n += 1;
                // Rotate the wrapping key across the AES sizes and RSA paddings.
                let keys = match n % 8 {
                    0 => vec![Key::Aes { bits: 128 }],
                    1 => vec![Key::Aes { bits: 192 }],
                    2 => vec![Key::Rsa(RsaPadding::OaepSha1)],
                    3 => vec![Key::Rsa(RsaPadding::Pkcs1)],
                    4 => vec![Key::Aes { bits: 256 }, Key::Rsa(RsaPadding::OaepSha256)],
                    5 => vec![Key::Rsa(RsaPadding::OaepSha384)],
                    6 => vec![Key::Rsa(RsaPadding::OaepSha512)],
                    _ => vec![Key::Aes { bits: 256 }],
                };
                let context = if n.is_multiple_of(2) {
                    unicode.clone()
                } else {
                    EncryptionContext::new()
                };
                out.push(Case {
                    name: format!(
                        "{:?} frame={frame} pt={label} keys={}",
                        suite,
                        keys.iter().map(Key::label).collect::<Vec<_>>().join("+")
                    ),
                    suite,
                    frame,
                    plaintext: pt,
                    keys,
                    context,
                });
            }
        }
    }
    out
}

fn policy(suite: AlgorithmSuite) -> CommitmentPolicy {
    if suite.is_committing() {
        CommitmentPolicy::RequireEncryptRequireDecrypt
    } else {
        CommitmentPolicy::ForbidEncryptAllowDecrypt
    }
}

fn context_file(dir: &Path, i: usize, ctx: &EncryptionContext) -> PathBuf {
    let f = dir.join(format!("ctx-{i}.json"));
    let map: serde_json::Map<String, Value> = ctx.iter().map(|(k, v)| (k.to_owned(), json!(v))).collect();
    std::fs::write(&f, serde_json::to_vec(&map).unwrap()).unwrap();
    f
}

fn envseal_keyring(keys: &[Key], backend: Backend) -> MultiKeyring {
    MultiKeyring::from_keyrings(keys.iter().map(|k| k.keyring(backend)).collect()).unwrap()
}

#[test]
fn envseal_writes_reference_reads() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::new().unwrap();
    let cases = cases();
    let mut jobs = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let backend = Backend::all()[i % Backend::all().len()];
        let config = config_for(c.suite, c.frame, backend);
        let msg = rt
            .encrypt(
                &config,
                &envseal_keyring(&c.keys, backend),
                &c.context,
                &c.plaintext,
            )
            .unwrap();
        let ct = dir.path().join(format!("envseal-{i}.esdk"));
        std::fs::write(&ct, msg).unwrap();
        // The reference must decrypt with all keys and with each key alone.
        let key_sets: Vec<Vec<Key>> = if c.keys.len() > 1 {
            std::iter::once(c.keys.clone())
                .chain(c.keys.iter().map(|k| vec![k.clone()]))
                .collect()
        } else {
            vec![c.keys.clone()]
        };
        for (j, keys) in key_sets.iter().enumerate() {
            let mut job = vec![
                "decrypt".to_owned(),
                "--input".into(),
                ct.display().to_string(),
                "--output".into(),
                dir.path().join(format!("ref-pt-{i}-{j}")).display().to_string(),
                "--commitment-policy".into(),
                policy(c.suite).name().into(),
                "--context-json".into(),
                context_file(dir.path(), i, &c.context).display().to_string(),
            ];
            for k in keys {
                job.extend(k.args(dir.path(), false));
            }
            jobs.push((i, j, job));
        }
    }
    let results = reference_batch(
        dir.path(),
        &jobs.iter().map(|(_, _, j)| j.clone()).collect::<Vec<_>>(),
    );
    let mut failures = Vec::new();
    for ((i, j, _), r) in jobs.iter().zip(results) {
        let c = &cases[*i];
        match r {
            Err(e) => failures.push(format!("{}: reference failed: {e}", c.name)),
            Ok(()) => {
                let got = std::fs::read(dir.path().join(format!("ref-pt-{i}-{j}"))).unwrap();
                if got != c.plaintext {
                    failures.push(format!("{}: reference plaintext differs", c.name));
                }
            }
        }
    }
    println!(
        "reference decrypted {} of {} envseal messages",
        jobs.len() - failures.len(),
        jobs.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn reference_writes_envseal_reads() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::new().unwrap();
    let cases = cases();
    let mut jobs = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let pt = dir.path().join(format!("pt-{i}"));
        std::fs::write(&pt, &c.plaintext).unwrap();
        let mut job = vec![
            "encrypt".to_owned(),
            "--input".into(),
            pt.display().to_string(),
            "--output".into(),
            dir.path().join(format!("ref-{i}.esdk")).display().to_string(),
            "--commitment-policy".into(),
            policy(c.suite).name().into(),
            "--suite".into(),
            format!("0x{:04X}", c.suite.id()),
            "--frame-length".into(),
            c.frame.to_string(),
            "--context-json".into(),
            context_file(dir.path(), i, &c.context).display().to_string(),
        ];
        for k in &c.keys {
            job.extend(k.args(dir.path(), true));
        }
        jobs.push(job);
    }
    let results = reference_batch(dir.path(), &jobs);
    let mut failures = Vec::new();
    let mut checked = 0;
    for (i, (c, r)) in cases.iter().zip(results).enumerate() {
        if let Err(e) = r {
            failures.push(format!("{}: reference encrypt failed: {e}", c.name));
            continue;
        }
        let msg = std::fs::read(dir.path().join(format!("ref-{i}.esdk"))).unwrap();
        for backend in Backend::all() {
            let config = Config::builder()
                .commitment_policy(policy(c.suite))
                .backend(backend)
                .build()
                .unwrap();
            let key_sets: Vec<Vec<Key>> = std::iter::once(c.keys.clone())
                .chain(c.keys.iter().map(|k| vec![k.clone()]))
                .collect();
            for keys in key_sets {
                let ring = envseal_keyring(&keys, backend);
                checked += 1;
                match rt.decrypt(&config, &ring, &c.context, &msg) {
                    Ok(d) if *d.plaintext == c.plaintext && d.suite == c.suite => {}
                    Ok(_) => failures.push(format!(
                        "{} ({}): plaintext or suite differs",
                        c.name,
                        backend.name()
                    )),
                    Err(e) => failures.push(format!("{} ({}): {e}", c.name, backend.name())),
                }
                // Streaming too.
                let d = Decryptor::new(&msg[..], &config)
                    .unwrap()
                    .allow_signed_streaming();
                let mut r = rt.decrypt_stream(d, &ring, &c.context).unwrap();
                let mut out = Vec::new();
                r.read_to_end(&mut out).unwrap();
                if out != c.plaintext || !r.is_complete() {
                    failures.push(format!("{} ({}): streaming differs", c.name, backend.name()));
                }
            }
        }
    }
    println!(
        "envseal decrypted {} reference messages ({} decrypt runs)",
        cases.len(),
        checked
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A raw RSA keyring under the name the RSA fallback test uses, with the
/// first test key (`b = false`) or the second.
fn fallback_rsa(padding: RsaPadding, b: bool, backend: Backend) -> Arc<dyn Keyring> {
    let (public, private) = if b {
        (RSA_B_PUBLIC_PEM, RSA_B_PRIVATE_PEM)
    } else {
        (RSA_PUBLIC_PEM, RSA_PRIVATE_PEM)
    };
    Arc::new(
        RawRsaKeyring::new(
            "interop-ns",
            "rsa-fallback",
            padding,
            Some(RsaPublicKey::from_pem_with(backend, public).unwrap()),
            Some(RsaPrivateKey::from_pem_with(backend, private).unwrap()),
        )
        .unwrap(),
    )
}

/// A message for `[RSA key A, AES]` decrypts with `[RSA key B under the same
/// namespace and name, AES]`: B's failed unwrap (a PKCS#1 padding failure
/// included) lets the AES keyring try, as in the reference ESDKs. Messages
/// written by envseal and by the reference, every padding, committing,
/// signed, non-committing and no-KDF suites, one-shot and streaming, both
/// backends. Key B alone fails with the opaque "authentication failed".
#[test]
fn rsa_failure_falls_through_to_the_next_keyring() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::new().unwrap();
    let aes = Key::Aes { bits: 256 };
    let paddings = [
        RsaPadding::Pkcs1,
        RsaPadding::OaepSha1,
        RsaPadding::OaepSha256,
        RsaPadding::OaepSha384,
        RsaPadding::OaepSha512,
    ];
    let suites = [
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
        AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha256,
        AlgorithmSuite::Aes128GcmIv12Tag16NoKdf,
    ];
    let pem = |name: &str, text: &str| {
        let f = dir.path().join(name);
        std::fs::write(&f, text).unwrap();
        f.display().to_string()
    };
    let (a_public, b_private) = (
        pem("a-public.pem", RSA_PUBLIC_PEM),
        pem("b-private.pem", RSA_B_PRIVATE_PEM),
    );
    let pt = bytes(9000, 77);
    // Messages: (label, suite, padding, bytes).
    let mut messages = Vec::new();
    let mut enc_jobs = Vec::new();
    let mut dec_jobs = Vec::new();
    for (i, (&padding, &suite)) in paddings
        .iter()
        .flat_map(|p| suites.iter().map(move |s| (p, s)))
        .enumerate()
    {
        let backend = Backend::all()[i % Backend::all().len()];
        let config = config_for(suite, 4096, backend);
        let ring =
            MultiKeyring::from_keyrings(vec![fallback_rsa(padding, false, backend), aes.keyring(backend)])
                .unwrap();
        let msg = rt
            .encrypt(&config, &ring, &EncryptionContext::new(), &pt)
            .unwrap();
        let ct = dir.path().join(format!("fallback-envseal-{i}.esdk"));
        std::fs::write(&ct, &msg).unwrap();
        messages.push((
            format!("envseal {suite:?} {}", padding.name()),
            suite,
            padding,
            msg,
        ));
        // The reference decrypts envseal's message with [B, AES] too.
        let mut job = vec![
            "decrypt".to_owned(),
            "--input".into(),
            ct.display().to_string(),
            "--output".into(),
            dir.path()
                .join(format!("fallback-ref-pt-{i}"))
                .display()
                .to_string(),
            "--commitment-policy".into(),
            policy(suite).name().into(),
            "--raw-rsa-key".into(),
            format!("interop-ns:rsa-fallback:{}:{b_private}", padding.name()),
        ];
        job.extend(aes.args(dir.path(), false));
        dec_jobs.push(job);
        let input = dir.path().join("fallback-pt");
        std::fs::write(&input, &pt).unwrap();
        let mut job = vec![
            "encrypt".to_owned(),
            "--input".into(),
            input.display().to_string(),
            "--output".into(),
            dir.path()
                .join(format!("fallback-ref-{i}.esdk"))
                .display()
                .to_string(),
            "--commitment-policy".into(),
            policy(suite).name().into(),
            "--suite".into(),
            format!("0x{:04X}", suite.id()),
            "--frame-length".into(),
            "4096".into(),
            "--raw-rsa-key".into(),
            format!("interop-ns:rsa-fallback:{}:{a_public}", padding.name()),
        ];
        job.extend(aes.args(dir.path(), true));
        enc_jobs.push((suite, padding, i, job));
    }
    let mut failures = Vec::new();
    for (r, job) in reference_batch(dir.path(), &dec_jobs).into_iter().zip(&dec_jobs) {
        if let Err(e) = r {
            failures.push(format!("reference decrypt with [B, AES] of {}: {e}", job[2]));
        }
    }
    let jobs: Vec<Vec<String>> = enc_jobs.iter().map(|(_, _, _, j)| j.clone()).collect();
    for (r, (suite, padding, i, _)) in reference_batch(dir.path(), &jobs).into_iter().zip(&enc_jobs) {
        r.unwrap_or_else(|e| panic!("reference encrypt {suite:?} {}: {e}", padding.name()));
        let msg = std::fs::read(dir.path().join(format!("fallback-ref-{i}.esdk"))).unwrap();
        messages.push((
            format!("reference {suite:?} {}", padding.name()),
            *suite,
            *padding,
            msg,
        ));
    }
    let mut checked = 0;
    for (label, suite, padding, msg) in &messages {
        for backend in Backend::all() {
            let config = Config::builder()
                .commitment_policy(policy(*suite))
                .backend(backend)
                .build()
                .unwrap();
            let ring = MultiKeyring::from_keyrings(vec![
                fallback_rsa(*padding, true, backend),
                aes.keyring(backend),
            ])
            .unwrap();
            let ctx = EncryptionContext::new();
            match rt.decrypt(&config, &ring, &ctx, msg) {
                Ok(d) if d.plaintext[..] == pt[..] => {}
                Ok(_) => failures.push(format!("{label} ({}): plaintext differs", backend.name())),
                Err(e) => failures.push(format!("{label} ({}): one-shot: {e}", backend.name())),
            }
            let d = Decryptor::new(&msg[..], &config)
                .unwrap()
                .allow_signed_streaming();
            match rt.decrypt_stream(d, &ring, &ctx) {
                Ok(mut r) => {
                    let mut out = Vec::new();
                    if r.read_to_end(&mut out).is_err() || out != pt || !r.is_complete() {
                        failures.push(format!("{label} ({}): streaming differs", backend.name()));
                    }
                }
                Err(e) => failures.push(format!("{label} ({}): streaming: {e}", backend.name())),
            }
            // Key B alone: the opaque failure, one-shot and streaming.
            let alone = fallback_rsa(*padding, true, backend);
            match rt.decrypt(&config, alone.as_ref(), &ctx, msg) {
                Err(e @ envseal::Error::Decrypt) if e.to_string() == "authentication failed" => {}
                other => failures.push(format!(
                    "{label} ({}): key B alone gave {other:?}",
                    backend.name()
                )),
            }
            let d = Decryptor::new(&msg[..], &config)
                .unwrap()
                .allow_signed_streaming();
            match rt.decrypt_stream(d, alone.as_ref(), &ctx) {
                Err(envseal::Error::Decrypt) => {}
                other => failures.push(format!(
                    "{label} ({}): key B alone, streaming, gave {:?}",
                    backend.name(),
                    other.map(|_| "a reader")
                )),
            }
            checked += 1;
        }
    }
    println!(
        "RSA fallback: {checked} message/backend pairs, {} failures",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
