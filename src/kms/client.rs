//! The bounded KMS client: an `aws-sdk-kms` client plus envseal's bounds,
//! retry rules, counters and tracing, applied to every call.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kms as sdk;
use aws_smithy_runtime_api::client::interceptors::context::Error as OpError;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, OrchestratorError};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::retries::classifiers::RetryClassifierPriority;
use aws_smithy_types::error::display::DisplayErrorContext;
use sdk::config::interceptors::{BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef};
use sdk::config::retry::{ClassifyRetry, RetryAction, RetryConfig, RetryPartition};
use sdk::config::timeout::TimeoutConfig;
use sdk::config::{BehaviorVersion, ConfigBag, Intercept, Region, RuntimeComponents};
use sdk::error::{BoxError, ProvideErrorMetadata};
use sdk::operation::decrypt::DecryptError;
use sdk::operation::describe_key::DescribeKeyError;
use sdk::operation::encrypt::EncryptError;
use sdk::operation::generate_data_key::GenerateDataKeyError;
use sdk::operation::RequestId;
use sdk::primitives::Blob;
use tracing::Instrument;
use zeroize::Zeroizing;

use super::credentials::{
    default_chain, warn_if_shadowed, CachedProvider, CredentialCache, CredentialOptions, CredentialSources,
};
use super::error::{is_throttling_code, KmsError, KmsErrorKind, KmsOperation, TimeoutKind};
use super::stats::{KmsStats, KmsStatsSnapshot};
use super::KmsArn;
use crate::error::Error;

/// Retry mode for KMS calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryMode {
    /// Exponential backoff with full jitter and a retry quota.
    Standard,
    /// Standard plus a client-side rate limiter that slows down after
    /// throttling (CUBIC-style). The default.
    Adaptive,
}

/// Time and attempt bounds for every KMS call. Defaults (from DESIGN.md):
///
/// | bound | default | what it limits |
/// |---|---|---|
/// | `connect_timeout` | 2 s | TCP + TLS connect, per attempt |
/// | `read_timeout` | 5 s | request sent → response headers, per attempt |
/// | `attempt_timeout` | 5 s | one whole attempt, body included |
/// | `deadline` | 10 s | one keyring operation: every call, attempt and backoff |
/// | `max_attempts` | 3 | attempts per call, first try included |
/// | `retry_mode` | adaptive | |
/// | `initial_backoff` | 100 ms | first retry delay (full jitter) |
/// | `max_backoff` | 2 s | cap on one retry delay |
///
/// A dripping body (headers, then bytes slowly) passes the read timeout;
/// the attempt timeout and the deadline stop it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KmsBounds {
    /// TCP + TLS connect timeout, per attempt.
    pub connect_timeout: Duration,
    /// Time from sending a request to the response headers, per attempt.
    pub read_timeout: Duration,
    /// One attempt, from credentials and signing to the end of the body.
    pub attempt_timeout: Duration,
    /// One keyring operation: all its KMS calls, attempts and backoff.
    pub deadline: Duration,
    /// Attempts per call, including the first (at least 1).
    pub max_attempts: u32,
    /// Standard or adaptive retries.
    pub retry_mode: RetryMode,
    /// First backoff before a retry.
    pub initial_backoff: Duration,
    /// Cap on any one backoff.
    pub max_backoff: Duration,
}

impl Default for KmsBounds {
    fn default() -> Self {
        KmsBounds {
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(10),
            max_attempts: 3,
            retry_mode: RetryMode::Adaptive,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl KmsBounds {
    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }
    /// Sets the read timeout.
    pub fn with_read_timeout(mut self, d: Duration) -> Self {
        self.read_timeout = d;
        self
    }
    /// Sets the per-attempt timeout.
    pub fn with_attempt_timeout(mut self, d: Duration) -> Self {
        self.attempt_timeout = d;
        self
    }
    /// Sets the deadline for a whole keyring operation.
    pub fn with_deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }
    /// Sets the maximum attempts per call (first try included).
    pub fn with_max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }
    /// Sets the retry mode.
    pub fn with_retry_mode(mut self, mode: RetryMode) -> Self {
        self.retry_mode = mode;
        self
    }
    /// Sets the initial and maximum backoff.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// Checks that every bound is usable.
    ///
    /// # Errors
    /// [`Error::Config`] for a zero timeout or deadline, one over 24 hours,
    /// zero attempts, or a maximum backoff below the initial one.
    pub fn validate(&self) -> Result<(), Error> {
        let named = [
            ("connect timeout", self.connect_timeout),
            ("read timeout", self.read_timeout),
            ("attempt timeout", self.attempt_timeout),
            ("deadline", self.deadline),
        ];
        if let Some((name, _)) = named.iter().find(|(_, d)| d.is_zero()) {
            return Err(Error::config(
                "KMS bounds",
                format!("KMS {name} must be greater than zero"),
            ));
        }
        // A bound is a bound: "forever" is not one (and would overflow Instant).
        const MAX_BOUND: Duration = Duration::from_secs(24 * 60 * 60);
        if let Some((name, _)) = named.iter().find(|(_, d)| *d > MAX_BOUND) {
            return Err(Error::config(
                "KMS bounds",
                format!("KMS {name} must be at most 24 hours"),
            ));
        }
        if self.max_attempts == 0 {
            return Err(Error::config("KMS bounds", "KMS max attempts must be at least 1"));
        }
        if self.max_backoff < self.initial_backoff {
            return Err(Error::config(
                "KMS bounds",
                "KMS max backoff must not be below the initial backoff",
            ));
        }
        Ok(())
    }

