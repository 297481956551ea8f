//! Message headers as JSON: `envseal inspect` prints one without any key;
//! `--metadata-output` writes a line per message.
//!
//! The `header` and `header_auth` objects have the shape aws-encryption-cli
//! writes with `--metadata-output`, so scripts that read its metadata read
//! these: base64 for bytes, data keys sorted by provider id and key info,
//! `version` as "1.0" or "2.0", `content_type` as the format's number.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use envseal::blocking::{Client, Decryptor};
use envseal::{CommitmentPolicy, Config, ContentType, MessageVersion};
use serde_json::{json, Map, Value};

use crate::cli::{CommonArgs, InspectArgs};
use crate::error::{decrypt_error, Failure};
use crate::files::{Done, Job};
use crate::output::{is_stdio, open_input};

/// The header fields of `d`, as aws-encryption-cli's metadata shows them.
pub(crate) fn header_json<R: Read>(d: &Decryptor<R>) -> Value {
    let suite = d.suite();
    let v1 = suite.message_version() == MessageVersion::V1;
    let mut edks: Vec<_> = d.encrypted_data_keys().iter().collect();
    let sort_key = |e: &envseal::EncryptedDataKey| [e.provider_id.as_bytes(), &e.provider_info].concat();
    edks.sort_by_key(|e| sort_key(e));
    let edks: Vec<Value> = edks
        .into_iter()
        .map(|e| {
            json!({
                "key_provider": {
                    "provider_id": B64.encode(e.provider_id.as_bytes()),
                    "key_info": B64.encode(&e.provider_info),
                },
                "encrypted_data_key": B64.encode(&e.ciphertext),
            })
        })
        .collect();
    let context: Map<String, Value> = d
        .encryption_context()
        .iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
        .collect();
    json!({
        "version": if v1 { "1.0" } else { "2.0" },
        "type": if v1 { json!(128) } else { Value::Null },
        // The Python SDK's name (aws-encryption-cli writes it): the spec's,
        // without "_NO_KDF".
        "algorithm": suite.name().trim_end_matches("_NO_KDF"),
        "message_id": B64.encode(d.message_id()),
        "encryption_context": context,
        "encrypted_data_keys": edks,
        "content_type": match d.content_type() {
            ContentType::NonFramed => 1,
            ContentType::Framed => 2,
        },
        "header_iv_length": if v1 { json!(12) } else { Value::Null },
        "frame_length": d.frame_length(),
        "commitment_key": d.commitment().map(|c| B64.encode(c)),
    })
}

/// The header authentication, as aws-encryption-cli's metadata shows it.
pub(crate) fn header_auth_json<R: Read>(d: &Decryptor<R>) -> Value {
    let (iv, tag) = d.header_auth();
    json!({ "iv": B64.encode(iv), "tag": B64.encode(tag) })
}

/// A config that parses any header a reader may meet: legacy
/// (non-committing) ones too.
fn any_header() -> Result<Config, Failure> {
    Config::builder()
        .commitment_policy(CommitmentPolicy::ForbidEncryptAllowDecrypt)
        .max_encrypted_data_keys(usize::from(u16::MAX))
        .build()
        .map_err(|e| Failure::Internal(e.to_string()))
}

/// A client that only reads headers (under [`any_header`]): it has no
/// keys, and none of its keyring's calls is ever made.
fn header_reader() -> Result<&'static Client, Failure> {
    // One per process: --metadata-output reads a header per file.
    static READER: std::sync::OnceLock<Client> = std::sync::OnceLock::new();
    if let Some(reader) = READER.get() {
        return Ok(reader);
    }
    struct NoKeys;
    #[envseal::async_trait]
    impl envseal::Keyring for NoKeys {
        async fn on_encrypt(&self, _: &mut envseal::EncryptionMaterials) -> envseal::Result<()> {
            Err(envseal::Error::Misuse("the header reader has no keys".into()))
        }
        async fn on_decrypt(
            &self,
            _: &envseal::DecryptionMaterials,
            _: &[envseal::EncryptedDataKey],
        ) -> envseal::Result<Option<envseal::DataKey>> {
            Ok(None)
        }
    }
    let reader = Client::builder(NoKeys)
        .config(any_header()?)
        .build()
        .map_err(|e| Failure::Internal(e.to_string()))?;
    Ok(READER.get_or_init(|| reader))
}

/// The `header` and `header_auth` objects of a header just built (an
/// [`envseal::Encryptor::header`]).
pub(crate) fn header_of(bytes: &[u8]) -> Result<(Value, Value), Failure> {
    let d = header_reader()?
        .decryptor(bytes)
        .map_err(|e| Failure::Internal(format!("cannot read back the header written: {e}")))?;
    Ok((header_json(&d), header_auth_json(&d)))
}

