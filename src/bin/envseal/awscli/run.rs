//! Running a parsed aws-encryption-cli command line on envseal: the key
//! providers, the client, the checks of paths, the files (glob, trees,
//! names, overwriting) and the metadata lines, in the peer's order.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use envseal::blocking::Client;
use envseal::kms::KmsClient;
use envseal::{
    AlgorithmSuite, CacheLimits, CommitmentPolicy, Config, DiscoveryFilter, EncryptionContext, Error,
    Keyring, KmsDiscoveryKeyring, KmsKeyring, MaterialsCache, MultiKeyring,
};
use serde_json::{json, Value};

use super::args::{self, Action, AwsCliArgs, WrappingKeys};
use super::pyjson::dumps;
use crate::commands::seal;
use crate::metadata::{header_auth_json, header_json, header_of};
use crate::output::{Sink, Target};

/// How a run ends: its exit code, after what it printed.
pub(crate) enum End {
    Ok,
    /// Exit 1 with this message (the peer's plain message).
    Failed(String),
    /// Exit 1: an error the peer reports as unexpected.
    Unexpected(String),
    /// Exit 2: a usage error found after parsing.
    Usage(String),
}

/// Options that shape every file's operation.
struct Settings {
    action: Action,
    client: Client,
    /// `-c` on decrypt: pairs the message must have, and keys.
    required_pairs: BTreeMap<String, String>,
    required_keys: Vec<String>,
    /// `-c` on encrypt.
    context: EncryptionContext,
    encode: bool,
    decode: bool,
    quiet: bool,
    metadata: Metadata,
    interactive: bool,
    no_overwrite: bool,
    suffix: Option<String>,
}

pub(crate) fn run(a: AwsCliArgs) -> End {
    let action = a.action.unwrap_or(Action::Encrypt);
    let mut groups = Vec::new();
    for words in &a.wrapping_keys {
        match args::wrapping_keys(words, action) {
            Ok(g) => groups.push(g),
            Err(args::KeysError::Usage(m)) => return End::Usage(m),
            Err(args::KeysError::Provider(m)) => return End::Failed(m),
        }
    }
    let (pairs, keys) = match a.encryption_context.as_deref().map(|w| args::context(w, action)) {
        None => (BTreeMap::new(), Vec::new()),
        Some(Ok(c)) => c,
        Some(Err(args::Stop::Usage(m))) => return End::Usage(m),
        Some(Err(_)) => return End::Usage(String::new()),
    };
    let caching = match a.caching.as_deref().map(args::caching) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(args::Stop::Usage(m))) => return End::Usage(m),
        Some(Err(_)) => return End::Usage(String::new()),
    };
    let client = match client(&a, action, &groups, caching.as_ref()) {
        Ok(c) => c,
        Err(end) => return end,
    };
    let input = a.input.clone().unwrap_or_default();
    let output = a.output.clone().unwrap_or_default();
    if let Err(m) = precheck(&a, &input, &output) {
        return End::Failed(m);
    }
    let mut context = EncryptionContext::new();
    let mut required_pairs = BTreeMap::new();
    match action {
        Action::Encrypt => pairs.iter().for_each(|(k, v)| {
            context.insert(k.clone(), v.clone());
        }),
        _ => required_pairs = pairs,
    }
    let s = Settings {
        action,
        client,
        required_pairs,
        required_keys: keys,
        context,
        encode: a.encode,
        decode: a.decode,
        quiet: a.quiet,
        metadata: Metadata::new(&a),
        interactive: a.interactive,
        no_overwrite: a.no_overwrite,
        suffix: a.suffix.clone(),
    };
    let jobs = match jobs(&a, &s, &input, &output) {
        Ok(j) => j,
        Err(m) => return End::Failed(m),
    };
    let mut skipped = Vec::new();
    for (src, dest) in jobs {
        match one(&s, &src, &dest) {
            Ok(Outcome::Done) => {}
            Ok(Outcome::ContextMismatch) => skipped.push(src),
            Err(end) => return end,
        }
    }
    if !skipped.is_empty() {
        return End::Failed(format!(
            "{} file(s) not decrypted: the encryption context did not match --encryption-context \
             ({}); aws-encryption-cli exits 0 here, envseal exits 1",
            skipped.len(),
            skipped.join(", ")
        ));
    }
    End::Ok
}

