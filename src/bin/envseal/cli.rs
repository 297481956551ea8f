//! The command line: clap's structs and value parsers.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use envseal::{AlgorithmSuite, CommitmentPolicy};

pub(crate) use crate::parse::{build_context, AesKeySpec, EcdhSpec, KmsEcdhSpec, RsaKeySpec};
use crate::parse::{
    parse_aes_spec, parse_context_pair, parse_ecdh_one, parse_ecdh_static, parse_kms_ecdh_discovery,
    parse_kms_ecdh_static, parse_policy, parse_rsa_spec, parse_suite,
};

#[derive(Parser, Debug)]
#[command(
    name = "envseal",
    version,
    about = "Envelope encryption compatible with the AWS Encryption SDK message format"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,

    /// FIPS 140-3: run only if this envseal was built with feature `fips`
    /// and its crypto module (AWS-LC-FIPS) is in FIPS mode, and send every
    /// AWS call to the services' FIPS endpoints (as AWS_USE_FIPS_ENDPOINT=true
    /// does; an endpoint given by URL is used as given). See docs/fips.md.
    #[arg(long, global = true)]
    pub(crate) fips: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Encrypt a file (or stdin) into an ESDK message.
    Encrypt(EncryptArgs),
    /// Decrypt and verify an ESDK message.
    Decrypt(DecryptArgs),
    /// Print a message's header as one JSON object, read without any key:
    /// its suite, message id, stored encryption context, encrypted data
    /// keys (provider ids and key info) and frame length. Nothing in it is
    /// authenticated ("authenticated": false).
    Inspect(InspectArgs),
    /// Check the AWS setup within a deadline: credential sources and
    /// shadowing, the provider and expiry of the credentials, the caller's
    /// identity (STS), and each --kms-key (DescribeKey). Prints each step
    /// with its attempts and latency; exits 1 with a one-line reason when a
    /// step fails.
    Doctor(DoctorArgs),
    /// Manage a branch key store (a DynamoDB table of branch keys for the
    /// AWS KMS Hierarchical keyring): create-table, create-key, version-key,
    /// list-versions, describe.
    #[command(name = "key-store", subcommand)]
    KeyStore(KeyStoreCommand),
    /// Re-encrypt messages under new keys: each is decrypted with the old
    /// keys (the usual key flags) and encrypted again with the --new-* keys
    /// in one stream, keeping its suite, frame length and encryption
    /// context unless told otherwise. The plaintext is never written
    /// anywhere; each output completes or leaves nothing.
    Reencrypt(Box<ReencryptArgs>),
    /// AWS's aws-encryption-cli 4.3 command line on envseal: its arguments
    /// and behaviour, so that scripts written for it run unchanged (also
    /// when envseal runs under the name aws-encryption-cli, a symbolic
    /// link). docs/aws-encryption-cli.md lists each argument and the
    /// differences.
    #[command(name = "aws-encryption-cli", disable_help_flag = true)]
    AwsEncryptionCli(AwsCliPassthrough),
    /// Print a shell completion script on stdout, e.g.
    /// `envseal completions bash > ~/.local/share/bash-completion/completions/envseal`.
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout, or write it and one page per
    /// subcommand into --out-dir, e.g. `envseal man --out-dir ~/.local/share/man/man1`.
    Man(ManArgs),
}

