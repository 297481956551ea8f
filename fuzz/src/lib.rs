//! Shared setup for the fuzz targets: the raw AES-256 key of the ESDK test
//! vectors (so the vector ciphertexts in the seed corpus decrypt and the
//! fuzzer starts past the header), one runtime, the default config.

use std::sync::OnceLock;

use std::sync::Arc;

use envseal::{
    blocking, Client, Config, Curve, EcdhPrivateKey, Keyring, MultiKeyring, RawAesKeyring, RawEcdhKeyring,
    WrappingKey,
};

/// `aes-256` from tests/vectors/keys.json.
pub const VECTOR_AES_256: [u8; 32] = [
    157, 35, 223, 107, 148, 199, 152, 30, 125, 212, 17, 221, 98, 3, 133, 156, 115, 119, 24, 85, 235, 60, 105,
    170, 69, 142, 153, 178, 228, 70, 119, 9,
];

/// The vectors' raw AES keyring (namespace and name as in their manifests),
/// shared by the clients the `structured` target makes per case.
pub fn keyring() -> &'static Arc<dyn Keyring> {
    static K: OnceLock<Arc<dyn Keyring>> = OnceLock::new();
    K.get_or_init(|| {
        Arc::new(
            RawAesKeyring::new(
                "aws-raw-vectors-persistant",
                "aes-256",
                WrappingKey::from_slice(&VECTOR_AES_256).expect("valid key"),
            )
            .expect("valid keyring"),
        )
    })
}

/// The decrypting client over std I/O: the vectors' raw AES key, then raw
/// ECDH discovery for the `b` key of each curve in tests/data (the seeds
/// in fuzz/seeds hold raw ECDH messages to them), so the fuzzer reaches
/// the ECDH unwrap too; under [`config`] with signed streaming allowed.
/// Built once: every target goes through the public door.
pub fn blocking_client() -> &'static blocking::Client {
    static C: OnceLock<blocking::Client> = OnceLock::new();
    C.get_or_init(|| {
        blocking::Client::builder(new_decrypt_keyring())
            .config(signed_streaming(0))
            .build()
            .expect("valid client")
    })
}

/// The async twin of [`blocking_client`] under [`config`] (the
/// `structured` target's one-shot decrypt).
pub fn decrypt_client() -> &'static Client {
    static C: OnceLock<Client> = OnceLock::new();
    C.get_or_init(|| {
        Client::builder(new_decrypt_keyring())
            .config(config().clone())
            .build()
            .expect("valid client")
    })
}

/// [`config`] with signed streaming allowed and `threads`.
fn signed_streaming(threads: usize) -> Config {
    Config::builder()
        .commitment_policy(envseal::CommitmentPolicy::RequireEncryptAllowDecrypt)
        .allow_signed_streaming(true)
        .threads(threads)
        .build()
        .expect("valid config")
}

/// The decrypting keyring (a client owns its keyring).
fn new_decrypt_keyring() -> MultiKeyring {
    let ecdh = |curve, pem: &[u8]| -> Arc<dyn Keyring> {
        Arc::new(RawEcdhKeyring::discovery(
            EcdhPrivateKey::from_pkcs8(curve, pem).expect("valid key"),
        ))
    };
    let aes: Arc<dyn Keyring> = Arc::new(
        RawAesKeyring::new(
            "aws-raw-vectors-persistant",
            "aes-256",
            WrappingKey::from_slice(&VECTOR_AES_256).expect("valid key"),
        )
        .expect("valid keyring"),
    );
    MultiKeyring::from_keyrings(vec![
        aes,
        ecdh(
            Curve::P256,
            include_bytes!("../../tests/data/ecdh-p256-b-private.pem"),
        ),
        ecdh(
            Curve::P384,
            include_bytes!("../../tests/data/ecdh-p384-b-private.pem"),
        ),
        ecdh(
            Curve::P521,
            include_bytes!("../../tests/data/ecdh-p521-b-private.pem"),
        ),
    ])
    .expect("valid keyring")
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

/// Async clients over the decrypting keyring under [`config`] with signed
/// streaming allowed (as [`blocking_client`]): index 0 with the default threads (batches
/// open on the rayon pool while the task waits to be woken), index 1 with
/// `threads(1)` (every batch on the runtime's thread).
pub fn async_clients() -> &'static [Client; 2] {
    static C: OnceLock<[Client; 2]> = OnceLock::new();
    C.get_or_init(|| {
        let client = |threads| {
            Client::builder(new_decrypt_keyring())
                .config(signed_streaming(threads))
                .build()
                .expect("valid client")
        };
        [client(0), client(1)]
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