/// The client: the `-w` groups' keyrings (in order; the first key of the
/// first group generates), the policy, suite, frame length and limits,
/// and the cache of `--caching`.
fn client(
    a: &AwsCliArgs,
    action: Action,
    groups: &[WrappingKeys],
    caching: Option<&args::Caching>,
) -> Result<Client, End> {
    let policy = match a.commitment_policy.as_deref() {
        Some("forbid-encrypt-allow-decrypt") => CommitmentPolicy::ForbidEncryptAllowDecrypt,
        Some("require-encrypt-allow-decrypt") => CommitmentPolicy::RequireEncryptAllowDecrypt,
        _ => CommitmentPolicy::RequireEncryptRequireDecrypt,
    };
    let mut config = Config::builder()
        .commitment_policy(policy)
        .allow_signed_streaming(true);
    if action == Action::Encrypt {
        if let Some(name) = &a.algorithm {
            let spec = if name.ends_with("_IV12_TAG16") {
                format!("{name}_NO_KDF")
            } else {
                name.clone()
            };
            let suite = AlgorithmSuite::parse(&spec)
                .ok_or_else(|| End::Usage(format!("unknown algorithm {name}")))?;
            config = config.suite(suite);
        }
        if let Some(n) = a.frame_length {
            if n < 0 || n % 16 != 0 || n > i64::from(u32::MAX) {
                return Err(End::Failed(
                    "Frame size must be a non-negative multiple of the block size of the crypto algorithm: 128"
                        .into(),
                ));
            }
            config = config.frame_length(n as u32);
        }
    } else if let Some(n) = a.max_length {
        let n = n.max(0);
        config = config
            .max_frame_length(u32::try_from(n).unwrap_or(u32::MAX))
            .max_body_size(n as u64);
    }
    if let Some(n) = a.max_encrypted_data_keys {
        if n < 1 {
            return Err(End::Failed(
                "max_encrypted_data_keys cannot be less than 1".into(),
            ));
        }
        config = config.max_encrypted_data_keys(usize::try_from(n).unwrap_or(usize::MAX));
    }
    let config = config.build().map_err(|e| End::Failed(e.to_string()))?;
    let runtime = crate::kms::runtime().map_err(|f| End::Failed(f.to_string()))?;
    let mut keyrings: Vec<std::sync::Arc<dyn Keyring>> = Vec::new();
    for g in groups {
        let kms = kms_client(&runtime, g)?;
        if g.discovery {
            let mut b = KmsDiscoveryKeyring::builder(kms);
            if let Some(p) = &g.partition {
                let filter = DiscoveryFilter::new(p.clone(), g.accounts.clone())
                    .map_err(|e| End::Failed(e.to_string()))?;
                b = b.filter(filter);
            }
            keyrings.push(std::sync::Arc::new(
                b.build().map_err(|e| End::Failed(e.to_string()))?,
            ));
        } else {
            let k = KmsKeyring::builder(kms, g.keys.iter().cloned())
                .build()
                .map_err(|e| End::Failed(e.to_string()))?;
            keyrings.push(std::sync::Arc::new(k));
        }
    }
    let keyring = MultiKeyring::from_keyrings(keyrings).map_err(|e| End::Failed(e.to_string()))?;
    let mut builder = Client::builder(keyring).config(config).runtime(runtime);
    if let Some(c) = caching {
        let capacity: usize = c.capacity.parse().map_err(|_| {
            End::Unexpected(format!(
                "ValueError(\"invalid literal for int() with base 10: '{}'\")",
                c.capacity
            ))
        })?;
        let max_age: f64 = c.max_age.parse().map_err(|_| {
            End::Unexpected(format!(
                "ValueError(\"could not convert string to float: '{}'\")",
                c.max_age
            ))
        })?;
        if capacity < 1 {
            return Err(End::Unexpected(
                "ValueError(\"LocalCryptoMaterialsCache capacity cannot be less than 1\")".into(),
            ));
        }
        if max_age.is_nan() || max_age <= 0.0 || !max_age.is_finite() {
            return Err(End::Unexpected(
                "ValueError(\"max_age cannot be less than or equal to 0\")".into(),
            ));
        }
        // Past Duration's range (1e300 seconds) is forever.
        let age = Duration::try_from_secs_f64(max_age).unwrap_or(Duration::MAX);
        let mut limits = CacheLimits::builder(age);
        for (text, set) in [(&c.max_messages_encrypted, 0), (&c.max_bytes_encrypted, 1)] {
            if let Some(t) = text {
                let n: u64 = t.parse().map_err(|_| {
                    End::Unexpected(format!(
                        "ValueError(\"invalid literal for int() with base 10: '{t}'\")"
                    ))
                })?;
                limits = if set == 0 {
                    limits.max_messages(n)
                } else {
                    limits.max_bytes(n)
                };
            }
        }
        let limits = limits.build().map_err(|e| End::Failed(e.to_string()))?;
        // Beyond what a run can fill: the largest table envseal makes.
        let capacity = capacity.min(envseal::MAX_CACHE_ENTRIES);
        let cache = MaterialsCache::new(capacity).map_err(|e| End::Failed(e.to_string()))?;
        builder = builder.cache(cache, limits);
    }
    builder.build().map_err(|e| End::Failed(e.to_string()))
}

