"""The flow trace shows the wire to vcita with no part of any secret, and lives on the server.

Secrets are taken out by structure (the parsed URL, body and headers), so no encoding
of a secret, however many times it is escaped, can bring a piece of it back.
"""

import json
import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from app import session_keys
from app.connect import trace
from app.session_keys import CONNECTION

from .conftest import only_snapshot, sandbox_state_of, stored
from .security_support import RUN, runs_of, state_of

# Each holds characters that some encoding on the way into a trace escapes: JSON (" \),
# HTML (' < &), URLs (% + space) and UTF-8 (é, ü: Basic credentials are Latin-1).
HARD_SECRETS = {
    "quote": 'Qx7"Zk9"Wm3"Pv5"Jb2',
    "backslash": "Qx7\\Zk9\\Wm3\\Pv5\\Jb2",
    "apostrophe": "Qx7'Zk9'Wm3'Pv5'Jb2",
    "markup": "Qx7<Zk9>Wm3&Pv5&amp;Jb2",
    "percent": "Qx7%22Zk9%Wm3%5CPv5%Jb2",
    "plus and space": "Qx7+Zk9 Wm3+Pv5 Jb2",
    "non-ASCII": "Qx7éZk9üWm3ßPv5øJb2",
    "everything": "Q\"x\\7'Z<k>9&W%m+3 éP",
}
TOKEN_AUTH_METHODS = ("client_secret_json", "client_secret_post", "client_secret_basic")
STAND_IN = "\u2603"  # a character no generated secret holds


def assert_no_run_of(secret: str, text: str, where: str, public: Iterable[str] = ()) -> None:
    """Fail if `text` shows a run of `secret` outside the `public` values it may show.

    A random hex token shares a run of 6 with a hex business UID in about one flow in ten
    thousand: that run, inside vcita's own answer, is chance, not a leak.
    """
    for value in sorted(public, key=len, reverse=True):
        text = text.replace(value, STAND_IN)
    shown = [run for run in runs_of(secret) if run in text]
    assert shown == [], f"{where} shows {shown!r} of a secret"


def leaves(answer) -> Iterator[str]:
    """Every value in a JSON answer, as text."""
    if isinstance(answer, dict):
        answer = list(answer.values())
    if isinstance(answer, list):
        for item in answer:
            yield from leaves(item)
    elif answer is not None:
        yield str(answer)


@pytest.mark.parametrize("auth_method", TOKEN_AUTH_METHODS)
@pytest.mark.parametrize(
    "sandbox_with_secret", HARD_SECRETS.values(), ids=HARD_SECRETS.keys(), indirect=True
)
def test_trace_shows_no_run_of_any_secret_in_any_page_cookie_or_log(
    make_app, new_browser, sandbox_with_secret, auth_method, caplog, capfd
):
    server = sandbox_with_secret
    app = make_app(
        **server.app_settings,
        VCITA_TOKEN_AUTH_METHOD=auth_method,
        VCITA_USE_PKCE="true",
        SHOW_FLOW_TRACE="true",
    )
    caplog.set_level(logging.INFO)  # the app logs at INFO
    browser = new_browser(app, vcita_url=server.url)
    start = browser.get("/connect")
    callback_url = browser.person.approve(start.location)
    callback = browser.get(callback_url)
    dashboard = browser.dashboard()

    assert callback.status_code == 303
    assert dashboard.status_code == 200
    assert "What just happened" in dashboard.text  # the trace is really shown
    assert "[hidden: " in dashboard.text
    token_request = sandbox_state_of(server.sandbox).token_requests[0]
    access_token = browser.connection().token.access_token
    secrets = {
        "client secret": server.client_secret,
        "state": state_of(start.location),
        "code": callback_url.split("code=")[1].split("&")[0],
        "PKCE verifier": token_request["body"].get("code_verifier")
        if isinstance(token_request["body"], dict)
        else None,
        "access token": access_token,
    }
    assert all(secrets.values()), secrets
    cookies = [
        *(
            header
            for r in (start, callback, dashboard)
            for header in r.headers.getlist("Set-Cookie")
        ),
        json.dumps(browser.session()),
    ]
    logged = caplog.text + "".join(capfd.readouterr())
    # What the pages and the log may show: vcita's answers, and the ids of the requests.
    snapshot = only_snapshot(app)
    public = [
        *leaves([snapshot.userinfo, snapshot.recent_clients]),
        *(r.headers["X-Request-Id"] for r in (start, callback, dashboard)),
    ]
    for name, secret in secrets.items():
        assert_no_run_of(secret, dashboard.text, f"the dashboard ({name})", public)
        assert_no_run_of(secret, callback.text, f"the callback ({name})", public)
        for cookie in cookies:
            assert_no_run_of(secret, cookie, f"a cookie ({name})", public)
        assert_no_run_of(secret, logged, f"the log ({name})", public)


