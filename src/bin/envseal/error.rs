//! CLI failures: one line on stderr and an exit code (2 for usage, 1
//! otherwise), with a hint where the library's message is terse. Matches
//! on the library's error types, never on their text.

use std::io;

use envseal::{EncryptionContext, Error, PolicyError};

/// What went wrong, and which exit code it gets.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad command line or option combination: exit 2.
    Usage(String),
    /// Anything else: exit 1.
    Runtime(String),
}

impl Failure {
    pub(crate) fn runtime(msg: impl Into<String>) -> Self {
        Failure::Runtime(msg.into())
    }

    pub(crate) fn usage(msg: impl Into<String>) -> Self {
        Failure::Usage(msg.into())
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Runtime(e.to_string())
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

/// A configuration the library refused: a usage error, with a hint for a
/// suite the commitment policy forbids.
pub(crate) fn config_error(e: Error) -> Failure {
    match e {
        Error::Policy(PolicyError::CommitmentPolicy { .. }) => Failure::usage(format!(
            "{e} (non-committing suites need --commitment-policy forbid-encrypt-allow-decrypt; \
             committing suites need a require-encrypt policy)"
        )),
        other => Failure::usage(bare(&other)),
    }
}

/// Errors from the library while streaming: envseal errors keep their
/// message, plain I/O errors say which side failed.
pub(crate) fn stream_error(e: io::Error, side: &str) -> Failure {
    match Error::from_io(e) {
        Error::Io(io) => Failure::runtime(format!("{side}: {io}")),
        other => Failure::runtime(other.to_string()),
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
        Error::Decrypt => Failure::runtime(context_hint(e.to_string())),
        Error::Keyrings(ref all) if all.iter().any(|f| matches!(f, Error::Decrypt)) => {
            Failure::runtime(context_hint(e.to_string()))
        }
        Error::NoMatchingKey { .. } => {
            let mut msg = e.to_string();
            if !namespaces.is_empty() && unstored.is_empty() {
                msg.push_str(&format!(" (its data keys are wrapped under namespace(s) {})", namespaces.join(", ")));
            }
            Failure::runtime(context_hint(msg))
        }
        Error::Policy(PolicyError::CommitmentPolicy { .. }) => Failure::runtime(format!(
            "{e} (to read messages written without key commitment, pass --commitment-policy require-encrypt-allow-decrypt)"
        )),
        Error::Io(io) => Failure::runtime(format!("reading input: {io}")),
        other => Failure::from(other),
    }
}
