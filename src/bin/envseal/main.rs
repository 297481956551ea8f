//! `envseal`: encrypt and decrypt files in the AWS Encryption SDK message
//! format with AWS KMS keys and raw AES and raw RSA wrapping keys.
//!
//! Output files are written to a temporary file next to the destination and
//! renamed into place only on success, so a failed run never leaves a
//! partial (or unverified) output behind. Decrypted plaintext sent to stdout
//! is spooled to a temporary file first and released only once the whole
//! message has verified. SIGINT, SIGTERM and SIGHUP delete the temporary
//! file before the process exits (see `cleanup`).
#![forbid(unsafe_code)]

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
#[cfg(feature = "kms")]
use std::time::Duration;

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use envseal::blocking::Blocking;
#[cfg(feature = "kms")]
use envseal::kms::{KmsBounds, KmsClient, RetryMode};
use envseal::zeroize::Zeroizing;
use envseal::{
    AlgorithmSuite, CommitmentPolicy, Config, Decryptor, EncryptionContext, Error, Keyring, MultiKeyring,
    PolicyError, RawAesKeyring, RawRsaKeyring, RsaPadding, RsaPrivateKey, RsaPublicKey, WrappingKey,
};
#[cfg(feature = "kms")]
use envseal::{DiscoveryFilter, KmsDiscoveryKeyring, KmsKeyring};

mod cleanup;

use cleanup::TempOutput;

/// Built without the `kms` feature: KMS options are refused, never ignored.
#[cfg(not(feature = "kms"))]
#[derive(Clone, Debug)]
enum KmsClient {}

/// Buffer size for reading the input and writing the output.
const IO_BUFFER: usize = 256 * 1024;
/// Chunk size of the copy loops.
const COPY_CHUNK: usize = 64 * 1024;
/// Largest key file read (AES keys are at most 32 bytes; PEM files are small).
const MAX_KEY_FILE: u64 = 1 << 20;

#[derive(Parser, Debug)]
#[command(
    name = "envseal",
    version,
    about = "Envelope encryption compatible with the AWS Encryption SDK message format"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Encrypt a file (or stdin) into an ESDK message.
    Encrypt(EncryptArgs),
    /// Decrypt and verify an ESDK message.
    Decrypt(DecryptArgs),
    /// Check the AWS setup within a deadline: credential sources and
    /// shadowing, the provider and expiry of the credentials, the caller's
    /// identity (STS), and each --kms-key (DescribeKey). Prints each step
    /// with its attempts and latency; exits 1 with a one-line reason when a
    /// step fails.
    Doctor(DoctorArgs),
}

#[derive(Args, Debug)]
struct CommonArgs {
    /// Input file, or - for stdin. Never modified.
    #[arg(long, short = 'i', value_name = "PATH")]
    input: PathBuf,

    /// Output file, or - for stdout. Written atomically: a temporary file
    /// renamed into place on success.
    #[arg(long, short = 'o', value_name = "PATH")]
    output: PathBuf,

    /// Overwrite the output file if it exists.
    #[arg(long, short = 'f')]
    force: bool,

    /// Raw AES wrapping key: FILE holds the raw 16, 24 or 32 key bytes
    /// (repeatable; split at the first two colons).
    #[arg(long = "raw-aes-key", value_name = "NAMESPACE:NAME:FILE", value_parser = parse_aes_spec)]
    raw_aes_key: Vec<AesKeySpec>,

    /// Raw RSA wrapping key: PADDING is oaep-sha1, oaep-sha256, oaep-sha384,
    /// oaep-sha512 or pkcs1; PEMFILE is a PEM "PUBLIC KEY" to encrypt, a
    /// PKCS#8 "PRIVATE KEY" to decrypt (repeatable; split at the first three
    /// colons). Keys are combined in command-line order; the first one given
    /// generates the data key.
    #[arg(long = "raw-rsa-key", value_name = "NAMESPACE:NAME:PADDING:PEMFILE", value_parser = parse_rsa_spec)]
    raw_rsa_key: Vec<RsaKeySpec>,

    #[command(flatten)]
    kms: KmsArgs,

    /// Encryption context pair (repeatable; split at the first '='). On
    /// decrypt, each pair must be stored in the message with this value, or
    /// have been supplied (and not stored) when encrypting.
    #[arg(long = "context", short = 'c', value_name = "KEY=VALUE", value_parser = parse_context_pair)]
    context: Vec<(String, String)>,

    /// Commitment policy.
    #[arg(long = "commitment-policy", value_name = "POLICY", value_parser = parse_policy,
          default_value = "require-encrypt-require-decrypt")]
    commitment_policy: CommitmentPolicy,

    /// Most encrypted data keys a message may carry.
    #[arg(long = "max-encrypted-data-keys", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    max_encrypted_data_keys: Option<u64>,
}

/// AWS KMS options. Credentials and region come from the usual AWS chain
/// (environment, profile, web identity, ECS, IMDS) unless given here.
#[derive(Args, Debug)]
struct KmsArgs {
    /// AWS KMS key (ARN, key id or alias; repeatable; decrypting needs key
    /// ARNs). Combined with raw keys in command-line order: the first key
    /// given generates the data key.
    #[arg(long = "kms-key", value_name = "KEY_ID")]
    kms_key: Vec<String>,

