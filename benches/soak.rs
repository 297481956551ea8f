//! The chaos soak (issue 29): several processes × many tasks encrypt and
//! decrypt 1 KiB records for many tenants, through a KMS keyring with the
//! data-key cache and through the hierarchical keyring (a branch key per
//! tenant), against moto (KMS and DynamoDB) behind a loopback fault proxy
//! (benches/soak/chaos.rs) that plays a schedule: normal, a throttling
//! storm, a latency spike, a full outage longer than the deadline,
//! recovery. Credentials come from a container credentials endpoint on
//! loopback (`AWS_CONTAINER_CREDENTIALS_FULL_URI`) and expire every few
//! seconds. TTLs are short enough that several refreshes fall into each
//! fault window.
//!
//! The same schedule runs once per cache [`Mode`]; the modes are printed
//! side by side, per phase: records/s, p50/p99/max latency of encrypt and
//! of decrypt, failures by typed kind (and the longest failed call), AWS
//! calls, stale uses, RSS. At the end every message written is decrypted
//! by a fresh client straight against moto (no faults): none may be lost.
//! The table is printed and written to `target/soak.json`.
//!
//! `ENVSEAL_SOAK=short` (scripts/test; also the default of `cargo test
//! --benches`) runs in under a minute; `ENVSEAL_SOAK=full` (the default of
//! `cargo bench --bench soak`, scripts/soak, scripts/bench) for several
//! minutes. `ENVSEAL_SOAK_MODES=baseline,ahead` picks modes.

#[path = "../tests/common/fake_kms.rs"]
#[allow(dead_code)]
mod fake_kms;
#[path = "../tests/common/fault.rs"]
#[allow(dead_code)]
mod fault;
#[path = "../tests/common/loopback.rs"]
#[allow(dead_code)]
mod loopback;
#[path = "../tests/common/moto.rs"]
#[allow(dead_code)]
mod moto;
#[path = "../tests/common/stand_in.rs"]
#[allow(dead_code)]
mod stand_in;

#[path = "soak/chaos.rs"]
mod chaos;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use envseal::keystore::KeyStore;
use envseal::kms::{AwsBounds, AwsStats, CredentialOptions, KmsClient, RetryMode};
use envseal::{
    AlgorithmSuite, BranchKeyCache, CacheLimits, Client, Config, EncryptionContext, Error, HierarchyKeyring,
    KmsKeyring, MaterialsCache,
};

const RECORD: usize = 1024;
const REGION: &str = "us-east-1";
const CACHE_CAPACITY: usize = 1000;
/// The data-key cache's per-key message limit (the age limit, the TTL,
/// is what runs out first at the soak's rates).
const CACHE_MAX_MESSAGES: u64 = 10_000;

/// The AWS bounds of the soak's clients: a call fails well within the
/// deadline, and the latency spike's slow calls go past the read timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
const READ_TIMEOUT: Duration = Duration::from_millis(300);
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);
const DEADLINE: Duration = Duration::from_secs(1);

fn bounds() -> AwsBounds {
    AwsBounds::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .attempt_timeout(ATTEMPT_TIMEOUT)
        .deadline(DEADLINE)
        .max_attempts(3)
        .retry_mode(retry_mode())
        .initial_backoff(Duration::from_millis(20))
        .max_backoff(Duration::from_millis(200))
        .build()
        .unwrap()
}

/// `ENVSEAL_SOAK_RETRY`: `adaptive` (the default, as
/// [`AwsBounds::default`]) or `standard`. After a throttling storm the
/// adaptive mode's client-side rate limiter can hold calls back past the
/// deadline; `standard` shows the run without it.
fn retry_mode() -> RetryMode {
    match std::env::var("ENVSEAL_SOAK_RETRY").as_deref() {
        Ok("standard") => RetryMode::Standard,
        Ok("adaptive") | Err(_) => RetryMode::Adaptive,
        Ok(other) => panic!("ENVSEAL_SOAK_RETRY={other}: adaptive or standard"),
    }
}

/// Settings the parent hands on to its workers (whose environment is
/// otherwise cleared).
const PASSED_ON: [&str; 3] = ["ENVSEAL_SOAK_RETRY", "ENVSEAL_SOAK_LOG", "RUST_BACKTRACE"];

/// How big a run is.
#[derive(Clone, Debug)]
struct Size {
    name: &'static str,
    processes: usize,
    /// Tasks per process; half use the KMS keyring, half the hierarchical one.
    tasks: usize,
    tenants: usize,
    /// Records per second per task (a record: encrypt, then decrypt).
    rate: f64,
    /// Each phase's length.
    phase: Duration,
    /// The branch key TTL and the data key's max age.
    ttl: Duration,
    /// How long each container credential lives.
    credential_lifetime: Duration,
}

