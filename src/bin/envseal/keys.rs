//! Key specs from the command line and the keyring built from them.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

use clap::ArgMatches;
use envseal::zeroize::Zeroizing;
#[cfg(feature = "kms")]
use envseal::{DiscoveryFilter, KmsDiscoveryKeyring, KmsKeyring};
use envseal::{
    Keyring, MultiKeyring, RawAesKeyring, RawRsaKeyring, RsaPrivateKey, RsaPublicKey, WrappingKey,
};

use crate::cli::{
    AesKeySpec, CommonArgs, EcdhSpec, HierarchyArgs, KmsArgs, KmsEcdhSpec, NewKeyArgs, RsaKeySpec,
};
#[cfg(not(all(feature = "kms", feature = "hierarchy")))]
use crate::error::Feature;
use crate::error::{bare, Failure};
use crate::keystore::KeyStore;
use crate::kms::KmsClient;

/// Largest key file read (AES keys are at most 32 bytes; PEM files are small).
pub(crate) const MAX_KEY_FILE: u64 = 1 << 20;

/// A keyring spec with its position on the command line.
pub(crate) enum KeySpec {
    Aes(AesKeySpec),
    Rsa(RsaKeySpec),
    /// A `--kms-key`; all of them form one keyring (see `build_keyring`).
    Kms,
    /// A `--branch-key-id`: a hierarchical keyring on the key store.
    Hierarchy(String),
    /// A `--raw-ecdh-*` key.
    Ecdh(EcdhScheme, EcdhSpec),
    /// The `--kms-rsa-key`.
    KmsRsa,
    /// A `--kms-ecdh-static` (true) or `--kms-ecdh-discovery` key.
    KmsEcdh(bool, KmsEcdhSpec),
}

/// Which `--raw-ecdh-*` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EcdhScheme {
    Static,
    Ephemeral,
    Discovery,
}

impl EcdhScheme {
    fn flag(self) -> &'static str {
        match self {
            EcdhScheme::Static => "--raw-ecdh-static",
            EcdhScheme::Ephemeral => "--raw-ecdh-ephemeral",
            EcdhScheme::Discovery => "--raw-ecdh-discovery",
        }
    }
}

/// The key specs in command-line order (clap collects each flag separately).
pub(crate) fn ordered_keys(common: &CommonArgs, m: &ArgMatches) -> Vec<KeySpec> {
    let aes_idx: Vec<usize> = m
        .indices_of("raw_aes_key")
        .map(Iterator::collect)
        .unwrap_or_default();
    let rsa_idx: Vec<usize> = m
        .indices_of("raw_rsa_key")
        .map(Iterator::collect)
        .unwrap_or_default();
    let mut all: Vec<(usize, KeySpec)> = Vec::new();
    for (i, spec) in common.raw_aes_key.iter().enumerate() {
        all.push((
            aes_idx.get(i).copied().unwrap_or(usize::MAX),
            KeySpec::Aes(spec.clone()),
        ));
    }
    for (i, spec) in common.raw_rsa_key.iter().enumerate() {
        all.push((
            rsa_idx.get(i).copied().unwrap_or(usize::MAX),
            KeySpec::Rsa(spec.clone()),
        ));
    }
    let kms_idx: Vec<usize> = m.indices_of("kms_key").map(Iterator::collect).unwrap_or_default();
    for i in 0..common.kms.kms_key.len() {
        all.push((kms_idx.get(i).copied().unwrap_or(usize::MAX), KeySpec::Kms));
    }
    for (id, scheme, specs) in [
        ("raw_ecdh_static", EcdhScheme::Static, &common.raw_ecdh_static),
        (
            "raw_ecdh_ephemeral",
            EcdhScheme::Ephemeral,
            &common.raw_ecdh_ephemeral,
        ),
        (
            "raw_ecdh_discovery",
            EcdhScheme::Discovery,
            &common.raw_ecdh_discovery,
        ),
    ] {
        let idx: Vec<usize> = m.indices_of(id).map(Iterator::collect).unwrap_or_default();
        for (i, spec) in specs.iter().enumerate() {
            all.push((
                idx.get(i).copied().unwrap_or(usize::MAX),
                KeySpec::Ecdh(scheme, spec.clone()),
            ));
        }
    }
    if common.kms.kms_rsa_key.is_some() {
        let idx = m.index_of("kms_rsa_key").unwrap_or(usize::MAX);
        all.push((idx, KeySpec::KmsRsa));
    }
    for (id, is_static, specs) in [
        ("kms_ecdh_static", true, &common.kms.kms_ecdh_static),
        ("kms_ecdh_discovery", false, &common.kms.kms_ecdh_discovery),
    ] {
        let idx: Vec<usize> = m.indices_of(id).map(Iterator::collect).unwrap_or_default();
        for (i, spec) in specs.iter().enumerate() {
            all.push((
                idx.get(i).copied().unwrap_or(usize::MAX),
                KeySpec::KmsEcdh(is_static, spec.clone()),
            ));
        }
    }
    let branch_idx: Vec<usize> = m
        .indices_of("branch_key_id")
        .map(Iterator::collect)
        .unwrap_or_default();
    for (i, id) in common.hierarchy.branch_key_id.iter().enumerate() {
        all.push((
            branch_idx.get(i).copied().unwrap_or(usize::MAX),
            KeySpec::Hierarchy(id.clone()),
        ));
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, s)| s).collect()
}

