//! Bounded validation of the AWS setup (`envseal doctor`): which credential
//! sources the environment configures and whether keys shadow a role; which
//! provider supplies the credentials and when they expire; whom STS says
//! they belong to (`GetCallerIdentity`, retrying only the errors of a key
//! that is not yet visible everywhere, inside a deadline); and whether each
//! configured KMS key can be described. Every step reports its attempts and
//! latency; the first failure ends the report with a one-line reason.

use std::time::{Duration, Instant};

use aws_sdk_sts as sts;
use aws_smithy_types::error::display::DisplayErrorContext;
use sts::error::ProvideErrorMetadata;

use super::classify::sdk_error_kind;
use super::client::{CallArgs, CredentialInfo, KmsClient};
use super::credentials::{probe_instance_role, CredentialSources, PROVIDER_IMDS};
use crate::error::aws::{AwsError, AwsErrorKind, AwsOperation};
use crate::error::Error;
use crate::observe::{self, STS_GET_CALLER_IDENTITY};

/// STS error codes of credentials that exist but are not yet accepted
/// everywhere (IAM eventual consistency): retried until the deadline.
const PROPAGATION_CODES: [&str; 2] = ["InvalidClientTokenId", "InvalidAccessKeyId"];

/// What [`KmsClient::doctor`] checks and within what time, built with
/// [`DoctorOptions::builder`] (defaults: `DoctorOptions::default()`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DoctorOptions {
    /// Bound on resolving the credentials and validating them with STS,
    /// retries included (default 3 s).
    pub(crate) deadline: Duration,
    /// First backoff between STS attempts, doubled each time (default 100 ms).
    pub(crate) initial_backoff: Duration,
    /// KMS keys to check with `DescribeKey` (each bounded by the client's
    /// [`AwsBounds`](super::AwsBounds)).
    pub(crate) keys: Vec<String>,
}

impl Default for DoctorOptions {
    fn default() -> Self {
        DoctorOptions {
            deadline: Duration::from_secs(3),
            initial_backoff: Duration::from_millis(100),
            keys: Vec::new(),
        }
    }
}

/// Builds a [`DoctorOptions`]; see [`DoctorOptions::builder`].
#[derive(Clone, Debug, Default)]
pub struct DoctorOptionsBuilder(DoctorOptions);

impl DoctorOptionsBuilder {
    /// Bound on resolving the credentials and validating them with STS,
    /// retries included (default 3 s).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.0.deadline = deadline;
        self
    }
    /// First backoff between STS attempts, doubled each time (default 100 ms).
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.0.initial_backoff = backoff;
        self
    }
    /// KMS keys to check with `DescribeKey` (default: none).
    pub fn keys(mut self, keys: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.0.keys = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Checks the options and returns them.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting for a deadline or backoff over
    /// 24 hours (a bound is a bound).
    pub fn build(self) -> Result<DoctorOptions, Error> {
        const MAX: Duration = Duration::from_secs(24 * 60 * 60);
        if self.0.deadline > MAX {
            return Err(Error::config("doctor deadline", "must be at most 24 hours"));
        }
        if self.0.initial_backoff > MAX {
            return Err(Error::config(
                "doctor initial backoff",
                "must be at most 24 hours",
            ));
        }
        Ok(self.0)
    }
}

impl DoctorOptions {
    /// A builder starting from the defaults.
    pub fn builder() -> DoctorOptionsBuilder {
        DoctorOptionsBuilder::default()
    }

    /// The bound on resolving and validating the credentials.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
    /// The first backoff between STS attempts.
    pub fn initial_backoff(&self) -> Duration {
        self.initial_backoff
    }
    /// The KMS keys to describe.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }
}

/// One step of a [`DoctorReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DoctorStep {
    /// `environment`, `credentials`, `identity` or `key <id>`.
    pub name: String,
    /// Whether the step passed (a shadowing warning passes).
    pub ok: bool,
    /// Requests made (0 for the environment step).
    pub attempts: u32,
    /// Time the step took.
    pub elapsed: Duration,
    /// What was found, or why it failed (one line, no secrets).
    pub detail: String,
}

/// Said of a propagation error that outlasted the deadline.
const NOT_YET: &str = "; the credentials were still not accepted at the deadline";

impl DoctorStep {
    fn failed(name: String, attempts: u32, started: Instant, detail: String) -> Self {
        DoctorStep {
            name,
            ok: false,
            attempts,
            elapsed: started.elapsed(),
            detail,
        }
    }
}

