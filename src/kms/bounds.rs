//! The bounds every AWS call runs under: timeouts, the deadline of one
//! keyring operation, capped retries with backoff.

use std::time::{Duration, Instant};

use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;

use crate::error::Error;

/// Retry mode for AWS calls (KMS, STS, DynamoDB).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryMode {
    /// Exponential backoff with full jitter and a retry quota.
    Standard,
    /// Standard plus a client-side rate limiter that slows down after
    /// throttling (CUBIC-style). The default.
    Adaptive,
}

/// Time and attempt bounds for every AWS call (KMS, STS and the DynamoDB
/// key store alike), built with [`AwsBounds::builder`]. Defaults (from
/// DESIGN.md, also `AwsBounds::default()`):
///
/// | bound | default | what it limits |
/// |---|---|---|
/// | `connect_timeout` | 2 s | TCP + TLS connect, per attempt |
/// | `read_timeout` | 5 s | request sent → response headers, per attempt |
/// | `attempt_timeout` | 5 s | one whole attempt, body included |
/// | `deadline` | 10 s | one keyring operation: every call, attempt and backoff |
/// | `max_attempts` | 3 | attempts per call, first try included |
/// | `retry_mode` | adaptive | |
/// | `initial_backoff` | 100 ms | first retry delay (full jitter) |
/// | `max_backoff` | 2 s | cap on one retry delay |
///
/// A dripping body (headers, then bytes slowly) passes the read timeout;
/// the attempt timeout and the deadline stop it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AwsBounds {
    /// TCP + TLS connect timeout, per attempt.
    pub(crate) connect_timeout: Duration,
    /// Time from sending a request to the response headers, per attempt.
    pub(crate) read_timeout: Duration,
    /// One attempt, from credentials and signing to the end of the body.
    pub(crate) attempt_timeout: Duration,
    /// One keyring operation: all its AWS calls, attempts and backoff.
    pub(crate) deadline: Duration,
    /// Attempts per call, including the first (at least 1).
    pub(crate) max_attempts: u32,
    /// Standard or adaptive retries.
    pub(crate) retry_mode: RetryMode,
    /// First backoff before a retry.
    pub(crate) initial_backoff: Duration,
    /// Cap on any one backoff.
    pub(crate) max_backoff: Duration,
}

impl Default for AwsBounds {
    fn default() -> Self {
        AwsBounds {
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(10),
            max_attempts: 3,
            retry_mode: RetryMode::Adaptive,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// Builds an [`AwsBounds`]; see [`AwsBounds::builder`].
#[derive(Clone, Debug, Default)]
pub struct AwsBoundsBuilder(AwsBounds);

impl AwsBoundsBuilder {
    /// TCP + TLS connect timeout, per attempt (default 2 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.0.connect_timeout = d;
        self
    }
    /// Time from sending a request to the response headers, per attempt
    /// (default 5 s).
    pub fn read_timeout(mut self, d: Duration) -> Self {
        self.0.read_timeout = d;
        self
    }
    /// One whole attempt, body included (default 5 s).
    pub fn attempt_timeout(mut self, d: Duration) -> Self {
        self.0.attempt_timeout = d;
        self
    }
    /// One keyring operation: every call, attempt and backoff (default 10 s).
    pub fn deadline(mut self, d: Duration) -> Self {
        self.0.deadline = d;
        self
    }
    /// Attempts per call, first try included (default 3).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.0.max_attempts = n;
        self
    }
    /// Standard or adaptive retries (default adaptive).
    pub fn retry_mode(mut self, mode: RetryMode) -> Self {
        self.0.retry_mode = mode;
        self
    }
    /// First backoff before a retry (default 100 ms).
    pub fn initial_backoff(mut self, d: Duration) -> Self {
        self.0.initial_backoff = d;
        self
    }
    /// Cap on any one backoff (default 2 s).
    pub fn max_backoff(mut self, d: Duration) -> Self {
        self.0.max_backoff = d;
        self
    }

    /// Checks that every bound is usable and returns the bounds.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero timeout or deadline, one over 24 hours,
    /// zero attempts, or a maximum backoff below the initial one.
    pub fn build(self) -> Result<AwsBounds, Error> {
        self.0.validate()?;
        Ok(self.0)
    }
}

impl AwsBounds {
    /// A builder starting from the defaults.
    pub fn builder() -> AwsBoundsBuilder {
        AwsBoundsBuilder::default()
    }

