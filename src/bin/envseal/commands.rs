//! `envseal encrypt` and `envseal decrypt`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{mpsc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::read::DecoderReader;
use base64::write::EncoderWriter;
use envseal::blocking::Client;
use envseal::{CacheLimits, Config, EncryptionContext, Encryptor, Error, MaterialsCache};

use crate::cli::{build_context, CommonArgs, DecryptArgs, EncryptArgs, HierarchyArgs, KmsArgs};
use crate::error::{
    config_error, decrypt_error, encrypt_error, encrypt_stream_error, one_line, unstored_keys, Failure,
    Refusal,
};
use crate::files::{self, plan, Counters, Done, Job, Plan};
use crate::keys::{build_keyring, KeySpec, Mode, Remote};
use crate::kms::{runtime, KmsClient, StatsOnExit};
use crate::metadata::{header_auth_json, header_json, header_of, message_line, MetadataOut};
use crate::output::{open_metered, pump, Counted, Meter, Sink, SkipWhitespace, Target, Tracked};
use crate::progress::Progress;

pub(crate) fn base_config(common: &CommonArgs) -> Result<envseal::ConfigBuilder, Failure> {
    let mut builder = Config::builder().commitment_policy(common.commitment_policy);
    if let Some(max) = common.max_encrypted_data_keys {
        let max = usize::try_from(max)
            .map_err(|_| Failure::Usage("--max-encrypted-data-keys is too large".into()))?;
        builder = builder.max_encrypted_data_keys(max);
    }
    Ok(builder)
}

/// The keyring from the command line's keys, with the KMS client and key
/// store they need, and the `--kms-stats` printer.
fn keyring_for(
    common: &CommonArgs,
    specs: Vec<KeySpec>,
    mode: Mode,
    runtime: &tokio::runtime::Runtime,
) -> Result<(envseal::MultiKeyring, Option<KmsClient>, StatsOnExit), Failure> {
    keyring_from(&common.kms, &common.hierarchy, specs, mode, runtime)
}

/// As [`keyring_for`], from the KMS and key store options given.
pub(crate) fn keyring_from(
    kms_args: &KmsArgs,
    hierarchy: &HierarchyArgs,
    specs: Vec<KeySpec>,
    mode: Mode,
    runtime: &tokio::runtime::Runtime,
) -> Result<(envseal::MultiKeyring, Option<KmsClient>, StatsOnExit), Failure> {
    let kms = kms_args.client(runtime, hierarchy.used())?;
    let store = hierarchy.store(runtime, kms.as_ref(), &kms_args.aws)?;
    let remote = Remote {
        runtime,
        kms: kms_args,
        client: kms.as_ref(),
        hierarchy,
        store: store.as_ref(),
    };
    let keyring = build_keyring(specs, mode, &remote)?;
    let stats =
        StatsOnExit::new(&kms_args.aws, kms.as_ref()).with_dynamodb(store.as_ref().map(|s| s.counters()));
    Ok((keyring, kms, stats))
}

/// The client, with the data key cache of `--cache-*` if asked for.
pub(crate) fn client_for(
    common: &CommonArgs,
    keyring: envseal::MultiKeyring,
    config: Config,
    runtime: tokio::runtime::Runtime,
) -> Result<Client, Failure> {
    // The runtime the keyrings were made on: a KMS client's pooled
    // connections are driven there.
    let mut builder = Client::builder(keyring).config(config).runtime(runtime);
    if let Some(age) = common.cache.cache_max_age_s {
        let mut limits = CacheLimits::builder(Duration::from_secs(age));
        if let Some(n) = common.cache.cache_max_messages {
            limits = limits.max_messages(n);
        }
        if let Some(n) = common.cache.cache_max_bytes {
            limits = limits.max_bytes(n);
        }
        let limits = limits.build().map_err(config_error)?;
        let cache = MaterialsCache::new(CACHE_ENTRIES).map_err(config_error)?;
        builder = builder.cache(cache, limits);
    }
    builder.build().map_err(config_error)
}

/// Entries of the CLI's data key cache: one per encryption context and
/// suite on encrypt, one per message's data keys on decrypt.
const CACHE_ENTRIES: usize = 1024;

/// What one run shares between its messages.
pub(crate) struct Run<'a> {
    pub(crate) client: &'a Client,
    pub(crate) context: &'a EncryptionContext,
    /// The KMS clients whose calls a message's metadata line counts (a
    /// re-encryption's two sides).
    #[cfg_attr(not(feature = "kms"), allow(dead_code))]
    pub(crate) kms: Vec<&'a KmsClient>,
    /// Header JSON for `--metadata-output`.
    pub(crate) metadata: bool,
    /// Held across a message's keyring step while `--metadata-output`
    /// counts its KMS calls and cache lookups: files in flight at once
    /// take that step in turn, so each line counts its own.
    pub(crate) keyring_step: Mutex<()>,
}