    fn retry_config(&self) -> RetryConfig {
        let base = match self.retry_mode {
            RetryMode::Standard => RetryConfig::standard(),
            RetryMode::Adaptive => RetryConfig::adaptive(),
        };
        base.with_max_attempts(self.max_attempts)
            .with_initial_backoff(self.initial_backoff)
            .with_max_backoff(self.max_backoff)
    }

    /// Timeouts for one call that has `remaining` of its operation's deadline.
    fn timeout_config(&self, remaining: Duration) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.read_timeout)
            .operation_attempt_timeout(self.attempt_timeout)
            .operation_timeout(remaining)
            .build()
    }
}

/// When a keyring operation must be done by.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline(Instant);

impl Deadline {
    fn remaining(self) -> Option<Duration> {
        self.0
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }
}

/// A data key from `GenerateDataKey`.
pub(crate) struct GeneratedKey {
    pub(crate) plaintext: Zeroizing<Vec<u8>>,
    pub(crate) ciphertext: Vec<u8>,
    pub(crate) key_id: Option<String>,
}

/// A data key wrapped by `Encrypt`.
pub(crate) struct WrappedKey {
    pub(crate) ciphertext: Vec<u8>,
    pub(crate) key_id: Option<String>,
}

/// A data key unwrapped by `Decrypt`.
pub(crate) struct UnwrappedKey {
    pub(crate) plaintext: Zeroizing<Vec<u8>>,
    pub(crate) key_id: Option<String>,
}

/// The parameters every keyring call shares.
pub(crate) struct CallArgs<'a> {
    pub(crate) key_id: &'a str,
    pub(crate) context: &'a crate::EncryptionContext,
    pub(crate) grant_tokens: &'a [String],
    pub(crate) deadline: Deadline,
}

impl CallArgs<'_> {
    fn context_map(&self) -> HashMap<String, String> {
        self.context
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn grant_tokens(&self) -> Option<Vec<String>> {
        (!self.grant_tokens.is_empty()).then(|| self.grant_tokens.to_vec())
    }
}

struct ClientInner {
    client: sdk::Client,
    bounds: KmsBounds,
    stats: Arc<KmsStats>,
    partition: RetryPartition,
    /// envseal's credential cache, when the client's credentials go through
    /// it (always, unless the configuration had no credentials provider).
    credentials: Option<Arc<CredentialCache>>,
    /// STS with the same credentials, for [`KmsClient::doctor`].
    sts: Option<aws_sdk_sts::Client>,
}

/// A KMS client whose every call is bounded, classified, counted and traced.
///
/// Cheap to clone; clones share the SDK client, the retry partition (its
/// retry quota and adaptive rate limiter) and the counters. Build one per
/// application and clone it: the SDK keeps every retry partition for the
/// life of the process.
#[derive(Clone)]
pub struct KmsClient {
    inner: Arc<ClientInner>,
    region: Option<String>,
}

impl std::fmt::Debug for KmsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsClient")
            .field("region", &self.region)
            .field("bounds", &self.inner.bounds)
            .finish_non_exhaustive()
    }
}

/// Each client gets its own retry partition, so one client's throttling
/// does not slow another's calls through the SDK's process-wide limiter.
fn new_partition() -> RetryPartition {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    RetryPartition::custom(format!("envseal-kms-{n}")).build()
}

/// Builds a [`KmsClient`]; see [`KmsClient::builder`].
#[derive(Debug, Default)]
pub struct KmsClientBuilder {
    bounds: KmsBounds,
    region: Option<String>,
    endpoint_url: Option<String>,
    sdk_config: Option<aws_config::SdkConfig>,
    stats: Option<Arc<KmsStats>>,
    credentials: CredentialOptions,
    sts_endpoint_url: Option<String>,
}

impl KmsClientBuilder {
    /// The bounds for every call (default: [`KmsBounds::default`]).
    pub fn bounds(mut self, bounds: KmsBounds) -> Self {
        self.bounds = bounds;
        self
    }

