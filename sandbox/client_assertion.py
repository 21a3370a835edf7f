"""Check a client assertion: private_key_jwt client authentication (RFC 7523 §2.2 and §3).

A vcita app registered with `client_auth_jwks_uri` proves who it is at the token endpoint
with a JWT signed by its own private key instead of a client_secret. The checks, in
order: a compact JWS; an alg of RS256 or ES256; a kid naming a key of the matching type
in the client's JWK Set; the signature; then the claims — iss and sub the client_id, aud
this server, exp soon, nbf and iat not in the future — and last a jti not used before.
A failure is an AssertionRefused saying which check failed, never what the assertion held.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidPayloadError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import ECKey, RSAKey

from .client_keys import ClientKeys, KeysUnavailable, PublicKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Signatures by the client's private key only: HS256 would need a secret shared with the
# server (what private_key_jwt does away with), and "none" signs nothing.
SIGNING_KEYS: dict[str, type[PublicKey]] = {"RS256": RSAKey, "ES256": ECKey}
KEY_NEEDED = {"RS256": "an RSA key of at least 2048 bits", "ES256": "an EC P-256 key"}
MIN_RSA_BITS = 2048  # RFC 7518 §3.3
# Clock skew allowed between the client and the sandbox (RFC 7519 §4.1.4: "small leeway").
LEEWAY = 30
# An assertion is single use; a short one is worth little to whoever captures it, and
# its jti need be remembered only this long.
MAX_LIFETIME = 300
MAX_JTI_LENGTH = 256
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "jti")
# header.payload.signature, each part base64url (RFC 7515 §7.1).
COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")


class AssertionRefused(Exception):
    """The assertion does not authenticate the client; the message says which check failed."""


def verify_client_assertion(
    assertion: str,
    *,
    client_id: str,
    audiences: Sequence[str],
    keys: ClientKeys,
    spend_jti: Callable[[str, float], bool],
) -> None:
    """Verify the assertion for `client_id`, or raise AssertionRefused.

    `audiences` are the values aud may take; `spend_jti(jti, until)` remembers a jti and
    says whether it was new. It is called last, so a refused assertion spends nothing.
    """
    header = assertion_header(assertion)
    key = signing_key(header, keys)
    claims = verified_claims(assertion, key, header["alg"])
    check_claims(claims, client_id=client_id, audiences=audiences)
    if not spend_jti(claims["jti"], claims["exp"] + LEEWAY):
        raise AssertionRefused(
            "The client_assertion's jti was used before: sign a new assertion, with a new jti,"
            " for each token request."
        )


def assertion_header(assertion: str) -> dict[str, Any]:
    """Return the JWS header, read before anything is verified, with a usable alg."""
    if not COMPACT_JWS.fullmatch(assertion):
        raise AssertionRefused(
            "The client_assertion is not a compact JWS: three base64url parts joined by dots"
            " (RFC 7515 §7.1)."
        )
    try:
        header = jws.extract_compact(assertion.encode("ascii")).headers()
    except (JoseError, ValueError):
        raise AssertionRefused(
            "The client_assertion's header is not a JSON object with an alg (RFC 7515 §4.1.1)."
        ) from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in SIGNING_KEYS:
        raise AssertionRefused(
            "The client_assertion's alg must be RS256 or ES256: a signature by the client's"
            " private key."
        )
    if "crit" in header:
        # RFC 7515 §4.1.11: extensions the recipient must understand; the sandbox knows none.
        raise AssertionRefused(
            "The client_assertion's header has crit: the sandbox understands no JWS extension."
        )
    return header


def signing_key(header: dict[str, Any], keys: ClientKeys) -> PublicKey:
    """Return the client's key that the header's kid names, fit for the header's alg."""
    kid, alg = header.get("kid"), header["alg"]
    if not isinstance(kid, str) or not kid:
        raise AssertionRefused(
            "The client_assertion's header must name the kid of the key that signed it, as"
            f" published at {keys.jwks_uri}."
        )
    try:
        key = keys.key(kid)
    except KeysUnavailable as problem:
        raise AssertionRefused(f"The client's JWK Set at {keys.jwks_uri} {problem}.") from None
    if key is None:
        raise AssertionRefused(
            f"The JWK Set at {keys.jwks_uri} has no RSA or EC P-256 public key with the"
            " client_assertion's kid."
        )
    fits = (
        isinstance(key, SIGNING_KEYS[alg])
        and key.get("use", "sig") == "sig"
        and key.get("alg", alg) == alg
        and not (isinstance(key, RSAKey) and key.raw_value.key_size < MIN_RSA_BITS)
    )
    if not fits:
        raise AssertionRefused(
            f"The key the client_assertion's kid names cannot verify {alg}: that needs"
            f' {KEY_NEEDED[alg]}, whose "use" and "alg", if given, are "sig" and "{alg}".'
        )
    return key


