//! `envseal reencrypt`: messages decrypted with the old keys and encrypted
//! with the --new-* keys as one stream each (the library's
//! `blocking::Client::reencryptor`), to files, stdout, an output directory
//! or, with --in-place, over the inputs once the new message reads back.

use std::io;

use envseal::blocking::Client;
use envseal::{EncryptionContext, Error, ReencryptOptions};

use crate::cli::{build_context, ReencryptArgs};
use crate::commands::{base_config, client_for, keyring_from, run_jobs, Run};
use crate::error::{config_error, decrypt_error, Failure};
use crate::files::{plan, plan_in_place, Done, Job};
use crate::keys::{KeySpec, Mode};
use crate::kms::runtime;
use crate::metadata::{header_of, MetadataOut};
use crate::output::{open_metered, Counted, Meter, Sink};

pub(crate) fn reencrypt(
    args: &ReencryptArgs,
    old_keys: Vec<KeySpec>,
    new_keys: Vec<KeySpec>,
) -> Result<(), Failure> {
    let common = &args.common;
    if new_keys.is_empty() {
        return Err(Failure::Usage(
            "reencrypt needs the new keys: --new-kms-key, --new-branch-key-id, --new-raw-aes-key, \
             --new-raw-rsa-key, --new-raw-ecdh-*, --new-kms-rsa-key or --new-kms-ecdh-static"
                .into(),
        ));
    }
    // The old messages go only into the new ones, which are written to a
    // temporary file (or spooled) and kept only once complete: a signed
    // old message may stream.
    let old_config = base_config(common)?
        .allow_signed_streaming(true)
        .build()
        .map_err(config_error)?;
    // It decrypts only what it just wrote (--in-place reads the new
    // message back), into nothing.
    let new_config = base_config(common)?
        .required_encryption_context_keys(args.required_context_key.iter().cloned())
        .allow_signed_streaming(true)
        .build()
        .map_err(config_error)?;
    let mut options = ReencryptOptions::builder().add_context(build_context(&args.add_context)?);
    if let Some(suite) = args.suite {
        // A suite the policy forbids is a usage error naming the policy.
        base_config(common)?.suite(suite).build().map_err(config_error)?;
        options = options.suite(suite);
    }
    if args.in_place {
        if let Some(why) = new_keys
            .iter()
            .find_map(|k| cannot_read_back(k, &args.new.new_kms_key))
        {
            return Err(Failure::Usage(format!(
                "--in-place decrypts each new message with the new keys before it replaces the input, \
                 and {why}: write to --output, and check it with a key that decrypts"
            )));
        }
    }
    if let Some(n) = args.frame_length {
        options = options.frame_length(n);
    }
    let options = options.build().map_err(config_error)?;
    let context = build_context(&common.context)?;

    // Each side on its own runtime, with its own KMS client and key store
    // (a current-thread runtime drives only the connections made on it).
    let old_runtime = runtime()?;
    let (old_keyring, old_kms, _old_stats) = keyring_from(
        &common.kms,
        &common.hierarchy,
        old_keys,
        Mode::Decrypt,
        &old_runtime,
    )?;
    let old = client_for(common, old_keyring, old_config, old_runtime)?;
    let new_runtime = runtime()?;
    let new_kms_args = args.new.kms_args(&common.kms.aws);
    let new_hierarchy = args.new.hierarchy_args(common.hierarchy.branch_key_ttl_s);
    let (new_keyring, new_kms, _new_stats) = keyring_from(
        &new_kms_args,
        &new_hierarchy,
        new_keys,
        Mode::Encrypt,
        &new_runtime,
    )?;
    let new = Client::builder(new_keyring)
        .config(new_config)
        .runtime(new_runtime)
        .build()
        .map_err(config_error)?;

    let plan = if args.in_place {
        plan_in_place(common)?
    } else {
        plan(common, common.suffix.as_deref().unwrap_or(""))?
    };
    let metadata = MetadataOut::open(common)?;
    let run = Run {
        client: &old,
        context: &context,
        kms: old_kms.iter().chain(new_kms.iter()).collect(),
        metadata: metadata.is_some(),
        keyring_step: Default::default(),
    };
    let one = |job: &Job, meter: Meter| reencrypt_one(&run, &new, &options, args, job, meter);
    run_jobs(("reencrypt", "re-encrypted"), common, &plan, metadata, one)
}