impl std::fmt::Display for DoctorStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = if self.ok { "ok" } else { "FAILED" };
        write!(f, "{}: {status}: {}", self.name, self.detail)?;
        if self.attempts > 0 {
            let plural = if self.attempts == 1 { "" } else { "s" };
            write!(
                f,
                " [{} attempt{plural}, {} ms]",
                self.attempts,
                self.elapsed.as_millis()
            )?;
        }
        Ok(())
    }
}

/// What [`KmsClient::doctor`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DoctorReport {
    /// The steps run, in order; the last failed if any did.
    pub steps: Vec<DoctorStep>,
    /// The shadowing warning, if environment keys hide a role source.
    pub shadowing: Option<String>,
}

impl DoctorReport {
    /// Adds a step; whether it passed.
    fn push(&mut self, step: DoctorStep) -> bool {
        let ok = step.ok;
        self.steps.push(step);
        ok
    }

    /// Whether every step passed.
    pub fn ok(&self) -> bool {
        self.steps.iter().all(|s| s.ok)
    }

    /// The one-line reason of the failed step, if any.
    pub fn failure(&self) -> Option<String> {
        self.steps.iter().find(|s| !s.ok).map(|s| {
            let plural = if s.attempts == 1 { "" } else { "s" };
            format!(
                "{}: {} (after {} attempt{plural} in {} ms)",
                s.name,
                s.detail,
                s.attempts,
                s.elapsed.as_millis()
            )
        })
    }
}

/// Shortens an access key id for display: `ASIA…0001`.
fn mask(key_id: &str) -> String {
    if key_id.len() <= 8 || !key_id.is_ascii() {
        return "…".into();
    }
    format!("{}…{}", &key_id[..4], &key_id[key_id.len() - 4..])
}

fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(400)
        .collect()
}

/// The environment step: which credential sources are configured, and
/// whether environment keys shadow another source (an instance role is
/// known only by asking IMDS: at most 1 s, and only when keys could be
/// hiding one).
async fn environment(deadline: Instant) -> (DoctorStep, Option<String>) {
    let sources = CredentialSources::from_env();
    let mut shadowing = sources.shadowing_warning();
    let mut configured = Vec::new();
    if sources.env_keys {
        configured.push("environment keys".to_owned());
    }
    if let Some(p) = &sources.profile {
        configured.push(format!("profile {p}"));
    }
    if sources.web_identity {
        configured.push("web identity".to_owned());
    }
    if let Some(var) = sources.container {
        configured.push(format!("container ({var})"));
    }
    configured.push(if sources.imds_disabled {
        "IMDS disabled".to_owned()
    } else {
        "IMDS".to_owned()
    });
    if sources.env_keys && !sources.imds_disabled {
        let bound = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(1));
        if let Some(role) = probe_instance_role(bound).await {
            let line = format!("{PROVIDER_IMDS} (instance role {role})");
            shadowing = Some(match shadowing.take() {
                Some(w) => format!("{w}; it also shadows {line}"),
                None => format!(
                    "AWS_ACCESS_KEY_ID in the environment shadows {line}: the static keys are used and the role is ignored"
                ),
            });
        }
    }
    let detail = match &shadowing {
        Some(w) => format!("{}; WARNING: {w}", configured.join(", ")),
        None => configured.join(", "),
    };
    let step = DoctorStep {
        name: "environment".into(),
        ok: true,
        attempts: 0,
        elapsed: Duration::ZERO,
        detail,
    };
    (step, shadowing)
}

/// `from P, access key AKIA…1234[, account A], expires T (in N s)`.
fn describe_credentials(info: &CredentialInfo) -> String {
    let mut detail = format!("from {}, access key {}", info.provider, mask(&info.access_key_id));
    if let Some(account) = &info.account_id {
        detail.push_str(&format!(", account {account}"));
    }
    match info.expiry {
        Some(at) => {
            let when = aws_smithy_types::DateTime::from(at)
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .unwrap_or_else(|_| "?".into());
            let left = at
                .duration_since(std::time::SystemTime::now())
                .map_or(0, |d| d.as_secs());
            detail.push_str(&format!(", expires {when} (in {left} s)"));
        }
        None => detail.push_str(", no expiry"),
    }
    detail
}

