//! `envseal encrypt` and `envseal decrypt`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::read::DecoderReader;
use base64::write::EncoderWriter;
use envseal::{Client, Config, Decryptor, EncryptionContext, Error};

use crate::cli::{CommonArgs, DecryptArgs, EncryptArgs};
use crate::error::{bare, config_error, decrypt_error, stream_error, unstored_keys, Failure};
use crate::keys::{build_keyring, KeySpec, Mode, Remote};
use crate::kms::{runtime, StatsOnExit};
use crate::output::{check_paths, open_input, pump, Sink, SkipWhitespace, Tracked};

pub(crate) fn base_config(common: &CommonArgs) -> Result<envseal::ConfigBuilder, Failure> {
    let mut builder = Config::builder().commitment_policy(common.commitment_policy);
    if let Some(max) = common.max_encrypted_data_keys {
        let max =
            usize::try_from(max).map_err(|_| Failure::usage("--max-encrypted-data-keys is too large"))?;
        builder = builder.max_encrypted_data_keys(max);
    }
    Ok(builder)
}

pub(crate) fn build_context(pairs: &[(String, String)]) -> Result<EncryptionContext, Failure> {
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

/// The keyring from the command line's keys, with the KMS client and key
/// store they need, and the `--kms-stats` printer.
fn keyring_for(
    common: &CommonArgs,
    specs: Vec<KeySpec>,
    mode: Mode,
    runtime: &tokio::runtime::Runtime,
) -> Result<(envseal::MultiKeyring, StatsOnExit), Failure> {
    let kms = common.kms.client(runtime, common.hierarchy.used())?;
    let store = common.hierarchy.store(runtime, kms.as_ref(), &common.kms.aws)?;
    let remote = Remote {
        runtime,
        kms: &common.kms,
        client: kms.as_ref(),
        hierarchy: &common.hierarchy,
        store: store.as_ref(),
    };
    let keyring = build_keyring(specs, mode, &remote)?;
    let stats =
        StatsOnExit::new(&common.kms.aws, kms.as_ref()).with_dynamodb(store.as_ref().map(|s| s.counters()));
    Ok((keyring, stats))
}

pub(crate) fn encrypt(args: &EncryptArgs, specs: Vec<KeySpec>) -> Result<(), Failure> {
    let common = &args.common;
    let mut builder = base_config(common)?.frame_length(args.frame_length);
    if let Some(suite) = args.suite {
        builder = builder.suite(suite);
    }
    let context = build_context(&common.context)?;
    if let Some(k) = args
        .required_context_key
        .iter()
        .find(|k| !context.contains_key(k))
    {
        return Err(Failure::usage(format!(
            "--required-context-key {k:?} needs its pair in --context {k}=VALUE"
        )));
    }
    let config = builder
        .required_encryption_context_keys(args.required_context_key.iter().cloned())
        .build()
        .map_err(config_error)?;
    let runtime = runtime()?;
    let (keyring, _stats) = keyring_for(common, specs, Mode::Encrypt, &runtime)?;
    let client = Client::builder(keyring).config(config).build()?;
    let target = check_paths(common)?;

    let input = open_input(&common.input)?;
    let sink = Sink::open(target, common.force, false)?;
    let sink = if args.encode {
        let mut encoder = seal(&client, &runtime, &context, input, EncoderWriter::new(sink, &B64))?;
        encoder
            .finish()
            .map_err(|e| Failure::runtime(format!("writing output: {e}")))?
    } else {
        seal(&client, &runtime, &context, input, sink)?
    };
    sink.commit()
}

/// Encrypts `input` into `output` as one message; returns the output.
fn seal<R: std::io::Read, W: std::io::Write>(
    client: &Client,
    runtime: &tokio::runtime::Runtime,
    context: &EncryptionContext,
    input: R,
    output: W,
) -> Result<W, Failure> {
    let mut writer = runtime
        .block_on(client.encrypt_stream(context, None, output))
        .map_err(|e| match e {
            Error::Config { .. } => Failure::usage(bare(&e)),
            Error::Io(io) => Failure::runtime(format!("writing output: {io}")),
            other => Failure::from(other),
        })?;
    // Reads straight into the writer's batches: reading, sealing (in the
    // background) and writing overlap.
    let mut input = Tracked {
        inner: input,
        failed: false,
    };
    if let Err(e) = writer.copy_from(&mut input) {
        return Err(if input.failed {
            Failure::runtime(format!("reading input: {e}"))
        } else {
            stream_error(e, "writing output")
        });
    }
    writer.finish().map_err(|e| stream_error(e, "writing output"))
}

pub(crate) fn decrypt(args: &DecryptArgs, specs: Vec<KeySpec>) -> Result<(), Failure> {
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
    // Safe: the output is a temporary file (or spool) discarded on failure.
    let config = builder
        .allow_signed_streaming(!args.decrypt_unsigned)
        .build()
        .map_err(config_error)?;
    let context = build_context(&common.context)?;
    let runtime = runtime()?;
    let (keyring, _stats) = keyring_for(common, specs, Mode::Decrypt, &runtime)?;
    let client = Client::builder(keyring).config(config).build()?;
    let target = check_paths(common)?;

    let input = open_input(&common.input)?;
    let input: Box<dyn std::io::Read> = if args.decode {
        Box::new(DecoderReader::new(SkipWhitespace { inner: input }, &B64))
    } else {
        Box::new(input)
    };
    // Created before reading: an unwritable destination fails early. Dropped
    // (and deleted) on any failure.
    let mut sink = Sink::open(target, common.force, true)?;
    let decryptor = Decryptor::new(input, client.config()).map_err(|e| decrypt_error(e, &[], &[]))?;
    if args.decrypt_unsigned && decryptor.suite().is_signed() {
        // Before any keyring call.
        return Err(Failure::runtime(format!(
            "the message is signed (suite 0x{:04X} {}); --decrypt-unsigned decrypts unsigned messages only",
            decryptor.suite().id(),
            decryptor.suite().name()
        )));
    }
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
    let mut reader = runtime
        .block_on(client.open_stream(decryptor, &context))
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