/// `reencrypt`'s --new-* key specs in command-line order.
pub(crate) fn ordered_new_keys(new: &NewKeyArgs, m: &ArgMatches) -> Vec<KeySpec> {
    let idx = |id: &str| -> Vec<usize> { m.indices_of(id).map(Iterator::collect).unwrap_or_default() };
    let at = |v: &[usize], i: usize| v.get(i).copied().unwrap_or(usize::MAX);
    let mut all: Vec<(usize, KeySpec)> = Vec::new();
    let aes = idx("new_raw_aes_key");
    all.extend(
        new.new_raw_aes_key
            .iter()
            .enumerate()
            .map(|(i, s)| (at(&aes, i), KeySpec::Aes(s.clone()))),
    );
    let rsa = idx("new_raw_rsa_key");
    all.extend(
        new.new_raw_rsa_key
            .iter()
            .enumerate()
            .map(|(i, s)| (at(&rsa, i), KeySpec::Rsa(s.clone()))),
    );
    let kms = idx("new_kms_key");
    all.extend((0..new.new_kms_key.len()).map(|i| (at(&kms, i), KeySpec::Kms)));
    for (id, scheme, specs) in [
        (
            "new_raw_ecdh_static",
            EcdhScheme::Static,
            &new.new_raw_ecdh_static,
        ),
        (
            "new_raw_ecdh_ephemeral",
            EcdhScheme::Ephemeral,
            &new.new_raw_ecdh_ephemeral,
        ),
    ] {
        let v = idx(id);
        all.extend(
            specs
                .iter()
                .enumerate()
                .map(|(i, s)| (at(&v, i), KeySpec::Ecdh(scheme, s.clone()))),
        );
    }
    if new.new_kms_rsa_key.is_some() {
        all.push((
            m.index_of("new_kms_rsa_key").unwrap_or(usize::MAX),
            KeySpec::KmsRsa,
        ));
    }
    let ecdh = idx("new_kms_ecdh_static");
    all.extend(
        new.new_kms_ecdh_static
            .iter()
            .enumerate()
            .map(|(i, s)| (at(&ecdh, i), KeySpec::KmsEcdh(true, s.clone()))),
    );
    let branch = idx("new_branch_key_id");
    all.extend(
        new.new_branch_key_id
            .iter()
            .enumerate()
            .map(|(i, id)| (at(&branch, i), KeySpec::Hierarchy(id.clone()))),
    );
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, s)| s).collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Encrypt,
    Decrypt,
}

