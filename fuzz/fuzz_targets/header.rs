//! Header parsing: any bytes give a parsed header or an error, never a
//! panic, a hang or an allocation the input merely claims.
//!
//! Through the public door, `blocking::Client::decryptor` of a client built
//! once in a static: the header parser under it is not public, and the
//! door reaches all of it (no keyring is called).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = envseal_fuzz::blocking_client().decryptor(data) {
        // Touch what the parser produced.
        let _ = d.suite();
        let _ = d.encryption_context().len();
        let _ = d.encrypted_data_keys().len();
    }
});
