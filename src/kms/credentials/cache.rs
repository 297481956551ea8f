//! envseal's credential cache, on the crate's cache engine
//! ([`crate::cache`]): refreshed in the background ahead of expiry (no
//! call waits while the current credentials are valid), single flight,
//! static stability (a failed refresh keeps the valid credentials serving
//! and is tried again after [`RETRY_AFTER_FAILURE`], then at doubling
//! intervals, never past half the time they have left), invalidation after
//! `ExpiredTokenException`.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;

use crate::cache::{Cache, CachePolicy, Load, LoadError, Usage};
use crate::kms::stats::AwsCounters;

use super::*;

use super::chain::Slot;

/// Credentials as cached, with the provider that supplied them.
pub(crate) struct Cached {
    credentials: Credentials,
    provider: &'static str,
}

/// How long credentials without an expiry are kept before asking again
/// (the SDK's own default).
pub(crate) const NO_EXPIRY_REFRESH: Duration = Duration::from_secs(15 * 60);
/// After a failed refresh with still-valid credentials, wait this long
/// before asking the provider again.
pub(crate) const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// The lifetime of credentials without an expiry ("never").
const NO_EXPIRY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// When credentials loaded at `now` are next refreshed: `before` ahead of
/// their expiry, or at half their remaining life when that is shorter
/// (credentials that live 4 minutes are refreshed after 2, not at once);
/// without an expiry, after [`NO_EXPIRY_REFRESH`].
pub(crate) fn refresh_at(now: Instant, expires_at: Option<Instant>, before: Duration) -> Instant {
    match expires_at {
        None => now + NO_EXPIRY_REFRESH,
        Some(at) => {
            let left = at.saturating_duration_since(now);
            at - before.min(left / 2)
        }
    }
}

/// A failure to load credentials, naming the provider.
#[derive(Debug)]
pub(crate) struct LoadFailure {
    provider: &'static str,
    detail: String,
}

impl std::fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "credentials from {} could not be loaded: {}",
            self.provider, self.detail
        )
    }
}

impl std::error::Error for LoadFailure {}

impl LoadError for LoadFailure {
    /// Static stability: whatever the provider said, credentials that are
    /// still valid keep serving (the service, not the provider, says
    /// whether they are revoked: `ExpiredTokenException` invalidates them).
    fn is_transient(&self) -> bool {
        true
    }
}

/// What the loads share with the cache.
struct Source {
    source: SharedCredentialsProvider,
    slot: Option<Slot>,
    refresh_before: Duration,
    load_timeout: Duration,
    /// The provider named by the last load, successful or not.
    last_provider: Mutex<Option<&'static str>>,
    /// The last load a timeout cancelled: when, and the provider it was asking.
    cancelled: Mutex<Option<(Instant, &'static str)>>,
    stats: Arc<AwsCounters>,
}

/// The cache in front of the credential chain; see the module docs.
pub(crate) struct CredentialCache {
    cache: Cache<(), Cached, LoadFailure>,
    source: Arc<Source>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("refresh_before", &self.source.refresh_before)
            .field("load_timeout", &self.source.load_timeout)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update is one assignment: a poisoned lock holds no half-made value.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl CredentialCache {
    /// `slot` is the named chain's; without one the provider is reported
    /// as [`PROVIDER_CONFIGURED`].
    pub(crate) fn new(
        source: SharedCredentialsProvider,
        slot: Option<Slot>,
        options: &CredentialOptions,
        stats: Arc<AwsCounters>,
    ) -> Self {
        // One key; refreshed at the point `refresh_at` gives (no jitter:
        // the provider's expiry is the truth), replaced as soon as the
        // refresh lands, never served past expiry.
        let policy = CachePolicy::builder()
            .jitter(0.0)
            .retry_interval(RETRY_AFTER_FAILURE)
            .max_loads(1)
            .build()
            .unwrap_or_default()
            .replacing();
        CredentialCache {
            cache: Cache::new("credentials", NonZeroUsize::MIN, policy),
            source: Arc::new(Source {
                source,
                slot,
                refresh_before: options.refresh_before_expiry,
                load_timeout: options.load_timeout,
                last_provider: Mutex::new(None),
                cancelled: Mutex::new(None),
                stats,
            }),
        }
    }

    /// The provider that supplied the credentials served last, or that
    /// failed last.
    pub(crate) fn provider(&self) -> Option<&'static str> {
        *lock(&self.source.last_provider)
    }

    /// Drops the cached credentials if they were loaded before `sent`, the
    /// start of the attempt that saw them rejected (credentials a concurrent
    /// refresh loaded since are kept). Returns whether it dropped them.
    pub(crate) fn invalidate_loaded_before(&self, sent: Instant) -> bool {
        let sent = tokio::time::Instant::from_std(sent);
        self.cache.invalidate_if(&(), |e| e.loaded() <= sent)
    }

