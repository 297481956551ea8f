//! Decrypts every ESDK test vector in `tests/vectors` (messages written by
//! the Python and JavaScript reference SDKs), one named test per vector.
//!
//! Each vector is decrypted with all of its keys (a multi-keyring) and with
//! each key alone; one-shot, streaming (signed release opted in) and
//! streaming unsigned-only; on every compiled-in crypto backend. Positive
//! vectors must give the exact plaintext; negative ones must fail, and a
//! failed streaming decrypt may have released only whole verified regular
//! frames (never the final frame).

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use envseal::{
    Backend, CommitmentPolicy, Config, EncryptionContext, Error, Keyring, MultiKeyring, PolicyError,
    RawAesKeyring, RawRsaKeyring, RsaPadding, RsaPrivateKey, WrappingKey,
};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

const SETS: [&str; 2] = ["python-4.0.7", "js-5.0.2"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn file_uri(base: &Path, uri: &str) -> PathBuf {
    base.join(uri.strip_prefix("file://").unwrap_or(uri))
}

/// A master key from a manifest, resolved against keys.json.
#[derive(Clone)]
struct MasterKey {
    provider_id: String,
    key_id: String,
    kind: KeyKind,
}

#[derive(Clone)]
enum KeyKind {
    Aes(Vec<u8>),
    Rsa { pem: String, padding: RsaPadding },
}

fn master_key(keys: &Value, mk: &Value) -> Result<MasterKey, String> {
    if mk["type"] != "raw" {
        return Err(format!(
            "master key type {} (only raw keys are in scope here)",
            mk["type"]
        ));
    }
    let name = mk["key"].as_str().ok_or("no key name")?;
    let key = &keys["keys"][name];
    let key_id = key["key-id"].as_str().ok_or("no key-id")?.to_owned();
    let provider_id = mk["provider-id"].as_str().ok_or("no provider-id")?.to_owned();
    let material = key["material"].as_str().ok_or("no material")?;
    let kind = match mk["encryption-algorithm"].as_str() {
        Some("aes") => KeyKind::Aes(
            base64::engine::general_purpose::STANDARD
                .decode(material)
                .map_err(|e| e.to_string())?,
        ),
        Some("rsa") => {
            let padding = match (mk["padding-algorithm"].as_str(), mk["padding-hash"].as_str()) {
                (Some("pkcs1"), _) => RsaPadding::Pkcs1,
                (Some("oaep-mgf1"), Some("sha1")) => RsaPadding::OaepSha1,
                (Some("oaep-mgf1"), Some("sha256")) => RsaPadding::OaepSha256,
                (Some("oaep-mgf1"), Some("sha384")) => RsaPadding::OaepSha384,
                (Some("oaep-mgf1"), Some("sha512")) => RsaPadding::OaepSha512,
                other => return Err(format!("padding {other:?}")),
            };
            if key["type"] != "private" {
                return Err("RSA public key cannot decrypt".into());
            }
            KeyKind::Rsa {
                pem: material.to_owned(),
                padding,
            }
        }
        other => return Err(format!("encryption algorithm {other:?}")),
    };
    Ok(MasterKey {
        provider_id,
        key_id,
        kind,
    })
}

/// Whether the FIPS build refuses this key (`Error::Fips`): a PKCS#1 v1.5
/// RSA key, a key transport NIST no longer approves.
fn fips_refuses(mk: &MasterKey) -> bool {
    cfg!(feature = "fips")
        && matches!(
            mk.kind,
            KeyKind::Rsa {
                padding: RsaPadding::Pkcs1,
                ..
            }
        )
}

/// The key's keyring; in the FIPS build, the refusal of the keys it does
/// not approve, and of no other.
fn keyring(backend: Backend, mk: &MasterKey) -> Result<Arc<dyn Keyring>, String> {
    let ring: Result<Arc<dyn Keyring>, Error> = match &mk.kind {
        KeyKind::Aes(bytes) => WrappingKey::from_slice(bytes)
            .and_then(|k| RawAesKeyring::new(&mk.provider_id, &mk.key_id, k))
            .map(|r| Arc::new(r) as Arc<dyn Keyring>),
        KeyKind::Rsa { pem, padding } => {
            let private = RsaPrivateKey::from_pem_with(backend, pem).unwrap();
            RawRsaKeyring::new(&mk.provider_id, &mk.key_id, *padding, None, Some(private))
                .map(|r| Arc::new(r) as Arc<dyn Keyring>)
        }
    };
    match (ring, fips_refuses(mk)) {
        (Ok(r), false) => Ok(r),
        (Err(Error::Fips(why)), true) => Err(why),
        (Ok(_), true) => panic!("the FIPS build took key {}", mk.key_id),
        (Err(e), _) => panic!("key {}: {e}", mk.key_id),
    }
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    OneShot,
    Streaming,
    StreamingUnsignedOnly,
}

/// Decrypts; returns the plaintext or the error and how many bytes were
/// released before it, plus the frame length.
fn run(
    config: &Config,
    keyring: &Arc<dyn Keyring>,
    message: &[u8],
    mode: Mode,
) -> Result<Vec<u8>, (Error, usize, u32)> {
    match mode {
        Mode::OneShot => crate::common::client(config, keyring)
            .decrypt(&EncryptionContext::new(), message)
            .map(|d| d.plaintext.to_vec())
            .map_err(|e| (e, 0, 0)),
        Mode::Streaming | Mode::StreamingUnsignedOnly => {
            let d = crate::common::client(config, keyring)
                .decryptor(message)
                .map_err(|e| (e, 0, 0))?;
            let frame = d.frame_length();
            let mut r = d.decrypt(&EncryptionContext::new()).map_err(|e| (e, 0, frame))?;
            let mut out = Vec::new();
            let mut chunk = [0u8; 1000];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => out.extend_from_slice(&chunk[..n]),
                    Err(e) => return Err((Error::from_io(e), out.len(), frame)),
                }
            }
            if !r.is_complete() {
                return Err((Error::Poisoned, out.len(), frame));
            }
            Ok(out)
        }
    }
}

