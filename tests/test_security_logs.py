"""Nothing secret is logged (RFC 9700 §4.2, OWASP ASVS V16): not by the app, not in access logs.

The app is served over real HTTP with Werkzeug's request logging on, so the access log
is the one an operator would read. Every record written while the app serves the flow
is kept: the app's own lines, Werkzeug's access log, and any library logging at DEBUG.
"""

import io
import logging
import re
import string
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.serving import BaseWSGIServer

from app import create_app, session_keys
from app.logs import UrlSecretsFilter, hide_url_secrets
from app.session_keys import CONNECTION
from app.storage.database import StoreUnavailable

from .conftest import (
    SESSION_COOKIE,
    approved_callback,
    change_vcita_settings,
    csrf_token_on,
    finish_background_work,
    stored,
    vcita_client_of,
)
from .security_support import (
    decode_session,
    path_and_query,
    query_of,
    state_of,
)
from .servers import development_server

REQUEST_ID_LINE = re.compile(r" \[[0-9a-f]{12}\] ")
KNOWN_TOKEN = "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f"


class LogRecorder(logging.Handler):
    """Keep the records written at the app's start and on the threads serving it.

    Not the test's HTTP client's records (the browser's log), nor the sandbox's own
    (waitress's threads: vcita's log), but the app's, on its server's request threads.
    """

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        on_app_thread = record.threadName.endswith("(process_request_thread)")
        app_startup = record.threadName == "MainThread" and not record.name.startswith("urllib3")
        if on_app_thread or app_startup:
            self.records.append(record)

    @property
    def text(self) -> str:
        return "\n".join(self.formatter.format(record) for record in self.records)


@dataclass
class ServedApp:
    """The client app served over HTTP, a browser for it, and everything it logged."""

    app: object
    server: BaseWSGIServer
    recorder: LogRecorder
    app_lines: io.StringIO
    browser: requests.Session = field(default_factory=requests.Session)
    secrets: set = field(default_factory=set)

    def get(self, path: str, **kwargs) -> requests.Response:
        response = self.browser.get(
            f"{self.server.url}{path}", allow_redirects=False, timeout=20, **kwargs
        )
        self.note_cookies(response)
        return response

    def post(self, path: str, **kwargs) -> requests.Response:
        response = self.browser.post(
            f"{self.server.url}{path}", allow_redirects=False, timeout=20, **kwargs
        )
        self.note_cookies(response)
        return response

    def start(self, person, allow: bool = True) -> str:
        """Click Connect, answer vcita's page, and return the callback's path and query."""
        callback = approved_callback(self, person, allow=allow)
        self.note_callback(callback)
        return path_and_query(callback)

    def note_callback(self, callback: str) -> None:
        params = query_of(callback)
        self.secrets |= {values[0] for values in params.values() if values[0]} - {"access_denied"}
        session = self.session()
        for flow in session.get(session_keys.PENDING_FLOWS, {}).values():
            self.secrets |= {flow["state"], flow.get("code_verifier") or flow["state"]}

    def note_cookies(self, response: requests.Response) -> None:
        cookie = response.cookies.get(SESSION_COOKIE)
        if cookie:
            self.secrets.add(cookie)
            csrf = decode_session(self.app, cookie).get("csrf_token")
            if csrf:
                self.secrets.add(csrf)

    def session(self) -> dict:
        return decode_session(self.app, self.browser.cookies.get(SESSION_COOKIE, ""))

    def stored_token(self) -> str:
        connection_id = self.session()[CONNECTION]
        return stored(self.app).connections.get(connection_id).token.access_token

    def assert_nothing_secret_logged(self) -> None:
        text = self.recorder.text + self.app_lines.getvalue()
        assert self.recorder.records, "the log was captured"
        for secret in self.secrets | self.configured_secrets():
            assert secret not in text, f"a secret starting {secret[:6]!r} was logged"

    def configured_secrets(self) -> set[str]:
        config = self.app.config
        return {
            config["VCITA_CLIENT_SECRET"],
            config["SECRET_KEY"],
            *config["TOKEN_ENCRYPTION_KEYS"],
        }

    def access_log_lines(self) -> list[str]:
        return [
            self.recorder.formatter.format(record)
            for record in self.recorder.records
            if record.name == "werkzeug"
        ]


