"""The registered client's public keys, read from its JWK Set URL (vcita's client_auth_jwks_uri).

The set is fetched when a key is first needed and kept for KEYS_MAX_AGE. An assertion
that names a kid the set does not hold makes it fetch again — how a client rotates keys:
publish the new key, then sign with it — but not sooner than REFETCH_INTERVAL after the
last fetch, so assertions with made-up kids cannot make the sandbox hammer the client's
server. Only RSA and EC P-256 keys with a kid can verify RS256 and ES256 assertions;
other keys are ignored (RFC 7517 §5), and a set that publishes a private or secret key is
refused as the mistake it is.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import requests
from flask import Flask, current_app
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

# A token request waits on this fetch, so not long.
FETCH_TIMEOUT = 3.0
# How long a fetched set is used before it is fetched again.
KEYS_MAX_AGE = 300.0
# The shortest time between a fetch and one made because a kid was unknown.
REFETCH_INTERVAL = 5.0
# A set of a few public keys is a few kilobytes.
MAX_JWKS_BYTES = 64 * 1024
USER_AGENT = "vcita-sandbox-jwks"
# Members only a private (RSA, EC) or symmetric key has (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
EXTENSION = "vcita_sandbox_client_keys"

PublicKey = RSAKey | ECKey


class KeysUnavailable(Exception):
    """The client's JWK Set could not be fetched or read; the message says why."""


def init_app(app: Flask) -> None:
    """Keep the client's keys when it is registered with a JWK Set URL (private_key_jwt)."""
    jwks_uri = app.config["SANDBOX_CLIENT_JWKS_URI"]
    if jwks_uri:
        app.extensions[EXTENSION] = ClientKeys(jwks_uri)


def client_keys() -> ClientKeys | None:
    """Return the registered client's keys, or None when it authenticates with a secret."""
    return current_app.extensions.get(EXTENSION)


class ClientKeys:
    """The public keys published at one JWK Set URL: cached, fetched again for an unknown kid.

    `max_age` and `refetch_interval` are attributes so that a test can shorten them.
    """

    def __init__(self, jwks_uri: str) -> None:
        self.jwks_uri = jwks_uri
        self.max_age = KEYS_MAX_AGE
        self.refetch_interval = REFETCH_INTERVAL
        # Held during a fetch too: token requests arriving meanwhile wait for that one
        # fetch instead of each making their own.
        self._lock = threading.Lock()
        self._keys: dict[str, PublicKey] = {}
        self._fetched_at: float | None = None  # the last fetch that succeeded
        self._tried_at = float("-inf")  # the last fetch, successful or not

    def key(self, kid: str) -> PublicKey | None:
        """Return the key published under `kid`, fetching the set when needed; None if absent.

        Raises KeysUnavailable when a fetch was needed and failed: a stale set is not used.
        """
        with self._lock:
            now = time.monotonic()
            stale = self._fetched_at is None or now - self._fetched_at >= self.max_age
            # An unknown kid may be a key the client has just published (rotation).
            may_be_new = kid not in self._keys and now - self._tried_at >= self.refetch_interval
            if stale or may_be_new:
                self._fetch(now)
            return self._keys.get(kid)

    def _fetch(self, now: float) -> None:
        self._tried_at = now
        self._keys = public_keys(fetch_jwk_set(self.jwks_uri))
        self._fetched_at = now


def fetch_jwk_set(jwks_uri: str) -> Any:
    """GET the JWK Set and return its JSON; KeysUnavailable says what went wrong."""
    body = b""
    try:
        with requests.Session() as http:
            # Straight to the client's server, as vcita's would go: no proxy from the environment.
            http.trust_env = False
            with http.get(
                jwks_uri,
                headers={"Accept": "application/jwk-set+json, application/json"},
                timeout=FETCH_TIMEOUT,
                allow_redirects=False,
                stream=True,
            ) as response:
                if response.status_code != 200:
                    raise KeysUnavailable(
                        f"answered HTTP {response.status_code} (the sandbox follows no redirect)"
                    )
                for chunk in response.iter_content(chunk_size=8192):
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise KeysUnavailable(f"is larger than {MAX_JWKS_BYTES // 1024} KiB")
    except requests.RequestException as error:
        raise KeysUnavailable(f"could not be fetched ({type(error).__name__})") from None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise KeysUnavailable("is not JSON") from None


def public_keys(jwk_set: Any) -> dict[str, PublicKey]:
    """Return the set's RSA and EC P-256 public keys by kid, ignoring keys of no use here."""
    if not isinstance(jwk_set, dict) or not isinstance(jwk_set.get("keys"), list):
        raise KeysUnavailable('is not a JWK Set: {"keys": [...]} (RFC 7517 §5)')
    keys: dict[str, PublicKey] = {}
    for jwk in jwk_set["keys"]:
        if isinstance(jwk, dict) and PRIVATE_MEMBERS & jwk.keys():
            raise KeysUnavailable("publishes a private or secret key: publish public keys only")
        key = usable_key(jwk)
        if key is not None:
            keys.setdefault(jwk["kid"], key)  # two keys with one kid: the first is used
    return keys


def usable_key(jwk: Any) -> PublicKey | None:
    """Import an RSA or EC P-256 public key that has a kid; None for any other entry."""
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
        return None
    kinds: dict[str, type[PublicKey]] = {"RSA": RSAKey, "EC": ECKey}
    kind = kinds.get(str(jwk.get("kty")))
    if kind is None or (kind is ECKey and jwk.get("crv") != "P-256"):
        return None
    try:
        return kind.import_key(jwk)
    except (JoseError, ValueError, KeyError, TypeError):
        return None  # missing or malformed members: ignored like a kty not understood
