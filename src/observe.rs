//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`): the one place envseal names that crate. Every function here
//! is one line at its call site; without the feature they are empty and no
//! metrics crate is compiled.
//!
//! What is emitted, Prometheus-style (snake_case names, `_total` counters,
//! seconds; every name, label and value is listed in docs/metrics.md):
//!
//! | name | type | labels |
//! |---|---|---|
//! | `envseal_aws_calls_total` | counter | `service`, `operation`, `outcome` |
//! | `envseal_aws_call_duration_seconds` | histogram | `service`, `operation`, `outcome` |
//! | `envseal_aws_retries_total` | counter | `service`, `operation` |
//! | `envseal_aws_throttles_total` | counter | `service`, `operation`, `status`, `code` |
//! | `envseal_aws_timeouts_total` | counter | `service`, `operation`, `timeout` |
//! | `envseal_aws_expired_token_retries_total` | counter | `service`, `operation`, `outcome` |
//! | `envseal_aws_credential_refreshes_total` | counter | |
//! | `envseal_aws_credential_refresh_failures_total` | counter | |
//! | `envseal_aws_credential_load_duration_seconds` | histogram | |
//! | `envseal_cache_events_total` | counter | `cache`, `event` |
//! | `envseal_cache_entries` | gauge | `cache` |
//!
//! Metrics go to whatever recorder the application installed
//! (`metrics::set_global_recorder`, or an exporter's `install`); with none,
//! each emission is a check of an unset global and nothing more. Call
//! [`describe`] after installing the recorder to give each metric its help
//! text and unit.
//!
//! The AWS metrics are emitted by [`AwsCounters`](crate::kms::AwsCounters)'
//! recording methods, so they count exactly what `--kms-stats` counts: every
//! call, attempt and credential load of the call engine, from the same
//! events. STS `GetCallerIdentity` (`envseal doctor`) is outside the engine
//! and reports its calls here itself.

use std::time::Duration;

use crate::error::aws::{AwsErrorKind, AwsOperation, TimeoutKind, THROTTLING_CODES};

/// `service` and `operation` labels of one AWS call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallLabels {
    service: &'static str,
    operation: &'static str,
}

impl From<AwsOperation> for CallLabels {
    fn from(op: AwsOperation) -> Self {
        CallLabels {
            service: op.service().log_name(),
            operation: op.name(),
        }
    }
}

/// STS `GetCallerIdentity`, the `envseal doctor` identity check.
#[cfg(feature = "kms")]
pub(crate) const STS_GET_CALLER_IDENTITY: CallLabels = CallLabels {
    service: "sts",
    operation: "GetCallerIdentity",
};

/// The events [`cache_events`] takes, in docs/metrics.md's order.
pub(crate) const CACHE_EVENTS: [&str; 13] = [
    "hit",
    "miss",
    "wait",
    "refresh_ahead",
    "refresh_failed",
    "stale_use",
    "expired",
    "evicted",
    "wiped",
    "load",
    "load_failed",
    "revoked",
    "bypass",
];

/// The `outcome` label of a call that ended in `kind` (`None`: success).
pub(crate) fn outcome(kind: Option<&AwsErrorKind>) -> &'static str {
    let Some(kind) = kind else { return "success" };
    match kind {
        AwsErrorKind::Throttled => "throttled",
        AwsErrorKind::Timeout(_) => "timeout",
        AwsErrorKind::Connection => "connection_error",
        AwsErrorKind::ServerError => "server_error",
        AwsErrorKind::AccessDenied => "access_denied",
        AwsErrorKind::NotFound => "not_found",
        AwsErrorKind::ConditionFailed => "condition_failed",
        AwsErrorKind::Disabled => "disabled",
        AwsErrorKind::InvalidState => "invalid_state",
        AwsErrorKind::InvalidKeyUsage => "invalid_key_usage",
        AwsErrorKind::InvalidCiphertext => "invalid_ciphertext",
        AwsErrorKind::IncorrectKey => "incorrect_key",
        AwsErrorKind::LimitExceeded => "limit_exceeded",
        AwsErrorKind::CredentialsExpired => "credentials_expired",
        AwsErrorKind::Credentials => "credentials",
        AwsErrorKind::InvalidResponse => "invalid_response",
        AwsErrorKind::Other => "other",
    }
}