impl KmsClient {
    /// Validates the setup within `options.deadline`; see the module docs.
    /// Stops at the first failed step.
    pub async fn doctor(&self, options: &DoctorOptions) -> DoctorReport {
        let mut report = DoctorReport::default();
        let deadline = Instant::now() + options.deadline;
        // 1. The environment's credential sources (and what they shadow).
        let (step, shadowing) = environment(deadline).await;
        report.shadowing = shadowing;
        report.steps.push(step);
        // 2. Credentials: provider, key, expiry.
        if !report.push(self.credentials_step(deadline, options.deadline).await) {
            return report;
        }
        // 3. STS GetCallerIdentity, retrying only propagation errors.
        if !report.push(self.caller_identity(deadline, options.initial_backoff).await) {
            return report;
        }
        // 4. Each key, with a bounded DescribeKey.
        for key in &options.keys {
            if !report.push(self.describe(key).await) {
                break;
            }
        }
        report
    }

    /// Resolves the credentials within the deadline: provider, masked key,
    /// expiry.
    async fn credentials_step(&self, deadline: Instant, budget: Duration) -> DoctorStep {
        let t = Instant::now();
        let remaining = deadline.saturating_duration_since(t);
        let step = |ok: bool, detail: String| DoctorStep {
            name: "credentials".into(),
            ok,
            attempts: 1,
            elapsed: t.elapsed(),
            detail,
        };
        match tokio::time::timeout(remaining, self.resolve_credentials()).await {
            Ok(Ok(info)) => step(true, describe_credentials(&info)),
            Ok(Err(e)) => step(false, one_line(&e)),
            Err(_) => step(
                false,
                format!(
                    "credentials from {} not resolved within the {} ms deadline",
                    self.credentials_provider().unwrap_or("the credential chain"),
                    budget.as_millis()
                ),
            ),
        }
    }

    async fn caller_identity(&self, deadline: Instant, initial_backoff: Duration) -> DoctorStep {
        let started = Instant::now();
        let name = "identity".to_owned();
        let Some(sts) = self.sts_client() else {
            return DoctorStep {
                name,
                ok: false,
                attempts: 0,
                elapsed: Duration::ZERO,
                detail: "no STS client (the KMS client was built from an SDK client)".into(),
            };
        };
        let bounds = self.bounds();
        let mut attempts = 0u32;
        let mut backoff = initial_backoff;
        // The last propagation error, reported if the deadline ends the wait.
        let mut last: Option<String> = None;
        loop {
            let Some(remaining) = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
            else {
                let detail = match last {
                    Some(d) => format!("{d}{NOT_YET}"),
                    None => "the deadline passed before STS answered".into(),
                };
                return DoctorStep::failed(name, attempts, started, detail);
            };
            attempts += 1;
            let timeouts = sts::config::timeout::TimeoutConfig::builder()
                .connect_timeout(bounds.connect_timeout)
                .read_timeout(bounds.read_timeout)
                .operation_attempt_timeout(remaining)
                .operation_timeout(remaining)
                .build();
            let sent = Instant::now();
            let result = sts
                .get_caller_identity()
                .customize()
                .config_override(
                    sts::Config::builder()
                        .timeout_config(timeouts)
                        .retry_config(sts::config::retry::RetryConfig::disabled()),
                )
                .send()
                .await;
            sts_observed(&result, attempts, sent.elapsed());
            let err = match result {
                Ok(out) => {
                    return DoctorStep {
                        name,
                        ok: true,
                        attempts,
                        elapsed: started.elapsed(),
                        detail: format!(
                            "account {}, arn {}",
                            out.account().unwrap_or("?"),
                            out.arn().unwrap_or("?")
                        ),
                    }
                }
                Err(e) => e,
            };
            let code = err.code().map(str::to_owned);
            let propagating = code.as_deref().is_some_and(|c| PROPAGATION_CODES.contains(&c));
            let status = err.raw_response().map(|r| r.status().as_u16());
            let describe = || {
                let mut d = String::from("STS GetCallerIdentity failed");
                match (status, &code) {
                    (Some(s), Some(c)) => d.push_str(&format!(" (HTTP {s}, {c})")),
                    (None, Some(c)) => d.push_str(&format!(" ({c})")),
                    (Some(s), None) => d.push_str(&format!(" (HTTP {s})")),
                    (None, None) => {}
                }
                let message = err
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| DisplayErrorContext(&err).to_string());
                d.push_str(": ");
                d.push_str(&one_line(&message));
                d
            };
            let wait = backoff.min(deadline.saturating_duration_since(Instant::now()));
            if !propagating || wait.is_zero() {
                let mut detail = describe();
                if propagating {
                    detail.push_str(NOT_YET);
                }
                return DoctorStep::failed(name, attempts, started, detail);
            }
            tracing::info!(
                target: "envseal::doctor",
                attempts,
                code = code.as_deref(),
                backoff_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "STS does not accept the credentials yet; retrying"
            );
            last = Some(describe());
            tokio::time::sleep(wait).await;
            backoff = backoff.saturating_mul(2);
        }
    }

    async fn describe(&self, key: &str) -> DoctorStep {
        let started = Instant::now();
        let name = format!("key {key}");
        let context = crate::EncryptionContext::default();
        let args = CallArgs {
            key_id: key,
            context: &context,
            grant_tokens: &[],
            deadline: self.deadline(),
        };
        match self.describe_key(args).await {
            Ok(d) => DoctorStep {
                name,
                ok: d.enabled,
                attempts: d.attempts,
                elapsed: started.elapsed(),
                detail: format!("{}, {}, {}", d.state, d.usage, d.spec),
            },
            Err(e) => DoctorStep {
                name,
                ok: false,
                attempts: e.attempts,
                elapsed: started.elapsed(),
                detail: one_line(&e.to_string()),
            },
        }
    }
}

