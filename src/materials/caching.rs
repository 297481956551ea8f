//! The caching materials manager: data keys reused under limits.
//!
//! Spec: `framework/caching-cmm.md`. An encrypt entry holds everything a
//! message needs from its materials (data key, encrypted data keys, full
//! context, signing key) and may serve at most `max_messages` messages and
//! `max_bytes` of plaintext within `max_age`; a decrypt entry holds an
//! unwrapped data key for `max_age`. Entries are keyed by the spec's cache
//! entry identifiers (Appendix A): SHA-512 digests of the partition, suite
//! and context and, on decrypt, of every encrypted data key (their digests
//! sorted, so their order does not matter), so different contexts, suites
//! or keyrings (each manager has its own partition) never share a key, and
//! a decrypt entry costs the same few hundred bytes whatever the size of
//! the message's header. A bounded number of entries is kept, least recently
//! used evicted first. Concurrent misses for one entry make one
//! keyring call (single flight); the others wait for it and share its
//! result or its error.
//!
//! An entry past its `max_age` (that of the manager that stored it) is
//! dropped when it expires, not at its next lookup: the process-wide
//! sweeper ([`super::sweep`]) drops it within [`crate::CACHE_SWEEP_INTERVAL`] of
//! its expiry, counted in [`CacheStats::expired`]. Data keys are zeroized
//! when the last message using an evicted or expired entry drops it.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use lru::LruCache;

use super::cmm::{encryption_materials, EncryptMaterialsOut, EncryptRequest};
use super::sweep::{take_expired, Registration, Sweep};
use super::{DecryptionMaterials, Keyring};
use crate::crypto::{sha512_concat, Backend, DataKey};
use crate::error::{Error, Result};
use crate::format::EncryptedDataKey;
use crate::suite::Kdf;
use ids::{EntryId, IdMemo};

mod ids;

/// Most messages one data key may encrypt (the ESDK's bound, 2^32).
pub const MAX_MESSAGES_LIMIT: u64 = 1 << 32;

/// Most plaintext bytes one data key may encrypt, and the default
/// (spec `framework/caching-cmm.md`, "Limit Bytes": 2^63 - 1).
pub const MAX_BYTES_LIMIT: u64 = (1 << 63) - 1;

/// How long and how much one cached data key may be used; built with
/// [`CacheLimits::builder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    max_age: Duration,
    max_messages: u64,
    max_bytes: u64,
}

/// Builds a [`CacheLimits`]; see [`CacheLimits::builder`].
#[derive(Clone, Copy, Debug)]
pub struct CacheLimitsBuilder(CacheLimits);

impl CacheLimitsBuilder {
    /// Most messages one data key encrypts (1 to 2^32; default 2^32).
    pub fn max_messages(mut self, messages: u64) -> Self {
        self.0.max_messages = messages;
        self
    }

    /// Most plaintext bytes one data key encrypts (at most 2^63 - 1, the
    /// default). A message larger than this, or of unknown length
    /// (streaming without a declared length), bypasses the cache.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.0.max_bytes = bytes;
        self
    }

    /// Checks the limits and returns them.
    ///
    /// # Errors
    /// [`Error::Config`] naming the limit: a zero age, messages outside 1 to
    /// 2^32, bytes above 2^63 - 1.
    pub fn build(self) -> Result<CacheLimits> {
        self.0.validate()?;
        Ok(self.0)
    }
}

impl CacheLimits {
    /// A builder: entries live at most `max_age` (and are dropped within
    /// [`crate::CACHE_SWEEP_INTERVAL`] after it, asked for or not); by
    /// default a data key encrypts up to 2^32 messages and 2^63 - 1 bytes.
    pub fn builder(max_age: Duration) -> CacheLimitsBuilder {
        CacheLimitsBuilder(CacheLimits {
            max_age,
            max_messages: MAX_MESSAGES_LIMIT,
            max_bytes: MAX_BYTES_LIMIT,
        })
    }

