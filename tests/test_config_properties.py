"""The config reader returns settings or the one message naming every problem, nothing else.

For generated values of every variable it reads (any text: Unicode digits such as "²",
control characters, huge numbers, other database dialects), in development and in
production: a dict, or ConfigError. Weak keys are refused in production.
"""

import base64
import secrets

import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import make_url

from app import create_app
from app.config import ConfigError, load_config

from .test_config import PRODUCTION, documented_variables

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


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
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
    environ = {
        **PRODUCTION,
        "SECRET_KEY": secrets.token_hex(32),
        "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
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
