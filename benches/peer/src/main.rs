//! Prints the peer benchmark's criterion results as a markdown table.
//!
//! Usage: `summary [CRITERION_DIR]`; the default is `$CARGO_TARGET_DIR/criterion`,
//! else this crate's `target/criterion`. Reads every `*/new/benchmark.json`
//! and `*/new/estimates.json` under it whose group is `peer/<op>/<suite>/<size>`
//! and uses the median time per iteration.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

const IMPLS: [&str; 5] = ["raw", "envseal", "envseal-1t", "envseal-into", "aws-esdk"];
/// The project's target: envseal at least this many times aws-esdk.
const TARGET_RATIO: f64 = 20.0;

#[derive(Clone, Copy)]
struct Estimate {
    /// Median nanoseconds per message.
    ns: f64,
    bytes: u64,
}

impl Estimate {
    fn mb_s(self) -> f64 {
        self.bytes as f64 / self.ns * 1e3 // bytes/ns * 1e9 / 1e6
    }
    fn msg_s(self) -> f64 {
        1e9 / self.ns
    }
}

/// (op order, suite, bytes) -> impl -> estimate
type Results = BTreeMap<(u8, String, u64, String), BTreeMap<String, Estimate>>;

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            if path.join("benchmark.json").is_file() && path.join("estimates.json").is_file() {
                out.push(path);
            }
        } else {
            walk(&path, out);
        }
    }
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&fs::read_to_string(path).ok()?).ok()
}

fn load(root: &Path) -> Results {
    let mut dirs = Vec::new();
    walk(root, &mut dirs);
    let mut results = Results::new();
    for dir in dirs {
        let (Some(bench), Some(est)) = (
            read_json(&dir.join("benchmark.json")),
            read_json(&dir.join("estimates.json")),
        ) else {
            continue;
        };
        let group = bench["group_id"].as_str().unwrap_or_default();
        let function = bench["function_id"].as_str().unwrap_or_default();
        let parts: Vec<&str> = group.split('/').collect();
        let ["peer", op, suite, size] = parts[..] else {
            continue;
        };
        let Some(bytes) = bench["throughput"]["Bytes"].as_u64() else {
            continue;
        };
        let Some(ns) = est["median"]["point_estimate"].as_f64() else {
            continue;
        };
        let op_order = match op {
            "encrypt" => 0,
            "decrypt" => 1,
            _ => 2,
        };
        results
            .entry((op_order, suite.to_string(), bytes, format!("{op} {suite} {size}")))
            .or_default()
            .insert(function.to_string(), Estimate { ns, bytes });
    }
    results
}

fn fmt_num(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn cell(e: Option<Estimate>, f: fn(Estimate) -> f64) -> String {
    e.map_or_else(|| "–".to_string(), |e| fmt_num(f(e)))
}

fn main() {
    let root = std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
        target.join("criterion")
    });
    let results = load(&root);
    if results.is_empty() {
        eprintln!("no peer/* criterion results under {}", root.display());
        std::process::exit(1);
    }

    println!("Median time per message; MB/s = 10^6 bytes of plaintext per second.");
    println!();
    println!(
        "| case | raw MB/s | envseal MB/s | envseal msg/s | envseal 1 thread MB/s | envseal reused buffer MB/s | aws-esdk MB/s | aws-esdk msg/s | envseal/aws-esdk | envseal 1 thread/aws-esdk | envseal reused buffer/aws-esdk | envseal/raw |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut targets = Vec::new();
    for ((_, _, bytes, case), by_impl) in &results {
        let get = |name: &str| by_impl.get(name).copied();
        let [raw, seal, seal_1t, seal_into, esdk] = IMPLS.map(get);
        let vs_esdk = seal.zip(esdk).map(|(s, e)| e.ns / s.ns);
        let vs_esdk_1t = seal_1t.zip(esdk).map(|(s, e)| e.ns / s.ns);
        let vs_esdk_into = seal_into.zip(esdk).map(|(s, e)| e.ns / s.ns);
        let vs_raw = seal.zip(raw).map(|(s, r)| r.ns / s.ns);
        let ratio = |r: Option<f64>| r.map_or_else(|| "–".to_string(), |r| format!("{}×", fmt_num(r)));
        println!(
            "| {case} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(raw, Estimate::mb_s),
            cell(seal, Estimate::mb_s),
            cell(seal, Estimate::msg_s),
            cell(seal_1t, Estimate::mb_s),
            cell(seal_into, Estimate::mb_s),
            cell(esdk, Estimate::mb_s),
            cell(esdk, Estimate::msg_s),
            ratio(vs_esdk),
            ratio(vs_esdk_1t),
            ratio(vs_esdk_into),
            ratio(vs_raw),
        );
        let is_target = (*bytes == 1 << 10 && case.contains(" 0478 ")) || *bytes == 64 << 20;
        if let (true, Some(r)) = (is_target, vs_esdk) {
            targets.push((case.clone(), r, vs_esdk_1t, vs_esdk_into));
        }
    }
    if !targets.is_empty() {
        println!();
        println!("Targets (envseal ≥ {TARGET_RATIO}× aws-esdk on 1 KiB 0x0478 messages/s and on 64 MiB throughput):");
        println!();
        for (case, r, r_1t, r_into) in targets {
            let mark = |r: f64| if r >= TARGET_RATIO { "met" } else { "NOT met" };
            let one = r_1t.map_or_else(String::new, |r| format!("; one thread: {}×", fmt_num(r)));
            let into = r_into.map_or_else(String::new, |r| {
                format!("; reused output buffer: {}× ({})", fmt_num(r), mark(r))
            });
            println!("- {case}: {}× ({}){one}{into}", fmt_num(r), mark(r));
        }
    }
}