/// One `-w` group's KMS client: its region and profile (else the
/// environment's).
fn kms_client(runtime: &tokio::runtime::Runtime, g: &WrappingKeys) -> Result<KmsClient, End> {
    let build = |region: Option<&String>| {
        let mut b = KmsClient::builder();
        if let Some(r) = region {
            b = b.region(r.clone());
        }
        if let Some(p) = &g.profile {
            b = b.profile(p.clone());
        }
        // `envseal --fips aws-encryption-cli ...` (AWS_USE_FIPS_ENDPOINT
        // works without it, as for the peer).
        if crate::kms::fips_endpoints() {
            b = b.use_fips_endpoint(true);
        }
        runtime.block_on(b.build())
    };
    // No region anywhere: the peer calls each key ARN's own region, so the
    // first ARN's region serves (a key id or alias needs one configured).
    let arn_region = g
        .keys
        .iter()
        .find_map(|k| k.parse::<envseal::kms::KmsArn>().ok())
        .map(|a| a.region().to_owned());
    match build(g.region.as_ref()) {
        Err(Error::Config {
            setting: "region", ..
        }) if g.region.is_none() && arn_region.is_some() => build(arn_region.as_ref()),
        other => other,
    }
    .map_err(|e| End::Failed(e.to_string()))
}

/// The peer's path checks before any file is touched, in its order.
fn precheck(a: &AwsCliArgs, input: &str, output: &str) -> Result<(), String> {
    let out = Path::new(output);
    if output != "-" && !out.is_dir() {
        let parent = abspath(out).parent().map(Path::to_owned).unwrap_or_default();
        if !parent.is_dir() {
            return Err(
                "If destination is a file, the immediate parent directory must already exist.".into(),
            );
        }
    }
    if let Some(meta) = a.metadata_output.as_deref().filter(|_| !a.suppress_metadata) {
        if meta == "-" && output == "-" {
            return Err("Metadata output cannot be stdout when output is stdout".into());
        }
        if meta != "-" {
            let m = Path::new(meta);
            if m.is_dir() {
                return Err("Metadata output cannot be a directory".into());
            }
            if !abspath(m).parent().is_some_and(Path::is_dir) {
                return Err("Parent directory for requested metdata file does not exist.".into());
            }
            let real = realpath(m);
            if (input != "-" && real == realpath(Path::new(input)))
                || (output != "-" && real == realpath(out))
            {
                return Err("Metadata output file cannot be the input or output".into());
            }
            // Inside a directory, as a path (the peer compares strings).
            if out.is_dir() && real.starts_with(realpath(out)) {
                return Err("Metadata output file cannot be in the output directory".into());
            }
            if input != "-" && Path::new(input).is_dir() && real.starts_with(realpath(Path::new(input))) {
                return Err("Metadata output file cannot be in the input directory".into());
            }
        }
    }
    if !(input == "-" && output == "-") {
        if input != "-" && output != "-" && realpath(Path::new(input)) == realpath(out) {
            return Err("Destination and source cannot be the same".into());
        }
        if input == "-" && out.is_dir() {
            return Err("Destination may not be a directory when source is stdin".into());
        }
    }
    Ok(())
}