    /// Decrypt with whichever KMS key the message names (in --region),
    /// limited by --discovery-partition/--discovery-account when given.
    #[arg(long = "kms-discovery")]
    kms_discovery: bool,

    /// Discovery filter: the partition KMS keys must be in (default aws when
    /// --discovery-account is given).
    #[arg(
        long = "discovery-partition",
        value_name = "PARTITION",
        requires = "discovery_account"
    )]
    discovery_partition: Option<String>,

    /// Discovery filter: an account KMS keys may belong to (repeatable).
    #[arg(
        long = "discovery-account",
        value_name = "ACCOUNT_ID",
        requires = "kms_discovery"
    )]
    discovery_account: Vec<String>,

    /// KMS endpoint URL (overrides AWS_ENDPOINT_URL_KMS / AWS_ENDPOINT_URL).
    #[arg(long = "kms-endpoint", value_name = "URL")]
    kms_endpoint: Option<String>,

    /// AWS region (overrides AWS_REGION and the profile).
    #[arg(long, value_name = "REGION")]
    region: Option<String>,

    /// KMS connect timeout per attempt [default: 2000].
    #[arg(long = "kms-connect-timeout-ms", value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    kms_connect_timeout_ms: Option<u64>,

    /// KMS read timeout (request sent to response headers) per attempt [default: 5000].
    #[arg(long = "kms-read-timeout-ms", value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    kms_read_timeout_ms: Option<u64>,

    /// KMS timeout for one whole attempt [default: 5000].
    #[arg(long = "kms-attempt-timeout-ms", value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    kms_attempt_timeout_ms: Option<u64>,

    /// Deadline for each keyring's KMS work, retries and backoff included [default: 10000].
    #[arg(long = "kms-deadline-ms", value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    kms_deadline_ms: Option<u64>,

    /// KMS attempts per call, the first included [default: 3].
    #[arg(long = "kms-max-attempts", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    kms_max_attempts: Option<u32>,

    /// KMS retry mode: adaptive (rate-limits itself after throttling) or standard.
    #[arg(long = "kms-retry-mode", value_name = "MODE", value_parser = ["adaptive", "standard"])]
    kms_retry_mode: Option<String>,

    /// KMS grant token sent with every call (repeatable).
    #[arg(long = "grant-token", value_name = "TOKEN")]
    grant_token: Vec<String>,

    /// Print the KMS call counters (calls, attempts, throttles, timeouts,
    /// latency) to stderr when done.
    #[arg(long = "kms-stats")]
    kms_stats: bool,
}

impl KmsArgs {
    fn used(&self) -> bool {
        !self.kms_key.is_empty() || self.kms_discovery
    }

    #[cfg(not(feature = "kms"))]
    fn client(&self, _runtime: &Blocking) -> Result<Option<KmsClient>, Failure> {
        if self.used() {
            return Err(Failure::usage(
                "this envseal was built without AWS KMS support (feature kms)",
            ));
        }
        Ok(None)
    }

    #[cfg(feature = "kms")]
    fn bounds(&self) -> KmsBounds {
        let ms = Duration::from_millis;
        let mut b = KmsBounds::default();
        if let Some(v) = self.kms_connect_timeout_ms {
            b = b.with_connect_timeout(ms(v));
        }
        if let Some(v) = self.kms_read_timeout_ms {
            b = b.with_read_timeout(ms(v));
        }
        if let Some(v) = self.kms_attempt_timeout_ms {
            b = b.with_attempt_timeout(ms(v));
        }
        if let Some(v) = self.kms_deadline_ms {
            b = b.with_deadline(ms(v));
        }
        if let Some(v) = self.kms_max_attempts {
            b = b.with_max_attempts(v);
        }
        match self.kms_retry_mode.as_deref() {
            Some("standard") => b = b.with_retry_mode(RetryMode::Standard),
            Some(_) => b = b.with_retry_mode(RetryMode::Adaptive),
            None => {}
        }
        b
    }

    /// The KMS client, if any KMS option asks for one.
    #[cfg(feature = "kms")]
    fn client(&self, runtime: &Blocking) -> Result<Option<KmsClient>, Failure> {
        if !self.used() {
            return Ok(None);
        }
        self.build_client(runtime, None).map(Some)
    }

    #[cfg(feature = "kms")]
    fn build_client(&self, runtime: &Blocking, sts_endpoint: Option<&str>) -> Result<KmsClient, Failure> {
        let mut builder = KmsClient::builder().bounds(self.bounds());
        if let Some(u) = sts_endpoint {
            builder = builder.sts_endpoint_url(u);
        }
        if let Some(r) = &self.region {
            builder = builder.region(r.clone());
        }
        if let Some(u) = &self.kms_endpoint {
            builder = builder.endpoint_url(u.clone());
        }
        runtime
            .block_on(builder.build())
            .map_err(|e| Failure::usage(bare(&e)))
    }
}

