//! Fleet scale: several processes × several tenants against one moto
//! (KMS and DynamoDB), for three designs side by side: a KMS keyring
//! without a cache, a KMS keyring with the data-key cache, and the
//! hierarchical keyring (one branch key per tenant). Each process encrypts
//! 1 KiB records round-robin over the tenants (encryption context
//! `tenant`); the parent sums the KMS and DynamoDB calls the processes
//! counted and reports them per million records, with records per second
//! over the whole run (all processes, wall clock).
//!
//! `cargo bench --bench fleet` runs the real sizes (8 processes, 16
//! tenants); `ENVSEAL_FLEET_SIZE=tiny` (set by `scripts/test`) runs a few
//! records so the benchmark cannot rot. The table is printed and written
//! to `target/fleet.json` for `scripts/bench_summary.py`.
//!
//! The model behind the numbers is in `docs/fleet.md`.

#[path = "../tests/common/moto.rs"]
#[allow(dead_code)]
mod moto;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use envseal::keystore::KeyStore;
use envseal::kms::{AwsBounds, KmsClient};
use envseal::HierarchyKeyring;
use envseal::{
    AlgorithmSuite, CacheLimits, Client, Config, EncryptionContext, Error, KmsKeyring, MaterialsCache,
};

const RECORD: usize = 1024;
const REGION: &str = "us-east-1";
const DESIGNS: [&str; 3] = ["kms-no-cache", "kms-data-key-cache", "hierarchy"];
/// The data-key cache's limits in the `kms-data-key-cache` design.
const CACHE_MAX_MESSAGES: u64 = 1_000;
const CACHE_MAX_AGE: Duration = Duration::from_secs(300);
/// The hierarchical keyring's branch key TTL.
const BRANCH_KEY_TTL: Duration = Duration::from_secs(600);

struct Sizes {
    processes: usize,
    tenants: usize,
    /// Records per process, per design (KMS without a cache is one call per
    /// record, so it gets fewer: moto answers about a thousand calls a second).
    records: [usize; 3],
}

fn sizes() -> Sizes {
    match std::env::var("ENVSEAL_FLEET_SIZE").as_deref() {
        Ok("tiny") => Sizes {
            processes: 2,
            tenants: 3,
            records: [30, 300, 300],
        },
        _ => Sizes {
            processes: 8,
            tenants: 16,
            records: [500, 50_000, 50_000],
        },
    }
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What one worker process counted.
#[derive(Default)]
struct Counts {
    records: u64,
    kms_calls: u64,
    dynamodb_calls: u64,
}

/// A worker: encrypts its records with one design, prints its counts.
fn worker(design: &str) {
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let url = env("ENVSEAL_FLEET_URL");
    let key = env("ENVSEAL_FLEET_KEY");
    let table = env("ENVSEAL_FLEET_TABLE");
    let tenants: usize = env("ENVSEAL_FLEET_TENANTS").parse().unwrap();
    let records: usize = env("ENVSEAL_FLEET_RECORDS").parse().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let kms = moto::client(REGION, &url, AwsBounds::default()).await;
        let (client, store) = design_client(design, &kms, &key, &table).await;
        let record = vec![7u8; RECORD];
        let contexts: Vec<EncryptionContext> = (0..tenants).map(tenant_context).collect();
        let mut out = Vec::new();
        for i in 0..records {
            client
                .encrypt_into(&contexts[i % tenants], &record, &mut out)
                .await
                .unwrap();
        }
        let dynamodb_calls = store.map_or(0, |s| s.stats().dynamodb_calls());
        println!("counts {records} {} {dynamodb_calls}", kms.stats().calls());
    });
}

async fn design_client(design: &str, kms: &KmsClient, key: &str, table: &str) -> (Client, Option<KeyStore>) {
    match design {
        "kms-no-cache" => {
            let keyring = KmsKeyring::builder(kms.clone(), [key]).build().unwrap();
            (Client::builder(keyring).config(config()).build().unwrap(), None)
        }
        "kms-data-key-cache" => {
            let keyring = KmsKeyring::builder(kms.clone(), [key]).build().unwrap();
            let limits = CacheLimits::builder(CACHE_MAX_AGE)
                .max_messages(CACHE_MAX_MESSAGES)
                .build()
                .unwrap();
            let client = Client::builder(keyring)
                .config(config())
                .cache(MaterialsCache::new(1000).unwrap(), limits)
                .build()
                .unwrap();
            (client, None)
        }
        "hierarchy" => {
            let store = KeyStore::builder(table, key)
                .kms_client(kms.clone())
                .build()
                .await
                .unwrap();
            let keyring = HierarchyKeyring::builder(store.clone(), BRANCH_KEY_TTL)
                .branch_key_id_supplier(|ctx: &EncryptionContext| {
                    ctx.get("tenant")
                        .map(|t| format!("branch-{t}"))
                        .ok_or_else(|| Error::Misuse("no tenant".into()))
                })
                .build()
                .unwrap();
            (
                Client::builder(keyring).config(config()).build().unwrap(),
                Some(store),
            )
        }
        other => panic!("unknown design {other}"),
    }
}