#[derive(Args, Debug)]
pub(crate) struct CompletionsArgs {
    /// The shell the script is for.
    #[arg(value_enum, value_name = "SHELL")]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
pub(crate) struct ManArgs {
    /// Write envseal.1 and a page per subcommand (envseal-encrypt.1, ...)
    /// into this directory, replacing the pages there.
    #[arg(long = "out-dir", value_name = "DIR")]
    pub(crate) out_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct InspectArgs {
    /// The message: a file, or - for stdin. Only its header is read.
    #[arg(long, short = 'i', value_name = "PATH")]
    pub(crate) input: PathBuf,
}

/// `envseal key-store ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum KeyStoreCommand {
    /// Create the key store table (branch-key-id hash key, type range key),
    /// unless it exists with that key schema.
    CreateTable(KeyStoreTableArgs),
    /// Create a branch key; prints its id alone on stdout.
    CreateKey(KeyStoreCreateArgs),
    /// Make a new version of a branch key active (older versions still
    /// decrypt); prints the new version on stdout.
    VersionKey(KeyStoreVersionArgs),
    /// List a branch key's versions, oldest first: a line each, `VERSION
    /// CREATE_TIME`, with ` ACTIVE` after the active one (or --json). Reads
    /// the items (one DynamoDB Query); unwraps nothing.
    ListVersions(KeyStoreListArgs),
    /// Print the key store's configuration (GetKeyStoreInfo): its id,
    /// table, logical name, KMS key and grant tokens, as `name: value`
    /// lines (or --json, in the Material Providers Library's field names).
    /// Makes no call.
    Describe(KeyStoreDescribeArgs),
}

#[derive(Args, Debug)]
pub(crate) struct KeyStoreListArgs {
    #[command(flatten)]
    pub(crate) store: KeyStoreKeyArgs,

    /// The branch key whose versions to list.
    #[arg(long = "branch-key-id", value_name = "ID")]
    pub(crate) branch_key_id: String,

    /// Print one JSON array of objects with `version`, `create_time` and
    /// `active` (a boolean).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct KeyStoreDescribeArgs {
    #[command(flatten)]
    pub(crate) store: KeyStoreKeyArgs,

    /// The key store's id to report (default: a new UUID, as the Material
    /// Providers Library makes one for a store built without one).
    #[arg(long = "key-store-id", value_name = "ID")]
    pub(crate) key_store_id: Option<String>,

    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct KeyStoreTableArgs {
    /// The DynamoDB table of the key store.
    #[arg(long = "key-store-table", value_name = "TABLE")]
    pub(crate) key_store_table: String,

    #[command(flatten)]
    pub(crate) aws: AwsArgs,
}

/// The key store a branch key command works on.
#[derive(Args, Debug)]
pub(crate) struct KeyStoreKeyArgs {
    /// The DynamoDB table of the key store.
    #[arg(long = "key-store-table", value_name = "TABLE")]
    pub(crate) key_store_table: String,

    /// The KMS key (ARN) that protects the branch keys.
    #[arg(long = "key-store-kms-key", value_name = "ARN")]
    pub(crate) key_store_kms_key: String,

    /// The logical key store name bound into every branch key (default:
    /// the table name).
    #[arg(long = "key-store-name", value_name = "LOGICAL")]
    pub(crate) key_store_name: Option<String>,

    #[command(flatten)]
    pub(crate) aws: AwsArgs,
}

#[derive(Args, Debug)]
pub(crate) struct KeyStoreCreateArgs {
    #[command(flatten)]
    pub(crate) store: KeyStoreKeyArgs,

    /// A branch key id of your own (needs --context; default: a new UUID).
    #[arg(long = "branch-key-id", value_name = "ID", requires = "context")]
    pub(crate) branch_key_id: Option<String>,

    /// Encryption context pair bound into the branch key (repeatable).
    #[arg(long = "context", short = 'c', value_name = "KEY=VALUE", value_parser = parse_context_pair)]
    pub(crate) context: Vec<(String, String)>,
}

#[derive(Args, Debug)]
pub(crate) struct KeyStoreVersionArgs {
    #[command(flatten)]
    pub(crate) store: KeyStoreKeyArgs,

    /// The branch key to version.
    #[arg(long = "branch-key-id", value_name = "ID")]
    pub(crate) branch_key_id: String,
}

/// The AWS KMS Hierarchical keyring: branch keys from a key store.
#[derive(Args, Debug)]
pub(crate) struct HierarchyArgs {
    /// Branch key for an AWS KMS Hierarchical keyring (repeatable; needs
    /// --key-store-table and --key-store-kms-key). Combined with the other
    /// keys in command-line order.
    #[arg(long = "branch-key-id", value_name = "ID")]
    pub(crate) branch_key_id: Vec<String>,

