//! Credentials that stay valid: a cache in front of the credential chain
//! that refreshes well ahead of expiry, can be told that KMS rejected its
//! credentials as expired, and remembers which provider supplied them; the
//! default chain with an IMDS client that retries connect timeouts; and
//! detection of environment keys that shadow a container or instance role.
//!
//! The SDK's own identity cache refreshes 5 to 10 seconds before expiry and
//! is never invalidated when a service answers `ExpiredTokenException`
//! (aws-smithy-runtime's lazy cache); this cache replaces it (the KMS client
//! runs with `IdentityCache::no_cache()`).

use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant, SystemTime};

use aws_config::ecs::EcsCredentialsProvider;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::imds;
use aws_config::imds::client::ImdsResponseRetryClassifier;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_config::meta::credentials::CredentialsProviderChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::web_identity_token::WebIdentityTokenCredentialsProvider;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_smithy_runtime_api::client::retries::classifiers::SharedRetryClassifier;

use super::stats::KmsStats;
use crate::error::Error;

/// Names of the default chain's providers, in the chain's order (the names
/// aws-config uses in its own logs).
pub const PROVIDER_ENVIRONMENT: &str = "Environment";
/// The shared config/credentials files (`AWS_PROFILE`).
pub const PROVIDER_PROFILE: &str = "Profile";
/// `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (EKS service accounts).
pub const PROVIDER_WEB_IDENTITY: &str = "WebIdentityToken";
/// The ECS/EKS container credentials endpoint.
pub const PROVIDER_CONTAINER: &str = "EcsContainer";
/// The EC2 instance metadata service (IMDSv2).
pub const PROVIDER_IMDS: &str = "Ec2InstanceMetadata";
/// A provider the caller supplied (through an `SdkConfig` or an SDK client).
pub const PROVIDER_CONFIGURED: &str = "configured provider";

/// How credentials are loaded and kept fresh. Defaults:
///
/// | option | default | |
/// |---|---|---|
/// | `refresh_before_expiry` | 5 min | refresh this long before expiry (at most half the credentials' lifetime) |
/// | `load_timeout` | 5 s | one resolution through the chain |
/// | `imds_max_attempts` | 4 | IMDS attempts, connect timeouts included |
/// | `imds_connect_timeout` | 1 s | |
/// | `imds_read_timeout` | 1 s | |
/// | `imds_deadline` | 5 s | all IMDS attempts of one request |
///
/// A load is also bounded by the KMS attempt timeout and deadline
/// ([`KmsBounds`](super::KmsBounds)): credentials are resolved inside an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CredentialOptions {
    /// Refresh credentials this long before they expire. Credentials that
    /// live shorter than twice this are refreshed at half their lifetime.
    pub refresh_before_expiry: Duration,
    /// Bound on one resolution through the credential chain.
    pub load_timeout: Duration,
    /// IMDS attempts per request (first included); connect timeouts retry.
    pub imds_max_attempts: u32,
    /// IMDS connect timeout, per attempt.
    pub imds_connect_timeout: Duration,
    /// IMDS read timeout, per attempt.
    pub imds_read_timeout: Duration,
    /// Bound on one IMDS request, all attempts and backoff.
    pub imds_deadline: Duration,
}

impl Default for CredentialOptions {
    fn default() -> Self {
        CredentialOptions {
            refresh_before_expiry: Duration::from_secs(5 * 60),
            load_timeout: Duration::from_secs(5),
            imds_max_attempts: 4,
            imds_connect_timeout: Duration::from_secs(1),
            imds_read_timeout: Duration::from_secs(1),
            imds_deadline: Duration::from_secs(5),
        }
    }
}