/// Runs `processes` workers of one design at once; their summed counts
/// and the wall time from the first start to the last exit.
fn run_design(design: &str, records: usize, sizes: &Sizes, env: &[(&str, String)]) -> (Counts, Duration) {
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let children: Vec<_> = (0..sizes.processes)
        .map(|_| {
            Command::new(&exe)
                .env("ENVSEAL_FLEET_WORKER", design)
                .env("ENVSEAL_FLEET_RECORDS", records.to_string())
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a fleet worker")
        })
        .collect();
    let mut total = Counts::default();
    for mut child in children {
        let stdout = child.stdout.take().unwrap();
        let line = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("counts "))
            .unwrap_or_else(|| panic!("a {design} worker printed no counts"));
        assert!(child.wait().unwrap().success(), "a {design} worker failed");
        let n: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect();
        total.records += n[0];
        total.kms_calls += n[1];
        total.dynamodb_calls += n[2];
    }
    (total, started.elapsed())
}

fn main() {
    if let Ok(design) = std::env::var("ENVSEAL_FLEET_WORKER") {
        worker(&design);
        return;
    }
    // `cargo bench` passes --bench; `cargo test --benches` runs this once too.
    let available = std::env::var_os("ENVSEAL_MOTO_SERVER").is_some()
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".venv/bin/moto_server")
            .exists();
    if !available {
        assert!(
            std::env::var("CI").is_err(),
            "fleet: no moto_server (scripts/test installs it)"
        );
        println!("fleet: skipped (no moto_server; scripts/test installs it)");
        return;
    }
    let sizes = sizes();
    let rt = runtime();
    let url = moto::moto().url.clone();
    let table = format!("fleet-{}", std::process::id());
    let key = rt.block_on(async {
        let key = moto::create_key(REGION).await;
        let kms = moto::client(REGION, &url, AwsBounds::default()).await;
        let store = KeyStore::builder(&table, &key)
            .kms_client(kms)
            .build()
            .await
            .unwrap();
        store.create_table().await.unwrap();
        for t in 0..sizes.tenants {
            let ctx = tenant_context(t);
            store
                .create_key(Some(&format!("branch-t{t}")), &ctx)
                .await
                .unwrap();
        }
        key
    });
    let env = [
        ("ENVSEAL_FLEET_URL", url),
        ("ENVSEAL_FLEET_KEY", key),
        ("ENVSEAL_FLEET_TABLE", table),
        ("ENVSEAL_FLEET_TENANTS", sizes.tenants.to_string()),
    ];
    println!(
        "fleet: {} processes × {} tenants, 1 KiB records (0x0478), one moto for KMS and DynamoDB",
        sizes.processes, sizes.tenants
    );
    println!("| design | records | KMS calls | per million records | DynamoDB calls | per million records | records/s |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for (design, records) in DESIGNS.iter().zip(sizes.records) {
        let (c, wall) = run_design(design, records, &sizes, &env);
        let per_m = |calls: u64| calls as f64 * 1e6 / c.records as f64;
        let rate = c.records as f64 / wall.as_secs_f64();
        println!(
            "| {design} | {} | {} | {:.0} | {} | {:.0} | {:.0} |",
            c.records,
            c.kms_calls,
            per_m(c.kms_calls),
            c.dynamodb_calls,
            per_m(c.dynamodb_calls),
            rate
        );
        // What the design must do, whatever the machine: the model in docs/fleet.md.
        let pt = (sizes.processes * sizes.tenants) as u64;
        match *design {
            "kms-no-cache" => assert_eq!(c.kms_calls, c.records),
            "kms-data-key-cache" => {
                // Tenant t gets records t, t + T, t + 2T, ... of each process.
                let per_process: u64 = (0..sizes.tenants)
                    .map(|t| (records.saturating_sub(t) as u64).div_ceil(sizes.tenants as u64))
                    .map(|n| n.div_ceil(CACHE_MAX_MESSAGES))
                    .sum();
                assert_eq!(c.kms_calls, per_process * sizes.processes as u64);
            }
            _ => assert_eq!((c.kms_calls, c.dynamodb_calls), (pt, pt)),
        }
        rows.push(format!(
            "{{\"design\":\"{design}\",\"processes\":{},\"tenants\":{},\"records\":{},\"kms_calls\":{},\
             \"dynamodb_calls\":{},\"records_per_s\":{rate:.0}}}",
            sizes.processes, sizes.tenants, c.records, c.kms_calls, c.dynamodb_calls
        ));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let _ = std::fs::write(target.join("fleet.json"), format!("[{}]\n", rows.join(",")));
}
