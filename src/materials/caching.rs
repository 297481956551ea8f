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
//! the message's header.
//!
//! The entries live in the crate's cache engine ([`crate::cache`]): a
//! bounded number of entries, least recently used evicted first; one
//! keyring call for concurrent misses of one entry (single flight; the
//! others wait for it and share its result or its error); refresh ahead,
//! jitter and stale-if-error as the cache's [`CachePolicy`] says. An encrypt
//! entry is refreshed ahead in the last grace share of its age or of its
//! message or byte limit: its successor (a new data key) takes over when it
//! is used up or expires, so each data key serves its limits in full and
//! no message waits for a keyring call while an entry is usable.
//!
//! An entry past its `max_age` (that of the manager that stored it) is
//! dropped when it expires, not at its next lookup: the process-wide
//! sweeper drops it within [`crate::CACHE_SWEEP_INTERVAL`] of its expiry,
//! counted in [`CacheStats::expired`]. Data keys are zeroized when the last
//! message using an evicted or expired entry drops it.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::cmm::{encryption_materials, EncryptMaterialsOut, EncryptRequest};
use super::{DecryptionMaterials, Keyring};
use crate::cache::{Cache, CachePolicy, CacheStats, Entry, Load, Origin, Usage};
use crate::crypto::{sha512_concat, Backend, DataKey};
use crate::error::{Error, Result};
use crate::format::EncryptedDataKey;
use crate::suite::{AlgorithmSuite, Kdf};
use ids::{decrypt_entry_id, EntryId, IdMemo};

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

/// A bounded, thread-safe store of data keys. Cheap to clone (a shared
/// handle); managers that share one keep apart by partition. Built with
/// [`MaterialsCache::new`] (the default [`CachePolicy`]) or
/// [`MaterialsCache::builder`].
///
/// An entry lives `max_age` (the [`CacheLimits`] of the client that
/// stored it) less its jitter; in the last [`CachePolicy::grace`] share of
/// that, or of its message and byte limits, the next lookup refreshes it
/// in the background (a new data key from the keyring) while messages keep
/// using it. Expired entries are dropped within
/// [`crate::CACHE_SWEEP_INTERVAL`], whether or not they are asked for
/// again; a data key is zeroized once no message uses it. The sweeper
/// holds the cache weakly: dropping the last handle frees every entry.
#[derive(Clone)]
pub struct MaterialsCache {
    inner: Cache<EntryId, Cached, Error>,
}

impl fmt::Debug for MaterialsCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MaterialsCache")
            .field("policy", self.inner.policy())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Builds a [`MaterialsCache`]; see [`MaterialsCache::builder`].
#[derive(Clone, Copy, Debug)]
pub struct MaterialsCacheBuilder {
    capacity: usize,
    policy: CachePolicy,
}

impl MaterialsCacheBuilder {
    /// How entries are refreshed and ride out failures (default
    /// [`CachePolicy::default`]).
    pub fn policy(mut self, policy: CachePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Builds the cache.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero capacity.
    pub fn build(self) -> Result<MaterialsCache> {
        let capacity = crate::cache::checked_capacity(self.capacity, "cache capacity")?;
        Ok(MaterialsCache {
            inner: Cache::new("data_key", capacity, self.policy),
        })
    }
}

/// A cached data key: an encrypt entry (the materials and how much they
/// have encrypted) or a decrypt entry (an unwrapped data key).
enum Cached {
    Encrypt {
        materials: Arc<EncryptMaterialsOut>,
        messages: AtomicU64,
        bytes: AtomicU64,
        /// Whether its decrypt companion was offered to the cache.
        seeded: AtomicBool,
    },
    Decrypt(Arc<DataKey>),
}

impl MaterialsCache {
    /// A cache holding at most `capacity` entries, with the default
    /// [`CachePolicy`].
    ///
    /// # Errors
    /// [`Error::Config`] for a zero capacity.
    pub fn new(capacity: usize) -> Result<Self> {
        Self::builder(capacity).build()
    }

    /// A builder for a cache of at most `capacity` entries.
    pub fn builder(capacity: usize) -> MaterialsCacheBuilder {
        MaterialsCacheBuilder {
            capacity,
            policy: CachePolicy::default(),
        }
    }

    /// The cache's policy.
    pub fn policy(&self) -> &CachePolicy {
        self.inner.policy()
    }

    /// Counters and the number of entries.
    pub fn stats(&self) -> CacheStats {
        self.inner.snapshot()
    }

