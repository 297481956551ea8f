//! AWS KMS, the one remote part of envseal.
//!
//! [`KmsClient`] wraps an `aws-sdk-kms` client so that every call is
//! bounded by [`AwsBounds`] (connect, read and attempt timeouts, a deadline
//! per keyring operation, capped adaptive retries), classified into a typed
//! [`AwsError`], counted in [`AwsCounters`] and traced with `tracing` (span
//! `kms_call` with operation, key id and region; an event per attempt with
//! its latency and outcome). The keyrings that use it are at the crate
//! root: [`KmsKeyring`](crate::KmsKeyring),
//! [`KmsDiscoveryKeyring`](crate::KmsDiscoveryKeyring),
//! [`KmsRsaKeyring`](crate::KmsRsaKeyring) and
//! [`KmsEcdhKeyring`](crate::KmsEcdhKeyring).
//!
//! Only this module names the AWS SDK. The error, ARN and counter types
//! exist without the `kms` feature so that [`Error`](crate::Error) is the
//! same type either way.

// Without the `kms` feature the SDK-free types stay (they are part of
// `Error`), but nothing calls their crate-internal helpers.
#[cfg_attr(not(feature = "kms"), allow(dead_code))]
mod arn;
#[cfg(feature = "kms")]
mod bounds;
#[cfg(feature = "kms")]
mod classify;
#[cfg(feature = "kms")]
mod client;
#[cfg(feature = "kms")]
mod credentials;
#[cfg(feature = "kms")]
mod doctor;
#[cfg(feature = "kms")]
mod endpoints;
#[cfg(feature = "kms")]
mod engine;
#[cfg(feature = "kms")]
mod interceptor;
#[cfg_attr(not(feature = "kms"), allow(dead_code))]
mod stats;

pub use crate::error::aws::{AwsError, AwsErrorKind, AwsOperation, AwsService, TimeoutKind};
#[cfg(feature = "kms")]
pub(crate) use arn::{check_identifier, duplicate_multi_region_keys, mrk_match};
pub use arn::{InvalidArn, KmsArn};
#[cfg(feature = "kms")]
pub use bounds::AwsBoundsBuilder;
#[cfg(feature = "hierarchy")]
pub(crate) use client::UnwrappedKey;
#[cfg(feature = "kms")]
pub use client::{AwsBounds, CredentialInfo, KmsClient, KmsClientBuilder, RetryMode};
#[cfg(feature = "kms")]
pub(crate) use client::{CallArgs, Deadline};
#[cfg(feature = "hierarchy")]
pub(crate) use credentials::CachedProvider;
#[cfg(feature = "kms")]
pub use credentials::CredentialOptionsBuilder;
#[cfg(feature = "kms")]
pub use credentials::{
    CredentialOptions, CredentialSources, PROVIDER_CONFIGURED, PROVIDER_CONTAINER, PROVIDER_ENVIRONMENT,
    PROVIDER_IMDS, PROVIDER_PROFILE, PROVIDER_WEB_IDENTITY,
};
#[cfg(feature = "kms")]
pub use doctor::DoctorOptionsBuilder;
#[cfg(feature = "kms")]
pub use doctor::{DoctorOptions, DoctorReport, DoctorStep};
#[cfg(feature = "hierarchy")]
pub(crate) use endpoints::configured_url;
#[cfg(all(feature = "hierarchy", feature = "fips"))]
pub(crate) use endpoints::fips_https_client;
#[cfg(feature = "kms")]
pub use endpoints::ServiceEndpoint;
#[cfg(feature = "hierarchy")]
pub(crate) use engine::{bounded_config, Call, Engine};
#[cfg(feature = "kms")]
pub(crate) use engine::{BoundedConfig, CallConfig};
pub use stats::{AwsCounters, AwsStats};

/// Re-exported so callers can build a [`KmsClient`] from their own
/// configuration without a direct dependency.
#[cfg(feature = "kms")]
pub use aws_config;
/// Re-exported for [`KmsClient::from_sdk_client`].
#[cfg(feature = "kms")]
pub use aws_sdk_kms;