/// Prints the counters when dropped (success or failure) if `--kms-stats`.
struct StatsOnExit(Option<KmsClient>);

impl StatsOnExit {
    fn new(args: &KmsArgs, client: Option<&KmsClient>) -> Self {
        StatsOnExit(client.filter(|_| args.kms_stats).cloned())
    }
}

impl Drop for StatsOnExit {
    fn drop(&mut self) {
        #[cfg(feature = "kms")]
        if let Some(c) = &self.0 {
            print_kms_stats(c);
        }
    }
}

/// One line of KMS counters for `--kms-stats`.
#[cfg(feature = "kms")]
fn print_kms_stats(client: &KmsClient) {
    let s = client.stats();
    let ms =
        |d: Option<Duration>| d.map_or_else(|| "-".to_owned(), |d| format!("{:.1}", d.as_secs_f64() * 1e3));
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

#[derive(Args, Debug)]
struct DoctorArgs {
    #[command(flatten)]
    kms: KmsArgs,

    /// Deadline for resolving the credentials and validating them with STS,
    /// retries included; DescribeKey is bounded by the KMS options.
    #[arg(long = "deadline-ms", value_name = "MS", default_value_t = 3000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    deadline_ms: u64,

    /// STS endpoint URL (overrides AWS_ENDPOINT_URL_STS).
    #[arg(long = "sts-endpoint", value_name = "URL")]
    sts_endpoint: Option<String>,
}

#[cfg(not(feature = "kms"))]
fn doctor(_args: &DoctorArgs) -> Result<(), Failure> {
    Err(Failure::usage(
        "this envseal was built without AWS KMS support (feature kms)",
    ))
}

#[cfg(feature = "kms")]
fn doctor(args: &DoctorArgs) -> Result<(), Failure> {
    use envseal::kms::DoctorOptions;
    let runtime = Blocking::new().map_err(|e| Failure::runtime(bare(&e)))?;
    let client = args.kms.build_client(&runtime, args.sts_endpoint.as_deref())?;
    let options = DoctorOptions::default()
        .with_deadline(Duration::from_millis(args.deadline_ms))
        .with_keys(args.kms.kms_key.iter().cloned());
    let report = runtime.block_on(client.doctor(&options));
    let mut out = io::stdout().lock();
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
        Some(reason) => Err(Failure::runtime(format!("doctor: {reason}"))),
    }
}

#[derive(Args, Debug)]
struct EncryptArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// Algorithm suite: an ESDK name such as AES_256_GCM_HKDF_SHA512_COMMIT_KEY
    /// or a hex ID such as 0x0478 (default: the policy's default suite).
    #[arg(long, value_name = "ID", value_parser = parse_suite)]
    suite: Option<AlgorithmSuite>,

    /// Plaintext bytes per frame; 0 writes a non-framed body (held in memory).
    #[arg(long = "frame-length", value_name = "BYTES", default_value_t = envseal::DEFAULT_FRAME_LENGTH)]
    frame_length: u32,
}

#[derive(Args, Debug)]
struct DecryptArgs {
    #[command(flatten)]
    common: CommonArgs,

    /// Largest message header accepted, in bytes.
    #[arg(long = "max-header-size", value_name = "BYTES")]
    max_header_size: Option<usize>,

    /// Largest frame length accepted, in bytes.
    #[arg(long = "max-frame-length", value_name = "BYTES")]
    max_frame_length: Option<u32>,

    /// Largest non-framed body accepted (it is held in memory), in bytes.
    #[arg(long = "max-body-size", value_name = "BYTES")]
    max_body_size: Option<u64>,
}

#[derive(Clone, Debug)]
struct AesKeySpec {
    namespace: String,
    name: String,
    file: PathBuf,
}

#[derive(Clone, Debug)]
struct RsaKeySpec {
    namespace: String,
    name: String,
    padding: RsaPadding,
    file: PathBuf,
}

/// A keyring spec with its position on the command line.
enum KeySpec {
    Aes(AesKeySpec),
    Rsa(RsaKeySpec),
    /// A `--kms-key`; all of them form one keyring (see `build_keyring`).
    Kms,
}

fn parse_aes_spec(s: &str) -> Result<AesKeySpec, String> {
    let mut parts = s.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(namespace), Some(name), Some(file)) if !file.is_empty() => Ok(AesKeySpec {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            file: PathBuf::from(file),
        }),
        _ => Err("expected NAMESPACE:NAME:FILE".into()),
    }
}

fn parse_rsa_spec(s: &str) -> Result<RsaKeySpec, String> {
    let mut parts = s.splitn(4, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(namespace), Some(name), Some(padding), Some(file)) if !file.is_empty() => {
            let padding = RsaPadding::parse(padding).ok_or_else(|| {
                format!(
                    "unknown RSA padding {padding:?} (expected oaep-sha1, oaep-sha256, oaep-sha384, oaep-sha512 or pkcs1)"
                )
            })?;
            Ok(RsaKeySpec {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                padding,
                file: PathBuf::from(file),
            })
        }
        _ => Err("expected NAMESPACE:NAME:PADDING:PEMFILE".into()),
    }
}

