//! envseal's metrics on a Prometheus endpoint (feature `metrics`): KMS
//! calls by operation and outcome, throttles, retries, latency and
//! credential loads (docs/metrics.md lists them all).
//!
//! Against a local KMS such as moto's server (what `scripts/test` does):
//!   `AWS_ENDPOINT_URL_KMS=http://127.0.0.1:5000 AWS_REGION=us-east-1 \
//!    ENVSEAL_KMS_KEY_ID=<key arn> cargo run --features metrics --example metrics`
//! or against AWS with the usual credential chain and a real key ARN.
//!
//! It serves `http://127.0.0.1:9464/metrics` (`ENVSEAL_METRICS_ADDR`, a
//! loopback address), makes a few KMS calls, scrapes its own endpoint and
//! prints the envseal lines; `ENVSEAL_METRICS_SERVE_SECONDS=60` keeps
//! serving that long afterwards, for `curl` or a local Prometheus.

use std::net::SocketAddr;
use std::time::Duration;

use envseal::kms::{AwsBounds, KmsClient};
use envseal::{Client, EncryptionContext, KmsKeyring};
use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Metrics every run with at least one successful KMS call has.
const EXPECTED: [&str; 4] = [
    "envseal_aws_calls_total",
    "envseal_aws_call_duration_seconds",
    "envseal_aws_credential_refreshes_total",
    "envseal_aws_credential_load_duration_seconds",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key_id =
        std::env::var("ENVSEAL_KMS_KEY_ID").map_err(|_| "set ENVSEAL_KMS_KEY_ID to a KMS key ARN")?;
    let addr: SocketAddr = std::env::var("ENVSEAL_METRICS_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:9464".to_owned())
        .parse()?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not a loopback address").into());
    }
    let serve_for = std::env::var("ENVSEAL_METRICS_SERVE_SECONDS")
        .ok()
        .map(|s| s.parse().map(Duration::from_secs))
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // 1. The recorder and its HTTP listener, once per process, before
        //    any envseal call; then the metrics' help texts and units.
        PrometheusBuilder::new().with_http_listener(addr).install()?;
        envseal::observe::describe();

        // 2. KMS calls as usual: each one is counted and timed.
        let kms = KmsClient::builder()
            .bounds(AwsBounds::builder().deadline(Duration::from_secs(3)).build()?)
            .build()
            .await?;
        let client = Client::new(KmsKeyring::builder(kms.clone(), [key_id.as_str()]).build()?)?;
        for tenant in ["acme", "globex", "initech"] {
            let context = EncryptionContext::from([("tenant", tenant)]);
            let message = client.encrypt(&context, b"a record").await?;
            let decrypted = client.decrypt(&context, &message).await?;
            assert_eq!(&decrypted.plaintext[..], b"a record");
        }

        // 3. What Prometheus would scrape.
        let body = scrape(addr).await?;
        for line in body.lines().filter(|l| l.contains("envseal_")) {
            println!("{line}");
        }
        if let Some(missing) = EXPECTED.iter().find(|name| !body.contains(*name)) {
            return Err(format!("{missing} is not on http://{addr}/metrics").into());
        }
        let stats = kms.stats();
        eprintln!(
            "served http://{addr}/metrics: {} KMS calls, {} attempts, {} throttles",
            stats.calls(),
            stats.attempts,
            stats.throttles
        );
        if let Some(d) = serve_for {
            tokio::time::sleep(d).await;
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

/// `GET /metrics` over one plain HTTP/1.1 connection; the body.
async fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    let mut sock = tokio::net::TcpStream::connect(addr).await?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    sock.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    sock.read_to_string(&mut response).await?;
    match response.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_owned()),
        _ => Err(std::io::Error::other(format!(
            "unexpected answer from {addr}: {}",
            response.lines().next().unwrap_or("")
        ))),
    }
}
