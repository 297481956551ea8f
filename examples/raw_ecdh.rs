//! Raw ECDH key agreement (P-256 here; P-384 and P-521 alike): two parties
//! with static key pairs exchange messages either way; an anonymous sender
//! writes to a recipient's public key with a fresh key pair per message,
//! which only the recipient's private key opens.
//!
//! Run: `cargo run --release --example raw_ecdh`

use envseal::{blocking, Curve, EcdhPrivateKey, EcdhPublicKey, EncryptionContext, RawEcdhKeyring};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

// Demo keys; in production load your own (PKCS#8 private keys, public keys
// as PEM, DER SubjectPublicKeyInfo or SEC1 points).
const A_PRIVATE: &str = include_str!("../tests/data/ecdh-p256-a-private.pem");
const A_PUBLIC: &str = include_str!("../tests/data/ecdh-p256-a-public.pem");
const B_PRIVATE: &str = include_str!("../tests/data/ecdh-p256-b-private.pem");
const B_PUBLIC: &str = include_str!("../tests/data/ecdh-p256-b-public.pem");

const CURVE: Curve = Curve::P256;

fn private(pem: &str) -> Result<EcdhPrivateKey> {
    Ok(EcdhPrivateKey::from_pkcs8(CURVE, pem.as_bytes())?)
}

fn public(pem: &str) -> Result<EcdhPublicKey> {
    Ok(EcdhPublicKey::from_bytes(CURVE, pem.as_bytes())?)
}

fn main() -> Result<()> {
    let context = EncryptionContext::from([("purpose", "ecdh-demo")]);

    // 1. Static keys: A (its private key, B's public key) writes to B ...
    let a = blocking::Client::new(RawEcdhKeyring::static_keys(
        private(A_PRIVATE)?,
        public(B_PUBLIC)?,
    )?)?;
    let b = blocking::Client::new(RawEcdhKeyring::static_keys(
        private(B_PRIVATE)?,
        public(A_PUBLIC)?,
    )?)?;
    let to_b = a.encrypt(&context, b"from A to B")?;
    let read = b.decrypt(&context, &to_b)?.plaintext;
    assert_eq!(&read[..], b"from A to B");
    println!("static keys, A -> B: {:?}", String::from_utf8_lossy(&read));

    // ... and B answers A with the same pair of keys, the other way round.
    let to_a = b.encrypt(&context, b"from B to A")?;
    let read = a.decrypt(&context, &to_a)?.plaintext;
    assert_eq!(&read[..], b"from B to A");
    println!("static keys, B -> A: {:?}", String::from_utf8_lossy(&read));

    // 2. An anonymous sender holds only B's public key: a fresh key pair
    //    per message (it cannot decrypt what it wrote).
    let sender = blocking::Client::new(RawEcdhKeyring::ephemeral(public(B_PUBLIC)?))?;
    let anonymous = sender.encrypt(&context, b"to B, from anyone")?;
    assert!(sender.decrypt(&context, &anonymous).is_err());

    // 3. B reads whatever was sent to its public key, by any sender.
    let discovery = blocking::Client::new(RawEcdhKeyring::discovery(private(B_PRIVATE)?))?;
    for message in [&anonymous, &to_b] {
        let read = discovery.decrypt(&context, message)?.plaintext;
        println!("discovery by B: {:?}", String::from_utf8_lossy(&read));
    }
    assert_eq!(
        &discovery.decrypt(&context, &anonymous)?.plaintext[..],
        b"to B, from anyone"
    );
    Ok(())
}
