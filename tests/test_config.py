"""Settings: read from the environment, validated at start-up, documented in .env.example."""

import re
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hypothesis import given, settings
from hypothesis import strategies as st

from app import create_app
from app.config import ConfigError, load_config
from sandbox.settings import SETTING_NAMES as SANDBOX_SETTINGS

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "APP_ENV": "production",
    "VCITA_CLIENT_ID": "client",
    "VCITA_CLIENT_SECRET": "secret",
    "VCITA_REDIRECT_URI": "https://connect.example.com/callback",
    "SECRET_KEY": "5f0c9e2a7b1d48e3a6c2f7094b8d1e6a",  # 32 bytes, as a generator makes them
    "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
}


class RecordingEnviron(dict):
    """An environment that remembers every variable the code asked for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


def documented_variables() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


# How gunicorn.conf.py and scripts/ read a variable: environ.get("X") or whole_number("X").
READ_BY_SCRIPT = re.compile(r"(?:environ\.get|whole_number)\(\s*\"([A-Z_]+)\"")


def variables_read_by_scripts() -> set[str]:
    names = set()
    for path in [ROOT / "gunicorn.conf.py", *ROOT.glob("scripts/*.py")]:
        names |= set(READ_BY_SCRIPT.findall(path.read_text()))
    return names


def test_env_example_documents_exactly_the_variables_the_code_reads(tmp_path):
    environ = RecordingEnviron(PRODUCTION)
    load_config(environ, str(tmp_path))
    insecure_switches = {"AUTHLIB_INSECURE_TRANSPORT", "OAUTHLIB_INSECURE_TRANSPORT"}
    read = (environ.read - insecure_switches) | set(SANDBOX_SETTINGS) | variables_read_by_scripts()
    assert read == documented_variables()


def test_every_documented_variable_has_a_comment():
    # A comment may describe a group of variables listed right under it.
    lines = (ROOT / ".env.example").read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            above = number - 1
            while re.match(r"^[A-Z][A-Z0-9_]*=", lines[above]):
                above -= 1
            assert lines[above].startswith("#"), f"{line} has no comment above it"


def test_missing_settings_are_all_named_in_one_error(tmp_path):
    with pytest.raises(ConfigError) as raised:
        load_config({}, str(tmp_path))
    message = str(raised.value)
    for name in (
        "VCITA_CLIENT_ID",
        "VCITA_CLIENT_SECRET",
        "VCITA_REDIRECT_URI",
        "SECRET_KEY",
        "TOKEN_ENCRYPTION_KEY",
    ):
        assert name in message
    assert "make run" in message  # the way to run without vcita credentials


def test_app_refuses_to_start_without_credentials_or_sandbox_switch(tmp_path):
    with pytest.raises(SystemExit) as raised:
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite"})
    assert "VCITA_CLIENT_ID is not set" in str(raised.value)


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("VCITA_TOKEN_URL", "ftp://vcita.example/token", "VCITA_TOKEN_URL must be an absolute"),
        ("VCITA_REDIRECT_URI", "/callback", "VCITA_REDIRECT_URI must be an absolute"),
        ("VCITA_REDIRECT_URI", "https://a.example/cb#x", "VCITA_REDIRECT_URI must be an absolute"),
        ("VCITA_TOKEN_AUTH_METHOD", "client_secret_jwt", "VCITA_TOKEN_AUTH_METHOD must be one of"),
        ("VCITA_USE_PKCE", "maybe", "VCITA_USE_PKCE must be true or false"),
        ("TOKEN_ENCRYPTION_KEY", "not-a-key", "TOKEN_ENCRYPTION_KEY key #1 is not a Fernet key"),
        ("TRUSTED_PROXY_COUNT", "-1", "TRUSTED_PROXY_COUNT must be a whole number"),
        ("DATABASE_URL", "not a url", "DATABASE_URL is not a valid SQLAlchemy database URL"),
        ("APP_ENV", "staging", "APP_ENV must be one of"),
    ],
)
def test_malformed_setting_is_named(tmp_path, name, value, complaint):
    with pytest.raises(ConfigError) as raised:
        load_config({**PRODUCTION, "APP_ENV": "development", name: value}, str(tmp_path))
    assert complaint in str(raised.value)


def test_several_problems_are_reported_together(tmp_path):
    environ = {**PRODUCTION, "VCITA_USE_PKCE": "maybe", "VCITA_TOKEN_URL": "nope"}
    with pytest.raises(ConfigError) as raised:
        load_config(environ, str(tmp_path))
    assert len(raised.value.problems) == 2


def test_sandbox_mode_is_only_a_switch_the_sandbox_settings_come_from_make_run(tmp_path):
    # The app reads the sandbox's URLs and demo client like any other settings.
    with pytest.raises(ConfigError) as raised:
        load_config({"VCITA_SANDBOX": "true"}, str(tmp_path))
    assert "VCITA_CLIENT_ID is not set" in str(raised.value)
    config = load_config({**PRODUCTION, "APP_ENV": "development", "VCITA_SANDBOX": "true"}, "/x")
    assert config["SANDBOX"] is True
    assert config["VCITA_TOKEN_URL"] == "https://api.vcita.biz/oauth/token"


def test_vcita_defaults_are_the_documented_endpoints(tmp_path):
    config = load_config(PRODUCTION, str(tmp_path))
    assert config["VCITA_AUTHORIZE_URL"] == "https://app.vcita.com/app/oauth/authorize"
    assert config["VCITA_TOKEN_URL"] == "https://api.vcita.biz/oauth/token"
    assert config["VCITA_USERINFO_URL"] == "https://api.vcita.biz/oauth/userinfo"
    assert config["VCITA_TOKEN_AUTH_METHOD"] == "client_secret_json"
    assert config["VCITA_SCOPE"] is None


def test_encryption_key_may_list_several_keys_newest_first(tmp_path):
    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    config = load_config({**PRODUCTION, "TOKEN_ENCRYPTION_KEY": f"{new}, {old}"}, str(tmp_path))
    assert config["TOKEN_ENCRYPTION_KEYS"] == [new, old]


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ({"VCITA_TOKEN_URL": "http://vcita.example/token"}, "VCITA_TOKEN_URL must use https://"),
        (
            {"VCITA_REDIRECT_URI": "http://connect.example.com/cb"},
            "VCITA_REDIRECT_URI must use https://",
        ),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be at least 32 bytes"),
        ({"VCITA_SANDBOX": "true"}, "VCITA_SANDBOX must be off"),
        ({"AUTHLIB_INSECURE_TRANSPORT": "1"}, "AUTHLIB_INSECURE_TRANSPORT must not be set"),
        ({"OAUTHLIB_INSECURE_TRANSPORT": "1"}, "OAUTHLIB_INSECURE_TRANSPORT must not be set"),
    ],
)
def test_production_refuses_unsafe_settings(tmp_path, override, complaint):
    with pytest.raises(ConfigError) as raised:
        load_config({**PRODUCTION, **override}, str(tmp_path))
    assert complaint in str(raised.value)


def test_production_allows_http_on_loopback(tmp_path):
    config = load_config(
        {**PRODUCTION, "VCITA_TOKEN_URL": "http://127.0.0.1:9/token"}, str(tmp_path)
    )
    assert config["VCITA_TOKEN_URL"] == "http://127.0.0.1:9/token"


def test_production_cookies_are_secure_with_host_prefix(tmp_path):
    config = load_config(PRODUCTION, str(tmp_path))
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["SESSION_COOKIE_NAME"].startswith("__Host-")
    assert config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_config_error_message_shows_no_secret_values(tmp_path):
    secret = "super-secret-value-that-is-too-short"
    with pytest.raises(ConfigError) as raised:
        load_config(
            {**PRODUCTION, "SECRET_KEY": secret[:10], "VCITA_CLIENT_SECRET": secret}, str(tmp_path)
        )
    assert secret[:10] not in str(raised.value)
    assert secret not in str(raised.value)


# --- Frame ancestors: a wildcard brand host is the operator's own choice (issue 16) -------

DEVELOPMENT = {**PRODUCTION, "APP_ENV": "development"}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.builds(
            lambda wildcard, labels: ("*." if wildcard else "") + ".".join(labels),
            st.booleans(),
            st.lists(
                st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True),
                min_size=2,  # a host name has a dot
                max_size=4,
            ),
        ),
        max_size=5,
    )
)
def test_no_brand_host_list_makes_a_wildcard_frame_ancestor_by_default(brand_hosts):
    environ = {**DEVELOPMENT, "VCITA_BRAND_HOSTS": " ".join(brand_hosts)}
    config = load_config(environ, "/instance")
    exact = {f"https://{host}" for host in brand_hosts if not host.startswith("*.")}
    assert set(config["VCITA_FRAME_ANCESTORS"]) == {"https://app.vcita.com", *exact}
    assert not [origin for origin in config["VCITA_FRAME_ANCESTORS"] if "*" in origin]


def test_a_wildcard_frame_ancestor_is_kept_when_the_operator_lists_it(tmp_path):
    environ = {
        **DEVELOPMENT,
        "VCITA_BRAND_HOSTS": "*.myclients.me",
        "VCITA_FRAME_ANCESTORS": "https://app.vcita.com https://*.myclients.me",
    }
    config = load_config(environ, str(tmp_path))
    assert config["VCITA_FRAME_ANCESTORS"] == ("https://app.vcita.com", "https://*.myclients.me")
    assert config["SETTINGS_WARNINGS"] == ()


def warnings_logged(capsys) -> list[str]:
    """Return the WARNING lines the app wrote (its log handler writes to stderr)."""
    return [line for line in capsys.readouterr().err.splitlines() if " WARNING " in line]


def test_a_wildcard_brand_host_without_frame_ancestors_is_one_warning_at_start_up(
    make_app, capsys
):
    make_app(VCITA_BRAND_HOSTS="*.myclients.me *.partner.example studio.partner.example")
    (warning,) = warnings_logged(capsys)
    assert "VCITA_FRAME_ANCESTORS is unset" in warning
    assert (
        'set VCITA_FRAME_ANCESTORS="https://app.vcita.com https://studio.partner.example '
        'https://*.myclients.me https://*.partner.example"'
    ) in warning
    assert "docs/app-market.md" in warning


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"VCITA_BRAND_HOSTS": "studio.partner.example"},
        {"VCITA_BRAND_HOSTS": "*.myclients.me", "VCITA_FRAME_ANCESTORS": "https://app.vcita.com"},
    ],
    ids=["no-brand-hosts", "exact-hosts-only", "frame-ancestors-set"],
)
def test_no_warning_without_a_wildcard_left_to_the_default(make_app, capsys, overrides):
    make_app(**overrides)
    assert warnings_logged(capsys) == []