    /// The region, overriding `AWS_REGION` and the profile.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// An explicit endpoint (a VPC endpoint, a local KMS), overriding
    /// `AWS_ENDPOINT_URL_KMS` and `AWS_ENDPOINT_URL`.
    pub fn endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.endpoint_url = Some(url.into());
        self
    }

    /// An explicit STS endpoint for [`KmsClient::doctor`], overriding
    /// `AWS_ENDPOINT_URL_STS`.
    pub fn sts_endpoint_url(mut self, url: impl Into<String>) -> Self {
        self.sts_endpoint_url = Some(url.into());
        self
    }

    /// Start from this shared AWS configuration (credentials, region,
    /// endpoint) instead of loading one from the environment.
    pub fn sdk_config(mut self, config: aws_config::SdkConfig) -> Self {
        self.sdk_config = Some(config);
        self
    }

    /// How credentials are loaded and refreshed (default:
    /// [`CredentialOptions::default`]: refresh 5 minutes before expiry,
    /// IMDS retrying connect timeouts).
    pub fn credentials(mut self, options: CredentialOptions) -> Self {
        self.credentials = options;
        self
    }

    /// Count into this handle (to share counters between clients).
    pub fn stats(mut self, stats: Arc<KmsStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Builds the client, loading the AWS configuration from the environment
    /// (credential chain, region, `AWS_ENDPOINT_URL_KMS`) unless one was given.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid bounds or when no region is configured.
    pub async fn build(mut self) -> Result<KmsClient, Error> {
        self.bounds.validate()?;
        self.credentials.validate()?;
        let stats = self.stats.take().unwrap_or_default();
        let (sdk_config, cache) = match self.sdk_config.take() {
            Some(c) => {
                let cache = c.credentials_provider().map(|p| {
                    Arc::new(CredentialCache::new(
                        p,
                        None,
                        &self.credentials,
                        Arc::clone(&stats),
                    ))
                });
                (c, cache)
            }
            None => {
                let sources = CredentialSources::from_env();
                warn_if_shadowed(&sources);
                let region = self.region.clone().map(Region::new);
                let (chain, slot) = default_chain(&self.credentials, region.clone()).await;
                let cache = Arc::new(CredentialCache::new(
                    chain,
                    Some(slot),
                    &self.credentials,
                    Arc::clone(&stats),
                ));
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .credentials_provider(CachedProvider(Arc::clone(&cache)));
                if let Some(r) = region {
                    loader = loader.region(r);
                }
                (loader.load().await, Some(cache))
            }
        };
        let partition = new_partition();
        let mut conf = sdk::config::Builder::from(&sdk_config)
            .behavior_version(BehaviorVersion::latest())
            .timeout_config(self.bounds.timeout_config(self.bounds.deadline))
            .retry_config(self.bounds.retry_config())
            .retry_partition(partition.clone());
        if let Some(r) = &self.region {
            conf = conf.region(Region::new(r.clone()));
        }
        if let Some(url) = &self.endpoint_url {
            conf = conf.endpoint_url(url.clone());
        }
        if let Some(cache) = &cache {
            conf = conf
                .credentials_provider(CachedProvider(Arc::clone(cache)))
                .identity_cache(sdk::config::IdentityCache::no_cache());
        }
        let conf = conf.build();
        let region = conf.region().map(|r| r.as_ref().to_owned());
        let mut sts = aws_sdk_sts::config::Builder::from(&sdk_config)
            .behavior_version(BehaviorVersion::latest())
            .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled());
        if let Some(r) = &region {
            sts = sts.region(aws_sdk_sts::config::Region::new(r.clone()));
        }
        if let Some(url) = &self.sts_endpoint_url {
            sts = sts.endpoint_url(url.clone());
        }
        if let Some(cache) = &cache {
            sts = sts
                .credentials_provider(CachedProvider(Arc::clone(cache)))
                .identity_cache(aws_sdk_sts::config::IdentityCache::no_cache());
        }
        let sts = aws_sdk_sts::Client::from_conf(sts.build());
        if region.is_none() {
            return Err(Error::config(
                "region",
                "no AWS region for KMS: set AWS_REGION or pass a region",
            ));
        }
        Ok(KmsClient {
            inner: Arc::new(ClientInner {
                client: sdk::Client::from_conf(conf),
                bounds: self.bounds,
                stats,
                partition,
                credentials: cache,
                sts: Some(sts),
            }),
            region,
        })
    }
}

impl KmsClient {
    /// A builder: bounds, region, endpoint, shared configuration, counters.
    pub fn builder() -> KmsClientBuilder {
        KmsClientBuilder::default()
    }

    /// Wraps a client the caller built. envseal's bounds, retry rules and
    /// counters still apply: they are set on every call. The client keeps
    /// its own credentials provider and identity cache (the SDK does not
    /// hand them out), so envseal's refresh ahead of expiry and retry after
    /// `ExpiredTokenException` need [`KmsClientBuilder::sdk_config`] instead.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid bounds.
    pub fn from_sdk_client(client: sdk::Client, bounds: KmsBounds) -> Result<Self, Error> {
        bounds.validate()?;
        let region = client.config().region().map(|r| r.as_ref().to_owned());
        Ok(KmsClient {
            inner: Arc::new(ClientInner {
                client,
                bounds,
                stats: Arc::default(),
                partition: new_partition(),
                credentials: None,
                sts: None,
            }),
            region,
        })
    }

