//! `blocking::Client::reencryptor`: a message decrypted under one keyring
//! and encrypted under another as one stream, keeping its suite, frame
//! length and context unless asked otherwise.

use crate::common;

use common::{aes, bytes, client, config_for};
use envseal::{
    AlgorithmSuite, Backend, CommitmentPolicy, Config, ContentType, EncryptionContext, Error,
    ReencryptOptions, PUBLIC_KEY_FIELD,
};

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs.iter().copied().collect()
}

const SIGNED: AlgorithmSuite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384;
const UNSIGNED: AlgorithmSuite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;

/// Old key 1, new key 2: both clients, old under `config`.
fn clients(config: &Config) -> (envseal::blocking::Client, envseal::blocking::Client) {
    let old = client(config, aes("ns", "old", &[1; 32]));
    let new = client(config, aes("ns", "new", &[2; 32]));
    (old, new)
}

fn reencrypt(
    new: &envseal::blocking::Client,
    old: &envseal::blocking::Client,
    context: &EncryptionContext,
    message: &[u8],
    options: &ReencryptOptions,
) -> envseal::Result<Vec<u8>> {
    new.reencryptor(old, context, message, options)?
        .reencrypt_into(Vec::new())
}

#[test]
fn keeps_suite_frame_length_and_context_under_the_new_key_only() {
    for (suite, frame, len) in [
        (SIGNED, 4096, 10_000),
        (UNSIGNED, 65536, 300_000),
        (UNSIGNED, 0, 5_000),
    ] {
        let config = config_for(suite, frame, Backend::default());
        let (old, new) = clients(&config);
        let plaintext = bytes(len, 7);
        let context = ctx(&[("tenant", "acme"), ("purpose", "test")]);
        let message = old.encrypt(&context, &plaintext).unwrap();
        let out = reencrypt(
            &new,
            &old,
            &EncryptionContext::new(),
            &message,
            &ReencryptOptions::default(),
        )
        .unwrap();
        // Under the new key only.
        assert!(matches!(
            old.decrypt(&EncryptionContext::new(), &out),
            Err(Error::NoMatchingKey { .. })
        ));
        let got = new.decrypt(&context, &out).unwrap();
        assert_eq!(&got.plaintext[..], &plaintext[..]);
        let header = common::parse(&config, &out[..]).unwrap();
        assert_eq!(header.suite(), suite);
        let want_type = if frame == 0 {
            ContentType::NonFramed
        } else {
            ContentType::Framed
        };
        assert_eq!(header.content_type(), want_type);
        if frame != 0 {
            assert_eq!(header.frame_length(), frame);
        }
        // The context is carried; a signed suite's public key is the new
        // message's own, not the old one's.
        let stored = header.encryption_context();
        assert_eq!(stored.get("tenant"), Some("acme"));
        assert_eq!(stored.get("purpose"), Some("test"));
        let old_header = common::parse(&config, &message[..]).unwrap();
        match suite.is_signed() {
            true => assert_ne!(
                stored.get(PUBLIC_KEY_FIELD),
                old_header.encryption_context().get(PUBLIC_KEY_FIELD)
            ),
            false => assert_eq!(stored.len(), 2),
        }
    }
}

#[test]
fn options_change_suite_frame_and_add_pairs() {
    let config = config_for(SIGNED, 4096, Backend::default());
    let (old, new) = clients(&config);
    let plaintext = bytes(50_000, 3);
    let message = old.encrypt(&ctx(&[("a", "1")]), &plaintext).unwrap();
    let options = ReencryptOptions::builder()
        .suite(UNSIGNED)
        .frame_length(1024)
        .add_context(ctx(&[("b", "2"), ("a", "1")]))
        .build()
        .unwrap();
    let r = new
        .reencryptor(&old, &EncryptionContext::new(), &message[..], &options)
        .unwrap();
    assert_eq!(r.old_suite(), SIGNED);
    assert!(r.old_encryption_context().contains_key(PUBLIC_KEY_FIELD));
    assert_eq!(r.encryption_context(), &ctx(&[("a", "1"), ("b", "2")]));
    let out = r.reencrypt_into(Vec::new()).unwrap();
    let header = common::parse(&config, &out[..]).unwrap();
    assert_eq!((header.suite(), header.frame_length()), (UNSIGNED, 1024));
    assert_eq!(header.encryption_context(), &ctx(&[("a", "1"), ("b", "2")]));
    assert_eq!(
        &new.decrypt(&ctx(&[("b", "2")]), &out).unwrap().plaintext[..],
        &plaintext[..]
    );

    // A pair can be added, not changed; reserved keys are not added.
    let change = ReencryptOptions::builder()
        .add_context(ctx(&[("a", "9")]))
        .build()
        .unwrap();
    let err = new
        .reencryptor(&old, &EncryptionContext::new(), &message[..], &change)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Config { .. }) && err.to_string().contains("\"a\""),
        "{err}"
    );
    let reserved = ReencryptOptions::builder()
        .add_context(ctx(&[("aws-crypto-x", "1")]))
        .build();
    assert!(matches!(reserved, Err(Error::Config { .. })));

    // The new client's policy decides: a non-committing suite under
    // require-encrypt is refused, naming the policy.
    let strict = Config::builder()
        .commitment_policy(CommitmentPolicy::RequireEncryptAllowDecrypt)
        .build()
        .unwrap();
    let new_strict = client(&strict, aes("ns", "new", &[2; 32]));
    let legacy = ReencryptOptions::builder()
        .suite(AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha256)
        .build()
        .unwrap();
    let err = new_strict
        .reencryptor(&old, &EncryptionContext::new(), &message[..], &legacy)
        .unwrap_err();
    assert!(matches!(err, Error::Policy(_)), "{err}");
}

