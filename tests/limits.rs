//! Hostile-input limits, with memory measured by a counting global
//! allocator: every case fails with a clear error that names the limit or
//! field, and allocates a small bounded amount whatever the input claims.
//!
//! One test function runs every case in turn, so the allocator's counts
//! belong to the case being measured (libtest runs nothing else here).

use std::alloc::System;

use envseal::{
    AlgorithmSuite, Client, CommitmentPolicy, Config, EncryptionContext, Error, FormatError, LimitError,
    RawAesKeyring, WrappingKey,
};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated (a bound on the peak) while `f` runs.
fn allocated<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let region = Region::new(GLOBAL);
    let out = f();
    let change = region.change();
    let grown = usize::try_from(change.bytes_reallocated.max(0)).unwrap_or(0);
    (out, change.bytes_allocated + grown)
}

const KIB: usize = 1024;

fn keyring() -> RawAesKeyring {
    RawAesKeyring::new("limits", "key", WrappingKey::from_slice(&[0x42; 32]).unwrap()).unwrap()
}

/// The client under `config`: made before a measured region, so the
/// counts are the decrypt's alone.
fn client(config: &Config) -> Client {
    Client::builder(keyring()).config(config.clone()).build().unwrap()
}

/// Its blocking twin, for header parsing (std I/O).
fn blocking(config: &Config) -> envseal::blocking::Client {
    envseal::blocking::Client::builder(keyring())
        .config(config.clone())
        .build()
        .unwrap()
}

fn config() -> Config {
    Config::builder()
        .commitment_policy(CommitmentPolicy::RequireEncryptRequireDecrypt)
        .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
        .frame_length(100)
        .build()
        .unwrap()
}

/// A v2 header prefix: version, suite 0x0478, a 32-byte message id.
fn v2_prefix() -> Vec<u8> {
    let mut h = vec![0x02, 0x04, 0x78];
    h.extend_from_slice(&[0xAB; 32]);
    h
}