fn parse_context_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
        None => Err("expected KEY=VALUE".into()),
    }
}

fn parse_policy(s: &str) -> Result<CommitmentPolicy, String> {
    CommitmentPolicy::parse(s).ok_or_else(|| {
        "expected require-encrypt-require-decrypt, require-encrypt-allow-decrypt or forbid-encrypt-allow-decrypt"
            .into()
    })
}

fn parse_suite(s: &str) -> Result<AlgorithmSuite, String> {
    AlgorithmSuite::parse(s).ok_or_else(|| {
        "unknown algorithm suite (expected an ESDK name such as AES_256_GCM_HKDF_SHA512_COMMIT_KEY or a hex ID such as 0x0478)"
            .into()
    })
}

/// What went wrong, and which exit code it gets.
#[derive(Debug)]
enum Failure {
    /// Bad command line or option combination: exit 2.
    Usage(String),
    /// Anything else: exit 1.
    Runtime(String),
}

impl Failure {
    fn runtime(msg: impl Into<String>) -> Self {
        Failure::Runtime(msg.into())
    }

    fn usage(msg: impl Into<String>) -> Self {
        Failure::Usage(msg.into())
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Runtime(e.to_string())
    }
}

/// Replaces control characters (newlines included) so a message stays on one line.
fn one_line(msg: &str) -> String {
    let s: String = msg
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    s.trim().to_owned()
}

fn main() -> ExitCode {
    if let Err(e) = cleanup::install() {
        let _ = writeln!(
            io::stderr(),
            "envseal: cannot handle signals: {}",
            one_line(&e.to_string())
        );
        return ExitCode::from(1);
    }
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let _ = writeln!(io::stderr(), "envseal: internal error: {}", one_line(&msg));
    }));
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let (code, msg) = match failure {
                Failure::Usage(m) => (2, m),
                Failure::Runtime(m) => (1, m),
            };
            let _ = writeln!(io::stderr(), "envseal: {}", one_line(&msg));
            ExitCode::from(code)
        }
    }
}

/// Reduces a clap error to one line: its first line without `error: `, plus
/// the indented list that follows when the first line ends with a colon
/// (e.g. the missing required arguments).
fn clap_one_line(err: &clap::Error) -> String {
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

fn parse_args() -> Result<(Cli, ArgMatches), Failure> {
    use clap::error::ErrorKind;
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = e.print();
                std::process::exit(0);
            }
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
                return Err(Failure::usage(
                    "a subcommand is required: encrypt, decrypt or doctor (see envseal --help)",
                ));
            }
            _ => return Err(Failure::usage(clap_one_line(&e))),
        },
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| Failure::usage(clap_one_line(&e)))?;
    Ok((cli, matches))
}

fn run() -> Result<(), Failure> {
    let (cli, matches) = parse_args()?;
    let sub = matches
        .subcommand()
        .map(|(_, m)| m)
        .ok_or_else(|| Failure::usage("a subcommand is required: encrypt, decrypt or doctor"))?;
    match cli.command {
        Command::Encrypt(args) => {
            let specs = ordered_keys(&args.common, sub);
            encrypt(&args, specs)
        }
        Command::Decrypt(args) => {
            let specs = ordered_keys(&args.common, sub);
            decrypt(&args, specs)
        }
        Command::Doctor(args) => doctor(&args),
    }
}

/// The key specs in command-line order (clap collects each flag separately).
fn ordered_keys(common: &CommonArgs, m: &ArgMatches) -> Vec<KeySpec> {
    let aes_idx: Vec<usize> = m
        .indices_of("raw_aes_key")
        .map(Iterator::collect)
        .unwrap_or_default();
    let rsa_idx: Vec<usize> = m
        .indices_of("raw_rsa_key")
        .map(Iterator::collect)
        .unwrap_or_default();
    let mut all: Vec<(usize, KeySpec)> = Vec::new();
    for (i, spec) in common.raw_aes_key.iter().enumerate() {
        all.push((
            aes_idx.get(i).copied().unwrap_or(usize::MAX),
            KeySpec::Aes(spec.clone()),
        ));
    }
    for (i, spec) in common.raw_rsa_key.iter().enumerate() {
        all.push((
            rsa_idx.get(i).copied().unwrap_or(usize::MAX),
            KeySpec::Rsa(spec.clone()),
        ));
    }
    let kms_idx: Vec<usize> = m.indices_of("kms_key").map(Iterator::collect).unwrap_or_default();
    for i in 0..common.kms.kms_key.len() {
        all.push((kms_idx.get(i).copied().unwrap_or(usize::MAX), KeySpec::Kms));
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, s)| s).collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Encrypt,
    Decrypt,
}

fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let mut file = File::open(path)
        .map_err(|e| Failure::runtime(format!("cannot open key file {}: {e}", path.display())))?;
    let too_large = || Failure::runtime(format!("key file {} is too large", path.display()));
    // Sized up front and never grown: growing reallocates, leaving a copy
    // of the key bytes in freed memory. A regular file gets its size plus
    // one byte (to see that it ended); a pipe or device the largest size.
    let room = match file.metadata() {
        Ok(m) if m.is_file() && m.len() > MAX_KEY_FILE => return Err(too_large()),
        Ok(m) if m.is_file() => m.len(),
        _ => MAX_KEY_FILE,
    };
    let mut buf = Zeroizing::new(vec![0u8; room as usize + 1]);
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            // Larger than its size said (it grew), or than the limit.
            return Err(too_large());
        }
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Failure::runtime(format!(
                    "cannot read key file {}: {e}",
                    path.display()
                )))
            }
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// The label of the first PEM block, e.g. `PUBLIC KEY`.
fn pem_label(pem: &str) -> Option<&str> {
    let start = pem.find("-----BEGIN ")? + "-----BEGIN ".len();
    let rest = &pem[start..];
    let end = rest.find("-----")?;
    Some(rest[..end].trim())
}

fn build_keyring(
    specs: Vec<KeySpec>,
    mode: Mode,
    kms: &KmsArgs,
    client: Option<&KmsClient>,
) -> Result<MultiKeyring, Failure> {
    if specs.is_empty() && !kms.kms_discovery {
        return Err(Failure::usage(
            "at least one key is required (--kms-key, --kms-discovery, --raw-aes-key or --raw-rsa-key)",
        ));
    }
    if kms.kms_discovery && mode == Mode::Encrypt {
        return Err(Failure::usage(
            "--kms-discovery only decrypts; name the keys to encrypt with --kms-key",
        ));
    }
    let mut keyrings: Vec<Arc<dyn Keyring>> = Vec::with_capacity(specs.len() + 1);
    #[cfg(feature = "kms")]
    let mut kms_placed = false;
    for spec in specs {
        match spec {
            #[cfg(not(feature = "kms"))]
            KeySpec::Kms => {
                let _ = client;
                return Err(Failure::usage(
                    "this envseal was built without AWS KMS support (feature kms)",
                ));
            }
            #[cfg(feature = "kms")]
            // All --kms-key values form one keyring, at the first one's
            // place: one deadline for all the KMS work of an operation, and
            // the spec's check that no two are replicas of one MRK.
            KeySpec::Kms if kms_placed => {}
            #[cfg(feature = "kms")]
            KeySpec::Kms => {
                kms_placed = true;
                let client = client.ok_or_else(|| Failure::runtime("no KMS client"))?;
                let keyring = KmsKeyring::new(client.clone(), kms.kms_key.iter().cloned())
                    .map_err(|e| Failure::usage(format!("--kms-key: {}", bare(&e))))?
                    .with_grant_tokens(kms.grant_token.iter().cloned());
                keyrings.push(Arc::new(keyring));
            }
            KeySpec::Aes(s) => {
                let bytes = read_key_file(&s.file)?;
                let what = format!("--raw-aes-key {}:{}", s.namespace, s.name);
                let key = WrappingKey::new(bytes).map_err(|e| {
                    Failure::runtime(format!("{what}: key file {}: {}", s.file.display(), bare(&e)))
                })?;
                let keyring = RawAesKeyring::new(s.namespace.clone(), s.name.clone(), key)
                    .map_err(|e| Failure::usage(format!("{what}: {}", bare(&e))))?;
                keyrings.push(Arc::new(keyring));
            }
            KeySpec::Rsa(s) => {
                let bytes = read_key_file(&s.file)?;
                let what = format!("--raw-rsa-key {}:{}", s.namespace, s.name);
                let file = s.file.display();
                let pem = std::str::from_utf8(&bytes)
                    .map_err(|_| Failure::runtime(format!("{what}: key file {file} is not a PEM file")))?;
                let label = pem_label(pem).unwrap_or("");
                let (public, private) = match mode {
                    Mode::Encrypt => {
                        if label.contains("PRIVATE KEY") {
                            return Err(Failure::runtime(format!(
                                "{what}: key file {file} holds a private key; encrypting needs the RSA public key \
                                 (PEM \"PUBLIC KEY\"), which is never derived from the private key"
                            )));
                        }
                        let key = RsaPublicKey::from_pem(pem).map_err(|e| {
                            Failure::runtime(format!("{what}: key file {file}: {}", bare(&e)))
                        })?;
                        (Some(key), None)
                    }
                    Mode::Decrypt => {
                        if label == "PUBLIC KEY" || label == "RSA PUBLIC KEY" {
                            return Err(Failure::runtime(format!(
                                "{what}: key file {file} holds a public key; decrypting needs the RSA private key \
                                 (PKCS#8 PEM \"PRIVATE KEY\")"
                            )));
                        }
                        if label == "RSA PRIVATE KEY" {
                            return Err(Failure::runtime(format!(
                                "{what}: key file {file} is a PKCS#1 \"RSA PRIVATE KEY\"; convert it to PKCS#8 \
                                 (openssl pkcs8 -topk8 -nocrypt)"
                            )));
                        }
                        let key = RsaPrivateKey::from_pem(pem).map_err(|e| {
                            Failure::runtime(format!("{what}: key file {file}: {}", bare(&e)))
                        })?;
                        (None, Some(key))
                    }
                };
                let keyring =
                    RawRsaKeyring::new(s.namespace.clone(), s.name.clone(), s.padding, public, private)
                        .map_err(|e| Failure::usage(format!("{what}: {}", bare(&e))))?;
                keyrings.push(Arc::new(keyring));
            }
        }
    }
    #[cfg(feature = "kms")]
    if kms.kms_discovery {
        let client = client.ok_or_else(|| Failure::runtime("no KMS client"))?;
        let mut keyring = KmsDiscoveryKeyring::new(client.clone())
            .map_err(|e| Failure::usage(format!("--kms-discovery: {}", bare(&e))))?
            .with_grant_tokens(kms.grant_token.iter().cloned());
        if !kms.discovery_account.is_empty() {
            let partition = kms
                .discovery_partition
                .clone()
                .unwrap_or_else(|| "aws".to_owned());
            let filter = DiscoveryFilter::new(partition, kms.discovery_account.iter().cloned())
                .map_err(|e| Failure::usage(bare(&e)))?;
            keyring = keyring.with_filter(filter);
        }
        keyrings.push(Arc::new(keyring));
    }
    MultiKeyring::from_keyrings(keyrings).map_err(|e| Failure::usage(bare(&e)))
}

