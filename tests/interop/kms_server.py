#!/usr/bin/env python3
"""moto's server (moto 5.2.5) with real RSA-OAEP and ECDH for KMS asymmetric keys.

    kms_server.py [-H HOST] -p PORT      (any other moto_server option works too)

Runs exactly what `moto_server` runs (KMS, DynamoDB and every other service
moto serves, on one port, same output, same request log on stderr, exit 0 on
SIGTERM/SIGINT), after replacing a few KMS handlers in-process: methods of
moto.kms.responses.KmsResponse and properties of moto.kms.models.Key are
patched before moto.server.main() is called. moto's own source is not
changed. Run it with the test venv's interpreter (moto 5.2.5, flask,
cryptography). Started by a python without moto 5.2.5 (e.g. directly, through
the shebang), it re-executes itself with $ENVSEAL_PYTHON or
<repo>/.venv/bin/python, so it can also stand in for ENVSEAL_MOTO_SERVER.

Why: the AWS KMS RSA keyring encrypts locally with the key's public key and
only calls KMS Decrypt; the AWS KMS ECDH keyring calls GetPublicKey and
DeriveSharedSecret. Stock moto 5.2.5 fakes RSA Encrypt/Decrypt (it ignores
EncryptionAlgorithm and uses its own AES blob, so a real RSA ciphertext never
decrypts), answers DeriveSharedSecret with HTTP 500 (not implemented) and
answers GetPublicKey with the bare key id as KeyId (the MPL wants the ARN).
moto's asymmetric keys do hold real `cryptography` private keys
(Key.private_key.private_key: RSA for RSA_2048/3072/4096, EC for
ECC_NIST_P256/P384/P521 and ECC_SECG_P256K1), so the handlers below use them.

What changes (everything else, including symmetric keys, is stock moto):

Encrypt / Decrypt, when KeyId names a key whose KeySpec is not
SYMMETRIC_DEFAULT, or EncryptionAlgorithm is something other than
SYMMETRIC_DEFAULT:
  * RSA key, KeyUsage ENCRYPT_DECRYPT, EncryptionAlgorithm RSAES_OAEP_SHA_1 or
    RSAES_OAEP_SHA_256: real RSAES-OAEP (MGF1 with the same hash, no label)
    with the key's public key (Encrypt) or private key (Decrypt). Answers
    {"KeyId": <key ARN>, "CiphertextBlob"|"Plaintext": base64,
     "EncryptionAlgorithm": ...} like KMS. EncryptionContext is ignored
    (asymmetric KMS keys do not use one). A ciphertext that does not decrypt
    (wrong key, wrong hash, wrong length) -> 400 InvalidCiphertextException
    (body {"__type": "InvalidCiphertextException"}, no message, as moto and
    KMS send it). A plaintext too long for OAEP -> 400 ValidationException.
  * an algorithm the key does not support (SYMMETRIC_DEFAULT or none with an
    RSA key, RSAES_* with a symmetric key), or a key whose KeyUsage is not
    ENCRYPT_DECRYPT (SIGN_VERIFY, KEY_AGREEMENT, ...) -> 400
    InvalidKeyUsageException, as KMS does (stock moto would encrypt with its
    fake blob); an algorithm outside KMS's enum -> 400 ValidationException;
    RSAES_* on Decrypt without KeyId -> 400 ValidationException.
  * the key disabled -> 400 DisabledException; pending deletion -> 400
    KMSInvalidStateException.

DeriveSharedSecret (KeyId, KeyAgreementAlgorithm, PublicKey = DER
SubjectPublicKeyInfo, base64 in JSON; new in this server):
  * for an ECC key with KeyUsage KEY_AGREEMENT: the ECDH shared secret, the
    x-coordinate (32/48/66 bytes for P-256/P-384/P-521), from `cryptography`'s
    exchange(ECDH()). Answers {"KeyId": <key ARN>, "SharedSecret": base64,
    "KeyAgreementAlgorithm": "ECDH", "KeyOrigin": "AWS_KMS"}.
  * KeyAgreementAlgorithm not "ECDH", PublicKey missing, not DER SPKI, not an
    EC key, a point not on the curve, or another curve than the KMS key's ->
    400 ValidationException; a key whose KeyUsage is not KEY_AGREEMENT -> 400
    InvalidKeyUsageException; unknown key -> 400 NotFoundException (moto's
    check); disabled / pending deletion as above.

GetPublicKey: KeyId is the key ARN; the rest is moto's answer (PublicKey as
DER SPKI base64, KeySpec and CustomerMasterKeySpec, KeyUsage) with only the
algorithm list that applies: EncryptionAlgorithms (RSA ENCRYPT_DECRYPT),
SigningAlgorithms (SIGN_VERIFY) or KeyAgreementAlgorithms ["ECDH"]
(KEY_AGREEMENT). A symmetric or HMAC key -> 400 UnsupportedOperationException
(stock moto would return a random RSA key it makes for every key).

CreateKey / DescribeKey: stock moto accepts KeyUsage KEY_AGREEMENT with any
KeySpec (it does not validate KeyUsage at all). Only the metadata is patched:
for a KEY_AGREEMENT key, KeyAgreementAlgorithms ["ECDH"] and no
EncryptionAlgorithms / SigningAlgorithms (stock moto lists RSAES_OAEP_* and
ECDSA algorithms for such a key).

A key created without KeyUsage counts as ENCRYPT_DECRYPT here, as in KMS
(moto stores None and reports KeyUsage null in CreateKey/DescribeKey).

Keys are found the way moto finds them: KeyId may be a key id, key ARN, alias
name or alias ARN, looked up in the backend of the request's account (from
MOTO_ACCOUNT_ID, else 123456789012) and region (from the SigV4 credential
scope). ARNs are arn:aws:kms:<region>:<account>:key/<key id>. Errors are
moto's JSON errors: HTTP 400, header X-Amzn-ErrorType: <type>, body
{"__type": <type>, "message": <text>}.
"""