    /// Checks the limits (in [`CacheLimitsBuilder::build`], and again
    /// where a manager takes them).
    fn validate(&self) -> Result<()> {
        if self.max_age.is_zero() {
            return Err(Error::config("cache max age", "must be above zero"));
        }
        if self.max_messages == 0 || self.max_messages > MAX_MESSAGES_LIMIT {
            return Err(Error::config(
                "cache max messages",
                format!("must be 1 to 2^32, not {}", self.max_messages),
            ));
        }
        if self.max_bytes > MAX_BYTES_LIMIT {
            return Err(Error::config(
                "cache max bytes",
                format!("must be at most 2^63 - 1, not {}", self.max_bytes),
            ));
        }
        Ok(())
    }

    /// The age limit.
    pub fn age(&self) -> Duration {
        self.max_age
    }

    /// The message limit.
    pub fn messages(&self) -> u64 {
        self.max_messages
    }

    /// The byte limit.
    pub fn bytes(&self) -> u64 {
        self.max_bytes
    }
}

/// What a cache has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups served from an entry.
    pub hits: u64,
    /// Lookups that found no usable entry and called the keyring.
    pub misses: u64,
    /// Lookups that waited for another caller's keyring call.
    pub waits: u64,
    /// Requests that skipped the cache (unknown or too-large plaintext,
    /// a suite without key derivation).
    pub bypasses: u64,
    /// Entries dropped for age (at a lookup or by the sweeper, within
    /// [`crate::CACHE_SWEEP_INTERVAL`] of their expiry), messages or bytes.
    pub expired: u64,
    /// Entries dropped to make room (least recently used).
    pub evicted: u64,
    /// Entries held now.
    pub entries: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    waits: AtomicU64,
    bypasses: AtomicU64,
    expired: AtomicU64,
    evicted: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A bounded, thread-safe store of data keys. Cheap to clone (a shared
/// handle); managers that share one keep apart by partition.
///
/// An entry expires `max_age` after it was stored (the [`CacheLimits`] of
/// the client that stored it) and is then dropped within
/// [`crate::CACHE_SWEEP_INTERVAL`], whether or not it is asked for again; its data
/// key is zeroized once no message uses it. The sweeper holds the cache
/// weakly: dropping the last handle frees every entry.
#[derive(Clone)]
pub struct MaterialsCache {
    inner: Arc<CacheInner>,
}

struct CacheInner {
    entries: Mutex<LruCache<EntryId, Slot>>,
    counters: Counters,
    /// This cache's place in the sweeper's table.
    sweep: Registration,
}

impl fmt::Debug for MaterialsCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaterialsCache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

enum Slot {
    Encrypt(EncryptEntry),
    Decrypt(DecryptEntry),
    /// A keyring call is under way for this entry.
    Loading(Arc<Flight>),
}

struct EncryptEntry {
    materials: Arc<EncryptMaterialsOut>,
    created: Instant,
    /// `created` + the storing manager's `max_age` (`None`: beyond what
    /// an `Instant` holds, never).
    expires: Option<Instant>,
    messages: u64,
    bytes: u64,
}

struct DecryptEntry {
    data_key: Arc<DataKey>,
    created: Instant,
    /// As [`EncryptEntry::expires`].
    expires: Option<Instant>,
}

impl Slot {
    /// When the entry expires (a load under way does not).
    fn expires(&self) -> Option<Instant> {
        match self {
            Slot::Encrypt(e) => e.expires,
            Slot::Decrypt(e) => e.expires,
            Slot::Loading(_) => None,
        }
    }

    /// Whether the entry has expired at `now`.
    fn expired(&self, now: Instant) -> bool {
        self.expires().is_some_and(|at| at <= now)
    }
}

/// One keyring call that other callers wait on.
struct Flight {
    /// Closed when the call ends (never given permits).
    done: tokio::sync::Semaphore,
    /// The error, if the call failed.
    failure: OnceLock<Error>,
}

impl MaterialsCache {
    /// A cache holding at most `capacity` entries.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero capacity.
    pub fn new(capacity: usize) -> Result<Self> {
        let capacity = NonZeroUsize::new(capacity)
            .ok_or_else(|| Error::config("cache capacity", "must be above zero"))?;
        Ok(MaterialsCache {
            inner: Arc::new_cyclic(|inner: &Weak<CacheInner>| CacheInner {
                entries: Mutex::new(LruCache::new(capacity)),
                counters: Counters::default(),
                sweep: Registration::new(inner.clone()),
            }),
        })
    }

    /// Counters and the number of entries.
    pub fn stats(&self) -> CacheStats {
        let c = &self.inner.counters;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            waits: c.waits.load(Ordering::Relaxed),
            bypasses: c.bypasses.load(Ordering::Relaxed),
            expired: c.expired.load(Ordering::Relaxed),
            evicted: c.evicted.load(Ordering::Relaxed),
            entries: self.lock().len() as u64,
        }
    }

    /// Drops every entry (their data keys are zeroized once no message
    /// uses them).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<EntryId, Slot>> {
        // A panic while holding the lock cannot leave an entry half-written
        // (every update is a single assignment), so a poisoned lock is used.
        self.inner.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts, counting a least-recently-used eviction, and tells the
    /// sweeper when the entry expires.
    fn insert(&self, key: EntryId, slot: Slot) {
        let expires = slot.expires();
        {
            let mut entries = self.lock();
            if let Some((old_key, _old)) = entries.push(key, slot) {
                if old_key != key {
                    bump(&self.inner.counters.evicted);
                }
            }
        }
        if let Some(at) = expires {
            self.inner.sweep.expires(at);
        }
    }

    /// Ends a flight: replaces its slot with `slot` (or removes it) and
    /// wakes the waiters.
    fn land(&self, key: &EntryId, flight: &Arc<Flight>, slot: Option<Slot>, failure: Option<Error>) {
        if let Some(e) = failure {
            let _ = flight.failure.set(e);
        }
        {
            let mut entries = self.lock();
            let ours = matches!(entries.peek(key), Some(Slot::Loading(f)) if Arc::ptr_eq(f, flight));
            if ours {
                entries.pop(key);
            }
        }
        if let Some(slot) = slot {
            self.insert(*key, slot);
        }
        flight.done.close();
    }
}