    /// Cached credentials; loaded first when there are none valid, and
    /// refreshed in the background when due.
    pub(crate) async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let source = &self.source;
        let load = |_| Arc::clone(source).load();
        match self.cache.get((), NO_EXPIRY, |_| Usage::Fresh, load).await {
            Ok(entry) => {
                *lock(&source.last_provider) = Some(entry.provider);
                Ok(entry.credentials.clone())
            }
            Err(e) => {
                tracing::warn!(
                    target: "envseal::credentials",
                    provider = e.provider,
                    error = %e.detail,
                    "credentials not loaded"
                );
                Err(CredentialsError::provider_error(LoadFailure {
                    provider: e.provider,
                    detail: e.detail.clone(),
                }))
            }
        }
    }

    /// If a timeout cancelled a load that started after `since`: the
    /// provider it was asking. A call that timed out then was waiting for
    /// credentials, not for KMS.
    pub(crate) fn cancelled_since(&self, since: Instant) -> Option<&'static str> {
        let cancelled = *lock(&self.source.cancelled);
        cancelled
            .filter(|(at, _)| *at >= since)
            .map(|(_, provider)| provider)
    }
}

impl Source {
    fn provider_asked(&self) -> &'static str {
        self.slot
            .as_ref()
            .and_then(|s| *lock(s))
            .unwrap_or(PROVIDER_CONFIGURED)
    }

    /// One load from the chain, bounded by the load timeout.
    async fn load(self: Arc<Self>) -> Result<Load<Cached>, LoadFailure> {
        /// Records the load as cancelled unless it is disarmed.
        struct Cancelled<'a>(Option<&'a Source>);
        impl Drop for Cancelled<'_> {
            fn drop(&mut self) {
                if let Some(source) = self.0 {
                    let provider = source.provider_asked();
                    *lock(&source.cancelled) = Some((Instant::now(), provider));
                    *lock(&source.last_provider) = Some(provider);
                    source.stats.credentials_refresh_failed();
                }
            }
        }
        if let Some(slot) = &self.slot {
            *lock(slot) = None;
        }
        let mut guard = Cancelled(Some(&self));
        let started = Instant::now();
        let loaded = tokio::time::timeout(self.load_timeout, self.source.provide_credentials()).await;
        guard.0 = None;
        let elapsed = started.elapsed();
        let provider = self.provider_asked();
        *lock(&self.last_provider) = Some(provider);
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let detail = match loaded {
            Ok(Ok(credentials)) => {
                self.stats.credentials_refreshed(elapsed);
                let now = Instant::now();
                let left = credentials
                    .expiry()
                    .map(|e| e.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO));
                let expires_at = left.map(|left| now + left);
                let refresh_after = refresh_at(now, expires_at, self.refresh_before) - now;
                tracing::info!(
                    target: "envseal::credentials",
                    provider,
                    elapsed_ms,
                    expires_in_s = left.map(|l| l.as_secs()),
                    "credentials loaded"
                );
                return Ok(Load {
                    value: Cached {
                        credentials,
                        provider,
                    },
                    ttl: left.unwrap_or(NO_EXPIRY),
                    refresh_after: Some(refresh_after),
                });
            }
            Ok(Err(e)) => aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
            Err(_) => format!("no answer within {} ms", self.load_timeout.as_millis()),
        };
        self.stats.credentials_refresh_failed();
        // Static stability: credentials that are still valid keep serving
        // (the cache keeps them); the next refresh is a second away, then
        // at doubling intervals within the time they have left.
        tracing::warn!(
            target: "envseal::credentials",
            provider,
            elapsed_ms,
            error = %detail,
            "credentials load failed; credentials still valid, if any, keep serving"
        );
        Err(LoadFailure { provider, detail })
    }
}

/// The cache as the SDK's credentials provider (shared handle).
#[derive(Clone, Debug)]
pub(crate) struct CachedProvider(pub(crate) Arc<CredentialCache>);

