//! Typed errors of the AWS calls envseal makes (KMS, and DynamoDB for the
//! branch key store): what failed, how, and what the caller can do about it.

use std::fmt;
use std::time::Duration;

/// The operation a call made: a KMS operation, or a DynamoDB one of the
/// branch key store (see [`AwsOperation::service`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AwsOperation {
    /// `GenerateDataKey` (the generator key on encrypt).
    GenerateDataKey,
    /// `Encrypt` (every further key on encrypt).
    Encrypt,
    /// `Decrypt` (unwrapping an encrypted data key or a branch key).
    Decrypt,
    /// `DescribeKey` (checking a key, `envseal doctor`).
    DescribeKey,
    /// `GenerateDataKeyWithoutPlaintext` (a new branch key).
    GenerateDataKeyWithoutPlaintext,
    /// `ReEncrypt` (the ACTIVE copy of a branch key; authenticating it).
    ReEncrypt,
    /// `GetPublicKey` (the public key of a KMS ECDH key).
    GetPublicKey,
    /// `DeriveSharedSecret` (ECDH with a KMS key agreement key).
    DeriveSharedSecret,
    /// DynamoDB `GetItem` (reading a branch key).
    GetItem,
    /// DynamoDB `TransactWriteItems` (writing a new branch key version).
    TransactWriteItems,
    /// DynamoDB `DescribeTable` (checking the key store table).
    DescribeTable,
    /// DynamoDB `CreateTable` (creating the key store table).
    CreateTable,
    /// DynamoDB `Query` (listing a branch key's versions).
    Query,
}

/// The AWS service an operation belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AwsService {
    /// AWS KMS.
    Kms,
    /// Amazon DynamoDB (the branch key store).
    DynamoDb,
}

impl AwsService {
    /// The service's short name, as in error messages: `KMS`, `DynamoDB`.
    pub fn name(self) -> &'static str {
        match self {
            AwsService::Kms => "KMS",
            AwsService::DynamoDb => "DynamoDB",
        }
    }

    /// The lower-case name that starts log messages (`kms call failed`).
    pub(crate) fn log_name(self) -> &'static str {
        match self {
            AwsService::Kms => "kms",
            AwsService::DynamoDb => "dynamodb",
        }
    }
}

impl AwsOperation {
    /// Every operation, in the order of the call counters.
    pub(crate) const ALL: [AwsOperation; 13] = [
        AwsOperation::GenerateDataKey,
        AwsOperation::Encrypt,
        AwsOperation::Decrypt,
        AwsOperation::DescribeKey,
        AwsOperation::GenerateDataKeyWithoutPlaintext,
        AwsOperation::ReEncrypt,
        AwsOperation::GetPublicKey,
        AwsOperation::DeriveSharedSecret,
        AwsOperation::GetItem,
        AwsOperation::TransactWriteItems,
        AwsOperation::DescribeTable,
        AwsOperation::CreateTable,
        AwsOperation::Query,
    ];

    /// The API name, as in AWS's documentation and CloudTrail.
    pub fn name(self) -> &'static str {
        match self {
            AwsOperation::GenerateDataKey => "GenerateDataKey",
            AwsOperation::Encrypt => "Encrypt",
            AwsOperation::Decrypt => "Decrypt",
            AwsOperation::DescribeKey => "DescribeKey",
            AwsOperation::GenerateDataKeyWithoutPlaintext => "GenerateDataKeyWithoutPlaintext",
            AwsOperation::ReEncrypt => "ReEncrypt",
            AwsOperation::GetPublicKey => "GetPublicKey",
            AwsOperation::DeriveSharedSecret => "DeriveSharedSecret",
            AwsOperation::GetItem => "GetItem",
            AwsOperation::TransactWriteItems => "TransactWriteItems",
            AwsOperation::DescribeTable => "DescribeTable",
            AwsOperation::CreateTable => "CreateTable",
            AwsOperation::Query => "Query",
        }
    }

    /// The service the operation belongs to.
    pub fn service(self) -> AwsService {
        match self {
            AwsOperation::GetItem
            | AwsOperation::TransactWriteItems
            | AwsOperation::DescribeTable
            | AwsOperation::CreateTable
            | AwsOperation::Query => AwsService::DynamoDb,
            _ => AwsService::Kms,
        }
    }

    /// The index of the operation's call counter.
    pub(crate) fn index(self) -> usize {
        Self::ALL.iter().position(|o| *o == self).unwrap_or(0)
    }
}