/// Each operation: a source (`-`, a file) and its destination (`-`, a
/// file), in the peer's order (glob matches sorted; a tree walked top
/// down, names sorted).
fn jobs(a: &AwsCliArgs, s: &Settings, input: &str, output: &str) -> Result<Vec<(String, String)>, String> {
    if input == "-" {
        return Ok(vec![("-".into(), output.into())]);
    }
    let invalid = || "Invalid source.  Must be a valid pathname pattern or stdin (-)".to_owned();
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let matches: Vec<PathBuf> = glob::glob_with(input, options)
        .map_err(|_| invalid())?
        .filter_map(Result::ok)
        .collect();
    if matches.is_empty() {
        return Err(invalid());
    }
    let out_dir = output != "-" && Path::new(output).is_dir();
    if matches.len() > 1 && !out_dir {
        return Err("If operating on multiple sources, destination must be an existing directory".into());
    }
    if matches.iter().any(|m| m.is_dir()) && !out_dir {
        return Err("If operating on a source directory, destination must be an existing directory".into());
    }
    let suffix = s.suffix.clone().unwrap_or_else(|| match s.action {
        Action::Encrypt => ".encrypted".into(),
        _ => ".decrypted".into(),
    });
    let mut jobs = Vec::new();
    for m in matches {
        if m.is_dir() {
            if !a.recursive {
                warn(
                    s,
                    &format!(
                        "Skipping {} because it is a directory and -r/-R/--recursive is not set",
                        m.display()
                    ),
                );
                continue;
            }
            walk(&m, Path::new(output), &suffix, &mut jobs).map_err(|e| e.to_string())?;
        } else if m.is_file() {
            let dest = if out_dir {
                format!(
                    "{}{suffix}",
                    Path::new(output)
                        .join(m.file_name().unwrap_or_default())
                        .display()
                )
            } else {
                output.to_owned()
            };
            jobs.push((m.display().to_string(), dest));
        }
    }
    Ok(jobs)
}

/// A tree under `root`: every file (dot files too; symbolic links to
/// directories not entered) to the same place under `out`, directories
/// made as needed.
fn walk(root: &Path, out: &Path, suffix: &str, jobs: &mut Vec<(String, String)>) -> io::Result<()> {
    // An output directory inside the tree is not entered: its files are
    // outputs (the peer walks into them, and can overwrite a file there
    // before reading it).
    let out_real = realpath(out);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut entries: Vec<fs::DirEntry> = fs::read_dir(root.join(&rel))?.collect::<Result<_, _>>()?;
        entries.sort_by_key(fs::DirEntry::file_name);
        let mut dirs = Vec::new();
        for e in entries {
            let kind = e.file_type()?;
            let rel_path = rel.join(e.file_name());
            if kind.is_dir() {
                if realpath(&e.path()) != out_real {
                    dirs.push(rel_path);
                }
            } else if e.path().is_file() {
                let dest_dir = out.join(&rel);
                fs::create_dir_all(&dest_dir)?;
                let mut name = e.file_name();
                name.push(suffix);
                jobs.push((
                    e.path().display().to_string(),
                    dest_dir.join(name).display().to_string(),
                ));
            }
        }
        stack.extend(dirs.into_iter().rev());
    }
    Ok(())
}

enum Outcome {
    Done,
    ContextMismatch,
}

/// One operation: the overwrite policy, then the message through a
/// temporary file (renamed over the destination once complete) or stdout.
fn one(s: &Settings, src: &str, dest: &str) -> Result<Outcome, End> {
    if dest != "-" {
        let d = Path::new(dest);
        if src != "-" && realpath(Path::new(src)) == realpath(d) {
            warn(
                s,
                &format!("Skipping because the source ({src}) and destination ({dest}) are the same"),
            );
            return Ok(Outcome::Done);
        }
        if d.is_file() {
            if s.no_overwrite {
                warn(
                    s,
                    &format!("Skipping existing output file because of \"no overwrite\" option: {dest}"),
                );
                return Ok(Outcome::Done);
            }
            if s.interactive {
                match ask(dest) {
                    Some(true) => warn(
                        s,
                        &format!(
                            "Overwriting existing output file based on interactive user decision: {dest}"
                        ),
                    ),
                    Some(false) => return Ok(Outcome::Done),
                    None => {
                        warn(
                            s,
                            &format!(
                                "Skipping existing output file based on interactive user decision: {dest}"
                            ),
                        );
                        return Ok(Outcome::Done);
                    }
                }
            } else {
                warn(
                    s,
                    &format!(
                        "Overwriting existing output file because no action was specified otherwise: {dest}"
                    ),
                );
            }
        }
    }
    let input: Box<dyn Read> = if src == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(fs::File::open(src).map_err(|e| End::Unexpected(format!("{e}")))?)
    };
    let input = io::BufReader::with_capacity(1 << 20, input);
    let input: Box<dyn Read> = if s.decode {
        Box::new(base64::read::DecoderReader::new(
            crate::output::SkipWhitespace { inner: input },
            &base64::engine::general_purpose::STANDARD,
        ))
    } else {
        Box::new(input)
    };
    let (target, mode) = output_target(dest);
    let names = (
        if src == "-" {
            "<stdin>".to_owned()
        } else {
            abspath(Path::new(src)).display().to_string()
        },
        if dest == "-" {
            "<stdout>".to_owned()
        } else {
            abspath(Path::new(dest)).display().to_string()
        },
    );
    let spool = s.action != Action::Encrypt;
    let sink = Sink::open(target, true, spool).map_err(|f| End::Failed(f.to_string()))?;
    // A regular file's length bounds its message, so that --caching
    // counts it (stdin's, or base64's before decoding, is unknown).
    let len = (src != "-" && !s.decode)
        .then(|| fs::metadata(src).ok().filter(|m| m.is_file()).map(|m| m.len()))
        .flatten();
    let result = match s.action {
        Action::Encrypt => encrypt(s, input, sink, &names, mode, len),
        _ => decrypt(s, input, sink, &names, mode),
    };
    if let Err(End::Unexpected(_) | End::Failed(_)) = &result {
        if dest != "-" {
            warn(s, &format!("Operation failed: deleting output file: {dest}"));
        }
    }
    result
}