    /// The DynamoDB table of the key store.
    #[arg(long = "key-store-table", value_name = "TABLE")]
    pub(crate) key_store_table: Option<String>,

    /// The KMS key (ARN) that protects the branch keys.
    #[arg(long = "key-store-kms-key", value_name = "ARN")]
    pub(crate) key_store_kms_key: Option<String>,

    /// The logical key store name (default: the table name).
    #[arg(long = "key-store-name", value_name = "LOGICAL")]
    pub(crate) key_store_name: Option<String>,

    /// How long an unwrapped branch key stays cached, in seconds.
    #[arg(long = "branch-key-ttl-s", value_name = "N", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub(crate) branch_key_ttl_s: u64,
}

#[derive(Args, Debug)]
pub(crate) struct CommonArgs {
    /// Input file, or - for stdin; with several files, or a directory and
    /// --recursive, --output is a directory. Inputs are never modified.
    #[arg(long, short = 'i', value_name = "PATH", num_args = 1.., required = true)]
    pub(crate) input: Vec<PathBuf>,

    /// Output file, or - for stdout, or a directory: each input file goes
    /// there under its own name plus --suffix (a tree keeps its folders).
    /// Files are written atomically: a temporary file renamed into place
    /// on success.
    #[arg(long, short = 'o', value_name = "PATH", required = true)]
    pub(crate) output: Option<PathBuf>,

    /// Overwrite output files that exist.
    #[arg(long, short = 'f')]
    pub(crate) force: bool,

    /// Take the files under a directory --input, at any depth (symbolic
    /// links are followed only to files inside the tree).
    #[arg(long, short = 'r')]
    pub(crate) recursive: bool,

    /// Appended to each input file's name in an output directory (default
    /// .encrypted on encrypt, .decrypted on decrypt; may be empty).
    #[arg(long, value_name = "SUFFIX")]
    pub(crate) suffix: Option<String>,

    /// Write one JSON object a line per message (header, paths, sizes, KMS
    /// and cache counters) to PATH, or - for stdout; appended to.
    #[arg(long = "metadata-output", value_name = "PATH")]
    pub(crate) metadata_output: Option<PathBuf>,

    /// Truncate the --metadata-output file rather than append to it.
    #[arg(long = "overwrite-metadata", requires = "metadata_output")]
    pub(crate) overwrite_metadata: bool,

    /// No progress bar and no summary line on success (errors still print).
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,

    /// With several input files, how many are processed at once (default:
    /// the number of cores). Each still completes or leaves nothing;
    /// failure lines and --metadata-output lines keep the inputs' order.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) jobs: Option<u16>,

    #[command(flatten)]
    pub(crate) cache: CacheArgs,

    /// Raw AES wrapping key: FILE holds the raw 16, 24 or 32 key bytes
    /// (repeatable; split at the first two colons).
    #[arg(long = "raw-aes-key", value_name = "NAMESPACE:NAME:FILE", value_parser = parse_aes_spec)]
    pub(crate) raw_aes_key: Vec<AesKeySpec>,

    /// Raw RSA wrapping key: PADDING is oaep-sha1, oaep-sha256, oaep-sha384,
    /// oaep-sha512 or pkcs1; PEMFILE is a PEM "PUBLIC KEY" to encrypt, a
    /// PKCS#8 "PRIVATE KEY" to decrypt (repeatable; split at the first three
    /// colons). Keys are combined in command-line order; the first one given
    /// generates the data key.
    #[arg(long = "raw-rsa-key", value_name = "NAMESPACE:NAME:PADDING:PEMFILE", value_parser = parse_rsa_spec)]
    pub(crate) raw_rsa_key: Vec<RsaKeySpec>,

