//! A cache's counters, their snapshot (`CacheStats`), and the same
//! events as metrics ([`crate::observe`]).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters of one cache; each count is also a metric
/// (`envseal_cache_events_total{cache, event}`, [`crate::observe`]).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// The cache's name in the metrics: `data_key`, `branch_key`, `credentials`.
    pub name: &'static str,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub waits: AtomicU64,
    pub bypasses: AtomicU64,
    pub refreshes: AtomicU64,
    pub refresh_failures: AtomicU64,
    pub loads: AtomicU64,
    pub load_failures: AtomicU64,
    pub stale_uses: AtomicU64,
    pub expired: AtomicU64,
    pub evicted: AtomicU64,
    pub revoked: AtomicU64,
    pub wiped: AtomicU64,
}

/// What a cache has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups served from an entry without waiting.
    pub hits: u64,
    /// Lookups that found no usable entry and loaded one.
    pub misses: u64,
    /// Lookups that waited for another caller's load.
    pub waits: u64,
    /// Requests that skipped the cache (unknown or too-large plaintext,
    /// a suite without key derivation).
    pub bypasses: u64,
    /// Background refreshes started (refresh ahead, and retries of a
    /// stale entry).
    pub refreshes: u64,
    /// Background refreshes that failed (the entry kept serving if it was
    /// still usable).
    pub refresh_failures: u64,
    /// Loads (by a caller or in the background) that succeeded: keyring
    /// calls that produced an entry.
    pub loads: u64,
    /// Loads (by a caller or in the background) that failed.
    pub load_failures: u64,
    /// Lookups served an expired entry after a transient failure to
    /// reload it ([`CachePolicy::stale_if_error`](crate::CachePolicy::stale_if_error)).
    pub stale_uses: u64,
    /// Entries dropped for age (at a lookup or by the sweeper, within
    /// [`crate::CACHE_SWEEP_INTERVAL`] of their expiry), messages or bytes.
    pub expired: u64,
    /// Entries dropped to make room (least recently used).
    pub evicted: u64,
    /// Entries dropped at once because reloading them failed with a
    /// non-transient error (access denied, a disabled or missing key).
    pub revoked: u64,
    /// Entries the cache let go of (replaced, expired, evicted, revoked or
    /// cleared) once no caller held them. A data key still used by a
    /// message is wiped when that message ends.
    pub wiped: u64,
    /// Entries held now.
    pub entries: u64,
}

/// The metric event each counter stands for.
#[derive(Clone, Copy)]
pub(super) enum Event {
    Hit,
    Miss,
    Wait,
    Refresh,
    RefreshFailed,
    Load,
    LoadFailed,
    StaleUse,
    Expired,
    Evicted,
    Revoked,
    Wiped,
}

impl Counters {
    fn counter(&self, event: Event) -> (&AtomicU64, &'static str) {
        match event {
            Event::Hit => (&self.hits, "hit"),
            Event::Miss => (&self.misses, "miss"),
            Event::Wait => (&self.waits, "wait"),
            Event::Refresh => (&self.refreshes, "refresh_ahead"),
            Event::RefreshFailed => (&self.refresh_failures, "refresh_failed"),
            Event::Load => (&self.loads, "load"),
            Event::LoadFailed => (&self.load_failures, "load_failed"),
            Event::StaleUse => (&self.stale_uses, "stale_use"),
            Event::Expired => (&self.expired, "expired"),
            Event::Evicted => (&self.evicted, "evicted"),
            Event::Revoked => (&self.revoked, "revoked"),
            Event::Wiped => (&self.wiped, "wiped"),
        }
    }

    /// Counts `n` of `event`, here and in the metrics.
    pub(super) fn add(&self, event: Event, n: u64) {
        if n == 0 {
            return;
        }
        let (counter, name) = self.counter(event);
        counter.fetch_add(n, Relaxed);
        crate::observe::cache_events(self.name, name, n);
    }

    /// Counts a request that skipped the cache.
    pub(crate) fn bypass(&self) {
        self.bypasses.fetch_add(1, Relaxed);
        crate::observe::cache_events(self.name, "bypass", 1);
    }
}
