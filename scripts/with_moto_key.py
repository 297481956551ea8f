#!/usr/bin/env python3
"""Runs a command against a fresh moto server (KMS and DynamoDB) with one KMS key.

    with_moto_key.py MOTO_SERVER COMMAND...

Starts MOTO_SERVER on a free loopback port, creates a symmetric KMS key
(boto3, from the test venv), runs COMMAND with AWS_ENDPOINT_URL_KMS,
AWS_REGION, static test credentials and ENVSEAL_KMS_KEY_ID set, stops the
server, and exits with COMMAND's status.
"""

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


def main():
    server, command = sys.argv[1], sys.argv[2:]
    port = free_port()
    url = "http://127.0.0.1:{}".format(port)
    proc = subprocess.Popen(
        [server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
        sys.exit(subprocess.call(command, env=env))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
