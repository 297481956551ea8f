//! Message headers as JSON: `envseal inspect` prints one without any key.
//!
//! The `header` and `header_auth` objects have the shape aws-encryption-cli
//! writes with `--metadata-output`, so scripts that read its metadata read
//! these: base64 for bytes, data keys sorted by provider id and key info,
//! `version` as "1.0" or "2.0", `content_type` as the format's number.

use std::io::{self, Read, Write};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use envseal::{CommitmentPolicy, Config, ContentType, Decryptor, MessageVersion};
use serde_json::{json, Map, Value};

use crate::cli::InspectArgs;
use crate::error::{decrypt_error, Failure};
use crate::output::open_input;

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

/// `envseal inspect`: the header of the message at `--input`, read without
/// any key, so nothing in it is authenticated.
pub(crate) fn inspect(args: &InspectArgs) -> Result<(), Failure> {
    let input = open_input(&args.input)?;
    // Any message a reader may meet: legacy (non-committing) ones too.
    let config = Config::builder()
        .commitment_policy(CommitmentPolicy::ForbidEncryptAllowDecrypt)
        .build()
        .map_err(|e| Failure::runtime(e.to_string()))?;
    let d = Decryptor::new(input, &config).map_err(|e| decrypt_error(e, &[], &[]))?;
    let out = inspect_json(&d);
    let mut stdout = io::stdout().lock();
    serde_json::to_writer(&mut stdout, &out)
        .map_err(io::Error::from)
        .and_then(|()| writeln!(stdout))
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::runtime(format!("writing output: {e}")))
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
