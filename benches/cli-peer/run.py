#!/usr/bin/env python3
"""envseal's CLI against AWS's aws-encryption-cli on the same inputs.

    run.py --envseal BIN --peer AWS_ENCRYPTION_CLI --moto MOTO_SERVER [options]

Starts moto's server on a free loopback port with one symmetric KMS key
(both CLIs reach it through AWS_ENDPOINT_URL_KMS), writes the inputs to a
work directory (tmpfs by default, so the disk is not what is measured):
a tree of FILES files of FILE_SIZE random bytes each in ten folders, and one
file of BIG_MIB MiB. Then, for each tool and case, runs the command REPEATS
times from a clean output directory and keeps the median wall time (and the
user and system CPU time of that run). Both tools run at their defaults:
suite 0x0578 (committing, ECDSA P-384 signed), frame length 4096,
require-encrypt-require-decrypt; `--cached` cases add a data-key cache
(aws-encryption-cli `--caching capacity=1000 max_age=300`, envseal
`--cache-max-age-s 300`), and the `0x0478` cases (cached) set both tools
to the unsigned committing suite.

Every output is checked before it counts: each tool's decrypted files must
equal the inputs, and each tool must decrypt the other's messages to the
same bytes (the big file and the whole tree).

Prints a markdown table (wall seconds side by side and the ratio) and
writes the raw figures as JSON to --json if given.

With --check (scripts/test), no timing: a tree of files of sizes at the
framing edges (empty, one byte, a frame, a frame and a byte, a batch, ...), for the
defaults and for 0x0478 with 128-byte frames (the Python SDK wants a
multiple of 16); each tool decrypts what each tool wrote, to the same bytes.
"""

import argparse
import filecmp
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

import boto3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    """moto's server on a free loopback port, with one symmetric KMS key."""

    def __init__(self, server):
        self.url = "http://127.0.0.1:{}".format(free_port())
        port = self.url.rsplit(":", 1)[1]
        self.proc = subprocess.Popen(
            [server, "-H", "127.0.0.1", "-p", port],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1)
                break
            except Exception:  # pylint: disable=broad-except
                if time.time() > deadline or self.proc.poll() is not None:
                    self.stop()
                    sys.exit("moto_server did not start")
                time.sleep(0.1)
        self.env = dict(
            os.environ,
            AWS_ENDPOINT_URL_KMS=self.url,
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_EC2_METADATA_DISABLED="true",
        )
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
            self.env.pop(name, None)
        kms = boto3.client(
            "kms",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.key_arn = kms.create_key(Description="cli peer bench")["KeyMetadata"]["Arn"]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def tree_spec(args):
    """The tree's files as [(count, size)]: --tree-spec, else --files x --file-size."""
    if not args.tree_spec:
        return [(args.files, args.file_size)]
    return [(int(count), int(size)) for count, size in (part.split("x") for part in args.tree_spec.split(","))]


def write_inputs(work, spec, big_mib):
    tree = os.path.join(work, "tree")
    i = 0
    for count, size in spec:
        for _ in range(count):
            folder = os.path.join(tree, "d{}".format(i % 10))
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, "f{:05}.bin".format(i)), "wb") as f:
                f.write(os.urandom(size))
            i += 1
    big = os.path.join(work, "big.bin")
    chunk = os.urandom(1 << 20)
    with open(big, "wb") as f:
        for i in range(big_mib):
            # Distinct chunks: each MiB starts with its index.
            f.write(i.to_bytes(8, "little") + chunk[8:])
    return tree, big


