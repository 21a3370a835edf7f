"""The config reader returns settings or the one message naming every problem, nothing else.

For generated values of every variable it reads (any text: Unicode digits such as "²",
control characters, huge numbers, other database dialects), in development and in
production: a dict, or ConfigError. Weak keys are refused in production.
"""

import base64
import json
import random

import pytest
from authlib.oauth2.rfc7523 import private_key_jwt_sign
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import make_url

from app import create_app
from app.config import ConfigError, load_config
from app.vcita import SIGNING_ALGORITHMS

from .conftest import REPEATABLE
from .test_config import PRODUCTION, documented_variables
from .test_private_key_jwt import EC_JWK, RSA_JWK, pem_of

APP_VARIABLES = sorted(
    name
    for name in documented_variables()
    if not name.startswith("SANDBOX_")
    and name not in {"PORT", "BIND", "WEB_CONCURRENCY", "GUNICORN_THREADS"}
)
odd_values = st.one_of(
    # Lone surrogates too: os.environ keeps bytes that are not UTF-8 as "\udcff".
    st.text(st.characters(exclude_categories=()), max_size=80),
    st.sampled_from(
        [
            "²",
            "٣",
            "1" * 5000,
            "-1",
            "\udcff" * 40,
            "mysql://user@host/db",
            "oracle://x",
            "sqlite:///:memory:",
            "postgresql://",
            "postgres://user@localhost/db",
            "postgresql+nosuchdriver://user@localhost/db",
            "postgresql+asyncpg://user@localhost/db",
            "://",
            "http://[::1",
            "true\n",
            "\x00",
            "%s%n",
            Fernet.generate_key().decode(),
            base64.urlsafe_b64encode(bytes(32)).decode(),
        ]
    ),
)


@settings(REPEATABLE, max_examples=300)
@given(
    changes=st.dictionaries(st.sampled_from(APP_VARIABLES), odd_values, max_size=5),
    production=st.booleans(),
)
def test_any_settings_give_a_config_or_the_one_message(tmp_path, changes, production):
    environ = {**(PRODUCTION if production else {}), **changes}
    try:
        config = load_config(environ, str(tmp_path))
    except ConfigError as error:
        assert error.problems  # the message names what is wrong
    else:
        assert isinstance(config, dict)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TRUSTED_PROXY_COUNT", "²"),
        ("TRUSTED_PROXY_COUNT", "1" * 5000),
        ("DATABASE_URL", "mysql://user@localhost/vcita"),
        ("DATABASE_URL", "oracle+oracledb://scott@localhost/xe"),
        # os.environ's view of a value that is not UTF-8: "secret\xff…" as bytes.
        ("SECRET_KEY", "5f0c9e2a7b1d48e3a6c2f7094b8d1e6a\udcff"),
    ],
)
def test_settings_that_crashed_are_named_instead(tmp_path, name, value):
    with pytest.raises(ConfigError) as raised:
        load_config({**PRODUCTION, name: value}, str(tmp_path))

    assert any(problem.startswith(name) for problem in raised.value.problems)


WEAK_SECRET_KEYS = [
    "a" * 32,
    "ab" * 16,
    "0123456789abcdef" * 2,
    "password" * 4,
    "x" * 64,
    "abcdefghijklmnopqrstuvwxyz012345",  # many characters, one step between them
    "0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ",
]
WEAK_FERNET_KEYS = [
    pytest.param(bytes(32), id="zeros"),
    pytest.param(b"\x01" * 32, id="ones"),
    pytest.param(b"ab" * 16, id="ab-repeated"),
    pytest.param(bytes(range(8)) * 4, id="0-to-7-repeated"),
    pytest.param(bytes(range(32)), id="0-to-31"),
    pytest.param(bytes(range(0, 256, 8)), id="steps-of-8"),
]


