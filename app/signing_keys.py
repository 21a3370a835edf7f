"""The app's private_key_jwt keys: read from files, or made new.

The client module signs with private JWKs (plain dicts); this module turns what an
operator keeps in a file, PEM or JWK JSON, into one, with joserfc (which Authlib uses
for its own keys). A key without a `kid` is named by its RFC 7638 thumbprint.
"""

import json

from joserfc.jwk import ECKey, RSAKey

from .vcita import check_signing_jwk


def load_private_key(text: str) -> dict:
    """Read a private key, PEM or JWK JSON, as a private JWK with a `kid`."""
    text = text.strip()
    given = {}
    if text.startswith("{"):
        given = json.loads(text)
        if not isinstance(given, dict) or given.get("kty") not in ("RSA", "EC"):
            raise ValueError("not an RSA or EC JWK")
        key = (RSAKey if given["kty"] == "RSA" else ECKey).import_key(given)
    else:
        for kind in (RSAKey, ECKey):
            try:
                key = kind.import_key(text.encode())
                break
            except (ValueError, TypeError):
                continue
        else:
            raise ValueError("neither a PEM RSA or EC private key nor a JWK")
    private = key.as_dict(private=True)
    if "d" not in private:
        raise ValueError("a public key cannot sign: give the private key")
    private["kid"] = given.get("kid") or key.thumbprint()
    return check_signing_jwk(private)  # the same checks as when signing: RSA or EC P-256


def new_private_key(kind: str) -> dict:
    """Make a private JWK for signing: RSA 2048 or EC P-256, named by its thumbprint."""
    key = (
        RSAKey.generate_key(2048, private=True)
        if kind == "RSA"
        else ECKey.generate_key("P-256", private=True)
    )
    return {**key.as_dict(private=True), "kid": key.thumbprint()}
