"""Settings: from the environment, overridable by test_config, validated all at once."""

from __future__ import annotations

import json

import pytest

from sandbox import SandboxConfigError, SandboxState, create_sandbox
from sandbox.settings import DEFAULT_BUSINESSES_FILE, load_settings


def test_defaults_register_the_demo_client():
    config = create_sandbox().config
    assert config["SANDBOX_CLIENT_ID"] == "vcita-connect-sandbox"
    assert config["SANDBOX_CLIENT_SECRET"] == "sandbox-client-secret"
    assert config["SANDBOX_CLIENT_JWKS_URI"] is None
    assert config["SANDBOX_REDIRECT_URIS"] == ("http://localhost:5000/callback",)
    assert config["SANDBOX_TRUSTED"] is False
    assert config["SANDBOX_REUSE_ACCESS_TOKEN"] is True
    assert config["SANDBOX_CODE_LIFETIME"] == 30.0
    assert config["SANDBOX_ISSUER"] is None
    assert config["SANDBOX_CONTROL"] is False
    assert config["SANDBOX_BUSINESSES_FILE"] == DEFAULT_BUSINESSES_FILE
    assert config["SANDBOX_APP_URL"] is None
    assert config["SANDBOX_BRAND_DOMAIN"] == "myclients.me"
    assert config["SESSION_COOKIE_NAME"] == "vcita_sandbox_session"


def test_secret_key_is_random_when_unset():
    first, second = create_sandbox(), create_sandbox()
    assert len(first.secret_key) >= 64
    assert first.secret_key != second.secret_key


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SANDBOX_CLIENT_ID", "env-client")
    monkeypatch.setenv("SANDBOX_REDIRECT_URIS", " https://a.example/cb\n https://b.example/cb ")
    monkeypatch.setenv("SANDBOX_TRUSTED", "TRUE")
    monkeypatch.setenv("SANDBOX_REUSE_ACCESS_TOKEN", "off")
    monkeypatch.setenv("SANDBOX_CODE_LIFETIME", "2.5")
    monkeypatch.setenv("SANDBOX_SECRET_KEY", "env-secret-key")
    monkeypatch.setenv("SANDBOX_ISSUER", "https://sandbox.example")
    monkeypatch.setenv("SANDBOX_CONTROL", "on")
    monkeypatch.setenv("SANDBOX_CLIENT_JWKS_URI", "https://connect.example/jwks.json")
    sandbox = create_sandbox()
    assert sandbox.config["SANDBOX_CLIENT_ID"] == "env-client"
    assert sandbox.config["SANDBOX_REDIRECT_URIS"] == (
        "https://a.example/cb",
        "https://b.example/cb",
    )
    assert sandbox.config["SANDBOX_TRUSTED"] is True
    assert sandbox.config["SANDBOX_REUSE_ACCESS_TOKEN"] is False
    assert sandbox.extensions["vcita_sandbox"].reuse_access_token is False
    assert sandbox.config["SANDBOX_CODE_LIFETIME"] == 2.5
    assert sandbox.secret_key == "env-secret-key"
    assert sandbox.config["SANDBOX_ISSUER"] == "https://sandbox.example"
    assert sandbox.config["SANDBOX_CONTROL"] is True
    assert sandbox.config["SANDBOX_CLIENT_JWKS_URI"] == "https://connect.example/jwks.json"


def test_test_config_overrides_the_environment_with_the_same_keys(monkeypatch):
    monkeypatch.setenv("SANDBOX_CLIENT_ID", "env-client")
    monkeypatch.setenv("SANDBOX_TRUSTED", "true")
    config = create_sandbox(
        {
            "SANDBOX_CLIENT_ID": "test-client",
            "SANDBOX_TRUSTED": None,
            "SANDBOX_REDIRECT_URIS": ["https://a.example/cb"],
            "SANDBOX_CODE_LIFETIME": 0.2,
            "TESTING": True,
        }
    ).config
    assert config["SANDBOX_CLIENT_ID"] == "test-client"
    assert config["SANDBOX_TRUSTED"] is False
    assert config["SANDBOX_REDIRECT_URIS"] == ("https://a.example/cb",)
    assert config["SANDBOX_CODE_LIFETIME"] == 0.2
    assert config["TESTING"] is True