@pytest.mark.parametrize("key", WEAK_SECRET_KEYS)
def test_production_refuses_a_secret_key_with_too_little_variety(tmp_path, key):
    with pytest.raises(ConfigError) as raised:
        load_config({**PRODUCTION, "SECRET_KEY": key}, str(tmp_path))

    [problem] = raised.value.problems
    assert problem.startswith("SECRET_KEY has too little variety")
    assert "secrets.token_hex(32)" in problem  # the command that makes a good one


@pytest.mark.parametrize("raw", WEAK_FERNET_KEYS)
def test_production_refuses_an_encryption_key_with_too_little_variety(tmp_path, raw):
    key = base64.urlsafe_b64encode(raw).decode()
    with pytest.raises(ConfigError) as raised:
        load_config({**PRODUCTION, "TOKEN_ENCRYPTION_KEY": key}, str(tmp_path))

    [problem] = raised.value.problems
    assert problem.startswith("TOKEN_ENCRYPTION_KEY key #1 has too little variety")
    assert "Fernet.generate_key()" in problem


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(min_value=0, max_value=2**32))
def test_generated_keys_always_pass(tmp_path, seed):
    # Made as secrets.token_hex(32) and Fernet.generate_key() make them, from the seed's
    # bytes rather than the system's: Hypothesis can then shrink and replay a failure.
    random_bytes = random.Random(seed).randbytes
    environ = {
        **PRODUCTION,
        "SECRET_KEY": random_bytes(32).hex(),
        "TOKEN_ENCRYPTION_KEY": base64.urlsafe_b64encode(random_bytes(32)).decode(),
    }

    assert load_config(environ, str(tmp_path))["SECRET_KEY"] == environ["SECRET_KEY"]


# A driver SQLAlchemy does not know, or one not installed: each stopped the app with a
# traceback when it opened the database, after the settings were read.
UNUSABLE_DATABASE_URLS = [
    ("postgresql+nosuchdriver://user@127.0.0.1:9/db", "names an unknown driver"),
    ("sqlite+pysqlcipher://:key@/connect.db", "needs 'pysqlcipher3', which is not installed"),
]


@pytest.mark.parametrize(("url", "complaint"), UNUSABLE_DATABASE_URLS)
def test_a_database_url_the_app_cannot_open_is_named_before_it_starts(settings, url, complaint):
    with pytest.raises(ConfigError) as raised:
        create_app({**settings, "DATABASE_URL": url})

    [problem] = raised.value.problems
    assert problem.startswith(f"DATABASE_URL {complaint}")


def test_an_asyncio_database_driver_is_refused(tmp_path, monkeypatch):
    # As if asyncpg were installed: the app's engine is synchronous all the same.
    dialect = make_url("postgresql+asyncpg://").get_dialect()
    monkeypatch.setattr(dialect, "import_dbapi", classmethod(lambda cls: None))
    url = "postgresql+asyncpg://user@127.0.0.1:9/db"

    with pytest.raises(ConfigError) as raised:
        load_config({**PRODUCTION, "DATABASE_URL": url}, str(tmp_path))

    assert raised.value.problems == [
        "DATABASE_URL must use a synchronous driver, not 'postgresql+asyncpg'"
    ]


def test_production_refuses_the_flow_trace(tmp_path):
    with pytest.raises(ConfigError) as raised:
        load_config({**PRODUCTION, "SHOW_FLOW_TRACE": "true"}, str(tmp_path))

    assert raised.value.problems == ["SHOW_FLOW_TRACE must be off when APP_ENV=production"]


# --- Key files -------------------------------------------------------------------------