/// An error's message without the `invalid request: ` prefix of [`Error::Config`].
fn bare(e: &Error) -> String {
    match e {
        Error::Config(m) => m.clone(),
        other => other.to_string(),
    }
}

fn build_context(pairs: &[(String, String)]) -> Result<EncryptionContext, Failure> {
    let mut ctx = EncryptionContext::new();
    for (k, v) in pairs {
        if ctx.insert(k.clone(), v.clone()).is_some() {
            return Err(Failure::usage(format!(
                "--context key {k:?} given more than once"
            )));
        }
    }
    Ok(ctx)
}

fn is_stdio(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// Whether `a` and `b` name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(ca), Ok(cb)) = (a.canonicalize(), b.canonicalize()) {
        if ca == cb {
            return true;
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) {
            return ma.dev() == mb.dev() && ma.ino() == mb.ino();
        }
    }
    false
}

/// Where the output goes.
enum Target {
    /// `-`.
    Stdout,
    /// An existing character device or FIFO (e.g. `/dev/null`): written in
    /// place, never replaced.
    Stream(PathBuf),
    /// A regular file, written through a temporary file and a rename.
    File(PathBuf),
}

/// Whether an existing output is a stream written in place (character
/// device or FIFO) rather than a file replaced on success.
fn is_stream(meta: &fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        t.is_char_device() || t.is_fifo()
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        false
    }
}

/// Checks the input/output pair before anything is read or written, and
/// resolves where the output goes.
fn check_paths(common: &CommonArgs) -> Result<Target, Failure> {
    let (input, output) = (&common.input, &common.output);
    if !is_stdio(input) {
        match fs::metadata(input) {
            Ok(m) if m.is_dir() => {
                return Err(Failure::runtime(format!(
                    "input {} is a directory",
                    input.display()
                )));
            }
            Ok(_) => {}
            Err(e) => {
                return Err(Failure::runtime(format!(
                    "cannot open input {}: {e}",
                    input.display()
                )));
            }
        }
    }
    if is_stdio(output) {
        return Ok(Target::Stdout);
    }
    let meta = fs::metadata(output);
    if let Ok(m) = &meta {
        if m.is_dir() {
            return Err(Failure::runtime(format!(
                "output {} is a directory",
                output.display()
            )));
        }
        if is_stream(m) {
            return Ok(Target::Stream(output.clone()));
        }
        if !m.is_file() {
            return Err(Failure::runtime(format!(
                "output {} is not a regular file",
                output.display()
            )));
        }
    }
    if !is_stdio(input) && same_file(input, output) {
        return Err(Failure::usage(format!(
            "input and output are the same file ({}); the input is never modified",
            input.display()
        )));
    }
    if !common.force && fs::symlink_metadata(output).is_ok() {
        return Err(Failure::runtime(format!(
            "output file {} already exists (use --force to overwrite)",
            output.display()
        )));
    }
    // An existing symlink is followed: the file it names is replaced.
    let dest = match meta {
        Ok(_) => output.canonicalize().unwrap_or_else(|_| output.clone()),
        Err(_) => output.clone(),
    };
    Ok(Target::File(dest))
}

fn open_input(path: &Path) -> Result<BufReader<Box<dyn Read>>, Failure> {
    let inner: Box<dyn Read> = if is_stdio(path) {
        Box::new(io::stdin())
    } else {
        Box::new(
            File::open(path)
                .map_err(|e| Failure::runtime(format!("cannot open input {}: {e}", path.display())))?,
        )
    };
    Ok(BufReader::with_capacity(IO_BUFFER, inner))
}

fn open_stream(path: &Path) -> Result<File, Failure> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Failure::runtime(format!("cannot open output {}: {e}", path.display())))
}

