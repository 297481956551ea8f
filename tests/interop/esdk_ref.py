#!/usr/bin/env python3
"""Reference encrypt/decrypt CLI around the AWS Encryption SDK for Python (4.0.7).

Used by envseal's interop tests to check that envseal's messages are readable
by the reference implementation and vice versa. Uses only the legacy
master-key-provider API (raw AES / raw RSA master keys), so no MPL is needed.

    esdk_ref.py encrypt|decrypt --input FILE --output FILE
        [--raw-aes-key NAMESPACE:NAME:KEYFILE]...
        [--raw-rsa-key NAMESPACE:NAME:PADDING:PEMFILE]...
        [--kms-key KEY_ARN]...   (StrictAwsKmsMasterKeyProvider; endpoint,
                                  region and credentials from the usual AWS
                                  environment, e.g. AWS_ENDPOINT_URL_KMS)
        [--suite HEXID] [--frame-length N]
        [--commitment-policy require-encrypt-require-decrypt|
                             require-encrypt-allow-decrypt|
                             forbid-encrypt-allow-decrypt]
        [--context-json FILE]
    esdk_ref.py header --input FILE --output FILE   (the parsed header as
                                   JSON, in aws-encryption-cli's metadata shape)
    esdk_ref.py batch JOBS.json   (a JSON list of argument lists; prints a
                                   JSON list of {"ok", "error"} results)

FILE may be "-" for stdin/stdout. Keys are used in command-line order; the
first is the generator. PADDING: oaep-sha1|oaep-sha256|oaep-sha384|oaep-sha512|
pkcs1 (OAEP with MGF1 over the same hash). --frame-length 0 writes a
non-framed message; any frame length 1..2^31-1 is allowed (the SDK's own
multiple-of-128 restriction on encrypt is lifted, see _validate_frame_length).
On decrypt, --context-json pairs must all be present in the message's
encryption context. Exit 0 on success; on any error one line on
stderr and exit 1 (the output file is only created on success).
"""

import argparse
import json
import logging
import sys
import warnings

warnings.simplefilter("ignore")
# The SDK logs tracebacks (e.g. "Error on closing") on failure; errors are reported as one line instead.
logging.disable(logging.CRITICAL)
# The legacy master-key API needs no Material Providers Library. The venv
# has it (for hierarchy_ref.py), and ESDK 4 imports it when present, which
# costs about 0.5 s per process: keep it out.
sys.modules["aws_cryptographic_material_providers"] = None

from ref_io import Output, Parser, UsageError, load_context, open_input, parse_suite, read_bytes  # noqa: E402
import aws_encryption_sdk  # noqa: E402
from aws_encryption_sdk.exceptions import InvalidKeyIdError, SerializationError  # noqa: E402
from aws_encryption_sdk.identifiers import (  # noqa: E402
    AlgorithmSuite,
    CommitmentPolicy,
    EncryptionKeyType,
    WrappingAlgorithm,
)
from aws_encryption_sdk.internal.crypto.wrapping_keys import WrappingKey  # noqa: E402
from aws_encryption_sdk.key_providers.base import (  # noqa: E402
    MasterKeyProvider,
    MasterKeyProviderConfig,
)
from aws_encryption_sdk.key_providers.raw import RawMasterKey, RawMasterKeyConfig  # noqa: E402
import aws_encryption_sdk.internal.utils  # noqa: E402
from aws_encryption_sdk.internal.defaults import MAX_FRAME_SIZE  # noqa: E402

CHUNK = 64 * 1024

POLICIES = {
    "require-encrypt-require-decrypt": CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
    "require-encrypt-allow-decrypt": CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT,
    "forbid-encrypt-allow-decrypt": CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT,
}

AES_WRAPPING = {
    16: WrappingAlgorithm.AES_128_GCM_IV12_TAG16_NO_PADDING,
    24: WrappingAlgorithm.AES_192_GCM_IV12_TAG16_NO_PADDING,
    32: WrappingAlgorithm.AES_256_GCM_IV12_TAG16_NO_PADDING,
}

RSA_WRAPPING = {
    "pkcs1": WrappingAlgorithm.RSA_PKCS1,
    "oaep-sha1": WrappingAlgorithm.RSA_OAEP_SHA1_MGF1,
    "oaep-sha256": WrappingAlgorithm.RSA_OAEP_SHA256_MGF1,
    "oaep-sha384": WrappingAlgorithm.RSA_OAEP_SHA384_MGF1,
    "oaep-sha512": WrappingAlgorithm.RSA_OAEP_SHA512_MGF1,
}


