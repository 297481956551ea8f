//! The soak's report: each mode's workers summed per phase, printed side
//! by side, written to `soak.json`, and checked.

use crate::*;

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

/// Prints the modes side by side per phase, writes `soak.json` under the
/// target directory (returned), then checks what must hold whatever the
/// cache policy and the machine.
pub(crate) fn report(size: &Size, schedule: &chaos::Schedule, runs: &[ModeRun]) -> PathBuf {
    let tables: Vec<Vec<Row>> = runs.iter().map(|r| rows(r, schedule)).collect();

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
    for run in runs {
        let sum = |k: &str| run.workers.iter().map(|w| w[k].as_u64().unwrap()).sum::<u64>();
        let (written, verified, lost) = (sum("written"), sum("verified"), sum("lost"));
        let growth = rss_growth(run, schedule);
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
    target.join("soak.json")
}
