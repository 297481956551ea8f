//! The one cache engine behind the data-key cache, the branch-key cache
//! and the credentials cache.
//!
//! A bounded map (least recently used evicted first, from the `lru`
//! crate) of slots, each holding the current entry of a key and at most
//! one load under way for it. A lookup ([`Cache::get`]):
//!
//! - finds a usable entry: returns it at once. In the entry's grace window
//!   (the last [`CachePolicy::grace`] share of its lifetime, or when the
//!   caller's usage check says it is nearly used up) it also starts one
//!   background load of its successor (refresh ahead), unless one is under
//!   way or a failed one was tried less than a retry interval ago;
//! - finds an expired entry whose last load failed transiently, or whose
//!   refresh ahead is still under way, within
//!   [`CachePolicy::stale_if_error`]: serves it (counted) and refreshes in
//!   the background as above;
//! - else waits for the load under way, or leads one (single flight per
//!   key; a cancelled leader's waiters take over the load). A load holds
//!   one of [`CachePolicy::max_loads`] permits shared by the keys of the
//!   cache (fan-out cap).
//!
//! Each entry's lifetime is the loader's, shortened by a random share of
//! up to [`CachePolicy::jitter`]. An entry is wiped (its value dropped,
//! counted in [`Counters`]) once the cache lets go of it and no caller
//! holds it: when it is replaced, evicted, dropped after a non-transient
//! failure, or expires; expired entries are dropped by the process-wide
//! sweeper ([`sweep`]) within [`CACHE_SWEEP_INTERVAL`] of their hard
//! expiry (lifetime plus the stale allowance), asked for or not.
//!
//! Time is tokio's clock ([`tokio::time::Instant`]): the real clock in
//! use, and one the tests pause and advance.

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use lru::LruCache;
use rand_core::RngCore;
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::Instant;

mod counters;
mod load;
mod policy;
mod refresh;
pub(crate) mod sweep;

pub use policy::{CachePolicy, CachePolicyBuilder, DEFAULT_GRACE, DEFAULT_JITTER, DEFAULT_MAX_LOADS};

/// The most entries a cache may hold: its table is sized for its capacity
/// up front (about 30 MiB at this size), so a capacity beyond it would be
/// an allocation of gigabytes, or a capacity overflow, not a bound.
pub const MAX_CACHE_ENTRIES: usize = 1 << 20;

/// A cache's capacity checked: above zero and at most
/// [`MAX_CACHE_ENTRIES`]; `setting` names it in the error.
pub(crate) fn checked_capacity(capacity: usize, setting: &'static str) -> crate::error::Result<NonZeroUsize> {
    match NonZeroUsize::new(capacity) {
        None => Err(crate::error::Error::config(setting, "must be above zero")),
        Some(_) if capacity > MAX_CACHE_ENTRIES => Err(crate::error::Error::config(
            setting,
            format!("must be at most {MAX_CACHE_ENTRIES} entries"),
        )),
        Some(n) => Ok(n),
    }
}
pub use sweep::CACHE_SWEEP_INTERVAL;

use sweep::{Registration, Sweep};

pub use counters::CacheStats;
pub(crate) use counters::Counters;
use counters::Event;
#[cfg(feature = "kms")] // the KMS client's deadline
pub(crate) use load::lookup_began;
pub(crate) use load::{Load, LoadError, Origin, Usage};
pub(crate) use refresh::without_refresh;

/// A cached value and its times. Dereferences to the value; counted as
/// wiped when dropped.
pub(crate) struct Entry<V> {
    value: V,
    loaded: Instant,
    refresh_at: Instant,
    expires: Instant,
    counters: Arc<Counters>,
}

impl<V> std::ops::Deref for Entry<V> {
    type Target = V;
    fn deref(&self) -> &V {
        &self.value
    }
}

impl<V> Entry<V> {
    /// When it was loaded.
    #[cfg_attr(not(feature = "kms"), allow(dead_code))] // the credentials cache's
    pub(crate) fn loaded(&self) -> Instant {
        self.loaded
    }

    /// When it stops being usable (without stale use).
    #[cfg(test)]
    pub(crate) fn expires(&self) -> Instant {
        self.expires
    }

