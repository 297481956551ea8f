#!/usr/bin/env python3
"""Prints the latest criterion figures (target/criterion) as markdown tables:
throughput per case with its ratio to raw AES-256-GCM from the same run, and
the 1 KiB record figures against the per-message limit. Times are criterion's
median per iteration."""
import json
import os
import platform
import sys

# bench_summary.py [CRITERION_DIR] [--write BENCHMARKS.md]: with --write the
# tables also replace those between the markers in that file.
args = [a for a in sys.argv[1:] if a != "--write"]
write_to = None
if "--write" in sys.argv:
    i = sys.argv.index("--write")
    write_to = sys.argv[i + 1] if i + 1 < len(sys.argv) else "BENCHMARKS.md"
    args = [a for a in args if a != write_to]
root = args[0] if args else "target/criterion"
lines = []
_print = print


def print(*parts, **kw):  # noqa: A001 - collects the tables while printing them
    text = " ".join(str(p) for p in parts) + kw.get("end", "\n")
    lines.append(text)
    _print(*parts, **kw)

rows = {}
for dirpath, _dirs, files in os.walk(root):
    if dirpath.endswith(os.sep + "new") and "benchmark.json" in files:
        bench = json.load(open(os.path.join(dirpath, "benchmark.json")))
        est = json.load(open(os.path.join(dirpath, "estimates.json")))
        # The median: on this VM a few slow iterations (another tenant's
        # memory traffic) move the mean of a two-buffer case by up to 10%.
        ns = est["median"]["point_estimate"]
        rows[(bench["group_id"], bench["function_id"] or bench.get("value_str") or "")] = (ns, bench.get("throughput") or {})


def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


print(f"Machine: {cpu()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}\n")
groups = sorted({g for g, _ in rows if "/" in g and g.split("/")[0] in ("encrypt", "decrypt")},
                key=lambda g: (g.split("/")[0], ["1k", "64k", "1m", "64m"].index(g.split("/")[1])
                               if g.split("/")[1] in ["1k", "64k", "1m", "64m"] else 9))
if groups:
    print("| op | size | case | MB/s | messages/s | of raw AES-GCM |")
    print("|---|---|---|---:|---:|---:|")