def verified_claims(assertion: str, key: PublicKey, alg: str) -> dict[str, Any]:
    """Verify the signature with the key and return the claims."""
    try:
        return jwt.decode(assertion, key, algorithms=[alg]).claims
    except BadSignatureError:
        raise AssertionRefused(
            "The client_assertion's signature does not verify with the key its kid names."
        ) from None
    except InvalidPayloadError:
        raise AssertionRefused(
            "The client_assertion's payload is not a JSON object of claims."
        ) from None
    except (JoseError, ValueError):
        # Such as a registered header member of the wrong type (RFC 7515 §4.1).
        raise AssertionRefused("The client_assertion cannot be verified as a JWS.") from None


def check_claims(claims: dict[str, Any], *, client_id: str, audiences: Sequence[str]) -> None:
    """Check the claims RFC 7523 §3 asks for, and the sandbox's bound on the lifetime."""
    now = int(time.time())
    registry = jwt.JWTClaimsRegistry(
        now=now,
        leeway=LEEWAY,
        iss={"essential": True, "value": client_id},
        sub={"essential": True, "value": client_id},
        aud={"essential": True, "values": list(audiences)},
        exp={"essential": True},
        jti={"essential": True},
    )
    try:
        registry.validate(claims)
    except ClaimError as error:
        raise AssertionRefused(claim_problem(error, client_id, audiences)) from None
    if isinstance(claims["aud"], list) and len(claims["aud"]) != 1:
        raise AssertionRefused(claim_problem_of("aud", client_id, audiences))
    exp, issued = claims["exp"], claims.get("iat", now)
    if exp > now + MAX_LIFETIME + LEEWAY or exp > issued + MAX_LIFETIME + LEEWAY:
        raise AssertionRefused(
            f"The client_assertion lives too long: its exp must be at most {MAX_LIFETIME}"
            " seconds after its iat and from now."
        )
    if len(claims["jti"]) > MAX_JTI_LENGTH:
        raise AssertionRefused(
            f"The client_assertion's jti must be at most {MAX_JTI_LENGTH} characters."
        )


def claim_problem(error: ClaimError, client_id: str, audiences: Sequence[str]) -> str:
    """Say which claim failed, and what it must be, without repeating what it held."""
    if isinstance(error, MissingClaimError):
        return (
            f"The client_assertion lacks {error.claim.replace(',', ', ')}: the claims"
            f" {', '.join(REQUIRED_CLAIMS)} are required (RFC 7523 §3)."
        )
    if isinstance(error, ExpiredTokenError):
        return (
            f"The client_assertion has expired: its exp has passed ({LEEWAY} seconds of clock"
            " skew allowed)."
        )
    return claim_problem_of(error.claim, client_id, audiences)


def claim_problem_of(claim: str, client_id: str, audiences: Sequence[str]) -> str:
    """Say what one claim must be."""
    rules = {
        "iss": f"must be the client_id, {client_id}",
        "sub": f"must be the client_id, {client_id}",
        "aud": (
            f"must name this server — {' or '.join(audiences)} — as a string or a list of"
            " that one value"
        ),
        "exp": f"must be a NumericDate (seconds since 1970) at most {MAX_LIFETIME} seconds away",
        "nbf": "must be a NumericDate not in the future",
        "iat": "must be a NumericDate not in the future",
        "jti": "must be a string, new for each assertion",
    }
    return f"The client_assertion's {claim} {rules.get(claim, 'is not valid')}."