impl Run<'_> {
    /// Runs a message's keyring step (`f`: the keyring or the cache gives
    /// the data key); with `--metadata-output`, also the counters before
    /// and after it.
    pub(crate) fn keyring_step<T>(&self, f: impl FnOnce() -> T) -> (T, Option<(Counters, Counters)>) {
        if !self.metadata {
            return (f(), None);
        }
        let _turn = self.keyring_step.lock().unwrap_or_else(PoisonError::into_inner);
        let before = counters(self);
        let out = f();
        (out, Some((before, counters(self))))
    }
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
        return Err(Failure::Usage(format!(
            "--required-context-key {k:?} needs its pair in --context {k}=VALUE"
        )));
    }
    let config = builder
        .required_encryption_context_keys(args.required_context_key.iter().cloned())
        .build()
        .map_err(config_error)?;
    run_mode(
        common,
        specs,
        Mode::Encrypt,
        config,
        &context,
        |run, job, meter| encrypt_one(run, args, job, meter),
    )
}

/// What `encrypt` and `decrypt` share once their config is built: the
/// runtime, the keyring and client, the plan of files, the metadata
/// output, then every job through `one`.
fn run_mode(
    common: &CommonArgs,
    specs: Vec<KeySpec>,
    mode: Mode,
    config: Config,
    context: &EncryptionContext,
    one: impl Fn(&Run<'_>, &Job, Meter) -> Result<Done, Failure> + Sync,
) -> Result<(), Failure> {
    let runtime = runtime()?;
    let (keyring, kms, _stats) = keyring_for(common, specs, mode, &runtime)?;
    let client = client_for(common, keyring, config, runtime)?;
    let default_suffix = match mode {
        Mode::Encrypt => ".encrypted",
        Mode::Decrypt => ".decrypted",
    };
    let plan = plan(common, common.suffix.as_deref().unwrap_or(default_suffix))?;
    let metadata = MetadataOut::open(common)?;
    let run = Run {
        client: &client,
        context,
        kms: kms.iter().collect(),
        metadata: metadata.is_some(),
        keyring_step: Mutex::new(()),
    };
    let names = match mode {
        Mode::Encrypt => ("encrypt", "encrypted"),
        Mode::Decrypt => ("decrypt", "decrypted"),
    };
    run_jobs(names, common, &plan, metadata, |job, meter| one(&run, job, meter))
}

fn encrypt_one(run: &Run<'_>, args: &EncryptArgs, job: &Job, meter: Meter) -> Result<Done, Failure> {
    let common = &args.common;
    // With the cache on, a file's length bounds its message (the cache
    // counts bytes per data key); stdin's is unknown and bypasses it.
    let bound = job.len.filter(|_| common.cache.cache_max_age_s.is_some());
    let (encryptor, counters) = run.keyring_step(|| run.client.encryptor(run.context, bound));
    let encryptor = encryptor.map_err(encrypt_error)?;
    let headers = run.metadata.then(|| header_of(encryptor.header())).transpose()?;
    let input = open_metered(&job.input, meter.clone(), job.len)?;
    let sink = Counted::new(Sink::open(job.target.clone(), common.force, false)?);
    let sink = if args.encode {
        let mut encoder = seal(encryptor, input, EncoderWriter::new(sink, &B64))?;
        encoder
            .finish()
            .map_err(|e| Failure::UnwritableOutput(format!("writing output: {e}")))?
    } else {
        seal(encryptor, input, sink)?
    };
    let output_bytes = sink.bytes;
    sink.inner.commit()?;
    Ok(Done {
        input_bytes: meter.bytes(),
        output_bytes,
        headers,
        counters,
    })
}

/// Encrypts `input` into `output` as one message; returns the output.
pub(crate) fn seal<R: std::io::Read, W: std::io::Write>(
    encryptor: Encryptor,
    input: R,
    output: W,
) -> Result<W, Failure> {
    let mut writer = encryptor
        .into_writer(output)
        .map_err(|e| Failure::UnwritableOutput(format!("writing output: {e}")))?;
    // Reads straight into the writer's batches: reading, sealing (in the
    // background) and writing overlap.
    let mut input = Tracked {
        inner: input,
        failed: false,
    };
    if let Err(e) = writer.copy_from(&mut input) {
        return Err(if input.failed {
            Failure::UnreadableInput(format!("reading input: {e}"))
        } else {
            encrypt_stream_error(e, "writing output")
        });
    }
    writer
        .finish()
        .map_err(|e| encrypt_stream_error(e, "writing output"))
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
    run_mode(
        common,
        specs,
        Mode::Decrypt,
        config,
        &context,
        |run, job, meter| decrypt_one(run, args, job, meter),
    )
}

fn decrypt_one(run: &Run<'_>, args: &DecryptArgs, job: &Job, meter: Meter) -> Result<Done, Failure> {
    let common = &args.common;
    let input = open_metered(&job.input, meter.clone(), job.len)?;
    let input: Box<dyn std::io::Read> = if args.decode {
        Box::new(DecoderReader::new(SkipWhitespace { inner: input }, &B64))
    } else {
        Box::new(input)
    };
    // Created before reading: an unwritable destination fails early. Dropped
    // (and deleted) on any failure.
    let mut sink = Counted::new(Sink::open(job.target.clone(), common.force, true)?);
    let decryptor = run
        .client
        .decryptor(input)
        .map_err(|e| decrypt_error(e, &[], &[]))?;
    if args.decrypt_unsigned && decryptor.suite().is_signed() {
        // Before any keyring call.
        return Err(Failure::Refused(
            Refusal::Signed,
            format!(
                "the message is signed (suite 0x{:04X} {}); --decrypt-unsigned decrypts unsigned messages only",
                decryptor.suite().id(),
                decryptor.suite().name()
            ),
        ));
    }
    let headers = run
        .metadata
        .then(|| (header_json(&decryptor), header_auth_json(&decryptor)));
    let unstored = unstored_keys(run.context, decryptor.encryption_context());
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
    let (reader, counters) = run.keyring_step(|| decryptor.decrypt(run.context));
    let mut reader = reader.map_err(|e| decrypt_error(e, &unstored, &namespaces))?;
    pump(
        &mut reader,
        &mut sink,
        // The header (and any extra context pair) verified already, so a
        // failure here is not about --context.
        |e| decrypt_error(Error::from_io(e), &[], &[]),
        |e| Failure::UnwritableOutput(format!("writing output: {e}")),
    )?;
    if !reader.is_complete() {
        return Err(Failure::Malformed("the message ended before it verified".into()));
    }
    let output_bytes = sink.bytes;
    sink.inner.commit()?;
    Ok(Done {
        input_bytes: meter.bytes(),
        output_bytes,
        headers,
        counters,
    })
}

/// Hands out the files of a many-file run to its workers, in plan order
/// and no further than a window past the oldest one not yet reported.
#[derive(Default)]
struct Turns {
    /// Next file to start, files reported, stopped.
    state: Mutex<(usize, usize, bool)>,
    moved: Condvar,
}

impl Turns {
    /// The next file to run, waiting while the window is full; `None`
    /// when all are taken or the run stopped.
    fn take(&self, files: usize, window: usize) -> Option<usize> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let (next, reported, stopped) = *state;
            if stopped || next >= files {
                return None;
            }
            if next < reported + window {
                state.0 += 1;
                return Some(next);
            }
            state = self.moved.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn reported(&self, n: usize) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).1 = n;
        self.moved.notify_all();
    }

    fn stop(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).2 = true;
        self.moved.notify_all();
    }
}