for g in groups:
    op, size = g.split("/")
    raw = rows.get((g, "raw-aes-256-gcm"))
    for (gg, f), (ns, tp) in sorted(rows.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        if gg != g:
            continue
        nbytes = tp.get("Bytes", 0)
        mbs = nbytes / ns * 1e3 if nbytes else 0
        ratio = "baseline" if f == "raw-aes-256-gcm" else f"{raw[0] / ns:.0%}" if raw else ""
        print(f"| {op} | {size} | {f} | {mbs:,.0f} | {1e9 / ns:,.0f} | {ratio} |")


def streams_table():
    """Every streaming path against the one-shot of the same size, direction
    and frame length (0x0478, the default thread setting), and all cores
    against one thread; then the signed suite against one SHA-384 pass."""
    def ns(g, f):
        r = rows.get((g, f))
        return r[0] if r else None

    sizes = [s for s in ["1k", "64k", "1m", "64m"] if any(g == f"encrypt/{s}" for g, _ in rows)]
    if not sizes or ns(f"encrypt/{sizes[0]}", "stream-async-0478-f4096-all") is None:
        return
    print(f"\nStreams against the one-shot of the same size, direction and frame length "
          f"(0x0478, default threads, medians of one run; {cpu()}, {os.cpu_count()} cores). "
          "Each cell is the one-shot's time over the path's: 100 % is as fast.\n")
    print("| op | size | frame | one-shot MB/s | sync stream | sync copy | tokio stream | tokio copy "
          "| one-shot all cores of 1 thread | sync stream all cores of 1 thread |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    within = total = 0
    for op in ["encrypt", "decrypt"]:
        for size in sizes:
            g = f"{op}/{size}"
            for frame in ["4096", "65536"]:
                base = ns(g, f"0478-f{frame}-all")
                if base is None:
                    continue
                nbytes = rows[(g, f"0478-f{frame}-all")][1].get("Bytes", 0)
                cells = []
                for path in ["stream", "stream-copy", "stream-async", "stream-async-copy"]:
                    t = ns(g, f"{path}-0478-f{frame}-all")
                    if t is None:
                        cells.append("")
                        continue
                    total += 1
                    within += base / t >= 0.9
                    cells.append(f"{base / t:.0%}")
                for one, alln in [(f"0478-f{frame}-1t", f"0478-f{frame}-all"),
                                  (f"stream-0478-f{frame}-1t", f"stream-0478-f{frame}-all")]:
                    a, b = ns(g, alln), ns(g, one)
                    cells.append(f"{b / a:.0%}" if a and b else "")
                print(f"| {op} | {size} | {frame} | {nbytes / base * 1e3:,.0f} | " + " | ".join(cells) + " |")
    print(f"\n{within} of {total} streaming cells within 10 % of the one-shot.")
    print("\n| op | size | SHA-384 MB/s | one-shot all cores | one-shot 1 thread | stream all cores | stream 1 thread |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for op in ["encrypt", "decrypt"]:
        for size in sizes:
            g = f"{op}/{size}"
            sha = ns(g, "sha384")
            if sha is None:
                continue
            nbytes = rows[(g, "sha384")][1].get("Bytes", 0)
            cells = [ns(g, f) for f in ["0578-f4096-all", "0578-f4096-1t", "stream-0578-f4096-all", "stream-0578-f4096-1t"]]
            print(f"| {op} | {size} | {nbytes / sha * 1e3:,.0f} | " +
                  " | ".join(f"{sha / c:.0%}" if c else "" for c in cells) + " |")


streams_table()

rec = {f: ns for (g, f), (ns, _) in rows.items() if g == "record-1k"}
if rec:
    print("\n| 1 KiB record (0x0478, cached key) | µs | records/s | of the per-message limit |")
    print("|---|---:|---:|---:|")
    # The limit is the faster way to get the primitives (HKDF from either crate).
    limits = [rec[f] for f in ("limit", "limit-aws-lc-hkdf") if f in rec]
    limit = min(limits) if limits else None
    for f in ["limit", "limit-aws-lc-hkdf", "envseal-cached-encrypt", "envseal-cached-decrypt"]:
        if f in rec:
            share = ("baseline" if rec[f] == limit else "") if f.startswith("limit") else (
                f"{limit / rec[f]:.0%}" if limit else "")
            print(f"| {f} | {rec[f] / 1e3:.2f} | {1e9 / rec[f]:,.0f} | {share} |")

per_key = {f: ns for (g, f), (ns, _) in rows.items() if g == "record-1k-per-message-key"}
if per_key:
    print("\n| 1 KiB record, a new data key per message | µs | records/s | µs more than the raw AES keyring |")
    print("|---|---:|---:|---:|")
    for op in ["encrypt", "decrypt"]:
        base = per_key.get(f"raw-aes-keyring-{op}")
        for f in [f"raw-aes-keyring-{op}", f"hierarchy-cached-branch-key-{op}",
                  f"raw-ecdh-static-p256-{op}", f"raw-ecdh-ephemeral-discovery-p256-{op}",
                  f"kms-rsa-2048-oaep-sha256-{op}", f"kms-ecdh-static-p256-{op}"]:
            if f in per_key:
                more = "baseline" if f.startswith("raw-aes") else (f"{(per_key[f] - base) / 1e3:+.2f}" if base else "")
                print(f"| {f} | {per_key[f] / 1e3:.2f} | {1e9 / per_key[f]:,.0f} | {more} |")
    if "ecdh-p256-agreement" in per_key:
        a = per_key["ecdh-p256-agreement"]
        print(f"| ecdh-p256-agreement (aws-lc, the primitive alone) | {a / 1e3:.2f} | {1e9 / a:,.0f} | |")

fleet_path = os.path.join(os.path.dirname(os.path.abspath(root)), "fleet.json")
if os.path.exists(fleet_path):
    fleet = json.load(open(fleet_path))
    if fleet:
        f0 = fleet[0]
        print(f"\nFleet (`benches/fleet.rs`): {f0['processes']} processes × {f0['tenants']} tenants against one moto, 1 KiB records:\n")
        print("| design | records | KMS calls | per million records | DynamoDB calls | per million records | records/s |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for r in fleet:
            per_m = lambda n: n * 1e6 / r["records"]
            print(f"| {r['design']} | {r['records']:,} | {r['kms_calls']:,} | {per_m(r['kms_calls']):,.0f} | "
                  f"{r['dynamodb_calls']:,} | {per_m(r['dynamodb_calls']):,.0f} | {r['records_per_s']:,} |")

cli_path = os.path.join(os.path.dirname(os.path.abspath(root)), "cli-io.json")
if os.path.exists(cli_path):
    cli = json.load(open(cli_path))
    print(f"\nCLI (`benches/cli_io.rs`): one {cli['mib']} MiB file on tmpfs, raw AES key, fastest of {cli['runs']} runs; "
          f"floors in the same run: `cp` {cli['cp_mib_s']:,.0f} MiB/s (user {cli['cp_user_s']:.2f} s, sys {cli['cp_sys_s']:.2f} s), "
          f"`cp` + one AES-256-GCM seal {cli['floor_mib_s']:,.0f} MiB/s, one SHA-384 pass {cli['sha384_mib_s']:,.0f} MiB/s.\n")
    print("| case | MiB/s | of the floor | user s | sys s |")
    print("|---|---:|---:|---:|---:|")
    for r in cli["rows"]:
        floor = "SHA-384" if "-0578-" in r["case"] else "cp + seal"
        print(f"| {r['case']} | {r['mib_s']:,.0f} | {r['ratio']:.0%} of {floor} | {r['user_s']:.2f} | {r['sys_s']:.2f} |")
    reencrypt = cli.get("reencrypt")
    if reencrypt:
        print(f"\n`reencrypt` of the same {cli['mib']} MiB message under a second raw AES key, against the "
              f"decrypt to a file and the encrypt it replaces, run one after the other (same run, fastest of "
              f"{cli['runs']} each):\n")
        print("| case | MiB/s | decrypt then encrypt MiB/s | speed-up |")
        print("|---|---:|---:|---:|")
        for r in reencrypt:
            print(f"| {r['case']} | {r['mib_s']:,.0f} | {r['two_mib_s']:,.0f} | {r['speedup']:.2f}× |")
    tree = cli.get("tree")
    if tree:
        print(f"\nThe CLI on a tree of {tree['files']:,} files ({tree['bytes'] / 2**20:.1f} MiB: 2,000 × 4 KiB, "
              f"200 × 64 KiB, 20 × 1 MiB, tmpfs), raw AES key, default `--jobs`, medians of {tree['runs']} runs; "
              f"`cp -r` of the same tree in the same run: {tree['cp_s']:.3f} s. The whole process encrypting one "
              f"1 KB file: {tree['one_kb_ms']:.2f} ms (median of 10).\n")
        print("| case | s | of `cp -r` | user s | sys s |")
        print("|---|---:|---:|---:|---:|")
        for r in tree["rows"]:
            print(f"| {r['case']} | {r['wall_s']:.3f} | {r['of_cp']:.2f}× | {r['user_s']:.2f} | {r['sys_s']:.2f} |")


BEGIN = "<!-- scripts/bench writes the tables from here to the end marker -->"
END = "<!-- end of the tables scripts/bench writes -->"
if write_to:
    doc = open(write_to).read()
    head, rest = doc.split(BEGIN, 1)
    _old, tail = rest.split(END, 1)
    tables = "".join(l for l in lines if not l.startswith("Machine:"))
    open(write_to, "w").write(head + BEGIN + "\n" + tables.strip("\n") + "\n" + END + tail)
    _print(f"wrote the tables into {write_to}")
