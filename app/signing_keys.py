"""The app's private_key_jwt keys: read from files, or made new.

The client module signs with private JWKs (plain dicts); this module turns what an
operator keeps in a file, PEM or JWK JSON, into one, with joserfc (which Authlib uses
for its own keys). A key without a `kid` is named by its RFC 7638 thumbprint. A file
that holds anything else is refused with UnusableKey, whose message says why in words
of its own, never a byte of what the file holds.
"""

import json
import os
import stat
import warnings

from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, RSAKey

from .vcita import SIGNING_ALGORITHMS, check_signing_jwk

# A key file is a few KB (an RSA 4096 PEM is 3.3 KB): a larger file is not read into memory.
MAX_KEY_FILE_BYTES = 64 * 1024
# RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used with these algorithms."
MIN_RSA_KEY_BITS = 2048
KEY_TYPES: dict[str, type[RSAKey | ECKey]] = {"RSA": RSAKey, "EC": ECKey}
NOT_A_SIGNING_KEY = "holds no private RSA or EC P-256 key"


class UnusableKey(ValueError):
    """A key file the app cannot sign with; the message says why, never what it holds."""


def read_private_key_file(path: str) -> tuple[dict, int]:
    """Read a key file as a private JWK with a `kid`; return it with the file's mode."""
    # O_NONBLOCK: a FIFO named by mistake is refused below instead of waiting for a writer.
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):  # a folder, a FIFO, /dev/zero
        os.close(descriptor)
        raise UnusableKey("is not a regular file")
    with open(descriptor, "rb") as file:
        content = file.read(MAX_KEY_FILE_BYTES + 1)
    if len(content) > MAX_KEY_FILE_BYTES:
        raise UnusableKey(
            f"is larger than {MAX_KEY_FILE_BYTES // 1024} KB, which no key file is (a few KB)"
        )
    return load_private_key(content), mode


def load_private_key(content: str | bytes) -> dict:
    """Read a private key, PEM or JWK JSON, as a private JWK with a `kid`, proven to sign."""
    try:
        text = content.decode() if isinstance(content, bytes) else content
        key, kid = _import_key(text.strip())
        private = key.as_dict(private=True)
        private["kid"] = kid or key.thumbprint()
        check_signing_jwk(private)  # the client's own checks: RSA or EC P-256, private
        # Sign once now: a key that says it is for encryption only, or for another
        # algorithm ("use", "key_ops", "alg"), would otherwise fail at the first connect.
        alg = SIGNING_ALGORITHMS[key.key_type]
        jws.serialize_compact({"alg": alg}, b"", key, algorithms=[alg])
    except UnusableKey:
        raise
    except Exception:
        # The parsers (json, joserfc, cryptography) meet bytes from anywhere and fail in
        # ways they do not document: RecursionError for deep JSON, KeyError for an unknown
        # curve, joserfc's own errors for a missing member or another key type. Every one
        # is the same refusal, and their messages, which may quote the file, are dropped.
        raise UnusableKey(NOT_A_SIGNING_KEY) from None
    return private


def _import_key(text: str) -> tuple[RSAKey | ECKey, str | None]:
    """Import a JWK (JSON) or a PEM private key; return it and the kid the JWK names."""
    with warnings.catch_warnings():
        # joserfc warns of an RSA key under 2048 bits and imports it: refused below instead.
        warnings.simplefilter("ignore", SecurityWarning)
        if text.startswith("{"):
            given = json.loads(text)
            key = KEY_TYPES[given["kty"]].import_key(given)
            kid = given.get("kid")
        else:
            key = _import_pem(text.encode())
            kid = None
    if isinstance(key, RSAKey) and key.raw_value.key_size < MIN_RSA_KEY_BITS:
        raise UnusableKey(
            f"holds an RSA key shorter than {MIN_RSA_KEY_BITS} bits, which RS256 may not use"
        )
    if not key.is_private:
        raise UnusableKey(f"{NOT_A_SIGNING_KEY}, only a public one")
    return key, kid


def _import_pem(pem: bytes) -> RSAKey | ECKey:
    for kind in (RSAKey, ECKey):
        try:
            return kind.import_key(pem)
        except Exception:  # noqa: S112 - not this kind: try the next
            continue
    raise UnusableKey(NOT_A_SIGNING_KEY)


def new_private_key(kind: str) -> dict:
    """Make a private JWK for signing: RSA 2048 or EC P-256, named by its thumbprint."""
    key = (
        RSAKey.generate_key(2048, private=True)
        if kind == "RSA"
        else ECKey.generate_key("P-256", private=True)
    )
    return {**key.as_dict(private=True), "kid": key.thumbprint()}
