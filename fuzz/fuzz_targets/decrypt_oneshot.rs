//! One-shot decrypt with the vectors' raw AES key: never a panic; a success
//! returns only what the message authenticates.
//!
//! Through the public door, `blocking::Client::decrypt` of a client built
//! once in a static (there is no lower public layer).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let context = envseal::EncryptionContext::new();
    let _ = envseal_fuzz::blocking_client().decrypt(&context, data);
});