/// Where the output goes until it is committed.
enum Sink {
    /// Encrypted output streamed straight to stdout.
    Stdout(BufWriter<io::StdoutLock<'static>>),
    /// Encrypted output streamed straight to a device or FIFO.
    Stream(BufWriter<File>),
    /// Decrypted output spooled until verified, then copied to stdout
    /// (`dest` = `None`) or to a device or FIFO.
    Spool {
        writer: BufWriter<File>,
        dest: Option<PathBuf>,
    },
    /// A temporary file next to `dest`, renamed onto it on success.
    Temp {
        writer: BufWriter<TempOutput>,
        dest: PathBuf,
        force: bool,
    },
}

impl Sink {
    /// `spool`: hold everything back until [`Sink::commit`] unless the
    /// output is a file (a temporary file is deleted on failure anyway).
    fn open(target: Target, force: bool, spool: bool) -> Result<Self, Failure> {
        let dest = match target {
            Target::Stdout | Target::Stream(_) if spool => {
                let dest = match target {
                    Target::Stream(p) => Some(p),
                    _ => None,
                };
                let file = tempfile::tempfile()
                    .map_err(|e| Failure::runtime(format!("cannot create a temporary file: {e}")))?;
                return Ok(Sink::Spool {
                    writer: BufWriter::with_capacity(IO_BUFFER, file),
                    dest,
                });
            }
            Target::Stdout => {
                return Ok(Sink::Stdout(BufWriter::with_capacity(
                    IO_BUFFER,
                    io::stdout().lock(),
                )));
            }
            Target::Stream(p) => {
                return Ok(Sink::Stream(BufWriter::with_capacity(
                    IO_BUFFER,
                    open_stream(&p)?,
                )));
            }
            Target::File(dest) => dest,
        };
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = TempOutput::create_in(parent).map_err(|e| {
            Failure::runtime(format!(
                "cannot create a temporary file in {}: {e}",
                parent.display()
            ))
        })?;
        Ok(Sink::Temp {
            writer: BufWriter::with_capacity(IO_BUFFER, tmp),
            dest,
            force,
        })
    }

    /// Flushes and puts the output in place.
    fn commit(self) -> Result<(), Failure> {
        let werr = |e: io::Error| Failure::runtime(format!("writing output: {e}"));
        match self {
            Sink::Stdout(mut w) => w.flush().map_err(werr),
            Sink::Stream(mut w) => w.flush().map_err(werr),
            Sink::Spool { writer, dest } => {
                let mut file = writer.into_inner().map_err(|e| werr(e.into_error()))?;
                file.rewind().map_err(werr)?;
                let mut reader = BufReader::with_capacity(IO_BUFFER, file);
                let mut out: Box<dyn Write> = match dest {
                    None => Box::new(io::stdout().lock()),
                    Some(p) => Box::new(open_stream(&p)?),
                };
                let mut out = BufWriter::with_capacity(IO_BUFFER, &mut out);
                io::copy(&mut reader, &mut out).map_err(werr)?;
                out.flush().map_err(werr)
            }
            Sink::Temp { writer, dest, force } => {
                let tmp = writer.into_inner().map_err(|e| werr(e.into_error()))?;
                tmp.persist(&dest, force).map_err(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        Failure::runtime(format!(
                            "output file {} already exists (use --force to overwrite)",
                            dest.display()
                        ))
                    } else {
                        Failure::runtime(format!("cannot write output {}: {e}", dest.display()))
                    }
                })
            }
        }
    }
}

impl Sink {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Sink::Stdout(w) => w,
            Sink::Stream(w) => w,
            Sink::Spool { writer, .. } => writer,
            Sink::Temp { writer, .. } => writer,
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

/// Copies `reader` to `writer` in bounded chunks, telling read errors from
/// write errors.
fn pump<R: Read, W: Write>(
    reader: &mut R,
    writer: &mut W,
    read_err: impl Fn(io::Error) -> Failure,
    write_err: impl Fn(io::Error) -> Failure,
) -> Result<(), Failure> {
    let mut buf = Zeroizing::new(vec![0u8; COPY_CHUNK]);
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_err(e)),
        };
        writer.write_all(&buf[..n]).map_err(&write_err)?;
    }
}

fn base_config(common: &CommonArgs) -> Result<envseal::ConfigBuilder, Failure> {
    let mut builder = Config::builder().commitment_policy(common.commitment_policy);
    if let Some(max) = common.max_encrypted_data_keys {
        let max =
            usize::try_from(max).map_err(|_| Failure::usage("--max-encrypted-data-keys is too large"))?;
        builder = builder.max_encrypted_data_keys(max);
    }
    Ok(builder)
}

fn config_error(e: Error) -> Failure {
    let mut msg = bare(&e);
    if msg.contains("cannot be used to encrypt under commitment policy") {
        msg.push_str(
            " (non-committing suites need --commitment-policy forbid-encrypt-allow-decrypt; \
             committing suites need a require-encrypt policy)",
        );
    }
    Failure::usage(msg)
}

/// Errors from the library while streaming: envseal errors keep their
/// message, plain I/O errors say which side failed.
fn stream_error(e: io::Error, side: &str) -> Failure {
    match Error::from_io(e) {
        Error::Io(io) => Failure::runtime(format!("{side}: {io}")),
        other => Failure::runtime(other.to_string()),
    }
}