    /// The provider that supplied the credentials in use (e.g.
    /// `EcsContainer`), or that failed last; `None` before the first load.
    pub fn credentials_provider(&self) -> Option<&'static str> {
        self.inner.credentials.as_ref().and_then(|c| c.provider())
    }

    /// Resolves credentials through the client's cache (loading them if
    /// needed): the provider's name, the access key id and the expiry.
    /// Never returns the secret.
    ///
    /// # Errors
    /// The provider's failure, as text naming it.
    pub async fn resolve_credentials(&self) -> Result<CredentialInfo, String> {
        let Some(cache) = &self.inner.credentials else {
            return Err("the KMS client has no credentials provider".into());
        };
        match cache.credentials().await {
            Ok(c) => Ok(CredentialInfo {
                provider: cache
                    .provider()
                    .unwrap_or(super::credentials::PROVIDER_CONFIGURED),
                access_key_id: c.access_key_id().to_owned(),
                expiry: c.expiry(),
                account_id: c.account_id().map(|a| a.as_str().to_owned()),
            }),
            Err(e) => Err(DisplayErrorContext(&e).to_string()),
        }
    }

    /// The client's region (calls naming a key ARN go to the ARN's region).
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The same client, sharing counters and retry state, defaulting to
    /// another region.
    pub fn with_region(&self, region: impl Into<String>) -> Self {
        KmsClient {
            inner: Arc::clone(&self.inner),
            region: Some(region.into()),
        }
    }

    /// The bounds applied to every call.
    pub fn bounds(&self) -> &KmsBounds {
        &self.inner.bounds
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> KmsStatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// The live counters (shared with clones).
    pub fn stats_handle(&self) -> Arc<KmsStats> {
        Arc::clone(&self.inner.stats)
    }

    /// Starts the clock for one keyring operation.
    pub(crate) fn deadline(&self) -> Deadline {
        // validate() caps the deadline at 24 h, so this cannot overflow.
        let now = Instant::now();
        Deadline(now.checked_add(self.inner.bounds.deadline).unwrap_or(now))
    }

    /// The region a call naming `key_id` goes to: the ARN's, else the client's.
    fn region_for(&self, key_id: &str) -> Option<String> {
        match key_id.parse::<KmsArn>() {
            Ok(arn) => Some(arn.region().to_owned()),
            Err(_) => self.region.clone(),
        }
    }

    pub(crate) async fn generate_data_key(
        &self,
        args: CallArgs<'_>,
        number_of_bytes: usize,
    ) -> Result<GeneratedKey, KmsError> {
        let op = KmsOperation::GenerateDataKey;
        let bytes = i32::try_from(number_of_bytes)
            .map_err(|_| KmsError::new(KmsErrorKind::Other, op, args.key_id).with_message("key too long"))?;
        let request = self
            .inner
            .client
            .generate_data_key()
            .key_id(args.key_id)
            .number_of_bytes(bytes)
            .set_encryption_context(Some(args.context_map()))
            .set_grant_tokens(args.grant_tokens());
        let out = self
            .run(op, &args, |cfg| {
                request.clone().customize().config_override(cfg).send()
            })
            .await?;
        Ok(GeneratedKey {
            plaintext: Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default()),
            ciphertext: required_blob(out.ciphertext_blob).ok_or_else(|| missing_blob(op, args.key_id))?,
            key_id: out.key_id,
        })
    }

    pub(crate) async fn encrypt(&self, args: CallArgs<'_>, plaintext: &[u8]) -> Result<WrappedKey, KmsError> {
        let request = self
            .inner
            .client
            .encrypt()
            .key_id(args.key_id)
            .plaintext(Blob::new(plaintext))
            .set_encryption_context(Some(args.context_map()))
            .set_grant_tokens(args.grant_tokens());
        let out = self
            .run(KmsOperation::Encrypt, &args, |cfg| {
                request.clone().customize().config_override(cfg).send()
            })
            .await?;
        Ok(WrappedKey {
            ciphertext: required_blob(out.ciphertext_blob)
                .ok_or_else(|| missing_blob(KmsOperation::Encrypt, args.key_id))?,
            key_id: out.key_id,
        })
    }

    pub(crate) async fn decrypt(
        &self,
        args: CallArgs<'_>,
        ciphertext: &[u8],
    ) -> Result<UnwrappedKey, KmsError> {
        let request = self
            .inner
            .client
            .decrypt()
            .key_id(args.key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .set_encryption_context(Some(args.context_map()))
            .set_grant_tokens(args.grant_tokens());
        let out = self
            .run(KmsOperation::Decrypt, &args, |cfg| {
                request.clone().customize().config_override(cfg).send()
            })
            .await?;
        Ok(UnwrappedKey {
            plaintext: Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default()),
            key_id: out.key_id,
        })
    }

    pub(crate) fn sts_client(&self) -> Option<&aws_sdk_sts::Client> {
        self.inner.sts.as_ref()
    }

    /// `DescribeKey`, bounded like every call (for `envseal doctor`).
    pub(crate) async fn describe_key(
        &self,
        args: CallArgs<'_>,
    ) -> Result<super::doctor::KeyDescription, KmsError> {
        let request = self.inner.client.describe_key().key_id(args.key_id);
        let (out, attempts) = self
            .run_counted(KmsOperation::DescribeKey, &args, |cfg| {
                request.clone().customize().config_override(cfg).send()
            })
            .await;
        let out = out?;
        let meta = out.key_metadata.ok_or_else(|| {
            KmsError::new(
                KmsErrorKind::InvalidResponse,
                KmsOperation::DescribeKey,
                args.key_id,
            )
            .with_message("the response has no KeyMetadata")
        })?;
        Ok(super::doctor::KeyDescription {
            enabled: meta.enabled,
            state: meta
                .key_state
                .map_or_else(|| "?".into(), |s| s.as_str().to_owned()),
            usage: meta
                .key_usage
                .map_or_else(|| "?".into(), |s| s.as_str().to_owned()),
            spec: meta
                .key_spec
                .map_or_else(|| "?".into(), |s| s.as_str().to_owned()),
            attempts,
        })
    }

    /// Runs one call under the bounds: the deadline's remaining time is the
    /// SDK's operation timeout (and a tokio timeout as a backstop); every
    /// attempt is counted and traced; the result is classified.
    async fn run<T, E, F, Fut>(&self, op: KmsOperation, args: &CallArgs<'_>, send: F) -> Result<T, KmsError>
    where
        F: Fn(sdk::config::Builder) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.run_counted(op, args, send).await.0
    }

    /// [`Self::run`], also returning the attempts made.
    async fn run_counted<T, E, F, Fut>(
        &self,
        op: KmsOperation,
        args: &CallArgs<'_>,
        send: F,
    ) -> (Result<T, KmsError>, u32)
    where
        F: Fn(sdk::config::Builder) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let stats = &self.inner.stats;
        let region = self.region_for(args.key_id);
        let span = tracing::info_span!(
            "kms_call",
            operation = op.name(),
            key_id = args.key_id,
            region = region.as_deref().unwrap_or(""),
        );
        stats.call_started(op);
        let started = Instant::now();
        let Some(remaining) = args.deadline.remaining() else {
            stats.deadline_before_call();
            stats.call_finished(false, Duration::ZERO);
            let err = KmsError::new(KmsErrorKind::Timeout(TimeoutKind::Deadline), op, args.key_id)
                .with_message("the deadline passed before the call could start");
            span.in_scope(|| tracing::warn!(error = %err, "kms call not started"));
            return (Err(err), 0);
        };
        let state: Arc<Mutex<AttemptState>> = Arc::default();
        let mut outcome = self
            .send_once(&send, remaining, &state, region.as_deref())
            .instrument(span.clone())
            .await;
        // KMS rejected the credentials as expired: drop them from the cache
        // and retry once with fresh ones, inside the same deadline.
        let cache = self.inner.credentials.as_deref();
        if let (Some(cache), Some(remaining)) = (cache, args.deadline.remaining()) {
            if let Ok(Err(e)) = &outcome {
                if e.code().and_then(KmsErrorKind::from_code) == Some(KmsErrorKind::CredentialsExpired) {
                    let sent = lock_state(&state).sent.unwrap_or(started);
                    cache.invalidate_loaded_before(sent);
                    span.in_scope(|| {
                        tracing::warn!(
                            provider = cache.provider(),
                            "kms rejected the credentials as expired; retrying once with fresh ones"
                        )
                    });
                    let retry_started = Instant::now();
                    outcome = self
                        .send_once(&send, remaining, &state, region.as_deref())
                        .instrument(span.clone())
                        .await;
                    stats.expired_token_retry(matches!(outcome, Ok(Ok(_))), retry_started.elapsed());
                }
            }
        }
        let elapsed = started.elapsed();
        let (attempts, last_status, last_failure, last_throttle) = {
            let mut s = lock_state(&state);
            (
                s.attempts,
                s.last_status,
                s.last_failure.take(),
                s.last_throttle.take(),
            )
        };
        let result = match outcome {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(classify_sdk_error(e, op, args.key_id)),
            Err(_) => Err(KmsError::new(
                KmsErrorKind::Timeout(TimeoutKind::Deadline),
                op,
                args.key_id,
            )),
        };
        // When the deadline ends a call that was failing for another reason,
        // report that reason: the last attempt's failure if the deadline
        // passed between attempts (backoff, or the adaptive limiter's wait),
        // else any throttling, which must stay visible with its status.
        let result = result.map_err(|err| {
            if err.kind != KmsErrorKind::Timeout(TimeoutKind::Deadline) {
                return err;
            }
            let cause = match last_failure {
                Some(f) if !matches!(f.kind, KmsErrorKind::Timeout(_)) => Some(f),
                _ => last_throttle,
            };
            match cause {
                Some(f) => {
                    let mut e = KmsError::new(f.kind, op, args.key_id)
                        .with_message("the deadline passed while retrying");
                    e.code = f.code;
                    e.request_id = f.request_id;
                    e.status = f.status.or(last_status);
                    e
                }
                None => err,
            }
        });
        // A deadline that passed while credentials were being loaded is a
        // credentials failure: the provider did not answer in time.
        let result = result.map_err(|err| match cache.and_then(|c| c.cancelled_since(started)) {
            Some(provider) if err.is_timeout() => {
                let mut e = KmsError::new(KmsErrorKind::Credentials, op, args.key_id).with_message(format!(
                    "credentials from {provider} were not loaded {}",
                    match err.kind {
                        KmsErrorKind::Timeout(TimeoutKind::Attempt) => "within the attempt timeout",
                        _ => "before the deadline",
                    }
                ));
                e.credentials_provider = Some(provider.to_owned());
                e
            }
            _ => err,
        });
        // A credentials failure names the provider behind it.
        let result = result.map_err(|mut err| {
            let credentials = matches!(
                err.kind,
                KmsErrorKind::Credentials | KmsErrorKind::CredentialsExpired
            );
            if credentials && err.credentials_provider.is_none() {
                err.credentials_provider = cache.and_then(CredentialCache::provider).map(str::to_owned);
            }
            err
        });
        stats.call_finished(result.is_ok(), elapsed);
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let result = match result {
            Ok(out) => {
                span.in_scope(|| tracing::debug!(attempts, elapsed_ms, "kms call succeeded"));
                Ok(out)
            }
            Err(mut err) => {
                err.attempts = attempts;
                err.elapsed = elapsed;
                if err.status.is_none() {
                    err.status = last_status;
                }
                span.in_scope(|| {
                    tracing::warn!(
                        kind = ?err.kind,
                        status = err.status,
                        code = err.code.as_deref(),
                        request_id = err.request_id.as_deref(),
                        attempts,
                        elapsed_ms,
                        "kms call failed"
                    )
                });
                Err(err)
            }
        };
        (result, attempts)
    }
}