@pytest.mark.parametrize(
    ("environ", "reused"),
    [
        ({}, True),
        ({"SANDBOX_REUSE_ACCESS_TOKEN": ""}, True),  # `NAME=` in .env: unset
        ({"SANDBOX_REUSE_ACCESS_TOKEN": "yes"}, True),
        ({"SANDBOX_REUSE_ACCESS_TOKEN": "false"}, False),
        ({"SANDBOX_REUSE_ACCESS_TOKEN": "0"}, False),
    ],
)
def test_access_tokens_are_reused_unless_turned_off(environ, reused):
    assert load_settings(environ)["SANDBOX_REUSE_ACCESS_TOKEN"] is reused


def test_state_is_on_the_app_extensions():
    state = create_sandbox({"SANDBOX_CODE_LIFETIME": "7"}).extensions["vcita_sandbox"]
    assert isinstance(state, SandboxState)
    assert state.code_lifetime == 7.0


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("SANDBOX_TRUSTED", "maybe", "SANDBOX_TRUSTED must be true or false"),
        ("SANDBOX_CONTROL", "2", "SANDBOX_CONTROL must be true or false"),
        ("SANDBOX_REUSE_ACCESS_TOKEN", "sometimes", "SANDBOX_REUSE_ACCESS_TOKEN must be true"),
        ("SANDBOX_CODE_LIFETIME", "soon", "SANDBOX_CODE_LIFETIME must be a positive number"),
        ("SANDBOX_CODE_LIFETIME", "0", "SANDBOX_CODE_LIFETIME must be a positive number"),
        ("SANDBOX_CODE_LIFETIME", "-3", "SANDBOX_CODE_LIFETIME must be a positive number"),
        ("SANDBOX_CODE_LIFETIME", "inf", "SANDBOX_CODE_LIFETIME must be a positive number"),
        ("SANDBOX_CODE_LIFETIME", "nan", "SANDBOX_CODE_LIFETIME must be a positive number"),
        ("SANDBOX_REDIRECT_URIS", "/callback", "SANDBOX_REDIRECT_URIS must list absolute"),
        ("SANDBOX_REDIRECT_URIS", "http://a.example/cb#top", "SANDBOX_REDIRECT_URIS"),
        ("SANDBOX_REDIRECT_URIS", "http:///cb", "SANDBOX_REDIRECT_URIS"),
        ("SANDBOX_REDIRECT_URIS", "https://ü.example/cb", "SANDBOX_REDIRECT_URIS"),
        ("SANDBOX_REDIRECT_URIS", " ", "SANDBOX_REDIRECT_URIS"),
        ("SANDBOX_ISSUER", "sandbox.example", "SANDBOX_ISSUER must be an http(s) URL"),
        ("SANDBOX_ISSUER", "https://sandbox.example/?a=1", "SANDBOX_ISSUER must be"),
        ("SANDBOX_CLIENT_ID", " padded ", "SANDBOX_CLIENT_ID must be text"),
        ("SANDBOX_BUSINESSES_FILE", "/no/such/file.json", "SANDBOX_BUSINESSES_FILE"),
        ("SANDBOX_APP_URL", "localhost:5000/", "SANDBOX_APP_URL must be the app's landing"),
        ("SANDBOX_APP_URL", "http://localhost:5000/#top", "SANDBOX_APP_URL must be"),
        ("SANDBOX_APP_URL", "http://user@localhost:5000/", "SANDBOX_APP_URL must be"),
        ("SANDBOX_APP_URL", "javascript:alert(1)", "SANDBOX_APP_URL must be"),
        ("SANDBOX_BRAND_DOMAIN", "MyClients.me", "SANDBOX_BRAND_DOMAIN must be a lower-case"),
        ("SANDBOX_BRAND_DOMAIN", "myclients.me.", "SANDBOX_BRAND_DOMAIN must be"),
        ("SANDBOX_BRAND_DOMAIN", "evil.example/x", "SANDBOX_BRAND_DOMAIN must be"),
        ("SANDBOX_APP_URL", "/", "SANDBOX_APP_URL must be"),
        ("SANDBOX_APP_URL", "http:///landing", "SANDBOX_APP_URL must be"),
        ("SANDBOX_APP_URL", "http://localhost:port/", "SANDBOX_APP_URL must be"),
        ("SANDBOX_APP_URL", "http://localhost:/", "SANDBOX_APP_URL must be"),
        ("SANDBOX_APP_URL", "http://a;frame-src *.example/", "SANDBOX_APP_URL must be"),
        ("SANDBOX_APP_URL", "http://localhost:5000/ landing", "SANDBOX_APP_URL must be"),
        ("SANDBOX_APP_URL", "https://ü.example/", "SANDBOX_APP_URL must be"),
        ("SANDBOX_BRAND_DOMAIN", "-myclients.me", "SANDBOX_BRAND_DOMAIN must be"),
        ("SANDBOX_BRAND_DOMAIN", "myclients..me", "SANDBOX_BRAND_DOMAIN must be"),
        ("SANDBOX_BRAND_DOMAIN", "my_clients.me", "SANDBOX_BRAND_DOMAIN must be"),
        ("SANDBOX_BRAND_DOMAIN", f"{'a' * 64}.me", "SANDBOX_BRAND_DOMAIN must be"),
        ("SANDBOX_BRAND_DOMAIN", ".".join(["abc"] * 64), "SANDBOX_BRAND_DOMAIN must be"),
        ("SANDBOX_CLIENT_JWKS_URI", "/jwks.json", "SANDBOX_CLIENT_JWKS_URI must be the URL"),
        ("SANDBOX_CLIENT_JWKS_URI", "ftp://connect.example/jwks", "SANDBOX_CLIENT_JWKS_URI"),
        (
            "SANDBOX_CLIENT_JWKS_URI",
            "https://user@connect.example/jwks",
            "SANDBOX_CLIENT_JWKS_URI",
        ),
        (
            "SANDBOX_CLIENT_JWKS_URI",
            "https://connect.example/jwks#keys",
            "SANDBOX_CLIENT_JWKS_URI",
        ),
        ("SANDBOX_CLIENT_JWKS_URI", "http://localhost:port/jwks", "SANDBOX_CLIENT_JWKS_URI"),
        ("SANDBOX_CLIENT_JWKS_URI", "https://ü.example/jwks", "SANDBOX_CLIENT_JWKS_URI"),
    ],
)
def test_invalid_setting_is_named_in_the_error(monkeypatch, name, value, says):
    monkeypatch.setenv(name, value)
    with pytest.raises(SandboxConfigError, match=r"(?s)Invalid vcita sandbox settings.*") as error:
        create_sandbox()
    assert len(error.value.problems) == 1
    assert error.value.problems[0].startswith(says)


