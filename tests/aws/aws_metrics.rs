//! Metrics (feature `metrics`): what the KMS calls emit through the
//! `metrics` facade against a loopback fault server in front of moto —
//! throttles with their HTTP status (400, 429) and error code, retries,
//! calls by outcome, the latency histogram — under a `metrics-util`
//! debugging recorder, and the Prometheus exporter's `/metrics` scraped over
//! loopback. Each test runs its calls on a current-thread runtime inside
//! `metrics::with_local_recorder`: the recorder is the test thread's own,
//! so the tests of this binary do not see each other's metrics.
#![cfg(feature = "metrics")]

use crate::common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::fault::{Action, FaultServer};
use common::moto::{self, create_key, moto};
use envseal::kms::{AwsBounds, AwsStats, RetryMode};
use envseal::{Config, EncryptionContext, KmsKeyring};
use metrics_exporter_prometheus::PrometheusBuilder;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::MetricKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn bounds() -> AwsBounds {
    AwsBounds::builder()
        .read_timeout(Duration::from_secs(2))
        .deadline(Duration::from_secs(5))
        .max_attempts(3)
        .initial_backoff(Duration::from_millis(10))
        .max_backoff(Duration::from_millis(50))
        // Exact attempt counts: adaptive mode's limiter may hold a retry.
        .retry_mode(RetryMode::Standard)
        .build()
        .unwrap()
}

/// Encrypts then decrypts one record through `endpoint` with a fresh KMS
/// client; the encrypt's result and the client's counters.
async fn round_trip(endpoint: &str, key: &str) -> (envseal::Result<()>, AwsStats) {
    let kms = moto::client("us-east-1", endpoint, bounds()).await;
    let keyring = KmsKeyring::builder(kms.clone(), [key]).build().unwrap();
    let client = common::async_client(&Config::default(), &keyring);
    let context = EncryptionContext::from([("metrics", "test")]);
    let result = async {
        let message = client.encrypt(&context, b"record").await?;
        let decrypted = client.decrypt(&context, &message).await?;
        assert_eq!(&decrypted.plaintext[..], b"record");
        Ok(())
    }
    .await;
    (result, kms.stats())
}

/// One metric as the debugging recorder saw it: labels sorted.
struct Metric {
    kind: MetricKind,
    name: String,
    labels: Vec<(String, String)>,
    value: DebugValue,
}

fn metrics_of(snapshotter: &Snapshotter) -> Vec<Metric> {
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
            Metric {
                kind,
                name: key.name().to_owned(),
                labels,
                value,
            }
        })
        .collect()
}

fn find<'a>(got: &'a [Metric], name: &str, pairs: &[(&str, &str)]) -> Option<&'a DebugValue> {
    let mut want: Vec<_> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    want.sort();
    got.iter()
        .find(|m| m.name == name && m.labels == want)
        .map(|m| &m.value)
}

fn counter(got: &[Metric], name: &str, pairs: &[(&str, &str)]) -> u64 {
    match find(got, name, pairs) {
        Some(DebugValue::Counter(n)) => *n,
        None => 0,
        Some(other) => panic!("{name} {pairs:?} is not a counter: {other:?}"),
    }
}

fn samples(got: &[Metric], name: &str, pairs: &[(&str, &str)]) -> Vec<f64> {
    match find(got, name, pairs) {
        Some(DebugValue::Histogram(h)) => h.iter().map(|v| v.into_inner()).collect(),
        other => panic!("{name} {pairs:?} is not a histogram: {other:?}"),
    }
}

const GDK: [(&str, &str); 2] = [("service", "kms"), ("operation", "GenerateDataKey")];

fn gdk(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    [&GDK[..], extra].concat()
}

