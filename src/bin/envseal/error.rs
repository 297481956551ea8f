//! CLI failures, as rage has them (`rage/src/bin/rage/error.rs`): each
//! kind of failure is a variant with its exit code (2 for the command
//! line, 1 otherwise) and, where it helps, a hint saying what to do next.
//! `main` prints the message as `envseal: <message>` on one line, then the
//! hint as `hint: <hint>` on the next.
//!
//! Library errors are sorted into kinds by their variants and, for AWS,
//! by [`AwsErrorKind`] and service; never by their text.

use std::fmt;
use std::path::PathBuf;

use envseal::kms::{AwsError, AwsErrorKind, AwsService};
use envseal::{EncryptionContext, Error, PolicyError};

/// What went wrong: the kind decides the exit code and the hint, the
/// text is the line after `envseal: `.
#[derive(Debug)]
pub(crate) enum Failure {
    /// clap refused the command line (exit 2); `command` is the
    /// (sub)command it was for, when one was named.
    Args {
        /// clap's message.
        message: String,
        /// e.g. `encrypt` or `key-store create-key`.
        command: Option<String>,
    },
    /// Options that do not go together, or a setting the library refused
    /// (exit 2). The message says what to change.
    Usage(String),
    /// An option needs a feature this envseal was built without (exit 2).
    #[cfg_attr(all(feature = "kms", feature = "hierarchy"), allow(dead_code))]
    NotBuilt(Feature),
    /// An input cannot be opened or read.
    UnreadableInput(String),
    /// The output file exists and `--force` was not given.
    OutputExists(PathBuf),
    /// The output names no place a message can go (a directory, the
    /// input, another input's output).
    BadOutput(String),
    /// The output (or its temporary file, or `--metadata-output`) cannot
    /// be created or written.
    UnwritableOutput(String),
    /// A key file cannot be read or holds no key its option can use.
    BadKey(String),
    /// The input is not a well-formed message, or it ended before it
    /// verified.
    Malformed(String),
    /// The message exceeds a configured limit (decrypt).
    TooLarge(String),
    /// The input outgrew the message being written (encrypt): it grew
    /// while it was read, a non-framed message's limit, or more data keys
    /// than `--max-encrypted-data-keys`.
    EncryptLimit(String),
    /// None of the keys given unwraps any of the message's data keys.
    NoMatchingKey(String),
    /// A cryptographic check failed: the message was changed, or the
    /// encryption context given differs.
    AuthenticationFailed(String),
    /// A policy refused the message.
    Refused(Refusal, String),
    /// An AWS call failed.
    Aws(AwsFailure, String),
    /// The branch key store lacks or refused what was asked for.
    KeyStore(StoreFailure, String),
    /// Files of a many-file run failed (each named on its own line).
    SomeFailed(String),
    /// `envseal doctor` found a failing step (printed on stdout).
    #[cfg_attr(not(feature = "kms"), allow(dead_code))]
    Doctor(String),
    /// Any other failure (a keyring, the crypto backend, the system).
    Failed(String),
    /// Should not happen: a bug in envseal.
    Internal(String),
}

/// A cargo feature an option needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(all(feature = "kms", feature = "hierarchy"), allow(dead_code))]
pub(crate) enum Feature {
    /// `kms`: the AWS KMS keyrings and `envseal doctor`.
    #[cfg_attr(feature = "kms", allow(dead_code))]
    Kms,
    /// `hierarchy`: the AWS KMS Hierarchical keyring and `envseal key-store`.
    #[cfg_attr(feature = "hierarchy", allow(dead_code))]
    Hierarchy,
    /// `fips`: AWS-LC-FIPS and the FIPS TLS provider (`--fips`).
    #[cfg_attr(feature = "fips", allow(dead_code))]
    Fips,
}

