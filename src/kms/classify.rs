//! SDK errors to envseal's kinds, and the retry rules on top of the SDK's.

use aws_sdk_kms as sdk;
use aws_smithy_runtime_api::client::interceptors::context::Error as OpError;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, OrchestratorError};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::retries::classifiers::RetryClassifierPriority;
use aws_smithy_types::error::display::DisplayErrorContext;
use sdk::config::retry::{ClassifyRetry, RetryAction};
use sdk::error::ProvideErrorMetadata;
use sdk::operation::RequestId;

use crate::error::aws::{is_throttling_code, AwsError, AwsErrorKind, AwsOperation, TimeoutKind};

/// Reads the AWS error code from an operation's type-erased error: made
/// by [`code_of`] for the operation's own error type, which every call
/// site knows, so this module names no operation and no service (the key
/// store's DynamoDB errors are read the same way as KMS's).
pub(crate) type CodeOf = for<'a> fn(&'a OpError) -> Option<&'a str>;

/// The AWS error code of `err` if it is an `E` (the error type of the
/// operation the call ran).
pub(crate) fn code_of<E>(err: &OpError) -> Option<&str>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    err.downcast_ref::<E>().and_then(ProvideErrorMetadata::code)
}

/// Timeout kind from a transport error's text (the SDK's connector errors
/// say "HTTP connect timeout" or "HTTP read timeout").
pub(super) fn transport_timeout_kind(text: &str) -> TimeoutKind {
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
pub(super) fn orchestrator_timeout_kind(text: &str) -> TimeoutKind {
    if text.contains("attempt timeout") {
        TimeoutKind::Attempt
    } else {
        TimeoutKind::Deadline
    }
}

/// Classifies one attempt's failure (for counters and tracing).
pub(super) fn classify_attempt(
    err: &OrchestratorError<OpError>,
    status: Option<u16>,
    code_of: CodeOf,
) -> AwsErrorKind {
    if let Some(kind) = err
        .as_operation_error()
        .and_then(code_of)
        .and_then(AwsErrorKind::from_code)
    {
        return kind;
    }
    if status == Some(429) {
        return AwsErrorKind::Throttled;
    }
    if err.is_timeout_error() {
        return AwsErrorKind::Timeout(orchestrator_timeout_kind(&err.to_string()));
    }
    if let Some(conn) = err.as_connector_error() {
        return if conn.is_timeout() {
            AwsErrorKind::Timeout(transport_timeout_kind(&DisplayErrorContext(conn).to_string()))
        } else {
            AwsErrorKind::Connection
        };
    }
    AwsErrorKind::from_status(status)
}

/// Maps the SDK's final error to a [`AwsError`] (attempts filled in later).
pub(super) fn classify_sdk_error<E>(
    err: SdkError<E, HttpResponse>,
    op: AwsOperation,
    key_id: &str,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let request_id = err.request_id().map(str::to_owned);
    let (kind, code, message) = sdk_error_parts(&err, status);
    let mut e = AwsError::new(kind, op, key_id);
    e.status = status;
    e.code = code;
    e.request_id = request_id;
    e.message = message;
    e
}

/// The kind of an SDK error, as [`classify_sdk_error`] reads it: for a
/// call made outside the engine (STS in `envseal doctor`).
pub(super) fn sdk_error_kind<E>(err: &SdkError<E, HttpResponse>) -> AwsErrorKind
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    sdk_error_parts(err, err.raw_response().map(|r| r.status().as_u16())).0
}

/// An SDK error's kind, error code and message.
fn sdk_error_parts<E>(
    err: &SdkError<E, HttpResponse>,
    status: Option<u16>,
) -> (AwsErrorKind, Option<String>, Option<String>)
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let text = DisplayErrorContext(err).to_string();
    match err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let code = e.code().map(str::to_owned);
            let kind = code
                .as_deref()
                .and_then(AwsErrorKind::from_code)
                .unwrap_or_else(|| AwsErrorKind::from_status(status));
            (kind, code, e.message().map(str::to_owned))
        }
        SdkError::TimeoutError(_) => (
            AwsErrorKind::Timeout(orchestrator_timeout_kind(&text)),
            None,
            None,
        ),
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            (AwsErrorKind::Timeout(transport_timeout_kind(&text)), None, None)
        }
        // I/O and transient transport errors (reset, closed early) retry;
        // a credentials provider failure surfaces here too, before sending.
        SdkError::DispatchFailure(d)
            if d.is_io() || d.as_other() == Some(aws_smithy_types::retry::ErrorKind::TransientError) =>
        {
            (AwsErrorKind::Connection, None, Some(text))
        }
        SdkError::DispatchFailure(_) | SdkError::ConstructionFailure(_) if mentions_credentials(&text) => {
            (AwsErrorKind::Credentials, None, Some(text))
        }
        // The SDK retries a response it could not read (body cut off), so
        // it is a transient connection failure, not a bad answer.
        SdkError::ResponseError(_) => (AwsErrorKind::Connection, None, Some(text)),
        _ => (AwsErrorKind::Other, None, Some(text)),
    }
}

pub(super) fn mentions_credentials(text: &str) -> bool {
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
pub(crate) struct EnvsealRetryClassifier {
    /// The error code reader of the call's operation.
    pub(crate) code_of: CodeOf,
}

/// Codes the SDK's clock-skew classifier may retry (once skew is detected).
pub(super) const CLOCK_SKEW_CODES: [&str; 4] = [
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
        if let Some(code) = err.as_operation_error().and_then(self.code_of) {
            if is_throttling_code(code) {
                return RetryAction::throttling_error();
            }
            // The SDK retries these only on evidence of clock skew (the
            // response Date more than 4 minutes off), re-signed with the
            // corrected time: let it, or a skewed host never recovers.
            if CLOCK_SKEW_CODES.contains(&code) {
                return RetryAction::NoActionIndicated;
            }
            if AwsErrorKind::from_code(code).is_some_and(|k| k.forbids_retry()) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
