"""Sessions, cookies, deployment and tokens at rest (RFC 9700 §4.13, §4.16; OWASP ASVS V3, V12).

The session cookie holds only the connection's random id, so what matters is when that
id is handed out and taken back, how the cookie is flagged, which proxies are believed,
that every call to vcita checks TLS, and that the stored token is unreadable without
the key.
"""

import datetime
import importlib.metadata
import ipaddress
import json
import re
import ssl
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import request
from packaging.version import Version

from app import session_keys
from app.config import ConfigError, load_config
from app.session_keys import CONNECTION, CONNECTIONS, JUST_CONNECTED

from .conftest import browser_with_cookie, only_snapshot, stored
from .security_support import decode_session, state_of

ROOT = Path(__file__).resolve().parent.parent
# The first Authlib release with the fixes for the client-side state advisories
# GHSA-fg6f-75jq-6523 and GHSA-jj8c-mmj3-mmgv.
FIRST_SAFE_AUTHLIB = Version("1.6.11")


def set_cookie_header(response, name: str) -> str:
    return next(
        header for header in response.headers.getlist("Set-Cookie") if header.startswith(name)
    )


# --- The session -----------------------------------------------------------------------


def test_session_is_rotated_when_a_connection_is_made(app, browser, vcita):
    browser.get("/")
    callback = browser.approve()
    before = browser.session_cookie()  # what an attacker could have planted or copied
    assert browser.get(callback).status_code == 303
    after = browser.session_cookie()
    assert after != before
    assert CONNECTION not in decode_session(app, before)
    assert CONNECTION in decode_session(app, after)
    response = browser_with_cookie(app, before).get("/dashboard")
    assert response.status_code == 302
    assert response.location == "/"
    assert len(vcita.userinfo_requests) == 1  # the callback's own; none for the old cookie


def test_session_is_rotated_keeping_only_flows_of_other_tabs(browser, vcita):
    other_tab = state_of(browser.get("/connect").location)
    this_tab = browser.get("/connect")
    with browser.session_transaction() as session:
        session["leftover"] = "from before connecting"
    browser.get(browser.person.approve(this_tab.location))
    session = browser.session()
    assert set(session) == {CONNECTION, CONNECTIONS, JUST_CONNECTED, session_keys.PENDING_FLOWS}
    assert list(session[session_keys.PENDING_FLOWS]) == [other_tab]


def test_old_cookie_after_disconnect_does_not_reach_the_dashboard(app, browser, vcita):
    browser.connect()
    old_cookie = browser.session_cookie()
    assert browser.disconnect().status_code == 303
    userinfo_calls = len(vcita.userinfo_requests)
    response = browser_with_cookie(app, old_cookie).get("/dashboard")
    assert response.status_code == 302
    assert response.location == "/"
    assert len(vcita.userinfo_requests) == userinfo_calls  # the token is gone, not just hidden
    assert stored(app).connections.count() == 0


@pytest.mark.parametrize("sent", ["missing", "empty", "forged", "another-browsers"])
def test_disconnect_requires_this_sessions_csrf_token(app, browser, new_browser, sent):
    browser.connect()
    assert browser.dashboard().status_code == 200
    other = new_browser(app)
    other.get(other.approve())
    tokens = {
        "missing": None,
        "empty": "",
        "forged": "A" * 43,
        "another-browsers": other.csrf_token(),
    }
    data = {} if tokens[sent] is None else {"csrf_token": tokens[sent]}
    response = browser.post("/disconnect", data=data)
    assert response.status_code == 403
    assert "This request was refused" in response.text
    assert stored(app).connections.count() == 1
    assert browser.dashboard().status_code == 200  # still connected


# --- Cookies ---------------------------------------------------------------------------


def test_session_cookie_is_httponly_and_samesite_lax(browser):
    header = set_cookie_header(browser.get("/connect"), "vcita_connect=")
    flags = [flag.strip().lower() for flag in header.split(";")[1:]]
    assert "httponly" in flags
    assert "samesite=lax" in flags
    assert "path=/" in flags
    assert not any(flag.startswith("domain=") for flag in flags)


def test_production_session_cookie_is_secure_with_the_host_prefix(make_app, vcita):
    app = make_app(
        APP_ENV="production",
        VCITA_REDIRECT_URI="https://connect.example.com/callback",
    )
    response = app.test_client().get("/connect", base_url="https://connect.example.com")
    header = set_cookie_header(response, "__Host-vcita_connect=")
    flags = [flag.strip().lower() for flag in header.split(";")[1:]]
    assert {"secure", "httponly", "samesite=lax", "path=/"} <= set(flags)
    # __Host-: Secure, Path=/ and no Domain, so no other host can set or read it.
    assert not any(flag.startswith("domain=") for flag in flags)
    assert "Strict-Transport-Security" in response.headers