fn encrypt(
    s: &Settings,
    input: Box<dyn Read>,
    sink: Sink,
    names: &(String, String),
    mode: Option<fs::Permissions>,
    len: Option<u64>,
) -> Result<Outcome, End> {
    let unexpected = |e: Error| End::Unexpected(e.to_string());
    let encryptor = s.client.encryptor(&s.context, len).map_err(unexpected)?;
    let (header, _) = header_of(encryptor.header()).map_err(|f| End::Unexpected(f.to_string()))?;
    s.metadata
        .write(json!({"header": header, "input": names.0, "mode": "encrypt", "output": names.1}))?;
    let failed = |f: crate::error::Failure| End::Unexpected(f.to_string());
    let sink = if s.encode {
        let encoder = base64::write::EncoderWriter::new(sink, &base64::engine::general_purpose::STANDARD);
        seal(encryptor, input, encoder)
            .map_err(failed)?
            .finish()
            .map_err(|e| End::Unexpected(Error::from_io(e).to_string()))?
    } else {
        seal(encryptor, input, sink).map_err(failed)?
    };
    commit(sink, mode)?;
    Ok(Outcome::Done)
}

fn decrypt(
    s: &Settings,
    input: Box<dyn Read>,
    mut sink: Sink,
    names: &(String, String),
    mode: Option<fs::Permissions>,
) -> Result<Outcome, End> {
    let unexpected = |e: Error| End::Unexpected(e.to_string());
    let decryptor = s.client.decryptor(input).map_err(unexpected)?;
    if s.action == Action::DecryptUnsigned && decryptor.suite().is_signed() {
        return Err(End::Unexpected(format!(
            "Configuration conflict. Cannot decrypt signed message in decrypt-unsigned mode. Algorithm ID was {}.",
            decryptor.suite().id()
        )));
    }
    let stored = decryptor.encryption_context().clone();
    let missing_keys: Vec<&String> = s
        .required_keys
        .iter()
        .filter(|k| !stored.contains_key(k))
        .collect();
    let missing_pairs: Vec<(&String, &String)> = s
        .required_pairs
        .iter()
        .filter(|(k, v)| stored.get(k) != Some(v.as_str()))
        .collect();
    let header = header_json(&decryptor);
    let header_auth = header_auth_json(&decryptor);
    if !missing_keys.is_empty() || !missing_pairs.is_empty() {
        warn(
            s,
            "Skipping decrypt because discovered encryption context did not match required elements.",
        );
        s.metadata.write(json!({
            "header": header, "header_auth": header_auth, "input": names.0,
            "missing_encryption_context_keys": missing_keys,
            "missing_encryption_context_pairs": missing_pairs.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "mode": s.action.name(), "output": names.1,
            "reason": "Missing encryption context key or value", "skipped": true,
        }))?;
        return Ok(Outcome::ContextMismatch);
    }
    // Every required pair is stored (else the file was skipped above, as
    // the peer skips it): no reproduced context.
    let mut reader = decryptor.decrypt(&EncryptionContext::new()).map_err(unexpected)?;
    s.metadata.write(json!({
        "header": header, "header_auth": header_auth, "input": names.0,
        "mode": s.action.name(), "output": names.1,
    }))?;
    let io_err = |e: io::Error| End::Unexpected(Error::from_io(e).to_string());
    if s.encode {
        // --encode is independent of the mode: the plaintext in base64.
        let mut encoder =
            base64::write::EncoderWriter::new(&mut sink, &base64::engine::general_purpose::STANDARD);
        io::copy(&mut reader, &mut encoder).map_err(io_err)?;
        encoder.finish().map_err(io_err)?;
    } else {
        io::copy(&mut reader, &mut sink).map_err(io_err)?;
    }
    if !reader.is_complete() {
        return Err(End::Unexpected("the message ended before it verified".into()));
    }
    commit(sink, mode)?;
    Ok(Outcome::Done)
}