pub(crate) fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let mut file = File::open(path)
        .map_err(|e| Failure::BadKey(format!("cannot open key file {}: {e}", path.display())))?;
    let too_large = || Failure::BadKey(format!("key file {} is too large", path.display()));
    // Sized up front and never grown: growing reallocates, leaving a copy
    // of the key bytes in freed memory. A regular file gets its size plus
    // one byte (to see that it ended); a pipe or device the largest size.
    let room = match file.metadata() {
        Ok(m) if m.is_file() && m.len() > MAX_KEY_FILE => return Err(too_large()),
        Ok(m) if m.is_file() => m.len(),
        _ => MAX_KEY_FILE,
    };
    let mut buf = Zeroizing::new(vec![0u8; room as usize + 1]);
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            // Larger than its size said (it grew), or than the limit.
            return Err(too_large());
        }
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Failure::BadKey(format!(
                    "cannot read key file {}: {e}",
                    path.display()
                )))
            }
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// The label of the first PEM block, e.g. `PUBLIC KEY`.
pub(crate) fn pem_label(pem: &str) -> Option<&str> {
    let start = pem.find("-----BEGIN ")? + "-----BEGIN ".len();
    let rest = &pem[start..];
    let end = rest.find("-----")?;
    Some(rest[..end].trim())
}

/// Where the keyrings' remote parts come from: the KMS client and the
/// branch key store, when the command line asks for them.
pub(crate) struct Remote<'a> {
    /// For keyrings that call KMS while they are made (KMS ECDH).
    #[cfg_attr(not(feature = "kms"), allow(dead_code))]
    pub(crate) runtime: &'a tokio::runtime::Runtime,
    pub(crate) kms: &'a KmsArgs,
    pub(crate) client: Option<&'a KmsClient>,
    pub(crate) hierarchy: &'a HierarchyArgs,
    pub(crate) store: Option<&'a KeyStore>,
}