impl Size {
    fn from_name(name: &str) -> Size {
        match name {
            "short" => Size {
                name: "short",
                processes: 2,
                tasks: 8,
                tenants: 8,
                rate: 20.0,
                phase: Duration::from_secs(2),
                ttl: Duration::from_millis(500),
                credential_lifetime: Duration::from_secs(3),
            },
            "full" => Size {
                name: "full",
                processes: 4,
                tasks: 16,
                tenants: 32,
                rate: 12.5,
                phase: Duration::from_secs(20),
                ttl: Duration::from_secs(4),
                credential_lifetime: Duration::from_secs(6),
            },
            other => panic!("ENVSEAL_SOAK={other}: short or full"),
        }
    }

    /// `ENVSEAL_SOAK`, else full under `cargo bench` (which passes
    /// `--bench`) and short under `cargo test --benches`.
    fn from_env() -> Size {
        match std::env::var("ENVSEAL_SOAK") {
            Ok(name) => Size::from_name(&name),
            Err(_) if std::env::args().any(|a| a == "--bench") => Size::from_name("full"),
            Err(_) => Size::from_name("short"),
        }
    }

    /// How long a stale entry may serve in [`Mode::AheadStale`]: longer
    /// than the outage.
    fn stale_if_error(&self) -> Duration {
        self.phase * 2
    }
}

/// A cache policy the soak runs the schedule under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Today's caches: a caller waits on every expired entry.
    Baseline,
    /// Refresh ahead with jitter.
    Ahead,
    /// Refresh ahead with jitter, and stale-if-error longer than the outage.
    AheadStale,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Baseline, Mode::Ahead, Mode::AheadStale];

    fn name(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline",
            Mode::Ahead => "ahead",
            Mode::AheadStale => "ahead+stale",
        }
    }

    fn parse(name: &str) -> Mode {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .unwrap_or_else(|| panic!("unknown soak mode {name}"))
    }
}

/// The one place the soak chooses the caches' policy.
fn caches(mode: Mode, size: &Size) -> (MaterialsCache, BranchKeyCache) {
    // COORDINATOR: set CachePolicy here, e.g.
    //   Baseline:   CachePolicy::builder().refresh_ahead(false).build()
    //   Ahead:      CachePolicy::builder().build()  (grace 0.1, jitter 0.1)
    //   AheadStale: CachePolicy::builder().stale_if_error(size.stale_if_error()).build()
    // then MaterialsCache::builder(CACHE_CAPACITY).policy(p).build() and
    // BranchKeyCache::builder(CACHE_CAPACITY).policy(p).build(). Until then
    // every mode runs today's caches (the baseline).
    let _ = (mode, size.stale_if_error());
    (
        MaterialsCache::new(CACHE_CAPACITY).unwrap(),
        BranchKeyCache::new(CACHE_CAPACITY).unwrap(),
    )
}

/// Stale uses the two caches counted so far; `None` while the caches do
/// not count them.
fn stale_uses(kms: &Client, branch: &BranchKeyCache) -> Option<u64> {
    // COORDINATOR: read the stale uses from CacheStats here (the data-key
    // cache's `kms.cache_stats()` and the branch key cache's stats).
    let _ = (kms.cache_stats(), branch.len());
    None
}

fn config() -> Config {
    Config::builder()
        .suite(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey)
        .threads(1)
        .build()
        .unwrap()
}

fn tenant_context(t: usize) -> EncryptionContext {
    EncryptionContext::from([("tenant", format!("t{t}"))])
}

fn branch_key_id(t: usize) -> String {
    format!("branch-t{t}")
}

