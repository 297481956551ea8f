//! Typed errors of the AWS calls envseal makes (KMS, and DynamoDB for the
//! branch key store): what failed, how, and what the caller can do about it.

use std::fmt;
use std::time::Duration;

/// The operation a call made: a KMS operation, or a DynamoDB one of the
/// branch key store (see [`KmsOperation::service`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KmsOperation {
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

impl KmsOperation {
    /// Every operation, in the order of the call counters.
    pub(crate) const ALL: [KmsOperation; 12] = [
        KmsOperation::GenerateDataKey,
        KmsOperation::Encrypt,
        KmsOperation::Decrypt,
        KmsOperation::DescribeKey,
        KmsOperation::GenerateDataKeyWithoutPlaintext,
        KmsOperation::ReEncrypt,
        KmsOperation::GetPublicKey,
        KmsOperation::DeriveSharedSecret,
        KmsOperation::GetItem,
        KmsOperation::TransactWriteItems,
        KmsOperation::DescribeTable,
        KmsOperation::CreateTable,
    ];

    /// The API name, as in AWS's documentation and CloudTrail.
    pub fn name(self) -> &'static str {
        match self {
            KmsOperation::GenerateDataKey => "GenerateDataKey",
            KmsOperation::Encrypt => "Encrypt",
            KmsOperation::Decrypt => "Decrypt",
            KmsOperation::DescribeKey => "DescribeKey",
            KmsOperation::GenerateDataKeyWithoutPlaintext => "GenerateDataKeyWithoutPlaintext",
            KmsOperation::ReEncrypt => "ReEncrypt",
            KmsOperation::GetPublicKey => "GetPublicKey",
            KmsOperation::DeriveSharedSecret => "DeriveSharedSecret",
            KmsOperation::GetItem => "GetItem",
            KmsOperation::TransactWriteItems => "TransactWriteItems",
            KmsOperation::DescribeTable => "DescribeTable",
            KmsOperation::CreateTable => "CreateTable",
        }
    }

    /// The service the operation belongs to.
    pub fn service(self) -> AwsService {
        match self {
            KmsOperation::GetItem
            | KmsOperation::TransactWriteItems
            | KmsOperation::DescribeTable
            | KmsOperation::CreateTable => AwsService::DynamoDb,
            _ => AwsService::Kms,
        }
    }

    /// The index of the operation's call counter.
    pub(crate) fn index(self) -> usize {
        Self::ALL.iter().position(|o| *o == self).unwrap_or(0)
    }
}