#[test]
fn throttles_carry_status_and_code_and_retries_calls_latency_are_counted() {
    let rt = runtime();
    let key = rt.block_on(create_key("us-east-1"));
    // GenerateDataKey: throttled with 400 ThrottlingException, then with
    // 429 TooManyRequestsException, then moto answers; Decrypt goes through.
    let server = FaultServer::start(
        Some(moto().url.clone()),
        vec![
            Action::Error(400, "ThrottlingException"),
            Action::Error(429, "TooManyRequestsException"),
            Action::Proxy,
        ],
    );
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (result, stats) =
        metrics::with_local_recorder(&recorder, || rt.block_on(round_trip(&server.url, &key)));
    result.unwrap_or_else(|e| panic!("should recover from two throttles: {e}"));
    assert_eq!(server.requests(), 4, "3 GenerateDataKey attempts and 1 Decrypt");
    let got = metrics_of(&snapshotter);

    let throttles = "envseal_aws_throttles_total";
    let status_400 = gdk(&[("status", "400"), ("code", "ThrottlingException")]);
    let status_429 = gdk(&[("status", "429"), ("code", "TooManyRequestsException")]);
    assert_eq!(counter(&got, throttles, &status_400), 1);
    assert_eq!(counter(&got, throttles, &status_429), 1);
    let all_throttles: u64 = got
        .iter()
        .filter(|m| m.name == throttles)
        .map(|m| match m.value {
            DebugValue::Counter(n) => n,
            _ => panic!("{throttles} is a counter"),
        })
        .sum();
    assert_eq!(
        all_throttles, stats.throttles,
        "the snapshot counts the same throttles"
    );

    assert_eq!(counter(&got, "envseal_aws_retries_total", &GDK), 2);
    assert_eq!(stats.retries, 2);
    let calls = "envseal_aws_calls_total";
    assert_eq!(counter(&got, calls, &gdk(&[("outcome", "success")])), 1);
    let decrypt_ok = [
        ("service", "kms"),
        ("operation", "Decrypt"),
        ("outcome", "success"),
    ];
    assert_eq!(counter(&got, calls, &decrypt_ok), 1);
    assert_eq!(counter(&got, "envseal_aws_retries_total", &decrypt_ok[..2]), 0);

    // One sample per call, in seconds: the throttled call took at least
    // its two backoffs' worth of time, and less than the deadline.
    let latency = samples(
        &got,
        "envseal_aws_call_duration_seconds",
        &gdk(&[("outcome", "success")]),
    );
    assert_eq!(latency.len(), 1, "{latency:?}");
    assert!(latency[0] > 0.0 && latency[0] < 5.0, "{latency:?}");
    assert_eq!(
        samples(&got, "envseal_aws_call_duration_seconds", &decrypt_ok).len(),
        1
    );
    assert_eq!(counter(&got, "envseal_aws_credential_refreshes_total", &[]), 1);
    assert!(got.iter().all(|m| m.name.starts_with("envseal_")));
    assert!(got
        .iter()
        .filter(|m| m.name.ends_with("_total"))
        .all(|m| m.kind == MetricKind::Counter));
}

#[test]
fn a_call_throttled_to_the_end_counts_as_throttled() {
    let rt = runtime();
    let key = "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000";
    let server = FaultServer::start(None, vec![Action::Error(429, "ThrottlingException")]);
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let (result, stats) =
        metrics::with_local_recorder(&recorder, || rt.block_on(round_trip(&server.url, key)));
    assert!(result.is_err());
    let got = metrics_of(&snapshotter);
    let status_429 = gdk(&[("status", "429"), ("code", "ThrottlingException")]);
    assert_eq!(counter(&got, "envseal_aws_throttles_total", &status_429), 3);
    assert_eq!(stats.throttles, 3);
    assert_eq!(counter(&got, "envseal_aws_retries_total", &GDK), 2);
    assert_eq!(
        counter(&got, "envseal_aws_calls_total", &gdk(&[("outcome", "throttled")])),
        1
    );
    assert_eq!(
        counter(&got, "envseal_aws_calls_total", &gdk(&[("outcome", "success")])),
        0
    );
    let latency = samples(
        &got,
        "envseal_aws_call_duration_seconds",
        &gdk(&[("outcome", "throttled")]),
    );
    assert_eq!(latency.len(), 1);
}

/// GET `path` from `addr` (HTTP/1.1, one request): status line and body.
async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    sock.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    sock.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    (head.lines().next().unwrap_or("").to_owned(), body.to_owned())
}

/// What examples/metrics.rs does, on a recorder of this thread's own: the
/// Prometheus exporter on a loopback port, KMS calls through it (one
/// throttled attempt first), and its `/metrics` scraped over HTTP.
#[test]
fn prometheus_exporter_serves_the_envseal_metrics() {
    let rt = runtime();
    let key = rt.block_on(create_key("us-east-1"));
    let server = FaultServer::start(
        Some(moto().url.clone()),
        vec![Action::Error(429, "ThrottlingException"), Action::Proxy],
    );
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, moto::free_port()));
    let (recorder, exporter) = {
        let _in_runtime = rt.enter();
        PrometheusBuilder::new().with_http_listener(addr).build().unwrap()
    };
    rt.spawn(exporter);
    let (status, body) = metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            envseal::observe::describe();
            let (result, _) = round_trip(&server.url, &key).await;
            result.unwrap();
            http_get(addr, "/metrics").await
        })
    });
    assert!(status.contains(" 200 "), "{status}");
    for name in [
        "envseal_aws_calls_total",
        "envseal_aws_call_duration_seconds",
        "envseal_aws_retries_total",
        "envseal_aws_throttles_total",
        "envseal_aws_credential_refreshes_total",
        "envseal_aws_credential_load_duration_seconds",
    ] {
        assert!(
            body.contains(&format!("# HELP {name} ")),
            "no help for {name}:\n{body}"
        );
        assert!(body.contains(&format!("\n{name}")), "{name} missing:\n{body}");
    }
    assert!(
        body.contains(
            r#"envseal_aws_throttles_total{service="kms",operation="GenerateDataKey",status="429",code="ThrottlingException"} 1"#
        ),
        "{body}"
    );
    assert!(
        body.contains(r#"envseal_aws_calls_total{service="kms",operation="Decrypt",outcome="success"} 1"#),
        "{body}"
    );
}