import os
import sys

MOTO_VERSION = "5.2.5"  # the version these patches were written against


def _moto_version():
    try:
        from importlib.metadata import version

        return version("moto")
    except Exception:
        return None


if _moto_version() != MOTO_VERSION and os.environ.get("_ENVSEAL_KMS_SERVER_REEXEC") != "1":
    # Started by another python (e.g. through the shebang): use the test venv's.
    _repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for _python in (os.environ.get("ENVSEAL_PYTHON"), os.path.join(_repo, ".venv", "bin", "python")):
        if _python and os.access(_python, os.X_OK):
            os.environ["_ENVSEAL_KMS_SERVER_REEXEC"] = "1"
            os.execv(_python, [_python, os.path.abspath(__file__)] + sys.argv[1:])
os.environ.pop("_ENVSEAL_KMS_SERVER_REEXEC", None)
if _moto_version() is None:
    sys.stderr.write("kms_server.py: moto is not installed (run it with the test venv's python)\n")
    sys.exit(2)
if _moto_version() != MOTO_VERSION:
    sys.stderr.write(f"kms_server.py: warning: moto {_moto_version()} (patches written for {MOTO_VERSION})\n")

import base64
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

import moto.server
from moto.core.exceptions import JsonRESTError
from moto.kms.exceptions import InvalidCiphertextException
from moto.kms.models import Key
from moto.kms.responses import KmsResponse

OAEP_HASHES = {"RSAES_OAEP_SHA_1": hashes.SHA1, "RSAES_OAEP_SHA_256": hashes.SHA256}
# KMS's EncryptionAlgorithmSpec enum.
ENCRYPTION_ALGORITHMS = ("SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE")


def _error(error_type, message=""):
    err = JsonRESTError(error_type, message)
    err.code = 400
    return err


def _params(response):
    body = response.body
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    return json.loads(body) if body else {}


def _blob(params, name):
    """A base64 blob parameter as bytes (None when absent)."""
    value = params.get(name)
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except Exception:
        raise _error("SerializationException", f"Value for '{name}' is not valid base64")


def _key(response, key_id):
    """moto's key object for any key id form (NotFoundException if unknown)."""
    response._validate_key_id(key_id)
    backend = response.kms_backend
    return backend.keys[backend.any_id_to_key_id(key_id)]