/// Which policy refused a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The suite breaks the commitment policy.
    Commitment,
    /// The message is signed and signed messages are not decrypted here
    /// (`--decrypt-unsigned`).
    Signed,
    /// A `--context` pair differs from the message's.
    Context,
    /// A required encryption context key was not given.
    RequiredContext,
    /// The context's public key does not match the suite.
    PublicKey,
    /// A policy this envseal has no hint for.
    Other,
}

/// What kind of AWS failure (from [`AwsErrorKind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AwsFailure {
    /// The service throttled the requests.
    Throttled,
    /// The credentials lack a permission.
    AccessDenied,
    /// No answer in time, no connection, or a failure on AWS's side.
    Unavailable,
    /// Credentials missing, invalid or expired.
    Credentials,
    /// The KMS key is missing, disabled, of the wrong usage, or not the
    /// one that wrapped the data key.
    Key,
    /// Anything else.
    Other,
}

/// What the branch key store reported (a DynamoDB failure that is not
/// one of the [`AwsFailure`]s every service shares).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoreFailure {
    /// No such table or branch key (version).
    NotFound,
    /// A conditional write was refused: the key exists, or it changed.
    Conflict,
    /// An item does not have the key store's format.
    Invalid,
    /// Anything else.
    Other,
}

impl Feature {
    fn describe(self) -> &'static str {
        match self {
            Feature::Kms => "AWS KMS support (feature kms)",
            Feature::Hierarchy => "the AWS KMS Hierarchical keyring (feature hierarchy)",
            Feature::Fips => "FIPS 140-3 support (feature fips)",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Feature::Kms => "kms",
            Feature::Hierarchy => "hierarchy",
            Feature::Fips => "fips",
        }
    }
}

