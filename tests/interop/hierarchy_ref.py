#!/usr/bin/env python3
"""Reference CLI for the AWS KMS Hierarchical keyring (Python MPL 1.11.3, ESDK 4.0.7).

Used by envseal's interop tests: the key store (a DynamoDB table of branch
keys wrapped by a KMS key) is written and read by the official Material
Providers Library, and messages are encrypted/decrypted by the ESDK with the
MPL's hierarchical keyring, so envseal's key store items and messages can be
checked against the reference in both directions.

    hierarchy_ref.py create-table --table T [--kms-key ARN] [--logical-name NAME]
    hierarchy_ref.py create-key --table T --kms-key ARN [--logical-name NAME]
        [--branch-key-id ID --context K=V ...]      (prints the branch key id)
    hierarchy_ref.py version-key --table T --kms-key ARN [--logical-name NAME]
        --branch-key-id ID
    hierarchy_ref.py get-active --table T --kms-key ARN [--logical-name NAME]
        --branch-key-id ID
    hierarchy_ref.py get-version --table T --kms-key ARN [--logical-name NAME]
        --branch-key-id ID --version V
        (both print {"branch_key_id", "version", "encryption_context",
         "branch_key_hex"} as JSON)
    hierarchy_ref.py get-beacon --table T --kms-key ARN [--logical-name NAME]
        --branch-key-id ID
        (GetBeaconKey; prints {"beacon_key_id", "encryption_context",
         "beacon_key_hex"} as JSON)
    hierarchy_ref.py get-info --table T --kms-key ARN [--logical-name NAME]
        (GetKeyStoreInfo; prints {"key_store_id", "key_store_name",
         "logical_key_store_name", "grant_tokens", "kms_configuration":
         {"kms_key_arn": ARN}} as JSON)
    hierarchy_ref.py encrypt|decrypt --input FILE --output FILE --table T
        --kms-key ARN --branch-key-id ID [--logical-name NAME] [--ttl-s N]
        [--suite HEXID] [--context-json FILE]
        [--commitment-policy require-encrypt-require-decrypt|
                             require-encrypt-allow-decrypt|
                             forbid-encrypt-allow-decrypt]
    hierarchy_ref.py batch JOBS.json   (a JSON list of argument lists, run in
        one process with the same boto3 clients; prints a JSON list of
        {"ok", "error", "stdout"} results)

Endpoints, region and credentials come from the usual AWS environment
(AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL_DYNAMODB, AWS_REGION,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), read by boto3 itself (which
reads AWS_DEFAULT_REGION, not AWS_REGION: AWS_REGION is passed on to it).
--logical-name (the key store's logical name, bound into every branch key)
defaults to the table name. --kms-key is the KMS configuration of the key
store (a single key ARN). Every command but create-table also takes
--id ID (the key store's id; default: the MPL makes a random UUID) and
--grant-token TOKEN (repeatable; the key store's grant tokens, which moto
ignores). create-table succeeds if the table exists already (with the key
store's key schema: both keys of type S).
--context K=V on create-key is the branch key's custom encryption context
(the MPL requires it whenever --branch-key-id is given, and stores it with an
"aws-crypto-ec:" prefix). FILE may be "-" for stdin/stdout. --context-json is
a JSON object of strings: the encryption context on encrypt; on decrypt it is
passed to the ESDK as the reproduced encryption context and every pair must
also be in the message's context. --ttl-s (default 600) is the keyring's
branch key cache TTL; the keyring gets a single-threaded LRU cache (1000
entries) because the MPL's default (storm tracking, 10 s grace period)
rejects TTLs not above the grace period; any --ttl-s >= 0 is accepted.
Exit 0 on success; on any error one line on stderr and exit 1 (the output
file is only created on success).

In batch, a job whose output is "-" has it in "stdout" (decoded as UTF-8
with replacement, so only for text). A failed job's error, like the one-line
stderr message, follows the MPL's nested errors and ends with the last failed
AWS call of that job, e.g. "(last AWS error: Decrypt:
InvalidCiphertextException)", since the MPL keeps only an AWS error's
message and KMS leaves that empty.

What the MPL calls (all served by moto 5.2.5's moto_server, KMS and DynamoDB
on one port, with neither docker nor py-partiql-parser installed: moto needs
those only for DynamoDB streams, PartiQL and table import):
  create-table  DescribeTable, then CreateTable (pay per request, HASH
                "branch-key-id" S, RANGE "type" S) if it is missing; moto
                reports a new table ACTIVE at once.
  create-key    KMS GenerateDataKeyWithoutPlaintext (version item's context),
                ReEncrypt (version -> ACTIVE context), GenerateDataKey-
                WithoutPlaintext (beacon), then one TransactWriteItems of 3
                Puts, each with attribute_not_exists(#BranchKeyIdentifierField)
                ("#BranchKeyIdentifierField": "branch-key-id").
  version-key   GetItem ACTIVE, ReEncrypt ACTIVE -> ACTIVE (authenticates
                it), GenerateDataKeyWithoutPlaintext, ReEncrypt new version
                -> ACTIVE, TransactWriteItems: Put version with
                attribute_not_exists, Put ACTIVE with attribute_exists (the
                name through the same placeholder; DynamoDB refuses a bare
                hyphenated name, tests/ddb-check checks every request).
  get-active / get-version / get-beacon / encrypt / decrypt
                GetItem ("branch:ACTIVE", "branch:version:<v>" or
                "beacon:ACTIVE", no ConsistentRead), then KMS Decrypt with
                the item's context.
  get-info      nothing (the configuration only).
moto enforces both transaction conditions (a duplicate --branch-key-id fails
with TransactionCanceledException, reasons [None, ConditionalCheckFailed,
ConditionalCheckFailed]) and binds the encryption context in KMS (a wrong
--logical-name, which is the "tablename" in the KMS context, fails with
InvalidCiphertextException, which has an empty message in moto as in KMS).
botocore needs a region: AWS_REGION is passed on (see above).
"""