@pytest.fixture
def serve(settings, vcita, caplog):
    """Serve the app with the given settings; yield a function returning a ServedApp."""
    caplog.set_level(logging.DEBUG)  # every logger that does not set its own level
    caplog.set_level(logging.DEBUG, logger="app")
    root = logging.getLogger()

    @contextmanager
    def serve_app(**overrides):
        recorder = LogRecorder()
        root.addHandler(recorder)
        app = create_app({**settings, "VCITA_USE_PKCE": "true", **overrides})
        # The app's logger does not propagate: listen to it too, and read its own
        # handler's output, which carries the request ids.
        app.logger.addHandler(recorder)
        app_lines = io.StringIO()
        app.logger.handlers[0].setStream(app_lines)
        try:
            with development_server(app) as server:
                served = ServedApp(app, server, recorder, app_lines)
                with served.browser:
                    yield served
        finally:
            root.removeHandler(recorder)
            stored(app).database.dispose()

    return serve_app


def test_nothing_secret_is_logged_during_a_full_flow(serve, person, vcita):
    with serve() as served:
        served.get("/")
        callback = served.get(served.start(person))
        assert callback.status_code == 303
        served.secrets.add(served.stored_token())
        dashboard = served.get("/dashboard")
        assert dashboard.status_code == 200
        csrf = csrf_token_on(dashboard.text)
        assert served.post("/disconnect", data={"csrf_token": csrf}).status_code == 303
        served.get("/")
    served.assert_nothing_secret_logged()
    callback_lines = [line for line in served.access_log_lines() if "/callback" in line]
    assert callback_lines and all("/callback?…" in line for line in callback_lines)


def test_each_app_log_line_of_the_flow_carries_a_request_id(serve, person, vcita):
    with serve() as served:
        callback = served.get(served.start(person))
        served.get("/dashboard")
        served.get("/callback?code=replayed&state=unknown")
    lines = served.app_lines.getvalue().splitlines()
    assert len(lines) >= 3  # started, connected, refused
    for line in lines:
        assert REQUEST_ID_LINE.search(line), line
    # The id in the log is the one the response names, so support can match them.
    connected = next(line for line in lines if "Connected business" in line)
    assert f"[{callback.headers['X-Request-Id']}]" in connected


def deny(served, person, vcita, monkeypatch):
    return served.get(served.start(person, allow=False))


def foreign_state(served, person, vcita, monkeypatch):
    callback = served.start(person)
    served.browser.cookies.clear()
    return served.get(callback)


def repeated_state(served, person, vcita, monkeypatch):
    callback = served.start(person)
    return served.get(f"{callback}&state={state_of(callback)}")


def provider_error(served, person, vcita, monkeypatch):
    callback = served.start(person)
    state = state_of(callback)
    return served.get(f"/callback?error=server_error&error_description=broken&state={state}")


def described_denial(description: str):
    """vcita's denial with an error_description ahead of the state, as the sandbox sends it."""

    def denial(served, person, vcita, monkeypatch):
        state = state_of(served.start(person))
        return served.get(
            f"/callback?error=access_denied&error_description={description}&state={state}"
        )

    return denial


def token_fault(**fault):
    def failing_exchange(served, person, vcita, monkeypatch):
        callback = served.start(person)
        vcita.set_fault("token", **fault)
        return served.get(callback)

    return failing_exchange


def userinfo_refuses_the_new_token(served, person, vcita, monkeypatch):
    # vcita answers with a token that userinfo then refuses: the token was in our hands.
    served.secrets.add(KNOWN_TOKEN)
    return token_fault(
        json={"access_token": KNOWN_TOKEN, "token_type": "Bearer", "expires_in": 60}
    )(served, person, vcita, monkeypatch)


def exchange_times_out(served, person, vcita, monkeypatch):
    change_vcita_settings(served.app, exchange_timeout=(1, 0.2))
    return token_fault(delay=1)(served, person, vcita, monkeypatch)


def unexpected_error(served, person, vcita, monkeypatch):
    def crash(token):
        raise RuntimeError("userinfo parser crashed")

    monkeypatch.setattr(vcita_client_of(served.app), "fetch_userinfo", crash)
    return served.get(served.start(person))


def csrf_refused(served, person, vcita, monkeypatch):
    served.get(served.start(person))
    served.get("/dashboard")
    return served.post("/disconnect", data={"csrf_token": "forged"})


