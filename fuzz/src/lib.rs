//! Shared setup for the fuzz targets: the raw AES-256 key of the ESDK test
//! vectors (so the vector ciphertexts in the seed corpus decrypt and the
//! fuzzer starts past the header), one runtime, the default config.

use std::sync::OnceLock;

use envseal::{Config, RawAesKeyring, WrappingKey};

/// `aes-256` from tests/vectors/keys.json.
pub const VECTOR_AES_256: [u8; 32] = [
    157, 35, 223, 107, 148, 199, 152, 30, 125, 212, 17, 221, 98, 3, 133, 156, 115, 119, 24, 85, 235, 60, 105,
    170, 69, 142, 153, 178, 228, 70, 119, 9,
];

/// The vectors' raw AES keyring (namespace and name as in their manifests).
pub fn keyring() -> &'static RawAesKeyring {
    static K: OnceLock<RawAesKeyring> = OnceLock::new();
    K.get_or_init(|| {
        RawAesKeyring::new(
            "aws-raw-vectors-persistant",
            "aes-256",
            WrappingKey::from_slice(&VECTOR_AES_256).expect("valid key"),
        )
        .expect("valid keyring")
    })
}

/// Decrypt config: the defaults, except that every committing and
/// non-committing suite is accepted (the vectors hold both).
pub fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| {
        Config::builder()
            .commitment_policy(envseal::CommitmentPolicy::RequireEncryptAllowDecrypt)
            .build()
            .expect("valid config")
    })
}

/// One current-thread runtime for the async API.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static R: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    R.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    })
}
