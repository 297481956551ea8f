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
//! an entry costs the same few hundred bytes whatever the size of the
//! message's header. A bounded number of entries is kept, least recently
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
use super::sweep::{Registration, Sweep};
use super::{DecryptionMaterials, Keyring};
use crate::crypto::{sha512_concat, Backend, DataKey};
use crate::error::{Error, FormatError, Result};
use crate::format::{EncryptedDataKey, EncryptionContext};
use crate::suite::{AlgorithmSuite, Kdf};

/// Most messages one data key may encrypt (the ESDK's bound, 2^32).
pub const MAX_MESSAGES_LIMIT: u64 = 1 << 32;

/// Most plaintext bytes one data key may encrypt, and the default
/// (spec `framework/caching-cmm.md`, "Limit Bytes": 2^63 - 1).
pub const MAX_BYTES_LIMIT: u64 = (1 << 63) - 1;

/// How long and how much one cached data key may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    max_age: Duration,
    max_messages: u64,
    max_bytes: u64,
}

impl CacheLimits {
    /// Entries live at most `max_age` (and are dropped within
    /// [`crate::CACHE_SWEEP_INTERVAL`] after it, asked for or not); by
    /// default a data key encrypts up to
    /// 2^32 messages and 2^63 - 1 bytes. Checked, with the other limits,
    /// where they are used ([`crate::ClientBuilder::build`]).
    pub fn new(max_age: Duration) -> Self {
        CacheLimits {
            max_age,
            max_messages: MAX_MESSAGES_LIMIT,
            max_bytes: MAX_BYTES_LIMIT,
        }
    }

    /// Most messages one data key encrypts (1 to 2^32).
    pub fn with_max_messages(mut self, messages: u64) -> Self {
        self.max_messages = messages;
        self
    }

    /// Most plaintext bytes one data key encrypts (at most 2^63 - 1). A
    /// message larger than this, or of unknown length (streaming without a
    /// declared length), bypasses the cache.
    pub fn with_max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Checks the limits.
    ///
    /// # Errors
    /// [`Error::Config`] naming the limit: a zero age, messages outside 1 to
    /// 2^32, bytes above 2^63 - 1.
    pub fn validate(&self) -> Result<()> {
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

/// A cache entry's identifier: a SHA-512 digest (spec
/// `framework/caching-cmm.md`, Appendix A).
type EntryId = [u8; 64];

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
        let mut dropped = Vec::new();
        let next = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            let expired: Vec<EntryId> = entries
                .iter()
                .filter(|(_, slot)| slot.expired(now))
                .map(|(key, _)| *key)
                .collect();
            for key in expired {
                if let Some(slot) = entries.pop(&key) {
                    bump(&self.counters.expired);
                    dropped.push(slot);
                }
            }
            entries.iter().filter_map(|(_, slot)| slot.expires()).min()
        };
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

/// The last encrypt and decrypt entry ids a manager computed and their
/// inputs: records under one context, and messages under one cached data
/// key, reuse the id instead of hashing again (the ids' SHA-512 blocks cost
/// about a microsecond a message, a quarter of a cached 1 KiB record). A
/// contended memo is skipped, never waited for; a decrypt memo holds at
/// most [`MEMO_MAX_EDK_BYTES`] of encrypted data keys.
#[derive(Default)]
struct IdMemo {
    encrypt: Mutex<Option<Memo<Vec<String>>>>,
    decrypt: Mutex<Option<Memo<Vec<EncryptedDataKey>>>>,
}

/// An id and its inputs: suite, context, and the required keys (encrypt)
/// or the encrypted data keys (decrypt).
type Memo<T> = (AlgorithmSuite, EncryptionContext, T, EntryId);

/// The most encrypted data key bytes a decrypt memo holds.
const MEMO_MAX_EDK_BYTES: usize = 4096;

impl IdMemo {
    fn encrypt_id(
        &self,
        partition: &[u8; 64],
        suite: AlgorithmSuite,
        context: &EncryptionContext,
        required: &[String],
    ) -> Result<EntryId> {
        let mut memo = self.encrypt.try_lock().ok();
        if let Some(Some((s, c, r, id))) = memo.as_deref() {
            if *s == suite && c == context && r.as_slice() == required {
                return Ok(*id);
            }
        }
        let id = encrypt_entry_id(partition, suite, context, required)?;
        if let Some(memo) = memo.as_deref_mut() {
            *memo = Some((suite, context.clone(), required.to_vec(), id));
        }
        Ok(id)
    }