impl CredentialOptions {
    /// Sets how long before expiry credentials are refreshed.
    pub fn with_refresh_before_expiry(mut self, d: Duration) -> Self {
        self.refresh_before_expiry = d;
        self
    }
    /// Sets the bound on one resolution through the chain.
    pub fn with_load_timeout(mut self, d: Duration) -> Self {
        self.load_timeout = d;
        self
    }
    /// Sets the IMDS attempts, connect and read timeouts, and deadline.
    pub fn with_imds(
        mut self,
        max_attempts: u32,
        connect: Duration,
        read: Duration,
        deadline: Duration,
    ) -> Self {
        self.imds_max_attempts = max_attempts;
        self.imds_connect_timeout = connect;
        self.imds_read_timeout = read;
        self.imds_deadline = deadline;
        self
    }

    /// Checks that every option is usable.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero timeout, zero IMDS attempts, or a
    /// duration over 24 hours.
    pub fn validate(&self) -> Result<(), Error> {
        const MAX: Duration = Duration::from_secs(24 * 60 * 60);
        let timeouts = [
            ("credentials load timeout", self.load_timeout),
            ("IMDS connect timeout", self.imds_connect_timeout),
            ("IMDS read timeout", self.imds_read_timeout),
            ("IMDS deadline", self.imds_deadline),
        ];
        if let Some((name, _)) = timeouts.iter().find(|(_, d)| d.is_zero()) {
            return Err(Error::config(
                "credential bounds",
                format!("{name} must be greater than zero"),
            ));
        }
        if let Some((name, _)) = timeouts.iter().find(|(_, d)| *d > MAX) {
            return Err(Error::config(
                "credential bounds",
                format!("{name} must be at most 24 hours"),
            ));
        }
        if self.refresh_before_expiry > MAX {
            return Err(Error::config(
                "credential bounds",
                "credentials refresh time must be at most 24 hours",
            ));
        }
        if self.imds_max_attempts == 0 {
            return Err(Error::config(
                "credential bounds",
                "IMDS max attempts must be at least 1",
            ));
        }
        Ok(())
    }

    /// The IMDS client: bounded, and retrying connect timeouts (the SDK's
    /// default gives up on the first one).
    fn imds_client(&self, conf: &ProviderConfig) -> imds::Client {
        imds::Client::builder()
            .configure(conf)
            .max_attempts(self.imds_max_attempts)
            .connect_timeout(self.imds_connect_timeout)
            .read_timeout(self.imds_read_timeout)
            // An attempt includes the session-token request and its own
            // retries: only the deadline bounds it.
            .operation_attempt_timeout(self.imds_deadline)
            .operation_timeout(self.imds_deadline)
            .retry_classifier(SharedRetryClassifier::new(
                ImdsResponseRetryClassifier::default().with_retry_connect_timeouts(true),
            ))
            .build()
    }
}

