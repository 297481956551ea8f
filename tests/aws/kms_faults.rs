//! Faults from a loopback HTTP server in front of moto (tests/common/fault.rs):
//! every KMS call ends within its deadline with a typed error, retries only
//! what is transient, never makes more than `max_attempts` requests, and
//! exactly one for errors that must not retry.
#![cfg(feature = "kms")]

use crate::common;

use std::time::{Duration, Instant};

use common::fault::{full_backlog, Action, FaultServer};
use common::moto::{self, create_key, moto};
use envseal::kms::{AwsBounds, AwsBoundsBuilder, AwsError, AwsErrorKind, RetryMode, TimeoutKind};
use envseal::{Config, EncryptionContext, Error, KmsKeyring};

const MAX_ATTEMPTS: u32 = 3;
/// Slack for scheduling on a loaded 2-core machine.
const MARGIN: Duration = Duration::from_millis(300);

fn bounds() -> AwsBoundsBuilder {
    AwsBounds::builder()
        .connect_timeout(Duration::from_millis(200))
        .read_timeout(Duration::from_millis(300))
        .attempt_timeout(Duration::from_millis(500))
        .deadline(Duration::from_millis(1500))
        .max_attempts(MAX_ATTEMPTS)
        .initial_backoff(Duration::from_millis(10))
        .max_backoff(Duration::from_millis(50))
        // Exact attempt counts need standard retries: adaptive mode's rate
        // limiter may hold a retry after throttling (tested on its own below).
        .retry_mode(RetryMode::Standard)
}

fn context() -> EncryptionContext {
    [("fault", "test")].into_iter().collect()
}

/// Encrypts once through `endpoint` with a fresh client; returns the
/// outcome, the time it took and the client's counters.
async fn encrypt_via(
    endpoint: &str,
    key: &str,
    bounds: AwsBounds,
) -> (Result<Vec<u8>, Error>, Duration, envseal::kms::AwsStats) {
    let client = moto::client("us-east-1", endpoint, bounds).await;
    let keyring = KmsKeyring::builder(client.clone(), [key]).build().unwrap();
    let start = Instant::now();
    let result = crate::common::async_client(&Config::default(), &keyring)
        .encrypt(&context(), b"payload")
        .await;
    (result, start.elapsed(), client.stats())
}

fn kms_error(result: Result<Vec<u8>, Error>) -> AwsError {
    match result {
        Err(Error::Aws(e)) => *e,
        other => panic!("expected a KMS error, got {other:?}"),
    }
}

fn within_deadline(elapsed: Duration, bounds: &AwsBounds) {
    assert!(
        elapsed <= bounds.deadline() + MARGIN,
        "took {elapsed:?}, deadline {:?}",
        bounds.deadline()
    );
}

const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000";

#[tokio::test]
async fn server_that_never_answers_is_a_read_timeout() {
    let server = FaultServer::start(None, vec![Action::Hang]);
    let (result, elapsed, stats) = encrypt_via(&server.url, KEY, bounds().build().unwrap()).await;
    let err = kms_error(result);
    assert_eq!(err.kind, AwsErrorKind::Timeout(TimeoutKind::Read), "{err}");
    assert_eq!(err.attempts, MAX_ATTEMPTS, "{err}");
    assert_eq!(server.requests(), MAX_ATTEMPTS as usize);
    assert_eq!(stats.timeouts, u64::from(MAX_ATTEMPTS));
    // Three read timeouts of 300 ms plus short backoffs.
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    within_deadline(elapsed, &bounds().build().unwrap());
}

