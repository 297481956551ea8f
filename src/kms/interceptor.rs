//! The attempt interceptor: counts, times and traces every attempt the SDK
//! makes, and remembers the last failure and throttle for the engine.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_sdk_kms as sdk;
use sdk::config::interceptors::{BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef};
use sdk::config::{ConfigBag, Intercept, RuntimeComponents};
use sdk::error::BoxError;

use super::classify::{classify_attempt, CodeOf};
use super::stats::AwsCounters;
use crate::error::aws::{AwsErrorKind, AwsOperation, AwsService};

#[derive(Clone, Debug)]
pub(super) struct AttemptFailure {
    pub(super) kind: AwsErrorKind,
    pub(super) code: Option<String>,
    pub(super) request_id: Option<String>,
    pub(super) status: Option<u16>,
}

#[derive(Debug, Default)]
pub(super) struct AttemptState {
    pub(super) attempts: u32,
    pub(super) started: Option<Instant>,
    /// When the last attempt was signed and sent (its credentials resolved).
    pub(super) sent: Option<Instant>,
    pub(super) last_status: Option<u16>,
    /// Attempts whose outcome was recorded. An SDK attempt that sent
    /// nothing (cancelled in the rate limiter, or finalized a second time at
    /// the deadline) records nothing.
    pub(super) finished: u32,
    /// The last failed attempt: kind, error code, request id, status.
    pub(super) last_failure: Option<AttemptFailure>,
    /// The last throttled attempt, kept even if a later one timed out.
    pub(super) last_throttle: Option<AttemptFailure>,
}

/// Per-call interceptor: counts attempts and logs each one's outcome.
#[derive(Debug)]
pub(crate) struct AttemptRecorder {
    /// The call's operation (labels the exported metrics).
    pub(super) op: AwsOperation,
    pub(super) service: AwsService,
    pub(super) stats: Arc<AwsCounters>,
    pub(super) state: Arc<Mutex<AttemptState>>,
    /// The error code reader of the call's operation.
    pub(super) code_of: CodeOf,
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
        self.stats.attempt_started(self.op, s.attempts);
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
                let kind = classify_attempt(err, status, self.code_of);
                let code = err.as_operation_error().and_then(self.code_of).map(str::to_owned);
                let failure = AttemptFailure {
                    kind: kind.clone(),
                    code: code.clone(),
                    request_id,
                    status,
                };
                if kind == AwsErrorKind::Throttled {
                    s.last_throttle = Some(failure.clone());
                }
                s.last_failure = Some(failure);
                Some((kind, code))
            }
            _ => None,
        };
        drop(s);
        let svc = self.service.log_name();
        match (ctx.output_or_error(), failure) {
            (Some(Ok(_)), _) => tracing::debug!(attempt, latency_ms, status, "{svc} attempt ok"),
            (Some(Err(_)), Some((kind, code))) => {
                self.stats.attempt_failed(self.op, &kind, status, code.as_deref());
                if kind == AwsErrorKind::Throttled {
                    tracing::warn!(attempt, latency_ms, status, "{svc} attempt throttled");
                } else {
                    tracing::info!(attempt, latency_ms, status, kind = ?kind, "{svc} attempt failed");
                }
            }
            _ => tracing::info!(attempt, latency_ms, "{svc} attempt cancelled"),
        }
        Ok(())
    }
}
