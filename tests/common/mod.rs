//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

#[cfg(feature = "kms")]
pub mod fake_kms;
#[cfg(feature = "kms")]
pub mod fault;
#[cfg(feature = "kms")]
pub mod loopback;
#[cfg(feature = "kms")]
pub mod moto;
#[cfg(feature = "kms")]
pub mod stand_in;

use envseal::{
    Backend, CommitmentPolicy, Config, Keyring, RawAesKeyring, RawRsaKeyring, RsaPadding, RsaPrivateKey,
    RsaPublicKey, WrappingKey,
};

pub const RSA_PRIVATE_PEM: &str = include_str!("../data/rsa-4096-private.pem");
pub const RSA_PUBLIC_PEM: &str = include_str!("../data/rsa-4096-public.pem");
/// A second 4096-bit key: same size as the first, so a message for one
/// fails the other's RSA padding check, not a length check.
pub const RSA_B_PRIVATE_PEM: &str = include_str!("../data/rsa-4096-b-private.pem");
pub const RSA_B_PUBLIC_PEM: &str = include_str!("../data/rsa-4096-b-public.pem");

pub fn aes(ns: &str, name: &str, key: &[u8]) -> Arc<dyn Keyring> {
    Arc::new(RawAesKeyring::new(ns, name, WrappingKey::from_slice(key).unwrap()).unwrap())
}

/// The RSA paddings this build's raw RSA keyring takes: all of them,
/// except in the FIPS build, which refuses PKCS#1 v1.5 key transport
/// (`Error::Fips`; tests/fips.rs checks the refusal).
pub const RSA_PADDINGS: &[RsaPadding] = if cfg!(feature = "fips") {
    &[
        RsaPadding::OaepSha1,
        RsaPadding::OaepSha256,
        RsaPadding::OaepSha384,
        RsaPadding::OaepSha512,
    ]
} else {
    &[
        RsaPadding::Pkcs1,
        RsaPadding::OaepSha1,
        RsaPadding::OaepSha256,
        RsaPadding::OaepSha384,
        RsaPadding::OaepSha512,
    ]
};

/// PKCS#1 v1.5 where the build takes it, else OAEP-SHA256.
pub const PKCS1_OR_OAEP: RsaPadding = if cfg!(feature = "fips") {
    RsaPadding::OaepSha256
} else {
    RsaPadding::Pkcs1
};

pub fn rsa(backend: Backend, ns: &str, name: &str, padding: RsaPadding) -> Arc<dyn Keyring> {
    Arc::new(
        RawRsaKeyring::new(
            ns,
            name,
            padding,
            Some(RsaPublicKey::from_pem_with(backend, RSA_PUBLIC_PEM).unwrap()),
            Some(RsaPrivateKey::from_pem_with(backend, RSA_PRIVATE_PEM).unwrap()),
        )
        .unwrap(),
    )
}

/// A config that encrypts with `suite` (choosing a policy that allows it)
/// and lets signed messages stream (the streaming checks read them).
pub fn config_for(suite: envseal::AlgorithmSuite, frame_length: u32, backend: Backend) -> Config {
    let policy = if suite.is_committing() {
        CommitmentPolicy::RequireEncryptAllowDecrypt
    } else {
        CommitmentPolicy::ForbidEncryptAllowDecrypt
    };
    Config::builder()
        .commitment_policy(policy)
        .suite(suite)
        .frame_length(frame_length)
        .backend(backend)
        .allow_signed_streaming(true)
        .build()
        .unwrap()
}

/// `suite` under the strictest policy that allows it: require-require for
/// committing suites, forbid-allow for the others.
pub fn strict_config(suite: envseal::AlgorithmSuite) -> Config {
    let policy = if suite.is_committing() {
        CommitmentPolicy::RequireEncryptRequireDecrypt
    } else {
        CommitmentPolicy::ForbidEncryptAllowDecrypt
    };
    Config::builder()
        .commitment_policy(policy)
        .suite(suite)
        .build()
        .unwrap()
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The Python reference ESDK's interpreter: `ENVSEAL_PYTHON` (set by
/// scripts/test) or `.venv/bin/python`. Without it a test fails; it never
/// skips silently.
pub fn python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("ENVSEAL_PYTHON") {
        return std::path::PathBuf::from(p);
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.exists(),
        "the Python reference ESDK is needed: run scripts/test (it installs it) or set ENVSEAL_PYTHON"
    );
    venv
}

/// Runs jobs (argument lists) of a reference CLI in tests/interop/ (batch
/// mode: one Python process) with `env` set; each job's stdout, or its
/// one-line error.
pub fn reference(
    script: &str,
    dir: &std::path::Path,
    jobs: &[Vec<String>],
    env: &[(&str, &str)],
) -> Vec<Result<String, String>> {
    let job_file = dir.join(format!("jobs-{script}-{}.json", jobs.len()));
    std::fs::write(&job_file, serde_json::to_vec(jobs).unwrap()).unwrap();
    let out = std::process::Command::new(python())
        .arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/interop")
                .join(script),
        )
        .arg("batch")
        .arg(&job_file)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .envs(env.iter().copied())
        .output()
        .expect("run the Python reference");
    assert!(
        out.status.success(),
        "{script} batch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("batch output is JSON");
    assert_eq!(results.len(), jobs.len());
    results
        .into_iter()
        .map(|r| match r["ok"].as_bool() {
            Some(true) => Ok(r["stdout"].as_str().unwrap_or("").trim().to_owned()),
            _ => Err(r["error"].as_str().unwrap_or("?").to_owned()),
        })
        .collect()
}

