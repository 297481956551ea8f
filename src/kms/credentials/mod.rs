//! Credentials that stay valid: a cache in front of the credential chain
//! that refreshes well ahead of expiry, can be told that KMS rejected its
//! credentials as expired, and remembers which provider supplied them; the
//! default chain with an IMDS client that retries connect timeouts; and
//! detection of environment keys that shadow a container or instance role.
//!
//! The SDK's own identity cache refreshes 5 to 10 seconds before expiry and
//! is never invalidated when a service answers `ExpiredTokenException`
//! (aws-smithy-runtime's lazy cache); this cache replaces it (the KMS client
//! runs with `IdentityCache::no_cache()`).

use std::time::Duration;

use aws_config::imds;
use aws_config::imds::client::ImdsResponseRetryClassifier;
use aws_config::provider_config::ProviderConfig;
use aws_smithy_runtime_api::client::retries::classifiers::SharedRetryClassifier;

use crate::error::Error;

mod cache;
mod chain;
mod sources;

pub(crate) use cache::{CachedProvider, CredentialCache};
pub(crate) use chain::default_chain;
pub use sources::CredentialSources;
pub(crate) use sources::{probe_instance_role, warn_if_shadowed};

/// Names of the default chain's providers, in the chain's order (the names
/// aws-config uses in its own logs).
pub const PROVIDER_ENVIRONMENT: &str = "Environment";
/// The shared config/credentials files (`AWS_PROFILE`).
pub const PROVIDER_PROFILE: &str = "Profile";
/// `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (EKS service accounts).
pub const PROVIDER_WEB_IDENTITY: &str = "WebIdentityToken";
/// The ECS/EKS container credentials endpoint.
pub const PROVIDER_CONTAINER: &str = "EcsContainer";
/// The EC2 instance metadata service (IMDSv2).
pub const PROVIDER_IMDS: &str = "Ec2InstanceMetadata";
/// A provider the caller supplied (through an `SdkConfig` or an SDK client).
pub const PROVIDER_CONFIGURED: &str = "configured provider";

/// How credentials are loaded and kept fresh, built with
/// [`CredentialOptions::builder`]. Defaults (also
/// `CredentialOptions::default()`):
///
/// | option | default | |
/// |---|---|---|
/// | `refresh_before_expiry` | 5 min | refresh this long before expiry (at most half the credentials' lifetime) |
/// | `load_timeout` | 5 s | one resolution through the chain |
/// | `imds_max_attempts` | 4 | IMDS attempts, connect timeouts included |
/// | `imds_connect_timeout` | 1 s | |
/// | `imds_read_timeout` | 1 s | |
/// | `imds_deadline` | 5 s | all IMDS attempts of one request |
///
/// A load is also bounded by the KMS attempt timeout and deadline
/// ([`AwsBounds`](super::AwsBounds)): credentials are resolved inside an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CredentialOptions {
    /// Refresh credentials this long before they expire. Credentials that
    /// live shorter than twice this are refreshed at half their lifetime.
    pub(crate) refresh_before_expiry: Duration,
    /// Bound on one resolution through the credential chain.
    pub(crate) load_timeout: Duration,
    /// IMDS attempts per request (first included); connect timeouts retry.
    pub(crate) imds_max_attempts: u32,
    /// IMDS connect timeout, per attempt.
    pub(crate) imds_connect_timeout: Duration,
    /// IMDS read timeout, per attempt.
    pub(crate) imds_read_timeout: Duration,
    /// Bound on one IMDS request, all attempts and backoff.
    pub(crate) imds_deadline: Duration,
}

impl Default for CredentialOptions {
    fn default() -> Self {
        CredentialOptions {
            refresh_before_expiry: Duration::from_secs(5 * 60),
            load_timeout: Duration::from_secs(5),
            imds_max_attempts: 4,
            imds_connect_timeout: Duration::from_secs(1),
            imds_read_timeout: Duration::from_secs(1),
            imds_deadline: Duration::from_secs(5),
        }
    }
}

/// Builds a [`CredentialOptions`]; see [`CredentialOptions::builder`].
#[derive(Clone, Debug, Default)]
pub struct CredentialOptionsBuilder(CredentialOptions);