FAILURES = [
    pytest.param(deny, 403, id="access-denied"),
    pytest.param(foreign_state, 400, id="state-of-another-browser"),
    pytest.param(repeated_state, 400, id="state-sent-twice"),
    pytest.param(provider_error, 502, id="provider-error"),
    # The access log decodes the path: a quote or a Unicode space must not end the cut.
    pytest.param(described_denial("Say%20%22no%22"), 403, id="description-with-a-quote"),
    pytest.param(described_denial("Say%C2%A0no"), 403, id="description-with-a-unicode-space"),
    pytest.param(
        token_fault(status=400, json={"error": "invalid_grant", "error_description": "used"}),
        400,
        id="code-rejected",
    ),
    pytest.param(
        token_fault(status=401, json={"error": "invalid_client"}), 502, id="client-rejected"
    ),
    pytest.param(
        token_fault(status=400, json={"error": "unauthorized_client"}), 502, id="vcita-refused"
    ),
    pytest.param(token_fault(status=500, body="down"), 502, id="vcita-unavailable"),
    pytest.param(exchange_times_out, 502, id="timeout"),
    pytest.param(userinfo_refuses_the_new_token, 502, id="userinfo-refuses-token"),
    pytest.param(unexpected_error, 500, id="unexpected-error"),
    pytest.param(csrf_refused, 403, id="csrf-refused"),
]


@pytest.mark.parametrize(("fail", "status"), FAILURES)
def test_nothing_secret_is_logged_on_a_failure_page(
    serve, person, vcita, monkeypatch, fail, status
):
    with serve() as served:
        response = fail(served, person, vcita, monkeypatch)
        assert response.status_code == status
        for secret in served.secrets:
            assert secret not in response.text
    served.assert_nothing_secret_logged()
    assert any(line for line in served.access_log_lines() if f'" {status} ' in line)


def test_nothing_secret_is_logged_when_the_store_is_unavailable(serve, person, vcita, tmp_path):
    (tmp_path / "not-a-folder").write_text("")  # the database's folder is a file: unusable
    with serve(DATABASE_URL=f"sqlite:///{tmp_path / 'not-a-folder' / 'connect.db'}") as served:
        callback = served.start(person)
        response = served.get(callback)
        assert response.status_code == 503
    served.assert_nothing_secret_logged()
    assert "StoreUnavailable" in served.recorder.text


def test_a_webhook_urls_secret_reaches_no_log_line(serve, person, vcita, monkeypatch):
    secret = "webhook-secret-" + "s7" * 20
    with serve() as served:
        assert served.get(served.start(person)).status_code == 303
        subscriptions = stored(served.app).subscriptions
        (row,) = stored(served.app).connections.all()
        subscriptions.save(row.id, secret, f"https://connect.example/webhooks/vcita/{secret}")
        served.secrets.add(secret)
        assert served.post(f"/webhooks/vcita/{secret}", data=b"{}").status_code == 200
        assert served.post(f"/webhooks/vcita/{secret}x?a=1", data=b"{}").status_code == 404

        # A failure on that path logs the path: without its secret.
        def unavailable(*args):
            raise StoreUnavailable("the database cannot be used: test")

        monkeypatch.setattr(type(subscriptions), "connection_for", unavailable)
        assert served.post(f"/webhooks/vcita/{secret}", data=b"{}").status_code == 503
        finish_background_work(served.app)
    served.assert_nothing_secret_logged()
    webhook_lines = [line for line in served.access_log_lines() if "/webhooks/vcita/" in line]
    assert len(webhook_lines) == 3
    assert all("/webhooks/vcita/…" in line for line in webhook_lines)
    assert "StoreUnavailable on /webhooks/vcita/…" in served.app_lines.getvalue()


@given(
    secret=st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=16, max_size=64),
    # A request target has no whitespace: browsers and clients percent-encode it.
    query=st.text(max_size=40).filter(lambda text: not any(c.isspace() for c in text)),
    line=st.sampled_from(
        [
            '127.0.0.1 - - [29/Nov/2026 05:00:00] "POST {path} HTTP/1.1" 200 -',
            "{path}",  # gunicorn's %(U)s atom alone
        ]
    ),
)
def test_no_access_line_keeps_a_webhook_secret_or_a_query(secret, query, line):
    path = f"/webhooks/vcita/{secret}" + (f"?{query}" if query else "")
    hidden = hide_url_secrets(line.format(path=path))
    assert secret not in hidden
    assert "/webhooks/vcita/…" in hidden
    if len(query) >= 6:
        assert query not in hidden


def test_access_atoms_that_cannot_be_edited_in_place_are_hidden_too():
    atoms = MappingProxyType(
        {"r": "GET /callback?code=c0de&state=5tate HTTP/1.1", "q": "code=c0de"}
    )
    record = logging.LogRecord("access", logging.INFO, __file__, 1, "%(r)s %(q)s", (atoms,), None)

    assert UrlSecretsFilter().filter(record) is True

    assert record.getMessage() == "GET /callback?… HTTP/1.1 …"