import argparse
import json
import logging
import os
import sys
import warnings

warnings.simplefilter("ignore")
# The SDK logs tracebacks (e.g. "Error on closing") on failure; errors are reported as one line instead.
logging.disable(logging.CRITICAL)

import boto3  # noqa: E402
from ref_io import Output, Parser, UsageError, cli_main, load_context, open_input, parse_suite, read_bytes  # noqa: E402
import aws_encryption_sdk  # noqa: E402
from aws_encryption_sdk.identifiers import AlgorithmSuite, CommitmentPolicy  # noqa: E402
from aws_cryptographic_material_providers.keystore import KeyStore  # noqa: E402
from aws_cryptographic_material_providers.keystore.config import KeyStoreConfig  # noqa: E402
from aws_cryptographic_material_providers.keystore.models import (  # noqa: E402
    CreateKeyInput,
    CreateKeyStoreInput,
    GetActiveBranchKeyInput,
    GetBeaconKeyInput,
    GetBranchKeyVersionInput,
    KMSConfigurationKmsKeyArn,
    Unit,
    VersionKeyInput,
)
from aws_cryptographic_material_providers.mpl import AwsCryptographicMaterialProviders  # noqa: E402
from aws_cryptographic_material_providers.mpl.config import MaterialProvidersConfig  # noqa: E402
from aws_cryptographic_material_providers.mpl.models import (  # noqa: E402
    CacheTypeSingleThreaded,
    CreateAwsKmsHierarchicalKeyringInput,
    SingleThreadedCache,
)

CHUNK = 64 * 1024
CACHE_ENTRIES = 1000

POLICIES = {
    "require-encrypt-require-decrypt": CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
    "require-encrypt-allow-decrypt": CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT,
    "forbid-encrypt-allow-decrypt": CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT,
}


class Clients(object):
    """boto3 clients from the environment, created once per process."""

    _kms = None
    _ddb = None
    _mpl = None
    # "Service.Operation: Code" of the last failed AWS call of the current
    # job: the MPL keeps only an error's message, which KMS leaves empty for
    # e.g. InvalidCiphertextException.
    last_error = None

    @classmethod
    def _record_error(cls, parsed=None, model=None, **_):
        err = (parsed or {}).get("Error") if isinstance(parsed, dict) else None
        if err and err.get("Code"):
            cls.last_error = "{}: {}".format(getattr(model, "name", "?"), err["Code"])

    @classmethod
    def _client(cls, service):
        # botocore reads AWS_DEFAULT_REGION but not AWS_REGION (which the
        # Rust SDK and most tools use), so pass that one on explicitly.
        region = os.environ.get("AWS_REGION") or None
        client = boto3.client(service, region_name=region)
        client.meta.events.register("after-call." + client.meta.service_model.endpoint_prefix, cls._record_error)
        return client

    @classmethod
    def kms(cls):
        if cls._kms is None:
            cls._kms = cls._client("kms")
        return cls._kms

    @classmethod
    def ddb(cls):
        if cls._ddb is None:
            cls._ddb = cls._client("dynamodb")
        return cls._ddb

    @classmethod
    def mpl(cls):
        if cls._mpl is None:
            cls._mpl = AwsCryptographicMaterialProviders(config=MaterialProvidersConfig())
        return cls._mpl