    /// When its grace window starts.
    #[cfg(test)]
    pub(crate) fn refresh_at(&self) -> Instant {
        self.refresh_at
    }
}

impl<V> Drop for Entry<V> {
    fn drop(&mut self) {
        // The value (a `Zeroizing` key, or materials holding one) wipes
        // itself as it drops right after this.
        self.counters.add(Event::Wiped, 1);
    }
}

type Outcome<V, E> = std::result::Result<Arc<Entry<V>>, Arc<E>>;
type Flight<V, E> = Arc<OnceCell<Outcome<V, E>>>;

struct Slot<V, E> {
    entry: Option<Arc<Entry<V>>>,
    /// A refreshed successor, loaded while `entry` was still usable: it
    /// takes over once `entry` is used up or expires, so a data key's
    /// message and byte limits are used in full.
    next: Option<Arc<Entry<V>>>,
    flight: Option<Flight<V, E>>,
    /// `flight` is a refresh started while the entry was usable.
    refreshing: bool,
    /// The last load failed transiently: the entry may serve stale.
    failed: bool,
    /// No refresh starts before this (set after a failed one).
    retry_at: Option<Instant>,
    /// Loads failed in a row (the retry delay doubles with each).
    failures: u32,
}

impl<V, E> Slot<V, E> {
    /// A good entry arrived (loaded, or a companion): no failure stands.
    fn loaded(&mut self) {
        self.failed = false;
        self.retry_at = None;
        self.failures = 0;
    }

    fn empty() -> Self {
        Slot {
            entry: None,
            next: None,
            flight: None,
            refreshing: false,
            failed: false,
            retry_at: None,
            failures: 0,
        }
    }
}

/// The engine: a cheap handle (clones share the cache).
pub(crate) struct Cache<K, V, E> {
    inner: Arc<Inner<K, V, E>>,
}

