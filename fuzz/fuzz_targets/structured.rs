//! Structure-aware: a real message (valid header under the real key, a
//! fuzzer-chosen suite, frame length and plaintext), then fuzzer-chosen
//! mutations of its frames, counts and lengths. Decrypting the result must
//! never panic, and a decrypt that succeeds must return exactly the
//! original plaintext: anything else is a forgery.
//!
//! Through the public door: an async `Client` per case (the fuzzer picks
//! its config) to encrypt, and one built once in a static to decrypt (the
//! lower layer is not public).
#![no_main]

use arbitrary::Arbitrary;
use envseal::{AlgorithmSuite, CommitmentPolicy, Config, EncryptionContext};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Mutation {
    /// Flip bits of one byte.
    Flip { at: u16, mask: u8 },
    /// Overwrite a big-endian u32 (a frame number or length field).
    SetU32 { at: u16, value: u32 },
    /// Overwrite a big-endian u16 (a count or a length prefix).
    SetU16 { at: u16, value: u16 },
    /// Cut the message.
    Truncate { at: u16 },
    /// Remove a range (drops a frame or a field).
    Remove { at: u16, len: u8 },
    /// Duplicate a range (repeats a frame).
    Duplicate { at: u16, len: u8 },
    /// Append bytes.
    Append { bytes: Vec<u8> },
}

#[derive(Arbitrary, Debug)]
struct Case {
    suite: u8,
    frame_length: u16,
    plaintext: Vec<u8>,
    context: Vec<(String, String)>,
    mutations: Vec<Mutation>,
}

const SUITES: [AlgorithmSuite; 3] = [
    AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
    AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
    AlgorithmSuite::Aes128GcmIv12Tag16HkdfSha256,
];

fn apply(message: &mut Vec<u8>, m: &Mutation) {
    let len = message.len();
    if len == 0 {
        return;
    }
    let pos = |at: u16| usize::from(at) % len;
    match *m {
        Mutation::Flip { at, mask } => message[pos(at)] ^= mask.max(1),
        Mutation::SetU32 { at, value } => {
            let p = pos(at);
            for (i, b) in value.to_be_bytes().iter().enumerate() {
                if let Some(slot) = message.get_mut(p + i) {
                    *slot = *b;
                }
            }
        }
        Mutation::SetU16 { at, value } => {
            let p = pos(at);
            for (i, b) in value.to_be_bytes().iter().enumerate() {
                if let Some(slot) = message.get_mut(p + i) {
                    *slot = *b;
                }
            }
        }
        Mutation::Truncate { at } => message.truncate(pos(at)),
        Mutation::Remove { at, len: n } => {
            let p = pos(at);
            let end = (p + usize::from(n)).min(len);
            message.drain(p..end);
        }
        Mutation::Duplicate { at, len: n } => {
            let p = pos(at);
            let end = (p + usize::from(n)).min(len);
            let copy = message[p..end].to_vec();
            message.splice(end..end, copy);
        }
        Mutation::Append { ref bytes } => message.extend_from_slice(bytes),
    }
}

fuzz_target!(|case: Case| {
    let suite = SUITES[usize::from(case.suite) % SUITES.len()];
    let policy = if suite.is_committing() {
        CommitmentPolicy::RequireEncryptAllowDecrypt
    } else {
        CommitmentPolicy::ForbidEncryptAllowDecrypt
    };
    let Ok(config) = Config::builder()
        .commitment_policy(policy)
        .suite(suite)
        .frame_length(u32::from(case.frame_length % 512) + 1)
        .build()
    else {
        return;
    };
    let mut context = EncryptionContext::new();
    for (k, v) in case.context.iter().take(4) {
        if !k.starts_with("aws-crypto-") {
            context.insert(k.clone(), v.clone());
        }
    }
    let plaintext = &case.plaintext[..case.plaintext.len().min(4096)];
    let rt = envseal_fuzz::runtime();
    // A client per case (its config is the fuzzer's), over the shared key.
    let Ok(client) = envseal::Client::builder_shared(envseal_fuzz::keyring().clone())
        .config(config)
        .build()
    else {
        return;
    };
    let Ok(mut message) = rt.block_on(client.encrypt(&context, plaintext)) else {
        return;
    };
    let original = message.clone();
    for m in case.mutations.iter().take(8) {
        apply(&mut message, m);
    }
    if let Ok(out) = rt.block_on(envseal_fuzz::decrypt_client().decrypt(&EncryptionContext::new(), &message))
    {
        assert_eq!(
            *out.plaintext, plaintext,
            "a mutated message decrypted to other plaintext"
        );
        // Changes that authenticate must not exist, except bytes the
        // format does not bind (none in a well-formed message).
        assert_eq!(message, original, "a changed message was accepted");
    }
});