class MultiKeyProvider(MasterKeyProvider):
    """Holds an ordered list of raw master keys; the first one generates the data key.

    On encrypt every member wraps the data key; on decrypt each encrypted data
    key is offered to every member whose namespace (provider ID) matches.
    """

    provider_id = "envseal-esdk-ref"
    _config_class = MasterKeyProviderConfig
    vend_masterkey_on_decrypt = False

    def _new_master_key(self, key_id):
        raise InvalidKeyIdError("unknown key {!r}".format(key_id))


def _validate_frame_length(frame_length, algorithm):  # pylint: disable=unused-argument
    """Range-only frame length check, replacing the SDK's.

    Quirk: the Python SDK refuses to encrypt with a frame length that is not a
    multiple of cryptography's AES ``block_size``, which is 128 (bits, compared
    against a byte count). The message format allows any frame length up to
    2^31-1 (and the SDK decrypts such messages), so only the range is checked.
    """
    if frame_length < 0 or frame_length > MAX_FRAME_SIZE:
        raise SerializationError("Frame size must be in 0..{}: {}".format(MAX_FRAME_SIZE, frame_length))


aws_encryption_sdk.internal.utils.validate_frame_length = _validate_frame_length


def _master_key(namespace, name, wrapping_algorithm, material, key_type):
    if not namespace or not name:
        raise UsageError("key namespace and name must be non-empty")
    wrapping_key = WrappingKey(
        wrapping_algorithm=wrapping_algorithm, wrapping_key=material, wrapping_key_type=key_type
    )
    return RawMasterKey(
        config=RawMasterKeyConfig(
            key_id=name.encode("utf-8"), provider_id=namespace, wrapping_key=wrapping_key
        )
    )


def aes_key(spec):
    parts = spec.split(":", 2)
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("expected NAMESPACE:NAME:KEYFILE, got {!r}".format(spec))
    return ("aes", parts)


def rsa_key(spec):
    parts = spec.split(":", 3)
    if len(parts) != 4:
        raise argparse.ArgumentTypeError("expected NAMESPACE:NAME:PADDING:PEMFILE, got {!r}".format(spec))
    return ("rsa", parts)


def kms_key(spec):
    if not spec.startswith("arn:"):
        raise argparse.ArgumentTypeError("--kms-key needs a key ARN, got {!r}".format(spec))
    return ("kms", spec)


def build_master_key(kind, parts):
    if kind == "kms":
        # The KMS master key itself (like the raw keys), so the ordered
        # multi-provider below offers it the aws-kms EDKs directly.
        return aws_encryption_sdk.StrictAwsKmsMasterKeyProvider(key_ids=[parts]).master_key(parts)
    if kind == "aes":
        namespace, name, path = parts
        material = read_bytes(path)
        if len(material) not in AES_WRAPPING:
            raise UsageError(
                "raw AES key {} must be 16, 24 or 32 bytes, got {}".format(path, len(material))
            )
        return _master_key(namespace, name, AES_WRAPPING[len(material)], material, EncryptionKeyType.SYMMETRIC)
    namespace, name, padding, path = parts
    if padding not in RSA_WRAPPING:
        raise UsageError("unknown RSA padding {!r} (want one of {})".format(padding, ", ".join(RSA_WRAPPING)))
    pem = read_bytes(path)
    if b"PRIVATE KEY-----" in pem:
        key_type = EncryptionKeyType.PRIVATE
    elif b"PUBLIC KEY-----" in pem:
        key_type = EncryptionKeyType.PUBLIC
    else:
        raise UsageError("{} is not a PEM public or private key".format(path))
    return _master_key(namespace, name, RSA_WRAPPING[padding], pem, key_type)