/// Record `seq`'s plaintext: its number, then bytes derived from it.
fn record(seq: u64) -> Vec<u8> {
    let mut r = Vec::with_capacity(RECORD);
    r.extend_from_slice(&seq.to_le_bytes());
    r.extend((8..RECORD).map(|i| (seq as usize).wrapping_mul(31).wrapping_add(i) as u8));
    r
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// VmRSS of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// A failure's typed kind: the AWS error kind when an AWS call failed
/// (first of a list), else the `envseal::Error` variant.
fn kind(e: &Error) -> String {
    match e {
        Error::Aws(a) => format!("{:?}", a.kind),
        Error::Keyrings(all) => all.first().map_or_else(|| "Keyrings".to_owned(), kind),
        Error::Keyring { .. } => "Keyring".to_owned(),
        Error::Decrypt => "Decrypt".to_owned(),
        Error::NoMatchingKey { .. } => "NoMatchingKey".to_owned(),
        other => format!("{other:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or("Other")
            .to_owned(),
    }
}

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 10 minutes, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap()
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

// ---------------------------------------------------------------------------
// The worker process.

/// The two designs a worker's tasks use.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Design {
    /// A KMS keyring with the data-key cache.
    Kms = 0,
    /// The hierarchical keyring, a branch key per tenant.
    Hierarchy = 1,
}

/// What one phase saw in one worker.
struct PhaseStats {
    enc: Histogram<u64>,
    dec: Histogram<u64>,
    /// Round trips (encrypt, then decrypt) that succeeded.
    records: u64,
    failed: u64,
    failures: BTreeMap<String, u64>,
    /// The longest failed operation.
    fail_max: Duration,
    /// From the phase's start to the end of its first successful record.
    first_ok: Option<Duration>,
}

impl PhaseStats {
    fn new() -> Self {
        PhaseStats {
            enc: histogram(),
            dec: histogram(),
            records: 0,
            failed: 0,
            failures: BTreeMap::new(),
            fail_max: Duration::ZERO,
            first_ok: None,
        }
    }
}

struct Shared {
    schedule: chaos::Schedule,
    start: Instant,
    tenants: usize,
    contexts: Vec<EncryptionContext>,
    phases: Mutex<Vec<PhaseStats>>,
    out: Mutex<BufWriter<File>>,
    written: AtomicU64,
}

impl Shared {
    fn phase_at(&self, at: Instant) -> Option<usize> {
        self.schedule.phase_at(at.saturating_duration_since(self.start))
    }

    fn fail(&self, phase: usize, op: &str, e: &str, took: Duration) {
        let mut phases = self.phases.lock().unwrap();
        let p = &mut phases[phase];
        p.failed += 1;
        *p.failures.entry(format!("{op} {e}")).or_default() += 1;
        p.fail_max = p.fail_max.max(took);
    }

    fn ok(&self, phase: usize, enc: Duration, dec: Duration, done: Instant) {
        let since = done.saturating_duration_since(self.start + self.schedule.start_of(phase));
        let mut phases = self.phases.lock().unwrap();
        let p = &mut phases[phase];
        p.records += 1;
        p.enc.record(micros(enc)).unwrap();
        p.dec.record(micros(dec)).unwrap();
        p.first_ok = Some(p.first_ok.map_or(since, |f| f.min(since)));
    }

    /// Appends a message: design, tenant, record number, length, bytes.
    fn write(&self, design: Design, tenant: usize, seq: u64, message: &[u8]) {
        let mut out = self.out.lock().unwrap();
        out.write_all(&[design as u8]).unwrap();
        out.write_all(&(tenant as u32).to_le_bytes()).unwrap();
        out.write_all(&seq.to_le_bytes()).unwrap();
        out.write_all(&(message.len() as u32).to_le_bytes()).unwrap();
        out.write_all(message).unwrap();
        self.written.fetch_add(1, Ordering::Relaxed);
    }
}

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"))
}

/// The two clients of a worker over `kms` (and a key store on
/// `store_url`), with the caches the mode chose.
async fn clients(
    kms: &KmsClient,
    key: &str,
    table: &str,
    store_url: &str,
    caches: (MaterialsCache, BranchKeyCache),
    ttl: Duration,
) -> (Client, Client) {
    let (materials, branch) = caches;
    let keyring = KmsKeyring::builder(kms.clone(), [key]).build().unwrap();
    let limits = CacheLimits::builder(ttl)
        .max_messages(CACHE_MAX_MESSAGES)
        .build()
        .unwrap();
    let kms_client = Client::builder(keyring)
        .config(config())
        .cache(materials, limits)
        .build()
        .unwrap();
    let store = KeyStore::builder(table, key)
        .kms_client(kms.clone())
        .counters(kms.counters())
        .endpoint_url(store_url)
        .build()
        .await
        .unwrap();
    let keyring = HierarchyKeyring::builder(store, ttl)
        .branch_key_id_supplier(|ctx: &EncryptionContext| {
            ctx.get("tenant")
                .map(|t| format!("branch-{t}"))
                .ok_or_else(|| Error::Misuse("no tenant".into()))
        })
        .cache(branch)
        .build()
        .unwrap();
    let hierarchy = Client::builder(keyring).config(config()).build().unwrap();
    (kms_client, hierarchy)
}