impl KmsClient {
    /// One SDK call (the SDK's attempts and retries) under `remaining`.
    async fn send_once<T, E, F, Fut>(
        &self,
        send: &F,
        remaining: Duration,
        state: &Arc<Mutex<AttemptState>>,
        region: Option<&str>,
    ) -> Result<Result<T, SdkError<E, HttpResponse>>, tokio::time::error::Elapsed>
    where
        F: Fn(sdk::config::Builder) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    {
        let recorder = AttemptRecorder {
            stats: Arc::clone(&self.inner.stats),
            state: Arc::clone(state),
        };
        let bounds = &self.inner.bounds;
        let mut cfg = sdk::config::Builder::default()
            .timeout_config(bounds.timeout_config(remaining))
            .retry_config(bounds.retry_config())
            .retry_partition(self.inner.partition.clone())
            .retry_classifier(EnvsealRetryClassifier)
            .interceptor(recorder);
        if let Some(r) = region {
            cfg = cfg.region(Region::new(r.to_owned()));
        }
        // The SDK's operation timeout is the real bound; the backstop only
        // catches a future that ignores it.
        let backstop = remaining + Duration::from_millis(100);
        tokio::time::timeout(backstop, send(cfg)).await
    }
}

fn lock_state(state: &Mutex<AttemptState>) -> std::sync::MutexGuard<'_, AttemptState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// What [`KmsClient::resolve_credentials`] reports: never the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CredentialInfo {
    /// The provider that supplied them (e.g. `EcsContainer`).
    pub provider: &'static str,
    /// The access key id (not secret; identifies the key or session).
    pub access_key_id: String,
    /// When they expire, if they do.
    pub expiry: Option<std::time::SystemTime>,
    /// The account, when the provider says.
    pub account_id: Option<String>,
}

