//! The CLI on one large file (tmpfs when there is one) against its floors,
//! measured in the same run: `cp` of the same file (read + write), and the
//! copy plus one AES-256-GCM seal of the whole buffer (aws-lc-rs), the
//! least any encrypting copy can cost; for signed suites one SHA-384 pass
//! over the message, which a signed stream cannot beat. Each case runs
//! `ENVSEAL_CLI_BENCH_RUNS` times (default 5) and keeps its fastest run;
//! user and system CPU time are the children's, from /proc/self/stat.
//!
//! `cargo bench --bench cli_io` runs 512 MiB (`ENVSEAL_CLI_BENCH_MIB`) and
//! writes `target/cli-io.json` for scripts/bench_summary.py.
//! `cargo test --benches` runs each case once on 8 MiB and checks that
//! every output decrypts back to the input, so the benchmark cannot rot.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::digest::{digest, SHA384};

/// One measured case.
struct Run {
    wall: Duration,
    user: f64,
    sys: f64,
}

/// The children's (user, system) CPU seconds so far.
fn children_cpu(tick: f64) -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name in parentheses; cutime and cstime are
    // the 16th and 17th fields of the line.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (get(13) / tick, get(14) / tick)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Runs `cmd` (stdout to `stdout` if given) `runs` times; the fastest run.
fn time_command(runs: usize, tick: f64, mut make: impl FnMut() -> (Command, Option<PathBuf>)) -> Run {
    let mut best: Option<Run> = None;
    for _ in 0..runs {
        let (mut cmd, stdout) = make();
        if let Some(p) = stdout {
            cmd.stdout(Stdio::from(File::create(p).unwrap()));
        }
        let (u0, s0) = children_cpu(tick);
        let start = Instant::now();
        let out = cmd.stderr(Stdio::piped()).output().unwrap();
        let wall = start.elapsed();
        let (u1, s1) = children_cpu(tick);
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let run = Run {
            wall,
            user: u1 - u0,
            sys: s1 - s0,
        };
        if best.as_ref().is_none_or(|b| run.wall < b.wall) {
            best = Some(run);
        }
    }
    best.unwrap()
}

fn time_in_process(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap()
}

fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let mib: usize = std::env::var("ENVSEAL_CLI_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 512 } else { 8 });
    let runs: usize = if bench {
        std::env::var("ENVSEAL_CLI_BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5)
    } else {
        1
    };
    let size = mib << 20;
    let tick = clock_ticks();
    let exe = env!("CARGO_BIN_EXE_envseal");
    let dir = scratch_dir();
    let d = dir.path();
    let input = d.join("input");
    let plaintext: Vec<u8> = (0..size)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&input, &plaintext).unwrap();
    let key = d.join("bench.key");
    std::fs::write(&key, [0x42u8; 32]).unwrap();
    let key_spec = format!("bench:key-1:{}", key.display());
    let out = d.join("out");
    let rm = |p: &Path| {
        let _ = std::fs::remove_file(p);
    };

    // Floors, measured now.
    let cp = time_command(runs, tick, || {
        rm(&out);
        let mut c = Command::new("cp");
        c.arg(&input).arg(&out);
        (c, None)
    });
    let aes = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[0x11; 32]).unwrap());
    let mut buf = plaintext.clone();
    let seal = time_in_process(runs, || {
        let tag = aes
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key([0; 12]), Aad::empty(), &mut buf)
            .unwrap();
        std::hint::black_box(tag.as_ref()[0]);
    });
    let sha = time_in_process(runs, || {
        std::hint::black_box(digest(&SHA384, &plaintext));
    });
    drop(buf);
    let floor = cp.wall + seal;
    let rate = |t: Duration| size as f64 / (1 << 20) as f64 / t.as_secs_f64();
    let mut rows: Vec<(String, Run, f64)> = Vec::new();
    println!(
        "cli: {mib} MiB on {}, fastest of {runs}; floors: cp {:.0} MiB/s, cp + AES-256-GCM seal {:.0} MiB/s, SHA-384 {:.0} MiB/s",
        d.display(),
        rate(cp.wall),
        rate(floor),
        rate(sha)
    );

    let cases = [
        ("0x0478", 4096u32),
        ("0x0478", 65536),
        ("0x0578", 4096),
        ("0x0578", 65536),
    ];
    for (suite, frame) in cases {
        let ct = d.join(format!("ct-{suite}-{frame}"));
        let common = |c: &mut Command| {
            c.arg("--raw-aes-key").arg(&key_spec);
        };
        let enc = time_command(runs, tick, || {
            rm(&ct);
            let mut c = Command::new(exe);
            c.args([
                "encrypt",
                "--suite",
                suite,
                "--frame-length",
                &frame.to_string(),
                "--input",
            ])
            .arg(&input)
            .arg("--output")
            .arg(&ct);
            common(&mut c);
            (c, None)
        });
        let dec_file = time_command(runs, tick, || {
            rm(&out);
            let mut c = Command::new(exe);
            c.args(["decrypt", "--input"]).arg(&ct).arg("--output").arg(&out);
            common(&mut c);
            (c, None)
        });
        assert!(
            std::fs::read(&out).unwrap() == plaintext,
            "{suite} f{frame}: decrypt to a file"
        );
        let dec_stdout = time_command(runs, tick, || {
            rm(&out);
            let mut c = Command::new(exe);
            c.args(["decrypt", "--output", "-", "--input"]).arg(&ct);
            common(&mut c);
            (c, Some(out.clone()))
        });
        assert!(
            std::fs::read(&out).unwrap() == plaintext,
            "{suite} f{frame}: decrypt to stdout"
        );
        rm(&ct);
        let reference = if suite == "0x0578" { sha } else { floor };
        for (what, run) in [
            ("encrypt", enc),
            ("decrypt-file", dec_file),
            ("decrypt-stdout", dec_stdout),
        ] {
            let ratio = reference.as_secs_f64() / run.wall.as_secs_f64();
            rows.push((format!("{what}-{}-f{frame}", &suite[2..]), run, ratio));
        }
    }
    println!(
        "{:<28} {:>9} {:>8} {:>7} {:>7}",
        "case", "MiB/s", "ratio", "user s", "sys s"
    );
    println!(
        "{:<28} {:>9.0} {:>8} {:>7.2} {:>7.2}",
        "cp",
        rate(cp.wall),
        "",
        cp.user,
        cp.sys
    );
    for (name, run, ratio) in &rows {
        println!(
            "{:<28} {:>9.0} {:>8.2} {:>7.2} {:>7.2}",
            name,
            rate(run.wall),
            ratio,
            run.user,
            run.sys
        );
    }
    println!("(ratio: against cp + seal for 0x0478, against one SHA-384 pass for 0x0578)");
    if bench {
        let json_rows: Vec<String> = rows
            .iter()
            .map(|(name, run, ratio)| {
                format!(
                    "{{\"case\":\"{name}\",\"mib_s\":{:.1},\"ratio\":{ratio:.3},\"user_s\":{:.2},\"sys_s\":{:.2}}}",
                    rate(run.wall),
                    run.user,
                    run.sys
                )
            })
            .collect();
        let json = format!(
            "{{\"mib\":{mib},\"runs\":{runs},\"cp_mib_s\":{:.1},\"floor_mib_s\":{:.1},\"sha384_mib_s\":{:.1},\"cp_user_s\":{:.2},\"cp_sys_s\":{:.2},\"rows\":[{}]}}\n",
            rate(cp.wall),
            rate(floor),
            rate(sha),
            cp.user,
            cp.sys,
            json_rows.join(",")
        );
        // Beside target/criterion, where scripts/bench_summary.py looks.
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../cli-io.json");
        std::fs::write(path, json).unwrap();
    }
}
