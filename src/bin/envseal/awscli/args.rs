//! aws-encryption-cli 4.3's argument language, parsed as its argparse
//! parser parses it: long options by unique prefix (`--wrap`), `--opt=v`,
//! clustered short flags (`-eS`, `-vv`), attached short values (`-ifile`,
//! `-wkey=...`), options that take one or more values (`-w`, `-c`,
//! `--caching`), `--suffix` with or without a value, options that may be
//! given once, the two required groups, and then the CLI's own checks of
//! `-w`, `-c` and `--caching`. A usage error is exit 2, as argparse's.
// Without the `kms` feature the drop-in stops after parsing (its keys are
// KMS keys), so the later checks go unused.
#![cfg_attr(not(feature = "kms"), allow(dead_code))]

use std::collections::BTreeMap;

/// What the run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Encrypt,
    Decrypt,
    DecryptUnsigned,
}

impl Action {
    /// The mode as metadata lines name it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Action::Encrypt => "encrypt",
            Action::Decrypt => "decrypt",
            Action::DecryptUnsigned => "decrypt-unsigned",
        }
    }
}

/// One `-w` group: a KMS key provider's keys and settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct WrappingKeys {
    pub(crate) keys: Vec<String>,
    pub(crate) region: Option<String>,
    pub(crate) profile: Option<String>,
    pub(crate) discovery: bool,
    pub(crate) accounts: Vec<String>,
    pub(crate) partition: Option<String>,
}

/// `--caching`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Caching {
    pub(crate) capacity: String,
    pub(crate) max_age: String,
    pub(crate) max_messages_encrypted: Option<String>,
    pub(crate) max_bytes_encrypted: Option<String>,
}

/// A parsed command line.
#[derive(Clone, Debug, Default)]
pub(crate) struct AwsCliArgs {
    pub(crate) action: Option<Action>,
    pub(crate) suppress_metadata: bool,
    pub(crate) metadata_output: Option<String>,
    pub(crate) overwrite_metadata: bool,
    /// Each `-w` as given (`key=value` words).
    pub(crate) wrapping_keys: Vec<Vec<String>>,
    pub(crate) commitment_policy: Option<String>,
    pub(crate) caching: Option<Vec<String>>,
    pub(crate) buffer: bool,
    pub(crate) input: Option<String>,
    pub(crate) output: Option<String>,
    pub(crate) encode: bool,
    pub(crate) decode: bool,
    pub(crate) encryption_context: Option<Vec<String>>,
    pub(crate) algorithm: Option<String>,
    pub(crate) frame_length: Option<i64>,
    pub(crate) max_length: Option<i64>,
    pub(crate) max_encrypted_data_keys: Option<i64>,
    pub(crate) suffix: Option<String>,
    pub(crate) interactive: bool,
    pub(crate) no_overwrite: bool,
    pub(crate) recursive: bool,
    pub(crate) verbosity: u8,
    pub(crate) quiet: bool,
}

/// What parsing ended in besides arguments.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// `-h`/`--help`.
    Help,
    /// `--version`.
    Version,
    /// A usage error: argparse's message (exit 2).
    Usage(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// No value.
    Flag,
    /// One value.
    One,
    /// One or more values.
    Plus,
    /// An optional value (`--suffix`: none gives "").
    Optional,
}

struct Opt {
    long: &'static str,
    short: Option<char>,
    kind: Kind,
    /// Given at most once (the CLI's `UniqueStoreAction`).
    once: bool,
}

