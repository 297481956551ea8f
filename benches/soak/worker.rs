//! The soak's worker process: its clients, its tasks, its per-phase
//! counts, and the check of every message it wrote.

use crate::*;

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

pub(crate) fn worker(mode: Mode) {
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
