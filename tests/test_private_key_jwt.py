"""Client authentication without a shared secret: private_key_jwt (RFC 7523).

The app signs each token request with its newest private key through Authlib's own
private-key-JWT client authentication, and publishes the public halves of its keys at
/.well-known/jwks.json for vcita to verify with. No secret is needed, and none is sent.
"""

import base64
import contextlib
import json
import os
import stat
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from app import vcita
from app.config import ConfigError, load_config
from app.signing_keys import MAX_KEY_FILE_BYTES, load_private_key
from sandbox import create_sandbox
from sandbox.testing import ServerThread

from .conftest import CLIENT_ID, REDIRECT_URI, sandbox_state_of, vcita_at
from .servers import DeferredApp

PRIVATE_PARTS = {"d", "p", "q", "dp", "dq", "qi"}
GOOD_TOKEN = {"access_token": "a" * 40, "token_type": "Bearer", "expires_in": 600}


def private_jwk(kind: str = "RSA") -> dict:
    key = (
        RSAKey.generate_key(2048, private=True)
        if kind == "RSA"
        else ECKey.generate_key("P-256", private=True)
    )
    return {**key.as_dict(private=True), "kid": key.thumbprint()}


def key_file(tmp_path, jwk: dict, name: str, mode: int = 0o600) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(jwk))
    path.chmod(mode)
    return str(path)


@pytest.fixture
def token_endpoint(scripted_api):
    return scripted_api


def signing_client(token_endpoint, keys, issuer=None) -> vcita.VcitaClient:
    settings = vcita.VcitaSettings(
        client_id="jwt-client",
        client_secret=None,
        redirect_uri="http://localhost/callback",
        token_url=f"{token_endpoint.url}/oauth/token",
        token_auth_method="private_key_jwt",
        private_keys=tuple(keys),
        issuer=issuer,
    )
    return vcita.VcitaClient(settings)


def sent_assertion(token_endpoint) -> tuple[dict, dict, dict]:
    """Return the last token request's form fields, and its assertion's header and claims."""
    fields = {k: v[0] for k, v in parse_qs(token_endpoint.received[-1]["body"].decode()).items()}
    header_part = fields["client_assertion"].split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(header_part + "=" * (-len(header_part) % 4)))
    return (
        fields,
        header,
        jwt.decode(fields["client_assertion"], KeySet.import_key_set(JWKS)).claims,
    )


JWKS: dict = {}


@pytest.mark.parametrize("kind", ["RSA", "EC"])
def test_the_assertion_is_signed_with_the_newest_key_and_lives_five_minutes(token_endpoint, kind):
    newest, older = private_jwk(kind), private_jwk("RSA")
    vcita_client = signing_client(token_endpoint, [newest, older])
    JWKS.clear()
    JWKS.update(vcita_client.public_jwks())
    token_endpoint.script = [(200, {}, GOOD_TOKEN)] * 2

    vcita_client.exchange_code("a-code")
    fields, header, claims = sent_assertion(token_endpoint)

    assert fields["client_assertion_type"] == (
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    )
    assert header["kid"] == newest["kid"]
    assert header["alg"] == {"RSA": "RS256", "EC": "ES256"}[kind]
    assert claims["iss"] == claims["sub"] == "jwt-client"
    assert claims["aud"] == f"{token_endpoint.url}/oauth/token"
    assert claims["exp"] - claims["iat"] <= 300
    assert abs(claims["iat"] - time.time()) < 60
    first_jti = claims["jti"]
    vcita_client.exchange_code("another-code")
    assert sent_assertion(token_endpoint)[2]["jti"] != first_jti  # signed afresh each time


def test_with_an_issuer_the_audience_is_the_issuer(token_endpoint):
    key = private_jwk()
    vcita_client = signing_client(token_endpoint, [key], issuer="https://vcita.example")
    JWKS.clear()
    JWKS.update(vcita_client.public_jwks())
    token_endpoint.script = [(200, {}, GOOD_TOKEN)]
    vcita_client.exchange_code("a-code")
    assert sent_assertion(token_endpoint)[2]["aud"] == "https://vcita.example"


def test_no_secret_is_sent_at_the_wire(token_endpoint):
    vcita_client = signing_client(token_endpoint, [private_jwk()])
    token_endpoint.script = [(200, {}, GOOD_TOKEN)]
    vcita_client.exchange_code("a-code")
    (request,) = token_endpoint.received
    fields = parse_qs(request["body"].decode())
    assert "client_secret" not in fields
    assert request["authorization"] is None  # no HTTP Basic either


# --- The app: settings, the published key set, the new-key command ----------------------