/// One task: a record every `period` (missed ticks skipped: a stalled
/// task makes fewer records), round-robin over the tenants.
async fn task(
    i: usize,
    tasks: usize,
    period: Duration,
    client: Arc<Client>,
    design: Design,
    shared: Arc<Shared>,
) {
    let mut tick = tokio::time::interval_at(shared.start.into(), period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (j, per_design) = (i / 2, tasks.div_ceil(2));
    for n in 0u64.. {
        tick.tick().await;
        let t0 = Instant::now();
        let Some(phase) = shared.phase_at(t0) else {
            break;
        };
        let tenant = (j + n as usize * per_design) % shared.tenants;
        let seq = ((i as u64) << 40) | n;
        let plaintext = record(seq);
        let ctx = &shared.contexts[tenant];
        let message = match client.encrypt(ctx, &plaintext).await {
            Ok(m) => m,
            Err(e) => {
                log_failure(phase, &e);
                shared.fail(phase, "encrypt", &kind(&e), t0.elapsed());
                continue;
            }
        };
        let enc = t0.elapsed();
        shared.write(design, tenant, seq, &message);
        let t1 = Instant::now();
        match client.decrypt(ctx, &message).await {
            Ok(d) if d.plaintext[..] == plaintext[..] => {
                let done = Instant::now();
                shared.ok(phase, enc, done - t1, done);
            }
            Ok(_) => shared.fail(phase, "decrypt", "WrongPlaintext", t1.elapsed()),
            Err(e) => {
                log_failure(phase, &e);
                shared.fail(phase, "decrypt", &kind(&e), t1.elapsed());
            }
        }
    }
}

/// With `ENVSEAL_SOAK_LOG=1`, each failure in full on stderr.
fn log_failure(phase: usize, e: &Error) {
    if std::env::var_os("ENVSEAL_SOAK_LOG").is_some_and(|v| v == "1") {
        eprintln!("soak worker {}: phase {phase}: {e:?}", std::process::id());
    }
}

/// The AWS counters' movement over one phase.
fn aws_delta(a: &AwsStats, b: &AwsStats) -> Value {
    json!({
        "kms_calls": b.calls() - a.calls(),
        "dynamodb_calls": b.dynamodb_calls() - a.dynamodb_calls(),
        "attempts": b.attempts - a.attempts,
        "retries": b.retries - a.retries,
        "throttles": b.throttles - a.throttles,
        "timeouts": b.timeouts - a.timeouts,
        "aws_failures": b.failures - a.failures,
        "credential_refreshes": b.credential_refreshes - a.credential_refreshes,
        "branch_key_misses": b.branch_key_cache_misses - a.branch_key_cache_misses,
    })
}

fn worker(mode: Mode) {
    let size = Size::from_name(&env("ENVSEAL_SOAK"));
    let proxy = env("ENVSEAL_SOAK_PROXY");
    let key = env("ENVSEAL_SOAK_KEY");
    let table = env("ENVSEAL_SOAK_TABLE");
    let out_path = PathBuf::from(env("ENVSEAL_SOAK_OUT"));
    let schedule = chaos::Schedule::soak(size.phase, READ_TIMEOUT);
    let rt = runtime();
    rt.block_on(async {
        // Credentials from the environment's chain: the container endpoint.
        let kms = KmsClient::builder()
            .region(REGION)
            .endpoint_url(&proxy)
            .bounds(bounds())
            .credentials(
                CredentialOptions::builder()
                    .load_timeout(Duration::from_millis(500))
                    .build()
                    .unwrap(),
            )
            .build()
            .await
            .unwrap();
        let (materials, branch) = caches(mode, &size);
        let (kms_client, hierarchy) =
            clients(&kms, &key, &table, &proxy, (materials, branch.clone()), size.ttl).await;
        let (kms_client, hierarchy) = (Arc::new(kms_client), Arc::new(hierarchy));
        let contexts: Vec<EncryptionContext> = (0..size.tenants).map(tenant_context).collect();
        // Warm every tenant in both designs (no faults before the start).
        for (t, ctx) in contexts.iter().enumerate() {
            for client in [&kms_client, &hierarchy] {
                let m = client
                    .encrypt(ctx, &record(u64::MAX - t as u64))
                    .await
                    .unwrap_or_else(|e| panic!("warm-up encrypt for tenant {t}: {e}"));
                client.decrypt(ctx, &m).await.unwrap();
            }
        }
        assert_eq!(kms.credentials_provider(), Some("EcsContainer"));
        println!("ready");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        let epoch_ms: u64 = line
            .trim()
            .strip_prefix("start ")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("expected `start <ms>`, got {line:?}"));
        let epoch = UNIX_EPOCH + Duration::from_millis(epoch_ms);
        let start = Instant::now() + epoch.duration_since(SystemTime::now()).unwrap_or_default();
        let shared = Arc::new(Shared {
            phases: Mutex::new((0..schedule.phases.len()).map(|_| PhaseStats::new()).collect()),
            schedule: schedule.clone(),
            start,
            tenants: size.tenants,
            contexts,
            out: Mutex::new(BufWriter::new(File::create(&out_path).unwrap())),
            written: AtomicU64::new(0),
        });
        let period = Duration::from_secs_f64(1.0 / size.rate);
        let tasks: Vec<_> = (0..size.tasks)
            .map(|i| {
                let (client, design) = if i % 2 == 0 {
                    (Arc::clone(&kms_client), Design::Kms)
                } else {
                    (Arc::clone(&hierarchy), Design::Hierarchy)
                };
                tokio::spawn(task(i, size.tasks, period, client, design, Arc::clone(&shared)))
            })
            .collect();
        // The AWS counters at each phase boundary; RSS every second.
        let total = schedule.total();
        let mut events: Vec<(Duration, bool)> = (0..=schedule.phases.len())
            .map(|i| (schedule.start_of(i), true))
            .chain((1..=total.as_secs()).map(|s| (Duration::from_secs(s), false)))
            .collect();
        events.sort();
        let (mut snapshots, mut stale, mut rss) = (Vec::new(), Vec::new(), Vec::new());
        for (at, boundary) in events {
            tokio::time::sleep_until((start + at).into()).await;
            if boundary {
                snapshots.push(kms.stats());
                stale.push(stale_uses(&kms_client, &branch));
            } else {
                rss.push(json!([at.as_millis() as u64, rss_kib()]));
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        shared.out.lock().unwrap().flush().unwrap();
        let written = shared.written.load(Ordering::Relaxed);
        let (verified, lost) = verify(&key, &table, &out_path, size.tenants).await;
        let phases = shared.phases.lock().unwrap();
        let phases: Vec<Value> = phases
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let hist = |h: &Histogram<u64>| -> Vec<[u64; 2]> {
                    h.iter_recorded()
                        .map(|v| [v.value_iterated_to(), v.count_at_value()])
                        .collect()
                };
                let stale_uses = match (stale[i], stale[i + 1]) {
                    (Some(a), Some(b)) => json!(b - a),
                    _ => Value::Null,
                };
                json!({
                    "records": p.records,
                    "failed": p.failed,
                    "failures": p.failures,
                    "fail_max_us": micros(p.fail_max),
                    "first_ok_ms": p.first_ok.map(|d| d.as_millis() as u64),
                    "enc": hist(&p.enc),
                    "dec": hist(&p.dec),
                    "aws": aws_delta(&snapshots[i], &snapshots[i + 1]),
                    "stale_uses": stale_uses,
                })
            })
            .collect();
        let result = json!({
            "written": written,
            "verified": verified,
            "lost": lost,
            "rss_kib": rss,
            "phases": phases,
        });
        println!("result {result}");
    });
}