impl Failure {
    /// The process's exit code: 2 for the command line, 1 otherwise.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Failure::Args { .. } | Failure::Usage(_) | Failure::NotBuilt(_) => 2,
            _ => 1,
        }
    }

    /// What the operator can do next, when the message alone does not say.
    pub(crate) fn hint(&self) -> Option<String> {
        let hint = match self {
            Failure::Args { command: None, .. } => "`envseal --help` lists the commands",
            Failure::Args {
                command: Some(c), ..
            } => return Some(format!("`envseal {c} --help` lists its options")),
            Failure::NotBuilt(f) => {
                return Some(format!(
                    "use an envseal built with the feature (cargo install envseal --features {})",
                    f.name()
                ))
            }
            Failure::UnreadableInput(_) => "check that the path exists and is readable (- reads stdin)",
            Failure::OutputExists(_) => "pass --force to replace it, or name another --output",
            Failure::BadOutput(_) => "name another --output",
            Failure::UnwritableOutput(_) => {
                "check that the output's directory exists, is writable and has room \
                 (the output is written to a temporary file beside it, then renamed)"
            }
            Failure::BadKey(_) => {
                "check the key file's path and format (`envseal encrypt --help` describes each key option's file)"
            }
            Failure::Malformed(_) => {
                "the input is not a whole AWS Encryption SDK message (base64 text needs --decode)"
            }
            Failure::TooLarge(_) => {
                "if the sender is trusted, raise the limit (--max-header-size, --max-frame-length, \
                 --max-body-size or --max-encrypted-data-keys)"
            }
            Failure::EncryptLimit(_) => {
                "encrypt a file that does not change while it is read, keep framing on (--frame-length \
                 above 0) for large inputs, or give fewer keys than --max-encrypted-data-keys"
            }
            Failure::NoMatchingKey(_) => {
                "decrypt with a key the message was encrypted for: `envseal inspect` lists its data keys \
                 (a raw key's namespace and name must match too)"
            }
            Failure::AuthenticationFailed(_) => {
                "the message was changed or damaged, or its encryption context differs: check --context \
                 (`envseal inspect` shows the pairs the message stores)"
            }
            Failure::Refused(Refusal::Commitment, _) => {
                "`envseal inspect` shows the message's suite; allow suites without key commitment only \
                 for messages from a trusted sender"
            }
            Failure::Refused(Refusal::Signed, _) => {
                "drop --decrypt-unsigned to decrypt signed messages (output is released once the \
                 signature verifies)"
            }
            Failure::Refused(Refusal::Context, _) => {
                "give --context the pairs the message was encrypted with (`envseal inspect` shows the stored ones)"
            }
            Failure::Refused(Refusal::RequiredContext, _) => "give the required key's pair with --context KEY=VALUE",
            Failure::Aws(AwsFailure::Throttled, _) => {
                "AWS is throttling this account: retry later, allow more time (--kms-max-attempts, \
                 --kms-deadline-ms), or reuse data keys (--cache-max-age-s)"
            }
            Failure::Aws(AwsFailure::AccessDenied, _) => {
                "the AWS identity in use lacks permission for this key or call \
                 (`envseal doctor` shows which identity it is)"
            }
            Failure::Aws(AwsFailure::Unavailable, _) => {
                "check the network, --region and the endpoint, or retry later; a slow link needs larger \
                 --kms-attempt-timeout-ms and --kms-deadline-ms (`envseal doctor` tests the connection)"
            }
            Failure::Aws(AwsFailure::Credentials, _) => {
                "set up or refresh AWS credentials (environment, profile, SSO login or role); \
                 `envseal doctor` shows where they come from"
            }
            Failure::Aws(AwsFailure::Key, _) => {
                "check the key's ARN and region, that the key is enabled, and that its key usage fits \
                 the keyring (ENCRYPT_DECRYPT; KEY_AGREEMENT for ECDH)"
            }
            Failure::KeyStore(StoreFailure::NotFound, _) => {
                "check --key-store-table, --region and the branch key id \
                 (`envseal key-store create-table` and `create-key` make them)"
            }
            Failure::KeyStore(StoreFailure::Conflict, _) => {
                "the branch key already exists or changed meanwhile: choose another --branch-key-id, \
                 or retry"
            }
            Failure::KeyStore(StoreFailure::Invalid, _) => {
                "check that --key-store-table is a branch key store and --key-store-kms-key its KMS key"
            }
            Failure::Internal(_) => "this is a bug in envseal: please report it with the command line",
            Failure::Usage(_)
            | Failure::Refused(Refusal::PublicKey | Refusal::Other, _)
            | Failure::Aws(AwsFailure::Other, _)
            | Failure::KeyStore(StoreFailure::Other, _)
            | Failure::SomeFailed(_)
            | Failure::Doctor(_)
            | Failure::Failed(_) => return None,
        };
        Some(hint.to_owned())
    }

    /// The kind of failure `e` is, with `message` as its text (`e`'s own
    /// text, or that with a prefix naming the option).
    pub(crate) fn of(e: &Error, message: String) -> Self {
        match e {
            Error::Decrypt => Failure::AuthenticationFailed(message),
            Error::Keyrings(all) if all.iter().any(|f| matches!(f, Error::Decrypt)) => {
                Failure::AuthenticationFailed(message)
            }
            Error::Keyrings(all) => {
                // One kind for all the attempts (every KMS key throttled,
                // say) is that kind; a mix is a plain failure.
                let kinds: Vec<Failure> = all.iter().map(|f| Failure::of(f, String::new())).collect();
                match kinds.split_first() {
                    Some((first, rest)) if rest.iter().all(|k| first.same_kind(k)) => {
                        first.with_message(message)
                    }
                    _ => Failure::Failed(message),
                }
            }
            Error::NoMatchingKey { .. } => Failure::NoMatchingKey(message),
            Error::Format(_) => Failure::Malformed(message),
            Error::Limit(_) => Failure::TooLarge(message),
            Error::Policy(p) => Failure::Refused(refusal(p), message),
            Error::Aws(k) => aws(k, message),
            Error::Config { .. } | Error::Fips(_) => Failure::Usage(message),
            Error::Misuse(_) | Error::Internal(_) => Failure::Internal(message),
            _ => Failure::Failed(message),
        }
    }

    /// The same kind with another text.
    fn with_message(&self, message: String) -> Self {
        match self {
            Failure::Refused(r, _) => Failure::Refused(*r, message),
            Failure::Aws(a, _) => Failure::Aws(*a, message),
            Failure::KeyStore(s, _) => Failure::KeyStore(*s, message),
            Failure::AuthenticationFailed(_) => Failure::AuthenticationFailed(message),
            Failure::NoMatchingKey(_) => Failure::NoMatchingKey(message),
            Failure::Malformed(_) => Failure::Malformed(message),
            Failure::TooLarge(_) => Failure::TooLarge(message),
            Failure::EncryptLimit(_) => Failure::EncryptLimit(message),
            Failure::Usage(_) => Failure::Usage(message),
            Failure::Internal(_) => Failure::Internal(message),
            _ => Failure::Failed(message),
        }
    }

    /// Whether `self` and `other` are the same kind (the same hint).
    fn same_kind(&self, other: &Failure) -> bool {
        match (self, other) {
            (Failure::Refused(a, _), Failure::Refused(b, _)) => a == b,
            (Failure::Aws(a, _), Failure::Aws(b, _)) => a == b,
            (Failure::KeyStore(a, _), Failure::KeyStore(b, _)) => a == b,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

fn refusal(p: &PolicyError) -> Refusal {
    match p {
        PolicyError::CommitmentPolicy { .. } => Refusal::Commitment,
        PolicyError::SignedStreaming(_) => Refusal::Signed,
        PolicyError::ContextMismatch(_) => Refusal::Context,
        PolicyError::RequiredContextKey(_) => Refusal::RequiredContext,
        PolicyError::PublicKeyMismatch => Refusal::PublicKey,
        _ => Refusal::Other,
    }
}

/// An AWS failure by its kind; a DynamoDB one that is about the key
/// store's contents is a key store failure.
fn aws(k: &AwsError, message: String) -> Failure {
    let shared = match k.kind {
        AwsErrorKind::Throttled => Some(AwsFailure::Throttled),
        AwsErrorKind::AccessDenied => Some(AwsFailure::AccessDenied),
        AwsErrorKind::Timeout(_) | AwsErrorKind::Connection | AwsErrorKind::ServerError => {
            Some(AwsFailure::Unavailable)
        }
        AwsErrorKind::Credentials | AwsErrorKind::CredentialsExpired => Some(AwsFailure::Credentials),
        _ => None,
    };
    if let Some(a) = shared {
        return Failure::Aws(a, message);
    }
    if k.operation.service() == AwsService::DynamoDb {
        let store = match k.kind {
            AwsErrorKind::NotFound => StoreFailure::NotFound,
            AwsErrorKind::ConditionFailed => StoreFailure::Conflict,
            AwsErrorKind::InvalidResponse => StoreFailure::Invalid,
            _ => StoreFailure::Other,
        };
        return Failure::KeyStore(store, message);
    }
    match k.kind {
        AwsErrorKind::NotFound
        | AwsErrorKind::Disabled
        | AwsErrorKind::InvalidState
        | AwsErrorKind::InvalidKeyUsage
        | AwsErrorKind::IncorrectKey => Failure::Aws(AwsFailure::Key, message),
        // KMS could not decrypt the data key as given: a changed message or
        // an encryption context that differs, as a failed check locally.
        AwsErrorKind::InvalidCiphertext => Failure::AuthenticationFailed(message),
        _ => Failure::Aws(AwsFailure::Other, message),
    }
}

impl fmt::Display for Failure {
    /// The message: one line once [`one_line`] has run over it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NotBuilt(feature) => write!(f, "this envseal was built without {}", feature.describe()),
            Failure::OutputExists(path) => write!(
                f,
                "output file {} already exists (use --force to overwrite)",
                path.display()
            ),
            Failure::Args { message: m, .. }
            | Failure::Usage(m)
            | Failure::UnreadableInput(m)
            | Failure::BadOutput(m)
            | Failure::UnwritableOutput(m)
            | Failure::BadKey(m)
            | Failure::Malformed(m)
            | Failure::TooLarge(m)
            | Failure::EncryptLimit(m)
            | Failure::NoMatchingKey(m)
            | Failure::AuthenticationFailed(m)
            | Failure::Refused(_, m)
            | Failure::Aws(_, m)
            | Failure::KeyStore(_, m)
            | Failure::SomeFailed(m)
            | Failure::Doctor(m)
            | Failure::Failed(m)
            | Failure::Internal(m) => f.write_str(m),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        Failure::of(&e, message)
    }
}

/// Replaces control characters (newlines included) so a message stays on one line.
pub(crate) fn one_line(msg: &str) -> String {
    let s: String = msg
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    s.trim().to_owned()
}

/// Reduces a clap error to one line: its first line without `error: `, plus
/// the indented list that follows when the first line ends with a colon
/// (e.g. the missing required arguments).
pub(crate) fn clap_one_line(err: &clap::Error) -> String {
    let text = err.to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first).trim_end();
    if first.ends_with(':') {
        let items: Vec<&str> = lines
            .take_while(|l| l.starts_with(' ') && !l.trim().is_empty())
            .map(str::trim)
            .collect();
        if !items.is_empty() {
            return format!("{first} {}", items.join(", "));
        }
    }
    first.to_owned()
}

