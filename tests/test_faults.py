"""Every way vcita or the database can fail during a connect, and what the app leaves behind.

For each fault the issue lists, the callback must answer with its page and status, store
nothing, spend the state (a second callback with the same URL is refused without asking
vcita again), and log one warning that names the failure and carries no secret.
The sandbox misbehaves on demand (`vcita.set_fault`); timeouts are shortened so no test
waits more than about a second.
"""

import html
import logging
import re
import socket
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from app.session_keys import CONNECTION

from .conftest import (
    CLIENT_SECRET,
    change_vcita_settings,
    forget_snapshots,
    stored,
    vcita_client_of,
)

UNAVAILABLE = "vcita did not answer"
EXPIRED = "The approval expired — vcita codes last 30 seconds"
MISCONFIGURED = "vcita Connect is not set up correctly"
REFUSED = "vcita refused the request"
REJECTED_NEW_TOKEN = "vcita did not accept the new connection"
INVALID_LINK = "This sign-in link is no longer valid"
STORE_DOWN = "We can&#39;t save your connection right now"
# How a sandbox access token looks (64 hex digits): none may reach a log line.
TOKEN_SHAPED = re.compile(r"\b[0-9a-f]{64}\b")
SHORT_TIMEOUT = (1, 0.3)  # (connect, read) seconds: a fault's delay of 1 s outlasts it
SLOW = {"delay": 1.0}


@pytest.fixture
def settings(settings, tmp_path):
    # The database in a folder of its own, so a test can take the whole folder away.
    return {**settings, "DATABASE_URL": f"sqlite:///{tmp_path / 'db' / 'connect.db'}"}


@pytest.fixture(autouse=True)
def short_timeouts(app):
    change_vcita_settings(app, exchange_timeout=SHORT_TIMEOUT, api_timeout=SHORT_TIMEOUT)


def secrets_of(callback: str) -> list[str]:
    query = parse_qs(urlsplit(callback).query)
    return [query["code"][0], query["state"][0], CLIENT_SECRET]


def assert_failed_cleanly(app, browser, vcita, caplog, callback, response, status, title, logged):
    """The page and status, nothing stored, the state spent, and one safe log line."""
    assert response.status_code == status
    assert title in response.text
    assert stored(app).connections.count() == 0
    with browser.session_transaction() as session:
        assert CONNECTION not in session

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(logged in message and "/callback" in message for message in warnings), warnings
    for secret in secrets_of(callback):
        assert secret not in caplog.text
        assert secret not in response.text
    assert not TOKEN_SHAPED.search(caplog.text)

    vcita.clear_faults()
    asked = len(vcita.token_requests), len(vcita.userinfo_requests)
    replay = browser.get(callback)
    assert replay.status_code == 400
    assert INVALID_LINK in replay.text
    assert (len(vcita.token_requests), len(vcita.userinfo_requests)) == asked
    assert stored(app).connections.count() == 0


# --- Step 3: the token endpoint ---------------------------------------------------------