pub(crate) fn build_keyring(
    specs: Vec<KeySpec>,
    mode: Mode,
    remote: &Remote<'_>,
) -> Result<MultiKeyring, Failure> {
    let (kms, client) = (remote.kms, remote.client);
    if specs.is_empty() && !kms.kms_discovery {
        return Err(Failure::Usage(
            "at least one key is required (--kms-key, --kms-discovery, --kms-rsa-key, --kms-ecdh-*, --branch-key-id, --raw-aes-key, --raw-rsa-key or --raw-ecdh-*)".into(),
        ));
    }
    #[cfg(feature = "hierarchy")]
    let branch_key_cache = envseal::BranchKeyCache::default();
    if kms.kms_discovery && mode == Mode::Encrypt {
        return Err(Failure::Usage(
            "--kms-discovery only decrypts; name the keys to encrypt with --kms-key".into(),
        ));
    }
    let mut keyrings: Vec<Arc<dyn Keyring>> = Vec::with_capacity(specs.len() + 1);
    #[cfg(feature = "kms")]
    let mut kms_placed = false;
    for spec in specs {
        match spec {
            #[cfg(not(feature = "kms"))]
            KeySpec::Kms => {
                let _ = client;
                return Err(Failure::NotBuilt(Feature::Kms));
            }
            #[cfg(feature = "kms")]
            // All --kms-key values form one keyring, at the first one's
            // place: one deadline for all the KMS work of an operation, and
            // the spec's check that no two are replicas of one MRK.
            KeySpec::Kms if kms_placed => {}
            #[cfg(feature = "kms")]
            KeySpec::Kms => {
                kms_placed = true;
                let client = client.ok_or_else(|| Failure::Internal("no KMS client".into()))?;
                let keyring = KmsKeyring::builder(client.clone(), kms.kms_key.iter().cloned())
                    .grant_tokens(kms.aws.grant_token.iter().cloned())
                    .build()
                    .map_err(|e| Failure::Usage(format!("--kms-key: {}", bare(&e))))?;
                keyrings.push(Arc::new(keyring));
            }
            #[cfg(not(feature = "hierarchy"))]
            KeySpec::Hierarchy(id) => {
                let _ = (id, remote.hierarchy, remote.store);
                return Err(Failure::NotBuilt(Feature::Hierarchy));
            }
            #[cfg(feature = "hierarchy")]
            KeySpec::Hierarchy(id) => {
                let store = remote
                    .store
                    .ok_or_else(|| Failure::Internal("no key store".into()))?;
                let ttl = std::time::Duration::from_secs(remote.hierarchy.branch_key_ttl_s);
                let keyring = envseal::HierarchyKeyring::builder(store.clone(), ttl)
                    .branch_key_id(id.clone())
                    .cache(branch_key_cache.clone())
                    .build()
                    .map_err(|e| Failure::Usage(format!("--branch-key-id {id}: {}", bare(&e))))?;
                keyrings.push(Arc::new(keyring));
            }
            KeySpec::Ecdh(scheme, spec) => keyrings.push(Arc::new(ecdh_keyring(scheme, &spec, mode)?)),
            #[cfg(not(feature = "kms"))]
            KeySpec::KmsRsa | KeySpec::KmsEcdh(..) => {
                if let KeySpec::KmsEcdh(is_static, spec) = &spec {
                    let _ = (is_static, &spec.curve, &spec.public_file, &spec.arn);
                }
                return Err(Failure::NotBuilt(Feature::Kms));
            }
            #[cfg(feature = "kms")]
            KeySpec::KmsRsa => keyrings.push(Arc::new(kms_rsa_keyring(kms, client, mode)?)),
            #[cfg(feature = "kms")]
            KeySpec::KmsEcdh(is_static, spec) => {
                keyrings.push(Arc::new(kms_ecdh_keyring(is_static, &spec, mode, remote)?))
            }
            KeySpec::Aes(s) => {
                let bytes = read_key_file(&s.file)?;
                let what = format!("--raw-aes-key {}:{}", s.namespace, s.name);
                let key = WrappingKey::new(bytes).map_err(|e| {
                    Failure::BadKey(format!("{what}: key file {}: {}", s.file.display(), bare(&e)))
                })?;
                let keyring = RawAesKeyring::new(s.namespace.clone(), s.name.clone(), key)
                    .map_err(|e| Failure::Usage(format!("{what}: {}", bare(&e))))?;
                keyrings.push(Arc::new(keyring));
            }
            KeySpec::Rsa(s) => {
                let bytes = read_key_file(&s.file)?;
                let what = format!("--raw-rsa-key {}:{}", s.namespace, s.name);
                let file = s.file.display();
                let pem = std::str::from_utf8(&bytes)
                    .map_err(|_| Failure::BadKey(format!("{what}: key file {file} is not a PEM file")))?;
                let label = pem_label(pem).unwrap_or("");
                let (public, private) = match mode {
                    Mode::Encrypt => {
                        if label.contains("PRIVATE KEY") {
                            return Err(Failure::BadKey(format!(
                                "{what}: key file {file} holds a private key; encrypting needs the RSA public key \
                                 (PEM \"PUBLIC KEY\"), which is never derived from the private key"
                            )));
                        }
                        let key = RsaPublicKey::from_pem(pem)
                            .map_err(|e| Failure::BadKey(format!("{what}: key file {file}: {}", bare(&e))))?;
                        (Some(key), None)
                    }
                    Mode::Decrypt => {
                        if label == "PUBLIC KEY" || label == "RSA PUBLIC KEY" {
                            return Err(Failure::BadKey(format!(
                                "{what}: key file {file} holds a public key; decrypting needs the RSA private key \
                                 (PKCS#8 PEM \"PRIVATE KEY\")"
                            )));
                        }
                        if label == "RSA PRIVATE KEY" {
                            return Err(Failure::BadKey(format!(
                                "{what}: key file {file} is a PKCS#1 \"RSA PRIVATE KEY\"; convert it to PKCS#8 \
                                 (openssl pkcs8 -topk8 -nocrypt)"
                            )));
                        }
                        let key = RsaPrivateKey::from_pem(pem)
                            .map_err(|e| Failure::BadKey(format!("{what}: key file {file}: {}", bare(&e))))?;
                        (None, Some(key))
                    }
                };
                let keyring =
                    RawRsaKeyring::new(s.namespace.clone(), s.name.clone(), s.padding, public, private)
                        .map_err(|e| Failure::Usage(format!("{what}: {}", bare(&e))))?;
                keyrings.push(Arc::new(keyring));
            }
        }
    }
    #[cfg(feature = "kms")]
    if kms.kms_discovery {
        let client = client.ok_or_else(|| Failure::Internal("no KMS client".into()))?;
        let mut keyring =
            KmsDiscoveryKeyring::builder(client.clone()).grant_tokens(kms.aws.grant_token.iter().cloned());
        if !kms.discovery_account.is_empty() {
            let partition = kms
                .discovery_partition
                .clone()
                .unwrap_or_else(|| "aws".to_owned());
            let filter = DiscoveryFilter::new(partition, kms.discovery_account.iter().cloned())
                .map_err(|e| Failure::Usage(bare(&e)))?;
            keyring = keyring.filter(filter);
        }
        let keyring = keyring
            .build()
            .map_err(|e| Failure::Usage(format!("--kms-discovery: {}", bare(&e))))?;
        keyrings.push(Arc::new(keyring));
    }
    MultiKeyring::from_keyrings(keyrings).map_err(|e| Failure::Usage(bare(&e)))
}