impl CredentialOptionsBuilder {
    /// Refresh credentials this long before they expire (default 5 min).
    pub fn refresh_before_expiry(mut self, d: Duration) -> Self {
        self.0.refresh_before_expiry = d;
        self
    }
    /// Bound on one resolution through the chain (default 5 s).
    pub fn load_timeout(mut self, d: Duration) -> Self {
        self.0.load_timeout = d;
        self
    }
    /// IMDS attempts per request, first included (default 4).
    pub fn imds_max_attempts(mut self, n: u32) -> Self {
        self.0.imds_max_attempts = n;
        self
    }
    /// IMDS connect timeout, per attempt (default 1 s).
    pub fn imds_connect_timeout(mut self, d: Duration) -> Self {
        self.0.imds_connect_timeout = d;
        self
    }
    /// IMDS read timeout, per attempt (default 1 s).
    pub fn imds_read_timeout(mut self, d: Duration) -> Self {
        self.0.imds_read_timeout = d;
        self
    }
    /// Bound on one IMDS request, all attempts and backoff (default 5 s).
    pub fn imds_deadline(mut self, d: Duration) -> Self {
        self.0.imds_deadline = d;
        self
    }

    /// Checks that every option is usable and returns the options.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero timeout, zero IMDS attempts, or a
    /// duration over 24 hours.
    pub fn build(self) -> Result<CredentialOptions, Error> {
        self.0.validate()?;
        Ok(self.0)
    }
}

impl CredentialOptions {
    /// A builder starting from the defaults.
    pub fn builder() -> CredentialOptionsBuilder {
        CredentialOptionsBuilder::default()
    }

    /// How long before expiry credentials are refreshed.
    pub fn refresh_before_expiry(&self) -> Duration {
        self.refresh_before_expiry
    }
    /// The bound on one resolution through the chain.
    pub fn load_timeout(&self) -> Duration {
        self.load_timeout
    }
    /// IMDS attempts per request, first included.
    pub fn imds_max_attempts(&self) -> u32 {
        self.imds_max_attempts
    }
    /// IMDS connect timeout, per attempt.
    pub fn imds_connect_timeout(&self) -> Duration {
        self.imds_connect_timeout
    }
    /// IMDS read timeout, per attempt.
    pub fn imds_read_timeout(&self) -> Duration {
        self.imds_read_timeout
    }
    /// Bound on one IMDS request, all attempts and backoff.
    pub fn imds_deadline(&self) -> Duration {
        self.imds_deadline
    }

    /// Checks that every option is usable (in
    /// [`CredentialOptionsBuilder::build`], and again where a client takes
    /// the options).
    pub(crate) fn validate(&self) -> Result<(), Error> {
        const MAX: Duration = Duration::from_secs(24 * 60 * 60);
        let timeouts = [
            ("credentials load timeout", self.load_timeout),
            ("IMDS connect timeout", self.imds_connect_timeout),
            ("IMDS read timeout", self.imds_read_timeout),
            ("IMDS deadline", self.imds_deadline),
        ];
        if let Some((name, _)) = timeouts.iter().find(|(_, d)| d.is_zero()) {
            return Err(Error::config(
                "credential bounds",
                format!("{name} must be greater than zero"),
            ));
        }
        if let Some((name, _)) = timeouts.iter().find(|(_, d)| *d > MAX) {
            return Err(Error::config(
                "credential bounds",
                format!("{name} must be at most 24 hours"),
            ));
        }
        if self.refresh_before_expiry > MAX {
            return Err(Error::config(
                "credential bounds",
                "credentials refresh time must be at most 24 hours",
            ));
        }
        if self.imds_max_attempts == 0 {
            return Err(Error::config(
                "credential bounds",
                "IMDS max attempts must be at least 1",
            ));
        }
        Ok(())
    }

    /// The IMDS client: bounded, and retrying connect timeouts (the SDK's
    /// default gives up on the first one).
    fn imds_client(&self, conf: &ProviderConfig) -> imds::Client {
        imds::Client::builder()
            .configure(conf)
            .max_attempts(self.imds_max_attempts)
            .connect_timeout(self.imds_connect_timeout)
            .read_timeout(self.imds_read_timeout)
            // An attempt includes the session-token request and its own
            // retries: only the deadline bounds it.
            .operation_attempt_timeout(self.imds_deadline)
            .operation_timeout(self.imds_deadline)
            .retry_classifier(SharedRetryClassifier::new(
                ImdsResponseRetryClassifier::default().with_retry_connect_timeouts(true),
            ))
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_validate() {
        assert!(CredentialOptions::default().validate().is_ok());
        assert_eq!(
            CredentialOptions::builder().build().unwrap(),
            CredentialOptions::default()
        );
        assert!(CredentialOptions::builder()
            .load_timeout(Duration::ZERO)
            .build()
            .is_err());
        assert!(CredentialOptions::builder().imds_max_attempts(0).build().is_err());
    }
}