/// A wrapped key KMS must return: missing or empty is an invalid response
/// (an empty EDK would make a message no one can decrypt).
fn required_blob(blob: Option<Blob>) -> Option<Vec<u8>> {
    blob.map(Blob::into_inner).filter(|b| !b.is_empty())
}

fn missing_blob(op: KmsOperation, key_id: &str) -> KmsError {
    KmsError::new(KmsErrorKind::InvalidResponse, op, key_id)
        .with_message("the response has no CiphertextBlob")
}

/// The AWS error code of an operation error, whichever operation it is.
fn error_code(err: &OpError) -> Option<&str> {
    if let Some(e) = err.downcast_ref::<GenerateDataKeyError>() {
        return e.code();
    }
    if let Some(e) = err.downcast_ref::<EncryptError>() {
        return e.code();
    }
    if let Some(e) = err.downcast_ref::<DescribeKeyError>() {
        return e.code();
    }
    err.downcast_ref::<DecryptError>()
        .and_then(ProvideErrorMetadata::code)
}

/// Timeout kind from a transport error's text (the SDK's connector errors
/// say "HTTP connect timeout" or "HTTP read timeout").
fn transport_timeout_kind(text: &str) -> TimeoutKind {
    if text.contains("connect timeout") {
        TimeoutKind::Connect
    } else if text.contains("read timeout") {
        TimeoutKind::Read
    } else {
        TimeoutKind::Attempt
    }
}