/// A path in tests/data.
pub fn data_path(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A runtime for tests that drive the async [`envseal::Client`] from sync
/// code.
pub struct Runtime(tokio::runtime::Runtime);

impl Runtime {
    pub fn new() -> envseal::Result<Self> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(Runtime)
            .map_err(envseal::Error::Io)
    }

    pub fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        self.0.block_on(fut)
    }
}

/// A keyring a test client can own: an `Arc` of one (cloned when
/// borrowed), or a cheaply cloned keyring by reference.
pub trait IntoRing {
    fn into_ring(self) -> Arc<dyn Keyring>;
}

impl IntoRing for Arc<dyn Keyring> {
    fn into_ring(self) -> Arc<dyn Keyring> {
        self
    }
}

impl IntoRing for &Arc<dyn Keyring> {
    fn into_ring(self) -> Arc<dyn Keyring> {
        Arc::clone(self)
    }
}

impl<K: Keyring + 'static> IntoRing for Arc<K> {
    fn into_ring(self) -> Arc<dyn Keyring> {
        self
    }
}

impl<K: Keyring + 'static> IntoRing for &Arc<K> {
    fn into_ring(self) -> Arc<dyn Keyring> {
        Arc::clone(self) as Arc<dyn Keyring>
    }
}

/// Keyrings that are cheap to clone, taken by reference.
pub trait Cloned: Keyring + Clone + 'static {}
impl Cloned for RawRsaKeyring {}
impl Cloned for envseal::MultiKeyring {}
impl Cloned for Edks {}
#[cfg(feature = "kms")]
impl Cloned for envseal::KmsKeyring {}
#[cfg(feature = "kms")]
impl Cloned for envseal::KmsDiscoveryKeyring {}
#[cfg(feature = "kms")]
impl Cloned for envseal::KmsRsaKeyring {}

impl<K: Cloned> IntoRing for &K {
    fn into_ring(self) -> Arc<dyn Keyring> {
        Arc::new(self.clone())
    }
}

/// The blocking client over `keyring` under `config` (no cache).
pub fn client(config: &Config, keyring: impl IntoRing) -> envseal::blocking::Client {
    envseal::blocking::Client::builder_shared(keyring.into_ring())
        .config(config.clone())
        .build()
        .expect("a client without a cache builds")
}

/// The async client over `keyring` under `config` (no cache).
pub fn async_client(config: &Config, keyring: impl IntoRing) -> envseal::Client {
    envseal::Client::builder_shared(keyring.into_ring())
        .config(config.clone())
        .build()
        .expect("a client without a cache builds")
}

/// A client with no keys (its keyring decrypts nothing), for reading
/// headers under `config`.
pub fn header_client(config: &Config) -> envseal::blocking::Client {
    client(config, &Edks(Vec::new()))
}

/// The header of `input` read and parsed under `config`, before any key is
/// used (`decryptor` of a keyless client).
pub fn parse<R: std::io::Read>(
    config: &Config,
    input: R,
) -> envseal::Result<envseal::blocking::Decryptor<R>> {
    header_client(config).decryptor(input)
}

/// Streaming decrypt of `message` with `client` (signed suites need its
/// config to allow them) and an empty context; the plaintext, or the error
/// and how many bytes were released before it.
pub fn stream(
    client: &envseal::blocking::Client,
    message: &[u8],
) -> Result<Vec<u8>, (envseal::Error, usize)> {
    let mut r = client
        .decrypt_stream(&envseal::EncryptionContext::new(), message)
        .map_err(|e| (e, 0))?;
    let mut out = Vec::new();
    match std::io::Read::read_to_end(&mut r, &mut out) {
        Ok(_) if r.is_complete() => Ok(out),
        Ok(_) => Err((envseal::Error::Poisoned, out.len())),
        Err(e) => Err((envseal::Error::from_io(e), out.len())),
    }
}

/// A keyring that writes the given EDKs (after making the data key when it
/// is the generator) and decrypts nothing: the EDKs of a foreign or
/// hostile writer in an otherwise valid message.
#[derive(Clone)]
pub struct Edks(pub Vec<envseal::EncryptedDataKey>);

impl Edks {
    /// One EDK of `provider_id` with `provider_info` and `len` junk
    /// ciphertext bytes.
    pub fn junk(provider_id: &str, provider_info: &[u8], len: usize) -> Self {
        Edks(vec![envseal::EncryptedDataKey {
            provider_id: provider_id.into(),
            provider_info: provider_info.to_vec(),
            ciphertext: vec![7; len],
        }])
    }
}

#[envseal::async_trait]
impl Keyring for Edks {
    async fn on_encrypt(&self, m: &mut envseal::EncryptionMaterials) -> envseal::Result<()> {
        if m.data_key().is_none() {
            m.generate_data_key()?;
        }
        for edk in &self.0 {
            m.add_encrypted_data_key(edk.clone());
        }
        Ok(())
    }

    async fn on_decrypt(
        &self,
        _: &envseal::DecryptionMaterials,
        _: &[envseal::EncryptedDataKey],
    ) -> envseal::Result<Option<envseal::DataKey>> {
        Ok(None)
    }
}

/// Runs jobs of tests/interop/hierarchy_ref.py (the Python Material
/// Providers Library's key store) in one process against this moto, in
/// us-east-1 with test credentials and no shared AWS files; each job's
/// stdout, or its error.
#[cfg(feature = "kms")]
pub fn hierarchy_reference(dir: &std::path::Path, jobs: &[Vec<String>]) -> Vec<Result<String, String>> {
    let url = moto::moto().url.clone();
    let none = dir.join("none").display().to_string();
    reference(
        "hierarchy_ref.py",
        dir,
        jobs,
        &[
            ("AWS_ENDPOINT_URL_KMS", &url),
            ("AWS_ENDPOINT_URL_DYNAMODB", &url),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", &none),
            ("AWS_SHARED_CREDENTIALS_FILE", &none),
        ],
    )
}