@pytest.fixture
def jwt_settings(settings, tmp_path):
    newest, older = private_jwk("EC"), private_jwk("RSA")
    paths = [key_file(tmp_path, newest, "new.jwk.json"), key_file(tmp_path, older, "old.jwk")]
    changed = {
        **settings,
        "VCITA_TOKEN_AUTH_METHOD": "private_key_jwt",
        "VCITA_CLIENT_PRIVATE_KEYS": ",".join(paths),
    }
    del changed["VCITA_CLIENT_SECRET"]
    changed["keys"] = (newest, older)
    return changed


def test_the_app_needs_no_secret_with_private_key_jwt(jwt_settings, tmp_path):
    keys = jwt_settings.pop("keys")
    config = load_config(jwt_settings, str(tmp_path))
    assert config["VCITA_CLIENT_SECRET"] is None
    assert [key["kid"] for key in config["VCITA_CLIENT_PRIVATE_KEYS"]] == [k["kid"] for k in keys]


def test_jwks_publishes_the_public_halves_in_order_and_never_a_private_part(
    make_app, jwt_settings
):
    keys = jwt_settings.pop("keys")
    app = make_app(**{k: v for k, v in jwt_settings.items()})
    response = app.test_client().get("/.well-known/jwks.json")
    assert response.status_code == 200
    published = response.json["keys"]
    assert [key["kid"] for key in published] == [key["kid"] for key in keys]
    assert all(PRIVATE_PARTS.isdisjoint(key) for key in published)
    assert [key["alg"] for key in published] == ["ES256", "RS256"]
    assert response.headers["Cache-Control"] == "public, max-age=300"
    for private in keys:
        for part in PRIVATE_PARTS & set(private):
            assert private[part] not in response.get_data(as_text=True)


def test_without_keys_there_is_no_key_set(browser):
    assert browser.get("/.well-known/jwks.json").status_code == 404


def problems_of(environ, tmp_path) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load_config(environ, str(tmp_path))
    return raised.value.problems


def test_private_key_jwt_without_keys_says_how_to_make_one(jwt_settings, tmp_path):
    jwt_settings.pop("keys")
    jwt_settings["VCITA_CLIENT_PRIVATE_KEYS"] = ""
    (problem,) = problems_of(jwt_settings, tmp_path)
    assert "VCITA_CLIENT_PRIVATE_KEYS is not set" in problem and "new-key" in problem


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("not a key", "holds no private RSA or EC P-256 key"),
        (json.dumps({"kty": "oct", "k": "c2VjcmV0"}), "holds no private"),
        (None, "cannot read"),
    ],
)
def test_a_key_file_that_cannot_sign_is_named(jwt_settings, tmp_path, content, says):
    jwt_settings.pop("keys")
    path = tmp_path / "bad.key"
    if content is not None:
        path.write_text(content)
    jwt_settings["VCITA_CLIENT_PRIVATE_KEYS"] = str(path)
    (problem,) = problems_of(jwt_settings, tmp_path)
    assert says in problem and str(path) in problem


def pem_of(private_key) -> bytes:
    """Return a private key of the cryptography package as PKCS#8 PEM."""
    return private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


RSA_JWK, EC_JWK = private_jwk("RSA"), private_jwk("EC")
NAMED_NOT_QUOTED = "VCITA_CLIENT_PRIVATE_KEYS: {path!r} holds no private RSA or EC P-256 key"
# The first five stopped every entry point with a traceback (the exception named); the
# others were taken at start-up, and failed at the first connect instead.
MALFORMED_KEY_FILES = [
    pytest.param(
        b'{"kty": "RSA", "n": ' + b"[" * 5000 + b"]" * 5000 + b"}", id="deep-json-RecursionError"
    ),
    pytest.param(
        json.dumps({k: v for k, v in RSA_JWK.items() if k != "n"}).encode(),
        id="jwk-missing-a-member-KeyParameterError",
    ),
    pytest.param(
        json.dumps({**RSA_JWK, "kid": 65537}).encode(),
        id="member-of-another-type-KeyParameterError",
    ),
    pytest.param(json.dumps({**EC_JWK, "crv": "P-999"}).encode(), id="unknown-curve-KeyError"),
    pytest.param(
        pem_of(ed25519.Ed25519PrivateKey.generate()), id="pem-of-another-type-InvalidKeyTypeError"
    ),
    pytest.param(json.dumps({**RSA_JWK, "use": "enc"}).encode(), id="jwk-for-encryption"),
    pytest.param(json.dumps({**EC_JWK, "alg": "RS256"}).encode(), id="jwk-for-another-alg"),
    pytest.param(json.dumps({**RSA_JWK, "key_ops": ["decrypt"]}).encode(), id="jwk-cannot-sign"),
]


