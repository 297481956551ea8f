//! Raw RSA wrapping keys: encrypt with the public key alone, decrypt with the
//! private key, and a message for two recipients (RSA and AES) that either
//! key opens.
//!
//! Run: `cargo run --release --example raw_rsa`

use std::sync::Arc;

use envseal::{
    blocking, EncryptionContext, Keyring, MultiKeyring, RawAesKeyring, RawRsaKeyring, RsaPadding,
    RsaPrivateKey, RsaPublicKey, WrappingKey,
};

// Demo keys; in production load your own PEM files.
const PUBLIC_PEM: &str = include_str!("../tests/data/rsa-4096-public.pem");
const PRIVATE_PEM: &str = include_str!("../tests/data/rsa-4096-private.pem");

/// The sender's keyring: the public key only, so it can encrypt but never decrypt.
fn sender() -> Result<RawRsaKeyring, envseal::Error> {
    RawRsaKeyring::new(
        "envseal-demo",
        "rsa-key-1",
        RsaPadding::OaepSha256,
        Some(RsaPublicKey::from_pem(PUBLIC_PEM)?),
        None,
    )
}

fn main() -> Result<(), envseal::Error> {
    let context = EncryptionContext::from([("purpose", "rsa-demo")]);

    // 1. The sender holds only the public key.
    let message = blocking::Client::new(sender()?)?.encrypt(&context, b"for the key holder")?;

    // 2. The recipient decrypts with the private key.
    let recipient = RawRsaKeyring::new(
        "envseal-demo",
        "rsa-key-1",
        RsaPadding::OaepSha256,
        None,
        Some(RsaPrivateKey::from_pem(PRIVATE_PEM)?),
    )?;
    let recipient = Arc::new(recipient);
    let client = blocking::Client::builder_shared(recipient.clone()).build()?;
    let plaintext = client.decrypt(&context, &message)?.plaintext;
    println!(
        "RSA: {} byte message -> {:?}",
        message.len(),
        String::from_utf8_lossy(&plaintext)
    );

    // 3. Two recipients: the AES key generates the data key, RSA wraps it
    //    too; each key alone decrypts the message.
    let aes: Arc<dyn Keyring> = Arc::new(RawAesKeyring::new(
        "envseal-demo",
        "aes-key-1",
        WrappingKey::from_slice(&[3u8; 32])?,
    )?);
    let both = MultiKeyring::from_keyrings(vec![aes.clone(), Arc::new(sender()?)])?;
    let message = blocking::Client::new(both)?.encrypt(&context, b"for either key")?;
    for (name, keyring) in [("AES", aes), ("RSA", recipient as Arc<dyn Keyring>)] {
        let plaintext = blocking::Client::builder_shared(keyring)
            .build()?
            .decrypt(&context, &message)?
            .plaintext;
        println!(
            "two recipients, opened with {name}: {:?}",
            String::from_utf8_lossy(&plaintext)
        );
    }
    Ok(())
}