const OPTS: &[Opt] = &[
    Opt {
        long: "--help",
        short: Some('h'),
        kind: Kind::Flag,
        once: false,
    },
    Opt {
        long: "--version",
        short: None,
        kind: Kind::Flag,
        once: false,
    },
    Opt {
        long: "--encrypt",
        short: Some('e'),
        kind: Kind::Flag,
        once: false,
    },
    Opt {
        long: "--decrypt",
        short: Some('d'),
        kind: Kind::Flag,
        once: false,
    },
    Opt {
        long: "--decrypt-unsigned",
        short: None,
        kind: Kind::Flag,
        once: false,
    },
    Opt {
        long: "--suppress-metadata",
        short: Some('S'),
        kind: Kind::Flag,
        once: false,
    },
    Opt {
        long: "--metadata-output",
        short: None,
        kind: Kind::One,
        once: false,
    },
    Opt {
        long: "--overwrite-metadata",
        short: None,
        kind: Kind::Flag,
        once: false,
    },
    Opt {
        long: "--wrapping-keys",
        short: Some('w'),
        kind: Kind::Plus,
        once: false,
    },
    Opt {
        long: "--commitment-policy",
        short: None,
        kind: Kind::One,
        once: false,
    },
    Opt {
        long: "--caching",
        short: None,
        kind: Kind::Plus,
        once: true,
    },
    Opt {
        long: "--buffer",
        short: Some('b'),
        kind: Kind::Flag,
        once: false,
    },
    Opt {
        long: "--input",
        short: Some('i'),
        kind: Kind::One,
        once: true,
    },
    Opt {
        long: "--output",
        short: Some('o'),
        kind: Kind::One,
        once: true,
    },
    Opt {
        long: "--encode",
        short: None,
        kind: Kind::Flag,
        once: false,
    },
    Opt {
        long: "--decode",
        short: None,
        kind: Kind::Flag,
        once: false,
    },
    Opt {
        long: "--encryption-context",
        short: Some('c'),
        kind: Kind::Plus,
        once: true,
    },
    Opt {
        long: "--required-encryption-context-keys",
        short: None,
        kind: Kind::Plus,
        once: true,
    },
    Opt {
        long: "--algorithm",
        short: None,
        kind: Kind::One,
        once: true,
    },
    Opt {
        long: "--frame-length",
        short: None,
        kind: Kind::One,
        once: true,
    },
    Opt {
        long: "--max-length",
        short: None,
        kind: Kind::One,
        once: true,
    },
    Opt {
        long: "--max-encrypted-data-keys",
        short: None,
        kind: Kind::One,
        once: true,
    },
    Opt {
        long: "--suffix",
        short: None,
        kind: Kind::Optional,
        once: true,
    },
    Opt {
        long: "--interactive",
        short: None,
        kind: Kind::Flag,
        once: false,
    },
    Opt {
        long: "--no-overwrite",
        short: None,
        kind: Kind::Flag,
        once: false,
    },
    Opt {
        long: "--recursive",
        short: Some('r'),
        kind: Kind::Flag,
        once: false,
    },
    Opt {
        long: "-R",
        short: Some('R'),
        kind: Kind::Flag,
        once: false,
    },
    Opt {
        long: "-v",
        short: Some('v'),
        kind: Kind::Flag,
        once: false,
    },
    Opt {
        long: "--quiet",
        short: Some('q'),
        kind: Kind::Flag,
        once: false,
    },
];

/// The algorithm names `--algorithm` takes (the Python SDK's).
pub(crate) const ALGORITHMS: [&str; 11] = [
    "AES_128_GCM_IV12_TAG16",
    "AES_192_GCM_IV12_TAG16",
    "AES_256_GCM_IV12_TAG16",
    "AES_128_GCM_IV12_TAG16_HKDF_SHA256",
    "AES_192_GCM_IV12_TAG16_HKDF_SHA256",
    "AES_256_GCM_IV12_TAG16_HKDF_SHA256",
    "AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256",
    "AES_192_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384",
    "AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384",
    "AES_256_GCM_HKDF_SHA512_COMMIT_KEY",
    "AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384",
];

pub(crate) const POLICIES: [&str; 3] = [
    "forbid-encrypt-allow-decrypt",
    "require-encrypt-allow-decrypt",
    "require-encrypt-require-decrypt",
];

/// How argparse names an option in its messages: `-w/--wrapping-keys`.
fn display(o: &Opt) -> String {
    match o.short {
        Some(c) if o.long != format!("-{c}") => format!("-{c}/{}", o.long),
        _ => o.long.to_owned(),
    }
}