TOKEN_FAULTS = {
    # fault id: (the sandbox's fault, status, page title, what the warning names)
    "timeout": (SLOW, 502, UNAVAILABLE, "token endpoint unreachable: ReadTimeout"),
    "reset-mid-response": (
        {"reset": True},
        502,
        UNAVAILABLE,
        "token endpoint unreachable: ChunkedEncodingError",
    ),
    "500": (
        {"status": 500, "json": {"error": "server_error"}},
        502,
        UNAVAILABLE,
        "token endpoint answered HTTP 500",
    ),
    "500-with-plain-text": (
        {"status": 500, "body": "oops", "content_type": "text/plain"},
        502,
        UNAVAILABLE,
        "token endpoint answered HTTP 500",
    ),
    "502-with-html": (
        {
            "status": 502,
            "body": "<html><body><h1>502 Bad Gateway</h1></body></html>",
            "content_type": "text/html",
        },
        502,
        UNAVAILABLE,
        "token endpoint answered HTTP 502",
    ),
    "200-not-json": (
        {"status": 200, "body": "<html>Welcome to vcita</html>", "content_type": "text/html"},
        502,
        UNAVAILABLE,
        "token endpoint answered something other than JSON",
    ),
    "200-plain-text": (
        {"status": 200, "body": "not json", "content_type": "text/plain"},
        502,
        UNAVAILABLE,
        "token endpoint answered something other than JSON",
    ),
    "200-json-list": (
        {"status": 200, "json": ["not", "an", "object"]},
        502,
        UNAVAILABLE,
        "token endpoint answered something other than JSON",
    ),
    "200-without-access-token": (
        {"status": 200, "json": {"token_type": "Bearer", "expires_in": 631139040}},
        502,
        UNAVAILABLE,
        "token response has no valid access_token",
    ),
    # RFC 6749 Appendix A.12: an access token is printable ASCII, so it fits a header.
    "access-token-with-a-line-break": (
        {"json_merge": {"access_token": "abc\r\nX-Injected: 1"}},
        502,
        UNAVAILABLE,
        "token response has no valid access_token",
    ),
    "access-token-with-a-lone-surrogate": (
        {"json_merge": {"access_token": "abc\ud800"}},
        502,
        UNAVAILABLE,
        "token endpoint answered strings that are not valid Unicode",
    ),
    "token-type-not-bearer": (
        {"json_merge": {"token_type": "mac"}},
        502,
        UNAVAILABLE,
        "token response is not a bearer token",
    ),
    "invalid-grant": (
        {"status": 400, "json": {"error": "invalid_grant", "error_description": "Code expired."}},
        400,
        EXPIRED,
        "CodeRejected on /callback: invalid_grant",
    ),
    "invalid-client": (
        {
            "status": 401,
            "json": {"error": "invalid_client", "error_description": "Client auth failed."},
        },
        502,
        MISCONFIGURED,
        "ClientRejected on /callback: invalid_client",
    ),
    "429-with-retry-after": (
        {"status": 429, "json": {"error": "rate_limited"}, "headers": {"Retry-After": "7"}},
        503,
        UNAVAILABLE,
        "token endpoint answered 429",
    ),
}


@pytest.mark.parametrize(
    ("fault", "status", "title", "logged"), TOKEN_FAULTS.values(), ids=TOKEN_FAULTS.keys()
)
def test_token_endpoint_fault_connects_nothing_and_spends_the_state(
    app, browser, vcita, caplog, fault, status, title, logged
):
    callback = browser.approve()
    vcita.set_fault("token", **fault)

    response = browser.get(callback)

    assert len(vcita.token_requests) == 1
    assert vcita.userinfo_requests == []
    assert_failed_cleanly(app, browser, vcita, caplog, callback, response, status, title, logged)


def test_refused_connection_to_the_token_endpoint_connects_nothing(app, browser, vcita, caplog):
    with closed_port() as port:
        change_vcita_settings(app, token_url=f"http://127.0.0.1:{port}/oauth/token")
        callback = browser.approve()
        response = browser.get(callback)
        logged = "token endpoint unreachable: ConnectionError"
        assert_failed_cleanly(
            app, browser, vcita, caplog, callback, response, 502, UNAVAILABLE, logged
        )
    assert vcita.token_requests == []


def test_expired_code_shows_the_approval_expired_page(app, browser, vcita):
    callback = browser.approve()
    vcita.set_fault(
        "token", status=400, json={"error": "invalid_grant", "error_description": "expired"}
    )
    response = browser.get(callback)
    assert response.status_code == 400
    assert EXPIRED in response.text
    assert 'href="/connect"' in response.text
    assert stored(app).connections.count() == 0


def test_rejected_client_credentials_show_a_configuration_page_without_the_secret(
    make_app, new_browser, vcita
):
    app = make_app(VCITA_CLIENT_SECRET="wrong-secret-3f9a")
    browser = new_browser(app)
    response = browser.get(browser.approve())
    assert response.status_code == 502
    assert "not set up correctly" in response.text
    assert "wrong-secret-3f9a" not in response.text
    assert CLIENT_SECRET not in response.text
    assert stored(app).connections.count() == 0