fn xorshift(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn hostile_inputs_fail_clearly_with_bounded_memory() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let context = EncryptionContext::new();
    let decrypt = |client: &Client, message: &[u8]| -> Result<Vec<u8>, Error> {
        rt.block_on(client.decrypt(&context, message))
            .map(|d| d.plaintext.to_vec())
    };
    let default = client(&config());
    let parser = blocking(&config());
    let plaintext: Vec<u8> = (0..250u32).map(|i| i as u8).collect();
    let message = rt.block_on(default.encrypt(&context, &plaintext)).unwrap();
    // The counter counts: a real decrypt allocates (keys, buffers, output).
    let (result, bytes) = allocated(|| decrypt(&default, &message));
    assert_eq!(result.unwrap(), plaintext);
    assert!(bytes > 250, "the counting allocator saw only {bytes} bytes");
    eprintln!("valid decrypt: {bytes} bytes allocated");

    // 1. A header claiming 65,535 encrypted data keys, with a few bytes.
    let mut many_edks = v2_prefix();
    many_edks.extend_from_slice(&[0x00, 0x00, 0xFF, 0xFF, 0x00, 0x05, b'a']);
    let (result, bytes) = allocated(|| parser.decryptor(&many_edks[..]).map(|_| ()));
    match result {
        Err(Error::Format(FormatError::Truncated(field))) => {
            assert!(field.contains("key provider"), "{field}")
        }
        other => panic!("65,535 EDKs: {other:?}"),
    }
    assert!(bytes < 16 * KIB, "65,535 EDKs allocated {bytes} bytes");
    let limited = Config::builder().max_encrypted_data_keys(16).build().unwrap();
    let limited = blocking(&limited);
    let (result, bytes) = allocated(|| limited.decryptor(&many_edks[..]).map(|_| ()));
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit(LimitError::TooManyEncryptedDataKeys {
                found: 65_535,
                max: 16
            })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("max_encrypted_data_keys"), "{err}");
    assert!(bytes < 16 * KIB, "EDK limit allocated {bytes} bytes");

    // 2. A frame length of 4 GiB - 1 in an otherwise real message.
    let at = message
        .windows(5)
        .position(|w| w == [0x02, 0x00, 0x00, 0x00, 100])
        .expect("content type + frame length 100");
    let mut huge_frames = message.clone();
    huge_frames[at + 1..at + 5].copy_from_slice(&u32::MAX.to_be_bytes());
    let (result, bytes) = allocated(|| decrypt(&default, &huge_frames));
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit(LimitError::FrameTooLarge {
                found: 4_294_967_295,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("max_frame_length"), "{err}");
    assert!(bytes < 64 * KIB, "4 GiB frame length allocated {bytes} bytes");

    // 3. An encryption context whose length runs past the end.
    let mut long_context = v2_prefix();
    long_context.extend_from_slice(&[0xFF, 0xFF, 0x00, 0x01, 0x00, 0x03, b'k', b'e', b'y']);
    let (result, bytes) = allocated(|| parser.decryptor(&long_context[..]).map(|_| ()));
    match result {
        Err(Error::Format(FormatError::Truncated(field))) => assert!(field.contains("context"), "{field}"),
        other => panic!("context past the end: {other:?}"),
    }
    assert!(bytes < 16 * KIB, "context past the end allocated {bytes} bytes");

    // 4. An unknown suite.
    let mut unknown = vec![0x02, 0x12, 0x34];
    unknown.extend_from_slice(&[0; 64]);
    let (result, _) = allocated(|| parser.decryptor(&unknown[..]).map(|_| ()));
    let err = result.unwrap_err();
    assert!(
        matches!(err, Error::Format(FormatError::UnknownSuite(0x1234))),
        "{err:?}"
    );
    assert!(err.to_string().contains("0x1234"), "{err}");

    // 5. The message truncated at every offset.
    let mut worst = 0;
    for len in 0..message.len() {
        let (result, bytes) = allocated(|| decrypt(&default, &message[..len]));
        assert!(result.is_err(), "truncated to {len} bytes decrypted");
        worst = worst.max(bytes);
    }
    assert!(worst < 64 * KIB, "a truncation allocated {worst} bytes");
    eprintln!("{} truncations: at most {worst} bytes allocated", message.len());

    // 6. Random garbage, with and without a valid-looking start.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut worst = 0;
    for i in 0..4000 {
        let len = (xorshift(&mut seed) % 2048) as usize;
        let mut input: Vec<u8> = (0..len).map(|_| xorshift(&mut seed) as u8).collect();
        if i % 2 == 0 && input.len() > 3 {
            input[..3].copy_from_slice(&[0x02, 0x04, 0x78]);
        }
        let (result, bytes) = allocated(|| decrypt(&default, &input));
        assert!(result.is_err(), "garbage {i} decrypted");
        worst = worst.max(bytes);
    }
    assert!(worst < 64 * KIB, "garbage allocated {worst} bytes");
    eprintln!("4000 garbage inputs: at most {worst} bytes allocated");

    // 7. One-shot decrypt refuses a body larger than max_body_size.
    let big: Vec<u8> = vec![7; 100 * KIB];
    let big_message = rt.block_on(default.encrypt(&context, &big)).unwrap();
    let small_body = Config::builder().max_body_size(10_000).build().unwrap();
    let small_body = client(&small_body);
    let (result, bytes) = allocated(|| decrypt(&small_body, &big_message));
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit(LimitError::BodyTooLarge {
                found: 102_400,
                max: 10_000
            })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("max_body_size"), "{err}");
    assert!(bytes < 64 * KIB, "body limit allocated {bytes} bytes");

    // 8. A header larger than max_header_size.
    let tiny_header = Config::builder().max_header_size(64).build().unwrap();
    let tiny_header = client(&tiny_header);
    let (result, _) = allocated(|| decrypt(&tiny_header, &message));
    let err = result.unwrap_err();
    assert!(
        matches!(err, Error::Limit(LimitError::HeaderTooLarge { max: 64 })),
        "{err:?}"
    );
    assert!(err.to_string().contains("max_header_size"), "{err}");
}