# --- Production mode -------------------------------------------------------------------


def test_production_refuses_to_start_naming_every_problem(tmp_path):
    environ = {
        "APP_ENV": "production",
        "VCITA_CLIENT_ID": "client",
        "VCITA_CLIENT_SECRET": "secret",
        "VCITA_REDIRECT_URI": "http://connect.example.com/callback",
        "VCITA_TOKEN_URL": "http://vcita.example/oauth/token",
        "VCITA_SANDBOX": "true",
        "SECRET_KEY": "too-short",
        "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "AUTHLIB_INSECURE_TRANSPORT": "1",
        "OAUTHLIB_INSECURE_TRANSPORT": "1",
    }
    with pytest.raises(ConfigError) as raised:
        load_config(environ, str(tmp_path))
    message = str(raised.value)
    for problem in (
        "VCITA_REDIRECT_URI must use https://",
        "VCITA_TOKEN_URL must use https://",
        "VCITA_SANDBOX must be off",
        "SECRET_KEY must be at least 32 bytes",
        "AUTHLIB_INSECURE_TRANSPORT must not be set",
        "OAUTHLIB_INSECURE_TRANSPORT must not be set",
    ):
        assert problem in message
    assert "too-short" not in message


# --- Proxies ---------------------------------------------------------------------------


def probed_app(make_app, proxies: str):
    """The app with one extra page that shows what it believes about the request."""
    app = make_app(TRUSTED_PROXY_COUNT=proxies)

    def probe():
        return {"remote_addr": request.remote_addr, "scheme": request.scheme, "host": request.host}

    app.add_url_rule("/probe", "probe", probe)
    return app


# Each proxy appends what it saw; a client may send anything before that.
FORWARDED = {
    "X-Forwarded-For": "198.51.100.66, 203.0.113.7",
    "X-Forwarded-Proto": "https, https",
    "X-Forwarded-Host": "connect.example.com, connect.example.com",
}


def test_forwarded_headers_are_ignored_without_trusted_proxy_count(make_app):
    app = probed_app(make_app, "0")
    response = app.test_client().get("/probe", headers=FORWARDED)
    assert response.json == {"remote_addr": "127.0.0.1", "scheme": "http", "host": "localhost"}
    assert "Strict-Transport-Security" not in response.headers


@pytest.mark.parametrize(
    ("proxies", "client_address"), [("1", "203.0.113.7"), ("2", "198.51.100.66")]
)
def test_trusted_proxy_count_trusts_exactly_that_many_hops(make_app, proxies, client_address):
    app = probed_app(make_app, proxies)
    response = app.test_client().get("/probe", headers=FORWARDED)
    # Each trusted proxy appends the address it saw: only the last N entries are believed.
    assert response.json["remote_addr"] == client_address
    assert response.json["scheme"] == "https"
    assert response.json["host"] == "connect.example.com"
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


# --- TLS to vcita ----------------------------------------------------------------------


def self_signed_certificate(folder: Path) -> Path:
    """Write a certificate and key for 127.0.0.1 that no authority signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = folder / "self-signed.pem"
    path.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


class FakeVcitaHandler(BaseHTTPRequestHandler):
    """Answers like vcita's token, userinfo and clients list, to whoever completes TLS."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.answer({"access_token": "b" * 64, "token_type": "Bearer", "expires_in": 631139040})

    def do_GET(self):
        if self.path.startswith("/platform/v1/clients"):
            self.answer({"data": {"clients": []}})
        else:
            self.answer({"business_uid": "tls-business", "sub": "tls-staff"})

    def answer(self, body: dict):
        self.server.requests_answered += 1
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        pass


class SelfSignedServer(HTTPServer):
    """An HTTPS server on loopback whose certificate no client should trust."""

    def __init__(self, certificate: Path):
        super().__init__(("127.0.0.1", 0), FakeVcitaHandler)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certificate)
        self.handshakes_attempted = 0
        self.requests_answered = 0

    def get_request(self):
        connection, address = self.socket.accept()
        self.handshakes_attempted += 1
        try:
            return self.context.wrap_socket(connection, server_side=True), address
        except OSError:
            connection.close()  # the client refused our certificate
            raise

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def self_signed_vcita(tmp_path):
    certificate = self_signed_certificate(tmp_path)
    server = SelfSignedServer(certificate)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    server.certificate = certificate
    yield server
    server.shutdown()
    thread.join()
    server.server_close()


ALL_OF_VCITA = ("token", "userinfo", "api")


