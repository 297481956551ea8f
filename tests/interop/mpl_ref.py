#!/usr/bin/env python3
"""Reference CLI for the MPL's raw AES, raw ECDH, KMS RSA and KMS ECDH keyrings
and its required encryption context CMM (Python MPL 1.11.3, ESDK 4.0.7).

Used by envseal's interop tests: messages are encrypted/decrypted by the ESDK
with MPL keyrings, so envseal's raw ECDH / KMS RSA / KMS ECDH messages and
required encryption context handling can be checked against the reference in
both directions.

    mpl_ref.py encrypt|decrypt --input FILE --output FILE KEYS...
        [--required-context-key K]... [--context-json FILE]
        [--suite HEXID] [--frame-length N]          (encrypt only)
        [--commitment-policy require-encrypt-require-decrypt|
                             require-encrypt-allow-decrypt|
                             forbid-encrypt-allow-decrypt]
    mpl_ref.py ec-keygen --curve p256|p384|p521 --private-out PEM
        --public-out DER   (PKCS#8 PEM private key, DER SubjectPublicKeyInfo
                            public key, uncompressed point; by `cryptography`)
    mpl_ref.py header --input FILE   (prints {"suite", "encryption_context",
        "frame_length", "encrypted_data_keys": [{"provider_id",
        "provider_info_hex", "ciphertext_hex"}]} of a message as JSON; the
        header's stored context, EDKs sorted)
    mpl_ref.py batch JOBS.json   (a JSON list of argument lists, run in one
        process with one boto3 KMS client; prints a JSON list of
        {"ok", "error", "stdout"} results)

KEYS, at least one, combined in command-line order into an MPL multi-keyring
(the first is the generator, the others children; a single key is used as is):
  --raw-aes-key NAMESPACE:NAME:KEYFILE        raw AES keyring; KEYFILE holds
        16, 24 or 32 raw bytes (AES-128/192/256-GCM)
  --raw-ecdh-static CURVE:SENDER_PRIVATE_PEM:RECIPIENT_PUBLIC_FILE
        raw ECDH, RawPrivateKeyToStaticPublicKey (encrypt and decrypt)
  --raw-ecdh-ephemeral CURVE:RECIPIENT_PUBLIC_FILE
        raw ECDH, EphemeralPrivateKeyToStaticPublicKey (encrypt only)
  --raw-ecdh-discovery CURVE:RECIPIENT_PRIVATE_PEM
        raw ECDH, PublicKeyDiscovery (decrypt only)
  --kms-rsa-key ARN --kms-rsa-padding oaep-sha1|oaep-sha256
        [--kms-rsa-public-key FILE]
        AWS KMS RSA keyring (RSAES_OAEP_SHA_1 / RSAES_OAEP_SHA_256). The
        public key (PEM or DER SubjectPublicKeyInfo) is needed to encrypt.
        --kms-rsa-padding/--kms-rsa-public-key belong to the last
        --kms-rsa-key before them (or, before any, to the next one).
  --kms-ecdh-static CURVE:RECIPIENT_PUBLIC_FILE:SENDER_KMS_ARN
        AWS KMS ECDH, KmsPrivateKeyToStaticPublicKey (the ARN is last as it
        holds colons: the spec is split at most twice)
  --kms-ecdh-discovery CURVE:RECIPIENT_KMS_ARN
        AWS KMS ECDH, KmsPublicKeyDiscovery (decrypt only)
CURVE is p256|p384|p521 (ECC_NIST_P256/P384/P521). Public key files may be PEM
"PUBLIC KEY" (converted to DER) or DER SubjectPublicKeyInfo (passed on
unchanged). Private keys are unencrypted PEM files, passed on unchanged.
The encrypt-only / decrypt-only schemes are not refused here: the MPL's own
error is the reference behaviour (see below).

--required-context-key K (repeatable) wraps the default CMM of the keyring in
the MPL's required encryption context CMM, on encrypt and on decrypt.
--context-json FILE (a JSON object of strings) is the encryption context on
encrypt and the reproduced encryption context on decrypt (passed to the ESDK
as encryption_context; given even when it is {}, which the required-EC CMM
tells apart from none). The MPL checks it on decrypt: a pair whose key is in
the header must match, a pair whose key is not becomes a required
(authenticated-only) pair, so the reproduced context of a message with
required keys must hold them all. FILE may be "-" for stdin/stdout.
--frame-length 0 writes a non-framed message; any 1..2^31-1 is allowed (the
SDK's multiple-of-128 check is lifted as in esdk_ref.py). Default suite:
the ESDK's 0x0578 (committing, signed). Exit 0 on success; on any error one
line on stderr ("mpl_ref: Type: message") and exit 1; the output file is only
created on success. In batch, a job whose output is "-" has it in "stdout"
(decoded as UTF-8 with replacement). An error ends with the last failed AWS
call, e.g. "(last AWS error: Decrypt: InvalidCiphertextException)", since the
MPL keeps only an AWS error's message, often empty.

KMS endpoint, region and credentials come from the usual AWS environment
(AWS_ENDPOINT_URL_KMS, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY),
read by boto3 (AWS_REGION is passed on: botocore reads AWS_DEFAULT_REGION
only). A KMS RSA keyring gets the client on decrypt, or when it has no public
key; encrypting with a public key is local and needs no AWS environment.

What the MPL (1.11.3) takes and does, checked with this script (raw keyrings
and RSA encrypt with no server; KMS paths against a throwaway loopback fake
KMS doing real RSA-OAEP and ECDH; EDKs unwrapped with independent code):
  Key inputs: raw ECDH private keys are PEM bytes read by cryptography's
    load_pem_private_key(pem, None): PKCS#8 "PRIVATE KEY" and SEC1 "EC
    PRIVATE KEY" both work, an encrypted one fails ("Password was not given
    but private key is encrypted"). Public keys (raw and KMS ECDH) are DER
    SubjectPublicKeyInfo with an uncompressed point, exactly 91/120/158
    bytes: a compressed-point SPKI fails "Invalid recipient public key
    length". The KMS RSA public key is PEM SubjectPublicKeyInfo of >= 2048
    bits ("Invalid public key length"). The raw AES namespace must not be
    "aws-kms". Keys on the wrong curve fail when the keyring is made:
    "Provided public key is not on configured curve." / "Private Key NOT on
    configured curve spec.".
  Refusals: PublicKeyDiscovery on encrypt: "PublicKeyDiscovery Key Agreement
    Scheme is forbidden on encrypt." (as a multi-keyring child only "Child
    keyring failed to encrypt plaintext data key"); KmsPublicKeyDiscovery
    likewise ("KmsPublicKeyDiscovery Key Agreement Scheme is forbidden on
    encrypt."); EphemeralPrivateKeyToStaticPublicKey on decrypt:
    "EphemeralPrivateKeyToStaticPublicKey Key Agreement Scheme is forbidden
    on decrypt." (in a multi-keyring the other keyrings still decrypt). The
    raw ECDH keyrings refuse no suite: all 11 ESDK suites (0x0014 ... 0x0578)
    round-trip in every scheme. The KMS RSA keyring refuses signing suites
    on encrypt and on decrypt (before looking at the EDKs), including the
    default 0x0578: "AwsKmsRsaKeyring cannot be used with an
    Algorithm Suite with asymmetric signing. Please specify an algorithm
    suite without asymmetric signing."; without a public key it fails on
    encrypt: "A AwsKmsRsaKeyring without a public key cannot provide
    OnEncrypt". Key ids must be ARNs (an alias ARN passes construction).
  No matching ECDH EDK on decrypt fails with "Could not decode input from
    Dafny Bytes.": the MPL's "no EDK found to match" message decodes every
    EDK's provider info as UTF-8, which the binary ECDH provider info is not.
    A failed unwrap says "Commitment keys do not match" (ECDH) or
    "AwsCryptographicPrimitives: OpaqueError" (raw AES).
  Raw / KMS ECDH EDK: provider id "raw-ecdh" / "aws-kms-ecdh"; provider info
    = 01 || u32be(len R) || R || u32be(len S) || S with R the recipient's, S
    the sender's compressed SEC1 point (33/49/67 bytes: 75/107/143 bytes in
    all), S = the static sender key, the ephemeral key, or the KMS sender
    key's public key; ciphertext = salt(32) || commitment key(32) ||
    AES-256-GCM(data key) || tag(16): 96/104/112 bytes for 16/24/32-byte
    data keys (any suite). fixedInfo = "ecdh-key-derivation" 00 "p256"|
    "p384"|"p521" 00 "HMAC_SHA384" 00 S || R (sender FIRST, the reverse of
    the provider info) 00 01 00 serialized context; key material = HMAC-
    SHA384(Z = shared x-coordinate, u32be(i) || fixedInfo || 00 || salt ||
    00000200) for i = 1, 2, first 32 bytes commitment key, next 32 wrapping
    key; AES-GCM IV = 12 zero bytes, AAD = fixedInfo. Both provider ids have
    the same format and fixedInfo (version byte 01), and both keyrings take
    either provider id on decrypt (raw discovery decrypts KMS ECDH messages
    and the reverse). Static scheme: an EDK matches if {S, R} = {own public
    key, configured peer key} in either order (either party decrypts);
    discovery: if R = own public key, whatever S is.
  The context the keyrings bind (ECDH fixedInfo, RSA digest) is the full
    materials context: header pairs, "aws-crypto-public-key" of signing
    suites and the required pairs; an empty one serializes to no bytes.
  KMS RSA EDK: provider id "aws-kms-rsa", provider info = the key ARN,
    ciphertext = RSA-OAEP (MGF1 with the same hash) of SHA-384(serialized
    context) || data key, done locally. Decrypt calls KMS Decrypt
    {CiphertextBlob, KeyId: ARN, EncryptionAlgorithm, GrantTokens: []} with
    no EncryptionContext; the response KeyId must equal the ARN ("Invalid
    response from KMS Decrypt").
  KMS ECDH calls: making the keyring calls GetPublicKey {KeyId: ARN} (static:
    the sender key, discovery: the recipient key); the response must have
    KeyId equal to the ARN (moto's bare key id fails), KeyUsage
    KEY_AGREEMENT and PublicKey ("Invalid response from KMS GetPublicKey",
    also for an RSA key). Encrypt and static decrypt call DeriveSharedSecret
    {KeyId: sender ARN, KeyAgreementAlgorithm: ECDH, PublicKey: the DER
    recipient key as configured, GrantTokens: []}; static decrypt with the
    EDK's keys reversed and discovery send the EDK's sender key as DER
    instead. The response must have KeyId equal to the ARN,
    KeyAgreementAlgorithm ECDH and SharedSecret (from the code: "Invalid
    response from KMS DeriveSharedSecret").
  Required encryption context CMM (keys {tenant, secret}, context {tenant,
    secret, other}; raw AES and raw ECDH static/ephemeral with 0x0478 and
    0x0578, KMS RSA and KMS ECDH spot-checked): the header keeps {other} (+ aws-crypto-public-key); decrypt
    with reproduced = required pairs only: OK; all pairs: OK; none: "No
    reproduced encryption context on decrypt."; {} or one of the two or
    {other} only: "Reproduced encryption context missing required keys.";
    a wrong required value or an extra key: the unwrap fails (context in
    the keyring AAD/digest); a wrong stored value: "Encryption context does
    not match reproduced encryption context.". Decrypt without
    --required-context-key also works when the required pairs are
    reproduced (the default CMM authenticates pairs missing from the
    header). Encrypt without a required key in the context: "Encryption
    context does not contain required keys.". The MPL only accepts the
    CMM form (underlying_cmm), not keyring= (its code: "currently only
    supports cmm").
  Errors: KMS unreachable (connection refused) fails at once with
    "ServiceError: EndpointConnectionError: Could not connect to the
    endpoint URL: ..." (ECDH, when the keyring is made) or
    "EndpointConnectionError: ..." (RSA decrypt); failures inside the ESDK
    are wrapped as "AWSEncryptionSDKClientError: ...".
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
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from ref_io import Output, Parser, UsageError, cli_main, load_context, open_input, parse_suite, read_bytes  # noqa: E402
import aws_encryption_sdk  # noqa: E402
import aws_encryption_sdk.internal.utils  # noqa: E402
from aws_encryption_sdk.exceptions import SerializationError  # noqa: E402
from aws_encryption_sdk.identifiers import AlgorithmSuite, CommitmentPolicy  # noqa: E402
from aws_encryption_sdk.internal.defaults import MAX_FRAME_SIZE  # noqa: E402
from aws_encryption_sdk.internal.formatting.deserialize import deserialize_header  # noqa: E402
from aws_cryptographic_material_providers.mpl import AwsCryptographicMaterialProviders  # noqa: E402
from aws_cryptographic_material_providers.mpl.config import MaterialProvidersConfig  # noqa: E402
from aws_cryptographic_material_providers.mpl.models import (  # noqa: E402
    AesWrappingAlg,
    CreateAwsKmsEcdhKeyringInput,
    CreateAwsKmsRsaKeyringInput,
    CreateDefaultCryptographicMaterialsManagerInput,
    CreateMultiKeyringInput,
    CreateRawAesKeyringInput,
    CreateRawEcdhKeyringInput,
    CreateRequiredEncryptionContextCMMInput,
    EphemeralPrivateKeyToStaticPublicKeyInput,
    KmsEcdhStaticConfigurationsKmsPrivateKeyToStaticPublicKey,
    KmsEcdhStaticConfigurationsKmsPublicKeyDiscovery,
    KmsPrivateKeyToStaticPublicKeyInput,
    KmsPublicKeyDiscoveryInput,
    PublicKeyDiscoveryInput,
    RawEcdhStaticConfigurationsEphemeralPrivateKeyToStaticPublicKey,
    RawEcdhStaticConfigurationsPublicKeyDiscovery,
    RawEcdhStaticConfigurationsRawPrivateKeyToStaticPublicKey,
    RawPrivateKeyToStaticPublicKeyInput,
)
from aws_cryptography_primitives.smithygenerated.aws_cryptography_primitives.models import ECDHCurveSpec  # noqa: E402

CHUNK = 64 * 1024

POLICIES = {
    "require-encrypt-require-decrypt": CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT,
    "require-encrypt-allow-decrypt": CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT,
    "forbid-encrypt-allow-decrypt": CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT,
}

AES_WRAPPING = {
    16: AesWrappingAlg.ALG_AES128_GCM_IV12_TAG16,
    24: AesWrappingAlg.ALG_AES192_GCM_IV12_TAG16,
    32: AesWrappingAlg.ALG_AES256_GCM_IV12_TAG16,
}

# CURVE -> (the MPL's ECDHCurveSpec, the `cryptography` curve for ec-keygen)
CURVES = {
    "p256": (ECDHCurveSpec.ECC_NIST_P256, ec.SECP256R1),
    "p384": (ECDHCurveSpec.ECC_NIST_P384, ec.SECP384R1),
    "p521": (ECDHCurveSpec.ECC_NIST_P521, ec.SECP521R1),
}

# --kms-rsa-padding -> KMS EncryptionAlgorithmSpec (the only two the MPL accepts)
RSA_PADDINGS = {
    "oaep-sha1": "RSAES_OAEP_SHA_1",
    "oaep-sha256": "RSAES_OAEP_SHA_256",
}


class Clients(object):
    """The boto3 KMS client (from the environment) and the MPL client,
    created once per process."""

    _kms = None
    _mpl = None
    # "Operation: Code" of the last failed AWS call of the current job: the
    # MPL keeps only an error's message, which KMS may leave empty.
    last_error = None

    @classmethod
    def _record_error(cls, parsed=None, model=None, **_):
        err = (parsed or {}).get("Error") if isinstance(parsed, dict) else None
        if err and err.get("Code"):
            cls.last_error = "{}: {}".format(getattr(model, "name", "?"), err["Code"])

    @classmethod
    def kms(cls):
        if cls._kms is None:
            # botocore reads AWS_DEFAULT_REGION but not AWS_REGION (which the
            # Rust SDK and most tools use), so pass that one on explicitly.
            region = os.environ.get("AWS_REGION") or None
            client = boto3.client("kms", region_name=region)
            client.meta.events.register("after-call.kms", cls._record_error)
            cls._kms = client
        return cls._kms

    @classmethod
    def mpl(cls):
        if cls._mpl is None:
            cls._mpl = AwsCryptographicMaterialProviders(config=MaterialProvidersConfig())
        return cls._mpl


def _validate_frame_length(frame_length, algorithm):  # pylint: disable=unused-argument
    """Range-only frame length check, replacing the SDK's (as in esdk_ref.py:
    the SDK compares the frame length with the AES block size in bits and so
    only encrypts multiples of 128; the format allows any 1..2^31-1)."""
    if frame_length < 0 or frame_length > MAX_FRAME_SIZE:
        raise SerializationError("Frame size must be in 0..{}: {}".format(MAX_FRAME_SIZE, frame_length))


aws_encryption_sdk.internal.utils.validate_frame_length = _validate_frame_length


# --- key specs (argparse types): ("kind", fields), built after parsing ---

def _split(spec, count, form):
    parts = spec.split(":", count - 1)
    if len(parts) != count or not all(parts):
        raise argparse.ArgumentTypeError("expected {}, got {!r}".format(form, spec))
    return parts


def _curve(name):
    if name not in CURVES:
        raise argparse.ArgumentTypeError("unknown curve {!r} (want one of {})".format(name, ", ".join(CURVES)))
    return name


def _arn(text):
    if not text.startswith("arn:"):
        raise argparse.ArgumentTypeError("needs a KMS key ARN, got {!r}".format(text))
    return text


def raw_aes_spec(spec):
    namespace, name, path = _split(spec, 3, "NAMESPACE:NAME:KEYFILE")
    return ("raw-aes", {"namespace": namespace, "name": name, "key": path})


def raw_ecdh_static_spec(spec):
    curve, private, public = _split(spec, 3, "CURVE:SENDER_PRIVATE_PEM:RECIPIENT_PUBLIC_FILE")
    return ("raw-ecdh-static", {"curve": _curve(curve), "private": private, "public": public})


def raw_ecdh_ephemeral_spec(spec):
    curve, public = _split(spec, 2, "CURVE:RECIPIENT_PUBLIC_FILE")
    return ("raw-ecdh-ephemeral", {"curve": _curve(curve), "public": public})


def raw_ecdh_discovery_spec(spec):
    curve, private = _split(spec, 2, "CURVE:RECIPIENT_PRIVATE_PEM")
    return ("raw-ecdh-discovery", {"curve": _curve(curve), "private": private})


def kms_rsa_spec(spec):
    return ("kms-rsa", {"arn": _arn(spec), "padding": None, "public": None})


def kms_ecdh_static_spec(spec):
    # The ARN holds colons: split at most twice.
    curve, public, arn = _split(spec, 3, "CURVE:RECIPIENT_PUBLIC_FILE:SENDER_KMS_ARN")
    return ("kms-ecdh-static", {"curve": _curve(curve), "public": public, "arn": _arn(arn)})


def kms_ecdh_discovery_spec(spec):
    curve, arn = _split(spec, 2, "CURVE:RECIPIENT_KMS_ARN")
    return ("kms-ecdh-discovery", {"curve": _curve(curve), "arn": _arn(arn)})


class RsaOption(argparse.Action):
    """--kms-rsa-padding / --kms-rsa-public-key: set on the last --kms-rsa-key
    before it (or, if none came yet, on the next one)."""

    def __call__(self, parser, namespace, value, option_string=None):
        field = self.dest
        keys = getattr(namespace, "keys", None) or []
        rsa = [fields for kind, fields in keys if kind == "kms-rsa"]
        if rsa:
            target = rsa[-1]
        else:
            pending = getattr(namespace, "rsa_pending", None)
            if pending is None:
                pending = {}
                setattr(namespace, "rsa_pending", pending)
            target = pending
        if target.get(field) is not None:
            raise UsageError("{} given twice for one --kms-rsa-key".format(option_string))
        target[field] = value


class KeyOption(argparse.Action):
    """Appends a key spec to the shared, ordered `keys` list; a --kms-rsa-key
    takes the RSA options given before any --kms-rsa-key."""

    def __call__(self, parser, namespace, value, option_string=None):
        keys = getattr(namespace, "keys", None)
        if keys is None:
            keys = []
            setattr(namespace, "keys", keys)
        kind, fields = value
        if kind == "kms-rsa":
            pending = getattr(namespace, "rsa_pending", None)
            if pending:
                fields.update(pending)
                setattr(namespace, "rsa_pending", None)
        keys.append(value)


# --- key material ---

def public_key_der(path):
    """DER SubjectPublicKeyInfo bytes of a PEM "PUBLIC KEY" or DER file
    (DER is passed on unchanged)."""
    data = read_bytes(path)
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
            return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        serialization.load_der_public_key(data)
        return data
    except (ValueError, TypeError) as e:
        raise UsageError("{} is not a PEM or DER public key: {}".format(path, e))


def private_key_pem(path):
    """The PEM bytes of an unencrypted private key file, unchanged (the MPL
    calls cryptography's load_pem_private_key(pem, None) on them)."""
    data = read_bytes(path)
    if b"PRIVATE KEY-----" not in data:
        raise UsageError("{} is not a PEM private key".format(path))
    return data


def rsa_public_key_pem(path):
    """PEM bytes of an RSA public key (the MPL wants PEM SubjectPublicKeyInfo;
    DER input is converted)."""
    data = read_bytes(path)
    try:
        if b"-----BEGIN" in data:
            serialization.load_pem_public_key(data)
            return data
        key = serialization.load_der_public_key(data)
        return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, TypeError) as e:
        raise UsageError("{} is not a PEM or DER public key: {}".format(path, e))


