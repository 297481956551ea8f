//! Counters for KMS calls: cheap atomics a caller can snapshot at any time,
//! and a latency histogram (HdrHistogram) for the percentiles.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::error::aws::{AwsErrorKind, AwsOperation, TimeoutKind};
use crate::observe;

/// Significant decimal digits the latency histogram keeps: a percentile is
/// within 1 % of the latency it stands for (values below 256 µs exactly).
const LATENCY_SIGFIG: u8 = 2;
/// Latencies above a day are recorded as a day (the maximum stays exact).
const LATENCY_CEILING_US: u64 = 24 * 3600 * 1_000_000;

/// Live counters, shared by every keyring that uses one [`KmsClient`](super::KmsClient)
/// (and by clients built with the same stats handle). A branch key store
/// counts its DynamoDB calls and the hierarchical keyrings their branch-key
/// cache hits here too, so one snapshot shows every AWS call.
///
/// With the `metrics` feature, each recorded AWS event also goes to the
/// `metrics` facade (docs/metrics.md), so the exported metrics and the
/// snapshot count the same events.
#[derive(Debug)]
pub struct AwsCounters {
    calls: [AtomicU64; AwsOperation::ALL.len()],
    branch_key_cache_hits: AtomicU64,
    branch_key_cache_misses: AtomicU64,
    attempts: AtomicU64,
    retries: AtomicU64,
    successes: AtomicU64,
    failures: AtomicU64,
    throttles: AtomicU64,
    timeouts: AtomicU64,
    latency_sum_us: AtomicU64,
    latency_max_us: AtomicU64,
    /// Call latencies in microseconds: one record per finished call, under
    /// a lock (a call waits on the network; the lock is held for a record).
    /// It grows with the slowest call (about 18 KiB for 10 s).
    latency: Mutex<Histogram<u64>>,
    credential_refreshes: AtomicU64,
    credential_refresh_failures: AtomicU64,
    credential_load_sum_us: AtomicU64,
    credential_load_max_us: AtomicU64,
    expired_token_retries: AtomicU64,
    expired_token_retry_successes: AtomicU64,
    expired_token_retry_sum_us: AtomicU64,
}