/// Which credential sources the environment configures, in the default
/// chain's order. Environment keys come first in the chain, so when they are
/// set every role source after them is ignored: a container or instance role
/// silently *shadowed* by keys someone left in the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CredentialSources {
    /// `AWS_ACCESS_KEY_ID` (and `AWS_SECRET_ACCESS_KEY`) are set.
    pub env_keys: bool,
    /// `AWS_PROFILE`, when set.
    pub profile: Option<String>,
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN` are set.
    pub web_identity: bool,
    /// The container credentials variable that is set
    /// (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or `…_FULL_URI`).
    pub container: Option<&'static str>,
    /// `AWS_EC2_METADATA_DISABLED=true`: IMDS is not consulted.
    pub imds_disabled: bool,
}

impl CredentialSources {
    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| lookup(name).is_some_and(|v| !v.trim().is_empty());
        let container = [
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ]
        .into_iter()
        .find(|name| set(name));
        CredentialSources {
            env_keys: set("AWS_ACCESS_KEY_ID"),
            profile: lookup("AWS_PROFILE").filter(|v| !v.trim().is_empty()),
            web_identity: set("AWS_WEB_IDENTITY_TOKEN_FILE") && set("AWS_ROLE_ARN"),
            container,
            imds_disabled: lookup("AWS_EC2_METADATA_DISABLED")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
        }
    }

    /// The role sources the environment keys hide, as `(provider, why)`;
    /// empty when no keys are set or nothing else is configured. IMDS is not
    /// listed: whether an instance role exists takes a network call (see
    /// `envseal doctor`).
    pub fn shadowed(&self) -> Vec<(&'static str, String)> {
        if !self.env_keys {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(p) = &self.profile {
            out.push((PROVIDER_PROFILE, format!("AWS_PROFILE={p}")));
        }
        if self.web_identity {
            out.push((PROVIDER_WEB_IDENTITY, "AWS_WEB_IDENTITY_TOKEN_FILE".to_owned()));
        }
        if let Some(var) = self.container {
            out.push((PROVIDER_CONTAINER, var.to_owned()));
        }
        out
    }

    /// One line for logs and diagnostics when keys shadow a role source.
    pub fn shadowing_warning(&self) -> Option<String> {
        let shadowed = self.shadowed();
        if shadowed.is_empty() {
            return None;
        }
        let list: Vec<String> = shadowed.iter().map(|(p, why)| format!("{p} ({why})")).collect();
        Some(format!(
            "AWS_ACCESS_KEY_ID in the environment shadows {}: the static keys are used and the role is ignored",
            list.join(", ")
        ))
    }
}

/// Asks IMDS, once and within `bound`, which instance role the host has
/// (`None`: no role, IMDS disabled or not reachable). Used by `envseal
/// doctor` to tell whether environment keys hide an instance role; never
/// called on the encrypt path.
pub(crate) async fn probe_instance_role(bound: Duration) -> Option<String> {
    let conf = ProviderConfig::default();
    let client = imds::Client::builder()
        .configure(&conf)
        .max_attempts(1)
        .connect_timeout(bound)
        .read_timeout(bound)
        .operation_attempt_timeout(bound)
        .operation_timeout(bound)
        .build();
    let listing = tokio::time::timeout(bound, client.get("/latest/meta-data/iam/security-credentials/"))
        .await
        .ok()?
        .ok()?;
    let role = listing.as_ref().lines().next()?.trim().to_owned();
    (!role.is_empty()).then_some(role)
}

/// Warns once per process, through `tracing`, when environment keys shadow
/// a role source.
pub(crate) fn warn_if_shadowed(sources: &CredentialSources) {
    static WARNED: Once = Once::new();
    if let Some(line) = sources.shadowing_warning() {
        WARNED.call_once(|| tracing::warn!(target: "envseal::credentials", "{line}"));
    }
}

/// The provider last asked for credentials, written by [`Named`].
type Slot = Arc<Mutex<Option<&'static str>>>;

/// A chain member that records its name when the chain asks it.
#[derive(Debug)]
struct Named<P> {
    name: &'static str,
    slot: Slot,
    inner: P,
}

impl<P: ProvideCredentials> ProvideCredentials for Named<P> {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(self.name);
        self.inner.provide_credentials()
    }

    fn fallback_on_interrupt(&self) -> Option<Credentials> {
        self.inner.fallback_on_interrupt()
    }
}

/// The default chain (environment, profile, web identity, container, IMDS)
/// built from aws-config's own providers, each named, with envseal's IMDS
/// client.
pub(crate) async fn default_chain(
    options: &CredentialOptions,
    region: Option<aws_config::Region>,
) -> (SharedCredentialsProvider, Slot) {
    let region = match region {
        Some(r) => Some(r),
        None => {
            aws_config::default_provider::region::DefaultRegionChain::builder()
                .build()
                .region()
                .await
        }
    };
    let conf = ProviderConfig::default().with_region(region);
    let slot = Slot::default();
    let named = |name, inner| Named {
        name,
        slot: Arc::clone(&slot),
        inner,
    };
    let chain = CredentialsProviderChain::first_try(
        PROVIDER_ENVIRONMENT,
        named(
            PROVIDER_ENVIRONMENT,
            SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()),
        ),
    )
    .or_else(
        PROVIDER_PROFILE,
        named(
            PROVIDER_PROFILE,
            SharedCredentialsProvider::new(
                ProfileFileCredentialsProvider::builder().configure(&conf).build(),
            ),
        ),
    )
    .or_else(
        PROVIDER_WEB_IDENTITY,
        named(
            PROVIDER_WEB_IDENTITY,
            SharedCredentialsProvider::new(
                WebIdentityTokenCredentialsProvider::builder()
                    .configure(&conf)
                    .build(),
            ),
        ),
    )
    .or_else(
        PROVIDER_CONTAINER,
        named(
            PROVIDER_CONTAINER,
            SharedCredentialsProvider::new(EcsCredentialsProvider::builder().configure(&conf).build()),
        ),
    )
    .or_else(
        PROVIDER_IMDS,
        named(
            PROVIDER_IMDS,
            SharedCredentialsProvider::new(
                ImdsCredentialsProvider::builder()
                    .configure(&conf)
                    .imds_client(options.imds_client(&conf))
                    .build(),
            ),
        ),
    );
    (SharedCredentialsProvider::new(chain), slot)
}