def build_keyring(kind, f, mode):
    mpl = Clients.mpl()
    if kind == "raw-aes":
        material = read_bytes(f["key"])
        if len(material) not in AES_WRAPPING:
            raise UsageError("raw AES key {} must be 16, 24 or 32 bytes, got {}".format(f["key"], len(material)))
        return mpl.create_raw_aes_keyring(
            CreateRawAesKeyringInput(
                key_namespace=f["namespace"],
                key_name=f["name"],
                wrapping_key=material,
                wrapping_alg=AES_WRAPPING[len(material)],
            )
        )
    if kind in ("raw-ecdh-static", "raw-ecdh-ephemeral", "raw-ecdh-discovery"):
        if kind == "raw-ecdh-static":
            scheme = RawEcdhStaticConfigurationsRawPrivateKeyToStaticPublicKey(
                RawPrivateKeyToStaticPublicKeyInput(
                    sender_static_private_key=private_key_pem(f["private"]),
                    recipient_public_key=public_key_der(f["public"]),
                )
            )
        elif kind == "raw-ecdh-ephemeral":
            scheme = RawEcdhStaticConfigurationsEphemeralPrivateKeyToStaticPublicKey(
                EphemeralPrivateKeyToStaticPublicKeyInput(recipient_public_key=public_key_der(f["public"]))
            )
        else:
            scheme = RawEcdhStaticConfigurationsPublicKeyDiscovery(
                PublicKeyDiscoveryInput(recipient_static_private_key=private_key_pem(f["private"]))
            )
        return mpl.create_raw_ecdh_keyring(
            CreateRawEcdhKeyringInput(key_agreement_scheme=scheme, curve_spec=CURVES[f["curve"]][0])
        )
    if kind == "kms-rsa":
        if f.get("padding") is None:
            raise UsageError("--kms-rsa-key {} needs a --kms-rsa-padding".format(f["arn"]))
        public = rsa_public_key_pem(f["public"]) if f.get("public") is not None else None
        # Encryption is local (RSA-OAEP with the public key): the KMS client is
        # only needed to decrypt, or when there is no public key (the MPL
        # wants one of the two, and then refuses to encrypt).
        client = Clients.kms() if mode == "decrypt" or public is None else None
        return mpl.create_aws_kms_rsa_keyring(
            CreateAwsKmsRsaKeyringInput(
                kms_key_id=f["arn"],
                encryption_algorithm=RSA_PADDINGS[f["padding"]],
                public_key=public,
                kms_client=client,
            )
        )
    if kind == "kms-ecdh-static":
        scheme = KmsEcdhStaticConfigurationsKmsPrivateKeyToStaticPublicKey(
            KmsPrivateKeyToStaticPublicKeyInput(
                sender_kms_identifier=f["arn"],
                recipient_public_key=public_key_der(f["public"]),
            )
        )
    else:
        scheme = KmsEcdhStaticConfigurationsKmsPublicKeyDiscovery(
            KmsPublicKeyDiscoveryInput(recipient_kms_identifier=f["arn"])
        )
    # Creating either KMS ECDH keyring calls KMS GetPublicKey (sender key /
    # recipient key).
    return mpl.create_aws_kms_ecdh_keyring(
        CreateAwsKmsEcdhKeyringInput(
            key_agreement_scheme=scheme, curve_spec=CURVES[f["curve"]][0], kms_client=Clients.kms()
        )
    )