impl Sweep for CacheInner {
    fn sweep(&self, now: Instant) -> Option<Instant> {
        let (dropped, next) = take_expired(
            &mut self.entries.lock().unwrap_or_else(|p| p.into_inner()),
            |slot| slot.expired(now),
            Slot::expires,
        );
        self.counters
            .expired
            .fetch_add(dropped.len() as u64, Ordering::Relaxed);
        // Wiped here (or by the last message still using a data key),
        // outside the lock.
        drop(dropped);
        next
    }
}

/// Ends a flight if its leader is dropped mid-call (a cancelled future):
/// the waiters retry instead of waiting forever.
struct FlightGuard<'a> {
    cache: &'a MaterialsCache,
    key: &'a EntryId,
    flight: Arc<Flight>,
    landed: bool,
}

impl FlightGuard<'_> {
    fn land(mut self, slot: Option<Slot>, failure: Option<Error>) {
        self.landed = true;
        self.cache.land(self.key, &self.flight, slot, failure);
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        if !self.landed {
            self.cache.land(self.key, &self.flight, None, None);
        }
    }
}

/// What a lookup found.
enum Lookup<T> {
    Hit(T),
    Wait(Arc<Flight>),
    Lead(Arc<Flight>),
}

/// What a probe of the cache found for a key.
enum Probe<T> {
    /// Usable: the value.
    Hit(T),
    /// Another caller is loading it.
    Wait(Arc<Flight>),
    /// An entry too old or used up: replaced (counted as expired).
    Stale,
    /// Nothing usable (absent, or an entry of the other kind).
    Miss,
}

/// A materials manager that caches the data keys of one keyring.
pub(crate) struct CachingCmm {
    keyring: Arc<dyn Keyring>,
    cache: MaterialsCache,
    limits: CacheLimits,
    /// SHA-512 of the partition id.
    partition: [u8; 64],
    /// The last entry ids computed, and from what.
    memo: IdMemo,
}

