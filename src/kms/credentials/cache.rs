//! envseal's credential cache: refreshes ahead of expiry, single flight,
//! static stability, invalidation after `ExpiredTokenException`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;

use crate::kms::stats::AwsCounters;

use super::*;

use super::chain::Slot;

/// Credentials as cached: the provider that supplied them and when to refresh.
pub(crate) struct Cached {
    credentials: Credentials,
    provider: &'static str,
    /// After this, the next call refreshes.
    refresh_at: Instant,
    /// When the credentials stop being valid (None: no expiry).
    expires_at: Option<Instant>,
    loaded_at: Instant,
}

/// How long credentials without an expiry are kept before asking again
/// (the SDK's own default).
pub(crate) const NO_EXPIRY_REFRESH: Duration = Duration::from_secs(15 * 60);
/// After a failed refresh with still-valid credentials, wait this long
/// before asking the provider again.
pub(crate) const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

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

/// The cache in front of the credential chain; see the module docs.
pub(crate) struct CredentialCache {
    source: SharedCredentialsProvider,
    slot: Option<Slot>,
    refresh_before: Duration,
    load_timeout: Duration,
    state: Mutex<Option<Cached>>,
    /// Single flight: one load at a time; waiters then use its result.
    loading: tokio::sync::Mutex<()>,
    /// The provider named by the last load, successful or not.
    last_provider: Mutex<Option<&'static str>>,
    /// The last load a timeout cancelled: when, and the provider it was asking.
    cancelled: Mutex<Option<(Instant, &'static str)>>,
    stats: Arc<AwsCounters>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache")
            .field("refresh_before", &self.refresh_before)
            .field("load_timeout", &self.load_timeout)
            .finish_non_exhaustive()
    }
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
        CredentialCache {
            source,
            slot,
            refresh_before: options.refresh_before_expiry,
            load_timeout: options.load_timeout,
            state: Mutex::new(None),
            loading: tokio::sync::Mutex::new(()),
            last_provider: Mutex::new(None),
            cancelled: Mutex::new(None),
            stats,
        }
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, Option<Cached>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached credentials if they need no refresh yet.
    fn fresh(&self) -> Option<Credentials> {
        let state = self.lock_state();
        let cached = state.as_ref()?;
        (Instant::now() < cached.refresh_at).then(|| cached.credentials.clone())
    }

    /// The provider that supplied the cached credentials, or that failed last.
    pub(crate) fn provider(&self) -> Option<&'static str> {
        *self.last_provider.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the cached credentials if they were loaded before `sent`, the
    /// start of the attempt that saw them rejected (credentials a concurrent
    /// refresh loaded since are kept). Returns whether it dropped them.
    pub(crate) fn invalidate_loaded_before(&self, sent: Instant) -> bool {
        let mut state = self.lock_state();
        if state.as_ref().is_some_and(|c| c.loaded_at <= sent) {
            *state = None;
            true
        } else {
            false
        }
    }

    /// Cached credentials, refreshed first when due.
    pub(crate) async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let _flight = self.loading.lock().await;
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        self.load().await
    }

    /// If a timeout cancelled a load that started after `since`: the
    /// provider it was asking. A call that timed out then was waiting for
    /// credentials, not for KMS.
    pub(crate) fn cancelled_since(&self, since: Instant) -> Option<&'static str> {
        let cancelled = *self.cancelled.lock().unwrap_or_else(|p| p.into_inner());
        cancelled
            .filter(|(at, _)| *at >= since)
            .map(|(_, provider)| provider)
    }

    fn provider_asked(&self) -> &'static str {
        self.slot
            .as_ref()
            .and_then(|s| *s.lock().unwrap_or_else(|p| p.into_inner()))
            .unwrap_or(PROVIDER_CONFIGURED)
    }

    async fn load(&self) -> Result<Credentials, CredentialsError> {
        /// Records the load as cancelled unless it is disarmed.
        struct Cancelled<'a>(Option<&'a CredentialCache>);
        impl Drop for Cancelled<'_> {
            fn drop(&mut self) {
                if let Some(cache) = self.0 {
                    let provider = cache.provider_asked();
                    *cache.cancelled.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((Instant::now(), provider));
                    *cache.last_provider.lock().unwrap_or_else(|p| p.into_inner()) = Some(provider);
                    cache.stats.credentials_refresh_failed();
                }
            }
        }
        if let Some(slot) = &self.slot {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        let mut guard = Cancelled(Some(self));
        let started = Instant::now();
        let loaded = tokio::time::timeout(self.load_timeout, self.source.provide_credentials()).await;
        guard.0 = None;
        let elapsed = started.elapsed();
        let provider = self.provider_asked();
        *self.last_provider.lock().unwrap_or_else(|p| p.into_inner()) = Some(provider);
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let detail = match loaded {
            Ok(Ok(credentials)) => {
                self.stats.credentials_refreshed(elapsed);
                let now = Instant::now();
                let expires_at = credentials
                    .expiry()
                    .map(|e| match e.duration_since(SystemTime::now()) {
                        Ok(left) => now + left,
                        Err(_) => now,
                    });
                let refresh_at = refresh_at(now, expires_at, self.refresh_before);
                tracing::info!(
                    target: "envseal::credentials",
                    provider,
                    elapsed_ms,
                    expires_in_s = expires_at.map(|at| at.saturating_duration_since(now).as_secs()),
                    "credentials loaded"
                );
                *self.lock_state() = Some(Cached {
                    credentials: credentials.clone(),
                    provider,
                    refresh_at,
                    expires_at,
                    loaded_at: now,
                });
                return Ok(credentials);
            }
            Ok(Err(e)) => aws_smithy_types::error::display::DisplayErrorContext(&e).to_string(),
            Err(_) => format!("no answer within {} ms", self.load_timeout.as_millis()),
        };
        self.stats.credentials_refresh_failed();
        // Static stability: credentials that are still valid keep serving
        // while the provider is down; ask again shortly.
        let mut state = self.lock_state();
        if let Some(cached) = state.as_mut() {
            let now = Instant::now();
            if cached.expires_at.is_none_or(|at| now < at) {
                cached.refresh_at = now + RETRY_AFTER_FAILURE;
                tracing::warn!(
                    target: "envseal::credentials",
                    provider,
                    elapsed_ms,
                    error = %detail,
                    "credentials refresh failed; the current credentials are still valid"
                );
                *self.last_provider.lock().unwrap_or_else(|p| p.into_inner()) = Some(cached.provider);
                return Ok(cached.credentials.clone());
            }
        }
        *state = None;
        drop(state);
        tracing::warn!(target: "envseal::credentials", provider, elapsed_ms, error = %detail, "credentials not loaded");
        Err(CredentialsError::provider_error(LoadFailure { provider, detail }))
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
        assert_eq!(c.credentials().await.unwrap().access_key_id(), "AKID2");
    }

    #[tokio::test]
    async fn static_stability_and_failure() {
        // The second load fails while the first credentials are still valid.
        let (c, stats) = cache(Some(Duration::from_millis(400)), Duration::from_secs(300), 1);
        assert_eq!(c.credentials().await.unwrap().access_key_id(), "AKID1");
        tokio::time::sleep(Duration::from_millis(250)).await;
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
}