#[tokio::test]
async fn dripping_body_is_stopped_by_attempt_timeout_and_deadline() {
    let server = FaultServer::start(None, vec![Action::Drip(Duration::from_millis(100))]);
    let b = bounds().deadline(Duration::from_millis(1200)).build().unwrap();
    let (result, elapsed, _) = encrypt_via(&server.url, KEY, b.clone()).await;
    let err = kms_error(result);
    // Headers arrive at once, so the read timeout never fires: attempts of
    // 500 ms each until the 1.2 s deadline cuts the third one short.
    assert!(
        matches!(
            err.kind,
            AwsErrorKind::Timeout(TimeoutKind::Attempt) | AwsErrorKind::Timeout(TimeoutKind::Deadline)
        ),
        "{err}"
    );
    assert!(err.attempts >= 2 && err.attempts <= MAX_ATTEMPTS, "{err}");
    assert!(server.requests() <= MAX_ATTEMPTS as usize);
    assert!(elapsed >= Duration::from_millis(1000), "{elapsed:?}");
    within_deadline(elapsed, &b);
}

#[tokio::test]
async fn full_accept_queue_is_a_connect_timeout() {
    let backlog = full_backlog();
    let (result, elapsed, _) = encrypt_via(&backlog.url, KEY, bounds().build().unwrap()).await;
    let err = kms_error(result);
    assert_eq!(err.kind, AwsErrorKind::Timeout(TimeoutKind::Connect), "{err}");
    assert_eq!(err.attempts, MAX_ATTEMPTS, "{err}");
    assert_eq!(err.status, None);
    within_deadline(elapsed, &bounds().build().unwrap());
}

#[tokio::test]
async fn always_throttled_400_and_429_keep_their_status() {
    for status in [400u16, 429] {
        let server = FaultServer::start(None, vec![Action::Error(status, "ThrottlingException")]);
        let (result, elapsed, stats) = encrypt_via(&server.url, KEY, bounds().build().unwrap()).await;
        let err = kms_error(result);
        assert_eq!(err.kind, AwsErrorKind::Throttled, "{err}");
        assert!(err.is_throttling() && err.is_retryable());
        assert_eq!(err.status, Some(status), "{err}");
        assert_eq!(err.code.as_deref(), Some("ThrottlingException"));
        assert_eq!(err.attempts, MAX_ATTEMPTS);
        assert_eq!(server.requests(), MAX_ATTEMPTS as usize);
        assert_eq!(stats.throttles, u64::from(MAX_ATTEMPTS));
        assert!(err.request_id.is_some(), "{err}");
        let line = err.to_string();
        assert!(
            line.contains(&format!(
                "throttled (HTTP {status}, ThrottlingException) after 3 attempts"
            )),
            "{line}"
        );
        within_deadline(elapsed, &bounds().build().unwrap());
    }
}

#[tokio::test]
async fn adaptive_mode_stays_within_the_deadline_and_reports_throttling() {
    let server = FaultServer::start(None, vec![Action::Error(429, "ThrottlingException")]);
    let b = bounds().retry_mode(RetryMode::Adaptive).build().unwrap();
    let (result, elapsed, stats) = encrypt_via(&server.url, KEY, b.clone()).await;
    let err = kms_error(result);
    // Whether the limiter let all three attempts out before the deadline or
    // not, the error is the throttling, with its status and the real count.
    assert_eq!(err.kind, AwsErrorKind::Throttled, "{err}");
    assert_eq!(err.status, Some(429), "{err}");
    // An attempt the deadline cuts may be counted as sent before its bytes
    // reach the server.
    let requests = server.requests();
    let attempts = err.attempts as usize;
    assert!(
        attempts == requests || attempts == requests + 1,
        "{requests} requests: {err}"
    );
    assert!((1..=MAX_ATTEMPTS).contains(&err.attempts), "{err}");
    let throttles = stats.throttles;
    assert!(
        throttles == u64::from(err.attempts) || throttles + 1 == u64::from(err.attempts),
        "{throttles} throttles: {err}"
    );
    within_deadline(elapsed, &b);
}

#[tokio::test]
async fn plain_429_without_a_code_is_throttling_too() {
    let server = FaultServer::start(None, vec![Action::Error(429, "TooManyRequests")]);
    let (result, _, _) = encrypt_via(&server.url, KEY, bounds().build().unwrap()).await;
    let err = kms_error(result);
    assert_eq!(err.kind, AwsErrorKind::Throttled, "{err}");
    assert_eq!(server.requests(), MAX_ATTEMPTS as usize);
}

