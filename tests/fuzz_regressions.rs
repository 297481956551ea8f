//! Replays the inputs in `fuzz/regressions/` (crashes found by the fuzzer,
//! once fixed, and inputs worth keeping) through what the fuzz targets do:
//! header parsing, one-shot decrypt and streaming decrypt with the vectors'
//! raw AES-256 key. Each must end in Ok or Err, never a panic, and a
//! streaming decrypt never yields more plaintext than the input's length.

use std::io::Read;
use std::path::Path;

use envseal::{CommitmentPolicy, Config, Decryptor, EncryptionContext, RawAesKeyring, WrappingKey};

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
    let config = Config::builder()
        .commitment_policy(CommitmentPolicy::RequireEncryptAllowDecrypt)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let context = EncryptionContext::new();
    let mut decrypted = 0;
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let _ = Decryptor::new(&data[..], &config).map(|d| d.encrypted_data_keys().len());
        if rt
            .block_on(envseal::decrypt(&config, &keyring, &context, &data))
            .is_ok()
        {
            decrypted += 1;
        }
        if let Ok(d) = Decryptor::new(&data[..], &config) {
            if let Ok(mut r) = rt.block_on(d.allow_signed_streaming().decrypt(&keyring, &context)) {
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