def kms_arn(text):
    if not text.startswith("arn:"):
        raise argparse.ArgumentTypeError("--kms-key needs a key ARN, got {!r}".format(text))
    return text


def context_pair(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("expected K=V, got {!r}".format(text))
    return (key, value)


def key_store(args):
    return KeyStore(
        config=KeyStoreConfig(
            ddb_table_name=args.table,
            kms_configuration=KMSConfigurationKmsKeyArn(args.kms_key),
            logical_key_store_name=args.logical_name if args.logical_name is not None else args.table,
            id=getattr(args, "id", None),
            grant_tokens=getattr(args, "grant_token", None) or None,
            ddb_client=Clients.ddb(),
            kms_client=Clients.kms(),
        )
    )


def _store_args(p, branch_key_id=True):
    p.add_argument("--table", required=True)
    p.add_argument("--kms-key", required=True, type=kms_arn)
    p.add_argument("--logical-name")
    p.add_argument("--id")
    p.add_argument("--grant-token", action="append", default=[])
    if branch_key_id:
        p.add_argument("--branch-key-id", required=True)


def _materials_json(m):
    return json.dumps(
        {
            "branch_key_id": m.branch_key_identifier,
            "version": m.branch_key_version,
            "encryption_context": dict(m.encryption_context),
            "branch_key_hex": bytes(m.branch_key).hex(),
        },
        sort_keys=True,
    ) + "\n"


def cmd_create_table(argv, out):
    p = Parser(prog="hierarchy_ref.py create-table")
    p.add_argument("--table", required=True)
    # The key store needs a KMS configuration; creating the table uses none.
    p.add_argument("--kms-key", type=kms_arn, default="arn:aws:kms:us-east-1:000000000000:key/unused")
    p.add_argument("--logical-name")
    args = p.parse_args(argv)
    # The MPL accepts an existing table if its key schema is the key store's.
    key_store(args).create_key_store(CreateKeyStoreInput())


def cmd_create_key(argv, out):
    p = Parser(prog="hierarchy_ref.py create-key")
    _store_args(p, branch_key_id=False)
    p.add_argument("--branch-key-id")
    p.add_argument("--context", action="append", type=context_pair, default=[])
    args = p.parse_args(argv)
    ctx = None
    if args.context:
        ctx = {}
        for k, v in args.context:
            if k in ctx:
                raise UsageError("duplicate --context key {!r}".format(k))
            ctx[k] = v
    res = key_store(args).create_key(
        CreateKeyInput(branch_key_identifier=args.branch_key_id, encryption_context=ctx)
    )
    out.write((res.branch_key_identifier + "\n").encode("utf-8"))


def cmd_version_key(argv, out):
    p = Parser(prog="hierarchy_ref.py version-key")
    _store_args(p)
    args = p.parse_args(argv)
    key_store(args).version_key(VersionKeyInput(branch_key_identifier=args.branch_key_id))


def cmd_get_active(argv, out):
    p = Parser(prog="hierarchy_ref.py get-active")
    _store_args(p)
    args = p.parse_args(argv)
    res = key_store(args).get_active_branch_key(GetActiveBranchKeyInput(branch_key_identifier=args.branch_key_id))
    out.write(_materials_json(res.branch_key_materials).encode("utf-8"))


def cmd_get_version(argv, out):
    p = Parser(prog="hierarchy_ref.py get-version")
    _store_args(p)
    p.add_argument("--version", required=True)
    args = p.parse_args(argv)
    res = key_store(args).get_branch_key_version(
        GetBranchKeyVersionInput(branch_key_identifier=args.branch_key_id, branch_key_version=args.version)
    )
    out.write(_materials_json(res.branch_key_materials).encode("utf-8"))


def cmd_get_beacon(argv, out):
    p = Parser(prog="hierarchy_ref.py get-beacon")
    _store_args(p)
    args = p.parse_args(argv)
    m = key_store(args).get_beacon_key(GetBeaconKeyInput(branch_key_identifier=args.branch_key_id)).beacon_key_materials
    doc = {
        "beacon_key_id": m.beacon_key_identifier,
        "encryption_context": dict(m.encryption_context),
        "beacon_key_hex": bytes(m.beacon_key).hex(),
    }
    out.write((json.dumps(doc, sort_keys=True) + "\n").encode("utf-8"))


# The JSON tag of each KMS configuration class.
KMS_CONFIGURATIONS = {
    "KMSConfigurationKmsKeyArn": "kms_key_arn",
    "KMSConfigurationKmsMRKeyArn": "kms_mr_key_arn",
    "KMSConfigurationDiscovery": "discovery",
    "KMSConfigurationMrDiscovery": "mr_discovery",
}


def cmd_get_info(argv, out):
    p = Parser(prog="hierarchy_ref.py get-info")
    _store_args(p, branch_key_id=False)
    args = p.parse_args(argv)
    info = key_store(args).get_key_store_info(Unit())
    conf = info.kms_configuration
    value = getattr(conf, "value", None)
    doc = {
        "key_store_id": info.key_store_id,
        "key_store_name": info.key_store_name,
        "logical_key_store_name": info.logical_key_store_name,
        "grant_tokens": list(info.grant_tokens or []),
        "kms_configuration": {
            KMS_CONFIGURATIONS.get(type(conf).__name__, type(conf).__name__): value if isinstance(value, str) else None
        },
    }
    out.write((json.dumps(doc, sort_keys=True) + "\n").encode("utf-8"))


def cmd_crypt(mode, argv, out):
    p = Parser(prog="hierarchy_ref.py " + mode)
    _store_args(p)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--ttl-s", type=int, default=600)
    p.add_argument("--suite")
    p.add_argument("--context-json")
    p.add_argument("--commitment-policy", choices=sorted(POLICIES), default="require-encrypt-require-decrypt")
    args = p.parse_args(argv)
    if args.ttl_s < 0:
        raise UsageError("--ttl-s must be >= 0")
    context = load_context(args.context_json) if args.context_json else None

    keyring = Clients.mpl().create_aws_kms_hierarchical_keyring(
        CreateAwsKmsHierarchicalKeyringInput(
            key_store=key_store(args),
            branch_key_id=args.branch_key_id,
            ttl_seconds=args.ttl_s,
            cache=CacheTypeSingleThreaded(SingleThreadedCache(entry_capacity=CACHE_ENTRIES, entry_pruning_tail_size=1)),
        )
    )
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=POLICIES[args.commitment_policy])
    kwargs = {"keyring": keyring}
    if mode == "encrypt":
        if args.suite is not None:
            kwargs["algorithm"] = parse_suite(args.suite, AlgorithmSuite)
        kwargs["encryption_context"] = context or {}
    else:
        if args.suite is not None:
            raise UsageError("--suite is an encrypt-only option")
        if context:
            kwargs["encryption_context"] = context

    source, length = open_input(args.input)
    if length is not None:
        kwargs["source_length"] = length
    output = Output(args.output, out, prefix=".hierarchy_ref.")
    try:
        with client.stream(mode="e" if mode == "encrypt" else "d", source=source, **kwargs) as stream:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                output.file.write(chunk)
            header = stream.header
        if mode == "decrypt" and context:
            got = header.encryption_context
            for k, v in context.items():
                if got.get(k) != v:
                    raise UsageError("encryption context mismatch for key {!r}".format(k))
        output.commit()
    finally:
        output.abort()
        if source is not sys.stdin.buffer:
            source.close()


COMMANDS = {
    "create-table": cmd_create_table,
    "create-key": cmd_create_key,
    "version-key": cmd_version_key,
    "get-active": cmd_get_active,
    "get-version": cmd_get_version,
    "get-beacon": cmd_get_beacon,
    "get-info": cmd_get_info,
    "encrypt": lambda argv, out: cmd_crypt("encrypt", argv, out),
    "decrypt": lambda argv, out: cmd_crypt("decrypt", argv, out),
}


def run(argv, out):
    """Runs one command; its standard output goes to `out` (a binary file)."""
    Clients.last_error = None
    if not argv or argv[0] not in COMMANDS:
        raise UsageError("expected one of {} (or batch JOBS.json)".format(", ".join(COMMANDS)))
    COMMANDS[argv[0]](list(argv[1:]), out)


def main(argv=None):
    return cli_main("hierarchy_ref", run, lambda: Clients.last_error, argv)


if __name__ == "__main__":
    sys.exit(main())