impl Default for AwsCounters {
    fn default() -> Self {
        AwsCounters {
            calls: Default::default(),
            branch_key_cache_hits: AtomicU64::default(),
            branch_key_cache_misses: AtomicU64::default(),
            attempts: AtomicU64::default(),
            retries: AtomicU64::default(),
            successes: AtomicU64::default(),
            failures: AtomicU64::default(),
            throttles: AtomicU64::default(),
            timeouts: AtomicU64::default(),
            latency_sum_us: AtomicU64::default(),
            latency_max_us: AtomicU64::default(),
            // Auto-resizing, from 1 µs up to the slowest call recorded.
            latency: Mutex::new(Histogram::new(LATENCY_SIGFIG).expect("2 significant figures are valid")),
            credential_refreshes: AtomicU64::default(),
            credential_refresh_failures: AtomicU64::default(),
            credential_load_sum_us: AtomicU64::default(),
            credential_load_max_us: AtomicU64::default(),
            expired_token_retries: AtomicU64::default(),
            expired_token_retry_successes: AtomicU64::default(),
            expired_token_retry_sum_us: AtomicU64::default(),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl AwsCounters {
    /// New, zeroed counters.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn call_started(&self, op: AwsOperation) {
        self.calls[op.index()].fetch_add(1, Relaxed);
    }

    /// A branch key found in the hierarchical keyring's cache.
    #[cfg_attr(not(feature = "hierarchy"), allow(dead_code))] // counted by the hierarchical keyring
    pub(crate) fn branch_key_cache_hit(&self) {
        self.branch_key_cache_hits.fetch_add(1, Relaxed);
    }

    /// A branch key not in the cache (or expired there): the caller that
    /// loads it from the key store counts one miss; callers waiting on that
    /// load count hits.
    #[cfg_attr(not(feature = "hierarchy"), allow(dead_code))] // counted by the hierarchical keyring
    pub(crate) fn branch_key_cache_miss(&self) {
        self.branch_key_cache_misses.fetch_add(1, Relaxed);
    }

    /// Attempt number `attempt` (from 1) of an `op` call was sent.
    pub(crate) fn attempt_started(&self, op: AwsOperation, attempt: u32) {
        self.attempts.fetch_add(1, Relaxed);
        if attempt > 1 {
            self.retries.fetch_add(1, Relaxed);
            observe::aws_retry(op);
        }
    }

    /// One attempt's outcome: counts throttles and timeouts per attempt, so
    /// retried throttles are visible even when the call then succeeds. The
    /// HTTP status and error code label the exported throttle counter.
    pub(crate) fn attempt_failed(
        &self,
        op: AwsOperation,
        kind: &AwsErrorKind,
        status: Option<u16>,
        code: Option<&str>,
    ) {
        match kind {
            AwsErrorKind::Throttled => self.throttles.fetch_add(1, Relaxed),
            AwsErrorKind::Timeout(_) => self.timeouts.fetch_add(1, Relaxed),
            _ => 0,
        };
        observe::aws_attempt_failed(op, kind, status, code);
    }

    /// A whole call's end (all attempts): success (`None`) or the kind of
    /// failure, and latency.
    pub(crate) fn call_finished(&self, op: AwsOperation, failure: Option<&AwsErrorKind>, latency: Duration) {
        observe::aws_call(op, failure, latency);
        if failure.is_none() {
            self.successes.fetch_add(1, Relaxed);
        } else {
            self.failures.fetch_add(1, Relaxed);
        }
        let us = micros(latency);
        self.latency_sum_us.fetch_add(us, Relaxed);
        self.latency_max_us.fetch_max(us, Relaxed);
        // The histogram grows to the value; should it fail to, the value
        // is clamped to what it covers.
        let us = us.min(LATENCY_CEILING_US);
        let mut h = self.lock_latency();
        if h.record(us).is_err() {
            h.saturating_record(us);
        }
    }

    fn lock_latency(&self) -> std::sync::MutexGuard<'_, Histogram<u64>> {
        self.latency.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Credentials loaded from the chain (first load and every refresh).
    pub(crate) fn credentials_refreshed(&self, latency: Duration) {
        observe::credentials_refreshed(latency);
        self.credential_refreshes.fetch_add(1, Relaxed);
        let us = micros(latency);
        self.credential_load_sum_us.fetch_add(us, Relaxed);
        self.credential_load_max_us.fetch_max(us, Relaxed);
    }

    /// A load from the chain that failed or timed out.
    pub(crate) fn credentials_refresh_failed(&self) {
        observe::credentials_refresh_failed();
        self.credential_refresh_failures.fetch_add(1, Relaxed);
    }

    /// A call retried with fresh credentials after `ExpiredTokenException`;
    /// `latency` is the retry's (reload included).
    pub(crate) fn expired_token_retry(&self, op: AwsOperation, ok: bool, latency: Duration) {
        observe::aws_expired_token_retry(op, ok);
        self.expired_token_retries.fetch_add(1, Relaxed);
        if ok {
            self.expired_token_retry_successes.fetch_add(1, Relaxed);
        }
        self.expired_token_retry_sum_us
            .fetch_add(micros(latency), Relaxed);
    }

    /// A deadline that passed before a call could start still counts as a
    /// timed-out call.
    pub(crate) fn deadline_before_call(&self, op: AwsOperation) {
        observe::aws_timeout(op, TimeoutKind::Deadline);
        self.timeouts.fetch_add(1, Relaxed);
    }

    /// A consistent-enough copy of the counters (each read atomically).
    pub fn snapshot(&self) -> AwsStats {
        let [finished, p50, p90, p99] = {
            let h = self.lock_latency();
            let at = |q: f64| h.value_at_quantile(q);
            [h.len(), at(0.5), at(0.9), at(0.99)]
        };
        let max = self.latency_max_us.load(Relaxed);
        // HdrHistogram answers the highest value equivalent to the
        // percentile's (within 1 %), which can exceed the slowest call:
        // report at most that.
        let percentile = |us: u64| (finished > 0).then(|| Duration::from_micros(us.min(max)));
        let credential_refreshes = self.credential_refreshes.load(Relaxed);
        let expired_token_retries = self.expired_token_retries.load(Relaxed);
        let calls = |op: AwsOperation| self.calls[op.index()].load(Relaxed);
        AwsStats {
            generate_data_key_calls: calls(AwsOperation::GenerateDataKey),
            encrypt_calls: calls(AwsOperation::Encrypt),
            decrypt_calls: calls(AwsOperation::Decrypt),
            describe_key_calls: calls(AwsOperation::DescribeKey),
            generate_data_key_without_plaintext_calls: calls(AwsOperation::GenerateDataKeyWithoutPlaintext),
            re_encrypt_calls: calls(AwsOperation::ReEncrypt),
            get_public_key_calls: calls(AwsOperation::GetPublicKey),
            derive_shared_secret_calls: calls(AwsOperation::DeriveSharedSecret),
            get_item_calls: calls(AwsOperation::GetItem),
            transact_write_items_calls: calls(AwsOperation::TransactWriteItems),
            describe_table_calls: calls(AwsOperation::DescribeTable),
            create_table_calls: calls(AwsOperation::CreateTable),
            query_calls: calls(AwsOperation::Query),
            branch_key_cache_hits: self.branch_key_cache_hits.load(Relaxed),
            branch_key_cache_misses: self.branch_key_cache_misses.load(Relaxed),
            attempts: self.attempts.load(Relaxed),
            retries: self.retries.load(Relaxed),
            successes: self.successes.load(Relaxed),
            failures: self.failures.load(Relaxed),
            throttles: self.throttles.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            latency_mean: (finished > 0)
                .then(|| Duration::from_micros(self.latency_sum_us.load(Relaxed) / finished)),
            latency_max: (finished > 0).then(|| Duration::from_micros(self.latency_max_us.load(Relaxed))),
            latency_p50: percentile(p50),
            latency_p90: percentile(p90),
            latency_p99: percentile(p99),
            credential_refreshes,
            credential_refresh_failures: self.credential_refresh_failures.load(Relaxed),
            credential_load_mean: (credential_refreshes > 0).then(|| {
                Duration::from_micros(self.credential_load_sum_us.load(Relaxed) / credential_refreshes)
            }),
            credential_load_max: (credential_refreshes > 0)
                .then(|| Duration::from_micros(self.credential_load_max_us.load(Relaxed))),
            expired_token_retries,
            expired_token_retry_successes: self.expired_token_retry_successes.load(Relaxed),
            expired_token_retry_mean: (expired_token_retries > 0).then(|| {
                Duration::from_micros(self.expired_token_retry_sum_us.load(Relaxed) / expired_token_retries)
            }),
        }
    }
}

/// A copy of [`AwsCounters`] at one moment.
///
/// Latency is per call (all attempts and backoff); percentiles come from an
/// HdrHistogram with two significant digits: exact below 256 µs, else at
/// most 1 % above the latency they stand for (and never above the longest
/// call).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AwsStats {
    /// `GenerateDataKey` calls started.
    pub generate_data_key_calls: u64,
    /// `Encrypt` calls started.
    pub encrypt_calls: u64,
    /// `Decrypt` calls started.
    pub decrypt_calls: u64,
    /// `DescribeKey` calls started (`envseal doctor`).
    pub describe_key_calls: u64,
    /// `GenerateDataKeyWithoutPlaintext` calls started (new branch keys).
    pub generate_data_key_without_plaintext_calls: u64,
    /// `ReEncrypt` calls started (new and versioned branch keys).
    pub re_encrypt_calls: u64,
    /// `GetPublicKey` calls started (KMS ECDH keyrings).
    pub get_public_key_calls: u64,
    /// `DeriveSharedSecret` calls started (KMS ECDH keyrings).
    pub derive_shared_secret_calls: u64,
    /// DynamoDB `GetItem` calls started (branch keys read).
    pub get_item_calls: u64,
    /// DynamoDB `TransactWriteItems` calls started (branch keys written).
    pub transact_write_items_calls: u64,
    /// DynamoDB `DescribeTable` calls started.
    pub describe_table_calls: u64,
    /// DynamoDB `CreateTable` calls started.
    pub create_table_calls: u64,
    /// DynamoDB `Query` calls started (pages of branch key versions listed).
    pub query_calls: u64,
    /// Branch keys the hierarchical keyrings found in their cache (waiting
    /// on another caller's load counts as a hit).
    pub branch_key_cache_hits: u64,
    /// Branch keys the hierarchical keyrings had to load from the key store.
    pub branch_key_cache_misses: u64,
    /// HTTP attempts, first tries and retries.
    pub attempts: u64,
    /// Attempts after the first of their call.
    pub retries: u64,
    /// Calls that returned a result.
    pub successes: u64,
    /// Calls that ended in an error.
    pub failures: u64,
    /// Attempts KMS throttled.
    pub throttles: u64,
    /// Attempts that timed out, plus calls the deadline stopped.
    pub timeouts: u64,
    /// Mean call latency.
    pub latency_mean: Option<Duration>,
    /// Longest call.
    pub latency_max: Option<Duration>,
    /// Median call latency (within 1 %).
    pub latency_p50: Option<Duration>,
    /// 90th percentile call latency (within 1 %).
    pub latency_p90: Option<Duration>,
    /// 99th percentile call latency (within 1 %).
    pub latency_p99: Option<Duration>,
    /// Credentials loaded from the chain: the first load and every refresh.
    pub credential_refreshes: u64,
    /// Loads from the chain that failed or timed out.
    pub credential_refresh_failures: u64,
    /// Mean time of a successful load.
    pub credential_load_mean: Option<Duration>,
    /// Longest successful load.
    pub credential_load_max: Option<Duration>,
    /// Calls retried with fresh credentials after KMS answered
    /// `ExpiredTokenException` (at most one per call).
    pub expired_token_retries: u64,
    /// Of those, the retries that succeeded.
    pub expired_token_retry_successes: u64,
    /// Mean time of such a retry, reload included.
    pub expired_token_retry_mean: Option<Duration>,
}

impl AwsStats {
    /// All KMS calls started, every operation.
    pub fn calls(&self) -> u64 {
        self.generate_data_key_calls
            + self.encrypt_calls
            + self.decrypt_calls
            + self.describe_key_calls
            + self.generate_data_key_without_plaintext_calls
            + self.re_encrypt_calls
            + self.get_public_key_calls
            + self.derive_shared_secret_calls
    }