/// SDK timeout errors say which of the two orchestrator timeouts fired;
/// the operation timeout is envseal's deadline.
fn orchestrator_timeout_kind(text: &str) -> TimeoutKind {
    if text.contains("attempt timeout") {
        TimeoutKind::Attempt
    } else {
        TimeoutKind::Deadline
    }
}

/// Classifies one attempt's failure (for counters and tracing).
fn classify_attempt(err: &OrchestratorError<OpError>, status: Option<u16>) -> KmsErrorKind {
    if let Some(kind) = err
        .as_operation_error()
        .and_then(error_code)
        .and_then(KmsErrorKind::from_code)
    {
        return kind;
    }
    if status == Some(429) {
        return KmsErrorKind::Throttled;
    }
    if err.is_timeout_error() {
        return KmsErrorKind::Timeout(orchestrator_timeout_kind(&err.to_string()));
    }
    if let Some(conn) = err.as_connector_error() {
        return if conn.is_timeout() {
            KmsErrorKind::Timeout(transport_timeout_kind(&DisplayErrorContext(conn).to_string()))
        } else {
            KmsErrorKind::Connection
        };
    }
    KmsErrorKind::from_status(status)
}

/// Maps the SDK's final error to a [`KmsError`] (attempts filled in later).
fn classify_sdk_error<E>(err: SdkError<E, HttpResponse>, op: KmsOperation, key_id: &str) -> KmsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let request_id = err.request_id().map(str::to_owned);
    let text = DisplayErrorContext(&err).to_string();
    let (kind, code, message) = match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let code = e.code().map(str::to_owned);
            let kind = code
                .as_deref()
                .and_then(KmsErrorKind::from_code)
                .unwrap_or_else(|| KmsErrorKind::from_status(status));
            (kind, code, e.message().map(str::to_owned))
        }
        SdkError::TimeoutError(_) => (
            KmsErrorKind::Timeout(orchestrator_timeout_kind(&text)),
            None,
            None,
        ),
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            (KmsErrorKind::Timeout(transport_timeout_kind(&text)), None, None)
        }
        // I/O and transient transport errors (reset, closed early) retry;
        // a credentials provider failure surfaces here too, before sending.
        SdkError::DispatchFailure(d)
            if d.is_io() || d.as_other() == Some(aws_smithy_types::retry::ErrorKind::TransientError) =>
        {
            (KmsErrorKind::Connection, None, Some(text))
        }
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) if mentions_credentials(&text) => {
            (KmsErrorKind::Credentials, None, Some(text))
        }
        // The SDK retries a response it could not read (body cut off), so
        // it is a transient connection failure, not a bad answer.
        SdkError::ResponseError(_) => (KmsErrorKind::Connection, None, Some(text)),
        _ => (KmsErrorKind::Other, None, Some(text)),
    };
    let mut e = KmsError::new(kind, op, key_id);
    e.status = status;
    e.code = code;
    e.request_id = request_id;
    e.message = message;
    e
}

fn mentions_credentials(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("credential") || t.contains("identity")
}

/// Envseal's retry rules on top of the SDK's: plain HTTP 429 is throttling;
/// the codes that must never retry (access denied, not found, disabled,
/// invalid ciphertext, `LimitExceededException`, expired credentials ...)
/// are forbidden even when an SDK classifier would retry them (the SDK
/// treats `LimitExceededException` as throttling, and retries access denied
/// on suspected clock skew).
#[derive(Debug)]
struct EnvsealRetryClassifier;

/// Codes the SDK's clock-skew classifier may retry (once skew is detected).
const CLOCK_SKEW_CODES: [&str; 4] = [
    "AccessDeniedException",
    "InvalidSignatureException",
    "RequestExpired",
    "SignatureDoesNotMatch",
];

impl ClassifyRetry for EnvsealRetryClassifier {
    fn classify_retry(&self, ctx: &sdk::config::interceptors::InterceptorContext) -> RetryAction {
        let Some(Err(err)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        if let Some(code) = err.as_operation_error().and_then(error_code) {
            if is_throttling_code(code) {
                return RetryAction::throttling_error();
            }
            // The SDK retries these only on evidence of clock skew (the
            // response Date more than 4 minutes off), re-signed with the
            // corrected time: let it, or a skewed host never recovers.
            if CLOCK_SKEW_CODES.contains(&code) {
                return RetryAction::NoActionIndicated;
            }
            if KmsErrorKind::from_code(code).is_some_and(|k| k.forbids_retry()) {
                return RetryAction::RetryForbidden;
            }
        }
        if ctx.response().map(|r| r.status().as_u16()) == Some(429) {
            return RetryAction::throttling_error();
        }
        RetryAction::NoActionIndicated
    }

    fn name(&self) -> &'static str {
        "envseal-kms"
    }

