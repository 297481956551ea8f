//! The `envseal` command-line tool, in one test binary (feature `cli`):
//! usage and errors (with the trycmd snapshots in tests/cmd/), raw keys,
//! AWS KMS and the key store against moto, and credential refresh against
//! stand-ins (each scenario in a child process of this binary).
//!
//! One module's tests: `cargo test --features rustcrypto,metrics --test cli cli_kms::`.

#[path = "../common/mod.rs"]
mod common;

mod cli;
#[cfg(feature = "kms")]
mod cli_kms;
#[cfg(feature = "kms")]
mod credentials;
mod generate;
mod reencrypt;