def build_materials(args, mode):
    """{"keyring": ...} or {"materials_manager": ...} for the ESDK."""
    keyrings = [build_keyring(kind, fields, mode) for kind, fields in args.keys]
    mpl = Clients.mpl()
    if len(keyrings) == 1:
        keyring = keyrings[0]
    else:
        keyring = mpl.create_multi_keyring(CreateMultiKeyringInput(generator=keyrings[0], child_keyrings=keyrings[1:]))
    if not args.required_context_keys:
        return {"keyring": keyring}
    cmm = mpl.create_default_cryptographic_materials_manager(
        CreateDefaultCryptographicMaterialsManagerInput(keyring=keyring)
    )
    # The MPL refuses `keyring=` here ("currently only supports cmm").
    return {
        "materials_manager": mpl.create_required_encryption_context_cmm(
            CreateRequiredEncryptionContextCMMInput(
                underlying_cmm=cmm, required_encryption_context_keys=list(args.required_context_keys)
            )
        )
    }


# --- commands ---

def cmd_crypt(mode, argv, out):
    p = Parser(prog="mpl_ref.py " + mode)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--raw-aes-key", dest="keys", action=KeyOption, type=raw_aes_spec)
    p.add_argument("--raw-ecdh-static", dest="keys", action=KeyOption, type=raw_ecdh_static_spec)
    p.add_argument("--raw-ecdh-ephemeral", dest="keys", action=KeyOption, type=raw_ecdh_ephemeral_spec)
    p.add_argument("--raw-ecdh-discovery", dest="keys", action=KeyOption, type=raw_ecdh_discovery_spec)
    p.add_argument("--kms-rsa-key", dest="keys", action=KeyOption, type=kms_rsa_spec)
    p.add_argument("--kms-rsa-padding", dest="padding", action=RsaOption, choices=sorted(RSA_PADDINGS))
    p.add_argument("--kms-rsa-public-key", dest="public", action=RsaOption)
    p.add_argument("--kms-ecdh-static", dest="keys", action=KeyOption, type=kms_ecdh_static_spec)
    p.add_argument("--kms-ecdh-discovery", dest="keys", action=KeyOption, type=kms_ecdh_discovery_spec)
    p.add_argument("--required-context-key", dest="required_context_keys", action="append", default=[])
    p.add_argument("--suite")
    p.add_argument("--frame-length", type=int)
    p.add_argument("--context-json")
    p.add_argument("--commitment-policy", choices=sorted(POLICIES), default="require-encrypt-require-decrypt")
    p.set_defaults(keys=None, rsa_pending=None, padding=None, public=None)
    args = p.parse_args(argv)
    if not args.keys:
        raise UsageError(
            "at least one key option (--raw-aes-key, --raw-ecdh-*, --kms-rsa-key, --kms-ecdh-*) is required"
        )
    if args.rsa_pending:
        raise UsageError("--kms-rsa-padding/--kms-rsa-public-key without a --kms-rsa-key")
    if len(set(args.required_context_keys)) != len(args.required_context_keys):
        raise UsageError("duplicate --required-context-key")
    context = load_context(args.context_json) if args.context_json else None

    kwargs = {}
    if mode == "encrypt":
        if args.suite is not None:
            kwargs["algorithm"] = parse_suite(args.suite, AlgorithmSuite)
        if args.frame_length is not None:
            if args.frame_length < 0:
                raise UsageError("--frame-length must be >= 0")
            kwargs["frame_length"] = args.frame_length
        kwargs["encryption_context"] = context or {}
    else:
        if args.suite is not None or args.frame_length is not None:
            raise UsageError("--suite and --frame-length are encrypt-only options")
        # The reproduced encryption context; given even when empty ({} is
        # not "none" to the required encryption context CMM).
        if context is not None:
            kwargs["encryption_context"] = context
    kwargs.update(build_materials(args, mode))
    client = aws_encryption_sdk.EncryptionSDKClient(commitment_policy=POLICIES[args.commitment_policy])

    source, length = open_input(args.input)
    if length is not None:
        kwargs["source_length"] = length
    output = Output(args.output, out, prefix=".mpl_ref.")
    try:
        with client.stream(mode="e" if mode == "encrypt" else "d", source=source, **kwargs) as stream:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                output.file.write(chunk)
        output.commit()
    finally:
        output.abort()
        if source is not sys.stdin.buffer:
            source.close()