struct Vector {
    name: String,
    message: Vec<u8>,
    expected: Option<Vec<u8>>,
    keys: Vec<MasterKey>,
}

/// The suite named in a message's header.
fn suite_of(message: &[u8]) -> Option<envseal::AlgorithmSuite> {
    // Suite id sits at bytes 2..4 (v1) or 1..3 (v2).
    let id = match message.first() {
        Some(1) => u16::from_be_bytes([*message.get(2)?, *message.get(3)?]),
        _ => u16::from_be_bytes([*message.get(1)?, *message.get(2)?]),
    };
    envseal::AlgorithmSuite::from_id(id)
}

fn check(v: &Vector) -> Result<(), Failed> {
    let suite = suite_of(&v.message);
    let signed = suite.is_some_and(|s| s.is_signed());
    for backend in Backend::all() {
        let config = Config::builder()
            .commitment_policy(CommitmentPolicy::RequireEncryptAllowDecrypt)
            .backend(backend)
            .build()
            .unwrap();
        // The FIPS build refuses PKCS#1 v1.5 keys: the vector is read with
        // the others (every listed key has its encrypted data key, so each
        // must still decrypt); main() leaves out a vector with no other.
        let rings: Vec<(&str, Arc<dyn Keyring>)> = v
            .keys
            .iter()
            .filter_map(|k| keyring(backend, k).ok().map(|r| (k.key_id.as_str(), r)))
            .collect();
        if rings.is_empty() {
            return Err(format!("{}: no key to decrypt with", v.name).into());
        }
        let mut sets: Vec<(String, Arc<dyn Keyring>)> = vec![(
            "all keys".into(),
            Arc::new(MultiKeyring::from_keyrings(rings.iter().map(|(_, r)| r.clone()).collect()).unwrap()),
        )];
        if rings.len() > 1 {
            for (id, r) in &rings {
                sets.push((format!("key {id} alone"), r.clone()));
            }
        }
        // Streaming releases signed messages only when the config says so.
        let signed_streaming = Config::builder()
            .commitment_policy(CommitmentPolicy::RequireEncryptAllowDecrypt)
            .backend(backend)
            .allow_signed_streaming(true)
            .build()
            .unwrap();
        for (set_name, ring) in &sets {
            for mode in [Mode::OneShot, Mode::Streaming, Mode::StreamingUnsignedOnly] {
                let ctx = format!("{} / {set_name} / {mode:?} / {}", v.name, backend.name());
                let config = match mode {
                    Mode::Streaming => &signed_streaming,
                    _ => &config,
                };
                let result = run(config, ring, &v.message, mode);
                match (&v.expected, result) {
                    (_, Err((Error::Policy(PolicyError::SignedStreaming(_)), 0, _)))
                        if signed && matches!(mode, Mode::StreamingUnsignedOnly) => {}
                    (_, Ok(_)) if signed && matches!(mode, Mode::StreamingUnsignedOnly) => {
                        return Err(
                            format!("{ctx}: unsigned-only streaming accepted a signed message").into(),
                        );
                    }
                    (Some(want), Ok(got)) => {
                        if &got != want {
                            return Err(format!(
                                "{ctx}: plaintext differs ({} vs {} bytes)",
                                got.len(),
                                want.len()
                            )
                            .into());
                        }
                    }
                    (Some(_), Err((e, _, _))) => return Err(format!("{ctx}: decrypt failed: {e}").into()),
                    (None, Ok(_)) => return Err(format!("{ctx}: a negative vector decrypted").into()),
                    (None, Err((_, released, frame))) => {
                        // Only whole, verified regular frames may have been released.
                        if released > 0 && (frame == 0 || released % frame as usize != 0) {
                            return Err(format!(
                                "{ctx}: released {released} bytes, not whole frames of {frame}"
                            )
                            .into());
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let keys: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("keys.json")).expect("keys.json")).unwrap();
    let mut trials = Vec::new();
    let mut left_out: BTreeMap<String, usize> = BTreeMap::new();
    let (mut positive, mut negative) = (0, 0);
    for set in SETS {
        let base = root().join(set);
        let manifest: Value =
            serde_json::from_str(&std::fs::read_to_string(base.join("manifest.json")).expect("manifest"))
                .unwrap();
        let tests = manifest["tests"].as_object().expect("tests");
        for (id, t) in tests {
            let name = format!("{set}::{id}");
            let keys: Result<Vec<MasterKey>, String> = t["master-keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|mk| master_key(&keys, mk))
                .collect();
            let keys = match keys {
                Ok(k) => k,
                Err(why) => {
                    *left_out.entry(why).or_default() += 1;
                    continue;
                }
            };
            let message = std::fs::read(file_uri(&base, t["ciphertext"].as_str().unwrap())).unwrap();
            // The FIPS build refuses every key of some vectors (PKCS#1
            // v1.5): left out, and counted.
            if keys.iter().all(fips_refuses) {
                *left_out
                    .entry("every key refused by the FIPS build (PKCS#1 v1.5)".into())
                    .or_default() += 1;
                continue;
            }
            let expected = t["result"]["output"]["plaintext"]
                .as_str()
                .map(|p| std::fs::read(file_uri(&base, p)).unwrap());
            if expected.is_some() {
                positive += 1;
            } else {
                negative += 1;
            }
            let v = Vector {
                name: name.clone(),
                message,
                expected,
                keys,
            };
            trials.push(Trial::test(name, move || check(&v)));
        }
    }
    println!(
        "ESDK vectors: {} to run ({positive} positive, {negative} negative), {} left out",
        trials.len(),
        left_out.values().sum::<usize>()
    );
    for (why, n) in &left_out {
        println!("  left out {n}: {why}");
    }
    libtest_mimic::run(&args, trials).exit();
}