def test_every_bad_variable_is_named_in_one_error():
    with pytest.raises(SandboxConfigError) as error:
        load_settings(
            {},
            {
                "SANDBOX_TRUSTED": "perhaps",
                "SANDBOX_CODE_LIFETIME": "later",
                "SANDBOX_REDIRECT_URIS": "relative/path",
                "SANDBOX_ISSUER": "ftp://x",
                "SANDBOX_CLIENT_JWKS_URI": "jwks.json",
            },
        )
    message = str(error.value)
    for name in (
        "SANDBOX_TRUSTED",
        "SANDBOX_CODE_LIFETIME",
        "SANDBOX_REDIRECT_URIS",
        "SANDBOX_ISSUER",
        "SANDBOX_CLIENT_JWKS_URI",
    ):
        assert name in message
    assert len(error.value.problems) == 5


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:5000/",
        "http://127.0.0.1:5000",
        "https://connect.example/vcita/launch?from=market",
        "http://[::1]:5000/",
    ],
)
def test_app_url_is_any_http_landing_page(url):
    assert load_settings({"SANDBOX_APP_URL": url})["SANDBOX_APP_URL"] == url


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:5000/.well-known/jwks.json",
        "https://connect.example/oauth/jwks?version=2",
        "http://[::1]:5000/jwks",
    ],
)
def test_client_jwks_uri_is_any_http_url(url):
    assert load_settings({"SANDBOX_CLIENT_JWKS_URI": url})["SANDBOX_CLIENT_JWKS_URI"] == url


