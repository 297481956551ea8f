//! One-shot decrypt with the vectors' raw AES key: never a panic; a success
//! returns only what the message authenticates.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let context = envseal::EncryptionContext::new();
    let rt = envseal_fuzz::runtime();
    let _ = rt.block_on(envseal::decrypt(
        envseal_fuzz::config(),
        envseal_fuzz::decrypt_keyring(),
        &context,
        data,
    ));
});
