//! The AWS KMS Hierarchical keyring. Spec:
//! `framework/aws-kms/aws-kms-hierarchical-keyring.md`.
//!
//! A branch key from the [`KeyStore`] (one DynamoDB GetItem and one KMS
//! Decrypt, then cached for a TTL) wraps each data key under a key derived
//! for that message alone: SP 800-108 counter mode with HMAC-SHA256 over
//! the branch key, label `aws-kms-hierarchy` and a random 16-byte salt,
//! then AES-256-GCM with a random IV and the AAD `aws-kms-hierarchy` ||
//! branch key id || version (16 bytes) || serialized encryption context.
//!
//! EDK: provider id `aws-kms-hierarchy`; provider info = the branch key id;
//! ciphertext = salt (16) || IV (12) || version (16) || encrypted key || tag (16).

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{DecryptionMaterials, EncryptionMaterials, Keyring};
use crate::cache::{Cache, CachePolicy, CacheStats, Entry, Load, Origin, Usage};
use crate::crypto::{kdf_counter_hmac_sha256, sha384_concat, Backend, DataKey, IV_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::format::{EncryptedDataKey, EncryptionContext};
use crate::keystore::{BranchKeyMaterials, KeyStore};
use crate::kms::Deadline;

/// The hierarchical keyring's provider id, also its KDF label and AAD prefix.
pub const HIERARCHY_PROVIDER_ID: &str = "aws-kms-hierarchy";
const SALT_LEN: usize = 16;
const VERSION_LEN: usize = 16;
/// Salt, IV and version before the encrypted key.
const PREFIX_LEN: usize = SALT_LEN + IV_LEN + VERSION_LEN;
/// The spec's default cache capacity (entries).
pub const DEFAULT_BRANCH_KEY_CACHE_CAPACITY: usize = 1000;

/// Chooses the branch key for a request from its encryption context: the
/// tenant's key in a multi-tenant service. Gets the request's context on
/// encrypt and the message's on decrypt.
pub trait BranchKeyIdSupplier: Send + Sync {
    /// The branch key id for `context`.
    ///
    /// # Errors
    /// When no branch key fits the context; the encrypt or decrypt fails
    /// with this error.
    fn branch_key_id(&self, context: &EncryptionContext) -> Result<String>;
}

impl<F> BranchKeyIdSupplier for F
where
    F: Fn(&EncryptionContext) -> Result<String> + Send + Sync,
{
    fn branch_key_id(&self, context: &EncryptionContext) -> Result<String> {
        self(context)
    }
}

/// A cache of unwrapped branch keys, shared by every hierarchical keyring
/// given a clone of it (entries are apart by partition id, logical key
/// store name, branch key id and, on decrypt, version: spec Appendix A).
/// Least recently used entries go first when it is full. Concurrent misses
/// on one entry make one key store read (single flight). Built with
/// [`BranchKeyCache::new`] (the default [`CachePolicy`]) or
/// [`BranchKeyCache::builder`].
///
/// An entry lives the TTL of the keyring that loaded it, less its jitter
/// (keyrings with different TTLs share entries: one with a longer TTL
/// reloads an entry its loader's TTL has expired; one with a shorter TTL
/// does not use an entry older than its own TTL). In the last
/// [`CachePolicy::grace`] share of that life the next lookup reads the
/// branch key again in the background (one GetItem and one KMS Decrypt)
/// while calls keep using the cached one, so no call waits on a warm key;
/// with [`CachePolicy::stale_if_error`] a key whose reload failed
/// transiently keeps serving for up to that long. An expired branch key is
/// dropped within [`crate::CACHE_SWEEP_INTERVAL`] of its expiry whether or
/// not it is asked for again, and wiped once no call holds it; so is an
/// evicted one. The sweeper holds the cache weakly: dropping the last
/// handle frees every entry.
#[derive(Clone)]
pub struct BranchKeyCache {
    inner: Cache<[u8; 48], BranchKeyMaterials, Error>,
}

impl fmt::Debug for BranchKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BranchKeyCache")
            .field("policy", self.inner.policy())
            .field("entries", &self.len())
            .finish_non_exhaustive()
    }
}

/// A cached branch key (dereferences to its materials).
type Cached = Entry<BranchKeyMaterials>;

