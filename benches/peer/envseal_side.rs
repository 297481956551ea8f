//! envseal's side of the peer benchmark: the keyring, context and configs,
//! and every call into envseal that `benches/peer/benches/peer.rs` times.
//!
//! Two crates compile this file (`#[path]`): the peer benchmark
//! (benches/peer, a workspace of its own so that the main build never
//! compiles aws-esdk), and the main crate's `throughput` bench, so that
//! `cargo test --benches` (scripts/test) type-checks it against envseal's
//! current API on every run and round-trips a message through each call
//! (see `peer_envseal_check` there). The aws-esdk side stays in
//! benches/peer only.

use envseal::zeroize::Zeroizing;
use envseal::{
    AlgorithmSuite, Client, CommitmentPolicy, Config, DecryptInfo, EncryptionContext, RawAesKeyring,
    WrappingKey,
};
use tokio::runtime::Runtime;

/// The raw AES wrapping key: the same key, namespace and name on both sides.
pub const KEY: [u8; 32] = [7u8; 32];
pub const NAMESPACE: &str = "bench";
pub const KEY_NAME: &str = "key-1";
pub const FRAME_LENGTH: u32 = 4096;
pub const CONTEXT: [(&str, &str); 2] = [("purpose", "bench"), ("tenant", "acme")];

/// The envseal side.
pub struct Envseal {
    context: EncryptionContext,
}

impl Envseal {
    pub fn new() -> Self {
        Envseal {
            context: CONTEXT.into_iter().collect(),
        }
    }

    /// `threads`: 0 = every core (envseal's default), 1 = the calling thread.
    pub fn config(suite: AlgorithmSuite, threads: usize) -> Config {
        Config::builder()
            .commitment_policy(CommitmentPolicy::RequireEncryptRequireDecrypt)
            .suite(suite)
            .frame_length(FRAME_LENGTH)
            .threads(threads)
            .build()
            .expect("envseal config")
    }

    /// `client.encrypt` with this side's context (`envseal`).
    pub fn encrypt(&self, rt: &Runtime, client: &Client, plaintext: &[u8]) -> Vec<u8> {
        rt.block_on(client.encrypt(&self.context, plaintext))
            .expect("envseal encrypt")
    }

    /// `client.decrypt` with this side's context (`envseal`).
    pub fn decrypt(
        &self,
        rt: &Runtime,
        client: &Client,
        message: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, String> {
        rt.block_on(client.decrypt(&self.context, message))
            .map(|d| d.plaintext)
            .map_err(|e| format!("{e} ({e:?})"))
    }

    /// The client every call goes through, made once per config outside
    /// the timed loops: one-shot calls (`encrypt`/`decrypt`) and calls into
    /// a reused buffer (`encrypt_into`/`decrypt_into`), as a service loop
    /// would make them.
    pub fn client(config: &Config) -> Client {
        let keyring = RawAesKeyring::new(NAMESPACE, KEY_NAME, WrappingKey::from_slice(&KEY).expect("key"))
            .expect("envseal raw AES keyring");
        Client::builder(keyring)
            .config(config.clone())
            .build()
            .expect("envseal client")
    }

    /// `client.encrypt_into` with this side's context (`envseal-into`).
    pub fn encrypt_into(&self, rt: &Runtime, client: &Client, plaintext: &[u8], out: &mut Vec<u8>) {
        rt.block_on(client.encrypt_into(&self.context, plaintext, out))
            .expect("envseal encrypt_into")
    }

    /// `client.decrypt_into` with this side's context (`envseal-into`).
    pub fn decrypt_into(
        &self,
        rt: &Runtime,
        client: &Client,
        message: &[u8],
        out: &mut Vec<u8>,
    ) -> DecryptInfo {
        rt.block_on(client.decrypt_into(&self.context, message, out))
            .expect("envseal decrypt_into")
    }
}
