"""private_key_jwt: a client registered with a JWK Set URL authenticates with a signed assertion.

The client's public keys are served over real HTTP by a tiny WSGI app, as an app would
publish them at its `client_auth_jwks_uri`; assertions are signed with joserfc, the JOSE
library Authlib itself signs them with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA256
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from sandbox import SandboxState
from sandbox import state as sandbox_state
from sandbox.__main__ import describe
from sandbox.access_log import request_line
from sandbox.client_keys import EXTENSION
from sandbox.settings import load_settings
from sandbox.testing import ServerThread

from .conftest import CLIENT_ID, CLIENT_SECRET, OWNER_UID, token_body
from .test_token import assert_error, assert_token_response, basic

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The token endpoint as Flask's test client reaches it.
TOKEN_URL = "http://localhost/oauth/token"
ISSUER = "https://sandbox.example"
RSA_KEY = RSAKey.generate_key(2048, {"kid": "rsa-2026-01"}, private=True)
EC_KEY = ECKey.generate_key("P-256", {"kid": "ec-2026-01"}, private=True)
NEW_RSA_KEY = RSAKey.generate_key(2048, {"kid": "rsa-2026-07"}, private=True)
ALGORITHMS = {"RSA": "RS256", "EC": "ES256"}


class PublishedKeys:
    """The client's JWK Set URL: the public keys it publishes, and how often it was fetched."""

    def __init__(self, *keys: RSAKey | ECKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        # (status line, body) answered instead of the set, to play a broken publisher.
        self.broken: tuple[str, bytes] | None = None
        self.url = ""
        self.server: ServerThread | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.fetches += 1
        status, body = self.broken or (
            "200 OK",
            json.dumps({"keys": [key.as_dict(private=False) for key in self.keys]}).encode(),
        )
        start_response(
            status,
            [("Content-Type", "application/jwk-set+json"), ("Content-Length", str(len(body)))],
        )
        return [body]


@pytest.fixture
def published():
    """The client's public keys (one RSA, one EC P-256) at a JWK Set URL over real HTTP."""
    keys = PublishedKeys(RSA_KEY, EC_KEY)
    with ServerThread(keys) as server:
        keys.url, keys.server = f"{server.url}/.well-known/jwks.json", server
        yield keys


@pytest.fixture
def sandbox_config(sandbox_config, published):
    """The sandbox with its client registered with the JWK Set URL (a marker may unset it)."""
    return {"SANDBOX_CLIENT_JWKS_URI": published.url, **sandbox_config}


@pytest.fixture
def client_keys(sandbox):
    """The sandbox's cache of the client's keys, whose timings a test may shorten."""
    return sandbox.extensions[EXTENSION]


def sign(key: RSAKey | ECKey = RSA_KEY, *, header: dict | None = None, **claims: Any) -> str:
    """Return an assertion as a client signs one, with claims (and header members) changed.

    A value of None leaves the member out; a timedelta is that long from now.
    """
    alg = ALGORITHMS[key.key_type]
    protected = {"alg": alg, "kid": key.kid, **(header or {})}
    return jwt.encode(
        {name: value for name, value in protected.items() if value is not None},
        claims_of(**claims),
        key,
        algorithms=[alg],
    )


def claims_of(**overrides: Any) -> dict:
    """Return the claims a client puts in an assertion, changed as for `sign`."""
    now = int(time.time())
    claims = {
        "iss": CLIENT_ID,
        "sub": CLIENT_ID,
        "aud": TOKEN_URL,
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(16),
        **overrides,
    }
    return {
        name: now + int(value.total_seconds()) if isinstance(value, timedelta) else value
        for name, value in claims.items()
        if value is not None
    }


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict, claims: Any, signature: bytes = b"") -> str:
    """Return a JWS put together by hand, to forge what a signing library would refuse to."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(signature)}"


def signed_by_hand(header: dict, claims: Any, key: RSAKey) -> str:
    """Return an RS256 JWS with a header a signing library would refuse to write."""
    signing_input = unsigned(header, claims).rsplit(".", 1)[0]
    signature = key.raw_value.sign(signing_input.encode(), PKCS1v15(), SHA256())
    return f"{signing_input}.{b64(signature)}"


def hs256_signed_with_public_key(key: RSAKey) -> str:
    """The algorithm-confusion forgery: an HMAC keyed with the verifier's copy of a public key."""
    header = {"alg": "HS256", "kid": key.kid, "typ": "JWT"}
    signing_input = unsigned(header, claims_of()).rsplit(".", 1)[0]
    mac = hmac.new(key.as_pem(private=False), signing_input.encode(), hashlib.sha256)
    return f"{signing_input}.{b64(mac.digest())}"