def header_json(data):
    """The message header as the SDK parses it, in aws-encryption-cli's
    metadata shape (bytes in base64, data keys sorted by provider id and
    key info), plus the header authentication."""
    import base64
    import io

    from aws_encryption_sdk.identifiers import SerializationVersion
    from aws_encryption_sdk.internal.formatting.deserialize import deserialize_header, deserialize_header_auth

    def b64(b):
        return base64.b64encode(b).decode("ascii")

    stream = io.BytesIO(data)
    header, _raw = deserialize_header(stream)
    auth = deserialize_header_auth(version=header.version, stream=stream, algorithm=header.algorithm)
    v1 = header.version == SerializationVersion.V1
    edks = sorted(
        header.encrypted_data_keys,
        key=lambda e: e.key_provider.provider_id.encode("utf-8") + e.key_provider.key_info,
    )
    return {
        "header": {
            "version": "1.0" if v1 else "2.0",
            "type": header.type.value if header.type is not None else None,
            "algorithm": header.algorithm.name,
            "message_id": b64(header.message_id),
            "encryption_context": header.encryption_context,
            "encrypted_data_keys": [
                {
                    "key_provider": {
                        "provider_id": b64(e.key_provider.provider_id.encode("utf-8")),
                        "key_info": b64(e.key_provider.key_info),
                    },
                    "encrypted_data_key": b64(e.encrypted_data_key),
                }
                for e in edks
            ],
            "content_type": header.content_type.value,
            "header_iv_length": header.header_iv_length,
            "frame_length": header.frame_length,
            "commitment_key": b64(header.commitment_key) if header.commitment_key else None,
        },
        "header_auth": {"iv": b64(auth.iv), "tag": b64(auth.tag)},
    }


def run(argv):
    if argv and argv[0] == "header":
        # esdk_ref.py header --input FILE --output FILE: the parsed header as JSON.
        p = Parser(prog="esdk_ref.py header")
        p.add_argument("mode")
        p.add_argument("--input", required=True)
        p.add_argument("--output", required=True)
        args = p.parse_args(argv)
        out = Output(args.output, prefix=".esdk_ref.")
        try:
            out.file.write(json.dumps(header_json(read_bytes(args.input)), sort_keys=True).encode("utf-8"))
            out.commit()
        finally:
            out.abort()
        return
    p = Parser(prog="esdk_ref.py", description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["encrypt", "decrypt"])
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--raw-aes-key", dest="keys", action="append", type=aes_key, default=[])
    p.add_argument("--raw-rsa-key", dest="keys", action="append", type=rsa_key, default=[])
    p.add_argument("--kms-key", dest="keys", action="append", type=kms_key, default=[])
    p.add_argument("--suite")
    p.add_argument("--frame-length", type=int)
    p.add_argument("--commitment-policy", choices=sorted(POLICIES), default="require-encrypt-require-decrypt")
    p.add_argument("--context-json")
    args = p.parse_args(argv)

    if not args.keys:
        raise UsageError("at least one --raw-aes-key, --raw-rsa-key or --kms-key is required")
    provider = MultiKeyProvider()
    for kind, parts in args.keys:
        provider.add_master_key_provider(build_master_key(kind, parts))
    context = load_context(args.context_json) if args.context_json else None

    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=POLICIES[args.commitment_policy])
    kwargs = {"key_provider": provider}
    if args.mode == "encrypt":
        if args.suite is not None:
            kwargs["algorithm"] = parse_suite(args.suite, AlgorithmSuite)
        if args.frame_length is not None:
            if args.frame_length < 0:
                raise UsageError("--frame-length must be >= 0")
            kwargs["frame_length"] = args.frame_length
        kwargs["encryption_context"] = context or {}
    elif args.suite is not None or args.frame_length is not None:
        raise UsageError("--suite and --frame-length are encrypt-only options")

    source, length = open_input(args.input)
    if length is not None:
        kwargs["source_length"] = length
    out = Output(args.output, prefix=".esdk_ref.")
    try:
        with client.stream(mode="e" if args.mode == "encrypt" else "d", source=source, **kwargs) as stream:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                out.file.write(chunk)
            header = stream.header
        if args.mode == "decrypt" and context:
            got = header.encryption_context
            for k, v in context.items():
                if got.get(k) != v:
                    raise UsageError("encryption context mismatch for key {!r}".format(k))
        out.commit()
    finally:
        out.abort()
        if source is not sys.stdin.buffer:
            source.close()


def batch(job_file):
    """Runs many jobs (a JSON list of argument lists) in one process and
    prints a JSON list of {"ok": bool, "error": str} in the same order."""
    with open(job_file, encoding="utf-8") as f:
        jobs = json.load(f)
    results = []
    for argv in jobs:
        try:
            run(argv)
            results.append({"ok": True})
        except Exception as e:  # noqa: BLE001 - each job's failure is reported, not raised
            detail = str(e).replace("\n", " ").strip()
            results.append({"ok": False, "error": type(e).__name__ + (": " + detail if detail else "")})
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "batch":
        batch(argv[1])
        return 0
    try:
        run(argv)
    except Exception as e:  # noqa: BLE001 - every failure is a one-line exit 1
        detail = str(e).replace("\n", " ").strip()
        msg = type(e).__name__ + (": " + detail if detail else "")
        sys.stderr.write("esdk_ref: " + msg + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
