#!/usr/bin/env python3
"""Runs a command against a fresh moto server (KMS and DynamoDB) with one KMS key.

    with_moto_key.py MOTO_SERVER COMMAND...

Starts MOTO_SERVER on a free loopback port and the DynamoDB checker in
front of it (tests/ddb-check/proxy.js, or ENVSEAL_DDB_CHECK: it refuses
DynamoDB requests that real DynamoDB refuses, which moto accepts, and
forwards the rest), creates a symmetric KMS key (boto3, from the test
venv), runs COMMAND with AWS_ENDPOINT_URL_KMS and AWS_ENDPOINT_URL_DYNAMODB
(the checker's URL), AWS_REGION, static test credentials and
ENVSEAL_KMS_KEY_ID set, stops both, and exits with COMMAND's status.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import boto3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ddb_check(upstream):
    """The DynamoDB checker in front of `upstream`: (process, its URL)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = os.environ.get("ENVSEAL_DDB_CHECK") or os.path.join(repo, "tests", "ddb-check", "proxy.js")
    if not os.path.isdir(os.path.join(os.path.dirname(script), "node_modules", "dynalite")):
        sys.exit("the DynamoDB checker is not installed: run scripts/test or npm ci --prefix tests/ddb-check")
    proc = subprocess.Popen(
        [os.environ.get("ENVSEAL_NODE", "node"), script, "--upstream", upstream],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    line = proc.stdout.readline().decode()
    if not line.startswith("listening "):
        sys.exit("the DynamoDB checker did not start: {!r}".format(line))
    return proc, "http://127.0.0.1:{}".format(int(line.split()[1]))


def main():
    server, command = sys.argv[1], sys.argv[2:]
    port = free_port()
    url = "http://127.0.0.1:{}".format(port)
    proc = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    check = None
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1)
                break
            except Exception:  # pylint: disable=broad-except
                if time.time() > deadline or proc.poll() is not None:
                    sys.exit("moto_server did not start")
                time.sleep(0.1)
        check, url = ddb_check(url)
        env = dict(
            os.environ,
            AWS_ENDPOINT_URL_KMS=url,
            AWS_ENDPOINT_URL_DYNAMODB=url,
            AWS_REGION="us-east-1",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_EC2_METADATA_DISABLED="true",
        )
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)
        kms = boto3.client(
            "kms",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        env["ENVSEAL_KMS_KEY_ID"] = kms.create_key()["KeyMetadata"]["Arn"]
        status = subprocess.call(command, env=env)
        with urllib.request.urlopen(url + "/__ddb-check/stats", timeout=5) as r:
            checked = json.load(r)["operations"]
        print(
            "ddb-check: "
            + (", ".join("{} {checked} checked, {refused} refused".format(op, **c) for op, c in sorted(checked.items())) or "no DynamoDB request"),
            file=sys.stderr,
        )
        sys.exit(status)
    finally:
        if check is not None:
            check.stdin.close()  # the checker exits when its stdin closes
            check.wait(timeout=10)
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
