//! How a cache refreshes its entries and rides out failures: the public
//! [`CachePolicy`].

use std::time::Duration;

use crate::error::{Error, Result};

/// The default share of an entry's life at its end in which it is
/// refreshed ahead (and, for a data key, of its message and byte limits).
pub const DEFAULT_GRACE: f64 = 0.10;
/// The default jitter band: each entry's lifetime is shortened by a random
/// share of up to this much.
pub const DEFAULT_JITTER: f64 = 0.10;
/// The default cap on loads under way at once across the keys of one
/// cache (the Material Providers Library's `StormTrackingCache` fan-out).
pub const DEFAULT_MAX_LOADS: usize = 20;
/// The longest retry interval or stale allowance a policy takes.
const MAX_SETTING: Duration = Duration::from_secs(365 * 24 * 3600);
/// The shortest time between two refresh attempts of one entry.
const MIN_RETRY_INTERVAL: Duration = Duration::from_millis(10);

/// How a cache ([`MaterialsCache`](crate::MaterialsCache),
/// [`BranchKeyCache`](crate::BranchKeyCache)) refreshes its entries and
/// rides out failures of the calls that load them; built with
/// [`CachePolicy::builder`]. The default refreshes ahead with jitter and
/// never serves an expired entry.
///
/// - **Refresh ahead.** Once an entry is in its grace window (the last
///   [`grace`](CachePolicyBuilder::grace) share of its lifetime, and for a
///   data key also of its message and byte limits), the first lookup that
///   finds it there starts one background load of its successor; callers
///   keep using the current entry meanwhile and no caller waits while a
///   usable entry exists. A failed refresh is tried again at most once per
///   [`retry_interval`](CachePolicyBuilder::retry_interval), and the wait
///   doubles with each failure in a row (up to half the entry's lifetime,
///   plus up to half again at random), so an overloaded or failing service
///   sees fewer refreshes, not more. A refresh that
///   fails with a non-transient error (access denied, a disabled or
///   missing key, an invalid ciphertext) drops the entry at once:
///   revocation is never postponed.
///   Refreshes run on the caller's tokio runtime; a
///   [`blocking::Client`](crate::blocking::Client), whose runtime runs only
///   during its calls, starts none (its entries are reloaded when
///   unusable).
/// - **Jitter.** Each entry's lifetime is shortened by a random share of up
///   to [`jitter`](CachePolicyBuilder::jitter), so processes that loaded a
///   key at the same moment do not all refresh it at the same moment.
/// - **Stale if error** (off by default). With
///   [`stale_if_error(max)`](CachePolicyBuilder::stale_if_error), an entry
///   whose refresh or reload failed with a *transient* error (throttled,
///   timed out, a 5xx answer, a connection error) keeps serving for up to
///   `max` past its lifetime, and every such use is counted
///   ([`CacheStats::stale_uses`](crate::CacheStats::stale_uses)). So does
///   an entry whose refresh ahead, started in its grace window, is still
///   under way when it expires: a load slower than the whole window means
///   KMS is in trouble, and callers are not made to wait on it. It never
///   serves after a non-transient error, never past `max`, and never past
///   a data key's message or byte limit. The trade-off: during a KMS outage
///   a key keeps working for up to `max` longer than its TTL says, and so
///   does one whose permissions were revoked during the outage (KMS could
///   not say so).
/// - **Fan-out.** At most [`max_loads`](CachePolicyBuilder::max_loads)
///   loads run at once across the keys of one cache, and at most a quarter
///   of them (at least one) are background refreshes; a cold-start burst
///   of many keys queues instead of flooding KMS, and refreshes that fall
///   due together queue and run in turn (a caller that finds an entry
///   unusable before its refresh ran loads it itself).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CachePolicy {
    refresh_ahead: bool,
    grace: f64,
    jitter: f64,
    stale_if_error: Option<Duration>,
    retry_interval: Option<Duration>,
    max_loads: usize,
    /// Whether a successor refreshed ahead waits for the current entry to
    /// be used up or expire (data keys and branch keys: every use the
    /// current one allows is taken) rather than replacing it at once
    /// (credentials: never used in their last minutes).
    successor_waits: bool,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            refresh_ahead: true,
            grace: DEFAULT_GRACE,
            jitter: DEFAULT_JITTER,
            stale_if_error: None,
            retry_interval: None,
            max_loads: DEFAULT_MAX_LOADS,
            successor_waits: true,
        }
    }
}

/// Builds a [`CachePolicy`]; see [`CachePolicy::builder`].
#[derive(Clone, Copy, Debug)]
pub struct CachePolicyBuilder(CachePolicy);

impl CachePolicy {
    /// A builder starting from the default: refresh ahead in the last
    /// [`DEFAULT_GRACE`] of an entry's life, [`DEFAULT_JITTER`] jitter, no
    /// stale entries, [`DEFAULT_MAX_LOADS`] loads at once.
    pub fn builder() -> CachePolicyBuilder {
        CachePolicyBuilder(CachePolicy::default())
    }