def tampered(assertion: str) -> str:
    """Return the assertion with one byte of its signature changed."""
    signing_input, signature = assertion.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[len(raw) // 2] ^= 0x01
    return f"{signing_input}.{b64(bytes(raw))}"


def assertion_body(code: str, assertion: str, **overrides: str | None) -> dict[str, str]:
    """Return a token request authenticated by an assertion: no client_id, no secret."""
    fields: dict[str, str | None] = {
        "client_id": None,
        "client_secret": None,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    return token_body(code, **{**fields, **overrides})


def assert_refused(response, assertion: str | None = None) -> str:
    """Check a 401 invalid_client that repeats no part of the assertion; return its description."""
    body = assert_error(response, 401, "invalid_client")
    text = response.get_data(as_text=True)
    if assertion:
        assert not [part for part in assertion.split(".") if len(part) > 8 and part in text]
    assert body["error_description"].startswith("Client authentication failed.")
    return body["error_description"]


# --- Good assertions get a token --------------------------------------------------------


@pytest.mark.parametrize("key", [RSA_KEY, EC_KEY], ids=["RS256", "ES256"])
@pytest.mark.parametrize("encoding", ["json", "data"])
def test_a_good_assertion_gets_a_token(browser, new_code, state, published, key, encoding):
    body = assertion_body(new_code(), sign(key))
    token = assert_token_response(browser.post("/oauth/token", **{encoding: body}))
    assert state.token_owner(token["access_token"]) == OWNER_UID
    assert published.fetches == 1


def test_over_real_http_the_token_endpoint_url_is_an_audience(served_sandbox, new_code):
    token_url = f"{served_sandbox.url}/oauth/token"
    body = assertion_body(new_code(), sign(aud=token_url))
    response = requests.post(token_url, json=body, timeout=10)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"access_token", "token_type", "expires_in", "created_at"}


@pytest.mark.sandbox_settings(SANDBOX_ISSUER=ISSUER)
@pytest.mark.parametrize("aud", [ISSUER, [ISSUER], TOKEN_URL, [TOKEN_URL]])
def test_the_issuer_or_the_token_endpoint_is_an_audience(browser, new_code, aud):
    body = assertion_body(new_code(), sign(aud=aud))
    assert_token_response(browser.post("/oauth/token", json=body))


def test_client_id_beside_the_assertion_must_be_its_sub(browser, new_code):
    code = new_code()
    wrong = assertion_body(code, sign(), client_id="another-app")
    assert "client_id" in assert_refused(browser.post("/oauth/token", json=wrong))
    right = assertion_body(code, sign(), client_id=CLIENT_ID)
    assert_token_response(browser.post("/oauth/token", json=right))


# --- Every check refuses with invalid_client --------------------------------------------


@pytest.mark.parametrize(
    ("claims", "says"),
    [
        ({"iss": "another-app"}, "iss must be the client_id, test-sandbox-client"),
        ({"sub": "another-app"}, "sub must be the client_id"),
        ({"iss": None}, "lacks iss: the claims iss, sub, aud, exp, jti are required"),
        ({"aud": "https://api.vcita.biz/oauth/token"}, f"aud must name this server — {TOKEN_URL}"),
        ({"aud": [TOKEN_URL, "https://elsewhere.example"]}, "a list of that one value"),
        ({"aud": None}, "lacks aud"),
        ({"exp": None}, "lacks exp"),
        ({"exp": timedelta(seconds=-120)}, "has expired"),
        ({"exp": "tomorrow"}, "exp must be a NumericDate"),
        ({"exp": timedelta(seconds=900)}, "lives too long"),
        ({"iat": timedelta(seconds=-400), "exp": timedelta(seconds=60)}, "lives too long"),
        ({"iat": timedelta(seconds=600)}, "iat must be a NumericDate not in the future"),
        ({"nbf": timedelta(seconds=600)}, "nbf must be a NumericDate not in the future"),
        ({"jti": None}, "lacks jti"),
        ({"jti": ""}, "jti must be a string"),
        ({"jti": 42}, "jti must be a string"),
        ({"jti": "j" * 257}, "jti must be at most 256 characters"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_a_wrong_claim_is_invalid_client(browser, new_code, claims, says):
    code = new_code()
    assertion = sign(**claims)
    response = browser.post("/oauth/token", json=assertion_body(code, assertion))
    assert says in assert_refused(response, assertion)
    # The code survives a failed client authentication.
    assert_token_response(browser.post("/oauth/token", json=assertion_body(code, sign())))


def test_claims_within_the_leeway_are_accepted(browser, new_code):
    soon = timedelta(seconds=20)
    assertion = sign(iat=soon, nbf=soon, exp=timedelta(seconds=320))
    assert_token_response(browser.post("/oauth/token", json=assertion_body(new_code(), assertion)))


@pytest.mark.parametrize(
    ("forge", "says"),
    [
        (lambda: sign(header={"kid": "no-such-key"}), "has no RSA or EC P-256 public key"),
        (lambda: sign(header={"kid": None}), "must name the kid"),
        (lambda: unsigned({"alg": "none", "kid": RSA_KEY.kid}, claims_of()), "RS256 or ES256"),
        (lambda: hs256_signed_with_public_key(RSA_KEY), "RS256 or ES256"),
        (lambda: tampered(sign(RSA_KEY)), "signature does not verify"),
        (lambda: tampered(sign(EC_KEY)), "signature does not verify"),
        (lambda: sign(EC_KEY, header={"kid": RSA_KEY.kid}), "cannot verify ES256"),
        (lambda: sign(RSA_KEY, header={"kid": EC_KEY.kid}), "cannot verify RS256"),
        (lambda: sign(NEW_RSA_KEY, header={"kid": RSA_KEY.kid}), "signature does not verify"),
        (
            lambda: signed_by_hand(
                {"alg": "RS256", "kid": RSA_KEY.kid, "crit": ["x-custom"], "x-custom": 1},
                claims_of(),
                RSA_KEY,
            ),
            "the sandbox understands no JWS extension",
        ),
        (
            lambda: signed_by_hand(
                {"alg": "RS256", "kid": RSA_KEY.kid, "typ": 1}, claims_of(), RSA_KEY
            ),
            "cannot be verified as a JWS",
        ),
        (lambda: unsigned({"kid": RSA_KEY.kid}, claims_of(), b"sig"), "header is not"),
        (
            lambda: signed_by_hand({"alg": "RS256", "kid": RSA_KEY.kid}, ["claims"], RSA_KEY),
            "payload is not a JSON object",
        ),
        (lambda: "not-a-jwt", "not a compact JWS"),
        (lambda: "a.b.c.d.e", "not a compact JWS"),
    ],
    ids=[
        "unknown kid",
        "no kid",
        "alg none",
        "HS256 keyed with the public key",
        "tampered RS256",
        "tampered ES256",
        "ES256 with an RSA kid",
        "RS256 with an EC kid",
        "another key's signature",
        "unknown crit",
        "typ not a string",
        "no alg",
        "payload a list",
        "not a JWT",
        "five parts",
    ],
)
def test_a_bad_signature_or_header_is_invalid_client(browser, new_code, forge, says):
    assertion = forge()
    response = browser.post("/oauth/token", json=assertion_body(new_code(), assertion))
    assert says in assert_refused(response, assertion)


def test_an_assertion_is_used_once(browser, new_code):
    assertion = sign()
    assert_token_response(browser.post("/oauth/token", json=assertion_body(new_code(), assertion)))
    replay = browser.post("/oauth/token", json=assertion_body(new_code(), assertion))
    assert "jti was used before" in assert_refused(replay, assertion)


def test_a_refused_assertion_does_not_spend_its_jti(browser, new_code):
    jti = "retry-after-fixing-aud"
    wrong = browser.post("/oauth/token", json=assertion_body(new_code(), sign(jti=jti, aud="x")))
    assert_refused(wrong)
    right = browser.post("/oauth/token", json=assertion_body(new_code(), sign(jti=jti)))
    assert_token_response(right)


def test_used_jtis_are_kept_until_their_assertions_expire_and_no_more(monkeypatch):
    monkeypatch.setattr(sandbox_state, "MAX_SPENT_ASSERTIONS", 3)
    state = SandboxState(code_lifetime=30)
    now = time.time()
    assert state.spend_assertion("a", now + 60)
    assert state.spend_assertion("b", now + 60)
    assert state.spend_assertion("expired", now - 1)
    assert not state.spend_assertion("a", now + 60)
    assert state.spend_assertion("expired", now + 60)  # its assertion expired: forgotten

    assert state.spend_assertion("c", now + 60)  # full: the oldest, "a", goes
    assert state.spend_assertion("a", now + 60)
    assert not state.spend_assertion("c", now + 60)
    state.reset()
    assert state.spend_assertion("c", now + 60)


@pytest.mark.parametrize(
    ("assertion_type", "status", "error"),
    [
        ("urn:ietf:params:oauth:client-assertion-type:saml2-bearer", 401, "invalid_client"),
        ("", 400, "invalid_request"),
        (None, 400, "invalid_request"),
    ],
)
def test_the_assertion_type_must_be_jwt_bearer(browser, new_code, assertion_type, status, error):
    body = assertion_body(new_code(), sign(), client_assertion_type=assertion_type)
    assert_error(browser.post("/oauth/token", json=body), status, error)


def test_an_assertion_and_a_secret_together_are_invalid_request(browser, new_code):
    both = assertion_body(new_code(), sign(), client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    body = assert_error(browser.post("/oauth/token", json=both), 400, "invalid_request")
    assert "not both" in body["error_description"]


def test_no_client_authentication_asks_for_the_assertion(browser, new_code):
    body = token_body(new_code(), client_secret=None)
    response = browser.post("/oauth/token", json=body)
    description = assert_error(response, 400, "invalid_request")["error_description"]
    assert "client_assertion_type, client_assertion" in description


# --- The JWK Set: fetched, cached, fetched again for a new kid ---------------------------


@pytest.mark.parametrize(
    ("broken", "says"),
    [
        (("503 Service Unavailable", b"down"), "answered HTTP 503"),
        (("302 Found", b""), "answered HTTP 302"),
        (("200 OK", b"<html>keys</html>"), "is not JSON"),
        (("200 OK", b'{"keys": {"kty": "RSA"}}'), "is not a JWK Set"),
        (("200 OK", b"x" * (65 * 1024)), "is larger than 64 KiB"),
        (
            ("200 OK", json.dumps({"keys": [RSA_KEY.as_dict(private=True)]}).encode()),
            "publishes a private or secret key",
        ),
    ],
    ids=["503", "redirect", "not JSON", "not a set", "too big", "private key"],
)
def test_a_broken_jwk_set_is_invalid_client(browser, new_code, published, broken, says):
    published.broken = broken
    response = browser.post("/oauth/token", json=assertion_body(new_code(), sign()))
    description = assert_refused(response)
    assert f"The client's JWK Set at {published.url} {says}" in description
    assert "BEGIN" not in description and RSA_KEY.as_dict(private=True)["d"] not in description


def test_an_unreachable_jwk_set_is_invalid_client(browser, new_code, published):
    published.server.stop()
    response = browser.post("/oauth/token", json=assertion_body(new_code(), sign()))
    assert "could not be fetched (ConnectionError)" in assert_refused(response)


def test_keys_that_cannot_verify_are_ignored(browser, new_code, published):
    published.broken = (
        "200 OK",
        json.dumps(
            {
                "keys": [
                    {"kty": "RSA", "kid": RSA_KEY.kid, "n": "!!", "e": "AQAB"},
                    {"kty": "EC", "kid": "p384", "crv": "P-384", "x": "a", "y": "b"},
                    {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "a"},
                    {"kty": ["RSA"], "kid": "odd"},
                    "not a key",
                    EC_KEY.as_dict(private=False),
                ]
            }
        ).encode(),
    )
    refused = browser.post("/oauth/token", json=assertion_body(new_code(), sign(RSA_KEY)))
    assert "has no RSA or EC P-256 public key" in assert_refused(refused)
    ok = browser.post("/oauth/token", json=assertion_body(new_code(), sign(EC_KEY)))
    assert_token_response(ok)


def test_the_jwk_set_is_fetched_once_for_many_requests(browser, new_code, published):
    for key in (RSA_KEY, EC_KEY, RSA_KEY):
        body = assertion_body(new_code(), sign(key))
        assert_token_response(browser.post("/oauth/token", json=body))
    assert published.fetches == 1


def test_the_jwk_set_is_fetched_again_once_it_is_old(browser, new_code, published, client_keys):
    client_keys.max_age = 0.3
    assert_token_response(browser.post("/oauth/token", json=assertion_body(new_code(), sign())))
    time.sleep(0.35)
    assert_token_response(browser.post("/oauth/token", json=assertion_body(new_code(), sign())))
    assert published.fetches == 2


def test_an_old_jwk_set_is_not_used_when_it_cannot_be_fetched_again(
    browser, new_code, published, client_keys
):
    client_keys.max_age = 0.3
    assert_token_response(browser.post("/oauth/token", json=assertion_body(new_code(), sign())))
    published.broken = ("500 Internal Server Error", b"")
    time.sleep(0.35)
    response = browser.post("/oauth/token", json=assertion_body(new_code(), sign()))
    assert "answered HTTP 500" in assert_refused(response)


def test_a_rotated_key_is_picked_up_by_fetching_again(browser, new_code, published, client_keys):
    client_keys.refetch_interval = 0.5
    assert_token_response(browser.post("/oauth/token", json=assertion_body(new_code(), sign())))
    published.keys.insert(0, NEW_RSA_KEY)  # the client publishes its next key

    # Within the interval the set is not fetched again: the new kid is still unknown.
    early = browser.post("/oauth/token", json=assertion_body(new_code(), sign(NEW_RSA_KEY)))
    assert "has no RSA or EC P-256 public key" in assert_refused(early)
    assert published.fetches == 1

    time.sleep(0.55)
    rotated = browser.post("/oauth/token", json=assertion_body(new_code(), sign(NEW_RSA_KEY)))
    assert_token_response(rotated)
    assert published.fetches == 2
    # The old key still verifies until the client stops publishing it.
    assert_token_response(browser.post("/oauth/token", json=assertion_body(new_code(), sign())))
    assert published.fetches == 2


def test_made_up_kids_do_not_make_the_sandbox_fetch_again_and_again(browser, new_code, published):
    assert_token_response(browser.post("/oauth/token", json=assertion_body(new_code(), sign())))
    code = new_code()
    for attempt in range(5):
        forged = sign(header={"kid": f"made-up-{attempt}"})
        assert_refused(browser.post("/oauth/token", json=assertion_body(code, forged)))
    assert published.fetches == 1


# --- Which method the client registered ---------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "overrides", "headers"),
    [
        ("json", {}, {}),
        ("data", {}, {}),
        ("data", {"client_id": None, "client_secret": None}, basic()),
    ],
    ids=["JSON body", "form body", "HTTP Basic"],
)
def test_a_client_secret_is_refused_when_the_client_has_a_jwks_uri(
    browser, new_code, published, encoding, overrides, headers
):
    body = token_body(new_code(), **overrides)
    response = browser.post("/oauth/token", headers=headers, **{encoding: body})
    assert "client_auth_jwks_uri" in assert_refused(response)
    assert ("WWW-Authenticate" in response.headers) == bool(headers)
    assert published.fetches == 0


@pytest.mark.sandbox_settings(SANDBOX_CLIENT_JWKS_URI=None)
def test_without_a_jwks_uri_an_assertion_is_refused_and_the_secret_works(browser, new_code):
    code = new_code()
    refused = browser.post("/oauth/token", json=assertion_body(code, sign()))
    assert "no client_auth_jwks_uri registered" in assert_refused(refused)
    assert_token_response(browser.post("/oauth/token", json=token_body(code)))


def test_the_front_page_and_the_console_say_how_the_client_authenticates(browser, published):
    assert "private_key_jwt" in browser.get("/").get_data(as_text=True)
    config = load_settings({}, {"SANDBOX_CLIENT_JWKS_URI": published.url})
    assert f"private_key_jwt, with keys from SANDBOX_CLIENT_JWKS_URI {published.url}" in (
        describe("http://127.0.0.1:5001", config)
    )
    assert "client_secret (JSON, form or HTTP Basic)" in describe(
        "http://127.0.0.1:5001", load_settings({}, {})
    )


# --- Recordings and logs mask the assertion -----------------------------------------------


def test_recorded_requests_mask_the_assertion(browser, new_code, state):
    code = new_code()
    json_assertion, form_assertion, text_assertion = sign(), sign(), sign()
    browser.post("/oauth/token", json=assertion_body(code, json_assertion))
    browser.post("/oauth/token", data=assertion_body(code, form_assertion))
    browser.post(
        "/oauth/token", data=f"client_assertion={text_assertion}", content_type="text/plain"
    )
    # In-process, the recording keeps what arrived, as it does a client_secret.
    assert state.token_requests[0]["body"]["client_assertion"] == json_assertion

    recorded = browser.get("/_sandbox/requests")
    text = recorded.get_data(as_text=True)
    for assertion in (json_assertion, form_assertion, text_assertion):
        assert not [part for part in assertion.split(".") if part in text]
    as_json, as_form, as_text = recorded.get_json()["token"]
    assert as_json["body"]["client_assertion"] == "********"
    assert as_form["body"]["client_assertion"] == "********"
    assert as_text["body"] == "client_assertion=********"
    assert as_json["body"]["client_assertion_type"] == ASSERTION_TYPE


def test_the_access_log_masks_an_assertion_in_the_query():
    assertion = sign()
    line = request_line(
        {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/oauth/token",
            "QUERY_STRING": urlencode({"client_assertion": assertion, "client_secret": "s"}),
        }
    )
    assert line == "POST /oauth/token?client_assertion=…&client_secret=…"


# --- Whatever arrives as an assertion, an OAuth error, never a server error ----------------


def json_values():
    return st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=6,
    )


def jws_like():
    """Compact JWS built from arbitrary headers and claims, some naming a real key."""
    header = st.fixed_dictionaries(
        {},
        optional={
            "alg": st.sampled_from(["RS256", "ES256", "HS256", "none", "PS256"]) | json_values(),
            "kid": st.sampled_from([RSA_KEY.kid, EC_KEY.kid, "unknown"]) | json_values(),
            **dict.fromkeys(
                ["crit", "typ", "cty", "b64", "jku", "jwk", "x5c", "x5t"], json_values()
            ),
        },
    )
    return st.builds(
        lambda head, claims, signature: unsigned(head, claims, signature),
        header,
        st.dictionaries(
            st.sampled_from(["iss", "sub", "aud", "exp", "nbf", "iat", "jti"]), json_values()
        )
        | json_values(),
        st.binary(max_size=300),
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    assertion=st.text(max_size=300) | st.binary(max_size=300) | jws_like(),
    encoding=st.sampled_from(["json", "form"]),
)
def test_any_assertion_gets_an_oauth_error_never_a_server_error(browser, assertion, encoding):
    fields = {**assertion_body("some-code", ""), "client_assertion": assertion}
    if encoding == "json":
        if isinstance(assertion, bytes):
            fields["client_assertion"] = assertion.decode("latin-1")
        response = browser.post("/oauth/token", json=fields)
    else:
        response = browser.post(
            "/oauth/token",
            data=urlencode(fields),
            content_type="application/x-www-form-urlencoded",
        )
    assert response.status_code in (400, 401)
    body = response.get_json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] in ("invalid_request", "invalid_client")