/// The `--kms-rsa-key` keyring.
#[cfg(feature = "kms")]
fn kms_rsa_keyring(
    kms: &KmsArgs,
    client: Option<&KmsClient>,
    mode: Mode,
) -> Result<envseal::KmsRsaKeyring, Failure> {
    let client = client.ok_or_else(|| Failure::Internal("no KMS client".into()))?;
    let arn = kms.kms_rsa_key.as_deref().unwrap_or_default();
    let padding = match kms.kms_rsa_padding.as_deref() {
        Some("oaep-sha1") => envseal::RsaPadding::OaepSha1,
        _ => envseal::RsaPadding::OaepSha256,
    };
    let public = match (&kms.kms_rsa_public_key, mode) {
        (Some(path), _) => {
            let bytes = read_key_file(path)?;
            let what = format!("--kms-rsa-public-key: key file {}", path.display());
            let pem = std::str::from_utf8(&bytes).map_err(|_| Failure::BadKey(format!("{what} is not a PEM file")))?;
            Some(envseal::RsaPublicKey::from_pem(pem).map_err(|e| Failure::BadKey(format!("{what}: {}", bare(&e))))?)
        }
        (None, Mode::Encrypt) => {
            return Err(Failure::Usage(
                "--kms-rsa-key needs --kms-rsa-public-key to encrypt (the key's PEM public key, from KMS GetPublicKey)".into(),
            ))
        }
        (None, Mode::Decrypt) => None,
    };
    let mut builder = envseal::KmsRsaKeyring::builder(client.clone(), arn, padding)
        .grant_tokens(kms.aws.grant_token.iter().cloned());
    if let Some(public) = public {
        builder = builder.public_key(public);
    }
    builder
        .build()
        .map_err(|e| Failure::Usage(format!("--kms-rsa-key: {}", bare(&e))))
}