    /// Raw ECDH, static keys: this side's PKCS#8 private key (PEM) and the
    /// other side's public key (PEM "PUBLIC KEY" or DER); encrypts, and
    /// decrypts messages between the two keys either way (repeatable).
    /// CURVE is p256, p384 or p521.
    #[arg(long = "raw-ecdh-static", value_name = "CURVE:SENDER_PRIVATE_PEM:RECIPIENT_PUBLIC_FILE",
          value_parser = parse_ecdh_static)]
    pub(crate) raw_ecdh_static: Vec<EcdhSpec>,

    /// Raw ECDH, a fresh key per message to the recipient's public key
    /// (encrypt only; repeatable).
    #[arg(long = "raw-ecdh-ephemeral", value_name = "CURVE:RECIPIENT_PUBLIC_FILE",
          value_parser = parse_ecdh_one)]
    pub(crate) raw_ecdh_ephemeral: Vec<EcdhSpec>,

    /// Raw ECDH, the recipient's private key: decrypts what any sender
    /// sent to it, raw or AWS KMS ECDH (decrypt only; repeatable).
    #[arg(long = "raw-ecdh-discovery", value_name = "CURVE:RECIPIENT_PRIVATE_PEM",
          value_parser = parse_ecdh_one)]
    pub(crate) raw_ecdh_discovery: Vec<EcdhSpec>,

    #[command(flatten)]
    pub(crate) kms: KmsArgs,

    #[command(flatten)]
    pub(crate) hierarchy: HierarchyArgs,

    /// Encryption context pair (repeatable; split at the first '='). On
    /// decrypt, each pair must be stored in the message with this value, or
    /// have been supplied (and not stored) when encrypting.
    #[arg(long = "context", short = 'c', value_name = "KEY=VALUE", value_parser = parse_context_pair)]
    pub(crate) context: Vec<(String, String)>,

    /// Commitment policy.
    #[arg(long = "commitment-policy", value_name = "POLICY", value_parser = parse_policy,
          default_value = "require-encrypt-require-decrypt")]
    pub(crate) commitment_policy: CommitmentPolicy,

    /// Most encrypted data keys a message may carry.
    #[arg(long = "max-encrypted-data-keys", value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_encrypted_data_keys: Option<u64>,
}

impl CommonArgs {
    /// Files processed at once: `--jobs`, else the number of cores.
    pub(crate) fn jobs(&self) -> usize {
        self.jobs.map_or_else(
            || std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            usize::from,
        )
    }
}

/// A data key cache shared by the messages of one run (files of a
/// directory, say): a new data key only when a limit is reached.
#[derive(Args, Debug)]
pub(crate) struct CacheArgs {
    /// Cache data keys for at most this many seconds (turns the cache on;
    /// the other limits need it).
    #[arg(long = "cache-max-age-s", value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    pub(crate) cache_max_age_s: Option<u64>,

    /// Most messages one cached data key encrypts [default: 2^32].
    #[arg(long = "cache-max-messages", value_name = "N", requires = "cache_max_age_s",
          value_parser = clap::value_parser!(u64).range(1..=4_294_967_296))]
    pub(crate) cache_max_messages: Option<u64>,

    /// Most plaintext bytes one cached data key encrypts [default: 2^63 - 1].
    #[arg(long = "cache-max-bytes", value_name = "BYTES", requires = "cache_max_age_s",
          value_parser = clap::value_parser!(u64).range(1..=9_223_372_036_854_775_807))]
    pub(crate) cache_max_bytes: Option<u64>,
}

/// AWS KMS options. Credentials and region come from the usual AWS chain
/// (environment, profile, web identity, ECS, IMDS) unless given here.
#[derive(Args, Debug)]
pub(crate) struct KmsArgs {
    /// AWS KMS key (ARN, key id or alias; repeatable; decrypting needs key
    /// ARNs). Combined with raw keys in command-line order: the first key
    /// given generates the data key.
    #[arg(long = "kms-key", value_name = "KEY_ID")]
    pub(crate) kms_key: Vec<String>,