@pytest.mark.parametrize("content", MALFORMED_KEY_FILES)
def test_a_malformed_key_file_is_named_and_never_quoted(jwt_settings, tmp_path, content):
    jwt_settings.pop("keys")
    path = tmp_path / "malformed.key"
    path.write_bytes(content)
    jwt_settings["VCITA_CLIENT_PRIVATE_KEYS"] = str(path)

    # The whole message: the path, and words of the app's own, none of the file's.
    assert problems_of(jwt_settings, tmp_path) == [NAMED_NOT_QUOTED.format(path=str(path))]


def test_an_rsa_key_under_2048_bits_is_refused(jwt_settings, tmp_path):
    # RFC 7518 §3.3. joserfc only warned, which under a test's warnings-as-errors was
    # a traceback, and in production a key taken.
    jwt_settings.pop("keys")
    path = tmp_path / "short.pem"
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    path.write_bytes(pem_of(short))
    jwt_settings["VCITA_CLIENT_PRIVATE_KEYS"] = str(path)

    assert problems_of(jwt_settings, tmp_path) == [
        f"VCITA_CLIENT_PRIVATE_KEYS: {str(path)!r} holds an RSA key shorter than 2048 bits, "
        "which RS256 may not use"
    ]


def test_a_key_file_over_64_kb_is_refused(jwt_settings, tmp_path):
    jwt_settings.pop("keys")
    path = tmp_path / "padded.jwk.json"
    jwt_settings["VCITA_CLIENT_PRIVATE_KEYS"] = str(path)
    key = json.dumps(EC_JWK).encode()
    path.write_bytes(key + b" " * (MAX_KEY_FILE_BYTES - len(key)))

    (read,) = load_config(jwt_settings, str(tmp_path))["VCITA_CLIENT_PRIVATE_KEYS"]
    assert read["kid"] == EC_JWK["kid"]  # up to the limit, a key is a key

    path.write_bytes(key + b" " * (MAX_KEY_FILE_BYTES + 1 - len(key)))
    assert problems_of(jwt_settings, tmp_path) == [
        f"VCITA_CLIENT_PRIVATE_KEYS: {str(path)!r} is larger than 64 KB, which no key file is "
        "(a few KB)"
    ]