/// Decrypts every message in `path` with fresh clients straight against
/// moto (no proxy, no faults); the messages verified and lost.
async fn verify(key: &str, table: &str, path: &Path, tenants: usize) -> (u64, u64) {
    let moto_url = env("ENVSEAL_SOAK_MOTO");
    let kms = moto::client(REGION, &moto_url, AwsBounds::default()).await;
    let caches = (
        MaterialsCache::new(CACHE_CAPACITY).unwrap(),
        BranchKeyCache::new(CACHE_CAPACITY).unwrap(),
    );
    let (kms_client, hierarchy) =
        clients(&kms, key, table, &moto_url, caches, Duration::from_secs(600)).await;
    let contexts: Vec<EncryptionContext> = (0..tenants).map(tenant_context).collect();
    let mut input = BufReader::new(File::open(path).unwrap());
    let (mut verified, mut lost) = (0, 0);
    loop {
        let mut head = [0u8; 17];
        match input.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => panic!("reading {}: {e}", path.display()),
        }
        let tenant = u32::from_le_bytes(head[1..5].try_into().unwrap()) as usize;
        let seq = u64::from_le_bytes(head[5..13].try_into().unwrap());
        let len = u32::from_le_bytes(head[13..17].try_into().unwrap()) as usize;
        let mut message = vec![0u8; len];
        input.read_exact(&mut message).unwrap();
        let client = if head[0] == Design::Kms as u8 {
            &kms_client
        } else {
            &hierarchy
        };
        match client.decrypt(&contexts[tenant], &message).await {
            Ok(d) if d.plaintext[..] == record(seq)[..] => verified += 1,
            Ok(_) => lost += 1,
            Err(e) => {
                eprintln!("soak: message {seq:#x} of tenant {tenant} lost: {e}");
                lost += 1;
            }
        }
    }
    let _ = std::fs::remove_file(path);
    (verified, lost)
}

// ---------------------------------------------------------------------------
// The parent: moto, the credential endpoint, the proxy, the report.

struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Worker {
    /// The next line starting with `prefix` (the rest of it).
    fn expect(&mut self, prefix: &str) -> String {
        for line in self.lines.by_ref().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_owned();
            }
        }
        let status = self.child.wait().unwrap();
        panic!("a soak worker ended ({status}) before printing {prefix:?}");
    }
}

/// What one mode's run gave: each worker's result, the proxy's counts.
struct ModeRun {
    mode: Mode,
    workers: Vec<Value>,
    injected: Vec<chaos::Counts>,
}