    /// Whether entries are refreshed in the background before they expire.
    pub fn refresh_ahead(&self) -> bool {
        self.refresh_ahead
    }

    /// The grace window's share of an entry's lifetime (and limits).
    pub fn grace(&self) -> f64 {
        self.grace
    }

    /// The jitter band's share of an entry's lifetime.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// How long past its lifetime an entry may serve after a transient
    /// failure to refresh it (`None`: never).
    pub fn stale_if_error(&self) -> Option<Duration> {
        self.stale_if_error
    }

    /// The most loads under way at once across keys.
    pub fn max_loads(&self) -> usize {
        self.max_loads
    }

    /// Whether a refreshed successor waits for the current entry.
    pub(crate) fn successor_waits(&self) -> bool {
        self.successor_waits
    }

    /// This policy, with refreshed successors replacing the current entry
    /// at once.
    #[cfg_attr(not(feature = "kms"), allow(dead_code))] // the credentials cache's
    pub(crate) fn replacing(mut self) -> Self {
        self.successor_waits = false;
        self
    }

    /// The least time between two refresh attempts of an entry whose
    /// lifetime is `ttl`: the configured interval, else a fifth of the
    /// grace window (at least 10 ms).
    pub(crate) fn retry_interval(&self, ttl: Duration) -> Duration {
        self.retry_interval
            .unwrap_or_else(|| ttl.mul_f64(self.grace / 5.0))
            .max(MIN_RETRY_INTERVAL)
    }

    /// The wait before the next attempt after `failures` failed loads in a
    /// row (before jitter): the retry interval, doubled per failure after
    /// the first, at most half of `ttl` (and never below the interval).
    pub(crate) fn retry_delay(&self, ttl: Duration, failures: u32) -> Duration {
        let interval = self.retry_interval(ttl);
        let doubled = interval.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        doubled.min((ttl / 2).max(interval))
    }

    fn validate(&self) -> Result<()> {
        let share = |v: f64| (0.0..1.0).contains(&v);
        if !share(self.grace) {
            return Err(Error::config(
                "cache grace",
                format!("must be at least 0 and below 1, not {}", self.grace),
            ));
        }
        if !share(self.jitter) {
            return Err(Error::config(
                "cache jitter",
                format!("must be at least 0 and below 1, not {}", self.jitter),
            ));
        }
        if self.max_loads == 0 {
            return Err(Error::config("cache max loads", "must be above zero"));
        }
        if self
            .retry_interval
            .is_some_and(|d| d.is_zero() || d > MAX_SETTING)
        {
            return Err(Error::config(
                "cache retry interval",
                "must be above zero and at most a year",
            ));
        }
        if self.stale_if_error.is_some_and(|d| d > MAX_SETTING) {
            return Err(Error::config("cache stale if error", "must be at most a year"));
        }
        Ok(())
    }
}

impl CachePolicyBuilder {
    /// Whether to refresh entries in the background before they expire
    /// (default on). Off, an entry is loaded again only once it is
    /// unusable, and the callers that find it so wait for the load.
    pub fn refresh_ahead(mut self, on: bool) -> Self {
        self.0.refresh_ahead = on;
        self
    }

    /// The grace window: the last `share` of an entry's lifetime (and of a
    /// data key's message and byte limits) in which it is refreshed ahead.
    /// At least 0 and below 1; default [`DEFAULT_GRACE`].
    pub fn grace(mut self, share: f64) -> Self {
        self.0.grace = share;
        self
    }

    /// Each entry's lifetime is shortened by a random share of up to
    /// `share` (drawn per entry). At least 0 and below 1; default
    /// [`DEFAULT_JITTER`]; 0 turns jitter off.
    pub fn jitter(mut self, share: f64) -> Self {
        self.0.jitter = share;
        self
    }

    /// Lets an entry whose refresh failed with a transient error serve for
    /// up to `max` past its lifetime (off by default); see the trade-off
    /// in [`CachePolicy`].
    pub fn stale_if_error(mut self, max: Duration) -> Self {
        self.0.stale_if_error = Some(max).filter(|d| !d.is_zero());
        self
    }

    /// The least time between two attempts to refresh an entry after a
    /// failed one (default: a fifth of the grace window, at least 10 ms);
    /// it doubles with each further failure in a row, up to half the
    /// entry's lifetime.
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.0.retry_interval = Some(interval);
        self
    }

    /// The most loads under way at once across the keys of a cache
    /// (default [`DEFAULT_MAX_LOADS`]).
    pub fn max_loads(mut self, loads: usize) -> Self {
        self.0.max_loads = loads;
        self
    }

    /// Checks the policy and returns it.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting: a grace or jitter share
    /// outside 0 to 1 (1 excluded), zero loads, a zero retry interval.
    pub fn build(self) -> Result<CachePolicy> {
        self.0.validate()?;
        Ok(self.0)
    }
}