def end_the_wait_on(fifo: Path) -> None:
    """Open `fifo` for writing and close it: a reader waiting on it reads an empty file."""
    with contextlib.suppress(OSError):  # nobody is reading it
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@pytest.mark.parametrize("kind", ["folder", "device", "fifo"])
def test_a_key_path_that_is_not_a_regular_file_is_refused(jwt_settings, tmp_path, kind):
    jwt_settings.pop("keys")
    path = {"folder": tmp_path, "device": Path(os.devnull), "fifo": tmp_path / "key"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    jwt_settings["VCITA_CLIENT_PRIVATE_KEYS"] = str(path)
    # Were a FIFO opened to wait for a writer, this ends the wait: the test fails, not hangs.
    guard = threading.Timer(10, end_the_wait_on, [path])
    guard.start()
    try:
        problems = problems_of(jwt_settings, tmp_path)
    finally:
        guard.cancel()

    assert problems == [f"VCITA_CLIENT_PRIVATE_KEYS: {str(path)!r} is not a regular file"]


def test_a_public_key_alone_is_refused(jwt_settings, tmp_path):
    jwt_settings.pop("keys")
    public = RSAKey.generate_key(2048, private=True).as_pem(private=False)
    path = tmp_path / "public.pem"
    path.write_bytes(public)
    jwt_settings["VCITA_CLIENT_PRIVATE_KEYS"] = str(path)
    assert problems_of(jwt_settings, tmp_path) == [
        f"{NAMED_NOT_QUOTED.format(path=str(path))}, only a public one"
    ]


def test_a_pem_private_key_is_read_too(jwt_settings, tmp_path):
    jwt_settings.pop("keys")
    path = tmp_path / "key.pem"
    path.write_bytes(RSAKey.generate_key(2048, private=True).as_pem(private=True))
    jwt_settings["VCITA_CLIENT_PRIVATE_KEYS"] = str(path)
    (key,) = load_config(jwt_settings, str(tmp_path))["VCITA_CLIENT_PRIVATE_KEYS"]
    assert key["kty"] == "RSA" and key["kid"]


def production(environ: dict) -> dict:
    return {
        **environ,
        "APP_ENV": "production",
        "VCITA_REDIRECT_URI": "https://connect.example/callback",
        "VCITA_AUTHORIZE_URL": "https://app.vcita.com/app/oauth/authorize",
        "VCITA_TOKEN_URL": "https://api.vcita.biz/oauth/token",
        "VCITA_USERINFO_URL": "https://api.vcita.biz/oauth/userinfo",
        "VCITA_API_URL": "https://api.vcita.biz",
        "SECRET_KEY": os.urandom(32).hex(),
    }


def test_production_refuses_a_key_file_readable_by_others(jwt_settings, tmp_path):
    jwt_settings.pop("keys")
    first = jwt_settings["VCITA_CLIENT_PRIVATE_KEYS"].split(",")[0]
    os.chmod(first, 0o644)
    problems = problems_of(production(jwt_settings), tmp_path)
    assert problems == [
        f"VCITA_CLIENT_PRIVATE_KEYS: {first!r} is readable by others; run `chmod 600 {first}`"
    ]
    os.chmod(first, 0o600)
    assert load_config(production(jwt_settings), str(tmp_path))["VCITA_CLIENT_PRIVATE_KEYS"]


def test_new_key_writes_a_key_only_its_owner_can_read_and_says_what_to_set(app, tmp_path):
    out = tmp_path / "signing.jwk.json"
    result = app.test_cli_runner().invoke(args=["vcita", "new-key", "--type", "EC", "--out", out])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = load_private_key(out.read_text())
    assert key["crv"] == "P-256"
    assert "VCITA_TOKEN_AUTH_METHOD=private_key_jwt" in result.output
    assert f"VCITA_CLIENT_PRIVATE_KEYS={out}" in result.output
    assert "/.well-known/jwks.json" in result.output
    assert key["d"] not in result.output
    again = app.test_cli_runner().invoke(args=["vcita", "new-key", "--out", out])
    assert again.exit_code == 2  # never over an existing key
    assert load_private_key(out.read_text())["kid"] == key["kid"]


@pytest.mark.usefixtures("usual_umask")
def test_new_key_keeps_its_keys_in_a_private_instance_folder(make_app, instance_folder):
    instance_folder.mkdir(mode=0o755)  # as an older version, or Flask's docs, made it
    app = make_app()

    result = app.test_cli_runner().invoke(args=["vcita", "new-key"])

    assert result.exit_code == 0, result.output
    [written] = instance_folder.iterdir()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(instance_folder.stat().st_mode) == 0o700


@pytest.mark.usefixtures("usual_umask")
def test_new_key_makes_a_private_folder_and_leaves_an_operators_folder_as_it_is(app, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    made = tmp_path / "made" / "for" / "keys"
    runner = app.test_cli_runner()

    into_shared = runner.invoke(args=["vcita", "new-key", "--out", shared / "key.jwk.json"])
    into_made = runner.invoke(args=["vcita", "new-key", "--out", made / "key.jwk.json"])

    assert into_shared.exit_code == into_made.exit_code == 0
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755  # the operator's to set
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    assert stat.S_IMODE((made / "key.jwk.json").stat().st_mode) == 0o600


# --- Against the sandbox, which verifies at vcita's side ----------------------------------


@pytest.fixture
def jwt_sandbox():
    """The app served over HTTP (for its key set), and a sandbox that trusts that set."""
    deferred = DeferredApp()
    with ServerThread(deferred) as served:
        sandbox = create_sandbox(
            {
                "SANDBOX_CLIENT_ID": CLIENT_ID,
                "SANDBOX_CLIENT_SECRET": "unused-secret-of-the-sandbox",
                "SANDBOX_REDIRECT_URIS": REDIRECT_URI,
                "SANDBOX_SECRET_KEY": "sandbox-test-secret",
                "SANDBOX_CLIENT_JWKS_URI": f"{served.url}/.well-known/jwks.json",
            }
        )
        with ServerThread(sandbox) as vcita_server:
            yield deferred, vcita_server, sandbox


def test_a_connect_with_private_key_jwt_and_no_secret_reaches_the_dashboard(
    make_app, new_browser, jwt_settings, jwt_sandbox
):
    deferred, vcita_server, sandbox = jwt_sandbox
    jwt_settings.pop("keys")
    app = make_app(**{**jwt_settings, **vcita_at(vcita_server.url)})
    deferred.app = app.wsgi_app
    browser = new_browser(app, vcita_url=vcita_server.url)
    assert browser.get(browser.approve()).status_code == 303
    assert browser.dashboard().status_code == 200
    (request,) = sandbox_state_of(sandbox).token_requests
    assert "client_secret" not in json.dumps(request)


def test_a_key_vcita_does_not_know_is_refused_with_the_502_page(
    make_app, new_browser, jwt_settings, jwt_sandbox, tmp_path
):
    deferred, vcita_server, _ = jwt_sandbox
    jwt_settings.pop("keys")
    published = make_app(**jwt_settings)  # serves the listed keys
    deferred.app = published.wsgi_app
    stranger_key = key_file(tmp_path, private_jwk(), "stranger.jwk.json")
    app = make_app(
        **{**jwt_settings, "VCITA_CLIENT_PRIVATE_KEYS": stranger_key, **vcita_at(vcita_server.url)}
    )
    browser = new_browser(app, vcita_url=vcita_server.url)
    response = browser.get(browser.approve())
    assert response.status_code == 502
    assert browser.dashboard().status_code == 302  # nothing stored
