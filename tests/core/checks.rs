//! Every cryptographic check fails the same way: a wrong data key, a wrong
//! key commitment, a bad header tag, a bad frame tag and a bad signature all
//! give `Error::Decrypt`, with the same Display and Debug, so neither the
//! error nor its text tells an attacker which check stopped the message.
//! (The commitment is compared in constant time; tags and signatures are
//! checked inside aws-lc / RustCrypto.)

use envseal::{
    AlgorithmSuite, CommitmentPolicy, Config, EncryptionContext, Error, RawAesKeyring, WrappingKey,
};

fn keyring(byte: u8) -> RawAesKeyring {
    RawAesKeyring::new("checks", "key", WrappingKey::from_slice(&[byte; 32]).unwrap()).unwrap()
}

/// The client under `suite` with the key made of `byte`s.
fn client(suite: AlgorithmSuite, byte: u8) -> envseal::blocking::Client {
    envseal::blocking::Client::builder(keyring(byte))
        .config(config(suite))
        .build()
        .unwrap()
}

fn config(suite: AlgorithmSuite) -> Config {
    Config::builder()
        .commitment_policy(CommitmentPolicy::RequireEncryptRequireDecrypt)
        .suite(suite)
        .frame_length(100)
        .build()
        .unwrap()
}

#[test]
fn every_failed_check_reads_the_same() {
    let context = EncryptionContext::new();
    let plaintext = vec![5u8; 250];
    let run = |suite, key: u8, message: &[u8]| client(suite, key).decrypt(&context, message);
    let unsigned = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
    let signed = AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384;
    let message = client(unsigned, 1).encrypt(&context, &plaintext).unwrap();
    let signed_message = client(signed, 1).encrypt(&context, &plaintext).unwrap();
    assert_eq!(*run(unsigned, 1, &message).unwrap().plaintext, plaintext);

    // Content type 2 + frame length 100 end the header body; the 32-byte
    // commitment, the 16-byte header tag and the first frame follow.
    let at = message.windows(5).position(|w| w == [2, 0, 0, 0, 100]).unwrap() + 5;
    let flip = |m: &[u8], i: usize| {
        let mut m = m.to_vec();
        m[i] ^= 0x01;
        m
    };
    let first_frame_tag = at + 32 + 16 + 4 + 12 + 100;
    let cases: Vec<(&str, Result<envseal::Decrypted, Error>)> = vec![
        ("wrong data key", run(unsigned, 2, &message)),
        ("key commitment", run(unsigned, 1, &flip(&message, at))),
        ("header tag", run(unsigned, 1, &flip(&message, at + 32))),
        ("frame tag", run(unsigned, 1, &flip(&message, first_frame_tag))),
        (
            "signature",
            run(signed, 1, &flip(&signed_message, signed_message.len() - 1)),
        ),
    ];
    for (check, result) in cases {
        let err = result.err().unwrap_or_else(|| panic!("{check}: decrypted"));
        assert!(matches!(err, Error::Decrypt), "{check}: {err:?}");
        assert_eq!(err.to_string(), "authentication failed", "{check}");
        assert_eq!(format!("{err:?}"), "Decrypt", "{check}");
    }
}
