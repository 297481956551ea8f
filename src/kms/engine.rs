//! The call engine: runs one AWS call under the bounds, retries expired
//! credentials once, classifies the outcome, counts and traces it. Every
//! call envseal makes to KMS, and to DynamoDB for the branch key store,
//! goes through [`Engine::run`]; each service's client owns an engine with
//! its own retry partition.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kms as sdk;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use sdk::config::retry::{RetryConfig, RetryPartition};
use sdk::config::timeout::TimeoutConfig;
use sdk::error::ProvideErrorMetadata;
use tracing::Instrument;

use super::bounds::{AwsBounds, Deadline};
use super::classify::{classify_sdk_error, code_of, CodeOf, EnvsealRetryClassifier};
use super::credentials::CredentialCache;
use super::interceptor::{AttemptFailure, AttemptRecorder, AttemptState};
use super::stats::AwsCounters;
use crate::error::aws::{AwsError, AwsErrorKind, AwsOperation, AwsService, TimeoutKind};

/// What the engine sets on every call's configuration override: the
/// bounds, envseal's retry classifier, the attempt recorder, the region.
pub(crate) struct CallConfig {
    pub(crate) timeouts: TimeoutConfig,
    pub(crate) retry: RetryConfig,
    pub(crate) partition: RetryPartition,
    pub(crate) classifier: EnvsealRetryClassifier,
    pub(crate) recorder: AttemptRecorder,
    pub(crate) region: Option<String>,
}

/// A service's configuration builder, as a per-call override carrying
/// [`CallConfig`]. Implemented (by [`bounded_config!`]) for the config
/// builder of every AWS SDK crate envseal calls.
pub(crate) trait BoundedConfig: Sized {
    fn bounded(call: CallConfig) -> Self;
}

/// Implements [`BoundedConfig`] for an AWS SDK crate's `config::Builder`.
macro_rules! bounded_config {
    ($sdk:ident) => {
        impl $crate::kms::BoundedConfig for $sdk::config::Builder {
            fn bounded(call: $crate::kms::CallConfig) -> Self {
                let cfg = $sdk::config::Builder::default()
                    .timeout_config(call.timeouts)
                    .retry_config(call.retry)
                    .retry_partition(call.partition)
                    .retry_classifier(call.classifier)
                    .interceptor(call.recorder);
                match call.region {
                    Some(r) => cfg.region($sdk::config::Region::new(r)),
                    None => cfg,
                }
            }
        }
    };
}
#[cfg(feature = "hierarchy")]
pub(crate) use bounded_config;

bounded_config!(aws_sdk_kms);

/// One call to run: which operation, on what (a key id, a branch key id,
/// a table), in which region, until when.
pub(crate) struct Call<'a> {
    pub(crate) op: AwsOperation,
    pub(crate) target: &'a str,
    pub(crate) region: Option<&'a str>,
    pub(crate) deadline: Deadline,
}

/// The bounds, counters, retry partition and credential cache one service
/// client's calls run under.
pub(crate) struct Engine {
    service: AwsService,
    pub(crate) bounds: AwsBounds,
    pub(crate) stats: Arc<AwsCounters>,
    partition: RetryPartition,
    /// envseal's credential cache, when the client's credentials go through
    /// it (always, unless the configuration had no credentials provider).
    pub(crate) credentials: Option<Arc<CredentialCache>>,
}

/// Each engine gets its own retry partition, so one client's throttling
/// does not slow another's calls through the SDK's process-wide limiter.
fn new_partition(service: AwsService) -> RetryPartition {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = match service {
        AwsService::Kms => "kms",
        AwsService::DynamoDb => "dynamodb",
    };
    RetryPartition::custom(format!("envseal-{name}-{n}")).build()
}

impl Engine {
    pub(crate) fn new(
        service: AwsService,
        bounds: AwsBounds,
        stats: Arc<AwsCounters>,
        credentials: Option<Arc<CredentialCache>>,
    ) -> Self {
        Engine {
            service,
            bounds,
            stats,
            partition: new_partition(service),
            credentials,
        }
    }

    /// The retry partition (the client's own configuration carries it too).
    pub(crate) fn partition(&self) -> RetryPartition {
        self.partition.clone()
    }

    /// An engine for another service's client: the same credentials, its
    /// own bounds, counters and retry partition.
    #[cfg_attr(not(feature = "hierarchy"), allow(dead_code))] // used by the key store
    pub(crate) fn for_service(
        &self,
        service: AwsService,
        bounds: AwsBounds,
        stats: Arc<AwsCounters>,
    ) -> Self {
        Engine::new(service, bounds, stats, self.credentials.clone())
    }

    /// Runs one call under the bounds: the deadline's remaining time is the
    /// SDK's operation timeout (and a tokio timeout as a backstop); every
    /// attempt is counted and traced; the result is classified.
    #[cfg_attr(not(feature = "hierarchy"), allow(dead_code))] // used by the key store
    pub(crate) async fn run<C, T, E, F, Fut>(&self, call: &Call<'_>, send: F) -> Result<T, AwsError>
    where
        C: BoundedConfig,
        F: Fn(C) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.run_counted(call, send).await.0
    }

