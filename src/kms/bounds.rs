//! The bounds every AWS call runs under: timeouts, the deadline of one
//! keyring operation, capped retries with backoff.

use std::time::{Duration, Instant};

use aws_sdk_kms::config::retry::RetryConfig;
use aws_sdk_kms::config::timeout::TimeoutConfig;

use crate::error::Error;

/// Retry mode for KMS calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryMode {
    /// Exponential backoff with full jitter and a retry quota.
    Standard,
    /// Standard plus a client-side rate limiter that slows down after
    /// throttling (CUBIC-style). The default.
    Adaptive,
}

/// Time and attempt bounds for every KMS call. Defaults (from DESIGN.md):
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
pub struct KmsBounds {
    /// TCP + TLS connect timeout, per attempt.
    pub connect_timeout: Duration,
    /// Time from sending a request to the response headers, per attempt.
    pub read_timeout: Duration,
    /// One attempt, from credentials and signing to the end of the body.
    pub attempt_timeout: Duration,
    /// One keyring operation: all its KMS calls, attempts and backoff.
    pub deadline: Duration,
    /// Attempts per call, including the first (at least 1).
    pub max_attempts: u32,
    /// Standard or adaptive retries.
    pub retry_mode: RetryMode,
    /// First backoff before a retry.
    pub initial_backoff: Duration,
    /// Cap on any one backoff.
    pub max_backoff: Duration,
}

impl Default for KmsBounds {
    fn default() -> Self {
        KmsBounds {
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

impl KmsBounds {
    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
    /// Sets the read timeout.
    pub fn with_read_timeout(mut self, d: Duration) -> Self {
        self.read_timeout = d;
        self
    }
    /// Sets the per-attempt timeout.
    pub fn with_attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = d;
        self
    }
    /// Sets the deadline for a whole keyring operation.
    pub fn with_deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }
    /// Sets the maximum attempts per call (first try included).
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }
    /// Sets the retry mode.
    pub fn with_retry_mode(mut self, mode: RetryMode) -> Self {
        self.retry_mode = mode;
        self
    }
    /// Sets the initial and maximum backoff.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// Checks that every bound is usable.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero timeout or deadline, one over 24 hours,
    /// zero attempts, or a maximum backoff below the initial one.
    pub fn validate(&self) -> Result<(), Error> {
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
        assert!(KmsBounds::default().validate().is_ok());
        assert!(KmsBounds::default().with_max_attempts(0).validate().is_err());
        assert!(KmsBounds::default()
            .with_deadline(Duration::ZERO)
            .validate()
            .is_err());
        assert!(KmsBounds::default()
            .with_backoff(Duration::from_secs(3), Duration::from_secs(1))
            .validate()
            .is_err());
    }
}