@pytest.mark.parametrize("domain", ["myclients.localhost", "localhost", "brand-1.partner.example"])
def test_brand_domain_is_any_lower_case_dns_name(domain):
    assert load_settings({"SANDBOX_BRAND_DOMAIN": domain})["SANDBOX_BRAND_DOMAIN"] == domain


def test_custom_redirect_uri_schemes_are_allowed():
    uris = load_settings({}, {"SANDBOX_REDIRECT_URIS": "com.example.app:/oauth"})
    assert uris["SANDBOX_REDIRECT_URIS"] == ("com.example.app:/oauth",)


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ("not json", "cannot read it as JSON"),
        ("[]", '"businesses" list'),
        ('{"businesses": []}', '"businesses" list'),
        ('{"businesses": [1]}', "businesses[0] must be an object"),
        ('{"businesses": [{"business_uid": "b"}]}', "businesses[0] needs text fields"),
    ],
)
def test_malformed_businesses_file_is_a_setting_error(tmp_path, document, says):
    path = tmp_path / "businesses.json"
    path.write_text(document)
    with pytest.raises(SandboxConfigError, match="SANDBOX_BUSINESSES_FILE") as error:
        create_sandbox({"SANDBOX_BUSINESSES_FILE": str(path)})
    assert says in str(error.value)


def demo_business(**changes):
    business = json.loads(DEFAULT_BUSINESSES_FILE.read_text(encoding="utf-8"))["businesses"][0]
    return {**business, **changes}


@pytest.mark.parametrize(
    ("businesses", "says"),
    [
        ([demo_business(brand_theme="blue")], '"brand_theme" object'),
        ([demo_business(staff=[])], '"staff" list'),
        ([demo_business(staff=[{"uid": "x", "name": "X", "email": "x@x.example"}])], "role"),
        ([demo_business(), demo_business()], "each business_uid must be unique"),
        (
            [demo_business(), demo_business(business_uid="other")],
            "each staff uid must be unique",
        ),
    ],
)
def test_inconsistent_businesses_are_refused(tmp_path, businesses, says):
    path = tmp_path / "businesses.json"
    path.write_text(json.dumps({"businesses": businesses}))
    with pytest.raises(SandboxConfigError, match=says):
        create_sandbox({"SANDBOX_BUSINESSES_FILE": path})


def test_own_businesses_file_is_used(tmp_path, browser_for):
    path = tmp_path / "businesses.json"
    path.write_text(json.dumps({"businesses": [demo_business(business_name="Zed's Bikes")]}))
    html = browser_for({"SANDBOX_BUSINESSES_FILE": str(path)}).get(
        "/app/oauth/authorize?client_id=vcita-connect-sandbox"
        "&redirect_uri=http://localhost:5000/callback"
    )
    assert "Zed&#39;s Bikes" in html.get_data(as_text=True)


def test_demo_businesses_look_like_vcita():
    directory = create_sandbox().config["SANDBOX_DIRECTORY"]
    assert len(directory.businesses) == 4
    # Their locales: English, Spanish and Hebrew (right-to-left), as vcita's businesses use.
    assert [b.brand_theme["locale"] for b in directory.businesses] == ["en", "en", "es", "he"]
    for business in directory.businesses:
        assert 1 <= len(business.staff) <= 2
        assert business.brand_host.endswith(".myclients.me")
        assert set(business.brand_theme) == {"colors", "locale", "logo", "name", "powered_by"}
        assert set(business.brand_theme["colors"]) == {"primary", "secondary", "text"}
        assert {member.email.rsplit(".", 1)[1] for member in business.staff} == {"example"}
    assert any(member.role == "owner" for b in directory.businesses for member in b.staff)


@pytest.fixture
def browser_for():
    return lambda config: create_sandbox(config).test_client()