    /// AWS KMS RSA key (ARN of an RSA ENCRYPT_DECRYPT key): encrypts
    /// locally with --kms-rsa-public-key, decrypts through KMS. Unsigned
    /// suites only (e.g. --suite 0x0478).
    #[arg(long = "kms-rsa-key", value_name = "ARN", requires = "kms_rsa_padding")]
    pub(crate) kms_rsa_key: Option<String>,

    /// The KMS RSA key's padding: oaep-sha1 or oaep-sha256.
    #[arg(long = "kms-rsa-padding", value_name = "PADDING", value_parser = ["oaep-sha1", "oaep-sha256"],
          requires = "kms_rsa_key")]
    pub(crate) kms_rsa_padding: Option<String>,

    /// The KMS RSA key's public key (PEM "PUBLIC KEY", from KMS
    /// GetPublicKey); needed to encrypt.
    #[arg(long = "kms-rsa-public-key", value_name = "PEMFILE", requires = "kms_rsa_key")]
    pub(crate) kms_rsa_public_key: Option<PathBuf>,

    /// AWS KMS ECDH, a KMS key agreement key (the sender, last since the
    /// ARN holds colons) to the recipient's public key; encrypts, and
    /// decrypts between the two either way (repeatable).
    #[arg(long = "kms-ecdh-static", value_name = "CURVE:RECIPIENT_PUBLIC_FILE:SENDER_KMS_ARN",
          value_parser = parse_kms_ecdh_static)]
    pub(crate) kms_ecdh_static: Vec<KmsEcdhSpec>,

    /// AWS KMS ECDH discovery: decrypts what any sender sent to the KMS key
    /// agreement key's public key (decrypt only; repeatable).
    #[arg(long = "kms-ecdh-discovery", value_name = "CURVE:RECIPIENT_KMS_ARN", value_parser = parse_kms_ecdh_discovery)]
    pub(crate) kms_ecdh_discovery: Vec<KmsEcdhSpec>,

    /// Decrypt with whichever KMS key the message names (in --region),
    /// limited by --discovery-partition/--discovery-account when given.
    #[arg(long = "kms-discovery")]
    pub(crate) kms_discovery: bool,

    /// Discovery filter: the partition KMS keys must be in (default aws when
    /// --discovery-account is given).
    #[arg(
        long = "discovery-partition",
        value_name = "PARTITION",
        requires = "discovery_account"
    )]
    pub(crate) discovery_partition: Option<String>,

    /// Discovery filter: an account KMS keys may belong to (repeatable).
    #[arg(
        long = "discovery-account",
        value_name = "ACCOUNT_ID",
        requires = "kms_discovery"
    )]
    pub(crate) discovery_account: Vec<String>,

    #[command(flatten)]
    pub(crate) aws: AwsArgs,
}

/// The AWS clients' options: endpoints, region and the bounds of every
/// call (KMS, and DynamoDB for a key store).
#[derive(Args, Clone, Debug)]
pub(crate) struct AwsArgs {
    /// KMS endpoint URL (overrides AWS_ENDPOINT_URL_KMS / AWS_ENDPOINT_URL).
    #[arg(long = "kms-endpoint", value_name = "URL")]
    pub(crate) kms_endpoint: Option<String>,

    /// AWS region (overrides AWS_REGION and the profile).
    #[arg(long, value_name = "REGION")]
    pub(crate) region: Option<String>,

    /// DynamoDB endpoint URL for the key store (overrides
    /// AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL).
    #[arg(long = "dynamodb-endpoint", value_name = "URL")]
    pub(crate) dynamodb_endpoint: Option<String>,

    /// KMS (and DynamoDB) connect timeout per attempt [default: 2000].
    #[arg(long = "kms-connect-timeout-ms", value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) kms_connect_timeout_ms: Option<u64>,