/// The KMS and cache counters now, for a message's metadata line.
fn counters(run: &Run<'_>) -> Counters {
    Counters {
        #[cfg(feature = "kms")]
        kms: run.kms.iter().map(|k| k.stats()).reduce(add_stats),
        cache: run.client.cache_stats(),
    }
}

/// The call counters of two clients together (what a metadata line
/// counts: calls by operation, attempts, retries, throttles, failures).
#[cfg(feature = "kms")]
fn add_stats(mut a: envseal::kms::AwsStats, b: envseal::kms::AwsStats) -> envseal::kms::AwsStats {
    a.generate_data_key_calls += b.generate_data_key_calls;
    a.encrypt_calls += b.encrypt_calls;
    a.decrypt_calls += b.decrypt_calls;
    a.describe_key_calls += b.describe_key_calls;
    a.generate_data_key_without_plaintext_calls += b.generate_data_key_without_plaintext_calls;
    a.re_encrypt_calls += b.re_encrypt_calls;
    a.get_public_key_calls += b.get_public_key_calls;
    a.derive_shared_secret_calls += b.derive_shared_secret_calls;
    a.attempts += b.attempts;
    a.retries += b.retries;
    a.throttles += b.throttles;
    a.failures += b.failures;
    a
}

/// Runs every job of `plan`: one job's failure is the run's; of several
/// files, each completes or leaves nothing, the others go on, and a
/// summary line ends the run (non-zero exit if any file failed). Several
/// files run `--jobs` at a time; their results (failure lines, metadata
/// lines) are reported from this thread in plan order, whatever order
/// they finish in.
/// `names`: the mode as metadata lines name it, and as the summary says
/// what was done (`encrypt`, `encrypted`).
pub(crate) fn run_jobs(
    (name, past): (&str, &str),
    common: &CommonArgs,
    plan: &Plan,
    mut metadata: Option<MetadataOut>,
    one: impl Fn(&Job, Meter) -> Result<Done, Failure> + Sync,
) -> Result<(), Failure> {
    let mut progress = Progress::new(common.quiet, plan);
    let mut record = |job: &Job, done: &Done| -> Result<(), Failure> {
        match metadata.as_mut() {
            Some(m) => m.write(&message_line(name, job, done)),
            None => Ok(()),
        }
    };
    if !plan.many {
        let job = &plan.jobs[0];
        let done = one(job, progress.meter())?;
        progress.finish();
        return record(job, &done);
    }
    if !common.quiet {
        for (path, why) in &plan.skipped {
            progress.eprintln(&format!("envseal: skipped {}: {why}", path.display()));
        }
    }
    let mut failed: Vec<String> = Vec::new();
    for (dir, why) in &plan.unreadable {
        progress.eprintln(&format!(
            "envseal: cannot read directory {}: {}",
            dir.display(),
            one_line(why)
        ));
        failed.push(dir.display().to_string());
    }
    // Two inputs with one output: the second (in plan order) fails.
    let mut claimed: HashSet<&PathBuf> = HashSet::new();
    let taken: Vec<bool> = plan
        .jobs
        .iter()
        .map(|job| matches!(&job.target, Target::File(dest) if !claimed.insert(dest)))
        .collect();
    let run_one = |i: usize, meter: Meter| -> Result<Done, Failure> {
        let job = &plan.jobs[i];
        match &job.target {
            Target::File(dest) if taken[i] => Err(Failure::BadOutput(format!(
                "output {} is another input's output in this run",
                dest.display()
            ))),
            _ => files::prepare(job, common.force)
                .and_then(|created| one(job, meter).inspect_err(|_| files::remove_created(&created))),
        }
    };
    let (mut ok, mut bytes) = (0usize, 0u64);
    let mut report =
        |i: usize, result: Result<Done, Failure>, progress: &mut Progress| -> Result<(), Failure> {
            let job = &plan.jobs[i];
            progress.file_done(job.len);
            match result {
                Ok(done) => {
                    ok += 1;
                    bytes += done.input_bytes;
                    record(job, &done)?;
                }
                Err(failure) => {
                    progress.eprintln(&format!(
                        "envseal: {}: {}",
                        job.input.display(),
                        one_line(&failure.to_string())
                    ));
                    failed.push(job.input.display().to_string());
                }
            }
            Ok(())
        };
    let jobs = common.jobs().min(plan.jobs.len()).max(1);
    if jobs == 1 {
        for i in 0..plan.jobs.len() {
            let result = run_one(i, progress.meter());
            report(i, result, &mut progress)?;
        }
    } else {
        // Workers take files in plan order, at most WINDOW past the oldest
        // not yet reported; results are reported in plan order.
        const WINDOW: usize = 256;
        let meter = progress.meters();
        let turns = Turns::default();
        let outcome = std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel();
            for _ in 0..jobs {
                let tx = tx.clone();
                let (turns, run_one, meter) = (&turns, &run_one, &meter);
                s.spawn(move || {
                    while let Some(i) = turns.take(plan.jobs.len(), WINDOW) {
                        if tx.send((i, run_one(i, meter()))).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut waiting = std::collections::BTreeMap::new();
            let mut reported = 0;
            for (i, result) in rx {
                waiting.insert(i, result);
                while let Some(result) = waiting.remove(&reported) {
                    if let Err(e) = report(reported, result, &mut progress) {
                        // No new file starts; those under way finish.
                        turns.stop();
                        return Err(e);
                    }
                    reported += 1;
                    turns.reported(reported);
                }
            }
            Ok(())
        });
        outcome?;
    }
    progress.finish();
    let skipped = match plan.skipped.len() {
        0 => String::new(),
        n => format!(", {n} skipped"),
    };
    if failed.is_empty() {
        if !common.quiet {
            progress.eprintln(&format!(
                "envseal: {past} {ok} file{} ({bytes} bytes){skipped}",
                if ok == 1 { "" } else { "s" }
            ));
        }
        return Ok(());
    }
    const NAMED: usize = 10;
    let mut names = failed.iter().take(NAMED).cloned().collect::<Vec<_>>().join(", ");
    if failed.len() > NAMED {
        names.push_str(&format!(" and {} more", failed.len() - NAMED));
    }
    Err(Failure::SomeFailed(format!(
        "{} of {} failed: {names}; {past} {ok}{skipped}",
        failed.len(),
        plan.jobs.len() + plan.unreadable.len(),
    )))
}
