//! KMS glue: the client from the command line's bounds, `--kms-stats`,
//! and `envseal doctor`.

#[cfg(feature = "kms")]
use std::io::{self, Write};
#[cfg(feature = "kms")]
use std::time::Duration;

#[cfg(feature = "kms")]
pub(crate) use envseal::kms::KmsClient;
#[cfg(feature = "kms")]
use envseal::kms::{AwsBounds, RetryMode};
use tokio::runtime::Runtime;

use crate::cli::{AwsArgs, DoctorArgs, KmsArgs};
use crate::error::Failure;
#[cfg(not(feature = "kms"))]
use crate::error::Feature;
#[cfg(feature = "kms")]
use crate::error::{one_line, setting_error};

/// Built without the `kms` feature: KMS options are refused, never ignored.
#[cfg(not(feature = "kms"))]
#[derive(Clone, Debug)]
pub(crate) enum KmsClient {}

impl KmsArgs {
    pub(crate) fn used(&self) -> bool {
        !self.kms_key.is_empty()
            || self.kms_discovery
            || self.kms_rsa_key.is_some()
            || !self.kms_ecdh_static.is_empty()
            || !self.kms_ecdh_discovery.is_empty()
    }

    /// The KMS client, if a KMS option (or `also`: another keyring that
    /// calls KMS) asks for one.
    #[cfg(not(feature = "kms"))]
    pub(crate) fn client(&self, _runtime: &Runtime, also: bool) -> Result<Option<KmsClient>, Failure> {
        if self.used() || also {
            return Err(Failure::NotBuilt(Feature::Kms));
        }
        Ok(None)
    }

    /// The KMS client, if a KMS option (or `also`: another keyring that
    /// calls KMS) asks for one.
    #[cfg(feature = "kms")]
    pub(crate) fn client(&self, runtime: &Runtime, also: bool) -> Result<Option<KmsClient>, Failure> {
        if !self.used() && !also {
            return Ok(None);
        }
        self.aws.build_client(runtime, None).map(Some)
    }
}

impl AwsArgs {
    #[cfg(feature = "kms")]
    pub(crate) fn bounds(&self) -> Result<AwsBounds, Failure> {
        let ms = Duration::from_millis;
        let mut b = AwsBounds::builder();
        if let Some(v) = self.kms_connect_timeout_ms {
            b = b.connect_timeout(ms(v));
        }
        if let Some(v) = self.kms_read_timeout_ms {
            b = b.read_timeout(ms(v));
        }
        if let Some(v) = self.kms_attempt_timeout_ms {
            b = b.attempt_timeout(ms(v));
        }
        if let Some(v) = self.kms_deadline_ms {
            b = b.deadline(ms(v));
        }
        if let Some(v) = self.kms_max_attempts {
            b = b.max_attempts(v);
        }
        match self.kms_retry_mode.as_deref() {
            Some("standard") => b = b.retry_mode(RetryMode::Standard),
            Some(_) => b = b.retry_mode(RetryMode::Adaptive),
            None => {}
        }
        b.build().map_err(setting_error)
    }

    #[cfg(feature = "kms")]
    pub(crate) fn build_client(
        &self,
        runtime: &Runtime,
        sts_endpoint: Option<&str>,
    ) -> Result<KmsClient, Failure> {
        let mut builder = KmsClient::builder().bounds(self.bounds()?);
        if let Some(u) = sts_endpoint {
            builder = builder.sts_endpoint_url(u);
        }
        if let Some(r) = &self.region {
            builder = builder.region(r.clone());
        }
        if let Some(u) = &self.kms_endpoint {
            builder = builder.endpoint_url(u.clone());
        }
        if fips_endpoints() {
            builder = builder.use_fips_endpoint(true);
        }
        runtime.block_on(builder.build()).map_err(setting_error)
    }
}

/// Set by `--fips` before any client is built: every AWS client asks for
/// the services' FIPS endpoints.
static FIPS_ENDPOINTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether `--fips` asked for the FIPS endpoints (every AWS client the CLI
/// builds, the aws-encryption-cli drop-in's included).
#[cfg_attr(not(feature = "kms"), allow(dead_code))]
pub(crate) fn fips_endpoints() -> bool {
    FIPS_ENDPOINTS.load(std::sync::atomic::Ordering::Relaxed)
}

/// `--fips`: refuses to run unless this envseal was built with feature
/// `fips` and its crypto module is in FIPS mode; then AWS calls go to the
/// FIPS endpoints.
pub(crate) fn require_fips() -> Result<(), Failure> {
    if !cfg!(feature = "fips") {
        return Err(Failure::NotBuilt(crate::error::Feature::Fips));
    }
    let module = envseal::Backend::default().module();
    if !module.fips_mode {
        return Err(Failure::Failed(format!(
            "--fips: the crypto module ({module}) is not in FIPS mode"
        )));
    }
    FIPS_ENDPOINTS.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// The CLI's async runtime, on the calling thread: the KMS client is built
/// and every keyring call runs on it.
pub(crate) fn runtime() -> Result<Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Failed(format!("cannot start the async runtime: {e}")))
}