    /// KMS (and DynamoDB) read timeout (request sent to response headers) per attempt [default: 5000].
    #[arg(long = "kms-read-timeout-ms", value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) kms_read_timeout_ms: Option<u64>,

    /// KMS (and DynamoDB) timeout for one whole attempt [default: 5000].
    #[arg(long = "kms-attempt-timeout-ms", value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) kms_attempt_timeout_ms: Option<u64>,

    /// Deadline for each keyring's KMS (and DynamoDB) work, retries and backoff included [default: 10000].
    #[arg(long = "kms-deadline-ms", value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) kms_deadline_ms: Option<u64>,

    /// KMS (and DynamoDB) attempts per call, the first included [default: 3].
    #[arg(long = "kms-max-attempts", value_name = "N", value_parser = clap::value_parser!(u32).range(1..=20))]
    pub(crate) kms_max_attempts: Option<u32>,

    /// KMS retry mode: adaptive (rate-limits itself after throttling) or standard.
    #[arg(long = "kms-retry-mode", value_name = "MODE", value_parser = ["adaptive", "standard"])]
    pub(crate) kms_retry_mode: Option<String>,

    /// KMS grant token sent with every call (repeatable).
    #[arg(long = "grant-token", value_name = "TOKEN")]
    pub(crate) grant_token: Vec<String>,

    /// Print the KMS call counters (calls, attempts, throttles, timeouts,
    /// latency; DynamoDB calls and branch key cache hits) to stderr when done.
    #[arg(long = "kms-stats")]
    pub(crate) kms_stats: bool,
}

#[derive(Args, Debug)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    pub(crate) kms: KmsArgs,

    /// Deadline for resolving the credentials and validating them with STS,
    /// retries included; DescribeKey is bounded by the KMS options.
    #[arg(long = "deadline-ms", value_name = "MS", default_value_t = 3000,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub(crate) deadline_ms: u64,

    /// STS endpoint URL (overrides AWS_ENDPOINT_URL_STS).
    #[arg(long = "sts-endpoint", value_name = "URL")]
    pub(crate) sts_endpoint: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct EncryptArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,

    /// Algorithm suite: an ESDK name such as AES_256_GCM_HKDF_SHA512_COMMIT_KEY
    /// or a hex ID such as 0x0478 (default: the policy's default suite).
    #[arg(long, value_name = "ID", value_parser = parse_suite)]
    pub(crate) suite: Option<AlgorithmSuite>,

    /// Plaintext bytes per frame; 0 writes a non-framed body (held in memory).
    #[arg(long = "frame-length", value_name = "BYTES", default_value_t = envseal::DEFAULT_FRAME_LENGTH)]
    pub(crate) frame_length: u32,

    /// An encryption context key whose pair (also given with --context) is
    /// authenticated but not stored in the message: decrypting needs it
    /// again as --context (repeatable).
    #[arg(long = "required-context-key", value_name = "KEY")]
    pub(crate) required_context_key: Vec<String>,

    /// Write the message in base64 (standard alphabet, padded, no line
    /// breaks), as aws-encryption-cli --encode does.
    #[arg(long)]
    pub(crate) encode: bool,
}

#[derive(Args, Debug)]
pub(crate) struct DecryptArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,

    /// Largest message header accepted, in bytes.
    #[arg(long = "max-header-size", value_name = "BYTES")]
    pub(crate) max_header_size: Option<usize>,

    /// Largest frame length accepted, in bytes.
    #[arg(long = "max-frame-length", value_name = "BYTES")]
    pub(crate) max_frame_length: Option<u32>,

    /// Largest non-framed body accepted (it is held in memory), in bytes.
    #[arg(long = "max-body-size", value_name = "BYTES")]
    pub(crate) max_body_size: Option<u64>,

    /// Read the message as base64 (as --encode writes it; whitespace and
    /// line breaks are ignored).
    #[arg(long)]
    pub(crate) decode: bool,

    /// Refuse signed messages (the ECDSA suites) before any key is used:
    /// only unsigned messages decrypt, as with aws-encryption-cli
    /// --decrypt-unsigned.
    #[arg(long = "decrypt-unsigned")]
    pub(crate) decrypt_unsigned: bool,
}