impl ProvideCredentials for CachedProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(self.0.credentials())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn refresh_schedule() {
        let now = Instant::now();
        let five = CredentialOptions::default().refresh_before_expiry;
        assert_eq!(five, Duration::from_secs(300));
        let min = |m: u64| Duration::from_secs(60 * m);
        // An hour of life: refreshed 5 minutes before expiry, not seconds.
        assert_eq!(refresh_at(now, Some(now + min(60)), five), now + min(55));
        // Six hours (IMDS): still 5 minutes before.
        assert_eq!(refresh_at(now, Some(now + min(360)), five), now + min(355));
        // Eight minutes: at half the life.
        assert_eq!(refresh_at(now, Some(now + min(8)), five), now + min(4));
        // Configurable.
        assert_eq!(refresh_at(now, Some(now + min(60)), min(15)), now + min(45));
        // Already expired: at once; no expiry: after 15 minutes.
        assert_eq!(refresh_at(now, Some(now), five), now);
        assert_eq!(refresh_at(now, None, five), now + NO_EXPIRY_REFRESH);
    }

    /// A provider handing out numbered credentials that live `life`.
    #[derive(Debug)]
    struct Counter {
        life: Option<Duration>,
        calls: AtomicU64,
        fail_after: u64,
    }

    impl ProvideCredentials for Counter {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if n > self.fail_after {
                return future::ProvideCredentials::ready(Err(CredentialsError::provider_error("down")));
            }
            let expiry = self.life.map(|l| SystemTime::now() + l);
            future::ProvideCredentials::ready(Ok(Credentials::new(
                format!("AKID{n}"),
                "secret",
                None,
                expiry,
                "test",
            )))
        }
    }

    fn cache(
        life: Option<Duration>,
        before: Duration,
        fail_after: u64,
    ) -> (Arc<CredentialCache>, Arc<AwsCounters>) {
        let stats = Arc::new(AwsCounters::new());
        let provider = SharedCredentialsProvider::new(Counter {
            life,
            calls: AtomicU64::new(0),
            fail_after,
        });
        let options = CredentialOptions::builder()
            .refresh_before_expiry(before)
            .build()
            .unwrap();
        (
            Arc::new(CredentialCache::new(provider, None, &options, Arc::clone(&stats))),
            stats,
        )
    }

    #[tokio::test]
    async fn refreshes_ahead_and_on_invalidate() {
        // Lives 1 h, refresh 5 min ahead: cached.
        let (c, stats) = cache(
            Some(Duration::from_secs(3600)),
            Duration::from_secs(300),
            u64::MAX,
        );
        let a = c.credentials().await.unwrap();
        let b = c.credentials().await.unwrap();
        assert_eq!(a.access_key_id(), b.access_key_id());
        assert_eq!(stats.snapshot().credential_refreshes, 1);
        assert_eq!(c.provider(), Some(PROVIDER_CONFIGURED));
        // Rejected: credentials loaded after the rejected attempt was sent
        // are kept; older ones are dropped.
        let before = Instant::now() - Duration::from_secs(1);
        assert!(!c.invalidate_loaded_before(before));
        assert!(c.invalidate_loaded_before(Instant::now()));
        assert_eq!(c.credentials().await.unwrap().access_key_id(), "AKID2");
        assert_eq!(stats.snapshot().credential_refreshes, 2);

        // Lives 5 min: refreshed at half its life, so within 10 min of expiry
        // it is reloaded rather than served until the last seconds.
        let (c, _) = cache(
            Some(Duration::from_millis(200)),
            Duration::from_secs(300),
            u64::MAX,
        );
        assert_eq!(c.credentials().await.unwrap().access_key_id(), "AKID1");
        tokio::time::sleep(Duration::from_millis(120)).await;
        // Due: still valid, served at once while the refresh runs behind.
        assert_eq!(c.credentials().await.unwrap().access_key_id(), "AKID1");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(c.credentials().await.unwrap().access_key_id(), "AKID2");
    }

    #[tokio::test]
    async fn static_stability_and_failure() {
        // The second load fails while the first credentials are still valid.
        let (c, stats) = cache(Some(Duration::from_millis(400)), Duration::from_secs(300), 1);
        assert_eq!(c.credentials().await.unwrap().access_key_id(), "AKID1");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(c.credentials().await.unwrap().access_key_id(), "AKID1");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(c.credentials().await.unwrap().access_key_id(), "AKID1");
        let snap = stats.snapshot();
        assert_eq!(
            (snap.credential_refreshes, snap.credential_refresh_failures),
            (1, 1)
        );
        // Once expired, the failure surfaces, naming the provider.
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.invalidate_loaded_before(Instant::now());
        let err = c.credentials().await.unwrap_err();
        let text = aws_smithy_types::error::display::DisplayErrorContext(&err).to_string();
        assert!(
            text.contains("credentials from configured provider could not be loaded"),
            "{text}"
        );
    }

    /// A provider that answers after `delay`, with credentials living 1 s.
    #[derive(Debug)]
    struct Slow {
        delay: Duration,
        calls: AtomicU64,
    }

    impl ProvideCredentials for Slow {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let delay = self.delay;
            future::ProvideCredentials::new(async move {
                tokio::time::sleep(delay).await;
                let expiry = SystemTime::now() + Duration::from_secs(1);
                Ok(Credentials::new(
                    format!("AKID{n}"),
                    "secret",
                    None,
                    Some(expiry),
                    "test",
                ))
            })
        }
    }

    /// Once a refresh is due, calls keep the valid credentials and do not
    /// wait for the (slow) provider; the refresh replaces them when it lands.
    #[tokio::test]
    async fn a_due_refresh_runs_behind_the_calls() {
        let provider = SharedCredentialsProvider::new(Slow {
            delay: Duration::from_millis(200),
            calls: AtomicU64::new(0),
        });
        let options = CredentialOptions::builder()
            .refresh_before_expiry(Duration::from_millis(800))
            .build()
            .unwrap();
        let c = CredentialCache::new(provider, None, &options, Arc::new(AwsCounters::new()));
        assert_eq!(c.credentials().await.unwrap().access_key_id(), "AKID1");
        // Life 1 s, refreshed at half of it.
        tokio::time::sleep(Duration::from_millis(550)).await;
        let start = Instant::now();
        for _ in 0..100 {
            assert_eq!(c.credentials().await.unwrap().access_key_id(), "AKID1");
        }
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "a call waited: {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(c.credentials().await.unwrap().access_key_id(), "AKID2");
    }
}