def test_answer_that_arrives_after_the_code_expired_asks_to_approve_again(
    app, browser, vcita, caplog, monkeypatch
):
    # vcita's codes live 30 s; here 0.2 s, and the token endpoint takes 0.5 s to look.
    monkeypatch.setattr(vcita, "code_lifetime", 0.2)
    change_vcita_settings(app, exchange_timeout=(1, 2))
    callback = browser.approve()
    vcita.set_fault("token", delay=0.5)

    response = browser.get(callback)

    assert vcita.token_requests[0]["status"] == 400
    assert 'href="/connect"' in response.text
    assert_failed_cleanly(
        app, browser, vcita, caplog, callback, response, 400, EXPIRED, "CodeRejected"
    )


def test_throttled_token_endpoint_asks_the_browser_to_come_back_later(browser, vcita):
    callback = browser.approve()
    vcita.set_fault("token", status=429, headers={"Retry-After": "7"}, json={"error": "slow"})

    response = browser.get(callback)

    # 503 is the status that carries Retry-After (RFC 9110 §10.2.3, §15.6.4).
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert 'href="/connect"' in response.text


def test_throttled_token_endpoint_without_retry_after_is_a_bad_gateway(browser, vcita):
    callback = browser.approve()
    vcita.set_fault("token", status=429, json={"error": "slow"})

    response = browser.get(callback)

    assert response.status_code == 502
    assert "Retry-After" not in response.headers
    assert UNAVAILABLE in response.text


@pytest.mark.parametrize("token_type", ["bearer", "Bearer", "BEARER"])
def test_bearer_token_type_is_accepted_in_any_case(app, browser, vcita, token_type):
    callback = browser.approve()
    vcita.set_fault("token", json_merge={"token_type": token_type}, times=1)

    response = browser.get(callback)

    assert response.status_code == 303
    assert response.location == "/dashboard"
    assert stored(app).connections.count() == 1
    # Stored and sent back in the one form RFC 6750 §2.1 spells.
    browser.dashboard()
    assert vcita.userinfo_requests[-1]["headers"]["Authorization"].startswith("Bearer ")


# --- Step 4: userinfo, right after the exchange -----------------------------------------

USERINFO_FAULTS = {
    "401": (
        {"status": 401, "json": {"error": "invalid_token"}},
        502,
        REJECTED_NEW_TOKEN,
        "AccessRevoked on /callback: userinfo answered 401",
    ),
    "403": (
        {"status": 403, "json": {"error": "insufficient_scope"}},
        502,
        REFUSED,
        "VcitaRefused on /callback: userinfo answered 403",
    ),
    "500": (
        {"status": 500, "body": "Internal Server Error"},
        502,
        UNAVAILABLE,
        "userinfo answered HTTP 500",
    ),
    "timeout": (SLOW, 502, UNAVAILABLE, "userinfo unreachable: ReadTimeout"),
    "not-json": (
        {"status": 200, "body": "<html>Sign in to vcita</html>", "content_type": "text/html"},
        502,
        UNAVAILABLE,
        "userinfo answered something other than JSON",
    ),
    "lone-surrogate-in-a-field": (
        {"json_merge": {"business_name": "Caf\udce9"}},
        502,
        UNAVAILABLE,
        "userinfo answered strings that are not valid Unicode",
    ),
    "json-list": (
        {"json": [{"business_uid": "b1", "sub": "s1"}]},
        502,
        UNAVAILABLE,
        "userinfo answered HTTP 200 without the documented JSON object",
    ),
}
# The two fields a connection is keyed on, in shapes nobody can store.
UNUSABLE_IDENTIFIERS = {
    "business-uid-a-number": {"business_uid": 7462},
    "business-uid-an-object": {"business_uid": {"id": "b1"}},
    "business-uid-very-long": {"business_uid": "b" * 10_000},
    "business-uid-empty": {"business_uid": ""},
    "sub-missing": {"sub": None},
    "sub-a-list": {"sub": ["s1", "s2"]},
}
for name, merge in UNUSABLE_IDENTIFIERS.items():
    USERINFO_FAULTS[name] = (
        {"json_merge": merge},
        502,
        UNAVAILABLE,
        "userinfo names no business_uid and sub",
    )


