//! The library's tests that need no AWS service, in one test binary:
//! round trips, hostile bytes, the data-key cache and record API, the
//! configuration checks, the fuzz regressions and interop with the Python
//! reference ESDK. Each module was a test binary of its own; one binary
//! links the crate and its dependencies once.
//!
//! One module's tests: `cargo test --test core roundtrip::`.

#[path = "../common/mod.rs"]
mod common;

mod cache;
mod checks;
mod fuzz_regressions;
mod interop;
mod reencrypt;
mod roundtrip;
mod tamper;