impl KmsClient {
    /// `DescribeKey`, bounded like every call (for `envseal doctor`).
    pub(crate) async fn describe_key(&self, args: CallArgs<'_>) -> Result<KeyDescription, AwsError> {
        let request = self.inner.client.describe_key().key_id(args.key_id);
        let (out, attempts) = self
            .run_counted(AwsOperation::DescribeKey, &args, |cfg| {
                request.clone().customize().config_override(cfg).send()
            })
            .await;
        let out = out?;
        let meta = out.key_metadata.ok_or_else(|| {
            AwsError::new(
                AwsErrorKind::InvalidResponse,
                AwsOperation::DescribeKey,
                args.key_id,
            )
            .with_message("the response has no KeyMetadata")
        })?;
        Ok(KeyDescription {
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
}

/// What `DescribeKey` said about a key.
pub(crate) struct KeyDescription {
    pub(crate) enabled: bool,
    pub(crate) state: String,
    pub(crate) usage: String,
    pub(crate) spec: String,
    pub(crate) attempts: u32,
}

/// Each `GetCallerIdentity` is a call of its own (SDK retries off), counted
/// with its outcome, and as a retry after the first.
fn sts_observed<T, E>(result: &Result<T, sts::error::SdkError<E>>, attempt: u32, elapsed: Duration)
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if attempt > 1 {
        observe::aws_retry(STS_GET_CALLER_IDENTITY);
    }
    let failure = result.as_ref().err().map(|e| {
        let kind = sdk_error_kind(e);
        let status = e.raw_response().map(|r| r.status().as_u16());
        observe::aws_attempt_failed(STS_GET_CALLER_IDENTITY, &kind, status, e.code());
        kind
    });
    observe::aws_call(STS_GET_CALLER_IDENTITY, failure.as_ref(), elapsed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_built_and_bounded() {
        let o = DoctorOptions::builder()
            .deadline(Duration::from_secs(1))
            .keys(["k1", "k2"])
            .build()
            .unwrap();
        assert_eq!(
            (o.deadline(), o.keys()),
            (Duration::from_secs(1), &["k1".to_owned(), "k2".to_owned()][..])
        );
        assert_eq!(
            DoctorOptions::builder().build().unwrap(),
            DoctorOptions::default()
        );
        // An unbounded deadline would overflow `Instant` in `doctor`.
        let err = DoctorOptions::builder()
            .deadline(Duration::MAX)
            .build()
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Config {
                    setting: "doctor deadline",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn masks_and_reports() {
        assert_eq!(mask("ASIACONTAINER000001"), "ASIA…0001");
        assert_eq!(mask("short"), "…");
        let report = DoctorReport {
            steps: vec![
                DoctorStep {
                    name: "credentials".into(),
                    ok: true,
                    attempts: 1,
                    elapsed: Duration::from_millis(3),
                    detail: "from EcsContainer".into(),
                },
                DoctorStep {
                    name: "identity".into(),
                    ok: false,
                    attempts: 5,
                    elapsed: Duration::from_millis(3012),
                    detail: "STS GetCallerIdentity failed (HTTP 403, InvalidClientTokenId): invalid".into(),
                },
            ],
            shadowing: None,
        };
        assert!(!report.ok());
        assert_eq!(
            report.failure().unwrap(),
            "identity: STS GetCallerIdentity failed (HTTP 403, InvalidClientTokenId): invalid (after 5 attempts in 3012 ms)"
        );
        assert_eq!(
            report.steps[0].to_string(),
            "credentials: ok: from EcsContainer [1 attempt, 3 ms]"
        );
    }
}