@pytest.mark.parametrize(
    ("fault", "status", "title", "logged"), USERINFO_FAULTS.values(), ids=USERINFO_FAULTS.keys()
)
def test_userinfo_fault_after_the_exchange_connects_nothing(
    app, browser, vcita, caplog, fault, status, title, logged
):
    callback = browser.approve()
    vcita.set_fault("userinfo", **fault)

    response = browser.get(callback)

    assert len(vcita.token_requests) == 1
    assert len(vcita.userinfo_requests) == 1
    access_token = vcita.userinfo_requests[0]["headers"]["Authorization"].split()[1]
    assert access_token not in caplog.text
    assert_failed_cleanly(app, browser, vcita, caplog, callback, response, status, title, logged)


# --- Step 4: userinfo on the dashboard --------------------------------------------------

MARKUP = "<script>alert('x9q')</script>"
ODD_USERINFO = {
    "numbers": {"business_name": 12345, "email": 3.5, "role": True, "type": 0},
    "nested-objects": {
        "business_name": {"en": MARKUP, "he": ["<b>", {"deep": MARKUP}]},
        "email": [MARKUP],
        "brand_host": {"host": MARKUP},
    },
    "very-long-strings": {"business_name": "N" * 100_000, "email": "e" * 50_000 + "@x.example"},
    "markup-everywhere": {
        "business_name": MARKUP,
        "email": f'"><img src=x onerror=alert(1)>{MARKUP}',
        "role": "</dd></dl><h1>owned</h1>",
        "type": "{{ 7 * 7 }}",
        "brand_host": "javascript:alert(1)//<x9q>",
        "directory_uid": "</code>" + MARKUP,
    },
    "brand-theme-of-the-wrong-shape": {
        "brand_theme": {"colors": {"primary": "red; } body { background: url(//evil)", "text": 7}}
    },
    "brand-theme-a-string": {"brand_theme": MARKUP},
}


@pytest.mark.parametrize("odd", ODD_USERINFO.values(), ids=ODD_USERINFO.keys())
def test_dashboard_renders_userinfo_of_unexpected_types_escaped(browser, vcita, odd):
    vcita.set_fault("userinfo", json_merge=odd)
    assert browser.get(browser.approve()).status_code == 303

    kept = browser.dashboard()  # what the callback read, kept with the connection
    live = browser.dashboard()

    for response in (kept, live):
        assert response.status_code == 200
        page = response.text
        assert "<script>alert" not in page
        assert "<img src=x" not in page
        assert "<h1>owned</h1>" not in page
        assert "<x9q>" not in page
        assert "<b>" not in page
        assert "url(//evil)" not in page.split("</head>")[0]
        for value in odd.values():
            if isinstance(value, str):
                assert _escaped(value) in page


def _escaped(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
    )


def test_throttled_userinfo_with_no_copy_kept_asks_to_come_back_later(app, browser, vcita):
    assert browser.get(browser.approve()).status_code == 303
    assert browser.dashboard().status_code == 200
    forget_snapshots(app)  # a connection stored before the app kept copies
    vcita.set_fault("userinfo", status=429, headers={"Retry-After": "30"}, body="slow down")

    response = browser.dashboard()

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert 'href="/dashboard"' in response.text
    assert stored(app).connections.count() == 1


@pytest.mark.parametrize(
    ("fault", "title", "copy_kept"),
    [
        # A refusal is no outage: the kept copy is not shown for it.
        ({"status": 403, "json": {"error": "forbidden"}}, REFUSED, True),
        (SLOW, UNAVAILABLE, False),
        ({"body": "<html>maintenance</html>", "content_type": "text/html"}, UNAVAILABLE, False),
    ],
    ids=["403", "timeout-no-copy", "not-json-no-copy"],
)
def test_userinfo_failure_on_the_dashboard_keeps_the_connection_for_a_reload(
    app, browser, vcita, caplog, fault, title, copy_kept
):
    assert browser.get(browser.approve()).status_code == 303
    assert browser.dashboard().status_code == 200
    if not copy_kept:
        forget_snapshots(app)  # a connection stored before the app kept copies
    vcita.set_fault("userinfo", **fault)

    response = browser.dashboard()

    assert response.status_code == 502
    assert title in response.text
    assert stored(app).connections.count() == 1
    assert any("on /dashboard" in r.getMessage() for r in caplog.records)
    vcita.clear_faults()
    assert browser.dashboard().status_code == 200


