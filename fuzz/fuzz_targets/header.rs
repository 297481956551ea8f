//! Header parsing: any bytes give a parsed header or an error, never a
//! panic, a hang or an allocation the input merely claims.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = envseal::Decryptor::new(data, envseal_fuzz::config()) {
        // Touch what the parser produced.
        let _ = d.suite();
        let _ = d.encryption_context().len();
        let _ = d.encrypted_data_keys().len();
    }
});