impl fmt::Display for AwsOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which bound a timed-out call hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// TCP/TLS connect took longer than the connect timeout.
    Connect,
    /// No response headers within the read timeout after sending.
    Read,
    /// One attempt (including reading the body) took longer than the attempt timeout.
    Attempt,
    /// The keyring operation's overall deadline passed (all attempts and backoff).
    Deadline,
}

/// What kind of failure a call ended in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AwsErrorKind {
    /// The service throttled the request (`ThrottlingException`, HTTP 400
    /// or 429; DynamoDB's `ProvisionedThroughputExceededException` and
    /// `RequestLimitExceeded`).
    Throttled,
    /// A timeout; says which one.
    Timeout(TimeoutKind),
    /// The connection failed or was reset.
    Connection,
    /// The service failed on its side (HTTP 5xx, `KMSInternalException`, ...).
    ServerError,
    /// `AccessDeniedException`.
    AccessDenied,
    /// `NotFoundException`: the key does not exist (in that region/account);
    /// for DynamoDB, `ResourceNotFoundException` (no such table) or no item
    /// for the branch key (version) asked for.
    NotFound,
    /// DynamoDB refused a conditional write (`ConditionalCheckFailedException`,
    /// or `TransactionCanceledException`): the branch key already exists,
    /// or its ACTIVE item changed since it was read.
    ConditionFailed,
    /// `DisabledException`: the key is disabled.
    Disabled,
    /// `KMSInvalidStateException`: e.g. pending deletion.
    InvalidState,
    /// `InvalidKeyUsageException`: the key cannot encrypt/decrypt.
    InvalidKeyUsage,
    /// `InvalidCiphertextException`: wrong encryption context or corrupted blob.
    InvalidCiphertext,
    /// `IncorrectKeyException`: the blob belongs to another key.
    IncorrectKey,
    /// `LimitExceededException`: a resource quota (not a rate; never retried).
    LimitExceeded,
    /// The credentials were rejected as expired (`ExpiredTokenException`).
    CredentialsExpired,
    /// Credentials missing, invalid or not loadable.
    Credentials,
    /// KMS answered, but with something envseal cannot accept (wrong key id,
    /// wrong key length, unparsable body).
    InvalidResponse,
    /// Anything else; the error code, if any, is in [`AwsError::code`].
    Other,
}