fn run_mode(mode: Mode, size: &Size, env: &[(&str, String)], scratch: &Path) -> ModeRun {
    let schedule = chaos::Schedule::soak(size.phase, READ_TIMEOUT);
    let moto_url = env
        .iter()
        .find(|(k, _)| *k == "ENVSEAL_SOAK_MOTO")
        .map(|(_, v)| v.clone())
        .unwrap();
    let proxy = chaos::ChaosProxy::new(&moto_url, schedule.clone());
    let exe = std::env::current_exe().unwrap();
    let home = scratch.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut workers: Vec<Worker> = (0..size.processes)
        .map(|p| {
            // The credential chain reads the environment: exactly this one.
            let mut child = Command::new(&exe)
                .env_clear()
                .envs(PASSED_ON.iter().filter_map(|k| Some((k, std::env::var_os(k)?))))
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", &home)
                .env("AWS_CONFIG_FILE", home.join("no-config"))
                .env("AWS_SHARED_CREDENTIALS_FILE", home.join("no-credentials"))
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("ENVSEAL_SOAK_WORKER", mode.name())
                .env("ENVSEAL_SOAK", size.name)
                .env("ENVSEAL_SOAK_PROXY", &proxy.url)
                .env(
                    "ENVSEAL_SOAK_OUT",
                    scratch.join(format!("{}-{p}.bin", mode.name())),
                )
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a soak worker");
            let stdin = child.stdin.take().unwrap();
            let lines = BufReader::new(child.stdout.take().unwrap()).lines();
            Worker { child, stdin, lines }
        })
        .collect();
    for w in &mut workers {
        w.expect("ready");
    }
    let epoch = SystemTime::now() + Duration::from_millis(200);
    proxy.start(epoch);
    let epoch_ms = epoch.duration_since(UNIX_EPOCH).unwrap().as_millis();
    for w in &mut workers {
        writeln!(w.stdin, "start {epoch_ms}").unwrap();
    }
    let results = workers
        .iter_mut()
        .map(|w| {
            let r = w.expect("result ");
            assert!(
                w.child.wait().unwrap().success(),
                "a {} worker failed",
                mode.name()
            );
            serde_json::from_str(&r).unwrap()
        })
        .collect();
    ModeRun {
        mode,
        workers: results,
        injected: proxy.counts(),
    }
}

/// One phase of one mode, summed over the workers.
struct Row {
    records: u64,
    enc: Histogram<u64>,
    dec: Histogram<u64>,
    failed: u64,
    failures: BTreeMap<String, u64>,
    fail_max: Duration,
    /// The latest, over the workers, of each one's first success.
    first_ok: Option<Duration>,
    aws: BTreeMap<String, u64>,
    stale_uses: Option<u64>,
    /// The largest RSS of a worker at the phase's end (MiB).
    rss_mib: f64,
}

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

fn rows(run: &ModeRun, schedule: &chaos::Schedule) -> Vec<Row> {
    (0..schedule.phases.len())
        .map(|i| {
            let mut row = Row {
                records: 0,
                enc: histogram(),
                dec: histogram(),
                failed: 0,
                failures: BTreeMap::new(),
                fail_max: Duration::ZERO,
                first_ok: Some(Duration::ZERO),
                aws: BTreeMap::new(),
                stale_uses: Some(0),
                rss_mib: 0.0,
            };
            let end_ms = schedule.start_of(i + 1).as_millis() as u64;
            for w in &run.workers {
                let p = &w["phases"][i];
                let n = |k: &str| p[k].as_u64().unwrap_or(0);
                row.records += n("records");
                row.failed += n("failed");
                for (k, v) in p["failures"].as_object().unwrap() {
                    *row.failures.entry(k.clone()).or_default() += v.as_u64().unwrap();
                }
                if n("failed") > 0 {
                    row.fail_max = row.fail_max.max(Duration::from_micros(n("fail_max_us")));
                }
                row.first_ok = match (row.first_ok, p["first_ok_ms"].as_u64()) {
                    (Some(a), Some(b)) => Some(a.max(Duration::from_millis(b))),
                    _ => None,
                };
                for (h, key) in [(&mut row.enc, "enc"), (&mut row.dec, "dec")] {
                    for v in p[key].as_array().unwrap() {
                        h.record_n(v[0].as_u64().unwrap(), v[1].as_u64().unwrap())
                            .unwrap();
                    }
                }
                for (k, v) in p["aws"].as_object().unwrap() {
                    *row.aws.entry(k.clone()).or_default() += v.as_u64().unwrap();
                }
                row.stale_uses = match (row.stale_uses, p["stale_uses"].as_u64()) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ => None,
                };
                // The last sample at or before the phase's end.
                let rss = w["rss_kib"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .take_while(|s| s[0].as_u64().unwrap() <= end_ms)
                    .last()
                    .map_or(0, |s| s[1].as_u64().unwrap());
                row.rss_mib = row.rss_mib.max(rss as f64 / 1024.0);
            }
            row
        })
        .collect()
}

/// RSS growth after warm-up: per worker, the last sample against the one at
/// the end of the first phase; the largest ratio.
fn rss_growth(run: &ModeRun, schedule: &chaos::Schedule) -> f64 {
    let warm_ms = schedule.start_of(1).as_millis() as u64;
    run.workers
        .iter()
        .map(|w| {
            let s = w["rss_kib"].as_array().unwrap();
            let at = |pick: &dyn Fn(u64) -> bool| {
                s.iter()
                    .filter(|x| pick(x[0].as_u64().unwrap()))
                    .map(|x| x[1].as_u64().unwrap())
                    .next_back()
                    .unwrap_or(0) as f64
            };
            let (warm, last) = (at(&|t| t <= warm_ms), at(&|_| true));
            if warm > 0.0 {
                last / warm
            } else {
                1.0
            }
        })
        .fold(0.0, f64::max)
}