    fn decrypt_id(
        &self,
        partition: &[u8; 64],
        suite: AlgorithmSuite,
        edks: &[EncryptedDataKey],
        context: &EncryptionContext,
    ) -> Result<EntryId> {
        let mut memo = self.decrypt.try_lock().ok();
        if let Some(Some((s, c, e, id))) = memo.as_deref() {
            if *s == suite && e.as_slice() == edks && c == context {
                return Ok(*id);
            }
        }
        let id = decrypt_entry_id(partition, suite, edks, context)?;
        let size: usize = edks
            .iter()
            .map(|e| e.provider_id.len() + e.provider_info.len() + e.ciphertext.len())
            .sum();
        if let (Some(memo), true) = (memo.as_deref_mut(), size <= MEMO_MAX_EDK_BYTES) {
            *memo = Some((suite, context.clone(), edks.to_vec(), id));
        }
        Ok(id)
    }
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

/// An encrypt entry's id. Spec `framework/caching-cmm.md`, Appendix A,
/// "Encryption Materials, With Algorithm Suite" (envseal's requests always
/// name a suite): SHA-512(SHA-512(partition) || 01 || suite id ||
/// SHA-512(serialized context)).
///
/// With required encryption context keys (the required-context CMM in
/// front of this one), SHA-512 of those keys (count, then each u16
/// length-prefixed, sorted) follows inside the digest: the
/// cached materials carry the header built for them (required pairs are
/// authenticated, not stored), so requests with the same context but other
/// required keys must not share an entry, and the spec's formula does not
/// tell them apart. Without required keys the id is the spec's.
fn encrypt_entry_id(
    partition: &[u8; 64],
    suite: AlgorithmSuite,
    context: &EncryptionContext,
    required: &[String],
) -> Result<EntryId> {
    let context = sha512_concat(&[&context.serialize()?]);
    let suite = suite.id().to_be_bytes();
    if required.is_empty() {
        return Ok(sha512_concat(&[partition, &[0x01], &suite, &context]));
    }
    let mut sorted: Vec<&str> = required.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut keys = Vec::with_capacity(8 + sorted.iter().map(|k| 2 + k.len()).sum::<usize>());
    keys.extend_from_slice(&(sorted.len() as u64).to_be_bytes());
    for k in sorted {
        keys.extend_from_slice(&u16_len(k.as_bytes(), "required encryption context key")?.to_be_bytes());
        keys.extend_from_slice(k.as_bytes());
    }
    let keys = sha512_concat(&[&keys]);
    Ok(sha512_concat(&[partition, &[0x01], &suite, &context, &keys]))
}

/// A decrypt entry's id. Spec `framework/caching-cmm.md`, Appendix A,
/// "Decryption Materials": SHA-512(SHA-512(partition) || suite id || the
/// sorted SHA-512 digests of the serialized encrypted data keys || 64 zero
/// bytes || SHA-512(serialized context)). The context is the materials'
/// (stored pairs and the caller's reproduced ones, which the keyrings
/// authenticate too).
fn decrypt_entry_id(
    partition: &[u8; 64],
    suite: AlgorithmSuite,
    edks: &[EncryptedDataKey],
    context: &EncryptionContext,
) -> Result<EntryId> {
    let mut digests = Vec::with_capacity(edks.len());
    let mut serialized = Vec::new();
    for edk in edks {
        // Serialized as in the message header (data-format/message-header.md).
        serialized.clear();
        for field in [edk.provider_id.as_bytes(), &edk.provider_info, &edk.ciphertext] {
            serialized.extend_from_slice(&u16_len(field, "encrypted data key")?.to_be_bytes());
            serialized.extend_from_slice(field);
        }
        digests.push(sha512_concat(&[&serialized]));
    }
    digests.sort_unstable();
    let context = sha512_concat(&[&context.serialize()?]);
    let suite = suite.id().to_be_bytes();
    let mut parts: Vec<&[u8]> = Vec::with_capacity(digests.len() + 4);
    parts.push(partition);
    parts.push(&suite);
    parts.extend(digests.iter().map(|d| &d[..]));
    parts.push(&[0; 64]);
    parts.push(&context);
    Ok(sha512_concat(&parts))
}

/// A field's length as the format's u16 prefix.
fn u16_len(bytes: &[u8], field: &'static str) -> Result<u16> {
    u16::try_from(bytes.len()).map_err(|_| {
        FormatError::Invalid {
            field,
            reason: "longer than 65535 bytes",
        }
        .into()
    })
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
mod tests {
    use super::*;
    use crate::materials::RawAesKeyring;
    use crate::WrappingKey;

    /// Evicted and expired materials are freed (their `DataKey`, a
    /// `Zeroizing` buffer, is wiped on drop) once no message holds them.
    #[test]
    fn evicted_and_expired_materials_are_dropped() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let keyring =
            Arc::new(RawAesKeyring::new("ns", "k", WrappingKey::from_slice(&[1; 32]).unwrap()).unwrap());
        let cache = MaterialsCache::new(1).unwrap();
        let limits = CacheLimits::new(Duration::from_secs(60)).with_max_messages(2);
        let cmm = CachingCmm::new(keyring, cache.clone(), limits, None, Backend::default()).unwrap();
        let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
        let get = |table: &str| {
            let context: EncryptionContext = [("t", table)].into_iter().collect();
            let request = EncryptRequest {
                suite,
                context: &context,
                backend: Backend::default(),
                max_edks: None,
                required: &[],
            };
            rt.block_on(cmm.encryption_materials(request, Some(1))).unwrap()
        };
        let a = Arc::downgrade(&get("a"));
        assert!(a.upgrade().is_some(), "held by the cache");
        drop(get("b"));
        assert!(a.upgrade().is_none(), "evicted (capacity 1) and dropped");
        assert_eq!(cache.stats().evicted, 1);

        let b = Arc::downgrade(&get("b"));
        assert!(b.upgrade().is_some());
        drop(get("b")); // third use: over max_messages, a new entry
        assert!(b.upgrade().is_none(), "expired and dropped");
        assert_eq!(cache.stats().expired, 1);
    }
}

#[cfg(test)]
mod sweep_tests {
    use super::*;
    use crate::crypto::KeyCheck;
    use crate::materials::{EncryptionMaterials, RawAesKeyring};
    use crate::WrappingKey;