# --- The token store ---------------------------------------------------------------------


@contextmanager
def database_gone(app):
    """Take the SQLite database's folder away, as when its disk fails; then bring it back."""
    folder = Path(stored(app).database.location.removeprefix("sqlite:///")).parent
    away = folder.with_name(f"{folder.name}-away")
    # Pooled connections hold the old file open; a database server going down breaks them.
    stored(app).database.dispose()
    folder.rename(away)
    folder.write_text("a file where the database's folder should be")
    try:
        yield
    finally:
        folder.unlink()
        away.rename(folder)


def test_store_down_at_the_callback_shows_503_and_a_new_connect_works_once_it_is_back(
    app, browser, vcita, caplog
):
    callback = browser.approve()
    with database_gone(app):
        response = browser.get(callback)

        assert response.status_code == 503
        assert STORE_DOWN in response.text
        assert 'href="/connect"' in response.text
        # The state could not be recorded as used, so the code was never exchanged.
        assert vcita.token_requests == []
        assert any(
            "StoreUnavailable on /callback" in r.getMessage()
            for r in caplog.records
            if r.levelno == logging.WARNING
        )

    assert stored(app).connections.count() == 0
    assert browser.get(callback).status_code == 400  # the pending flow was spent
    retried = browser.get(browser.approve())
    assert retried.status_code == 303
    assert retried.location == "/dashboard"
    assert stored(app).connections.count() == 1
    assert browser.dashboard().status_code == 200


def test_store_down_after_the_exchange_stores_nothing_and_the_flow_can_be_retried(
    app, browser, vcita, caplog, monkeypatch
):
    callback = browser.approve()
    vcita_client = vcita_client_of(app)
    real_fetch_userinfo = vcita_client.fetch_userinfo
    with ExitStack() as outage:

        def fetch_userinfo_then_lose_the_database(token):
            userinfo = real_fetch_userinfo(token)
            outage.enter_context(database_gone(app))
            return userinfo

        monkeypatch.setattr(vcita_client, "fetch_userinfo", fetch_userinfo_then_lose_the_database)
        response = browser.get(callback)
    monkeypatch.setattr(vcita_client, "fetch_userinfo", real_fetch_userinfo)

    assert response.status_code == 503
    assert STORE_DOWN in response.text
    assert len(vcita.token_requests) == 1
    assert stored(app).connections.count() == 0
    for secret in secrets_of(callback):
        assert secret not in caplog.text
    assert browser.get(callback).status_code == 400
    assert browser.get(browser.approve()).status_code == 303
    assert stored(app).connections.count() == 1


def test_store_down_on_the_dashboard_shows_503_until_it_is_back(app, browser):
    assert browser.get(browser.approve()).status_code == 303
    with database_gone(app):
        response = browser.dashboard()
        assert response.status_code == 503
        assert STORE_DOWN in response.text
        assert 'href="/dashboard"' in response.text
    assert browser.dashboard().status_code == 200
    assert stored(app).connections.count() == 1


def test_store_down_on_the_clients_panel_offers_to_reload_it_not_a_new_connect(app, browser):
    assert browser.connect().status_code == 303
    connection = browser.connection()
    panel = (
        f"/dashboard/recent-clients?business_uid={connection.business_uid}"
        f"&staff_uid={connection.staff_uid}"
    )
    with database_gone(app):
        response = browser.get(panel)  # its link followed, without JavaScript

        assert response.status_code == 503
        assert STORE_DOWN in response.text
        assert f'href="{html.escape(panel)}">Try again</a>' in response.text
        assert 'href="/connect"' not in response.text
    assert browser.get(panel).status_code == 200


def test_store_down_on_disconnect_leads_to_the_start_page_not_a_new_connect(app, browser):
    assert browser.connect().status_code == 303
    csrf_token = browser.csrf_token()
    with database_gone(app):
        response = browser.post("/disconnect", data={"csrf_token": csrf_token})

        assert response.status_code == 503
        assert STORE_DOWN in response.text
        assert 'href="/">Back to the start page</a>' in response.text
        assert 'href="/connect"' not in response.text
    assert stored(app).connections.count() == 1


@contextmanager
def closed_port():
    """Yield a loopback port that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