impl fmt::Debug for CachingCmm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingCmm")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl CachingCmm {
    /// `partition`: entries of managers with different partitions never
    /// mix; `None` makes a random one (this manager's own).
    pub(crate) fn new(
        keyring: Arc<dyn Keyring>,
        cache: MaterialsCache,
        limits: CacheLimits,
        partition: Option<&str>,
        backend: Backend,
    ) -> Result<Self> {
        limits.validate()?;
        let partition = match partition {
            Some(name) => name.as_bytes().to_vec(),
            None => {
                let mut id = vec![0u8; 16];
                backend.fill_random(&mut id)?;
                id
            }
        };
        Ok(CachingCmm {
            keyring,
            cache,
            limits,
            partition: sha512_concat(&[&partition]),
            memo: IdMemo::default(),
        })
    }

    pub(crate) fn keyring(&self) -> &dyn Keyring {
        self.keyring.as_ref()
    }

    pub(crate) fn cache(&self) -> &MaterialsCache {
        &self.cache
    }

    /// Encryption materials for a message of `plaintext_len` bytes (`None`:
    /// unknown), from the cache when an entry has room for it.
    pub(crate) async fn encryption_materials(
        &self,
        request: EncryptRequest<'_>,
        plaintext_len: Option<u64>,
    ) -> Result<Arc<EncryptMaterialsOut>> {
        let suite = request.suite;
        let counters = &self.cache.inner.counters;
        let len = match plaintext_len {
            Some(len) if len <= self.limits.max_bytes && suite.kdf() != Kdf::Identity => len,
            _ => {
                bump(&counters.bypasses);
                let m = encryption_materials(self.keyring(), request, None).await?;
                return Ok(Arc::new(m));
            }
        };
        let key = self
            .memo
            .encrypt_id(&self.partition, suite, request.context, request.required)?;
        let limits = &self.limits;
        let probe = |slot: Option<&mut Slot>| match slot {
            Some(Slot::Encrypt(e)) => {
                let fresh = e.created.elapsed() < limits.max_age
                    && !slot_expired(e.expires)
                    && e.messages < limits.max_messages
                    && e.bytes.saturating_add(len) <= limits.max_bytes;
                if fresh {
                    e.messages += 1;
                    e.bytes += len;
                    Probe::Hit(Arc::clone(&e.materials))
                } else {
                    Probe::Stale
                }
            }
            Some(Slot::Loading(f)) => Probe::Wait(Arc::clone(f)),
            Some(Slot::Decrypt(_)) | None => Probe::Miss,
        };
        let load = || async {
            let m = Arc::new(encryption_materials(self.keyring(), request, None).await?);
            let created = Instant::now();
            let entry = EncryptEntry {
                materials: Arc::clone(&m),
                created,
                expires: created.checked_add(limits.max_age),
                messages: 1,
                bytes: len,
            };
            Ok((m, Some(Slot::Encrypt(entry))))
        };
        self.single_flight(&key, probe, load).await
    }

    /// The data key for a message's encrypted data keys, from the cache
    /// when it is there and young enough.
    pub(crate) async fn decrypt_data_key(
        &self,
        materials: &DecryptionMaterials,
        edks: &[EncryptedDataKey],
    ) -> Result<Option<DataKey>> {
        let counters = &self.cache.inner.counters;
        let suite = materials.suite();
        if suite.kdf() == Kdf::Identity {
            bump(&counters.bypasses);
            return self.keyring.on_decrypt(materials, edks).await;
        }
        let key = self
            .memo
            .decrypt_id(&self.partition, suite, edks, materials.context())?;
        let max_age = self.limits.max_age;
        let probe = |slot: Option<&mut Slot>| match slot {
            Some(Slot::Decrypt(e)) if e.created.elapsed() < max_age && !slot_expired(e.expires) => {
                Probe::Hit(Arc::clone(&e.data_key))
            }
            Some(Slot::Loading(f)) => Probe::Wait(Arc::clone(f)),
            Some(Slot::Decrypt(_)) => Probe::Stale,
            Some(Slot::Encrypt(_)) | None => Probe::Miss,
        };
        let load = || async {
            match self.keyring.on_decrypt(materials, edks).await? {
                Some(k) => {
                    let k = Arc::new(k);
                    let created = Instant::now();
                    let entry = DecryptEntry {
                        data_key: Arc::clone(&k),
                        created,
                        expires: created.checked_add(max_age),
                    };
                    Ok((k, Some(Slot::Decrypt(entry))))
                }
                // No keyring could unwrap: the waiters fail the same way.
                None => Err(Error::NoMatchingKey { edks: edks.len() }),
            }
        };
        match self.single_flight(&key, probe, load).await {
            Ok(k) => Ok(Some(DataKey::from_slice(k.expose_secret()))),
            Err(Error::NoMatchingKey { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One lookup under single flight: a hit returns at once; while another
    /// caller loads the entry this one waits for it (and shares its error,
    /// except a failed cryptographic check: then it tries itself);
    /// otherwise this caller leads: it loads, stores what `load` returns and
    /// wakes the waiters. `probe` sees the entry under the lock (and may
    /// update it on a hit).
    async fn single_flight<T, P, L, Fut>(&self, key: &EntryId, mut probe: P, load: L) -> Result<T>
    where
        P: FnMut(Option<&mut Slot>) -> Probe<T>,
        L: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(T, Option<Slot>)>>,
    {
        let counters = &self.cache.inner.counters;
        let flight = loop {
            let found = {
                let mut entries = self.cache.lock();
                match probe(entries.get_mut(key)) {
                    Probe::Hit(v) => Lookup::Hit(v),
                    Probe::Wait(f) => Lookup::Wait(f),
                    Probe::Stale => {
                        bump(&counters.expired);
                        lead(&mut entries, key, counters)
                    }
                    Probe::Miss => lead(&mut entries, key, counters),
                }
            };
            match found {
                Lookup::Hit(v) => {
                    bump(&counters.hits);
                    return Ok(v);
                }
                Lookup::Wait(flight) => {
                    bump(&counters.waits);
                    wait(&flight).await?;
                }
                Lookup::Lead(flight) => break flight,
            }
        };
        bump(&counters.misses);
        let guard = FlightGuard {
            cache: &self.cache,
            key,
            flight,
            landed: false,
        };
        match load().await {
            Ok((v, slot)) => {
                guard.land(slot, None);
                Ok(v)
            }
            Err(e) => {
                // A failed cryptographic check can depend on the leader's own
                // message (an RSA key is checked against its header), not on
                // the entry: waiters are not failed by it but try themselves.
                let shared = (!e.has_failed_check()).then(|| e.duplicate());
                guard.land(None, shared);
                Err(e)
            }
        }
    }
}

/// Marks `key` as loading (replacing any stale entry) and returns the new
/// flight for the caller to lead.
fn lead<T>(entries: &mut LruCache<EntryId, Slot>, key: &EntryId, counters: &Counters) -> Lookup<T> {
    let flight = Arc::new(Flight {
        done: tokio::sync::Semaphore::new(0),
        failure: OnceLock::new(),
    });
    // A stale entry dropped here is zeroized once no message holds it.
    if let Some((old_key, _)) = entries.push(*key, Slot::Loading(Arc::clone(&flight))) {
        if old_key != *key {
            bump(&counters.evicted);
        }
    }
    Lookup::Lead(flight)
}

/// Whether an entry expiring at `expires` has expired (another manager
/// sharing the cache may have stored it with a shorter `max_age`).
fn slot_expired(expires: Option<Instant>) -> bool {
    expires.is_some_and(|at| at <= Instant::now())
}

/// Waits for a flight to land; its error if it failed.
async fn wait(flight: &Flight) -> Result<()> {
    // The semaphore never has permits: `acquire` returns once it is closed.
    let _ = flight.done.acquire().await;
    match flight.failure.get() {
        Some(e) => Err(e.duplicate()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