/// The `timeout` label: which bound a timed-out attempt or call hit.
fn timeout_label(kind: TimeoutKind) -> &'static str {
    match kind {
        TimeoutKind::Connect => "connect",
        TimeoutKind::Read => "read",
        TimeoutKind::Attempt => "attempt",
        TimeoutKind::Deadline => "deadline",
    }
}

/// The `code` label of a throttle: one of the known throttling codes, `none`
/// without a code (a bare HTTP 429), `other` for anything else, so a
/// server cannot grow the label set.
fn throttle_code(code: Option<&str>) -> &'static str {
    match code {
        None => "none",
        Some(c) => THROTTLING_CODES
            .iter()
            .find(|t| **t == c)
            .copied()
            .unwrap_or("other"),
    }
}

/// One AWS call finished (all attempts): counts it by outcome and records
/// its latency.
pub(crate) fn aws_call(call: impl Into<CallLabels>, kind: Option<&AwsErrorKind>, elapsed: Duration) {
    let CallLabels { service, operation } = call.into();
    let outcome = outcome(kind);
    #[cfg(feature = "metrics")]
    {
        let labels = [
            ("service", service),
            ("operation", operation),
            ("outcome", outcome),
        ];
        metrics::counter!("envseal_aws_calls_total", &labels).increment(1);
        metrics::histogram!("envseal_aws_call_duration_seconds", &labels).record(elapsed.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (service, operation, outcome, elapsed);
}

/// An attempt after the first of its call.
pub(crate) fn aws_retry(call: impl Into<CallLabels>) {
    let CallLabels { service, operation } = call.into();
    #[cfg(feature = "metrics")]
    metrics::counter!("envseal_aws_retries_total", "service" => service, "operation" => operation)
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (service, operation);
}

/// One attempt failed: a throttle is counted with its HTTP status and
/// error code, a timeout with the bound it hit; other kinds show in the
/// call's outcome.
pub(crate) fn aws_attempt_failed(
    call: impl Into<CallLabels>,
    kind: &AwsErrorKind,
    status: Option<u16>,
    code: Option<&str>,
) {
    let CallLabels { service, operation } = call.into();
    match kind {
        AwsErrorKind::Throttled => {
            let code = throttle_code(code);
            #[cfg(feature = "metrics")]
            metrics::counter!(
                "envseal_aws_throttles_total",
                "service" => service,
                "operation" => operation,
                "status" => status.map_or_else(|| "none".to_owned(), |s| s.to_string()),
                "code" => code
            )
            .increment(1);
            #[cfg(not(feature = "metrics"))]
            let _ = (status, code);
        }
        AwsErrorKind::Timeout(t) => aws_timeout(CallLabels { service, operation }, *t),
        _ => {}
    }
}

/// An attempt timed out, or the deadline stopped a call (before it started,
/// or between attempts).
pub(crate) fn aws_timeout(call: impl Into<CallLabels>, kind: TimeoutKind) {
    let CallLabels { service, operation } = call.into();
    let timeout = timeout_label(kind);
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "envseal_aws_timeouts_total",
        "service" => service,
        "operation" => operation,
        "timeout" => timeout
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (service, operation, timeout);
}

/// A call retried once with fresh credentials after the service answered
/// `ExpiredTokenException`; `ok` is the retry's result.
pub(crate) fn aws_expired_token_retry(call: impl Into<CallLabels>, ok: bool) {
    let CallLabels { service, operation } = call.into();
    let outcome = if ok { "success" } else { "failure" };
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "envseal_aws_expired_token_retries_total",
        "service" => service,
        "operation" => operation,
        "outcome" => outcome
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (service, operation, outcome);
}

/// Credentials loaded from the chain (the first load and every refresh).
pub(crate) fn credentials_refreshed(elapsed: Duration) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("envseal_aws_credential_refreshes_total").increment(1);
        metrics::histogram!("envseal_aws_credential_load_duration_seconds").record(elapsed.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = elapsed;
}

/// A load from the credential chain that failed, timed out or was
/// cancelled.
pub(crate) fn credentials_refresh_failed() {
    #[cfg(feature = "metrics")]
    metrics::counter!("envseal_aws_credential_refresh_failures_total").increment(1);
}

/// `n` events of a cache: `envseal_cache_events_total{cache, event}`.
///
/// `cache` names the cache: `data_key` (the caching materials manager),
/// `branch_key` (the hierarchical keyring's), `credentials`. `event` is one
/// of [`CACHE_EVENTS`]:
///
/// - `hit`: a usable entry served the caller;
/// - `miss`: no usable entry; the caller starts a load;
/// - `wait`: no usable entry; the caller waits on another caller's load;
/// - `refresh_ahead`: a background load of an entry's successor started
///   (the entry is in its grace window);
/// - `refresh_failed`: such a background load failed (the entry serves on);
/// - `stale_use`: an expired entry served under stale-if-error;
/// - `expired`: an entry reached its TTL (or its use limits) and left;
/// - `evicted`: an entry left to make room (capacity);
/// - `wiped`: an entry's secret was zeroized (expiry, eviction, clear);
/// - `load`: a load (foreground or background) succeeded;
/// - `load_failed`: a load failed;
/// - `revoked`: an entry dropped at once because its reload failed with a
///   non-transient error (access denied, a disabled or missing key);
/// - `bypass`: a request that skipped the cache (the data-key cache: an
///   unknown or too large plaintext, a suite without key derivation).
pub(crate) fn cache_events(cache: &'static str, event: &'static str, n: u64) {
    debug_assert!(CACHE_EVENTS.contains(&event), "unknown cache event {event}");
    #[cfg(feature = "metrics")]
    metrics::counter!("envseal_cache_events_total", "cache" => cache, "event" => event).increment(n);
    #[cfg(not(feature = "metrics"))]
    let _ = (cache, n);
}

/// The keys a cache holds now (with an entry or a load under way):
/// `envseal_cache_entries{cache}`, a gauge set after each load lands and
/// each sweep.
pub(crate) fn cache_entries(cache: &'static str, n: u64) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("envseal_cache_entries", "cache" => cache).set(n as f64);
    #[cfg(not(feature = "metrics"))]
    let _ = (cache, n);
}

/// Describes every envseal metric (help text and unit) to the installed
/// recorder, so an exporter can print `# HELP` lines. Call it once, after
/// installing the recorder; metrics are emitted without it too.
#[cfg(feature = "metrics")]
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "envseal_aws_calls_total",
        Unit::Count,
        "AWS calls envseal made (KMS, DynamoDB, STS), by service, operation and outcome, counted when they end"
    );
    describe_histogram!(
        "envseal_aws_call_duration_seconds",
        Unit::Seconds,
        "Duration of AWS calls, all attempts and backoff included, by service, operation and outcome"
    );
    describe_counter!(
        "envseal_aws_retries_total",
        Unit::Count,
        "HTTP attempts after the first of their AWS call"
    );
    describe_counter!(
        "envseal_aws_throttles_total",
        Unit::Count,
        "Attempts the service throttled, by HTTP status (400 or 429) and error code"
    );
    describe_counter!(
        "envseal_aws_timeouts_total",
        Unit::Count,
        "Attempts that timed out (connect, read, attempt) and calls the deadline stopped"
    );
    describe_counter!(
        "envseal_aws_expired_token_retries_total",
        Unit::Count,
        "Calls retried once with fresh credentials after ExpiredTokenException, by the retry's outcome"
    );
    describe_counter!(
        "envseal_aws_credential_refreshes_total",
        Unit::Count,
        "Credentials loaded from the chain: the first load and every refresh"
    );
    describe_counter!(
        "envseal_aws_credential_refresh_failures_total",
        Unit::Count,
        "Loads from the credential chain that failed, timed out or were cancelled"
    );
    describe_histogram!(
        "envseal_aws_credential_load_duration_seconds",
        Unit::Seconds,
        "Duration of successful loads from the credential chain"
    );
    describe_counter!(
        "envseal_cache_events_total",
        Unit::Count,
        "Cache events (hit, miss, wait, refresh_ahead, refresh_failed, stale_use, expired, evicted, wiped, load, load_failed, revoked, bypass), by cache"
    );
    describe_gauge!(
        "envseal_cache_entries",
        Unit::Count,
        "Keys a cache holds (an entry or a load under way), by cache"
    );
}

