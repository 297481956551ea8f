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

/// How credentials are loaded and kept fresh. Defaults:
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
/// ([`KmsBounds`](super::KmsBounds)): credentials are resolved inside an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CredentialOptions {
    /// Refresh credentials this long before they expire. Credentials that
    /// live shorter than twice this are refreshed at half their lifetime.
    pub refresh_before_expiry: Duration,
    /// Bound on one resolution through the credential chain.
    pub load_timeout: Duration,
    /// IMDS attempts per request (first included); connect timeouts retry.
    pub imds_max_attempts: u32,
    /// IMDS connect timeout, per attempt.
    pub imds_connect_timeout: Duration,
    /// IMDS read timeout, per attempt.
    pub imds_read_timeout: Duration,
    /// Bound on one IMDS request, all attempts and backoff.
    pub imds_deadline: Duration,
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

impl CredentialOptions {
    /// Sets how long before expiry credentials are refreshed.
    pub fn with_refresh_before_expiry(mut self, d: Duration) -> Self {
        self.refresh_before_expiry = d;
        self
    }
    /// Sets the bound on one resolution through the chain.
    pub fn with_load_timeout(mut self, d: Duration) -> Self {
        self.load_timeout = d;
        self
    }
    /// Sets the IMDS attempts, connect and read timeouts, and deadline.
    pub fn with_imds(
        mut self,
        max_attempts: u32,
        connect: Duration,
        read: Duration,
        deadline: Duration,
    ) -> Self {
        self.imds_max_attempts = max_attempts;
        self.imds_connect_timeout = connect;
        self.imds_read_timeout = read;
        self.imds_deadline = deadline;
        self
    }

    /// Checks that every option is usable.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero timeout, zero IMDS attempts, or a
    /// duration over 24 hours.
    pub fn validate(&self) -> Result<(), Error> {
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
        assert!(CredentialOptions::default()
            .with_load_timeout(Duration::ZERO)
            .validate()
            .is_err());
        let d = Duration::from_secs(1);
        assert!(CredentialOptions::default()
            .with_imds(0, d, d, d)
            .validate()
            .is_err());
    }
}