def timed(argv, env):
    """Runs argv; returns (wall s, user s, sys s) of the child, or exits on failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit("failed ({}): {}\n{}".format(done.returncode, " ".join(argv), done.stderr.decode(errors="replace")))
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def fresh(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def same_tree(a, b, suffix):
    """Every file under a has a byte-equal twin under b named with suffix."""
    count = 0
    for root, _, names in os.walk(a):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), a)
            twin = os.path.join(b, rel + suffix)
            if not filecmp.cmp(os.path.join(root, name), twin, shallow=False):
                sys.exit("differs: {} vs {}".format(os.path.join(root, name), twin))
            count += 1
    return count


class Tools:
    """The two command lines for each operation."""

    def __init__(self, envseal, peer, key_arn):
        self.envseal, self.peer, self.key = envseal, peer, key_arn

    def argv(self, tool, op, src, dst, tree, cached, extra=()):
        """The command line; `extra` is added on encrypt (suite, frame length)."""
        extra = list(extra) if op == "encrypt" else []
        if tool == "envseal":
            argv = [self.envseal, op, "--kms-key", self.key, "--input", src, "--output", dst]
            if tree:
                argv.append("--recursive")
            if cached:
                argv += ["--cache-max-age-s", "300"]
            return argv + extra + ["--quiet"]
        argv = [self.peer, "--encrypt" if op == "encrypt" else "--decrypt", "-S", "-q"]
        argv += ["-w", "key=" + self.key, "-i", src, "-o", dst]
        if tree:
            argv.append("-r")
        if cached:
            argv += ["--caching", "capacity=1000", "max_age=300"]
        return argv + extra


# The unsigned committing suite, as each tool spells it.
UNSIGNED = {
    "envseal": ["--suite", "0x0478"],
    "aws-encryption-cli": ["--algorithm", "AES_256_GCM_HKDF_SHA512_COMMIT_KEY"],
}


# The interop check (--check): sizes at the framing edges, for each of two
# settings given to both tools (envseal's flags, aws-encryption-cli's flags).
# envseal runs with two threads here, so its batches are 2 MiB on any
# machine: the last sizes end on, just past and a frame past a batch.
CHECK_SIZES = [0, 1, 127, 128, 129, 255, 256, 4095, 4096, 4097, 8192, 65536, 70000,
               2 << 20, (2 << 20) + 1, (2 << 20) + 4096, 4 << 20]
CHECK_SETTINGS = [
    ("defaults (0x0578, frame 4096)", [], []),
    (
        "0x0478, frame 128",
        ["--suite", "0x0478", "--frame-length", "128"],
        ["--algorithm", "AES_256_GCM_HKDF_SHA512_COMMIT_KEY", "--frame-length", "128"],
    ),
]


def check(args, moto):
    """Each tool decrypts the other's files (and its own) to the same bytes."""
    tree = os.path.join(args.work, "tree")
    for i in range(args.files):
        folder = os.path.join(tree, "d{}".format(i % 3))
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "f{:03}.bin".format(i)), "wb") as f:
            f.write(os.urandom(CHECK_SIZES[i % len(CHECK_SIZES)]))
    tools = Tools(args.envseal, args.peer, moto.key_arn)
    env = {"envseal": dict(moto.env, RAYON_NUM_THREADS="2"), "aws-encryption-cli": moto.env}
    checked = 0
    for n, (label, envseal_flags, peer_flags) in enumerate(CHECK_SETTINGS):
        for writer, flags in (("envseal", envseal_flags), ("aws-encryption-cli", peer_flags)):
            enc = os.path.join(args.work, "{}-{}-enc".format(n, writer))
            os.makedirs(enc)
            timed(tools.argv(writer, "encrypt", tree, enc, True, False, flags), env[writer])
            for reader in ("envseal", "aws-encryption-cli"):
                dec = os.path.join(args.work, "{}-{}-by-{}".format(n, writer, reader))
                os.makedirs(dec)
                timed(tools.argv(reader, "decrypt", enc, dec, True, False), env[reader])
                checked += same_tree(tree, dec, ".encrypted.decrypted")
        print("cli-peer check: {}: both ways OK".format(label), file=sys.stderr)
    print("cli-peer check: OK, {} files decrypted to their inputs ({} sizes from {} to {} bytes, {} settings, "
          "each tool reading both tools' messages)".format(
              checked, len(CHECK_SIZES), min(CHECK_SIZES), max(CHECK_SIZES), len(CHECK_SETTINGS)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envseal", required=True)
    ap.add_argument("--peer", required=True)
    ap.add_argument("--moto", required=True)
    ap.add_argument("--work", default="/dev/shm/envseal-cli-peer")
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--file-size", type=int, default=4096)
    ap.add_argument("--tree-spec", help="the tree as COUNTxSIZE,... (e.g. 2000x4096,200x65536,20x1048576); "
                    "overrides --files and --file-size")
    ap.add_argument("--big-mib", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json")
    ap.add_argument("--check", action="store_true",
                    help="interop check only: --files files of sizes at the framing edges, no timing")
    args = ap.parse_args()

    fresh(args.work)
    os.makedirs(args.work)
    moto = Moto(args.moto)
    if args.check:
        try:
            check(args, moto)
        finally:
            moto.stop()
            fresh(args.work)
        return
    try:
        spec = tree_spec(args)
        tree, big = write_inputs(args.work, spec, args.big_mib)
        tools = Tools(args.envseal, args.peer, moto.key_arn)
        out = lambda *parts: os.path.join(args.work, "-".join(parts))  # noqa: E731
        results = []

        def bench(case, tool, op, src, dst, is_tree, cached=False, extra=()):
            runs = []
            for _ in range(args.repeats):
                fresh(dst)
                if is_tree:
                    os.makedirs(dst)
                runs.append(timed(tools.argv(tool, op, src, dst, is_tree, cached, extra), moto.env))
            runs.sort()
            wall, user, system = runs[len(runs) // 2]
            results.append(dict(case=case, tool=tool, wall_s=wall, user_s=user, sys_s=system,
                                walls=[r[0] for r in runs]))
            print("{:<34} {:<19} {:8.3f} s wall ({:.3f} user, {:.3f} sys)".format(
                case, tool, wall, user, system), file=sys.stderr, flush=True)

        tree_label = " + ".join("{} x {} B".format(c, s) for c, s in spec) + " files"
        big_label = "{} MiB file".format(args.big_mib)
        for tool in ("envseal", "aws-encryption-cli"):
            t = tool.split("-")[0]
            bench("encrypt " + tree_label, tool, "encrypt", tree, out(t, "enc-tree"), True)
            bench("encrypt " + tree_label + ", cached", tool, "encrypt", tree, out(t, "enc-tree-cached"), True, True)
            bench("decrypt " + tree_label, tool, "decrypt", out(t, "enc-tree"), out(t, "dec-tree"), True)
            bench("decrypt " + tree_label + ", cached", tool, "decrypt", out(t, "enc-tree-cached"),
                  out(t, "dec-tree-cached"), True, True)
            # Both tools on the unsigned committing suite: no P-384 signature
            # or verification per file, the per-file cost of the tools alone.
            bench("encrypt " + tree_label + ", cached, 0x0478", tool, "encrypt", tree, out(t, "enc-tree-0478"),
                  True, True, UNSIGNED[tool])
            bench("decrypt " + tree_label + ", cached, 0x0478", tool, "decrypt", out(t, "enc-tree-0478"),
                  out(t, "dec-tree-0478"), True, True)
            bench("encrypt " + big_label, tool, "encrypt", big, out(t, "big.enc"), False)
            bench("decrypt " + big_label, tool, "decrypt", out(t, "big.enc"), out(t, "big.dec"), False)

        # The floor: copying the tree, in the same run.
        copies = []
        for _ in range(args.repeats):
            fresh(out("cp-tree"))
            copies.append(timed(["cp", "-r", tree, out("cp-tree")], moto.env)[0])
        copies.sort()
        cp_wall = copies[len(copies) // 2]
        print("{:<34} {:<19} {:8.3f} s wall".format("cp -r of the tree", "cp", cp_wall), file=sys.stderr)

        # Correctness: own round trips, then each tool decrypts the other's messages.
        checked = 0
        for t in ("envseal", "aws"):
            checked += same_tree(tree, out(t, "dec-tree"), ".encrypted.decrypted")
            checked += same_tree(tree, out(t, "dec-tree-cached"), ".encrypted.decrypted")
            checked += same_tree(tree, out(t, "dec-tree-0478"), ".encrypted.decrypted")
            if not filecmp.cmp(big, out(t, "big.dec"), shallow=False):
                sys.exit("{}: big file round trip differs".format(t))
        for reader, writer in (("envseal", "aws"), ("aws-encryption-cli", "envseal")):
            r = reader.split("-")[0]
            dst = out(r, "cross", writer)
            fresh(dst)
            os.makedirs(dst)
            timed(tools.argv(reader, "decrypt", out(writer, "enc-tree"), dst, True, False), moto.env)
            checked += same_tree(tree, dst, ".encrypted.decrypted")
            fresh(dst + "-0478")
            os.makedirs(dst + "-0478")
            timed(tools.argv(reader, "decrypt", out(writer, "enc-tree-0478"), dst + "-0478", True, False), moto.env)
            checked += same_tree(tree, dst + "-0478", ".encrypted.decrypted")
            timed(tools.argv(reader, "decrypt", out(writer, "big.enc"), dst + ".big", False, False), moto.env)
            if not filecmp.cmp(big, dst + ".big", shallow=False):
                sys.exit("{} reading {}: big file differs".format(reader, writer))
        print("checked: {} files decrypted equal to their inputs, own and cross-tool".format(checked),
              file=sys.stderr)
    finally:
        moto.stop()
        fresh(args.work)

    by = {(r["case"], r["tool"]): r for r in results}
    cases = list(dict.fromkeys(r["case"] for r in results))
    print("| case | envseal (s) | aws-encryption-cli (s) | envseal faster by |")
    print("|---|---:|---:|---:|")
    for case in cases:
        e, a = by[(case, "envseal")], by[(case, "aws-encryption-cli")]
        print("| {} | {:.3f} (user {:.2f}, sys {:.2f}) | {:.3f} (user {:.2f}, sys {:.2f}) | {:.1f}x |".format(
            case, e["wall_s"], e["user_s"], e["sys_s"], a["wall_s"], a["user_s"], a["sys_s"],
            a["wall_s"] / e["wall_s"]))
    print()
    print("`cp -r` of the tree: {:.3f} s. envseal against it: {}.".format(cp_wall, "; ".join(
        "{} {:.1f}x".format(case, by[(case, "envseal")]["wall_s"] / cp_wall) for case in cases if "files" in case)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(repeats=args.repeats, cp_tree_s=cp_wall, results=results), f, indent=1)


if __name__ == "__main__":
    main()