HEX = st.text("0123456789abcdef", min_size=RUN, max_size=64)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(secret=HEX, data=st.data())
def test_a_run_of_a_secret_is_found_anywhere_but_inside_a_public_value(secret, data):
    start = data.draw(st.integers(0, len(secret) - RUN))
    run = secret[start : start + RUN]
    # A public value that holds the run by chance, as a business UID can hold a run of a token.
    public = data.draw(HEX) + run + data.draw(HEX)
    page = f"<dd>{public}</dd>"

    assert_no_run_of(secret, page, "a page", [public])
    with pytest.raises(AssertionError, match="of a secret"):
        assert_no_run_of(secret, page + run, "a page", [public])
    with pytest.raises(AssertionError, match="of a secret"):
        assert_no_run_of(secret, page, "a page")


SECRET_HOLDERS = st.sampled_from(
    ["client_secret", "code", "state", "code_verifier", "access_token", "refresh_token"]
)


def shown_in_trace(field: str, value: str, form: bool) -> str:
    """Return what the trace keeps of a token exchange carrying `value` as `field`."""
    request = requests.Request(
        "POST",
        f"https://vcita.example/oauth/token?{field}={requests.utils.quote(value, safe='')}",
        data={field: value, "grant_type": "authorization_code"} if form else None,
        json=None if form else {field: value, "nested": [{field: value}]},
    ).prepare()
    # Set after preparing: requests refuses a header value with a line break, vcita might not.
    request.headers["Authorization"] = f"Bearer {value}"
    answer = json.dumps({field: value, "token_type": "Bearer"}).encode()
    return json.dumps(
        [
            trace.redacted_url(request.url),
            trace.redacted_headers(request.headers),
            trace.redacted_body(request.body, request.headers["Content-Type"]),
            trace.redacted_body(answer, "application/json"),
        ]
    )


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    secret=st.text(min_size=RUN, max_size=60).filter(lambda s: STAND_IN not in s),
    field=SECRET_HOLDERS,
    form=st.booleans(),
)
def test_a_secret_field_is_hidden_whatever_characters_it_holds(secret, field, form):
    shown = shown_in_trace(field, secret, form)
    # The same exchange with a stand-in of the same length: a run of the secret that
    # also appears there (say "Bearer") is the trace's own text, not the secret.
    baseline = shown_in_trace(field, STAND_IN * len(secret), form)

    for run in runs_of(secret):
        for encoded in {run, json.dumps(run)[1:-1], requests.utils.quote(run, safe="")}:
            assert shown.count(encoded) <= baseline.count(encoded), encoded


def test_the_trace_lives_on_the_server_and_the_cookie_holds_only_its_id(settings, browser, app):
    app.config["SHOW_FLOW_TRACE"] = True
    browser.connect()
    session = browser.session()
    dashboard = browser.dashboard()

    assert "What just happened" in dashboard.text
    assert set(session) >= {session_keys.FLOW_TRACE, CONNECTION}
    assert "trace_steps" not in json.dumps(session) and "authorize_url" not in json.dumps(session)
    assert len(session[session_keys.FLOW_TRACE]) < 40


def test_the_trace_is_gone_after_its_lifetime_and_after_disconnect(
    settings, browser, app, monkeypatch
):
    app.config["SHOW_FLOW_TRACE"] = True
    browser.connect()
    assert "What just happened" in browser.dashboard().text
    later = datetime.now(UTC) + timedelta(minutes=16)
    monkeypatch.setattr("app.connect.flow_traces.datetime", _FrozenAt(later))

    assert "What just happened" not in browser.dashboard().text

    monkeypatch.undo()
    assert browser.disconnect().status_code == 303
    with stored(app).database.transaction() as db:
        assert db.exec_driver_sql("SELECT count(*) FROM flow_traces").scalar_one() == 0


def test_a_trace_is_only_shown_with_the_connection_it_describes(settings, app, new_browser):
    app.config["SHOW_FLOW_TRACE"] = True
    first, second = new_browser(app), new_browser(app)
    for browser, staff in ((first, None), (second, "Priya Raman")):
        browser.get(browser.approve(staff=staff))
    assert first.session()[CONNECTION] != second.session()[CONNECTION]
    trace_of_first = first.session()[session_keys.FLOW_TRACE]
    with second.session_transaction() as session:
        session[session_keys.FLOW_TRACE] = trace_of_first

    assert "What just happened" not in second.get("/dashboard").text
    assert "What just happened" in first.get("/dashboard").text


@pytest.mark.parametrize("body", [b"not json", b"[" * 50_000, b"\xff\xfe", b"<html>secret</html>"])
def test_a_body_that_cannot_be_parsed_is_not_shown(body):
    shown = trace.redacted_body(body, "text/html")

    assert shown == f"({len(body)} bytes of text/html, not shown)"


class _FrozenAt:
    """Stands in for the datetime class in app.connect.flow_traces, at a fixed moment."""

    def __init__(self, moment: datetime):
        self.moment = moment

    def now(self, tz=None):
        return self.moment


def test_only_the_callbacks_calls_to_vcita_are_recorded(app, browser, monkeypatch):
    app.config["SHOW_FLOW_TRACE"] = True
    recorded = []
    monkeypatch.setattr(trace, "redacted_url", lambda url: recorded.append(url) or url)
    browser.connect()  # and the dashboard it leads to, which shows what the callback read
    assert any(url.endswith("/oauth/userinfo") for url in recorded)  # the callback's steps
    recorded.clear()

    assert browser.dashboard().status_code == 200  # userinfo and the clients, read live

    assert recorded == []  # not parsed, not redacted, not kept
