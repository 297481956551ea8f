//! Rotates the wrapping key of stored messages: each is decrypted under
//! the old key and encrypted under the new one in one stream, keeping its
//! suite, frame length and encryption context. The plaintext never lands
//! anywhere: it goes from the old message's reader into the new message's
//! batches. The new message is written to a temporary file and renamed
//! over the old one only once it is complete.
//!
//! Run: `cargo run --release --example reencrypt`.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};

use envseal::{
    blocking, AlgorithmSuite, Config, EncryptionContext, Error, RawAesKeyring, ReencryptOptions, WrappingKey,
};

fn main() -> Result<(), Error> {
    let dir = std::env::temp_dir().join(format!("envseal-reencrypt-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = Config::builder()
        .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
        .build()?;
    let client_for = |name: &str, key: u8| -> Result<blocking::Client, Error> {
        let keyring = RawAesKeyring::new("envseal-demo", name, WrappingKey::from_slice(&[key; 32])?)?;
        blocking::Client::builder(keyring).config(config.clone()).build()
    };
    let old = client_for("key-2024", 1)?;
    let new = client_for("key-2025", 2)?;

    // 1. A stored message under the old key.
    let context = EncryptionContext::from([("tenant", "acme")]);
    let plaintext: Vec<u8> = (0..1_000_000u32).flat_map(u32::to_le_bytes).collect();
    let stored = dir.join("record.esdk");
    std::fs::write(&stored, old.encrypt(&context, &plaintext)?)?;

    // 2. Re-encrypt it under the new key, into a temporary file beside it;
    //    the same suite, frame length and context, plus one pair.
    let options = ReencryptOptions::builder()
        .add_context(EncryptionContext::from([("rotated", "2025")]))
        .build()?;
    let reencryptor = new.reencryptor(
        &old,
        &EncryptionContext::new(),
        BufReader::new(File::open(&stored)?),
        &options,
    )?;
    println!(
        "suite {:?}, context {:?}",
        reencryptor.old_suite(),
        reencryptor.encryption_context()
    );
    let temporary = dir.join("record.esdk.tmp");
    let mut out = reencryptor.reencrypt_into(BufWriter::new(File::create(&temporary)?))?;
    out.flush()?;
    out.get_ref().sync_all()?;
    std::fs::rename(&temporary, &stored)?;

    // 3. Only the new key reads it now, and the context came along.
    let message = std::fs::read(&stored)?;
    assert!(old.decrypt(&context, &message).is_err());
    let decrypted = new.decrypt(&context, &message)?;
    assert_eq!(&decrypted.plaintext[..], &plaintext[..]);
    assert_eq!(decrypted.encryption_context.get("rotated"), Some("2025"));
    println!("{} bytes re-encrypted under key-2025", plaintext.len());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