/// Builds a [`BranchKeyCache`]; see [`BranchKeyCache::builder`].
#[derive(Clone, Copy, Debug)]
pub struct BranchKeyCacheBuilder {
    capacity: usize,
    policy: CachePolicy,
}

impl BranchKeyCacheBuilder {
    /// How branch keys are refreshed and ride out failures (default
    /// [`CachePolicy::default`]).
    pub fn policy(mut self, policy: CachePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Builds the cache.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero capacity.
    pub fn build(self) -> Result<BranchKeyCache> {
        let capacity = crate::cache::checked_capacity(self.capacity, "branch key cache capacity")?;
        Ok(BranchKeyCache {
            inner: Cache::new("branch_key", capacity, self.policy),
        })
    }
}

impl Default for BranchKeyCache {
    fn default() -> Self {
        BranchKeyCache {
            inner: Cache::new(
                "branch_key",
                NonZeroUsize::new(DEFAULT_BRANCH_KEY_CACHE_CAPACITY).unwrap_or(NonZeroUsize::MIN),
                CachePolicy::default(),
            ),
        }
    }
}

impl BranchKeyCache {
    /// A cache of at most `capacity` branch keys, with the default
    /// [`CachePolicy`].
    ///
    /// # Errors
    /// [`Error::Config`] for a zero capacity.
    pub fn new(capacity: usize) -> Result<Self> {
        Self::builder(capacity).build()
    }

    /// A builder for a cache of at most `capacity` branch keys.
    pub fn builder(capacity: usize) -> BranchKeyCacheBuilder {
        BranchKeyCacheBuilder {
            capacity,
            policy: CachePolicy::default(),
        }
    }

    /// The cache's policy.
    pub fn policy(&self) -> &CachePolicy {
        self.inner.policy()
    }

    /// Counters and the number of entries ([`CacheStats::bypasses`] is
    /// always 0 here).
    pub fn stats(&self) -> CacheStats {
        self.inner.snapshot()
    }

    /// Branch keys (and loads under way) in the cache.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every entry (the keys are wiped once no call holds them).
    pub fn clear(&self) {
        self.inner.clear();
    }

    /// The entry for `id` if loaded no longer than `ttl` ago; else waits for
    /// (or leads) one load. `hit` is told whether this caller was served
    /// without loading.
    async fn get<F, Fut>(
        &self,
        id: [u8; 48],
        ttl: Duration,
        mut hit: impl FnMut(bool),
        load: F,
    ) -> Result<Arc<Cached>>
    where
        F: Fn(Origin) -> Fut,
        Fut: std::future::Future<Output = Result<BranchKeyMaterials>> + Send + 'static,
    {
        let led = AtomicBool::new(false);
        let load = |origin: Origin| {
            if origin == Origin::Caller {
                led.store(true, Ordering::Relaxed);
            }
            let load = load(origin);
            async move { load.await.map(|m| Load::new(m, ttl)) }
        };
        let got = self.inner.get(id, ttl, |_| Usage::Fresh, load).await;
        hit(!led.load(Ordering::Relaxed));
        got.map_err(|e| e.duplicate())
    }
}

/// Where a keyring's branch key id comes from.
#[derive(Clone)]
enum BranchKeySource {
    Id(String),
    Supplier(Arc<dyn BranchKeyIdSupplier>),
}

impl BranchKeySource {
    fn resolve(&self, context: &EncryptionContext) -> Result<String> {
        match self {
            BranchKeySource::Id(id) => Ok(id.clone()),
            BranchKeySource::Supplier(s) => s.branch_key_id(context),
        }
    }
}

/// The AWS KMS Hierarchical keyring: data keys wrapped under per-message
/// keys derived from a cached branch key. See the module docs of
/// [`crate::keystore`] for the store.
pub struct HierarchyKeyring {
    store: KeyStore,
    source: BranchKeySource,
    ttl: Duration,
    cache: BranchKeyCache,
    partition: Vec<u8>,
}

impl fmt::Debug for HierarchyKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            BranchKeySource::Id(id) => id.as_str(),
            BranchKeySource::Supplier(_) => "<supplier>",
        };
        f.debug_struct("HierarchyKeyring")
            .field("store", &self.store)
            .field("branch_key", &source)
            .field("ttl", &self.ttl)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// Builds a [`HierarchyKeyring`]; see [`HierarchyKeyring::builder`].