def _check_state(key):
    if key.key_state == "Disabled":
        raise _error("DisabledException", f"{key.arn} is disabled.")
    if key.key_state != "Enabled":
        raise _error("KMSInvalidStateException", f"{key.arn} is {key.key_state}.")


def _usage(key):
    # moto stores KeyUsage None when CreateKey omits it; KMS's default is ENCRYPT_DECRYPT.
    return key.key_usage or "ENCRYPT_DECRYPT"


def _wrong_usage(key, operation):
    return _error(
        "InvalidKeyUsageException",
        f"{key.arn} key usage is {_usage(key)} which is not valid for {operation}.",
    )


def _asymmetric_target(response, params, operation):
    """The RSA key and algorithm when this Encrypt/Decrypt is ours, else None.

    None means: a symmetric key (or no KeyId) with no algorithm or
    SYMMETRIC_DEFAULT, which stock moto handles.
    """
    algorithm = params.get("EncryptionAlgorithm")
    if algorithm is not None and algorithm not in ENCRYPTION_ALGORITHMS:
        raise _error(
            "ValidationException",
            f"1 validation error detected: Value '{algorithm}' at 'encryptionAlgorithm' "
            f"failed to satisfy constraint: Member must satisfy enum value set: "
            f"[{', '.join(ENCRYPTION_ALGORITHMS)}]",
        )
    key_id = params.get("KeyId")
    if not key_id:
        if algorithm in (None, "SYMMETRIC_DEFAULT"):
            return None
        raise _error("ValidationException", f"KeyId is required with EncryptionAlgorithm {algorithm}")
    key = _key(response, key_id)
    symmetric = key.key_spec == "SYMMETRIC_DEFAULT"
    if symmetric and algorithm in (None, "SYMMETRIC_DEFAULT"):
        return None
    _check_state(key)
    if _usage(key) != "ENCRYPT_DECRYPT":
        raise _wrong_usage(key, operation)
    if not key.key_spec.startswith("RSA_") or algorithm not in OAEP_HASHES:
        raise _error(
            "InvalidKeyUsageException",
            f"Algorithm {algorithm or 'SYMMETRIC_DEFAULT'} is incompatible with key spec {key.key_spec}.",
        )
    return key, algorithm


def _oaep(algorithm):
    h = OAEP_HASHES[algorithm]
    return padding.OAEP(mgf=padding.MGF1(algorithm=h()), algorithm=h(), label=None)


_stock_encrypt = KmsResponse.encrypt
_stock_decrypt = KmsResponse.decrypt


def encrypt(self):
    params = _params(self)
    target = _asymmetric_target(self, params, "Encrypt")
    if target is None:
        return _stock_encrypt(self)
    key, algorithm = target
    plaintext = _blob(params, "Plaintext") or b""
    if not plaintext:
        raise _error(
            "ValidationException",
            "1 validation error detected: Value at 'plaintext' failed to satisfy "
            "constraint: Member must have length greater than or equal to 1",
        )
    public_key = key.private_key.private_key.public_key()
    try:
        ciphertext = public_key.encrypt(plaintext, _oaep(algorithm))
    except ValueError:
        raise _error(
            "ValidationException",
            f"Plaintext of {len(plaintext)} bytes is too long for {algorithm} with {key.key_spec}",
        )
    return json.dumps(
        {
            "CiphertextBlob": base64.b64encode(ciphertext).decode("ascii"),
            "KeyId": key.arn,
            "EncryptionAlgorithm": algorithm,
        }
    )


def decrypt(self):
    params = _params(self)
    target = _asymmetric_target(self, params, "Decrypt")
    if target is None:
        return _stock_decrypt(self)
    key, algorithm = target
    ciphertext = _blob(params, "CiphertextBlob") or b""
    try:
        plaintext = key.private_key.private_key.decrypt(ciphertext, _oaep(algorithm))
    except ValueError:
        raise InvalidCiphertextException()
    return json.dumps(
        {
            "KeyId": key.arn,
            "Plaintext": base64.b64encode(plaintext).decode("ascii"),
            "EncryptionAlgorithm": algorithm,
        }
    )