/// A thread-local debugging recorder for the tests of the modules that emit.
#[cfg(all(test, feature = "metrics"))]
pub(crate) mod testing {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use metrics_util::MetricKind;

    /// One metric: kind, name, labels (sorted), value.
    pub(crate) type Recorded = (MetricKind, String, Vec<(String, String)>, DebugValue);

    /// Runs `f` under a thread-local debugging recorder; returns what it
    /// recorded as (kind, name, sorted labels, value).
    pub(crate) fn recorded(f: impl FnOnce()) -> Vec<Recorded> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, f);
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let (kind, key) = key.into_parts();
                let mut labels: Vec<_> = key
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                labels.sort();
                (kind, key.name().to_owned(), labels, value)
            })
            .collect()
    }

    pub(crate) fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<_> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        v.sort();
        v
    }

    pub(crate) fn counter(got: &[Recorded], name: &str, pairs: &[(&str, &str)]) -> Option<u64> {
        let want = labels(pairs);
        got.iter().find_map(|(kind, n, l, v)| match (kind, v) {
            (MetricKind::Counter, DebugValue::Counter(c)) if n == name && *l == want => Some(*c),
            _ => None,
        })
    }

    /// The number of samples of histogram `name` with labels `pairs`.
    pub(crate) fn samples(got: &[Recorded], name: &str, pairs: &[(&str, &str)]) -> Option<usize> {
        let want = labels(pairs);
        got.iter().find_map(|(_, n, l, v)| match v {
            DebugValue::Histogram(h) if n == name && *l == want => Some(h.len()),
            _ => None,
        })
    }
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::testing::{counter, labels, recorded};
    use super::*;
    use metrics_util::debugging::DebugValue;
    use metrics_util::MetricKind;

    #[test]
    fn cache_events_and_entries_by_cache() {
        let got = recorded(|| {
            for event in CACHE_EVENTS {
                cache_events("data_key", event, 1);
            }
            cache_events("branch_key", "hit", 1);
            cache_events("branch_key", "hit", 1);
            cache_entries("branch_key", 7);
            cache_entries("branch_key", 3);
        });
        for event in CACHE_EVENTS {
            let n = counter(
                &got,
                "envseal_cache_events_total",
                &[("cache", "data_key"), ("event", event)],
            );
            assert_eq!(n, Some(1), "{event}");
        }
        let hits = counter(
            &got,
            "envseal_cache_events_total",
            &[("cache", "branch_key"), ("event", "hit")],
        );
        assert_eq!(hits, Some(2));
        let entries = got.iter().find_map(|(kind, n, l, v)| match v {
            DebugValue::Gauge(g) if *kind == MetricKind::Gauge && n == "envseal_cache_entries" => {
                assert_eq!(*l, labels(&[("cache", "branch_key")]));
                Some(g.into_inner())
            }
            _ => None,
        });
        assert_eq!(entries, Some(3.0));
    }

    #[test]
    fn outcomes_are_snake_case_and_distinct() {
        let kinds = [
            AwsErrorKind::Throttled,
            AwsErrorKind::Timeout(TimeoutKind::Read),
            AwsErrorKind::Connection,
            AwsErrorKind::ServerError,
            AwsErrorKind::AccessDenied,
            AwsErrorKind::NotFound,
            AwsErrorKind::ConditionFailed,
            AwsErrorKind::Disabled,
            AwsErrorKind::InvalidState,
            AwsErrorKind::InvalidKeyUsage,
            AwsErrorKind::InvalidCiphertext,
            AwsErrorKind::IncorrectKey,
            AwsErrorKind::LimitExceeded,
            AwsErrorKind::CredentialsExpired,
            AwsErrorKind::Credentials,
            AwsErrorKind::InvalidResponse,
            AwsErrorKind::Other,
        ];
        let mut seen: Vec<&str> = kinds.iter().map(|k| outcome(Some(k))).collect();
        seen.push(outcome(None));
        assert!(seen
            .iter()
            .all(|o| o.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
        let n = seen.len();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), n);
    }
}