    /// Most time from an entry's expiry to its sweep that the tests accept:
    /// the documented bound plus slack for a loaded two-core machine.
    const SWEPT_WITHIN: Duration = crate::CACHE_SWEEP_INTERVAL.saturating_add(Duration::from_millis(450));

    fn keyring() -> Arc<RawAesKeyring> {
        Arc::new(RawAesKeyring::new("ns", "k", WrappingKey::from_slice(&[1; 32]).unwrap()).unwrap())
    }

    fn decryption_materials(suite: AlgorithmSuite, context: EncryptionContext) -> DecryptionMaterials {
        let check = Arc::new(KeyCheck {
            backend: Backend::default(),
            suite,
            message_id: vec![0; 32],
            commitment: None,
            aad: Vec::new(),
            iv: [0; crate::crypto::IV_LEN],
            tag: [0; crate::crypto::TAG_LEN],
        });
        DecryptionMaterials::new(suite, context, Backend::default(), check)
    }

    /// Waits until `weak` is freed; panics past `deadline`.
    fn wait_dropped<T>(weak: &std::sync::Weak<T>, deadline: Instant, what: &str) {
        while weak.upgrade().is_some() {
            assert!(
                Instant::now() < deadline,
                "{what} still resident {SWEPT_WITHIN:?} after its expiry"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Encrypt and decrypt entries past `max_age` are dropped (their data
    /// keys wiped) within the sweep bound, with no further lookup.
    #[test]
    fn expired_entries_are_swept_without_a_lookup() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let keyring = keyring();
        let cache = MaterialsCache::new(100).unwrap();
        let max_age = Duration::from_millis(50);
        let cmm = CachingCmm::new(
            keyring.clone(),
            cache.clone(),
            CacheLimits::new(max_age),
            None,
            Backend::default(),
        )
        .unwrap();
        let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
        let context: EncryptionContext = [("t", "a")].into_iter().collect();

        // An encrypt entry.
        let request = EncryptRequest {
            suite,
            context: &context,
            backend: Backend::default(),
            max_edks: None,
            required: &[],
        };
        let held = rt.block_on(cmm.encryption_materials(request, Some(1))).unwrap();
        let expires = Instant::now() + max_age;
        let encrypt_entry = Arc::downgrade(&held);
        drop(held);

        // A decrypt entry.
        let mut enc = EncryptionMaterials::new(suite, context.clone(), Backend::default(), None);
        rt.block_on(keyring.on_encrypt(&mut enc)).unwrap();
        let (_, edks, _) = enc.into_parts();
        let materials = decryption_materials(suite, context.clone());
        rt.block_on(cmm.decrypt_data_key(&materials, &edks))
            .unwrap()
            .unwrap();
        let decrypt_expires = Instant::now() + max_age;
        let decrypt_entry = cache
            .lock()
            .iter()
            .find_map(|(_, slot)| match slot {
                Slot::Decrypt(e) => Some(Arc::downgrade(&e.data_key)),
                _ => None,
            })
            .unwrap();
        assert_eq!(cache.stats().entries, 2);
        assert!(encrypt_entry.upgrade().is_some() && decrypt_entry.upgrade().is_some());

        wait_dropped(&encrypt_entry, expires + SWEPT_WITHIN, "the encrypt entry");
        wait_dropped(
            &decrypt_entry,
            decrypt_expires + SWEPT_WITHIN,
            "the decrypt entry",
        );
        let stats = cache.stats();
        assert_eq!((stats.entries, stats.expired, stats.hits), (0, 2, 0));
    }
}

#[cfg(test)]
mod id_tests {
    use super::*;
    use crate::crypto::KeyCheck;
    use crate::materials::{EncryptionMaterials, RawAesKeyring};
    use crate::WrappingKey;
    use AlgorithmSuite as S;

    /// Bytes the cache's entries hold: each id, the slot, and a decrypt
    /// entry's data key.
    fn entry_bytes(cache: &MaterialsCache) -> usize {
        cache
            .lock()
            .iter()
            .map(|(id, slot)| {
                let held = match slot {
                    Slot::Decrypt(e) => e.data_key.len(),
                    _ => 0,
                };
                id.len() + std::mem::size_of_val(slot) + held
            })
            .sum()
    }

    fn decryption_materials(suite: AlgorithmSuite, context: EncryptionContext) -> DecryptionMaterials {
        let check = Arc::new(KeyCheck {
            backend: Backend::default(),
            suite,
            message_id: vec![0; 32],
            commitment: None,
            aad: Vec::new(),
            iv: [0; crate::crypto::IV_LEN],
            tag: [0; crate::crypto::TAG_LEN],
        });
        DecryptionMaterials::new(suite, context, Backend::default(), check)
    }

    fn edk(provider_id: &str, info: &[u8], ciphertext: &[u8]) -> EncryptedDataKey {
        EncryptedDataKey {
            provider_id: provider_id.to_owned(),
            provider_info: info.to_vec(),
            ciphertext: ciphertext.to_vec(),
        }
    }

    fn b64(id: EntryId) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(id)
    }

    /// The ESDK's cross-implementation cache id vectors (the AWS Encryption
    /// SDK for Java's `CacheIdentifierTests`, "pythonTestVecs" and the
    /// digest vectors; the Python ESDK 4.0.7's
    /// `build_*_materials_cache_key` gives the same six ids).
    #[test]
    fn entry_ids_match_the_esdk_vectors() {
        let partition = sha512_concat(&[b"c15b9079-6d0e-42b6-8784-5e804b025692"]);
        let empty = EncryptionContext::new();
        let full: EncryptionContext = [("this", "is"), ("a", "non-empty"), ("encryption", "context")]
            .into_iter()
            .collect();
        let blobs = [
            edk(
                "this is a provider ID",
                b"this is some key info",
                b"super secret key, now with encryption!",
            ),
            edk(
                "another provider ID!",
                b"this is some different key info",
                b"better super secret key, now with encryption!",
            ),
        ];
        let p384 = S::Aes256GcmIv12Tag16HkdfSha384EcdsaP384;
        assert_eq!(
            b64(encrypt_entry_id(&partition, p384, &empty, &[]).unwrap()),
            "3icBIkLK4V3fVwbm3zSxUdUQV6ZvZYUOLl8buN36g6gDMqAkghcGryxX7QiVABkW1JhB6GRp5z+bzbiuciBcKQ=="
        );
        assert_eq!(
            b64(encrypt_entry_id(&partition, p384, &full, &[]).unwrap()),
            "mRNK7qhTb/kJiiyGPgAevp0gwFRcET4KeeNYwZHhoEDvSUzQiDgl8Of+YRDaVzKxAqpNBgcAuFXde9JlaRRsmw=="
        );
        assert_eq!(
            b64(decrypt_entry_id(&partition, S::Aes128GcmIv12Tag16HkdfSha256, &blobs[..1], &empty).unwrap()),
            "n0zVzk9QIVxhz6ET+aJIKKOJNxtpGtSe1yAbu7WU5l272Iw/jmhlER4psDHJs9Mr8KYiIvLGSXzggNDCc23+9w=="
        );
        assert_eq!(
            b64(decrypt_entry_id(&partition, p384, &blobs, &full).unwrap()),
            "+rtwUe38CGnczGmYu12iqGWHIyDyZ44EvYQ4S6ACmsgS8VaEpiw0RTGpDk6Z/7YYN/jVHOAcNKDyCNP8EmstFg=="
        );

        // Digest vectors: NUL bytes, a supplementary-plane key, empty fields.
        let partition = sha512_concat(&[b"partition ID"]);
        let context: EncryptionContext = [
            ("\0\0TEST", "\0\0test"),
            ("\u{10000}", "UTF-16 surrogate"),
            ("\u{ABCD}", "\\uABCD"),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            hex::encode(
                encrypt_entry_id(&partition, S::Aes128GcmIv12Tag16HkdfSha256, &context, &[]).unwrap()
            ),
            "3dc70ff1d4621059b97179563ab6592dff4319bfaf8ed1a819c96d33d3194d5c\
             354a361e879d0356e4d9e868170ebc9e934fa5eaf6e6d11de4ee801645723fa9"
        );
        let blobs = [
            edk("", b"", b""),
            edk("\0", b"\0", b"\0"),
            edk("\u{81}", b"\x81", b"\x81"),
            edk("abc", &[0xde, 0xad, 0xbe, 0xef], &[0xba, 0xd0, 0xca, 0xfe]),
        ];
        let expected = "e16344634350fe8cb51e69ec4e0681c84ac7ef2df427bd4de4aefbebcd3ead22\
                        95f1b15a98ce60699e0efbf69dbbc12e2552b16eff84a6e9b5766ee4d69a7897";
        let p256 = S::Aes128GcmIv12Tag16HkdfSha256EcdsaP256;
        assert_eq!(
            hex::encode(decrypt_entry_id(&partition, p256, &blobs, &context).unwrap()),
            expected
        );
        // The keys' order does not matter.
        let mut reversed = blobs.to_vec();
        reversed.reverse();
        assert_eq!(
            hex::encode(decrypt_entry_id(&partition, p256, &reversed, &context).unwrap()),
            expected
        );

        // envseal's required keys enter the digest (as a set); without
        // them the id is the spec's.
        let id = |required: &[&str]| {
            let required: Vec<String> = required.iter().map(|k| k.to_string()).collect();
            encrypt_entry_id(&partition, p384, &full, &required).unwrap()
        };
        assert_ne!(id(&["this"]), id(&[]));
        assert_ne!(id(&["this"]), id(&["this", "a"]));
        assert_eq!(id(&["this", "a"]), id(&["a", "this"]));
    }

    /// The memo gives the id the formula gives, whatever came before, and
    /// holds no large header's keys.
    #[test]
    fn memoized_ids_are_the_formulas() {
        let memo = IdMemo::default();
        let partition = sha512_concat(&[b"p"]);
        let suites = [
            S::Aes256GcmHkdfSha512CommitKey,
            S::Aes256GcmIv12Tag16HkdfSha384EcdsaP384,
        ];
        let contexts: [EncryptionContext; 2] = [
            [("t", "a")].into_iter().collect(),
            [("t", "b")].into_iter().collect(),
        ];
        let required = [vec![], vec!["t".to_owned()]];
        let edks = [vec![edk("a", b"1", b"x")], vec![edk("a", b"1", b"y")]];
        for i in [0, 0, 1, 0, 2, 2, 4, 3, 3, 7, 0] {
            let (s, c, r, e) = (
                suites[i & 1],
                &contexts[(i >> 1) & 1],
                &required[(i >> 2) & 1],
                &edks[(i >> 2) & 1],
            );
            assert_eq!(
                memo.encrypt_id(&partition, s, c, r).unwrap(),
                encrypt_entry_id(&partition, s, c, r).unwrap()
            );
            assert_eq!(
                memo.decrypt_id(&partition, s, e, c).unwrap(),
                decrypt_entry_id(&partition, s, e, c).unwrap()
            );
        }
        let large = vec![edk("a", b"1", &[0; MEMO_MAX_EDK_BYTES])];
        memo.decrypt_id(&partition, suites[0], &large, &contexts[0])
            .unwrap();
        assert!(memo
            .decrypt
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|m| m.2 == edks[0]));
    }

    /// 256 decrypt entries of messages with 10,000 encrypted data keys no
    /// keyring of the manager can open (plus one it can) hold a bounded few
    /// hundred bytes each, not the header's size; the same keys in another
    /// order hit the same entry.
    #[test]
    fn decrypt_entries_are_bounded_and_ignore_edk_order() {
        const MESSAGES: usize = 256;
        const SKIPPED: usize = 10_000;
        const MOST_PER_ENTRY: usize = 512;
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let keyring =
            Arc::new(RawAesKeyring::new("ns", "k", WrappingKey::from_slice(&[1; 32]).unwrap()).unwrap());
        let cache = MaterialsCache::new(1000).unwrap();
        let limits = CacheLimits::new(Duration::from_secs(600));
        let cmm = CachingCmm::new(keyring.clone(), cache.clone(), limits, None, Backend::default()).unwrap();
        let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
        let context: EncryptionContext = [("tenant", "t")].into_iter().collect();
        let materials = decryption_materials(suite, context.clone());
        // Another keyring's keys: skipped without a call, as in a header
        // written for many recipients.
        let mut edks: Vec<EncryptedDataKey> = (0..SKIPPED as u32 + 1)
            .map(|i| EncryptedDataKey {
                provider_id: "other".to_owned(),
                provider_info: i.to_be_bytes().to_vec(),
                ciphertext: vec![7; 32],
            })
            .collect();
        let mut first = None;
        for m in 0..MESSAGES {
            let mut enc = EncryptionMaterials::new(suite, context.clone(), Backend::default(), None);
            rt.block_on(keyring.on_encrypt(&mut enc)).unwrap();
            let (data_key, ours, _) = enc.into_parts();
            // The one it can open, among the others.
            edks[SKIPPED / 2] = ours.into_iter().next().unwrap();
            let got = rt
                .block_on(cmm.decrypt_data_key(&materials, &edks))
                .unwrap()
                .unwrap();
            assert_eq!(got.expose_secret(), data_key.unwrap().expose_secret());
            let held = entry_bytes(&cache);
            assert!(
                held <= (m + 1) * MOST_PER_ENTRY,
                "{} entries hold {held} bytes: more than {MOST_PER_ENTRY} each",
                m + 1
            );
            first.get_or_insert_with(|| (edks.clone(), got));
        }
        let stats = cache.stats();
        assert_eq!(
            (stats.entries, stats.misses, stats.hits),
            (MESSAGES as u64, MESSAGES as u64, 0)
        );
        eprintln!("{MESSAGES} entries hold {} bytes", entry_bytes(&cache));

        // The first message's keys in reverse order: the same entry.
        let (mut edks, key) = first.unwrap();
        edks.reverse();
        let got = rt
            .block_on(cmm.decrypt_data_key(&materials, &edks))
            .unwrap()
            .unwrap();
        assert_eq!(got.expose_secret(), key.expose_secret());
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (1, MESSAGES as u64));
    }
}