impl AwsErrorKind {
    /// Whether this kind is transient: the SDK retries it within the bounds.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            AwsErrorKind::Throttled
                | AwsErrorKind::Timeout(_)
                | AwsErrorKind::Connection
                | AwsErrorKind::ServerError
        )
    }

    /// Maps a KMS/AWS error code to a kind.
    pub(crate) fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            c if is_throttling_code(c) => AwsErrorKind::Throttled,
            "AccessDeniedException" | "AccessDenied" => AwsErrorKind::AccessDenied,
            "NotFoundException" | "ResourceNotFoundException" => AwsErrorKind::NotFound,
            "ConditionalCheckFailedException" | "TransactionCanceledException" => {
                AwsErrorKind::ConditionFailed
            }
            "DisabledException" => AwsErrorKind::Disabled,
            "KMSInvalidStateException" => AwsErrorKind::InvalidState,
            "InvalidKeyUsageException" => AwsErrorKind::InvalidKeyUsage,
            "InvalidCiphertextException" => AwsErrorKind::InvalidCiphertext,
            "IncorrectKeyException" => AwsErrorKind::IncorrectKey,
            "LimitExceededException" => AwsErrorKind::LimitExceeded,
            "ExpiredTokenException" | "ExpiredToken" | "RequestExpired" => AwsErrorKind::CredentialsExpired,
            "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "InvalidSignatureException"
            | "MissingAuthenticationToken"
            | "IncompleteSignature" => AwsErrorKind::Credentials,
            "KMSInternalException"
            | "DependencyTimeoutException"
            | "KeyUnavailableException"
            | "InternalFailure"
            | "ServiceUnavailable" => AwsErrorKind::ServerError,
            _ => return None,
        })
    }

    /// The kind an HTTP status alone says, when no error code does.
    pub(crate) fn from_status(status: Option<u16>) -> Self {
        match status {
            Some(429) => AwsErrorKind::Throttled,
            Some(s) if s >= 500 => AwsErrorKind::ServerError,
            _ => AwsErrorKind::Other,
        }
    }

    /// Kinds that must never be retried, whatever the SDK's classifiers say.
    pub(crate) fn forbids_retry(&self) -> bool {
        matches!(
            self,
            AwsErrorKind::AccessDenied
                | AwsErrorKind::NotFound
                | AwsErrorKind::ConditionFailed
                | AwsErrorKind::Disabled
                | AwsErrorKind::InvalidState
                | AwsErrorKind::InvalidKeyUsage
                | AwsErrorKind::InvalidCiphertext
                | AwsErrorKind::IncorrectKey
                | AwsErrorKind::LimitExceeded
                | AwsErrorKind::CredentialsExpired
                | AwsErrorKind::Credentials
        )
    }

    fn describe(&self) -> &'static str {
        match self {
            AwsErrorKind::Throttled => "throttled",
            AwsErrorKind::Timeout(TimeoutKind::Connect) => "connect timeout",
            AwsErrorKind::Timeout(TimeoutKind::Read) => "read timeout (no response headers)",
            AwsErrorKind::Timeout(TimeoutKind::Attempt) => "attempt timeout",
            AwsErrorKind::Timeout(TimeoutKind::Deadline) => "deadline exceeded",
            AwsErrorKind::Connection => "connection failed",
            AwsErrorKind::ServerError => "server error",
            AwsErrorKind::AccessDenied => "access denied",
            AwsErrorKind::NotFound => "not found",
            AwsErrorKind::ConditionFailed => "conditional write refused",
            AwsErrorKind::Disabled => "key disabled",
            AwsErrorKind::InvalidState => "key in an invalid state",
            AwsErrorKind::InvalidKeyUsage => "invalid key usage",
            AwsErrorKind::InvalidCiphertext => {
                "invalid ciphertext (wrong encryption context or corrupted key blob)"
            }
            AwsErrorKind::IncorrectKey => "incorrect key",
            AwsErrorKind::LimitExceeded => "quota exceeded",
            AwsErrorKind::CredentialsExpired => "credentials expired",
            AwsErrorKind::Credentials => "credentials rejected or unavailable",
            AwsErrorKind::InvalidResponse => "invalid response",
            AwsErrorKind::Other => "failed",
        }
    }
}

/// Error codes AWS SDKs treat as throttling. `LimitExceededException` is
/// deliberately absent: KMS uses it for resource quotas.
pub(crate) const THROTTLING_CODES: [&str; 7] = [
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
];

/// Whether `code` is one of [`THROTTLING_CODES`].
pub(crate) fn is_throttling_code(code: &str) -> bool {
    THROTTLING_CODES.contains(&code)
}

/// A failed AWS call (KMS, or DynamoDB for the branch key store), with
/// everything an operator needs to act on it.
///
/// Display gives one line naming the service, operation, key and cause,
/// e.g. `KMS GenerateDataKey arn:aws:kms:…: throttled (HTTP 429,
/// ThrottlingException) after 3 attempts in 412 ms`, or `DynamoDB GetItem
/// branch key tenant-7: not found …`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AwsError {
    /// What kind of failure.
    pub kind: AwsErrorKind,
    /// Which operation.
    pub operation: AwsOperation,
    /// The key id the call named; for DynamoDB calls, the branch key id
    /// (or the table, for table operations).
    pub key_id: String,
    /// The HTTP status of the last response, if one arrived.
    pub status: Option<u16>,
    /// The AWS error code of the last response, if any.
    pub code: Option<String>,
    /// The request id of the last response, if any.
    pub request_id: Option<String>,
    /// HTTP attempts made (0 if the deadline had already passed).
    pub attempts: u32,
    /// Time spent in the call, all attempts and backoff included.
    pub elapsed: Duration,
    /// The service's or transport's message (never key material).
    pub message: Option<String>,
    /// For a credentials failure: the provider that supplied (or failed to
    /// supply) the credentials, e.g. `EcsContainer`.
    pub credentials_provider: Option<String>,
}

impl AwsError {
    pub(crate) fn new(kind: AwsErrorKind, operation: AwsOperation, key_id: &str) -> Self {
        AwsError {
            kind,
            operation,
            key_id: key_id.to_owned(),
            status: None,
            code: None,
            request_id: None,
            attempts: 0,
            elapsed: Duration::ZERO,
            message: None,
            credentials_provider: None,
        }
    }