impl<K, V, E> Clone for Cache<K, V, E> {
    fn clone(&self) -> Self {
        Cache {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<K, V, E> {
    policy: CachePolicy,
    slots: Mutex<LruCache<K, Slot<V, E>>>,
    loads: Arc<Semaphore>,
    /// Background refreshes under way: at most a quarter of the loads
    /// (at least one), so refreshes that fall due together trickle in
    /// rather than take every permit at once.
    refreshing: Arc<Semaphore>,
    counters: Arc<Counters>,
    sweep: Registration,
}

/// What a lookup decided under the lock.
enum Step<V, E> {
    /// Serve this entry; start this refresh first, if any.
    Serve(Arc<Entry<V>>, Option<Flight<V, E>>),
    /// Wait for, or lead, this load.
    Load(Flight<V, E>),
}

impl<K, V, E> Cache<K, V, E>
where
    K: Hash + Eq + Copy + Send + 'static,
    V: Send + Sync + 'static,
    E: LoadError,
{
    /// A cache of at most `capacity` keys.
    /// `name`: the cache's name in the metrics (`data_key`, `branch_key`,
    /// `credentials`).
    pub(crate) fn new(name: &'static str, capacity: NonZeroUsize, policy: CachePolicy) -> Self {
        Cache {
            inner: Arc::new_cyclic(|weak: &Weak<Inner<K, V, E>>| Inner {
                policy,
                slots: Mutex::new(LruCache::new(capacity)),
                loads: Arc::new(Semaphore::new(policy.max_loads())),
                refreshing: Arc::new(Semaphore::new((policy.max_loads() / 4).max(1))),
                counters: Arc::new(Counters {
                    name,
                    ..Counters::default()
                }),
                sweep: Registration::new(weak.clone()),
            }),
        }
    }

    pub(crate) fn policy(&self) -> &CachePolicy {
        &self.inner.policy
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// The counters and the number of entries held.
    pub(crate) fn snapshot(&self) -> CacheStats {
        let c = &self.inner.counters;
        let entries = self.lock().iter().filter(|(_, s)| s.entry.is_some()).count() as u64;
        CacheStats {
            hits: c.hits.load(Relaxed),
            misses: c.misses.load(Relaxed),
            waits: c.waits.load(Relaxed),
            bypasses: c.bypasses.load(Relaxed),
            refreshes: c.refreshes.load(Relaxed),
            refresh_failures: c.refresh_failures.load(Relaxed),
            loads: c.loads.load(Relaxed),
            load_failures: c.load_failures.load(Relaxed),
            stale_uses: c.stale_uses.load(Relaxed),
            expired: c.expired.load(Relaxed),
            evicted: c.evicted.load(Relaxed),
            revoked: c.revoked.load(Relaxed),
            wiped: c.wiped.load(Relaxed),
            entries,
        }
    }

    /// Test support: the entries held.
    #[cfg(test)]
    pub(crate) fn held(&self) -> Vec<Arc<Entry<V>>> {
        self.lock().iter().filter_map(|(_, s)| s.entry.clone()).collect()
    }

    /// Test support: the bytes one entry takes in the map, less what its
    /// value holds on the heap.
    #[cfg(test)]
    pub(crate) fn entry_size() -> usize {
        std::mem::size_of::<K>() + std::mem::size_of::<Slot<V, E>>() + std::mem::size_of::<Entry<V>>()
    }

    /// Keys held (with an entry or a load under way).
    #[cfg_attr(not(feature = "hierarchy"), allow(dead_code))] // the branch-key cache's `len`
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Drops every entry (wiped once no caller holds them); loads under
    /// way finish for their callers and are not stored.
    pub(crate) fn clear(&self) {
        let dropped: Vec<_> = {
            let mut slots = self.lock();
            let all = slots.iter().map(|(k, _)| *k).collect::<Vec<_>>();
            all.iter().filter_map(|k| slots.pop(k)).collect()
        };
        drop(dropped);
    }

    /// Drops `key`'s entry if `stale` says so (the credentials cache, after
    /// the service rejected what it served). Returns whether it did.
    #[cfg_attr(not(feature = "kms"), allow(dead_code))] // the credentials cache's
    pub(crate) fn invalidate_if(&self, key: &K, stale: impl FnOnce(&Entry<V>) -> bool) -> bool {
        let taken = {
            let mut slots = self.lock();
            match slots.peek_mut(key) {
                Some(slot) if slot.entry.as_deref().is_some_and(stale) => {
                    slot.failed = false;
                    slot.retry_at = None;
                    slot.entry.take()
                }
                _ => None,
            }
        };
        taken.is_some()
    }

    /// Stores `value` under `key` as a companion of `like`: loaded and
    /// expiring with it, never refreshed ahead (it reloads when unusable,
    /// like any entry). Only where it costs nothing: when the cache has
    /// room (a companion never evicts an entry, and is the first evicted
    /// until it is asked for) and `key` holds no entry that lives as long.
    /// Not a load: lookups that find it are hits.
    /// Returns whether it was stored.
    pub(crate) fn seed(&self, key: K, value: V, like: &Entry<V>) -> bool {
        let entry = Arc::new(Entry {
            value,
            loaded: like.loaded,
            refresh_at: like.expires,
            expires: like.expires,
            counters: Arc::clone(&self.inner.counters),
        });
        let mut old = None;
        let held = {
            let mut slots = self.lock();
            let room = slots.len() < slots.cap().get();
            match slots.peek_mut(&key) {
                Some(slot) => {
                    if slot.entry.as_ref().is_some_and(|e| e.expires >= like.expires) {
                        return false;
                    }
                    old = slot.entry.replace(Arc::clone(&entry));
                    slot.loaded();
                }
                None if room => {
                    slots.put(
                        key,
                        Slot {
                            entry: Some(Arc::clone(&entry)),
                            ..Slot::empty()
                        },
                    );
                    // Evicted first, before any entry that was asked for.
                    slots.demote(&key);
                }
                None => return false,
            }
            slots.len()
        };
        drop(old);
        crate::observe::cache_entries(self.inner.counters.name, held as u64);
        self.inner.sweep.expires(self.hard_expiry(&entry).into_std());
        true
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<K, Slot<V, E>>> {
        // Every update is one assignment or map operation: a poisoned lock
        // holds no half-made slot.
        self.inner.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry for `key`, from the cache or from `load`; see the module
    /// docs. `max_age`: this caller uses no entry loaded longer ago (a
    /// shorter TTL than the loader's). `usage` checks (and reserves) a
    /// use of an entry that is young enough.
    pub(crate) async fn get<L, Fut>(
        &self,
        key: K,
        max_age: Duration,
        mut usage: impl FnMut(&V) -> Usage,
        load: L,
    ) -> std::result::Result<Arc<Entry<V>>, Arc<E>>
    where
        L: Fn(Origin) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<Load<V>, E>> + Send + 'static,
    {
        let counters = &self.inner.counters;
        // When this lookup first found it must load (read then, not on
        // every hit): its load's deadline counts from then.
        let mut began = None;
        // Whether this lookup has been counted (a miss or a wait).
        let mut counted = false;
        loop {
            let now = Instant::now();
            let step = self.step(key, now, max_age, &mut usage);
            let flight = match step {
                Step::Serve(entry, refresh) => {
                    if let Some(flight) = refresh {
                        self.spawn_refresh(key, flight, load(Origin::Refresh));
                    }
                    if !counted {
                        counters.add(Event::Hit, 1);
                    }
                    return Ok(entry);
                }
                Step::Load(flight) => flight,
            };
            let began = *began.get_or_insert_with(std::time::Instant::now);
            let mut led = false;
            let outcome = flight
                .get_or_init(|| {
                    led = true;
                    self.loading(began, load(Origin::Caller))
                })
                .await
                .clone();
            self.land(&key, &flight, &outcome, Origin::Caller);
            if !counted {
                counters.add(if led { Event::Miss } else { Event::Wait }, 1);
                counted = true;
            }
            match outcome {
                Ok(entry) => {
                    // Fresh from its load: only this caller's checks remain,
                    // under the lock like every use reserved (the waiters
                    // of one load wake together).
                    let usable = {
                        let _slots = self.lock();
                        Instant::now().saturating_duration_since(entry.loaded) < max_age
                            && usage(&entry.value) != Usage::Spent
                    };
                    if usable {
                        return Ok(entry);
                    }
                }
                Err(e) if !led && !e.is_shared() => {}
                Err(e) => {
                    if e.is_transient() {
                        if let Some(stale) = self.stale(&key, Instant::now(), &mut usage) {
                            return Ok(stale);
                        }
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Decides a lookup under the lock.
    fn step(
        &self,
        key: K,
        now: Instant,
        max_age: Duration,
        usage: &mut impl FnMut(&V) -> Usage,
    ) -> Step<V, E> {
        let policy = &self.inner.policy;
        let counters = &self.inner.counters;
        let mut slots = self.lock();
        let slot = match slots.get_mut(&key) {
            Some(slot) => slot,
            None => {
                let flight: Flight<V, E> = Arc::new(OnceCell::new());
                if let Some((old, _)) = slots.push(
                    key,
                    Slot {
                        flight: Some(Arc::clone(&flight)),
                        ..Slot::empty()
                    },
                ) {
                    if old != key {
                        counters.add(Event::Evicted, 1);
                    }
                }
                return Step::Load(flight);
            }
        };
        loop {
            let Some(entry) = &slot.entry else {
                match slot.next.take() {
                    Some(next) => {
                        slot.entry = Some(next);
                        continue;
                    }
                    None => break,
                }
            };
            let usable = now < entry.expires;
            let young = usable && now.saturating_duration_since(entry.loaded) < max_age;
            let spent = if young {
                match usage(&entry.value) {
                    Usage::Spent => true,
                    use_ => {
                        let entry = Arc::clone(entry);
                        let due = use_ == Usage::Low || now >= entry.refresh_at;
                        let refresh = (due && policy.refresh_ahead())
                            .then(|| self.start_refresh(slot, now))
                            .flatten();
                        return Step::Serve(entry, refresh);
                    }
                }
            } else if !usable && (slot.failed || slot.refreshing) && self.within_stale(entry, now) {
                if usage(&entry.value) != Usage::Spent {
                    // Expired, and its reload failed transiently or its
                    // refresh, started in the grace window, is still under
                    // way (slower than the window: KMS in trouble): serve
                    // stale, and try again in the background.
                    counters.add(Event::StaleUse, 1);
                    let entry = Arc::clone(entry);
                    let refresh = self.start_refresh(slot, now);
                    return Step::Serve(entry, refresh);
                }
                true
            } else {
                false
            };
            if let Some(next) = slot.next.take() {
                // Used up or expired, and its successor is ready: it takes
                // over (the old entry is wiped once no caller holds it).
                counters.add(Event::Expired, 1);
                slot.entry = Some(next);
                continue;
            }
            // Nothing usable for this caller. The entry stays while it is
            // usable by others (a caller with a shorter TTL reloads it) or
            // may serve stale if its reload fails; a used-up or dead one goes.
            let keep = !spent && (usable || self.within_stale(entry, now));
            if !keep {
                counters.add(Event::Expired, 1);
                slot.entry = None;
                slot.failed = false;
            }
            break;
        }
        let flight = slot.flight.get_or_insert_with(|| Arc::new(OnceCell::new()));
        Step::Load(Arc::clone(flight))
    }

    /// When the sweeper drops `entry`: its expiry plus the stale allowance.
    fn hard_expiry(&self, entry: &Entry<V>) -> Instant {
        later(
            entry.expires,
            self.inner.policy.stale_if_error().unwrap_or(Duration::ZERO),
        )
    }

    /// Whether `entry`, expired at `now`, may still serve stale.
    fn within_stale(&self, entry: &Entry<V>, now: Instant) -> bool {
        self.inner
            .policy
            .stale_if_error()
            .is_some_and(|max| now < later(entry.expires, max))
    }

    /// A stale entry for `key` after a transient failure of its load, if
    /// the policy allows one (counted).
    fn stale(&self, key: &K, now: Instant, usage: &mut impl FnMut(&V) -> Usage) -> Option<Arc<Entry<V>>> {
        let slots = self.lock();
        let entry = slots.peek(key)?.entry.as_ref()?;
        if !self.within_stale(entry, now) || usage(&entry.value) == Usage::Spent {
            return None;
        }
        self.inner.counters.add(Event::StaleUse, 1);
        Some(Arc::clone(entry))
    }

    /// A caller's load under a permit of the fan-out cap, for a lookup that
    /// began at `began`: the load's deadline counts from then
    /// ([`lookup_began`]), so the wait for the permit is within it. (The
    /// permits go in turn, and every load ahead ends by a deadline that
    /// began earlier: a caller waits at most about its own deadline.)
    async fn loading<Fut>(&self, began: std::time::Instant, load: Fut) -> Outcome<V, E>
    where
        Fut: std::future::Future<Output = std::result::Result<Load<V>, E>>,
    {
        let loaded = load::within_lookup(began, async {
            let permit = self.inner.loads.acquire().await;
            let loaded = load.await;
            drop(permit);
            loaded
        })
        .await;
        finish(loaded, &self.inner.policy, &self.inner.counters)
    }

    /// Stores a load's outcome in `key`'s slot, if the slot still waits for
    /// this flight (the first caller back does it; later ones find it done).
    fn land(&self, key: &K, flight: &Flight<V, E>, outcome: &Outcome<V, E>, origin: Origin) {
        let counters = &self.inner.counters;
        let now = Instant::now();
        let mut old = None;
        let mut expiry = None;
        let held = {
            let mut slots = self.lock();
            let Some(slot) = slots.peek_mut(key) else {
                return;
            };
            if !slot.flight.as_ref().is_some_and(|f| Arc::ptr_eq(f, flight)) {
                return;
            }
            slot.flight = None;
            slot.refreshing = false;
            match outcome {
                Ok(entry)
                    if origin == Origin::Refresh
                        && self.inner.policy.successor_waits()
                        && slot.entry.as_ref().is_some_and(|e| now < e.expires) =>
                {
                    // Refreshed ahead: the successor waits for the current
                    // entry to be used up or expire.
                    old = slot.next.replace(Arc::clone(entry));
                    slot.loaded();
                    expiry = Some(self.hard_expiry(entry));
                }
                Ok(entry) => {
                    old = slot.entry.replace(Arc::clone(entry));
                    slot.loaded();
                    expiry = Some(self.hard_expiry(entry));
                }
                Err(e) if e.is_transient() => {
                    slot.failed = true;
                    let (ttl, left) = slot.entry.as_ref().map_or((Duration::ZERO, Duration::ZERO), |e| {
                        (e.expires - e.loaded, e.expires.saturating_duration_since(now))
                    });
                    slot.failures = slot.failures.saturating_add(1);
                    // Doubling; while the entry is valid, never past half
                    // the time it has left (credentials in their refresh
                    // window are retried before they expire).
                    let mut delay = self.inner.policy.retry_delay(ttl, slot.failures);
                    if !left.is_zero() {
                        delay = delay.min((left / 2).max(self.inner.policy.retry_interval(ttl)));
                    }
                    let jittered = delay.mul_f64(1.0 + 0.5 * unit_random());
                    slot.retry_at = Some(later(now, jittered));
                    if slot.entry.is_none() {
                        slots.pop(key);
                    }
                }
                Err(_) => {
                    // Revocation is never postponed: the entry goes now.
                    if let Some(slot) = slots.pop(key) {
                        if slot.entry.is_some() {
                            counters.add(Event::Revoked, 1);
                        }
                        old = slot.entry;
                    }
                }
            }
            slots.len()
        };
        drop(old);
        crate::observe::cache_entries(counters.name, held as u64);
        if let Some(at) = expiry {
            self.inner.sweep.expires(at.into_std());
        }
    }
}

/// An entry from a load's result (jittered times), or its error (counted).
fn finish<V, E>(
    loaded: std::result::Result<Load<V>, E>,
    policy: &CachePolicy,
    counters: &Arc<Counters>,
) -> Outcome<V, E> {
    match loaded {
        Ok(load) => {
            counters.add(Event::Load, 1);
            let now = Instant::now();
            let keep = 1.0 - policy.jitter() * unit_random();
            let ttl = load.ttl.mul_f64(keep);
            let refresh_after = match load.refresh_after {
                Some(after) => after.mul_f64(keep),
                None => ttl.mul_f64(1.0 - policy.grace()),
            };
            let far = |d: Duration| now.checked_add(d).unwrap_or_else(|| now + FAR);
            Ok(Arc::new(Entry {
                value: load.value,
                loaded: now,
                refresh_at: far(refresh_after.min(ttl)),
                expires: far(ttl),
                counters: Arc::clone(counters),
            }))
        }
        Err(e) => {
            counters.add(Event::LoadFailed, 1);
            Err(Arc::new(e))
        }
    }
}

/// `at` + `d`, or [`FAR`] past `at` where that does not fit.
fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .unwrap_or_else(|| at.checked_add(FAR).unwrap_or(at))
}

/// Stands for "never" where an `Instant` cannot hold the real time.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A uniform draw from [0, 1).
fn unit_random() -> f64 {
    // 53 random bits: every double in [0, 1) a multiple of 2^-53.
    (rand_core::OsRng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

impl<K, V, E> Sweep for Inner<K, V, E>
where
    K: Hash + Eq + Copy + Send + 'static,
    V: Send + Sync + 'static,
    E: LoadError,
{
    fn sweep(&self, now: std::time::Instant) -> Option<std::time::Instant> {
        let stale = self.policy.stale_if_error().unwrap_or(Duration::ZERO);
        let hard = |e: &Entry<V>| later(e.expires, stale).into_std();
        let mut dropped = Vec::new();
        let (next, entries) = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            let due = |e: &Option<Arc<Entry<V>>>| e.as_deref().is_some_and(|e| hard(e) <= now);
            let expired: Vec<K> = slots
                .iter()
                .filter(|(_, s)| due(&s.entry) || due(&s.next))
                .map(|(k, _)| *k)
                .collect();
            for key in expired {
                let Some(slot) = slots.peek_mut(&key) else {
                    continue;
                };
                if due(&slot.next) {
                    dropped.extend(slot.next.take());
                }
                if due(&slot.entry) {
                    dropped.extend(slot.entry.take());
                    // A refreshed successor takes over.
                    slot.entry = slot.next.take();
                }
                if slot.entry.is_none() && slot.flight.is_none() {
                    slots.pop(&key);
                }
            }
            let next = slots
                .iter()
                .flat_map(|(_, s)| [s.entry.as_deref(), s.next.as_deref()])
                .flatten()
                .map(hard)
                .min();
            (next, slots.len() as u64)
        };
        self.counters.add(Event::Expired, dropped.len() as u64);
        crate::observe::cache_entries(self.counters.name, entries);
        // Wiped here (or by the last caller still holding one), outside the lock.
        drop(dropped);
        next
    }
}

#[cfg(test)]
mod tests;
