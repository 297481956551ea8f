//! Encrypts and decrypts a batch of records with a local raw AES key: the
//! main job of envseal, no AWS account needed.
//!
//! Run: `cargo run --release --example records`

use std::time::Instant;

use envseal::blocking::Blocking;
use envseal::{AlgorithmSuite, Config, EncryptionContext, RawAesKeyring, WrappingKey};

fn main() -> Result<(), envseal::Error> {
    // An embedded demo key. In production the wrapping key comes from a
    // secret store, or you use a KMS keyring instead.
    let key = WrappingKey::from_slice(b"envseal demo key: 32 bytes long!")?;
    let keyring = RawAesKeyring::new("envseal-demo", "demo-key-1", key)?;
    let envseal = Blocking::new()?;

    // Default: AES-256-GCM with key commitment and an ECDSA P-384 signature.
    // The unsigned committing suite is the fast choice for records.
    let configs = [
        ("default (0x0578, signed)", Config::default()),
        (
            "records (0x0478, unsigned)",
            Config::builder()
                .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
                .build()?,
        ),
    ];

    let records: Vec<String> = (0..1000)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"email\":\"user{i}@example.com\",\"balance\":{}}}",
                i * 37 % 10_000
            )
        })
        .collect();

    for (label, config) in &configs {
        let start = Instant::now();
        let mut sealed = Vec::with_capacity(records.len());
        let mut bytes_out = 0;
        for (i, record) in records.iter().enumerate() {
            let context: EncryptionContext = [("table", "customers"), ("row", &i.to_string())]
                .into_iter()
                .collect();
            let message = envseal.encrypt(config, &keyring, &context, record.as_bytes())?;
            bytes_out += message.len();
            sealed.push((context, message));
        }
        let encrypt_time = start.elapsed();

        let start = Instant::now();
        for ((context, message), record) in sealed.iter().zip(&records) {
            // The caller's context must match what the message carries.
            let decrypted = envseal.decrypt(config, &keyring, context, message)?;
            assert_eq!(*decrypted.plaintext, record.as_bytes());
        }
        let decrypt_time = start.elapsed();

        let first = &sealed[0].1;
        println!("{label}:");
        println!(
            "  encrypted {} records ({} bytes of plaintext -> {} bytes of ESDK messages)",
            records.len(),
            records.iter().map(String::len).sum::<usize>(),
            bytes_out
        );
        println!(
            "  first message: {} bytes, header version 0x{:02x}, suite 0x{:02x}{:02x}",
            first.len(),
            first[0],
            first[1],
            first[2]
        );
        println!(
            "  encrypt {:.1} us/record, decrypt+verify {:.1} us/record, all {} round trips exact",
            encrypt_time.as_secs_f64() * 1e6 / records.len() as f64,
            decrypt_time.as_secs_f64() * 1e6 / records.len() as f64,
            records.len()
        );
    }

    // Tampering is detected: flip one bit in a message.
    let (context, message) = {
        let config = &configs[1].1;
        let context: EncryptionContext = [("table", "customers")].into_iter().collect();
        (
            context.clone(),
            envseal.encrypt(config, &keyring, &context, b"balance=100")?,
        )
    };
    let mut tampered = message.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    match envseal.decrypt(&configs[1].1, &keyring, &context, &tampered) {
        Err(e) => println!("tampered message rejected: {e}"),
        Ok(_) => unreachable!("a tampered message must not decrypt"),
    }
    Ok(())
}