    /// [`Self::run`], also returning the attempts made. The steps: start
    /// (or refuse, past the deadline), send, retry once on expired
    /// credentials, classify, name the real cause of a deadline or a
    /// credentials failure, then count and trace the result.
    pub(crate) async fn run_counted<C, T, E, F, Fut>(
        &self,
        call: &Call<'_>,
        send: F,
    ) -> (Result<T, AwsError>, u32)
    where
        C: BoundedConfig,
        F: Fn(C) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let Call {
            op,
            target,
            region,
            deadline,
        } = *call;
        let region_field = region.unwrap_or("");
        let span = match op.service() {
            AwsService::Kms => {
                tracing::info_span!(
                    "kms_call",
                    operation = op.name(),
                    key_id = target,
                    region = region_field
                )
            }
            AwsService::DynamoDb if matches!(op, AwsOperation::DescribeTable | AwsOperation::CreateTable) => {
                tracing::info_span!(
                    "dynamodb_call",
                    operation = op.name(),
                    table = target,
                    region = region_field
                )
            }
            AwsService::DynamoDb => tracing::info_span!(
                "dynamodb_call",
                operation = op.name(),
                branch_key_id = target,
                region = region_field
            ),
        };
        let stats = &self.stats;
        stats.call_started(op);
        let started = Instant::now();
        let Some(remaining) = deadline.remaining() else {
            return (Err(self.not_started(op, target, &span)), 0);
        };
        let state: Arc<Mutex<AttemptState>> = Arc::default();
        let mut outcome = self
            .send_once(op, &send, remaining, &state, region)
            .instrument(span.clone())
            .await;
        if let Some(remaining) = self.expired_credentials_retry(&outcome, deadline, &state, started, &span) {
            let retry_started = Instant::now();
            outcome = self
                .send_once(op, &send, remaining, &state, region)
                .instrument(span.clone())
                .await;
            stats.expired_token_retry(op, matches!(outcome, Ok(Ok(_))), retry_started.elapsed());
        }
        let elapsed = started.elapsed();
        let summary = Summary::take(&state);
        let result = classify_outcome(outcome, op, target)
            .map_err(|err| deadline_cause(err, &summary, op, target))
            .map_err(|err| self.credentials_cause(err, started, op, target));
        let attempts = summary.attempts;
        (self.finish(op, result, summary, elapsed, &span), attempts)
    }

    /// The deadline passed before the call could start.
    fn not_started(&self, op: AwsOperation, key_id: &str, span: &tracing::Span) -> AwsError {
        let err = AwsError::new(AwsErrorKind::Timeout(TimeoutKind::Deadline), op, key_id)
            .with_message("the deadline passed before the call could start");
        self.stats.deadline_before_call(op);
        self.stats.call_finished(op, Some(&err.kind), Duration::ZERO);
        let svc = self.service.log_name();
        span.in_scope(|| tracing::warn!(error = %err, "{svc} call not started"));
        err
    }

    /// When the service rejected the credentials as expired: drops them
    /// from the cache and returns the time left for one more try with
    /// fresh ones.
    fn expired_credentials_retry<T, E: ProvideErrorMetadata>(
        &self,
        outcome: &Outcome<T, E>,
        deadline: Deadline,
        state: &Mutex<AttemptState>,
        started: Instant,
        span: &tracing::Span,
    ) -> Option<Duration> {
        let cache = self.credentials.as_deref()?;
        let remaining = deadline.remaining()?;
        let Ok(Err(e)) = outcome else { return None };
        if e.code().and_then(AwsErrorKind::from_code) != Some(AwsErrorKind::CredentialsExpired) {
            return None;
        }
        cache.invalidate_loaded_before(lock_state(state).sent.unwrap_or(started));
        span.in_scope(|| {
            tracing::warn!(
                provider = cache.provider(),
                "{} rejected the credentials as expired; retrying once with fresh ones",
                self.service.log_name()
            )
        });
        Some(remaining)
    }

    /// A deadline that passed while credentials were being loaded is a
    /// credentials failure (the provider did not answer in time), and a
    /// credentials failure names the provider behind it.
    fn credentials_cause(&self, err: AwsError, started: Instant, op: AwsOperation, key_id: &str) -> AwsError {
        let cache = self.credentials.as_deref();
        let mut err = match cache.and_then(|c| c.cancelled_since(started)) {
            Some(provider) if err.is_timeout() => {
                let mut e = AwsError::new(AwsErrorKind::Credentials, op, key_id).with_message(format!(
                    "credentials from {provider} were not loaded {}",
                    match err.kind {
                        AwsErrorKind::Timeout(TimeoutKind::Attempt) => "within the attempt timeout",
                        _ => "before the deadline",
                    }
                ));
                e.credentials_provider = Some(provider.to_owned());
                e
            }
            _ => err,
        };
        let credentials = matches!(
            err.kind,
            AwsErrorKind::Credentials | AwsErrorKind::CredentialsExpired
        );
        if credentials && err.credentials_provider.is_none() {
            err.credentials_provider = cache.and_then(CredentialCache::provider).map(str::to_owned);
        }
        err
    }

    /// Counts and traces the call; a failure gets the attempts, the time
    /// spent and the last status seen.
    // AwsError is large by design (status, code, request id, the other
    // failures); it is made once per failed call, never per attempt.
    #[allow(clippy::result_large_err)]
    fn finish<T>(
        &self,
        op: AwsOperation,
        result: Result<T, AwsError>,
        summary: Summary,
        elapsed: Duration,
        span: &tracing::Span,
    ) -> Result<T, AwsError> {
        let failure = result.as_ref().err().map(|e| &e.kind);
        self.stats.call_finished(op, failure, elapsed);
        let attempts = summary.attempts;
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let svc = self.service.log_name();
        match result {
            Ok(out) => {
                span.in_scope(|| tracing::debug!(attempts, elapsed_ms, "{svc} call succeeded"));
                Ok(out)
            }
            Err(mut err) => {
                err.attempts = attempts;
                err.elapsed = elapsed;
                if err.status.is_none() {
                    err.status = summary.last_status;
                }
                span.in_scope(|| {
                    tracing::warn!(
                        kind = ?err.kind,
                        status = err.status,
                        code = err.code.as_deref(),
                        request_id = err.request_id.as_deref(),
                        attempts,
                        elapsed_ms,
                        "{svc} call failed"
                    )
                });
                Err(err)
            }
        }
    }

    /// One SDK call (the SDK's attempts and retries) under `remaining`.
    async fn send_once<C, T, E, F, Fut>(
        &self,
        op: AwsOperation,
        send: &F,
        remaining: Duration,
        state: &Arc<Mutex<AttemptState>>,
        region: Option<&str>,
    ) -> Outcome<T, E>
    where
        C: BoundedConfig,
        F: Fn(C) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code_of: CodeOf = code_of::<E>;
        let recorder = AttemptRecorder {
            op,
            service: self.service,
            stats: Arc::clone(&self.stats),
            state: Arc::clone(state),
            code_of,
        };
        let cfg = C::bounded(CallConfig {
            timeouts: self.bounds.timeout_config(remaining),
            retry: self.bounds.retry_config(),
            partition: self.partition.clone(),
            classifier: EnvsealRetryClassifier { code_of },
            recorder,
            region: region.map(str::to_owned),
        });
        // The SDK's operation timeout is the real bound; the backstop only
        // catches a future that ignores it.
        let backstop = remaining + Duration::from_millis(100);
        tokio::time::timeout(backstop, send(cfg)).await
    }
}