/// Prints the counters when dropped (success or failure) if `--kms-stats`:
/// the KMS client's, and the key store's DynamoDB calls and branch key
/// cache, if there is a key store.
pub(crate) struct StatsOnExit {
    kms: Option<KmsClient>,
    dynamodb: Option<std::sync::Arc<envseal::kms::AwsCounters>>,
}

impl StatsOnExit {
    pub(crate) fn new(args: &AwsArgs, client: Option<&KmsClient>) -> Self {
        StatsOnExit {
            kms: client.filter(|_| args.kms_stats).cloned(),
            dynamodb: None,
        }
    }

    /// Also prints these DynamoDB counters (the key store's).
    pub(crate) fn with_dynamodb(
        mut self,
        counters: Option<std::sync::Arc<envseal::kms::AwsCounters>>,
    ) -> Self {
        if self.kms.is_some() {
            self.dynamodb = counters;
        }
        self
    }
}

impl Drop for StatsOnExit {
    fn drop(&mut self) {
        #[cfg(feature = "kms")]
        if let Some(c) = &self.kms {
            print_kms_stats(c);
        }
        if let Some(c) = &self.dynamodb {
            print_dynamodb_stats(&c.snapshot());
        }
    }
}

fn ms(d: Option<std::time::Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.1}", d.as_secs_f64() * 1e3))
}

/// One line of KMS counters for `--kms-stats`.
#[cfg(feature = "kms")]
pub(crate) fn print_kms_stats(client: &KmsClient) {
    let s = client.stats();
    let _ = writeln!(
        io::stderr(),
        "envseal: kms: calls={} (GenerateDataKey={} Encrypt={} Decrypt={}) attempts={} retries={} \
         throttles={} timeouts={} failures={} latency_ms p50<={} p99<={} max={} \
         credential_loads={} credential_load_failures={} expired_token_retries={} (ok={}) expired_retry_ms_mean={}",
        s.calls(),
        s.generate_data_key_calls,
        s.encrypt_calls,
        s.decrypt_calls,
        s.attempts,
        s.retries,
        s.throttles,
        s.timeouts,
        s.failures,
        ms(s.latency_p50),
        ms(s.latency_p99),
        ms(s.latency_max),
        s.credential_refreshes,
        s.credential_refresh_failures,
        s.expired_token_retries,
        s.expired_token_retry_successes,
        ms(s.expired_token_retry_mean),
    );
}

/// One line of the key store's counters for `--kms-stats`.
fn print_dynamodb_stats(s: &envseal::kms::AwsStats) {
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "envseal: dynamodb: calls={} (GetItem={} TransactWriteItems={} DescribeTable={} CreateTable={} Query={}) \
         attempts={} retries={} throttles={} timeouts={} failures={} latency_ms p50<={} p99<={} max={} \
         branch_key_cache_hits={} branch_key_cache_misses={}",
        s.dynamodb_calls(),
        s.get_item_calls,
        s.transact_write_items_calls,
        s.describe_table_calls,
        s.create_table_calls,
        s.query_calls,
        s.attempts,
        s.retries,
        s.throttles,
        s.timeouts,
        s.failures,
        ms(s.latency_p50),
        ms(s.latency_p99),
        ms(s.latency_max),
        s.branch_key_cache_hits,
        s.branch_key_cache_misses,
    );
}

#[cfg(not(feature = "kms"))]
pub(crate) fn doctor(_args: &DoctorArgs) -> Result<(), Failure> {
    Err(Failure::NotBuilt(Feature::Kms))
}

#[cfg(feature = "kms")]
pub(crate) fn doctor(args: &DoctorArgs) -> Result<(), Failure> {
    use envseal::kms::DoctorOptions;
    let runtime = runtime()?;
    let client = args
        .kms
        .aws
        .build_client(&runtime, args.sts_endpoint.as_deref())?;
    let options = DoctorOptions::builder()
        .deadline(Duration::from_millis(args.deadline_ms))
        .keys(args.kms.kms_key.iter().cloned())
        .build()
        .map_err(setting_error)?;
    let report = runtime.block_on(client.doctor(&options));
    let endpoints = runtime.block_on(client.endpoints());
    let mut out = io::stdout().lock();
    // What the calls run on: the crypto module, the TLS provider and each
    // service's endpoint (the FIPS setting's, or the URL given instead).
    let _ = writeln!(out, "crypto: {}", envseal::Backend::default().module());
    let _ = writeln!(out, "tls: {}", client.tls_provider());
    let _ = writeln!(
        out,
        "fips endpoints: {}",
        if client.uses_fips_endpoints() { "on" } else { "off" }
    );
    for e in &endpoints {
        let _ = writeln!(out, "endpoint {e}");
    }
    for step in &report.steps {
        let _ = writeln!(out, "{}", one_line(&step.to_string()));
    }
    let s = client.stats();
    let _ = writeln!(
        out,
        "counters: credential loads={} load failures={} expired-token retries={} kms calls={} attempts={}",
        s.credential_refreshes,
        s.credential_refresh_failures,
        s.expired_token_retries,
        s.calls(),
        s.attempts
    );
    let _ = out.flush();
    match report.failure() {
        None => {
            let _ = writeln!(out, "doctor: ok");
            Ok(())
        }
        Some(reason) => Err(Failure::Doctor(format!("doctor: {reason}"))),
    }
}
