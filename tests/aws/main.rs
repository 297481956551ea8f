//! The AWS KMS and hierarchical keyrings against moto (KMS and DynamoDB on
//! loopback, through the DynamoDB checker), fake KMS servers and fault
//! injectors, in one test binary (feature `kms`; the hierarchical keyring's
//! module also needs `hierarchy`). The moto server is started once per
//! process (`common::moto::moto`) and shared by every module here: a test
//! that counts requests on it uses names (keys, tables) of its own.
//!
//! One module's tests: `cargo test --features rustcrypto,metrics --test aws kms_faults::`.

#[path = "../common/mod.rs"]
mod common;

#[cfg(feature = "metrics")]
mod aws_metrics;
#[cfg(feature = "hierarchy")]
mod hierarchy;
mod interop_kms;
mod kms;
mod kms_faults;
mod kms_mrk;