fn encrypt(args: &EncryptArgs, specs: Vec<KeySpec>) -> Result<(), Failure> {
    let common = &args.common;
    let mut builder = base_config(common)?.frame_length(args.frame_length);
    if let Some(suite) = args.suite {
        builder = builder.suite(suite);
    }
    let config = builder.build().map_err(config_error)?;
    let context = build_context(&common.context)?;
    let runtime = Blocking::new()?;
    let client = common.kms.client(&runtime)?;
    let keyring = build_keyring(specs, Mode::Encrypt, &common.kms, client.as_ref())?;
    let target = check_paths(common)?;
    let _stats = StatsOnExit::new(&common.kms, client.as_ref());

    let encryptor = runtime
        .encryptor(&config, &keyring, &context)
        .map_err(|e| match e {
            Error::Config(_) => Failure::usage(bare(&e)),
            other => Failure::from(other),
        })?;
    let mut input = open_input(&common.input)?;
    let sink = Sink::open(target, common.force, false)?;
    let mut writer = encryptor
        .wrap_output(sink)
        .map_err(|e| stream_error(e, "writing output"))?;
    pump(
        &mut input,
        &mut writer,
        |e| Failure::runtime(format!("reading input: {e}")),
        |e| stream_error(e, "writing output"),
    )?;
    let sink = writer.finish().map_err(|e| stream_error(e, "writing output"))?;
    sink.commit()
}

/// Context keys the caller gave that the message does not store.
fn unstored_keys(given: &EncryptionContext, stored: &EncryptionContext) -> Vec<String> {
    given
        .iter()
        .filter(|(k, _)| !stored.contains_key(k))
        .map(|(k, _)| k.to_owned())
        .collect()
}

/// Adds hints to decrypt failures whose library message is deliberately terse.
fn decrypt_error(e: Error, unstored: &[String], namespaces: &[String]) -> Failure {
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

fn decrypt(args: &DecryptArgs, specs: Vec<KeySpec>) -> Result<(), Failure> {
    let common = &args.common;
    let mut builder = base_config(common)?;
    if let Some(n) = args.max_header_size {
        builder = builder.max_header_size(n);
    }
    if let Some(n) = args.max_frame_length {
        builder = builder.max_frame_length(n);
    }
    if let Some(n) = args.max_body_size {
        builder = builder.max_body_size(n);
    }
    let config = builder.build().map_err(config_error)?;
    let context = build_context(&common.context)?;
    let runtime = Blocking::new()?;
    let client = common.kms.client(&runtime)?;
    let keyring = build_keyring(specs, Mode::Decrypt, &common.kms, client.as_ref())?;
    let target = check_paths(common)?;
    let _stats = StatsOnExit::new(&common.kms, client.as_ref());

    let input = open_input(&common.input)?;
    // Created before reading: an unwritable destination fails early. Dropped
    // (and deleted) on any failure.
    let mut sink = Sink::open(target, common.force, true)?;
    let decryptor = Decryptor::new(input, &config).map_err(|e| decrypt_error(e, &[], &[]))?;
    let unstored = unstored_keys(&context, decryptor.encryption_context());
    let mut namespaces: Vec<String> = Vec::new();
    for edk in decryptor.encrypted_data_keys() {
        let mut ns: String = format!("{:?}", edk.provider_id).chars().take(80).collect();
        if edk.provider_id.len() > 78 {
            ns.push('…');
        }
        if !namespaces.contains(&ns) && namespaces.len() < 8 {
            namespaces.push(ns);
        }
    }
    // Safe: the output is a temporary file (or spool) discarded on failure.
    let decryptor = decryptor.allow_signed_streaming();
    let mut reader = runtime
        .decrypt_stream(decryptor, &keyring, &context)
        .map_err(|e| decrypt_error(e, &unstored, &namespaces))?;
    pump(
        &mut reader,
        &mut sink,
        // The header (and any extra context pair) verified already, so a
        // failure here is not about --context.
        |e| decrypt_error(Error::from_io(e), &[], &[]),
        |e| Failure::runtime(format!("writing output: {e}")),
    )?;
    if !reader.is_complete() {
        return Err(Failure::runtime("the message ended before it verified"));
    }
    sink.commit()
}

#[cfg(test)]
mod tests {
    #[test]
    fn key_files_are_read_into_a_buffer_sized_up_front() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 100, 8191, 8192, 20_000, 1 << 20] {
            let path = dir.path().join(format!("key-{len}"));
            std::fs::write(&path, vec![b'k'; len]).unwrap();
            let Ok(buf) = super::read_key_file(&path) else {
                panic!("reading a {len}-byte key file failed");
            };
            assert_eq!(buf.len(), len);
            // Sized from the file, never grown: a buffer that grows is
            // reallocated and leaves a copy of the key in freed memory.
            assert!(
                buf.capacity() <= len + 1,
                "{len} bytes read into a buffer of capacity {}: not sized from the file",
                buf.capacity()
            );
        }
        let path = dir.path().join("too-large");
        std::fs::write(&path, vec![b'k'; (1 << 20) + 1]).unwrap();
        assert!(super::read_key_file(&path).is_err());
    }
}