def cmd_ec_keygen(argv, out):
    p = Parser(prog="mpl_ref.py ec-keygen")
    p.add_argument("--curve", required=True, choices=sorted(CURVES))
    p.add_argument("--private-out", required=True)
    p.add_argument("--public-out", required=True)
    args = p.parse_args(argv)
    if args.private_out == "-" and args.public_out == "-":
        raise UsageError("--private-out and --public-out cannot both be -")
    key = ec.generate_private_key(CURVES[args.curve][1]())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    outputs = []
    try:
        for path, data in ((args.private_out, private), (args.public_out, public)):
            o = Output(path, out, prefix=".mpl_ref.")
            outputs.append(o)
            o.file.write(data)
        for o in outputs:
            o.commit()
    finally:
        for o in outputs:
            o.abort()


def cmd_header(argv, out):
    p = Parser(prog="mpl_ref.py header")
    p.add_argument("--input", required=True)
    args = p.parse_args(argv)
    source, _ = open_input(args.input)
    try:
        header, _raw = deserialize_header(source)
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    edks = sorted(
        (
            {
                "provider_id": edk.key_provider.provider_id,
                "provider_info_hex": bytes(edk.key_provider.key_info).hex(),
                "ciphertext_hex": bytes(edk.encrypted_data_key).hex(),
            }
            for edk in header.encrypted_data_keys
        ),
        key=lambda e: (e["provider_id"], e["provider_info_hex"], e["ciphertext_hex"]),
    )
    doc = {
        "suite": "0x{:04X}".format(header.algorithm.algorithm_id),
        "encryption_context": dict(header.encryption_context),
        "encrypted_data_keys": edks,
        "frame_length": header.frame_length,
    }
    out.write((json.dumps(doc, sort_keys=True) + "\n").encode("utf-8"))


COMMANDS = {
    "encrypt": lambda argv, out: cmd_crypt("encrypt", argv, out),
    "decrypt": lambda argv, out: cmd_crypt("decrypt", argv, out),
    "ec-keygen": cmd_ec_keygen,
    "header": cmd_header,
}


def run(argv, out):
    """Runs one command; its standard output goes to `out` (a binary file)."""
    Clients.last_error = None
    if not argv or argv[0] not in COMMANDS:
        raise UsageError("expected one of {} (or batch JOBS.json)".format(", ".join(COMMANDS)))
    COMMANDS[argv[0]](list(argv[1:]), out)


def main(argv=None):
    return cli_main("mpl_ref", run, lambda: Clients.last_error, argv)


if __name__ == "__main__":
    sys.exit(main())