    /// TCP + TLS connect timeout, per attempt.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
    /// Time from sending a request to the response headers, per attempt.
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }
    /// One attempt, from credentials and signing to the end of the body.
    pub fn attempt_timeout(&self) -> Duration {
        self.attempt_timeout
    }
    /// One keyring operation: all its AWS calls, attempts and backoff.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
    /// Attempts per call, including the first.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
    /// Standard or adaptive retries.
    pub fn retry_mode(&self) -> RetryMode {
        self.retry_mode
    }
    /// First backoff before a retry.
    pub fn initial_backoff(&self) -> Duration {
        self.initial_backoff
    }
    /// Cap on any one backoff.
    pub fn max_backoff(&self) -> Duration {
        self.max_backoff
    }

    /// Checks that every bound is usable (in [`AwsBoundsBuilder::build`],
    /// and again where a client takes the bounds).
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let named = [
            ("connect timeout", self.connect_timeout),
            ("read timeout", self.read_timeout),
            ("attempt timeout", self.attempt_timeout),
            ("deadline", self.deadline),
        ];
        if let Some((name, _)) = named.iter().find(|(_, d)| d.is_zero()) {
            return Err(Error::config(
                "KMS bounds",
                format!("KMS {name} must be greater than zero"),
            ));
        }
        // A bound is a bound: "forever" is not one (and would overflow Instant).
        const MAX_BOUND: Duration = Duration::from_secs(24 * 60 * 60);
        if let Some((name, _)) = named.iter().find(|(_, d)| *d > MAX_BOUND) {
            return Err(Error::config(
                "KMS bounds",
                format!("KMS {name} must be at most 24 hours"),
            ));
        }
        if self.max_attempts == 0 {
            return Err(Error::config("KMS bounds", "KMS max attempts must be at least 1"));
        }
        if self.max_backoff < self.initial_backoff {
            return Err(Error::config(
                "KMS bounds",
                "KMS max backoff must not be below the initial backoff",
            ));
        }
        Ok(())
    }

    pub(crate) fn retry_config(&self) -> RetryConfig {
        let base = match self.retry_mode {
            RetryMode::Standard => RetryConfig::standard(),
            RetryMode::Adaptive => RetryConfig::adaptive(),
        };
        base.with_max_attempts(self.max_attempts)
            .with_initial_backoff(self.initial_backoff)
            .with_max_backoff(self.max_backoff)
    }

    /// Timeouts for one call that has `remaining` of its operation's deadline.
    pub(crate) fn timeout_config(&self, remaining: Duration) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .operation_attempt_timeout(self.attempt_timeout)
            .operation_timeout(remaining)
            .build()
    }
}

/// When a keyring operation must be done by.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline(pub(super) Instant);

impl Deadline {
    pub(super) fn remaining(self) -> Option<Duration> {
        self.0
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_validate() {
        assert!(AwsBounds::default().validate().is_ok());
        assert_eq!(AwsBounds::builder().build().unwrap(), AwsBounds::default());
        assert!(AwsBounds::builder().max_attempts(0).build().is_err());
        assert!(AwsBounds::builder().deadline(Duration::ZERO).build().is_err());
        assert!(AwsBounds::builder()
            .initial_backoff(Duration::from_secs(3))
            .max_backoff(Duration::from_secs(1))
            .build()
            .is_err());
        let err = AwsBounds::builder()
            .read_timeout(Duration::from_secs(25 * 60 * 60))
            .build()
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Config {
                    setting: "KMS bounds",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