/// argparse: a token that looks like an option (the parser has no
/// options that look like negative numbers, so `-5` is a value; `-`
/// alone is a value).
fn looks_like_option(token: &str) -> bool {
    token.starts_with('-')
        && token.len() > 1
        && !token[1..].starts_with(|c: char| c.is_ascii_digit() || c == '.')
}

fn find_long(name: &str) -> Result<Option<&'static Opt>, String> {
    if let Some(o) = OPTS.iter().find(|o| o.long == name) {
        return Ok(Some(o));
    }
    let matches: Vec<&Opt> = OPTS
        .iter()
        .filter(|o| o.long.starts_with("--") && o.long.starts_with(name))
        .collect();
    match matches.len() {
        0 => Ok(None),
        1 => Ok(Some(matches[0])),
        _ => Err(format!(
            "ambiguous option: {name} could match {}",
            matches.iter().map(|o| o.long).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Parses `argv` (without the program name).
pub(crate) fn parse(argv: &[String]) -> Result<AwsCliArgs, Stop> {
    let mut a = AwsCliArgs::default();
    let mut seen: BTreeMap<&'static str, String> = BTreeMap::new();
    let mut unrecognized: Vec<String> = Vec::new();
    let mut mode: Option<(&'static str, String)> = None;
    let mut metadata_group: Option<(&'static str, String)> = None;
    let mut i = 0;
    while i < argv.len() {
        let token = argv[i].clone();
        i += 1;
        if token == "--" {
            unrecognized.push(token);
            unrecognized.extend(argv[i..].iter().cloned());
            break;
        }
        if !looks_like_option(&token) {
            unrecognized.push(token);
            continue;
        }
        // (option, value attached to the token, the name as typed)
        let mut pending: Vec<(&'static Opt, Option<String>, String)> = Vec::new();
        if token.starts_with("--") {
            let (name, value) = match token.split_once('=') {
                Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
                None => (token.clone(), None),
            };
            match find_long(&name).map_err(Stop::Usage)? {
                Some(o) => pending.push((o, value, name)),
                None => {
                    unrecognized.push(token);
                    continue;
                }
            }
        } else {
            // Short options: flags cluster; a value-taking one takes the
            // rest of the token as its value.
            for (at, c) in token[1..].char_indices() {
                let Some(o) = OPTS.iter().find(|o| o.short == Some(c)) else {
                    if pending.is_empty() {
                        unrecognized.push(token.clone());
                    } else {
                        return Err(Stop::Usage(format!(
                            "argument {}: ignored explicit argument '{}'",
                            display(pending[pending.len() - 1].0),
                            &token[1 + at..]
                        )));
                    }
                    break;
                };
                if o.kind == Kind::Flag {
                    pending.push((o, None, format!("-{c}")));
                    continue;
                }
                let rest = &token[1 + at + c.len_utf8()..];
                let value = (!rest.is_empty()).then(|| rest.trim_start_matches('=').to_owned());
                pending.push((o, value, format!("-{c}")));
                break;
            }
        }
        for (o, attached, typed) in pending {
            if o.once {
                if let Some(_prev) = seen.get(o.long) {
                    return Err(Stop::Usage(format!(
                        "{typed} argument may not be specified more than once"
                    )));
                }
            }
            seen.insert(o.long, typed.clone());
            let mut values: Vec<String> = Vec::new();
            match o.kind {
                Kind::Flag => {
                    if let Some(v) = attached {
                        return Err(Stop::Usage(format!(
                            "argument {}: ignored explicit argument '{v}'",
                            display(o)
                        )));
                    }
                }
                Kind::One => match attached {
                    Some(v) => values.push(v),
                    None if i < argv.len() && !looks_like_option(&argv[i]) => {
                        values.push(argv[i].clone());
                        i += 1;
                    }
                    None => {
                        return Err(Stop::Usage(format!(
                            "argument {}: expected one argument",
                            display(o)
                        )))
                    }
                },
                Kind::Plus => {
                    values.extend(attached);
                    while i < argv.len() && !looks_like_option(&argv[i]) {
                        values.push(argv[i].clone());
                        i += 1;
                    }
                    if values.is_empty() {
                        return Err(Stop::Usage(format!(
                            "argument {}: expected at least one argument",
                            display(o)
                        )));
                    }
                }
                Kind::Optional => match attached {
                    Some(v) => values.push(v),
                    None if i < argv.len() && !looks_like_option(&argv[i]) => {
                        values.push(argv[i].clone());
                        i += 1;
                    }
                    None => values.push(String::new()),
                },
            }
            let exclusive = |group: &mut Option<(&'static str, String)>| -> Result<(), Stop> {
                match group {
                    Some((long, shown)) if *long != o.long => Err(Stop::Usage(format!(
                        "argument {}: not allowed with argument {shown}",
                        display(o)
                    ))),
                    _ => {
                        *group = Some((o.long, display(o)));
                        Ok(())
                    }
                }
            };
            let one = || values[0].clone();
            match o.long {
                "--help" => return Err(Stop::Help),
                "--version" => {
                    exclusive(&mut mode)?;
                    return Err(Stop::Version);
                }
                "--encrypt" | "--decrypt" | "--decrypt-unsigned" => {
                    exclusive(&mut mode)?;
                    a.action = Some(match o.long {
                        "--encrypt" => Action::Encrypt,
                        "--decrypt" => Action::Decrypt,
                        _ => Action::DecryptUnsigned,
                    });
                }
                "--suppress-metadata" => {
                    exclusive(&mut metadata_group)?;
                    a.suppress_metadata = true;
                }
                "--metadata-output" => {
                    exclusive(&mut metadata_group)?;
                    a.metadata_output = Some(one());
                }
                "--overwrite-metadata" => a.overwrite_metadata = true,
                "--wrapping-keys" => a.wrapping_keys.push(values),
                "--commitment-policy" => {
                    let v = one();
                    if !POLICIES.contains(&v.as_str()) {
                        return Err(Stop::Usage(format!(
                            "argument --commitment-policy: invalid CommitmentPolicyArgs value: '{v}'"
                        )));
                    }
                    a.commitment_policy = Some(v);
                }
                "--caching" => a.caching = Some(values),
                "--buffer" => a.buffer = true,
                "--input" => a.input = Some(one()),
                "--output" => a.output = Some(one()),
                "--encode" => a.encode = true,
                "--decode" => a.decode = true,
                "--encryption-context" => a.encryption_context = Some(values),
                "--required-encryption-context-keys" => {
                    return Err(Stop::Usage(
                        "--required-encryption-context-keys cannot be manually provided".into(),
                    ))
                }
                "--algorithm" => {
                    let v = one();
                    if !ALGORITHMS.contains(&v.as_str()) {
                        return Err(Stop::Usage(format!(
                            "argument --algorithm: invalid choice: '{v}' (choose from {})",
                            ALGORITHMS.map(|n| format!("'{n}'")).join(", ")
                        )));
                    }
                    a.algorithm = Some(v);
                }
                "--frame-length" | "--max-length" | "--max-encrypted-data-keys" => {
                    let v = one();
                    let n: i64 = v
                        .trim()
                        .parse()
                        .map_err(|_| Stop::Usage(format!("argument {}: invalid int value: '{v}'", o.long)))?;
                    match o.long {
                        "--frame-length" => a.frame_length = Some(n),
                        "--max-length" => a.max_length = Some(n),
                        _ => a.max_encrypted_data_keys = Some(n),
                    }
                }
                "--suffix" => a.suffix = Some(one()),
                "--interactive" => a.interactive = true,
                "--no-overwrite" => a.no_overwrite = true,
                "--recursive" | "-R" => a.recursive = true,
                "-v" => a.verbosity = a.verbosity.saturating_add(1),
                "--quiet" => a.quiet = true,
                _ => {}
            }
        }
    }
    let mut missing = Vec::new();
    if a.wrapping_keys.is_empty() {
        missing.push("-w/--wrapping-keys");
    }
    if a.input.is_none() {
        missing.push("-i/--input");
    }
    if a.output.is_none() {
        missing.push("-o/--output");
    }
    if !missing.is_empty() {
        return Err(Stop::Usage(format!(
            "the following arguments are required: {}",
            missing.join(", ")
        )));
    }
    if mode.is_none() {
        return Err(Stop::Usage(
            "one of the arguments --version -e/--encrypt -d/--decrypt --decrypt-unsigned is required".into(),
        ));
    }
    if metadata_group.is_none() {
        return Err(Stop::Usage(
            "one of the arguments -S/--suppress-metadata --metadata-output is required".into(),
        ));
    }
    if !unrecognized.is_empty() {
        return Err(Stop::Usage(format!(
            "unrecognized arguments: {}",
            unrecognized.join(" ")
        )));
    }
    Ok(a)
}

/// `key=value` words grouped by key, first value first (the CLI's
/// `_parse_kwargs`); a word without `=`, or with an empty key or value,
/// is a usage error.
pub(crate) fn kwargs(words: &[String]) -> Result<BTreeMap<String, Vec<String>>, Stop> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for w in words {
        match w.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => {
                out.entry(k.to_owned()).or_default().push(v.to_owned())
            }
            _ => {
                return Err(Stop::Usage(
                    "Argument parameter must follow the format \"key=value\"".into(),
                ))
            }
        }
    }
    Ok(out)
}

fn truthy(v: &str) -> Result<bool, Stop> {
    match v.to_ascii_lowercase().as_str() {
        "false" | "f" | "0" | "no" | "n" => Ok(false),
        "true" | "t" | "1" | "yes" | "y" => Ok(true),
        _ => Err(Stop::Usage(format!(
            "Value {v} could not be parsed as true or false"
        ))),
    }
}

/// Why a `-w` group is refused after parsing: a usage error (exit 2) or an
/// unknown provider (exit 1, as the CLI's plugin loader says it).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KeysError {
    Usage(String),
    Provider(String),
}

/// One `-w` group checked as the CLI checks it (its messages, its order).
pub(crate) fn wrapping_keys(words: &[String], action: Action) -> Result<WrappingKeys, KeysError> {
    let usage = |m: &str| KeysError::Usage(m.to_owned());
    let mut kw = kwargs(words).map_err(keys_usage)?;
    let providers = kw
        .remove("provider")
        .unwrap_or_else(|| vec!["aws-encryption-sdk-cli::aws-kms".into()]);
    if providers.len() != 1 {
        return Err(KeysError::Usage(format!(
            "You must provide exactly one \"provider\" for each wrapping key provider configuration. {} provided",
            providers.len()
        )));
    }
    let provider = providers[0].as_str();
    let kms = provider == "aws-kms" || provider == "aws-encryption-sdk-cli::aws-kms";
    let discovery_attrs = ["discovery", "discovery-account", "discovery-partition"];
    if !kms {
        if discovery_attrs.iter().any(|k| kw.contains_key(*k)) {
            return Err(usage(
                "Discovery attributes are supported only for AWS KMS wrapping keys",
            ));
        }
        if !kw.contains_key("key") {
            return Err(usage(
                "At least one \"key\" must be provided for each wrapping key provider configuration",
            ));
        }
        return Err(KeysError::Provider(format!(
            "Requested master key provider not found: \"{provider}\""
        )));
    }
    if action == Action::Encrypt && discovery_attrs.iter().any(|k| kw.contains_key(*k)) {
        return Err(usage(
            "Discovery attributes are supported only on decryption for AWS KMS keys",
        ));
    }
    if action == Action::Encrypt && !kw.contains_key("key") {
        return Err(usage(
            "At least one \"key\" must be provided for each wrapping key provider configuration",
        ));
    }
    let accounts = kw.remove("discovery-account").unwrap_or_default();
    let partitions = kw.remove("discovery-partition").unwrap_or_default();
    let only_with_discovery =
        "Discovery-account and discovery-partition are valid only when the discovery attribute is set to true";
    let discovery = match kw.remove("discovery") {
        None if !accounts.is_empty() || !partitions.is_empty() => return Err(usage(only_with_discovery)),
        None => false,
        Some(v) => truthy(&v[0]).map_err(keys_usage)?,
    };
    if !discovery && (!accounts.is_empty() || !partitions.is_empty()) {
        return Err(usage(only_with_discovery));
    }
    if discovery {
        if !accounts.is_empty() && partitions.is_empty() {
            return Err(usage(
                "When specifying discovery-account, you must also specify discovery-partition",
            ));
        }
        if accounts.is_empty() && !partitions.is_empty() {
            return Err(usage(
                "When specifying discovery-partition, you must also specify discovery-account",
            ));
        }
        if partitions.len() > 1 {
            return Err(usage("You can only specify discovery-partition once"));
        }
    }
    let keys = kw.remove("key").unwrap_or_default();
    if !keys.is_empty() && discovery {
        return Err(usage(
            "If discovery is true (enabled), you cannot specify wrapping keys",
        ));
    }
    if keys.is_empty() && !discovery {
        return Err(usage(
            "When discovery is false (disabled), you must specify at least one wrapping key",
        ));
    }
    let one_of = |name: &str, v: Option<Vec<String>>| -> Result<Option<String>, KeysError> {
        match v {
            None => Ok(None),
            Some(v) if v.len() == 1 => Ok(v.into_iter().next()),
            Some(v) => Err(KeysError::Provider(format!(
                "Only one {name} may be specified per master key provider configuration. {} provided.",
                v.len()
            ))),
        }
    };
    let region = one_of("region", kw.remove("region"))?;
    let profile = one_of("profile", kw.remove("profile"))?;
    if let Some(other) = kw.keys().next() {
        return Err(KeysError::Provider(format!(
            "unknown wrapping key attribute \"{other}\" (aws-kms takes key, region, profile, discovery, \
             discovery-account and discovery-partition)"
        )));
    }
    Ok(WrappingKeys {
        keys,
        region,
        profile,
        discovery,
        accounts,
        partition: partitions.into_iter().next(),
    })
}

/// A usage error of the `-w` checks.
fn keys_usage(stop: Stop) -> KeysError {
    match stop {
        Stop::Usage(m) => KeysError::Usage(m),
        Stop::Help | Stop::Version => KeysError::Usage(String::new()),
    }
}

/// `--caching` checked as the CLI checks it.
pub(crate) fn caching(words: &[String]) -> Result<Caching, Stop> {
    let kw = kwargs(words)?;
    let first = |k: &str| kw.get(k).map(|v| v[0].clone());
    let (Some(capacity), Some(max_age)) = (first("capacity"), first("max_age")) else {
        return Err(Stop::Usage(
            "If enabling caching, both \"capacity\" and \"max_age\" are required".into(),
        ));
    };
    if let Some(k) = kw.keys().find(|k| {
        ![
            "capacity",
            "max_age",
            "max_messages_encrypted",
            "max_bytes_encrypted",
        ]
        .contains(&k.as_str())
    }) {
        return Err(Stop::Usage(format!("Invalid caching configuration key: \"{k}\"")));
    }
    Ok(Caching {
        capacity,
        max_age,
        max_messages_encrypted: first("max_messages_encrypted"),
        max_bytes_encrypted: first("max_bytes_encrypted"),
    })
}

/// `-c` on encrypt: the context (first value per key). On decrypt: the
/// pairs that must be in the message and the keys it must have.
pub(crate) fn context(
    words: &[String],
    action: Action,
) -> Result<(BTreeMap<String, String>, Vec<String>), Stop> {
    let (pairs, keys): (Vec<String>, Vec<String>) = match action {
        Action::Encrypt => (words.to_vec(), Vec::new()),
        _ => words.iter().cloned().partition(|w| w.contains('=')),
    };
    let kw = kwargs(&pairs)?;
    Ok((kw.into_iter().map(|(k, v)| (k, v[0].clone())).collect(), keys))
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