#[derive(Args, Debug)]
pub(crate) struct ReencryptArgs {
    #[command(flatten)]
    pub(crate) common: CommonArgs,

    #[command(flatten)]
    pub(crate) new: NewKeyArgs,

    /// The new messages' suite (default: each old message's own).
    #[arg(long, value_name = "ID", value_parser = parse_suite)]
    pub(crate) suite: Option<AlgorithmSuite>,

    /// The new messages' frame length, 0 for non-framed (default: each old
    /// message's own).
    #[arg(long = "frame-length", value_name = "BYTES")]
    pub(crate) frame_length: Option<u32>,

    /// A pair added to the carried encryption context (repeatable; a pair
    /// the message has must keep its value).
    #[arg(long = "add-context", value_name = "KEY=VALUE", value_parser = parse_context_pair)]
    pub(crate) add_context: Vec<(String, String)>,

    /// A context key the new messages require (authenticated, not stored;
    /// repeatable). Pairs the old message did not store stay required.
    #[arg(long = "required-context-key", value_name = "KEY")]
    pub(crate) required_context_key: Vec<String>,

    /// Replace each input file with its new message: renamed over it only
    /// once the new message is written, synced to disk and decrypted back
    /// with the new keys (instead of --output).
    #[arg(long = "in-place")]
    pub(crate) in_place: bool,
}

/// The keys `reencrypt` encrypts with: the encrypt key flags, prefixed
/// `new-`. Combined in command-line order; the first generates.
#[derive(Args, Debug)]
pub(crate) struct NewKeyArgs {
    /// A raw AES wrapping key of the new messages (as --raw-aes-key).
    #[arg(long = "new-raw-aes-key", value_name = "NAMESPACE:NAME:FILE", value_parser = parse_aes_spec)]
    pub(crate) new_raw_aes_key: Vec<AesKeySpec>,

    /// A raw RSA public key of the new messages (as --raw-rsa-key).
    #[arg(long = "new-raw-rsa-key", value_name = "NAMESPACE:NAME:PADDING:PEMFILE", value_parser = parse_rsa_spec)]
    pub(crate) new_raw_rsa_key: Vec<RsaKeySpec>,