/// A `--kms-ecdh-*` keyring (its GetPublicKey call runs here).
#[cfg(feature = "kms")]
fn kms_ecdh_keyring(
    is_static: bool,
    spec: &KmsEcdhSpec,
    mode: Mode,
    remote: &Remote<'_>,
) -> Result<envseal::KmsEcdhKeyring, Failure> {
    let client = remote
        .client
        .ok_or_else(|| Failure::Internal("no KMS client".into()))?;
    let flag = if is_static {
        "--kms-ecdh-static"
    } else {
        "--kms-ecdh-discovery"
    };
    if !is_static && mode == Mode::Encrypt {
        return Err(Failure::Usage(format!(
            "{flag} only decrypts; encrypt with --kms-ecdh-static"
        )));
    }
    let builder = envseal::KmsEcdhKeyring::builder(client.clone())
        .grant_tokens(remote.kms.aws.grant_token.iter().cloned());
    let keyring = match &spec.public_file {
        Some(path) if is_static => {
            let public = envseal::EcdhPublicKey::from_bytes(spec.curve, &read_key_file(path)?)
                .map_err(|e| Failure::BadKey(format!("{flag}: key file {}: {e}", path.display())))?;
            remote
                .runtime
                .block_on(builder.static_keys(&spec.arn, public).build())
        }
        _ => remote
            .runtime
            .block_on(builder.discovery(spec.curve, &spec.arn).build()),
    };
    let keyring = keyring.map_err(|e| match e {
        envseal::Error::Config { .. } => Failure::Usage(format!("{flag}: {}", bare(&e))),
        other => Failure::of(&other, format!("{flag}: {other}")),
    })?;
    Ok(keyring)
}

/// A raw ECDH keyring from its option; a key of the wrong curve or kind
/// is one line naming the file.
fn ecdh_keyring(scheme: EcdhScheme, spec: &EcdhSpec, mode: Mode) -> Result<envseal::RawEcdhKeyring, Failure> {
    let flag = scheme.flag();
    match (scheme, mode) {
        (EcdhScheme::Ephemeral, Mode::Decrypt) => {
            return Err(Failure::Usage(format!(
                "{flag} only encrypts; decrypt with --raw-ecdh-discovery and the recipient's private key"
            )))
        }
        (EcdhScheme::Discovery, Mode::Encrypt) => {
            return Err(Failure::Usage(format!(
                "{flag} only decrypts; encrypt with --raw-ecdh-static or --raw-ecdh-ephemeral"
            )))
        }
        _ => {}
    }
    let curve = spec.curve;
    let file_error = |path: &Path, e: envseal::EcdhKeyError| {
        Failure::BadKey(format!("{flag}: key file {}: {e}", path.display()))
    };
    let private = |path: &Path| {
        envseal::EcdhPrivateKey::from_pkcs8(curve, &read_key_file(path)?).map_err(|e| file_error(path, e))
    };
    let public = |path: &Path| {
        envseal::EcdhPublicKey::from_bytes(curve, &read_key_file(path)?).map_err(|e| file_error(path, e))
    };
    Ok(match scheme {
        EcdhScheme::Static => {
            let keyring =
                envseal::RawEcdhKeyring::static_keys(private(&spec.files[0])?, public(&spec.files[1])?);
            keyring.map_err(|e| Failure::Usage(format!("{flag}: {}", bare(&e))))?
        }
        EcdhScheme::Ephemeral => envseal::RawEcdhKeyring::ephemeral(public(&spec.files[0])?),
        EcdhScheme::Discovery => envseal::RawEcdhKeyring::discovery(private(&spec.files[0])?),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_files_are_read_into_a_buffer_sized_up_front() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 100, 8191, 8192, 20_000, 1 << 20] {
            let path = dir.path().join(format!("key-{len}"));
            std::fs::write(&path, vec![b'k'; len]).unwrap();
            let Ok(buf) = super::read_key_file(&path) else {
                panic!("reading a {len}-byte key file failed");
            };
            assert_eq!(buf.len(), len);
            // Sized from the file, never grown: a buffer that grows is
            // reallocated and leaves a copy of the key in freed memory.
            assert!(
                buf.capacity() <= len + 1,
                "{len} bytes read into a buffer of capacity {}: not sized from the file",
                buf.capacity()
            );
        }
        let path = dir.path().join("too-large");
        std::fs::write(&path, vec![b'k'; (1 << 20) + 1]).unwrap();
        assert!(super::read_key_file(&path).is_err());
    }
}