impl fmt::Display for KmsOperation {
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
pub enum KmsErrorKind {
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
    /// Anything else; the error code, if any, is in [`KmsError::code`].
    Other,
}

impl KmsErrorKind {
    /// Whether this kind is transient: the SDK retries it within the bounds.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            KmsErrorKind::Throttled
                | KmsErrorKind::Timeout(_)
                | KmsErrorKind::Connection
                | KmsErrorKind::ServerError
        )
    }

    /// Maps a KMS/AWS error code to a kind.
    pub(crate) fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            c if is_throttling_code(c) => KmsErrorKind::Throttled,
            "AccessDeniedException" | "AccessDenied" => KmsErrorKind::AccessDenied,
            "NotFoundException" | "ResourceNotFoundException" => KmsErrorKind::NotFound,
            "ConditionalCheckFailedException" | "TransactionCanceledException" => {
                KmsErrorKind::ConditionFailed
            }
            "DisabledException" => KmsErrorKind::Disabled,
            "KMSInvalidStateException" => KmsErrorKind::InvalidState,
            "InvalidKeyUsageException" => KmsErrorKind::InvalidKeyUsage,
            "InvalidCiphertextException" => KmsErrorKind::InvalidCiphertext,
            "IncorrectKeyException" => KmsErrorKind::IncorrectKey,
            "LimitExceededException" => KmsErrorKind::LimitExceeded,
            "ExpiredTokenException" | "ExpiredToken" | "RequestExpired" => KmsErrorKind::CredentialsExpired,
            "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "InvalidSignatureException"
            | "MissingAuthenticationToken"
            | "IncompleteSignature" => KmsErrorKind::Credentials,
            "KMSInternalException"
            | "DependencyTimeoutException"
            | "KeyUnavailableException"
            | "InternalFailure"
            | "ServiceUnavailable" => KmsErrorKind::ServerError,
            _ => return None,
        })
    }

    /// The kind an HTTP status alone says, when no error code does.
    pub(crate) fn from_status(status: Option<u16>) -> Self {
        match status {
            Some(429) => KmsErrorKind::Throttled,
            Some(s) if s >= 500 => KmsErrorKind::ServerError,
            _ => KmsErrorKind::Other,
        }
    }

    /// Kinds that must never be retried, whatever the SDK's classifiers say.
    pub(crate) fn forbids_retry(&self) -> bool {
        matches!(
            self,
            KmsErrorKind::AccessDenied
                | KmsErrorKind::NotFound
                | KmsErrorKind::ConditionFailed
                | KmsErrorKind::Disabled
                | KmsErrorKind::InvalidState
                | KmsErrorKind::InvalidKeyUsage
                | KmsErrorKind::InvalidCiphertext
                | KmsErrorKind::IncorrectKey
                | KmsErrorKind::LimitExceeded
                | KmsErrorKind::CredentialsExpired
                | KmsErrorKind::Credentials
        )
    }

    fn describe(&self) -> &'static str {
        match self {
            KmsErrorKind::Throttled => "throttled",
            KmsErrorKind::Timeout(TimeoutKind::Connect) => "connect timeout",
            KmsErrorKind::Timeout(TimeoutKind::Read) => "read timeout (no response headers)",
            KmsErrorKind::Timeout(TimeoutKind::Attempt) => "attempt timeout",
            KmsErrorKind::Timeout(TimeoutKind::Deadline) => "deadline exceeded",
            KmsErrorKind::Connection => "connection failed",
            KmsErrorKind::ServerError => "server error",
            KmsErrorKind::AccessDenied => "access denied",
            KmsErrorKind::NotFound => "not found",
            KmsErrorKind::ConditionFailed => "conditional write refused",
            KmsErrorKind::Disabled => "key disabled",
            KmsErrorKind::InvalidState => "key in an invalid state",
            KmsErrorKind::InvalidKeyUsage => "invalid key usage",
            KmsErrorKind::InvalidCiphertext => {
                "invalid ciphertext (wrong encryption context or corrupted key blob)"
            }
            KmsErrorKind::IncorrectKey => "incorrect key",
            KmsErrorKind::LimitExceeded => "quota exceeded",
            KmsErrorKind::CredentialsExpired => "credentials expired",
            KmsErrorKind::Credentials => "credentials rejected or unavailable",
            KmsErrorKind::InvalidResponse => "invalid response",
            KmsErrorKind::Other => "failed",
        }
    }
}

/// Error codes AWS SDKs treat as throttling. `LimitExceededException` is
/// deliberately absent: KMS uses it for resource quotas.
pub(crate) fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "ThrottlingException"
            | "Throttling"
            | "ThrottledException"
            | "RequestThrottledException"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "ProvisionedThroughputExceededException"
    )
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
pub struct KmsError {
    /// What kind of failure.
    pub kind: KmsErrorKind,
    /// Which operation.
    pub operation: KmsOperation,
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

impl KmsError {
    pub(crate) fn new(kind: KmsErrorKind, operation: KmsOperation, key_id: &str) -> Self {
        KmsError {
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
        self.kind == KmsErrorKind::Throttled
    }

    /// Whether a timeout or the deadline ended the call.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, KmsErrorKind::Timeout(_))
    }
}

impl fmt::Display for KmsError {
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
            (_, KmsOperation::DescribeTable | KmsOperation::CreateTable) => "table ",
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

impl std::error::Error for KmsError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_status_and_attempts() {
        let mut e = KmsError::new(KmsErrorKind::Throttled, KmsOperation::GenerateDataKey, "key-1");
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
        let e = KmsError::new(
            KmsErrorKind::AccessDenied,
            KmsOperation::Decrypt,
            "arn:aws:kms:r:1:key/x\n\u{1b}[2Jforged line",
        );
        let s = e.to_string();
        assert!(!s.chars().any(char::is_control), "{s:?}");
        assert!(s.contains("key/x[2Jforged line"), "{s}");
    }

    #[test]
    fn codes_map_to_kinds_and_retry_rules() {
        assert_eq!(
            KmsErrorKind::from_code("ThrottlingException"),
            Some(KmsErrorKind::Throttled)
        );
        assert_eq!(
            KmsErrorKind::from_code("LimitExceededException"),
            Some(KmsErrorKind::LimitExceeded)
        );
        assert!(KmsErrorKind::LimitExceeded.forbids_retry());
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
            let kind = KmsErrorKind::from_code(code).unwrap();
            assert!(kind.forbids_retry() && !kind.is_retryable(), "{code}");
        }
        let internal = KmsErrorKind::from_code("KMSInternalException").unwrap();
        assert!(internal.is_retryable() && !internal.forbids_retry());
        assert_eq!(KmsErrorKind::from_code("SomethingNew"), None);
    }
}