    /// A raw ECDH static key pair of the new messages (as --raw-ecdh-static).
    #[arg(long = "new-raw-ecdh-static", value_name = "CURVE:SENDER_PRIVATE_PEM:RECIPIENT_PUBLIC_FILE",
          value_parser = parse_ecdh_static)]
    pub(crate) new_raw_ecdh_static: Vec<EcdhSpec>,

    /// A raw ECDH recipient of the new messages (as --raw-ecdh-ephemeral).
    #[arg(long = "new-raw-ecdh-ephemeral", value_name = "CURVE:RECIPIENT_PUBLIC_FILE",
          value_parser = parse_ecdh_one)]
    pub(crate) new_raw_ecdh_ephemeral: Vec<EcdhSpec>,

    /// An AWS KMS key of the new messages (as --kms-key).
    #[arg(long = "new-kms-key", value_name = "KEY_ID")]
    pub(crate) new_kms_key: Vec<String>,

    /// An AWS KMS RSA key of the new messages (as --kms-rsa-key: unsigned
    /// suites only; needs --new-kms-rsa-padding and
    /// --new-kms-rsa-public-key).
    #[arg(long = "new-kms-rsa-key", value_name = "ARN", requires_all = ["new_kms_rsa_padding", "new_kms_rsa_public_key"])]
    pub(crate) new_kms_rsa_key: Option<String>,

    /// The new KMS RSA key's padding: oaep-sha1 or oaep-sha256.
    #[arg(long = "new-kms-rsa-padding", value_name = "PADDING", value_parser = ["oaep-sha1", "oaep-sha256"],
          requires = "new_kms_rsa_key")]
    pub(crate) new_kms_rsa_padding: Option<String>,

    /// The new KMS RSA key's public key (PEM "PUBLIC KEY").
    #[arg(
        long = "new-kms-rsa-public-key",
        value_name = "PEMFILE",
        requires = "new_kms_rsa_key"
    )]
    pub(crate) new_kms_rsa_public_key: Option<PathBuf>,

    /// An AWS KMS ECDH key pair of the new messages (as --kms-ecdh-static).
    #[arg(long = "new-kms-ecdh-static", value_name = "CURVE:RECIPIENT_PUBLIC_FILE:SENDER_KMS_ARN",
          value_parser = parse_kms_ecdh_static)]
    pub(crate) new_kms_ecdh_static: Vec<KmsEcdhSpec>,

    /// A branch key of the new messages (as --branch-key-id; needs
    /// --new-key-store-table and --new-key-store-kms-key).
    #[arg(long = "new-branch-key-id", value_name = "ID")]
    pub(crate) new_branch_key_id: Vec<String>,

    /// The key store of --new-branch-key-id.
    #[arg(long = "new-key-store-table", value_name = "TABLE")]
    pub(crate) new_key_store_table: Option<String>,

    /// The KMS key (ARN) that protects the new branch keys.
    #[arg(long = "new-key-store-kms-key", value_name = "ARN")]
    pub(crate) new_key_store_kms_key: Option<String>,

    /// The logical name of the new key store (default: its table name).
    #[arg(long = "new-key-store-name", value_name = "LOGICAL")]
    pub(crate) new_key_store_name: Option<String>,
}

/// The parser's command: the derive's, with `reencrypt`'s --output
/// optional under --in-place (the one place it is).
pub(crate) fn command() -> clap::Command {
    use clap::CommandFactory;
    Cli::command().mut_subcommand("reencrypt", |c| {
        c.mut_arg("output", |a| {
            a.required(false)
                .required_unless_present("in_place")
                .conflicts_with("in_place")
        })
    })
}

impl NewKeyArgs {
    /// The new keys' KMS options, on the same AWS settings as the old
    /// keys' (region, endpoints, bounds).
    pub(crate) fn kms_args(&self, aws: &AwsArgs) -> KmsArgs {
        KmsArgs {
            kms_key: self.new_kms_key.clone(),
            kms_rsa_key: self.new_kms_rsa_key.clone(),
            kms_rsa_padding: self.new_kms_rsa_padding.clone(),
            kms_rsa_public_key: self.new_kms_rsa_public_key.clone(),
            kms_ecdh_static: self.new_kms_ecdh_static.clone(),
            kms_ecdh_discovery: Vec::new(),
            kms_discovery: false,
            discovery_partition: None,
            discovery_account: Vec::new(),
            aws: aws.clone(),
        }
    }

    /// The new keys' key store options (the branch key TTL is the old
    /// side's).
    pub(crate) fn hierarchy_args(&self, branch_key_ttl_s: u64) -> HierarchyArgs {
        HierarchyArgs {
            branch_key_id: self.new_branch_key_id.clone(),
            key_store_table: self.new_key_store_table.clone(),
            key_store_kms_key: self.new_key_store_kms_key.clone(),
            key_store_name: self.new_key_store_name.clone(),
            branch_key_ttl_s,
        }
    }
}

/// `envseal aws-encryption-cli ARGS`: the arguments go, unparsed, to the
/// drop-in (src/bin/envseal/awscli/), which takes them before clap does.
#[derive(Args, Debug)]
pub(crate) struct AwsCliPassthrough {
    /// aws-encryption-cli's arguments (see its --help).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
    pub(crate) args: Vec<std::ffi::OsString>,
}