/// An error's message for the one line: an invalid setting reads as its
/// reason (which names it), every other error as its `Display`.
pub(crate) fn bare(e: &Error) -> String {
    match e {
        Error::Config { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// A setting the library refused is a usage error (its reason, which
/// names it); any other error is the kind it is.
pub(crate) fn setting_error(e: Error) -> Failure {
    match e {
        Error::Config { .. } => Failure::Usage(bare(&e)),
        other => Failure::from(other),
    }
}

/// An error while a message is being written: a setting the library
/// refused or a context it cannot store is a usage error, a limit is the
/// encrypt side's, anything else the kind it is.
pub(crate) fn encrypt_error(e: Error) -> Failure {
    match e {
        // The only bytes encrypt formats from the caller: the context.
        Error::Format(_) => Failure::Usage(format!("--context: {e}")),
        Error::Limit(_) => Failure::EncryptLimit(e.to_string()),
        other => setting_error(other),
    }
}

/// Errors from the library while writing a message: envseal errors as
/// [`encrypt_error`], plain I/O errors say which side failed.
pub(crate) fn encrypt_stream_error(e: std::io::Error, side: &str) -> Failure {
    match Error::from_io(e) {
        Error::Io(io) => Failure::UnwritableOutput(format!("{side}: {io}")),
        other => encrypt_error(other),
    }
}

/// A configuration the library refused: a usage error, with a hint for a
/// suite the commitment policy forbids.
pub(crate) fn config_error(e: Error) -> Failure {
    match e {
        Error::Policy(PolicyError::CommitmentPolicy { .. }) => Failure::Usage(format!(
            "{e} (non-committing suites need --commitment-policy forbid-encrypt-allow-decrypt; \
             committing suites need a require-encrypt policy)"
        )),
        other => Failure::Usage(bare(&other)),
    }
}

/// Context keys the caller gave that the message does not store.
pub(crate) fn unstored_keys(given: &EncryptionContext, stored: &EncryptionContext) -> Vec<String> {
    given
        .iter()
        .filter(|(k, _)| !stored.contains_key(k))
        .map(|(k, _)| k.to_owned())
        .collect()
}

/// Adds hints to decrypt failures whose library message is deliberately terse.
pub(crate) fn decrypt_error(e: Error, unstored: &[String], namespaces: &[String]) -> Failure {
    let context_hint = |base: String| -> String {
        match unstored.first() {
            Some(k) => format!(
                "{base} (the message does not store context key {k:?}; a wrong or extra --context pair fails authentication)"
            ),
            None => base,
        }
    };
    match e {
        Error::Decrypt => Failure::AuthenticationFailed(context_hint(e.to_string())),
        Error::Keyrings(ref all) if all.iter().any(|f| matches!(f, Error::Decrypt)) => {
            Failure::AuthenticationFailed(context_hint(e.to_string()))
        }
        Error::NoMatchingKey { .. } => {
            let mut msg = e.to_string();
            if !namespaces.is_empty() && unstored.is_empty() {
                msg.push_str(&format!(" (its data keys are wrapped under namespace(s) {})", namespaces.join(", ")));
            }
            Failure::NoMatchingKey(context_hint(msg))
        }
        Error::Policy(PolicyError::CommitmentPolicy { .. }) => Failure::Refused(
            Refusal::Commitment,
            format!(
                "{e} (to read messages written without key commitment, pass --commitment-policy require-encrypt-allow-decrypt)"
            ),
        ),
        // Base64 the decoder refused (--decode): not a message.
        Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            Failure::Malformed(format!("--decode: the input is not base64: {io}"))
        }
        Error::Io(io) => Failure::UnreadableInput(format!("reading input: {io}")),
        other => Failure::from(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kinds the snapshots cannot reach (a feature left out, a bug) keep
    /// their exit code and hint; library errors are sorted by variant.
    #[test]
    fn kinds_have_their_codes_hints_and_sources() {
        let not_built = Failure::NotBuilt(Feature::Hierarchy);
        assert_eq!(not_built.exit_code(), 2);
        assert_eq!(
            not_built.to_string(),
            "this envseal was built without the AWS KMS Hierarchical keyring (feature hierarchy)"
        );
        assert_eq!(
            not_built.hint().as_deref(),
            Some("use an envseal built with the feature (cargo install envseal --features hierarchy)")
        );
        let internal = Failure::from(Error::Internal("x"));
        assert!(matches!(internal, Failure::Internal(_)));
        assert_eq!(internal.exit_code(), 1);
        assert!(internal.hint().is_some_and(|h| h.contains("bug")));
        assert!(Failure::Failed("x".into()).hint().is_none());

        let auth = Failure::from(Error::Keyrings(vec![Error::Poisoned, Error::Decrypt]));
        assert!(matches!(auth, Failure::AuthenticationFailed(_)));
        let mixed = Failure::from(Error::Keyrings(vec![
            Error::Poisoned,
            Error::NoMatchingKey { edks: 1 },
        ]));
        assert!(matches!(mixed, Failure::Failed(_)));
        let same = Failure::from(Error::Keyrings(vec![
            Error::NoMatchingKey { edks: 1 },
            Error::NoMatchingKey { edks: 2 },
        ]));
        assert!(matches!(same, Failure::NoMatchingKey(_)));
        let refused = Failure::from(Error::Policy(PolicyError::RequiredContextKey("k".into())));
        assert!(matches!(refused, Failure::Refused(Refusal::RequiredContext, _)));
        assert_eq!(refused.exit_code(), 1);
        let setting = setting_error(Error::Config {
            setting: "s",
            reason: "the reason".into(),
        });
        assert!(matches!(&setting, Failure::Usage(m) if m == "the reason"));
        assert_eq!(setting.exit_code(), 2);

        // Encrypt formats only the caller's context: a format error there
        // is the command line's, not a malformed message.
        let context = encrypt_error(Error::Format(envseal::FormatError::Truncated("context")));
        assert!(matches!(&context, Failure::Usage(m) if m.starts_with("--context: ")));
        assert_eq!(context.exit_code(), 2);
        let public = Failure::from(Error::Policy(PolicyError::PublicKeyMismatch));
        assert!(matches!(public, Failure::Refused(Refusal::PublicKey, _)));
    }
}