JWK_MEMBERS = [
    *("kty", "kid", "use", "key_ops", "alg", "crv", "x", "y", "d", "n", "e"),
    *("p", "q", "dp", "dq", "qi", "oth", "k", "x5c", "x5t"),
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
# The values of real keys' members, and the words of the JWK specifications.
member_values = st.one_of(
    json_values,
    st.sampled_from([*RSA_JWK.values(), *EC_JWK.values()]),
    st.sampled_from(["RSA", "EC", "oct", "OKP", "P-256", "P-384", "P-999", "sig", "enc"]),
    st.sampled_from(["RS256", "ES256", "none", "HS256", ["sign"], ["decrypt"], 65537]),
)


def changed(jwk: dict, dropped: set[str], changes: dict) -> dict:
    return {**{k: v for k, v in jwk.items() if k not in dropped}, **changes}


jwks_nearly_right = st.builds(
    changed,
    st.sampled_from([RSA_JWK, EC_JWK]),
    st.sets(st.sampled_from(JWK_MEMBERS), max_size=2),
    st.dictionaries(st.sampled_from(JWK_MEMBERS), member_values, max_size=2),
)
jwks_made_up = st.dictionaries(st.sampled_from(JWK_MEMBERS), member_values, max_size=8)
PEM_LABELS = ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "PUBLIC KEY", "CERTIFICATE"]
pems_made_up = st.builds(
    lambda label, body: (
        f"-----BEGIN {label}-----\n{base64.b64encode(body).decode()}\n-----END {label}-----\n"
    ).encode(),
    st.sampled_from(PEM_LABELS),
    st.binary(max_size=300),
)
REAL_PEMS = [
    pem_of(ed25519.Ed25519PrivateKey.generate()),
    pem_of(ec.generate_private_key(ec.SECP384R1())),
    pem_of(dsa.generate_private_key(2048)),
    RSAKey.import_key(RSA_JWK).as_pem(private=True),
    RSAKey.import_key(RSA_JWK).as_pem(private=False),
    ECKey.import_key(EC_JWK).as_pem(private=True),
]
key_file_contents = st.one_of(
    st.binary(max_size=600),
    st.text(max_size=200).map(str.encode),
    st.one_of(jwks_nearly_right, jwks_made_up).map(lambda jwk: json.dumps(jwk).encode()),
    # Nested deeper than any parser's recursion limit, in JSON's two kinds of container.
    st.integers(1, 20_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 5_000).map(lambda depth: b'{"kty": ' * depth + b"1" + b"}" * depth),
    pems_made_up,
    st.sampled_from(REAL_PEMS),
)
# Every message a key file can earn: the path and words of the app's own.
KEY_FILE_PROBLEMS = [
    "VCITA_CLIENT_PRIVATE_KEYS: {path!r} holds no private RSA or EC P-256 key",
    "VCITA_CLIENT_PRIVATE_KEYS: {path!r} holds no private RSA or EC P-256 key, only a public one",
    "VCITA_CLIENT_PRIVATE_KEYS: {path!r} holds an RSA key shorter than 2048 bits, "
    "which RS256 may not use",
]


@settings(REPEATABLE, max_examples=250)
@given(content=key_file_contents)
def test_any_key_file_gives_a_key_that_signs_or_the_one_message_naming_only_its_path(
    tmp_path, content
):
    path = tmp_path / "signing.key"
    path.write_bytes(content)
    path.chmod(0o600)
    environ = {
        **PRODUCTION,
        "VCITA_TOKEN_AUTH_METHOD": "private_key_jwt",
        "VCITA_CLIENT_PRIVATE_KEYS": str(path),
    }

    try:
        config = load_config(environ, str(tmp_path))
    except ConfigError as error:
        assert error.problems in [
            [problem.format(path=str(path))] for problem in KEY_FILE_PROBLEMS
        ]
    else:
        # Taken at start-up, it signs at the first connect as the client signs there.
        (key,) = config["VCITA_CLIENT_PRIVATE_KEYS"]
        assertion = private_key_jwt_sign(
            key,
            client_id="client",
            token_endpoint="https://api.vcita.biz/oauth/token",
            header={"kid": key["kid"]},
            alg=SIGNING_ALGORITHMS[key["kty"]],
        )
        assert assertion.count(".") == 2  # a compact JWS