    pub(crate) fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Whether the failure was transient (retried up to the bounds).
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// Whether the service throttled the call.
    pub fn is_throttling(&self) -> bool {
        self.kind == AwsErrorKind::Throttled
    }

    /// Whether a timeout or the deadline ended the call.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, AwsErrorKind::Timeout(_))
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key id can come from a hostile message (discovery): no control
        // characters, bounded length, so the error stays one honest line.
        let key_id: String = self
            .key_id
            .chars()
            .filter(|c| !c.is_control())
            .take(300)
            .collect();
        let service = self.operation.service();
        let subject = match (service, self.operation) {
            (_, AwsOperation::DescribeTable | AwsOperation::CreateTable) => "table ",
            (AwsService::DynamoDb, _) => "branch key ",
            (AwsService::Kms, _) => "",
        };
        write!(
            f,
            "{} {} {subject}{}: {}",
            service.name(),
            self.operation,
            key_id,
            self.kind.describe()
        )?;
        if let Some(p) = &self.credentials_provider {
            write!(f, " (credentials from {p})")?;
        }
        match (self.status, &self.code) {
            (Some(s), Some(c)) => write!(f, " (HTTP {s}, {c})")?,
            (Some(s), None) => write!(f, " (HTTP {s})")?,
            (None, Some(c)) => write!(f, " ({c})")?,
            (None, None) => {}
        }
        let plural = if self.attempts == 1 { "" } else { "s" };
        write!(
            f,
            " after {} attempt{plural} in {} ms",
            self.attempts,
            self.elapsed.as_millis()
        )?;
        if let Some(id) = &self.request_id {
            write!(f, ", request id {id}")?;
        }
        if let Some(m) = &self.message {
            let m: String = m.chars().filter(|c| !c.is_control()).take(300).collect();
            write!(f, ": {m}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AwsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_status_and_attempts() {
        let mut e = AwsError::new(AwsErrorKind::Throttled, AwsOperation::GenerateDataKey, "key-1");
        e.status = Some(429);
        e.code = Some("ThrottlingException".into());
        e.attempts = 3;
        e.elapsed = Duration::from_millis(412);
        e.request_id = Some("req-9".into());
        e.message = Some("Rate exceeded\nsecond line".into());
        let s = e.to_string();
        assert_eq!(
            s,
            "KMS GenerateDataKey key-1: throttled (HTTP 429, ThrottlingException) after 3 attempts in 412 ms, \
             request id req-9: Rate exceededsecond line"
        );
        assert!(e.is_throttling() && e.is_retryable() && !e.is_timeout());
    }

    #[test]
    fn display_strips_control_characters_from_hostile_key_ids() {
        let e = AwsError::new(
            AwsErrorKind::AccessDenied,
            AwsOperation::Decrypt,
            "arn:aws:kms:r:1:key/x\n\u{1b}[2Jforged line",
        );
        let s = e.to_string();
        assert!(!s.chars().any(char::is_control), "{s:?}");
        assert!(s.contains("key/x[2Jforged line"), "{s}");
    }

    #[test]
    fn codes_map_to_kinds_and_retry_rules() {
        assert_eq!(
            AwsErrorKind::from_code("ThrottlingException"),
            Some(AwsErrorKind::Throttled)
        );
        assert_eq!(
            AwsErrorKind::from_code("LimitExceededException"),
            Some(AwsErrorKind::LimitExceeded)
        );
        assert!(AwsErrorKind::LimitExceeded.forbids_retry());
        assert!(!is_throttling_code("LimitExceededException"));
        for code in [
            "AccessDeniedException",
            "NotFoundException",
            "DisabledException",
            "InvalidCiphertextException",
            "IncorrectKeyException",
            "InvalidKeyUsageException",
            "ExpiredTokenException",
        ] {
            let kind = AwsErrorKind::from_code(code).unwrap();
            assert!(kind.forbids_retry() && !kind.is_retryable(), "{code}");
        }
        let internal = AwsErrorKind::from_code("KMSInternalException").unwrap();
        assert!(internal.is_retryable() && !internal.forbids_retry());
        assert_eq!(AwsErrorKind::from_code("SomethingNew"), None);
    }
}