    fn priority(&self) -> RetryClassifierPriority {
        use RetryClassifierPriority as P;
        P::run_after(P::transient_error_classifier())
    }
}

#[derive(Clone, Debug)]
struct AttemptFailure {
    kind: KmsErrorKind,
    code: Option<String>,
    request_id: Option<String>,
    status: Option<u16>,
}

#[derive(Debug, Default)]
struct AttemptState {
    attempts: u32,
    started: Option<Instant>,
    /// When the last attempt was signed and sent (its credentials resolved).
    sent: Option<Instant>,
    last_status: Option<u16>,
    /// Attempts whose outcome was recorded. An SDK attempt that sent
    /// nothing (cancelled in the rate limiter, or finalized a second time at
    /// the deadline) records nothing.
    finished: u32,
    /// The last failed attempt: kind, error code, request id, status.
    last_failure: Option<AttemptFailure>,
    /// The last throttled attempt, kept even if a later one timed out.
    last_throttle: Option<AttemptFailure>,
}

/// Per-call interceptor: counts attempts and logs each one's outcome.
#[derive(Debug)]
struct AttemptRecorder {
    stats: Arc<KmsStats>,
    state: Arc<Mutex<AttemptState>>,
}

impl Intercept for AttemptRecorder {
    fn name(&self) -> &'static str {
        "envseal-kms-attempts"
    }

    fn read_before_attempt(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.started = Some(Instant::now());
        Ok(())
    }

    /// Counted here, not per SDK attempt: an attempt that the deadline
    /// cancels while it waits for the adaptive rate limiter never sends.
    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.sent = Some(Instant::now());
        s.attempts += 1;
        self.stats.attempt_started(s.attempts);
        Ok(())
    }

    fn read_after_attempt(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = ctx.response();
        let status = response.map(|r| r.status().as_u16());
        let request_id = response
            .and_then(|r| r.headers().get("x-amzn-requestid"))
            .map(str::to_owned);
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if status.is_some() {
            s.last_status = status;
        }
        let attempt = s.attempts;
        let latency_ms = s
            .started
            .map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let repeated = s.finished == s.attempts;
        s.finished = s.attempts;
        let failure = match ctx.output_or_error() {
            Some(Err(_)) if repeated => None,
            Some(Err(err)) => {
                let kind = classify_attempt(err, status);
                let code = err.as_operation_error().and_then(error_code).map(str::to_owned);
                let failure = AttemptFailure {
                    kind: kind.clone(),
                    code,
                    request_id,
                    status,
                };
                if kind == KmsErrorKind::Throttled {
                    s.last_throttle = Some(failure.clone());
                }
                s.last_failure = Some(failure);
                Some(kind)
            }
            _ => None,
        };
        drop(s);
        match (ctx.output_or_error(), failure) {
            (Some(Ok(_)), _) => tracing::debug!(attempt, latency_ms, status, "kms attempt ok"),
            (Some(Err(_)), Some(kind)) => {
                self.stats.attempt_failed(&kind);
                if kind == KmsErrorKind::Throttled {
                    tracing::warn!(attempt, latency_ms, status, "kms attempt throttled");
                } else {
                    tracing::info!(attempt, latency_ms, status, kind = ?kind, "kms attempt failed");
                }
            }
            _ => tracing::info!(attempt, latency_ms, "kms attempt cancelled"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_validate() {
        assert!(KmsBounds::default().validate().is_ok());
        assert!(KmsBounds::default().with_max_attempts(0).validate().is_err());
        assert!(KmsBounds::default()
            .with_deadline(Duration::ZERO)
            .validate()
            .is_err());
        assert!(KmsBounds::default()
            .with_backoff(Duration::from_secs(3), Duration::from_secs(1))
            .validate()
            .is_err());
    }

    #[test]
    fn timeout_texts() {
        assert_eq!(
            transport_timeout_kind("timeout: client error (Connect): HTTP connect timeout occurred after 1s"),
            TimeoutKind::Connect
        );
        assert_eq!(
            transport_timeout_kind("timeout: HTTP read timeout occurred after 2s"),
            TimeoutKind::Read
        );
        assert_eq!(
            orchestrator_timeout_kind("operation attempt timeout (single attempt) occurred after 1s"),
            TimeoutKind::Attempt
        );
        assert_eq!(
            orchestrator_timeout_kind("operation timeout (all attempts including retries) occurred after 1s"),
            TimeoutKind::Deadline
        );
    }
}