fn main() {
    if let Ok(mode) = std::env::var("ENVSEAL_SOAK_WORKER") {
        worker(Mode::parse(&mode));
        return;
    }
    assert_eq!(chaos::crc32(b"123456789"), 0xCBF4_3926, "CRC-32 check value");
    let available = std::env::var_os("ENVSEAL_MOTO_SERVER").is_some()
        || Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".venv/bin/moto_server")
            .exists();
    if !available {
        assert!(
            std::env::var("CI").is_err(),
            "soak: no moto_server (scripts/test installs it)"
        );
        println!("soak: skipped (no moto_server; scripts/test installs it)");
        return;
    }
    let began = Instant::now();
    let size = Size::from_env();
    let modes: Vec<Mode> = match std::env::var("ENVSEAL_SOAK_MODES") {
        Ok(list) => list.split(',').map(Mode::parse).collect(),
        Err(_) => Mode::ALL.to_vec(),
    };
    let schedule = chaos::Schedule::soak(size.phase, READ_TIMEOUT);
    let rt = runtime();
    let moto_url = moto::moto().url.clone();
    let table = format!("soak-{}", std::process::id());
    let key = rt.block_on(async {
        let key = moto::create_key(REGION).await;
        let kms = moto::client(REGION, &moto_url, AwsBounds::default()).await;
        let store = KeyStore::builder(&table, &key)
            .kms_client(kms)
            .build()
            .await
            .unwrap();
        store.create_table().await.unwrap();
        for t in 0..size.tenants {
            store
                .create_key(Some(&branch_key_id(t)), &tenant_context(t))
                .await
                .unwrap();
        }
        key
    });
    let credentials = stand_in::CredentialEndpoint::start("/creds", size.credential_lifetime, None);
    let scratch = tempfile::tempdir().unwrap();
    let env = [
        ("ENVSEAL_SOAK_MOTO", moto_url.clone()),
        ("ENVSEAL_SOAK_KEY", key),
        ("ENVSEAL_SOAK_TABLE", table),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", credentials.url.clone()),
    ];
    println!(
        "soak ({}): {} processes × {} tasks × {} tenants, {} records/s per task (1 KiB, encrypt + decrypt), \
         KMS + data-key cache and hierarchical keyring; phases of {:?}, TTL {:?}, credentials live {:?}; \
         bounds: read {READ_TIMEOUT:?}, attempt {ATTEMPT_TIMEOUT:?}, deadline {DEADLINE:?}, {:?} retries",
        size.name,
        size.processes,
        size.tasks,
        size.tenants,
        size.rate,
        size.phase,
        size.ttl,
        size.credential_lifetime,
        retry_mode()
    );
    let runs: Vec<ModeRun> = modes
        .iter()
        .map(|&m| run_mode(m, &size, &env, scratch.path()))
        .collect();
    let tables: Vec<Vec<Row>> = runs.iter().map(|r| rows(r, &schedule)).collect();

    println!(
        "| phase | mode | records/s | encrypt p50 / p99 / max ms | decrypt p50 / p99 / max ms | failed | \
         longest failure ms | first success ms | KMS calls | DynamoDB calls | retries | throttles | \
         stale uses | RSS MiB | failures by kind |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut json_rows = Vec::new();
    for (i, phase) in schedule.phases.iter().enumerate() {
        for (run, table) in runs.iter().zip(&tables) {
            let r = &table[i];
            let rate = r.records as f64 / phase.length.as_secs_f64();
            let pct = |h: &Histogram<u64>| {
                if h.is_empty() {
                    "-".to_owned()
                } else {
                    format!(
                        "{} / {} / {}",
                        ms(h.value_at_quantile(0.5)),
                        ms(h.value_at_quantile(0.99)),
                        ms(h.max())
                    )
                }
            };
            let kinds: Vec<String> = r.failures.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
            let a = |k: &str| r.aws.get(k).copied().unwrap_or(0);
            println!(
                "| {} | {} | {rate:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} |",
                phase.name,
                run.mode.name(),
                pct(&r.enc),
                pct(&r.dec),
                r.failed,
                if r.failed > 0 {
                    ms(micros(r.fail_max))
                } else {
                    "-".to_owned()
                },
                r.first_ok.map_or("-".to_owned(), |d| d.as_millis().to_string()),
                a("kms_calls"),
                a("dynamodb_calls"),
                a("retries"),
                a("throttles"),
                r.stale_uses.map_or("n/a".to_owned(), |s| s.to_string()),
                r.rss_mib,
                if kinds.is_empty() {
                    "-".to_owned()
                } else {
                    kinds.join(", ")
                },
            );
            let q = |h: &Histogram<u64>, q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q));
            json_rows.push(json!({
                "phase": phase.name,
                "mode": run.mode.name(),
                "records": r.records,
                "records_per_s": rate.round(),
                "encrypt_us": {"p50": q(&r.enc, 0.5), "p99": q(&r.enc, 0.99), "max": q(&r.enc, 1.0)},
                "decrypt_us": {"p50": q(&r.dec, 0.5), "p99": q(&r.dec, 0.99), "max": q(&r.dec, 1.0)},
                "failed": r.failed,
                "failures": r.failures,
                "longest_failure_us": (r.failed > 0).then(|| micros(r.fail_max)),
                "first_success_ms": r.first_ok.map(|d| d.as_millis() as u64),
                "aws": r.aws,
                "stale_uses": r.stale_uses,
                "rss_mib": (r.rss_mib * 10.0).round() / 10.0,
                "injected": {
                    "requests": run.injected[i].requests,
                    "throttled_400": run.injected[i].throttled_400,
                    "throttled_429": run.injected[i].throttled_429,
                    "slowed": run.injected[i].slowed,
                    "reset": run.injected[i].reset,
                    "hung": run.injected[i].hung,
                },
            }));
        }
    }
    println!();
    println!("| mode | messages written | verified by a fresh client | lost | RSS growth after warm-up | faults injected (400 / 429 / slowed / reset / hung) |");
    println!("|---|---:|---:|---:|---:|---|");
    let mut summaries = Vec::new();
    for run in &runs {
        let sum = |k: &str| run.workers.iter().map(|w| w[k].as_u64().unwrap()).sum::<u64>();
        let (written, verified, lost) = (sum("written"), sum("verified"), sum("lost"));
        let growth = rss_growth(run, &schedule);
        let f = |g: fn(&chaos::Counts) -> u64| run.injected.iter().map(g).sum::<u64>();
        println!(
            "| {} | {written} | {verified} | {lost} | {:+.1} % | {} / {} / {} / {} / {} |",
            run.mode.name(),
            (growth - 1.0) * 100.0,
            f(|c| c.throttled_400),
            f(|c| c.throttled_429),
            f(|c| c.slowed),
            f(|c| c.reset),
            f(|c| c.hung),
        );
        summaries.push(json!({
            "mode": run.mode.name(),
            "written": written,
            "verified": verified,
            "lost": lost,
            "rss_growth": (growth * 1000.0).round() / 1000.0,
        }));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let report = json!({
        "size": size.name,
        "processes": size.processes,
        "tasks": size.tasks,
        "tenants": size.tenants,
        "phase_s": size.phase.as_secs_f64(),
        "ttl_s": size.ttl.as_secs_f64(),
        "deadline_s": DEADLINE.as_secs_f64(),
        "retry_mode": format!("{:?}", retry_mode()),
        "rows": json_rows,
        "modes": summaries,
    });
    let _ = std::fs::write(target.join("soak.json"), format!("{report:#}\n"));

    // What must hold whatever the cache policy and the machine.
    for (run, table) in runs.iter().zip(&tables) {
        let name = run.mode.name();
        for w in &run.workers {
            assert_eq!(w["lost"], 0, "{name}: messages lost");
            assert_eq!(w["verified"], w["written"], "{name}: not every message verified");
        }
        for (i, (phase, r)) in schedule.phases.iter().zip(table).enumerate() {
            assert!(
                r.failures.keys().all(|k| !k.ends_with("WrongPlaintext")),
                "{name}/{}: a decrypt returned the wrong plaintext",
                phase.name
            );
            // Every failed operation ends within its deadline (one per
            // keyring operation), with room for a loaded machine.
            assert!(
                r.fail_max <= DEADLINE * 3,
                "{name}/{}: a failure took {:?}",
                phase.name,
                r.fail_max
            );
            // The proxy did inject the phase's faults.
            let c = &run.injected[i];
            if c.requests >= 20 {
                match phase.fault {
                    chaos::Fault::Throttle { .. } => {
                        assert!(c.throttled_400 > 0 && c.throttled_429 > 0, "{c:?}")
                    }
                    chaos::Fault::Latency { .. } => assert!(c.slowed > 0, "{c:?}"),
                    chaos::Fault::Outage { .. } => assert!(c.reset > 0 && c.hung > 0, "{c:?}"),
                    chaos::Fault::None => {}
                }
            }
        }
        assert!(
            table[0].records > 0 && table.last().unwrap().records > 0,
            "{name}: no record in the normal or recovery phase"
        );
    }
    println!(
        "soak: OK in {:.0} s; credential endpoint requests: {}; table in {}",
        began.elapsed().as_secs_f64(),
        credentials.requests(),
        target.join("soak.json").display()
    );
}