    /// Drops every entry (their data keys are zeroized once no message
    /// uses them).
    pub fn clear(&self) {
        self.inner.clear();
    }
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
        let counters = self.cache.inner.counters();
        let len = match plaintext_len {
            Some(len) if len <= self.limits.max_bytes && suite.kdf() != Kdf::Identity => len,
            _ => {
                counters.bypass();
                let m = encryption_materials(self.keyring(), request, None).await?;
                return Ok(Arc::new(m));
            }
        };
        let key = self
            .memo
            .encrypt_id(&self.partition, suite, request.context, request.required)?;
        let limits = self.limits;
        let grace = self.cache.policy().grace();
        // A use of an encrypt entry: reserved when the limits have room; in
        // the grace window once it reaches the last `grace` share of them.
        let usage = |cached: &Cached| match cached {
            Cached::Encrypt { messages, bytes, .. } => {
                let (m, b) = (messages.load(Ordering::Relaxed), bytes.load(Ordering::Relaxed));
                if m >= limits.max_messages || b.saturating_add(len) > limits.max_bytes {
                    return Usage::Spent;
                }
                messages.store(m + 1, Ordering::Relaxed);
                bytes.store(b + len, Ordering::Relaxed);
                let low = m + 1 > grace_start(limits.max_messages, grace)
                    || b + len > grace_start(limits.max_bytes, grace);
                if low {
                    Usage::Low
                } else {
                    Usage::Fresh
                }
            }
            Cached::Decrypt(_) => Usage::Spent,
        };
        let load = |_: Origin| {
            let keyring = Arc::clone(&self.keyring);
            let context = request.context.clone();
            let required = request.required.to_vec();
            let (backend, max_edks) = (request.backend, request.max_edks);
            async move {
                let request = EncryptRequest {
                    suite,
                    context: &context,
                    backend,
                    max_edks,
                    required: &required,
                };
                let materials = Arc::new(encryption_materials(keyring.as_ref(), request, None).await?);
                let cached = Cached::Encrypt {
                    materials,
                    messages: AtomicU64::new(0),
                    bytes: AtomicU64::new(0),
                    seeded: AtomicBool::new(false),
                };
                Ok(Load::new(cached, limits.max_age))
            }
        };
        let entry = self
            .cache
            .inner
            .get(key, limits.max_age, usage, load)
            .await
            .map_err(|e| e.duplicate())?;
        match &**entry {
            Cached::Encrypt {
                materials, seeded, ..
            } => {
                // Once per data key, at its first use: its messages can be
                // read back with no keyring call (see `seed_decrypt`).
                if !seeded.load(Ordering::Relaxed) && !seeded.swap(true, Ordering::Relaxed) {
                    self.seed_decrypt(suite, materials, &entry);
                }
                Ok(Arc::clone(materials))
            }
            Cached::Decrypt(_) => Err(Error::Internal("a decrypt entry under an encrypt id")),
        }
    }

    /// Stores the decrypt entry the messages of an encrypt entry's data key
    /// will look up (same encrypted data keys, same full context): a
    /// process reads what it wrote with no keyring call while the data key
    /// is cached. It already holds the key; the entry lives and expires
    /// with the encrypt entry, and is stored only where the cache has room
    /// (see [`Cache::seed`]).
    fn seed_decrypt(&self, suite: AlgorithmSuite, materials: &EncryptMaterialsOut, like: &Entry<Cached>) {
        let Ok(id) = decrypt_entry_id(&self.partition, suite, &materials.edks, &materials.context) else {
            return;
        };
        let key = DataKey::from_slice(materials.data_key.expose_secret());
        self.cache.inner.seed(id, Cached::Decrypt(Arc::new(key)), like);
    }

    /// The data key for a message's encrypted data keys, from the cache
    /// when it is there and young enough.
    pub(crate) async fn decrypt_data_key(
        &self,
        materials: &DecryptionMaterials,
        edks: &[EncryptedDataKey],
    ) -> Result<Option<DataKey>> {
        let counters = self.cache.inner.counters();
        let suite = materials.suite();
        if suite.kdf() == Kdf::Identity {
            counters.bypass();
            return self.keyring.on_decrypt(materials, edks).await;
        }
        let key = self
            .memo
            .decrypt_id(&self.partition, suite, edks, materials.context())?;
        let max_age = self.limits.max_age;
        let usage = |cached: &Cached| match cached {
            Cached::Decrypt(_) => Usage::Fresh,
            Cached::Encrypt { .. } => Usage::Spent,
        };
        let load = |_: Origin| {
            let keyring = Arc::clone(&self.keyring);
            let materials = materials.clone();
            let edks = edks.to_vec();
            async move {
                match keyring.on_decrypt(&materials, &edks).await? {
                    Some(k) => Ok(Load::new(Cached::Decrypt(Arc::new(k)), max_age)),
                    // No keyring could unwrap: the waiters fail the same way.
                    None => Err(Error::NoMatchingKey { edks: edks.len() }),
                }
            }
        };
        match self.cache.inner.get(key, max_age, usage, load).await {
            Ok(entry) => match &**entry {
                Cached::Decrypt(k) => Ok(Some(DataKey::from_slice(k.expose_secret()))),
                Cached::Encrypt { .. } => Err(Error::Internal("an encrypt entry under a decrypt id")),
            },
            Err(e) if matches!(*e, Error::NoMatchingKey { .. }) => Ok(None),
            Err(e) => Err(e.duplicate()),
        }
    }
}

/// The use (messages or bytes) after which an entry with `limit` is in its
/// grace window: the last `grace` share of the limit, rounded up so that a
/// small limit is not refreshed before it is nearly used (1,000 messages
/// with grace 0.1: from the 901st; 10: the 10th; 2: never).
fn grace_start(limit: u64, grace: f64) -> u64 {
    // The cast saturates; a limit near 2^63 loses only low bits.
    ((limit as f64 * (1.0 - grace)).ceil() as u64).min(limit)
}

#[cfg(test)]
mod tests;