/// Transient faults followed by moto's real answer: the call succeeds.
async fn recovers_after(first: Vec<Action>, adaptive: bool) -> (usize, envseal::kms::AwsStats) {
    let key = create_key("us-east-1").await;
    let faults = first.len();
    let mut plan = first;
    plan.push(Action::Proxy);
    let server = FaultServer::start(Some(moto().url.clone()), plan);
    let b = if adaptive {
        // The adaptive limiter may wait ~2 s per retry after a throttle.
        bounds()
            .retry_mode(RetryMode::Adaptive)
            .deadline(Duration::from_secs(8))
            .build()
            .unwrap()
    } else {
        bounds().build().unwrap()
    };
    let (result, elapsed, stats) = encrypt_via(&server.url, &key, b.clone()).await;
    let message = result.unwrap_or_else(|e| panic!("should recover: {e}"));
    assert!(!message.is_empty());
    assert_eq!(server.requests(), faults + 1);
    within_deadline(elapsed, &b);
    (server.requests(), stats)
}

#[tokio::test]
async fn throttled_twice_then_succeeds() {
    for adaptive in [false, true] {
        let throttle = Action::Error(400, "ThrottlingException");
        let (requests, stats) = recovers_after(vec![throttle.clone(), throttle], adaptive).await;
        assert_eq!(requests, 3);
        assert_eq!((stats.attempts, stats.retries, stats.throttles), (3, 2, 2));
        assert_eq!((stats.successes, stats.failures), (1, 0));
    }
}

#[tokio::test]
async fn server_error_then_succeeds() {
    let (_, stats) = recovers_after(vec![Action::Error(500, "KMSInternalException")], false).await;
    assert_eq!((stats.attempts, stats.retries), (2, 1));
}

#[tokio::test]
async fn connection_reset_then_succeeds() {
    let (_, stats) = recovers_after(vec![Action::Reset], false).await;
    assert_eq!((stats.attempts, stats.retries), (2, 1));
}

#[tokio::test]
async fn errors_that_must_not_retry_make_one_request() {
    let cases = [
        (400, "NotFoundException", AwsErrorKind::NotFound),
        (400, "AccessDeniedException", AwsErrorKind::AccessDenied),
        (400, "DisabledException", AwsErrorKind::Disabled),
        (400, "InvalidKeyUsageException", AwsErrorKind::InvalidKeyUsage),
        (400, "KMSInvalidStateException", AwsErrorKind::InvalidState),
        // The SDK would retry this one as throttling; it is a quota.
        (400, "LimitExceededException", AwsErrorKind::LimitExceeded),
    ];
    for (status, code, kind) in cases {
        let server = FaultServer::start(None, vec![Action::Error(status, code)]);
        let (result, elapsed, stats) = encrypt_via(&server.url, KEY, bounds().build().unwrap()).await;
        let err = kms_error(result);
        assert_eq!(err.kind, kind, "{code}: {err}");
        assert!(!err.is_retryable(), "{code}");
        assert_eq!(err.attempts, 1, "{code}: {err}");
        assert_eq!(server.requests(), 1, "{code}");
        assert_eq!(err.status, Some(status));
        assert_eq!((stats.attempts, stats.retries), (1, 0), "{code}");
        assert!(elapsed < Duration::from_millis(500), "{code}: {elapsed:?}");
    }
}