/// What one SDK call ended with: its result, or the backstop timeout.
type Outcome<T, E> = Result<Result<T, SdkError<E, HttpResponse>>, tokio::time::error::Elapsed>;

/// What the attempts of one call left behind.
struct Summary {
    attempts: u32,
    last_status: Option<u16>,
    last_failure: Option<AttemptFailure>,
    last_throttle: Option<AttemptFailure>,
}

impl Summary {
    fn take(state: &Mutex<AttemptState>) -> Self {
        let mut s = lock_state(state);
        Summary {
            attempts: s.attempts,
            last_status: s.last_status,
            last_failure: s.last_failure.take(),
            last_throttle: s.last_throttle.take(),
        }
    }
}

/// The SDK's result as envseal's: success, a classified error, or the
/// deadline when the backstop fired.
#[allow(clippy::result_large_err)] // as `KmsClient::finish`
fn classify_outcome<T, E>(outcome: Outcome<T, E>, op: AwsOperation, key_id: &str) -> Result<T, AwsError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match outcome {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(classify_sdk_error(e, op, key_id)),
        Err(_) => Err(AwsError::new(
            AwsErrorKind::Timeout(TimeoutKind::Deadline),
            op,
            key_id,
        )),
    }
}

/// When the deadline ends a call that was failing for another reason,
/// reports that reason: the last attempt's failure if the deadline passed
/// between attempts (backoff, or the adaptive limiter's wait), else any
/// throttling, which must stay visible with its status.
fn deadline_cause(err: AwsError, summary: &Summary, op: AwsOperation, key_id: &str) -> AwsError {
    if err.kind != AwsErrorKind::Timeout(TimeoutKind::Deadline) {
        return err;
    }
    let cause = match &summary.last_failure {
        Some(f) if !matches!(f.kind, AwsErrorKind::Timeout(_)) => Some(f),
        _ => summary.last_throttle.as_ref(),
    };
    match cause {
        Some(f) => {
            let mut e =
                AwsError::new(f.kind.clone(), op, key_id).with_message("the deadline passed while retrying");
            e.code = f.code.clone();
            e.request_id = f.request_id.clone();
            e.status = f.status.or(summary.last_status);
            e
        }
        None => err,
    }
}

pub(super) fn lock_state(state: &Mutex<AttemptState>) -> std::sync::MutexGuard<'_, AttemptState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}