/// `envseal inspect`: the header of the message at `--input`, read without
/// any key, so nothing in it is authenticated.
pub(crate) fn inspect(args: &InspectArgs) -> Result<(), Failure> {
    let input = open_input(&args.input)?;
    let d = header_reader()?
        .decryptor(input)
        .map_err(|e| decrypt_error(e, &[], &[]))?;
    let out = inspect_json(&d);
    let mut stdout = io::stdout().lock();
    serde_json::to_writer(&mut stdout, &out)
        .map_err(io::Error::from)
        .and_then(|()| writeln!(stdout))
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::UnwritableOutput(format!("writing output: {e}")))
}

fn inspect_json<R: Read>(d: &Decryptor<R>) -> Value {
    let suite = d.suite();
    json!({
        "authenticated": false,
        "algorithm_id": format!("0x{:04X}", suite.id()),
        "algorithm_name": suite.name(),
        "signed": suite.is_signed(),
        "header_length": d.header_len(),
        // The data keys in message order, readable: provider id and, when
        // it is text (a KMS key ARN, say), the key info.
        "keys": d
            .encrypted_data_keys()
            .iter()
            .map(|e| json!({
                "provider_id": e.provider_id,
                "key_info": std::str::from_utf8(&e.provider_info).ok(),
            }))
            .collect::<Vec<_>>(),
        "header": header_json(d),
        "header_auth": header_auth_json(d),
    })
}

/// Where `--metadata-output` lines go.
pub(crate) struct MetadataOut {
    out: Box<dyn Write>,
}

impl MetadataOut {
    /// Opens `--metadata-output` (appended to, unless
    /// `--overwrite-metadata`), before any message is written.
    pub(crate) fn open(common: &CommonArgs) -> Result<Option<Self>, Failure> {
        let Some(path) = &common.metadata_output else {
            return Ok(None);
        };
        if is_stdio(path) {
            if common.output.as_deref().is_some_and(is_stdio) {
                return Err(Failure::Usage(
                    "--metadata-output - and --output - cannot both be stdout".into(),
                ));
            }
            return Ok(Some(MetadataOut {
                out: Box::new(io::stdout()),
            }));
        }
        if common.input.iter().any(|i| crate::output::same_file(i, path)) {
            return Err(Failure::Usage(format!(
                "--metadata-output {} is an input; inputs are never modified",
                path.display()
            )));
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(!common.overwrite_metadata)
            .truncate(common.overwrite_metadata)
            .open(path)
            .map_err(|e| {
                Failure::UnwritableOutput(format!("cannot open --metadata-output {}: {e}", path.display()))
            })?;
        Ok(Some(MetadataOut { out: Box::new(file) }))
    }

    /// Writes one line (and flushes it: a later failure keeps it).
    pub(crate) fn write(&mut self, line: &Value) -> Result<(), Failure> {
        let mut text = serde_json::to_vec(line).map_err(|e| Failure::Internal(e.to_string()))?;
        text.push(b'\n');
        self.out
            .write_all(&text)
            .and_then(|()| self.out.flush())
            .map_err(|e| Failure::UnwritableOutput(format!("writing --metadata-output: {e}")))
    }
}

/// One message's metadata line: what aws-encryption-cli writes (`mode`,
/// `input`, `output`, `header`, `header_auth`) plus the sizes and what the
/// message cost in KMS calls and cache lookups (`kms`, `cache`: counts
/// for this message; null without a KMS client or a cache).
pub(crate) fn message_line(mode: &str, job: &Job, done: &Done) -> Value {
    let counted = done.counters.as_ref();
    #[cfg(feature = "kms")]
    let kms = match counted.map(|(before, after)| (&before.kms, &after.kms)) {
        Some((Some(b), Some(a))) => json!({
            "calls": a.calls() - b.calls(),
            "generate_data_key": a.generate_data_key_calls - b.generate_data_key_calls,
            "encrypt": a.encrypt_calls - b.encrypt_calls,
            "decrypt": a.decrypt_calls - b.decrypt_calls,
            "attempts": a.attempts - b.attempts,
            "retries": a.retries - b.retries,
            "throttles": a.throttles - b.throttles,
            "failures": a.failures - b.failures,
        }),
        _ => Value::Null,
    };
    #[cfg(not(feature = "kms"))]
    let kms = Value::Null;
    let cache = match counted.map(|(before, after)| (&before.cache, &after.cache)) {
        Some((Some(b), Some(a))) => json!({
            "hits": a.hits - b.hits,
            "misses": a.misses - b.misses,
            "bypasses": a.bypasses - b.bypasses,
            "entries": a.entries,
        }),
        _ => Value::Null,
    };
    json!({
        "mode": mode,
        "input": job.input.display().to_string(),
        "output": job.output_name(),
        "input_bytes": done.input_bytes,
        "output_bytes": done.output_bytes,
        "header": done.headers.as_ref().map(|h| &h.0),
        "header_auth": done.headers.as_ref().map(|h| &h.1),
        "kms": kms,
        "cache": cache,
    })
}