/// `ExpiredTokenException` is not retried as a transient error: the cached
/// credentials are dropped and the call is made once more with fresh ones.
/// If KMS still rejects them, the error says so and names the provider.
#[tokio::test]
async fn expired_token_is_retried_once_with_fresh_credentials() {
    let server = FaultServer::start(None, vec![Action::Error(400, "ExpiredTokenException")]);
    let (result, elapsed, stats) = encrypt_via(&server.url, KEY, bounds().build().unwrap()).await;
    let err = kms_error(result);
    assert_eq!(err.kind, AwsErrorKind::CredentialsExpired, "{err}");
    assert!(!err.is_retryable());
    assert_eq!(server.requests(), 2, "{err}");
    assert_eq!(err.attempts, 2, "{err}");
    assert_eq!(err.status, Some(400));
    // moto::sdk_config supplies static credentials: a caller's provider.
    assert_eq!(
        err.credentials_provider.as_deref(),
        Some(envseal::kms::PROVIDER_CONFIGURED)
    );
    assert!(
        err.to_string()
            .contains("credentials expired (credentials from configured provider)"),
        "{err}"
    );
    assert_eq!(
        (stats.expired_token_retries, stats.expired_token_retry_successes),
        (1, 0)
    );
    // First load, then the reload after the rejection.
    assert_eq!(stats.credential_refreshes, 2);
    assert!(elapsed < Duration::from_millis(500), "{elapsed:?}");

    // Rejected once, then accepted: the call succeeds.
    let key = create_key("us-east-1").await;
    let server = FaultServer::start(
        Some(moto().url.clone()),
        vec![Action::Error(400, "ExpiredTokenException"), Action::Proxy],
    );
    let (result, _, stats) = encrypt_via(&server.url, &key, bounds().build().unwrap()).await;
    result.unwrap_or_else(|e| panic!("should succeed after the retry: {e}"));
    assert_eq!(server.requests(), 2);
    assert_eq!(
        (stats.expired_token_retries, stats.expired_token_retry_successes),
        (1, 1)
    );
    assert_eq!((stats.successes, stats.failures), (1, 0));
}

#[tokio::test]
async fn one_deadline_covers_all_calls_of_a_keyring_operation() {
    // Two keys: GenerateDataKey succeeds after 600 ms, then Encrypt for the
    // second key hangs. With one 800 ms deadline for the whole operation the
    // Encrypt gets only the ~200 ms left (a per-call deadline would let it
    // run to 1.4 s).
    let k1 = create_key("us-east-1").await;
    let k2 = create_key("us-east-1").await;
    let server = FaultServer::start(
        Some(moto().url.clone()),
        vec![Action::DelayProxy(Duration::from_millis(600)), Action::Hang],
    );
    let one_try = bounds()
        .max_attempts(1)
        .read_timeout(Duration::from_secs(5))
        .attempt_timeout(Duration::from_secs(5));
    let b = one_try
        .clone()
        .deadline(Duration::from_millis(800))
        .build()
        .unwrap();
    let client = moto::client("us-east-1", &server.url, b.clone()).await;
    let keyring = KmsKeyring::builder(client.clone(), [&k1, &k2]).build().unwrap();
    let start = Instant::now();
    let err = crate::common::async_client(&Config::default(), &keyring)
        .encrypt(&context(), b"x")
        .await
        .unwrap_err();
    let elapsed = start.elapsed();
    let Error::Aws(err) = err else { panic!("{err:?}") };
    assert_eq!(err.kind, AwsErrorKind::Timeout(TimeoutKind::Deadline), "{err}");
    assert_eq!(err.operation, envseal::kms::AwsOperation::Encrypt, "{err}");
    assert_eq!(server.requests(), 2);
    assert!(elapsed >= Duration::from_millis(790), "{elapsed:?}");
    within_deadline(elapsed, &b);
    assert_eq!(client.stats().successes, 1);

    // Once the deadline is spent, no further call is even started.
    let server = FaultServer::start(None, vec![Action::Hang]);
    let b = one_try.deadline(Duration::from_millis(300)).build().unwrap();
    let client = moto::client("us-east-1", &server.url, b.clone()).await;
    let keyring = KmsKeyring::builder(client.clone(), [KEY]).build().unwrap();
    // Decrypt tries matching EDKs in turn; a deadline error stops the loop.
    let aes = common::aes("app", "k", &[1u8; 32]);
    let both = envseal::MultiKeyring::from_keyrings(vec![
        aes.clone(),
        std::sync::Arc::new(common::Edks::junk("aws-kms", KEY.as_bytes(), 64)),
        std::sync::Arc::new(common::Edks::junk("aws-kms", KEY.as_bytes(), 64)),
    ])
    .unwrap();
    let message = crate::common::async_client(&Config::default(), &both)
        .encrypt(&context(), b"y")
        .await
        .unwrap();
    let start = Instant::now();
    let err = crate::common::async_client(&Config::default(), &keyring)
        .decrypt(&context(), &message)
        .await
        .unwrap_err();
    let Error::Aws(err) = err else { panic!("{err:?}") };
    assert_eq!(err.kind, AwsErrorKind::Timeout(TimeoutKind::Deadline), "{err}");
    assert_eq!(
        server.requests(),
        1,
        "the second EDK must not be tried after the deadline"
    );
    within_deadline(start.elapsed(), &b);
}