@pytest.mark.parametrize(
    ("self_signed", "trusted"),
    [
        (ALL_OF_VCITA, False),
        (("userinfo",), False),
        (("api",), False),
        (ALL_OF_VCITA, True),
    ],
    ids=["token-endpoint", "userinfo-endpoint", "api", "trusted-control"],
)
def test_tls_is_verified_for_every_call_to_vcita(
    make_app, new_browser, vcita, self_signed_vcita, monkeypatch, self_signed, trusted
):
    # requests lets these variables override a session's own `verify`: clear them, so
    # that what is tested is the app's choice, not this machine's environment.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    if trusted:
        # The control: trust this one certificate, and the same server works.
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(self_signed_vcita.certificate))
    url = self_signed_vcita.url
    endpoints = {
        f"VCITA_{name.upper()}_URL": url if name == "api" else f"{url}/oauth/{name}"
        for name in self_signed
    }
    app = make_app(**endpoints)
    browser = new_browser(app)
    response = browser.get(browser.approve())
    assert self_signed_vcita.handshakes_attempted >= 1
    if trusted:
        assert response.status_code == 303
        assert self_signed_vcita.requests_answered == 3  # token, userinfo, clients
        assert stored(app).connections.count() == 1
    elif self_signed == ("api",):
        # The clients list is the dashboard's panel: the connect goes on without it.
        assert response.status_code == 303
        assert self_signed_vcita.requests_answered == 0
        assert only_snapshot(app).recent_clients is None
    else:
        assert response.status_code == 502
        assert "vcita did not answer" in response.text
        assert self_signed_vcita.requests_answered == 0
        assert stored(app).connections.count() == 0


# --- Tokens at rest --------------------------------------------------------------------


def raw_rows(app) -> list[tuple]:
    """Read the connections table as the database holds it, bypassing the store."""
    engine = sa.create_engine(app.config["DATABASE_URL"])
    try:
        with engine.connect() as database:
            return [tuple(row) for row in database.execute(sa.text("SELECT * FROM connections"))]
    finally:
        engine.dispose()


def test_raw_database_row_does_not_hold_the_token(app, browser):
    browser.connect()
    token = browser.connection().token.access_token
    rows = raw_rows(app)
    assert len(rows) == 1
    assert all(token not in str(column) for column in rows[0])
    url = sa.make_url(app.config["DATABASE_URL"])
    if url.get_backend_name() == "sqlite":
        # Nor in the files themselves, write-ahead log included.
        database = Path(url.database)
        for file in database.parent.glob(f"{database.name}*"):
            assert token.encode() not in file.read_bytes(), file.name


def test_another_encryption_key_cannot_read_the_stored_token(app, browser, make_app, vcita):
    browser.connect()
    cookie = browser.session_cookie()
    userinfo_calls = len(vcita.userinfo_requests)
    other = make_app(TOKEN_ENCRYPTION_KEY=Fernet.generate_key().decode())
    response = browser_with_cookie(other, cookie).get("/dashboard")
    assert response.status_code == 302  # not connected: the token cannot be read
    assert len(vcita.userinfo_requests) == userinfo_calls
    assert stored(other).connections.count() == 1  # kept for the deployment that has the key


def test_rotated_keys_read_old_rows_and_reencrypt_them_with_the_newest(
    make_app, app, browser, settings, vcita
):
    browser.connect()
    token = browser.connection().token.access_token
    cookie = browser.session_cookie()
    old_key, new_key = settings["TOKEN_ENCRYPTION_KEY"], Fernet.generate_key().decode()
    rotated = make_app(TOKEN_ENCRYPTION_KEY=f"{new_key},{old_key}")
    response = browser_with_cookie(rotated, cookie).get("/dashboard")
    assert response.status_code == 200
    assert vcita.userinfo_requests[-1]["headers"]["Authorization"] == f"Bearer {token}"
    ciphertext = next(
        column for column in raw_rows(app)[0] if isinstance(column, str) and column[:4] == "gAAA"
    )
    assert Fernet(new_key).decrypt(ciphertext.encode()).decode() == token


# --- Dependencies ----------------------------------------------------------------------


def test_authlib_is_pinned_at_a_release_without_known_client_advisories():
    requirements = (ROOT / "requirements.txt").read_text()
    pins = re.findall(r"^authlib==([^\s#]+)", requirements, flags=re.IGNORECASE | re.MULTILINE)
    assert len(pins) == 1, "requirements.txt pins Authlib exactly once"
    assert Version(pins[0]) >= FIRST_SAFE_AUTHLIB
    assert importlib.metadata.version("authlib") == pins[0]  # and that is what runs


def test_readme_says_how_to_audit_the_pins():
    readme = (ROOT / "README.md").read_text()
    assert "pip-audit -r requirements.txt" in readme