pub struct HierarchyKeyringBuilder {
    store: KeyStore,
    ttl: Duration,
    source: Option<BranchKeySource>,
    cache: Option<BranchKeyCache>,
    partition: Option<String>,
}

impl fmt::Debug for HierarchyKeyringBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HierarchyKeyringBuilder")
            .field("store", &self.store)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl HierarchyKeyringBuilder {
    /// Use this branch key for every message.
    pub fn branch_key_id(mut self, id: impl Into<String>) -> Self {
        self.source = Some(BranchKeySource::Id(id.into()));
        self
    }

    /// Choose the branch key per request from its encryption context.
    pub fn branch_key_id_supplier(mut self, supplier: impl BranchKeyIdSupplier + 'static) -> Self {
        self.source = Some(BranchKeySource::Supplier(Arc::new(supplier)));
        self
    }

    /// Share this cache (default: a cache of its own with room for
    /// [`DEFAULT_BRANCH_KEY_CACHE_CAPACITY`] branch keys).
    pub fn cache(mut self, cache: BranchKeyCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// The partition id: keyrings that share a cache share its entries
    /// only when their partition ids (and logical key store names) are the
    /// same. Default: a random UUID, so no other keyring shares them.
    pub fn partition_id(mut self, id: impl Into<String>) -> Self {
        self.partition = Some(id.into());
        self
    }

    /// Builds the keyring.
    ///
    /// # Errors
    /// [`Error::Config`] without a branch key id or supplier, or for a zero TTL.
    pub fn build(self) -> Result<HierarchyKeyring> {
        if self.ttl.is_zero() {
            return Err(Error::config("branch key TTL", "must be above zero"));
        }
        let source = self.source.ok_or_else(|| {
            Error::config(
                "branch key id",
                "give a branch key id or a branch key id supplier",
            )
        })?;
        if matches!(&source, BranchKeySource::Id(id) if id.is_empty()) {
            return Err(Error::config("branch key id", "the branch key id is empty"));
        }
        let partition = match self.partition {
            Some(p) => p.into_bytes(),
            None => {
                let mut p = vec![0u8; 16];
                Backend::default().fill_random(&mut p)?;
                p
            }
        };
        Ok(HierarchyKeyring {
            store: self.store,
            source,
            ttl: self.ttl,
            cache: self.cache.unwrap_or_default(),
            partition,
        })
    }
}

/// Cache entry id (spec Appendix A): SHA-384 of resource id 0x02, scope,
/// partition id, logical key store name, branch key id and, on decrypt,
/// the version, each separated by a zero byte.
fn entry_id(partition: &[u8], logical_name: &str, branch_key_id: &str, version: Option<&str>) -> [u8; 48] {
    let scope: u8 = if version.is_some() { 0x02 } else { 0x01 };
    let head = [0x02, 0x00, scope, 0x00];
    let (sep, version) = match version {
        Some(v) => (&[0x00][..], v.as_bytes()),
        None => (&[][..], &[][..]),
    };
    sha384_concat(&[
        &head,
        partition,
        &[0x00],
        logical_name.as_bytes(),
        &[0x00],
        branch_key_id.as_bytes(),
        sep,
        version,
    ])
}

/// The wrapping AAD: provider id || branch key id || version || context.
fn wrap_aad(
    branch_key_id: &str,
    version: &[u8; VERSION_LEN],
    context: &EncryptionContext,
) -> Result<Vec<u8>> {
    let mut aad = Vec::with_capacity(HIERARCHY_PROVIDER_ID.len() + branch_key_id.len() + VERSION_LEN + 64);
    aad.extend_from_slice(HIERARCHY_PROVIDER_ID.as_bytes());
    aad.extend_from_slice(branch_key_id.as_bytes());
    aad.extend_from_slice(version);
    context.serialize_into(&mut aad)?;
    Ok(aad)
}

impl HierarchyKeyring {
    /// A builder over `store`; branch keys stay cached for `ttl`.
    pub fn builder(store: KeyStore, ttl: Duration) -> HierarchyKeyringBuilder {
        HierarchyKeyringBuilder {
            store,
            ttl,
            source: None,
            cache: None,
            partition: None,
        }
    }

    /// The key store.
    pub fn store(&self) -> &KeyStore {
        &self.store
    }

    /// The branch key cache (a clone shares it).
    pub fn cache(&self) -> &BranchKeyCache {
        &self.cache
    }

    /// The branch key `version` (or the active one), from the cache or
    /// the store.
    async fn branch_key(&self, id: &str, version: Option<&str>, deadline: Deadline) -> Result<Arc<Cached>> {
        let entry = entry_id(&self.partition, self.store.logical_name(), id, version);
        let counters = self.store.counters();
        let note = |hit: bool| {
            if hit {
                counters.branch_key_cache_hit();
            } else {
                counters.branch_key_cache_miss();
            }
        };
        let load = |origin: Origin| {
            let store = self.store.clone();
            let (id, version) = (id.to_owned(), version.map(str::to_owned));
            async move {
                // A refresh ahead is no caller's: it gets a deadline of its own.
                let deadline = match origin {
                    Origin::Caller => deadline,
                    Origin::Refresh => store.deadline(),
                };
                store.get_branch_key(&id, version.as_deref(), deadline).await
            }
        };
        self.cache.get(entry, self.ttl, note, load).await
    }

    fn keyring_error(&self, id: &str, reason: impl Into<String>) -> Error {
        Error::keyring(format!("hierarchical, branch key {id}"), reason)
    }
}

#[async_trait]
impl Keyring for HierarchyKeyring {
    async fn on_encrypt(&self, materials: &mut EncryptionMaterials) -> Result<()> {
        let id = self.source.resolve(materials.context())?;
        let deadline = self.store.deadline();
        let branch = self.branch_key(&id, None, deadline).await?;
        let branch: &BranchKeyMaterials = &branch;
        if materials.data_key().is_none() {
            materials.generate_data_key()?;
        }
        let mut salt_iv = [0u8; SALT_LEN + IV_LEN];
        materials.fill_random(&mut salt_iv)?;
        let (salt, iv) = salt_iv.split_at(SALT_LEN);
        let iv: &[u8; IV_LEN] = iv.try_into().map_err(|_| Error::Internal("IV length"))?;
        let version = branch.version_bytes();
        let aad = wrap_aad(&id, &version, materials.context())?;
        let wrap_err = || self.keyring_error(&id, "wrapping the data key failed");
        let key = kdf_counter_hmac_sha256(branch.expose_secret(), HIERARCHY_PROVIDER_ID.as_bytes(), salt)
            .map_err(|_| wrap_err())?;
        let aead = materials
            .backend()
            .provider()
            .aead(key.as_slice())
            .map_err(|_| wrap_err())?;
        let data_key = materials.data_key().ok_or_else(wrap_err)?;
        let mut ciphertext =
            zeroize::Zeroizing::new(Vec::with_capacity(PREFIX_LEN + data_key.len() + TAG_LEN));
        ciphertext.extend_from_slice(salt);
        ciphertext.extend_from_slice(iv);
        ciphertext.extend_from_slice(&version);
        // The plaintext key is sealed in place after the prefix; the buffer
        // is wiped if sealing fails.
        ciphertext.extend_from_slice(data_key.expose_secret());
        let tag = aead
            .seal_in_place(iv, &aad, &mut ciphertext[PREFIX_LEN..])
            .map_err(|_| wrap_err())?;
        ciphertext.extend_from_slice(&tag);
        materials.add_encrypted_data_key(EncryptedDataKey {
            provider_id: HIERARCHY_PROVIDER_ID.to_owned(),
            provider_info: id.into_bytes(),
            ciphertext: std::mem::take(&mut *ciphertext),
        });
        Ok(())
    }

    /// Spec `aws-kms-hierarchical-keyring.md`, OnDecrypt: each of this
    /// keyring's EDKs is tried in order, with the AAD of its own branch key
    /// version; every failure is collected ([`Error::Keyrings`]). Each
    /// distinct version is loaded at most once per call (a failed load is
    /// not retried for a later EDK of the same version), and one deadline
    /// bounds the whole call: when it passes, no further load is tried.
    async fn on_decrypt(
        &self,
        materials: &DecryptionMaterials,
        edks: &[EncryptedDataKey],
    ) -> Result<Option<DataKey>> {
        let id = self.source.resolve(materials.context())?;
        let key_len = materials.suite().data_key_len();
        // Only this keyring's EDKs, for its branch key: others cost no call.
        let ours = edks
            .iter()
            .filter(|e| e.provider_id == HIERARCHY_PROVIDER_ID && e.provider_info == id.as_bytes());
        let deadline = self.store.deadline();
        let mut failures = Vec::new();
        // This call's loads, by version: each version is asked for once.
        let mut loaded = std::collections::HashMap::new();
        for edk in ours {
            let ct = edk.ciphertext.as_slice();
            if ct.len() != PREFIX_LEN + key_len + TAG_LEN {
                failures.push(Error::Decrypt);
                continue;
            }
            let (salt, rest) = ct.split_at(SALT_LEN);
            let (iv, rest) = rest.split_at(IV_LEN);
            let (version, sealed) = rest.split_at(VERSION_LEN);
            let (Ok(iv), Ok(version)) = (
                <&[u8; IV_LEN]>::try_from(iv),
                <[u8; VERSION_LEN]>::try_from(version),
            ) else {
                return Err(Error::Internal("hierarchy EDK split"));
            };
            use std::collections::hash_map::Entry;
            let branch = match loaded.entry(version) {
                Entry::Occupied(seen) => seen.into_mut(),
                Entry::Vacant(new) => {
                    let version_text = crate::keystore::format_version(version);
                    new.insert(self.branch_key(&id, Some(&version_text), deadline).await)
                }
            };
            let branch = match branch {
                Ok(b) => b,
                Err(e) => {
                    failures.push(e.duplicate());
                    if e.is_past_deadline() {
                        break;
                    }
                    continue;
                }
            };
            // The AAD names this EDK's own version.
            let aad = wrap_aad(&id, &version, materials.context())?;
            let key = kdf_counter_hmac_sha256(branch.expose_secret(), HIERARCHY_PROVIDER_ID.as_bytes(), salt)
                .map_err(|_| Error::Decrypt)?;
            let aead = materials
                .backend()
                .provider()
                .aead(key.as_slice())
                .map_err(|_| Error::Decrypt)?;
            let mut buf = zeroize::Zeroizing::new(sealed.to_vec());
            match aead.open_in_place(iv, &aad, &mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(Some(DataKey::new(buf)));
                }
                Err(_) => failures.push(Error::Decrypt),
            }
        }
        match Error::collected(failures) {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod expiry_tests;

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_time()
            .build()
            .unwrap()
    }

    fn materials(id: &str) -> BranchKeyMaterials {
        BranchKeyMaterials::for_tests(id, [1; 16], [2; 32])
    }

    /// A load that counts its calls, takes `delay` and then gives `id`'s
    /// materials (or fails while `fail` is set).
    struct Loader {
        calls: AtomicUsize,
        delay: Duration,
        fail: std::sync::atomic::AtomicBool,
    }

    impl Loader {
        fn new(delay: Duration) -> Arc<Self> {
            Arc::new(Loader {
                calls: AtomicUsize::new(0),
                delay,
                fail: false.into(),
            })
        }

        async fn load(&self, id: &str) -> Result<BranchKeyMaterials> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            if self.fail.load(Ordering::SeqCst) {
                Err(Error::keyring("test", "the key store is down"))
            } else {
                Ok(materials(id))
            }
        }
    }

    /// `loader`'s load of `id` as the cache takes it.
    fn load(
        loader: &Arc<Loader>,
        id: &'static str,
    ) -> impl Fn(Origin) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<BranchKeyMaterials>> + Send>>
    {
        let loader = Arc::clone(loader);
        move |_| {
            let loader = Arc::clone(&loader);
            Box::pin(async move { loader.load(id).await })
        }
    }

    async fn get(
        cache: &BranchKeyCache,
        loader: &Arc<Loader>,
        ttl: Duration,
        hits: &AtomicUsize,
    ) -> Result<Arc<Cached>> {
        let id = entry_id(b"p", "store", "bk", None);
        let note = |hit: bool| {
            if hit {
                hits.fetch_add(1, Ordering::SeqCst);
            }
        };
        cache.get(id, ttl, note, load(loader, "bk")).await
    }

    #[test]
    fn concurrent_misses_make_one_load_and_share_its_failure() {
        let rt = rt();
        let cache = BranchKeyCache::default();
        let loader = Loader::new(Duration::from_millis(50));
        let hits = Arc::new(AtomicUsize::new(0));
        let ttl = Duration::from_secs(60);
        rt.block_on(async {
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let (cache, loader, hits) = (cache.clone(), Arc::clone(&loader), Arc::clone(&hits));
                    tokio::spawn(async move { get(&cache, &loader, ttl, &hits).await.map(|_| ()) })
                })
                .collect();
            for t in tasks {
                t.await.unwrap().unwrap();
            }
        });
        assert_eq!(loader.calls.load(Ordering::SeqCst), 1);
        assert_eq!(hits.load(Ordering::SeqCst), 63);

        // A failing load: its waiters get its error, and the next call loads again.
        let cache = BranchKeyCache::default();
        let loader = Loader::new(Duration::from_millis(50));
        loader.fail.store(true, Ordering::SeqCst);
        let failed = rt.block_on(async {
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let (cache, loader, hits) = (cache.clone(), Arc::clone(&loader), Arc::clone(&hits));
                    tokio::spawn(async move { get(&cache, &loader, ttl, &hits).await.is_err() })
                })
                .collect();
            let mut failed = 0;
            for t in tasks {
                failed += usize::from(t.await.unwrap());
            }
            failed
        });
        assert_eq!((failed, loader.calls.load(Ordering::SeqCst)), (16, 1));
        assert!(cache.is_empty(), "a failure is not cached");
        loader.fail.store(false, Ordering::SeqCst);
        rt.block_on(get(&cache, &loader, ttl, &hits)).unwrap();
        assert_eq!(loader.calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_cancelled_load_hands_over_and_expired_keys_reload() {
        let rt = rt();
        let cache = BranchKeyCache::default();
        let loader = Loader::new(Duration::from_millis(300));
        let hits = AtomicUsize::new(0);
        let ttl = Duration::from_millis(200);
        rt.block_on(async {
            // The first caller gives up mid-load; the next one must not wait forever.
            let first =
                tokio::time::timeout(Duration::from_millis(50), get(&cache, &loader, ttl, &hits)).await;
            assert!(first.is_err(), "timed out");
            let second = tokio::time::timeout(Duration::from_secs(5), get(&cache, &loader, ttl, &hits)).await;
            assert!(second.unwrap().is_ok());
            assert_eq!(loader.calls.load(Ordering::SeqCst), 2);
            get(&cache, &loader, ttl, &hits).await.unwrap();
            assert_eq!(loader.calls.load(Ordering::SeqCst), 2, "a hit within the TTL");
            tokio::time::sleep(ttl + Duration::from_millis(20)).await;
            get(&cache, &loader, ttl, &hits).await.unwrap();
            assert_eq!(loader.calls.load(Ordering::SeqCst), 3, "expired: loaded again");
        });
    }

    #[test]
    fn evicted_branch_keys_are_dropped() {
        let rt = rt();
        let cache = BranchKeyCache::new(1).unwrap();
        let loader = Loader::new(Duration::ZERO);
        let ttl = Duration::from_secs(60);
        rt.block_on(async {
            let held = cache
                .get(entry_id(b"p", "s", "a", None), ttl, |_| {}, load(&loader, "a"))
                .await
                .unwrap();
            let a = Arc::downgrade(&held);
            drop(held);
            assert!(a.upgrade().is_some(), "held by the cache");
            cache
                .get(entry_id(b"p", "s", "b", None), ttl, |_| {}, load(&loader, "b"))
                .await
                .unwrap();
            // Evicted (capacity 1) and no caller holds it: dropped, so its
            // Zeroizing key was wiped.
            assert!(a.upgrade().is_none());
            assert_eq!(cache.len(), 1);
        });
    }

    #[test]
    fn cache_entry_ids_follow_appendix_a() {
        let mut pre = vec![0x02, 0x00, 0x01, 0x00];
        pre.extend_from_slice(b"p\x00store\x00bk");
        assert_eq!(entry_id(b"p", "store", "bk", None), sha384_concat(&[&pre]));
        let mut dec = vec![0x02, 0x00, 0x02, 0x00];
        dec.extend_from_slice(b"p\x00store\x00bk\x00v");
        assert_eq!(entry_id(b"p", "store", "bk", Some("v")), sha384_concat(&[&dec]));
        // The scopes keep encrypt and decrypt entries apart.
        assert_ne!(
            entry_id(b"p", "store", "bk", None),
            entry_id(b"p", "store", "bk", Some(""))
        );
    }
}