/// A cache lookup's wait for a load permit (the fan-out cap) is part of
/// its deadline: with one permit and KMS silent, the second of two cold
/// keys waits out the first's load (three read timeouts) and still fails
/// within its own deadline, counted from its lookup, not from its load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_for_a_load_permit_is_within_the_deadline() {
    use envseal::{CacheLimits, CachePolicy, Client, MaterialsCache};
    let server = FaultServer::start(None, vec![Action::Hang]);
    let b = bounds().deadline(Duration::from_millis(1000)).build().unwrap();
    let client = moto::client("us-east-1", &server.url, b.clone()).await;
    let keyring = KmsKeyring::builder(client, [KEY]).build().unwrap();
    let cache = MaterialsCache::builder(10)
        .policy(CachePolicy::builder().max_loads(1).build().unwrap())
        .build()
        .unwrap();
    let c = Client::builder(keyring)
        .cache(
            cache,
            CacheLimits::builder(Duration::from_secs(60)).build().unwrap(),
        )
        .build()
        .unwrap();
    let start = Instant::now();
    let lookups: Vec<_> = ["first", "second"]
        .into_iter()
        .map(|tenant| {
            let c = c.clone();
            tokio::spawn(async move {
                let ctx: EncryptionContext = [("tenant", tenant)].into_iter().collect();
                let result = c.encrypt(&ctx, b"x").await;
                (result, start.elapsed())
            })
        })
        .collect();
    for lookup in lookups {
        let (result, elapsed) = lookup.await.unwrap();
        let err = kms_error(result);
        assert!(matches!(err.kind, AwsErrorKind::Timeout(_)), "{err}");
        within_deadline(elapsed, &b);
    }
    // The first load's three attempts, then at most one of the second's
    // (its read timeout cut short by what is left of its deadline).
    assert!(
        server.requests() <= MAX_ATTEMPTS as usize + 1,
        "{}",
        server.requests()
    );
}

#[tokio::test]
async fn bounds_apply_to_a_caller_built_sdk_client() {
    use envseal::kms::aws_sdk_kms;
    use envseal::kms::KmsClient;
    // A client built by the caller with no timeouts and the SDK's defaults:
    // envseal's bounds and retry rules are applied to each call anyway.
    for (action, kind, requests) in [
        (
            Action::Error(400, "LimitExceededException"),
            AwsErrorKind::LimitExceeded,
            1,
        ),
        (
            Action::Error(429, "ThrottlingException"),
            AwsErrorKind::Throttled,
            2,
        ),
        (Action::Hang, AwsErrorKind::Timeout(TimeoutKind::Read), 2),
    ] {
        let server = FaultServer::start(None, vec![action]);
        let sdk = aws_sdk_kms::Client::new(&moto::sdk_config("us-east-1", &server.url));
        let b = bounds().max_attempts(2).build().unwrap();
        let client = KmsClient::from_sdk_client(sdk, b.clone()).unwrap();
        let keyring = KmsKeyring::builder(client, [KEY]).build().unwrap();
        let start = Instant::now();
        let result = crate::common::async_client(&Config::default(), &keyring)
            .encrypt(&context(), b"x")
            .await;
        let err = kms_error(result);
        assert_eq!(err.kind, kind, "{err}");
        assert_eq!(server.requests(), requests, "{err}");
        assert_eq!(err.attempts as usize, requests, "{err}");
        within_deadline(start.elapsed(), &b);
    }
}