    /// All DynamoDB calls started (the branch key store's).
    pub fn dynamodb_calls(&self) -> u64 {
        self.get_item_calls
            + self.transact_write_items_calls
            + self.describe_table_calls
            + self.create_table_calls
            + self.query_calls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentiles() {
        let s = AwsCounters::new();
        assert_eq!(s.snapshot(), AwsStats::default());
        for i in 0..100u64 {
            s.call_started(AwsOperation::Decrypt);
            s.attempt_started(AwsOperation::Decrypt, 1);
            // 90 fast calls (~100 µs), 10 slow ones (~10 ms)
            let lat = if i < 90 {
                Duration::from_micros(100)
            } else {
                Duration::from_millis(10)
            };
            let failure = (i % 10 == 0).then_some(&AwsErrorKind::Other);
            s.call_finished(AwsOperation::Decrypt, failure, lat);
        }
        let op = AwsOperation::Decrypt;
        s.attempt_started(op, 2);
        s.attempt_failed(
            op,
            &AwsErrorKind::Throttled,
            Some(400),
            Some("ThrottlingException"),
        );
        s.attempt_failed(op, &AwsErrorKind::Timeout(TimeoutKind::Read), None, None);
        let snap = s.snapshot();
        assert_eq!(snap.decrypt_calls, 100);
        assert_eq!(snap.calls(), 100);
        assert_eq!(snap.attempts, 101);
        assert_eq!(snap.retries, 1);
        assert_eq!((snap.successes, snap.failures), (90, 10));
        assert_eq!((snap.throttles, snap.timeouts), (1, 1));
        // Below 256 µs the histogram is exact: no power-of-two rounding.
        assert_eq!(snap.latency_p50, Some(Duration::from_micros(100)));
        assert_eq!(snap.latency_p90, Some(Duration::from_micros(100)));
        // 10 ms falls in a 64 µs wide bin whose top is 10,047 µs: clamped
        // to the longest call.
        assert_eq!(snap.latency_p99, Some(Duration::from_millis(10)));
        assert_eq!(snap.latency_max, Some(Duration::from_millis(10)));
    }

    #[test]
    fn percentiles_are_within_one_percent() {
        let s = AwsCounters::new();
        // 1 ms, 2 ms, ..., 1,000 ms: the p-th percentile is p × 10 ms.
        for ms in 1..=1000u64 {
            s.call_finished(AwsOperation::Decrypt, None, Duration::from_millis(ms));
        }
        let snap = s.snapshot();
        for (got, want_ms) in [
            (snap.latency_p50, 500u64),
            (snap.latency_p90, 900),
            (snap.latency_p99, 990),
        ] {
            let got = got.unwrap().as_secs_f64() * 1e3;
            let want = want_ms as f64;
            assert!(got >= want && got <= want * 1.01, "got {got} ms for {want} ms");
        }
        assert_eq!(snap.latency_max, Some(Duration::from_secs(1)));
        assert_eq!(snap.latency_mean, Some(Duration::from_micros(500_500)));
    }

    #[test]
    fn extremes_are_recorded_without_panicking() {
        let s = AwsCounters::new();
        let failed = Some(&AwsErrorKind::Other);
        s.call_finished(AwsOperation::Decrypt, failed, Duration::ZERO);
        s.call_finished(AwsOperation::Decrypt, failed, Duration::MAX);
        let snap = s.snapshot();
        assert_eq!(snap.latency_p50, Some(Duration::ZERO));
        // Recorded as a day; the longest call stays exact.
        let day = Duration::from_secs(24 * 3600);
        assert!(snap.latency_p99.unwrap() >= day && snap.latency_p99.unwrap() <= day.mul_f64(1.01));
        assert_eq!(snap.latency_max, Some(Duration::from_micros(u64::MAX)));
    }

    /// With `metrics`, each recorded event also reaches the facade, labelled.
    #[cfg(feature = "metrics")]
    #[test]
    fn aws_counters_emit_what_they_count() {
        use crate::observe::testing::{counter, recorded, samples};
        let op = AwsOperation::GetItem;
        let got = recorded(|| {
            let c = AwsCounters::new();
            c.attempt_started(op, 1);
            c.attempt_failed(
                op,
                &AwsErrorKind::Throttled,
                Some(400),
                Some("ProvisionedThroughputExceededException"),
            );
            c.attempt_started(op, 2);
            c.attempt_failed(op, &AwsErrorKind::Throttled, Some(429), None);
            c.attempt_started(op, 3);
            c.attempt_failed(op, &AwsErrorKind::Throttled, Some(429), Some("SomethingNew"));
            c.attempt_failed(op, &AwsErrorKind::Timeout(TimeoutKind::Read), None, None);
            c.call_finished(op, Some(&AwsErrorKind::Throttled), Duration::from_millis(250));
            c.deadline_before_call(AwsOperation::Decrypt);
            c.call_finished(
                AwsOperation::Decrypt,
                Some(&AwsErrorKind::Timeout(TimeoutKind::Deadline)),
                Duration::ZERO,
            );
            c.expired_token_retry(AwsOperation::Decrypt, true, Duration::from_millis(5));
            c.credentials_refreshed(Duration::from_millis(20));
            c.credentials_refresh_failed();
        });
        let ddb = [("service", "dynamodb"), ("operation", "GetItem")];
        let with = |extra: &[(&'static str, &'static str)]| [&ddb[..], extra].concat();
        let throttles = "envseal_aws_throttles_total";
        let code = "ProvisionedThroughputExceededException";
        assert_eq!(
            counter(&got, throttles, &with(&[("status", "400"), ("code", code)])),
            Some(1)
        );
        assert_eq!(
            counter(&got, throttles, &with(&[("status", "429"), ("code", "none")])),
            Some(1)
        );
        assert_eq!(
            counter(&got, throttles, &with(&[("status", "429"), ("code", "other")])),
            Some(1)
        );
        assert_eq!(counter(&got, "envseal_aws_retries_total", &ddb), Some(2));
        let read = with(&[("timeout", "read")]);
        assert_eq!(counter(&got, "envseal_aws_timeouts_total", &read), Some(1));
        let calls = "envseal_aws_calls_total";
        assert_eq!(counter(&got, calls, &with(&[("outcome", "throttled")])), Some(1));
        let kms_decrypt = [("service", "kms"), ("operation", "Decrypt")];
        let deadline = [&kms_decrypt[..], &[("timeout", "deadline")]].concat();
        assert_eq!(counter(&got, "envseal_aws_timeouts_total", &deadline), Some(1));
        let timed_out = [&kms_decrypt[..], &[("outcome", "timeout")]].concat();
        assert_eq!(counter(&got, calls, &timed_out), Some(1));
        let retried = [&kms_decrypt[..], &[("outcome", "success")]].concat();
        assert_eq!(
            counter(&got, "envseal_aws_expired_token_retries_total", &retried),
            Some(1)
        );
        assert_eq!(
            counter(&got, "envseal_aws_credential_refreshes_total", &[]),
            Some(1)
        );
        assert_eq!(
            counter(&got, "envseal_aws_credential_refresh_failures_total", &[]),
            Some(1)
        );
        let latency = with(&[("outcome", "throttled")]);
        assert_eq!(
            samples(&got, "envseal_aws_call_duration_seconds", &latency),
            Some(1)
        );
        assert_eq!(
            samples(&got, "envseal_aws_credential_load_duration_seconds", &[]),
            Some(1)
        );
    }
}