#[test]
fn reproduced_pairs_stay_unstored_and_required() {
    let config = config_for(UNSIGNED, 4096, Backend::default());
    let required = Config::builder()
        .commitment_policy(CommitmentPolicy::RequireEncryptAllowDecrypt)
        .suite(UNSIGNED)
        .required_encryption_context_keys(["secret"])
        .build()
        .unwrap();
    let old = client(&required, aes("ns", "old", &[1; 32]));
    let new = client(&config, aes("ns", "new", &[2; 32]));
    let context = ctx(&[("tenant", "acme"), ("secret", "s3")]);
    let message = old.encrypt(&context, b"pii").unwrap();
    // The old message needs its unstored pair to be read at all.
    let err = new
        .reencryptor(
            &old,
            &EncryptionContext::new(),
            &message[..],
            &ReencryptOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Policy(envseal::PolicyError::RequiredContextKey(ref k)) if k == "secret"),
        "{err:?}"
    );
    let out = reencrypt(
        &new,
        &old,
        &ctx(&[("secret", "s3")]),
        &message,
        &ReencryptOptions::default(),
    )
    .unwrap();
    let header = common::parse(&config, &out[..]).unwrap();
    assert_eq!(
        header.encryption_context(),
        &ctx(&[("tenant", "acme")]),
        "still unstored"
    );
    assert!(
        new.decrypt(&EncryptionContext::new(), &out).is_err(),
        "still required"
    );
    let got = new.decrypt(&ctx(&[("secret", "s3")]), &out).unwrap();
    assert_eq!(&got.plaintext[..], b"pii");
}

#[test]
fn a_tampered_message_fails_and_the_output_holds_no_plaintext() {
    for suite in [SIGNED, UNSIGNED] {
        let config = config_for(suite, 4096, Backend::default());
        let (old, new) = clients(&config);
        let plaintext = vec![0x5a; 40_000];
        let mut message = old.encrypt(&EncryptionContext::new(), &plaintext).unwrap();
        // A bit in the last regular frame: every frame before it streams
        // into the new message before the failure.
        let at = message.len() - 2_000;
        message[at] ^= 1;
        let mut out = Vec::new();
        let err = new
            .reencryptor(
                &old,
                &EncryptionContext::new(),
                &message[..],
                &ReencryptOptions::default(),
            )
            .unwrap()
            .reencrypt_into(&mut out)
            .unwrap_err();
        assert!(matches!(err, Error::Decrypt), "{suite:?}: {err}");
        // What was written is ciphertext under the new key, never a run of
        // the plaintext's bytes.
        assert!(
            !out.windows(64).any(|w| w.iter().all(|b| *b == 0x5a)),
            "{suite:?}"
        );
        assert!(new.decrypt(&EncryptionContext::new(), &out).is_err());
    }
}

#[test]
fn signed_old_messages_need_signed_streaming_on_the_reading_client() {
    let writer = config_for(SIGNED, 4096, Backend::default());
    let old = client(&writer, aes("ns", "old", &[1; 32]));
    let message = old.encrypt(&EncryptionContext::new(), b"x").unwrap();
    let no_streaming = Config::builder().build().unwrap();
    let old_reader = client(&no_streaming, aes("ns", "old", &[1; 32]));
    let new = client(&no_streaming, aes("ns", "new", &[2; 32]));
    let err = new
        .reencryptor(
            &old_reader,
            &EncryptionContext::new(),
            &message[..],
            &ReencryptOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::Policy(_)), "{err}");
}

/// A legacy message (no key commitment) moved under a require-encrypt
/// policy: with no suite asked for, the new message takes the committing
/// suite of the same kind (signed stays signed); asked for, the legacy
/// suite is refused before the old data key is unwrapped.
#[test]
fn legacy_messages_move_to_committing_suites() {
    let legacy = config_for(
        AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha384EcdsaP384,
        4096,
        Backend::default(),
    );
    let old = client(&legacy, aes("ns", "old", &[1; 32]));
    let message = old.encrypt(&ctx(&[("t", "1")]), b"legacy").unwrap();
    let policy = Config::builder()
        .commitment_policy(CommitmentPolicy::RequireEncryptAllowDecrypt)
        .allow_signed_streaming(true)
        .build()
        .unwrap();
    let (old, new) = clients(&policy);
    let out = reencrypt(
        &new,
        &old,
        &EncryptionContext::new(),
        &message,
        &ReencryptOptions::default(),
    )
    .unwrap();
    let header = common::parse(&policy, &out[..]).unwrap();
    assert_eq!(header.suite(), SIGNED);
    assert_eq!(
        &new.decrypt(&ctx(&[("t", "1")]), &out).unwrap().plaintext[..],
        b"legacy"
    );
    let keep_legacy = ReencryptOptions::builder()
        .suite(AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha384EcdsaP384)
        .build()
        .unwrap();
    let err = new
        .reencryptor(&old, &EncryptionContext::new(), &message[..], &keep_legacy)
        .unwrap_err();
    assert!(
        matches!(err, Error::Policy(envseal::PolicyError::CommitmentPolicy { .. })),
        "{err}"
    );
}