/// Credentials as cached: the provider that supplied them and when to refresh.
struct Cached {
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
const NO_EXPIRY_REFRESH: Duration = Duration::from_secs(15 * 60);
/// After a failed refresh with still-valid credentials, wait this long
/// before asking the provider again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// When credentials loaded at `now` are next refreshed: `before` ahead of
/// their expiry, or at half their remaining life when that is shorter
/// (credentials that live 4 minutes are refreshed after 2, not at once);
/// without an expiry, after [`NO_EXPIRY_REFRESH`].
fn refresh_at(now: Instant, expires_at: Option<Instant>, before: Duration) -> Instant {
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
struct LoadFailure {
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
    stats: Arc<KmsStats>,
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
        stats: Arc<KmsStats>,
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
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn sources(vars: &[(&str, &str)]) -> CredentialSources {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        CredentialSources::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn shadowing() {
        let keys = ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE");
        let container = ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/creds");
        assert!(sources(&[keys]).shadowed().is_empty());
        assert!(sources(&[container]).shadowed().is_empty());
        let s = sources(&[keys, container]);
        assert_eq!(s.container, Some("AWS_CONTAINER_CREDENTIALS_FULL_URI"));
        assert_eq!(s.shadowed().len(), 1);
        assert_eq!(s.shadowed()[0].0, PROVIDER_CONTAINER);
        let line = s.shadowing_warning().unwrap();
        assert!(
            line.contains("EcsContainer") && line.contains("FULL_URI"),
            "{line}"
        );
        let s = sources(&[
            keys,
            ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/creds"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            ("AWS_PROFILE", "dev"),
        ]);
        let names: Vec<_> = s.shadowed().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            names,
            [PROVIDER_PROFILE, PROVIDER_WEB_IDENTITY, PROVIDER_CONTAINER]
        );
        // A token file without a role is not a web identity source; empty is unset.
        let s = sources(&[keys, ("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"), ("AWS_PROFILE", " ")]);
        assert!(s.shadowed().is_empty());
        assert!(sources(&[("AWS_EC2_METADATA_DISABLED", "TRUE")]).imds_disabled);
        assert!(!sources(&[("AWS_EC2_METADATA_DISABLED", "false")]).imds_disabled);
    }

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

    #[test]
    fn options_validate() {
        assert!(CredentialOptions::default().validate().is_ok());
        assert!(CredentialOptions::default()
            .with_load_timeout(Duration::ZERO)
            .validate()
            .is_err());
        let d = Duration::from_secs(1);
        assert!(CredentialOptions::default()
            .with_imds(0, d, d, d)
            .validate()
            .is_err());
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
    ) -> (Arc<CredentialCache>, Arc<KmsStats>) {
        let stats = Arc::new(KmsStats::new());
        let provider = SharedCredentialsProvider::new(Counter {
            life,
            calls: AtomicU64::new(0),
            fail_after,
        });
        let options = CredentialOptions::default().with_refresh_before_expiry(before);
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
