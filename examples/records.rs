//! The main job: encrypt and decrypt a batch of records with one client and
//! a data-key cache, under a local raw AES key (no AWS account needed).
//!
//! Run: `cargo run --release --no-default-features --features aws-lc --example records`

use std::time::{Duration, Instant};

use envseal::{
    blocking, AlgorithmSuite, CacheLimits, Config, EncryptionContext, MaterialsCache, RawAesKeyring,
    WrappingKey,
};

fn main() -> Result<(), envseal::Error> {
    // 1. A keyring. The demo key is embedded; in production the wrapping key
    //    comes from a secret store, or a KMS keyring (envseal::kms) wraps.
    let key = WrappingKey::from_slice(b"envseal demo key: 32 bytes long!")?;
    let keyring = RawAesKeyring::new("envseal-demo", "demo-key-1", key)?;

    // 2. One client for the whole service: the unsigned committing suite
    //    (the fast choice for records) and a cache that lets one data key
    //    serve up to 1,000 records for 5 minutes.
    let config = Config::builder()
        .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
        .build()?;
    let limits = CacheLimits::builder(Duration::from_secs(300))
        .max_messages(1000)
        .build()?;
    let client = blocking::Client::builder(keyring)
        .config(config)
        .cache(MaterialsCache::new(100)?, limits)
        .build()?;

    let records: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"email\":\"user{i}@example.com\",\"balance\":{}}}",
                i * 37 % 10_000
            )
        })
        .collect();
    // The encryption context binds each record to its table; decrypt must
    // reproduce it.
    let context = EncryptionContext::from([("table", "customers")]);

    // 3. Encrypt every record into its own ESDK message (a loop that does
    //    not keep the messages reuses one buffer with `encrypt_into`).
    let start = Instant::now();
    let mut sealed = Vec::with_capacity(records.len());
    for record in &records {
        sealed.push(client.encrypt(&context, record.as_bytes())?);
    }
    let encrypt_time = start.elapsed();

    // 4. Decrypt and check each one.
    let start = Instant::now();
    for (message, record) in sealed.iter().zip(&records) {
        let decrypted = client.decrypt(&context, message)?;
        assert_eq!(&decrypted.plaintext[..], record.as_bytes());
    }
    let decrypt_time = start.elapsed();

    let stats = client.cache_stats().unwrap_or_default();
    let per = |d: Duration| d.as_secs_f64() * 1e6 / records.len() as f64;
    println!(
        "{} records: encrypt {:.1} us/record, decrypt+verify {:.1} us/record, all round trips exact",
        records.len(),
        per(encrypt_time),
        per(decrypt_time)
    );
    println!(
        "data-key cache: {} hits, {} misses (keyring calls), {} entries",
        stats.hits, stats.misses, stats.entries
    );

    // 5. Tampering is detected: flip one bit of a message.
    let mut tampered = sealed[0].clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    match client.decrypt(&context, &tampered) {
        Err(e) => println!("tampered message rejected: {e}"),
        Ok(_) => unreachable!("a tampered message must not decrypt"),
    }

    // 6. A required context key: every message must carry `tenant`, which
    //    is authenticated but not stored (a few bytes less per record), so
    //    the reader supplies it and a wrong tenant fails authentication.
    let config = Config::builder()
        .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
        .required_encryption_context_keys(["tenant"])
        .build()?;
    let key = WrappingKey::from_slice(b"envseal demo key: 32 bytes long!")?;
    let tenants = blocking::Client::builder(RawAesKeyring::new("envseal-demo", "demo-key-1", key)?)
        .config(config)
        .build()?;
    let acme = EncryptionContext::from([("table", "customers"), ("tenant", "acme")]);
    let message = tenants.encrypt(&acme, records[0].as_bytes())?;
    let stored = tenants
        .decryptor(&message[..])?
        .encryption_context()
        .get("tenant")
        .is_some();
    assert!(!stored, "a required key is not stored");
    let back = tenants.decrypt(&EncryptionContext::from([("tenant", "acme")]), &message)?;
    assert_eq!(&back.plaintext[..], records[0].as_bytes());
    let other = EncryptionContext::from([("tenant", "globex")]);
    assert!(tenants.decrypt(&other, &message).is_err());
    println!("required context: tenant authenticated, not stored, wrong tenant refused");
    Ok(())
}
