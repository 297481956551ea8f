//! Replays the inputs in `fuzz/regressions/` (crashes found by the fuzzer,
//! once fixed, and inputs worth keeping) through what the fuzz targets do:
//! header parsing, one-shot decrypt and streaming decrypt with the vectors'
//! raw AES-256 key. Each must end in Ok or Err, never a panic, and a
//! streaming decrypt never yields more plaintext than the input's length.

use std::io::Read;
use std::path::Path;

use envseal::blocking::Client;
use envseal::{CommitmentPolicy, Config, EncryptionContext, RawAesKeyring, WrappingKey};

const VECTOR_AES_256: [u8; 32] = [
    157, 35, 223, 107, 148, 199, 152, 30, 125, 212, 17, 221, 98, 3, 133, 156, 115, 119, 24, 85, 235, 60, 105,
    170, 69, 142, 153, 178, 228, 70, 119, 9,
];

#[test]
fn fuzz_regressions_replay() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fuzz/regressions exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no regression inputs in {}", dir.display());
    let keyring = RawAesKeyring::new(
        "aws-raw-vectors-persistant",
        "aes-256",
        WrappingKey::from_slice(&VECTOR_AES_256).unwrap(),
    )
    .unwrap();
    // As the fuzz targets: signed messages stream too.
    let config = Config::builder()
        .commitment_policy(CommitmentPolicy::RequireEncryptAllowDecrypt)
        .allow_signed_streaming(true)
        .build()
        .unwrap();
    let client = Client::builder(keyring).config(config).build().unwrap();
    let context = EncryptionContext::new();
    let mut decrypted = 0;
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let _ = client.decryptor(&data[..]).map(|d| d.encrypted_data_keys().len());
        if client.decrypt(&context, &data).is_ok() {
            decrypted += 1;
        }
        if let Ok(d) = client.decryptor(&data[..]) {
            if let Ok(mut r) = d.decrypt(&context) {
                let mut out = Vec::new();
                let _ = r.read_to_end(&mut out);
                assert!(out.len() <= data.len(), "{}", file.display());
            }
        }
    }
    eprintln!(
        "{} regression inputs replayed, {decrypted} decrypted",
        files.len()
    );
}

/// The seeds in fuzz/seeds are what the fuzzer starts the newer keyrings
/// from: each parses, and the raw ECDH ones decrypt with the `b` keys of
/// tests/data (which the fuzz targets hold), so mutations reach the ECDH
/// unwrap. The KMS ones need a KMS: they seed header parsing only.
#[test]
fn fuzz_seeds_parse_and_raw_ecdh_seeds_decrypt() {
    use envseal::{Curve, EcdhPrivateKey, RawEcdhKeyring};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let config = Config::builder()
        .commitment_policy(CommitmentPolicy::RequireEncryptAllowDecrypt)
        .build()
        .unwrap();
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fuzz/seeds exists") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let data = std::fs::read(&path).unwrap();
        let d = Client::builder(Headers)
            .config(config.clone())
            .build()
            .unwrap()
            .decryptor(&data[..])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let provider = d.encrypted_data_keys()[0].provider_id.clone();
        if let Some(rest) = name.strip_prefix("raw-ecdh-") {
            assert_eq!(provider, envseal::RAW_ECDH_PROVIDER_ID, "{name}");
            let (curve, id) = match &rest[rest.len() - 4..] {
                "p256" => (Curve::P256, "p256"),
                "p384" => (Curve::P384, "p384"),
                _ => (Curve::P521, "p521"),
            };
            let pem = std::fs::read(common_data(&format!("ecdh-{id}-b-private.pem"))).unwrap();
            let keyring = RawEcdhKeyring::discovery(EcdhPrivateKey::from_pkcs8(curve, &pem).unwrap());
            Client::builder(keyring)
                .config(config.clone())
                .build()
                .unwrap()
                .decrypt(&EncryptionContext::new(), &data)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        } else {
            assert!(provider.starts_with("aws-kms"), "{name}: {provider}");
        }
        seen.push(name);
    }
    seen.sort();
    for kind in ["kms-ecdh", "kms-rsa", "raw-ecdh-ephemeral", "raw-ecdh-static"] {
        assert!(
            seen.iter().any(|n| n.starts_with(kind)),
            "no {kind} seed in {seen:?}"
        );
    }
}

/// A keyring with no keys: the seeds' headers are read without one.
struct Headers;

#[envseal::async_trait]
impl envseal::Keyring for Headers {
    async fn on_encrypt(&self, _: &mut envseal::EncryptionMaterials) -> envseal::Result<()> {
        unreachable!("headers only")
    }

    async fn on_decrypt(
        &self,
        _: &envseal::DecryptionMaterials,
        _: &[envseal::EncryptedDataKey],
    ) -> envseal::Result<Option<envseal::DataKey>> {
        Ok(None)
    }
}

fn common_data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}