fn reencrypt_one(
    run: &Run<'_>,
    new: &Client,
    options: &ReencryptOptions,
    args: &ReencryptArgs,
    job: &Job,
    meter: Meter,
) -> Result<Done, Failure> {
    let input = open_metered(&job.input, meter.clone(), job.len)?;
    // Spooled when it goes to stdout or a device: released only complete.
    let mut sink = Counted::new(Sink::open(job.target.clone(), args.common.force, true)?);
    let (reencryptor, counters) =
        run.keyring_step(|| new.reencryptor(run.client, run.context, input, options));
    let reencryptor = reencryptor.map_err(reencrypt_error)?;
    let headers = run
        .metadata
        .then(|| header_of(reencryptor.encryptor().header()))
        .transpose()?;
    let new_context = reencryptor.encryption_context().clone();
    reencryptor.reencrypt_into(&mut sink).map_err(reencrypt_error)?;
    let output_bytes = sink.bytes;
    if args.in_place {
        check_written(new, &new_context, &mut sink.inner, &job.input)?;
        sink.inner.keep_permissions_of(&job.input)?;
    }
    sink.inner.commit()?;
    if args.in_place {
        // The rename itself on disk before the run moves on.
        if let Some(dir) = job.input.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Failure::UnwritableOutput(format!("syncing {}: {e}", dir.display())))?;
        }
    }
    Ok(Done {
        input_bytes: meter.bytes(),
        output_bytes,
        headers,
        counters,
    })
}

/// `--in-place`: the new message, synced to disk, must decrypt with the
/// new keys to its end before it replaces the input.
fn check_written(
    new: &Client,
    context: &EncryptionContext,
    sink: &mut Sink,
    input: &std::path::Path,
) -> Result<(), Failure> {
    let Some(file) = sink.written()? else {
        return Err(Failure::Internal("--in-place without a temporary file".into()));
    };
    let mut reader = new
        .decrypt_stream(context, io::BufReader::new(file))
        .map_err(|e| read_back_error(e, input))?;
    io::copy(&mut reader, &mut io::sink()).map_err(|e| read_back_error(Error::from_io(e), input))?;
    if !reader.is_complete() {
        return Err(read_back_error(Error::Decrypt, input));
    }
    Ok(())
}

fn read_back_error(e: Error, input: &std::path::Path) -> Failure {
    Failure::Failed(format!(
        "the new message for {} did not decrypt back with the new keys ({e}); the input is unchanged",
        input.display()
    ))
}

/// The old message's failures as decrypt's; a refused option as a usage
/// error.
fn reencrypt_error(e: Error) -> Failure {
    match e {
        Error::Config { .. } => config_error(e),
        other => decrypt_error(other, &[], &[]),
    }
}

/// Why a new key cannot decrypt what it encrypted (so `--in-place` cannot
/// read its messages back), if it cannot.
fn cannot_read_back(key: &KeySpec, kms_keys: &[String]) -> Option<String> {
    match key {
        KeySpec::Rsa(s) => Some(format!(
            "--new-raw-rsa-key {}:{} is a public key",
            s.namespace, s.name
        )),
        KeySpec::Ecdh(crate::keys::EcdhScheme::Ephemeral, _) => {
            Some("--new-raw-ecdh-ephemeral keeps no private key".into())
        }
        KeySpec::Kms => kms_keys
            .iter()
            .find(|k| !k.starts_with("arn:"))
            .map(|k| format!("--new-kms-key {k} is not a key ARN (only an ARN decrypts)")),
        _ => None,
    }
}
