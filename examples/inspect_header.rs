//! Look at a message's header before any key is used: its suite, the
//! encryption context it stores and who its data keys are wrapped for,
//! then decide whether to decrypt it. `client.decryptor(reader)` reads and
//! parses the header only (limits and the commitment policy enforced, no
//! keyring called); its `decrypt(context)` then runs the keyring. Nothing
//! the header shows is authenticated until that succeeds: use it to route
//! or refuse a message, never to trust it.
//!
//! Run: `cargo run --release --example inspect_header`

use std::io::{Read, Write};

use envseal::{blocking, AlgorithmSuite, Config, EncryptionContext, RawAesKeyring, WrappingKey};

/// The namespace this service's keys live under: a message wrapped for
/// anyone else is refused before a key is touched.
const NAMESPACE: &str = "billing";

fn keyring(name: &str) -> Result<RawAesKeyring, envseal::Error> {
    // Demo key; in production load it from a secret store.
    RawAesKeyring::new(NAMESPACE, name, WrappingKey::from_slice(&[9u8; 32])?)
}

fn main() -> Result<(), envseal::Error> {
    let config = Config::builder()
        .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
        .build()?;
    let client = blocking::Client::builder(keyring("key-1")?)
        .config(config)
        .build()?;

    let context = EncryptionContext::from([("tenant", "acme"), ("purpose", "invoice")]);
    let record: &[u8] = b"invoice 42: 1,000 EUR";

    // 0. The encrypt side, two phases: materials and header first (its
    //    length declared, a bound the writer enforces), then the body.
    let encryptor = client.encryptor(&context, Some(record.len() as u64))?;
    println!(
        "writing a {} byte header (suite {}) before any body byte",
        encryptor.header().len(),
        encryptor.suite().name()
    );
    let mut writer = encryptor
        .into_writer(Vec::new())
        .map_err(envseal::Error::from_io)?;
    writer.write_all(record).map_err(envseal::Error::from_io)?;
    let message = writer.finish().map_err(envseal::Error::from_io)?;

    // 1. The header alone: no keyring has run yet.
    let decryptor = client.decryptor(&message[..])?;
    println!(
        "suite 0x{:04X} ({}), frame length {}, {} data key(s)",
        decryptor.suite().id(),
        decryptor.suite().name(),
        decryptor.frame_length(),
        decryptor.encrypted_data_keys().len()
    );
    for (key, value) in decryptor.encryption_context().iter() {
        println!("  stored context {key}={value}");
    }
    for edk in decryptor.encrypted_data_keys() {
        println!(
            "  data key for provider {:?} ({} byte info)",
            edk.provider_id,
            edk.provider_info.len()
        );
    }

    // 2. Decide from the header: only unsigned suites, only our namespace,
    //    only the tenant we serve.
    let ours = decryptor
        .encrypted_data_keys()
        .iter()
        .any(|edk| edk.provider_id == NAMESPACE);
    let tenant = decryptor.encryption_context().get("tenant");
    if decryptor.suite().is_signed() || !ours || tenant != Some("acme") {
        return Err(envseal::Error::Misuse("refused before any key was used".into()));
    }

    // 3. Decrypt: the keyring runs now, and the header is authenticated
    //    before the first byte of plaintext comes out.
    let mut reader = decryptor.decrypt(&EncryptionContext::from([("tenant", "acme")]))?;
    let mut plaintext = Vec::new();
    reader
        .read_to_end(&mut plaintext)
        .map_err(envseal::Error::from_io)?;
    assert_eq!(plaintext, record);
    println!("decrypted {} bytes", plaintext.len());

    // A message wrapped for another namespace is refused from its header,
    // without a keyring call.
    let other = blocking::Client::new(RawAesKeyring::new(
        "payroll",
        "key-1",
        WrappingKey::from_slice(&[5u8; 32])?,
    )?)?;
    let foreign = other.encrypt(&context, b"not for billing")?;
    let header = client.decryptor(&foreign[..])?;
    let refused = !header
        .encrypted_data_keys()
        .iter()
        .any(|edk| edk.provider_id == NAMESPACE);
    assert!(refused);
    println!("a message for \"payroll\" refused from its header alone");
    Ok(())
}