def derive_shared_secret(self):
    params = _params(self)
    key = _key(self, params.get("KeyId") or "")
    algorithm = params.get("KeyAgreementAlgorithm")
    if algorithm != "ECDH":
        raise _error(
            "ValidationException",
            f"1 validation error detected: Value '{algorithm}' at 'keyAgreementAlgorithm' "
            "failed to satisfy constraint: Member must satisfy enum value set: [ECDH]",
        )
    if _usage(key) != "KEY_AGREEMENT":
        raise _wrong_usage(key, "DeriveSharedSecret")
    _check_state(key)
    own = key.private_key.private_key
    if not isinstance(own, ec.EllipticCurvePrivateKey):
        raise _wrong_usage(key, "DeriveSharedSecret")
    der = _blob(params, "PublicKey")
    if not der:
        raise _error(
            "ValidationException",
            "1 validation error detected: Value null at 'publicKey' failed to satisfy "
            "constraint: Member must not be null",
        )
    try:
        peer = serialization.load_der_public_key(der)
    except Exception:
        peer = None
    if not isinstance(peer, ec.EllipticCurvePublicKey):
        raise _error("ValidationException", "PublicKey is not a valid DER-encoded EC SubjectPublicKeyInfo.")
    if peer.curve.name != own.curve.name:
        raise _error(
            "ValidationException",
            f"PublicKey is on curve {peer.curve.name}, but {key.arn} is {key.key_spec}.",
        )
    try:
        secret = own.exchange(ec.ECDH(), peer)
    except ValueError:
        raise _error("ValidationException", "PublicKey is not a valid point for ECDH.")
    return json.dumps(
        {
            "KeyId": key.arn,
            "SharedSecret": base64.b64encode(secret).decode("ascii"),
            "KeyAgreementAlgorithm": "ECDH",
            "KeyOrigin": "AWS_KMS",
        }
    )


def get_public_key(self):
    params = _params(self)
    key = _key(self, params.get("KeyId") or "")
    if key.key_spec == "SYMMETRIC_DEFAULT" or key.key_spec.startswith("HMAC_"):
        raise _error(
            "UnsupportedOperationException",
            f"{key.arn} key type is {key.key_spec} which is not valid for GetPublicKey.",
        )
    _check_state(key)
    public_der = key.private_key.public_key()  # moto: DER SubjectPublicKeyInfo
    answer = {
        "CustomerMasterKeySpec": key.key_spec,
        "KeyId": key.arn,
        "KeySpec": key.key_spec,
        "KeyUsage": _usage(key),
        "PublicKey": base64.b64encode(public_der).decode("ascii"),
    }
    usage = _usage(key)
    if usage == "KEY_AGREEMENT":
        answer["KeyAgreementAlgorithms"] = ["ECDH"]
    elif usage == "ENCRYPT_DECRYPT" and key.encryption_algorithms:
        answer["EncryptionAlgorithms"] = key.encryption_algorithms
    elif usage == "SIGN_VERIFY" and key.signing_algorithms:
        answer["SigningAlgorithms"] = key.signing_algorithms
    return json.dumps(answer)


def _agreement_aware(stock_property):
    """A Key property that is None for KEY_AGREEMENT keys, stock otherwise."""

    def getter(key):
        if key.key_usage == "KEY_AGREEMENT":
            return None
        return stock_property.fget(key)

    return property(getter)


_stock_to_dict = Key.to_dict


def key_to_dict(self):
    d = _stock_to_dict(self)
    if self.key_usage == "KEY_AGREEMENT":
        d["KeyMetadata"]["KeyAgreementAlgorithms"] = ["ECDH"]
    return d


def install():
    """Patch moto's KMS classes (idempotent)."""
    if getattr(KmsResponse, "_envseal_patched", False):
        return
    KmsResponse.encrypt = encrypt
    KmsResponse.decrypt = decrypt
    KmsResponse.derive_shared_secret = derive_shared_secret
    KmsResponse.get_public_key = get_public_key
    KmsResponse._envseal_patched = True
    Key.encryption_algorithms = _agreement_aware(Key.encryption_algorithms)
    Key.signing_algorithms = _agreement_aware(Key.signing_algorithms)
    Key.to_dict = key_to_dict


def main():
    install()
    return moto.server.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