/// Puts the output in place with the mode it should have.
fn commit(mut sink: Sink, mode: Option<fs::Permissions>) -> Result<(), End> {
    if let Some(mode) = mode {
        sink.set_permissions(mode)
            .map_err(|f| End::Unexpected(f.to_string()))?;
    }
    sink.commit().map_err(|f| End::Unexpected(f.to_string()))
}

/// Where an output goes, as the peer's `open(path, "wb")` would put it:
/// stdout; an existing device or FIFO (`/dev/null`, `/dev/stdout`, a
/// pipe) written in place; else a file, replaced through a temporary file
/// renamed onto it (onto the file a symbolic link names: the link stays).
/// A file keeps the mode it had; a new one gets the umask's (`0666 &
/// ~umask`), as `open` gives it.
fn output_target(dest: &str) -> (Target, Option<fs::Permissions>) {
    use std::os::unix::fs::PermissionsExt;
    if dest == "-" {
        return (Target::Stdout, None);
    }
    let path = Path::new(dest);
    match fs::metadata(path) {
        Ok(m) if crate::output::is_stream(&m) => (Target::Stream(path.to_owned()), None),
        Ok(m) => {
            let real = path.canonicalize().unwrap_or_else(|_| abspath(path));
            (Target::File(real), Some(m.permissions()))
        }
        Err(_) => (
            Target::File(abspath(path)),
            Some(fs::Permissions::from_mode(0o666 & !umask())),
        ),
    }
}

/// The process's umask, from /proc (std has no call that reads it without
/// setting it); 022 when it cannot be read.
fn umask() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// `--interactive`: the peer's prompt on stdout; `Some(true)` to
/// overwrite, `Some(false)` to skip quietly, `None` (an empty answer, or
/// no answer) to skip with a warning.
fn ask(dest: &str) -> Option<bool> {
    let mut out = io::stdout().lock();
    let _ = write!(
        out,
        "Overwrite existing output file \"{dest}\" with new contents? [y/N]:"
    );
    let _ = out.flush();
    let mut line = String::new();
    match io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => {
            let answer = line.trim_end_matches(['\n', '\r']);
            answer.chars().next().map(|c| c.eq_ignore_ascii_case(&'y'))
        }
    }
}

fn warn(s: &Settings, message: &str) {
    if !s.quiet {
        let _ = writeln!(io::stderr(), "aws-encryption-cli: WARNING: {message}");
    }
}

/// `--metadata-output`: one line a message, appended (the first write of
/// a run truncates with `--overwrite-metadata`), or on stdout.
struct Metadata {
    path: Option<String>,
    truncate: std::cell::Cell<bool>,
}

impl Metadata {
    fn new(a: &AwsCliArgs) -> Self {
        Metadata {
            path: if a.suppress_metadata {
                None
            } else {
                a.metadata_output.clone()
            },
            truncate: std::cell::Cell::new(a.overwrite_metadata),
        }
    }

    fn write(&self, line: Value) -> Result<(), End> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let text = format!("{}\n", dumps(&line));
        let fail = |e: io::Error| End::Unexpected(format!("writing the metadata output: {e}"));
        if path == "-" {
            let mut out = io::stdout().lock();
            return out
                .write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(fail);
        }
        let mut options = fs::OpenOptions::new();
        options.create(true);
        if self.truncate.replace(false) {
            options.write(true).truncate(true);
        } else {
            options.append(true);
        }
        options
            .open(abspath(Path::new(path)))
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(fail)
    }
}

/// Python's `os.path.abspath`: joined to the working directory and
/// normalized without resolving links.
pub(crate) fn abspath(p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_owned()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Python's `os.path.realpath` for a path that may not exist: the longest
/// existing prefix resolved, the rest appended.
fn realpath(p: &Path) -> PathBuf {
    let abs = abspath(p);
    if let Ok(c) = abs.canonicalize() {
        return c;
    }
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => realpath(parent).join(name),
        _ => abs,
    }
}
