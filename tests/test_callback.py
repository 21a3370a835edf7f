"""Step 3: /callback checks the state, exchanges the code once, and stores the connection."""

import base64
from datetime import timedelta
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest
import sqlalchemy as sa

from app import session_keys
from app.connect import flows
from app.session_keys import CONNECTION, CONNECTIONS, JUST_CONNECTED
from app.storage.database import StoreUnavailable
from sandbox.testing import SandboxPerson

from .conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    approved_callback,
    change_vcita_settings,
    only_connection,
)

YEAR = 365 * 86400
TWENTY_YEARS = 631139040  # a new token's expires_in


def store(app):
    return app.extensions["connections"]


def state_of(response) -> str:
    return parse_qs(urlsplit(response.location).query)["state"][0]


def test_allowing_access_connects_and_redirects_to_the_dashboard(app, client, connect, vcita):
    response = connect()
    assert response.status_code == 303
    assert response.location == "/dashboard"
    assert len(vcita.token_requests) == 1
    assert store(app).count() == 1
    with client.session_transaction() as session:
        connection = store(app).get(session[CONNECTION])
    assert connection.business_uid and connection.staff_uid
    assert len(connection.token.access_token) == 64


def test_token_request_is_vcitas_documented_json_body(connect, vcita):
    connect()
    request = vcita.token_requests[0]
    assert request["method"] == "POST"
    assert request["content_type"].startswith("application/json")
    body = request["body"]
    assert set(body) == {"grant_type", "code", "client_id", "client_secret", "redirect_uri"}
    assert body["grant_type"] == "authorization_code"
    assert body["client_id"] == CLIENT_ID
    assert body["client_secret"] == CLIENT_SECRET
    assert body["redirect_uri"] == REDIRECT_URI
    assert "Authorization" not in request["headers"]


@pytest.mark.parametrize(
    ("method", "content_type", "in_body", "basic"),
    [
        ("client_secret_post", "application/x-www-form-urlencoded", True, False),
        ("client_secret_basic", "application/x-www-form-urlencoded", False, True),
    ],
)
def test_other_client_auth_methods_also_connect(
    make_app, person, vcita, method, content_type, in_body, basic
):
    app = make_app(VCITA_TOKEN_AUTH_METHOD=method)
    client = app.test_client()
    start = client.get("/connect")
    response = client.get(person.approve(start.location))
    assert response.status_code == 303
    request = vcita.token_requests[0]
    assert request["content_type"].startswith(content_type)
    assert ("client_secret" in request["body"]) is in_body
    assert request["headers"].get("Authorization", "").startswith("Basic ") is basic


@pytest.mark.parametrize(
    "sandbox_with_secret",
    ["a+b c%2Bd", "秘密-secret-値", "colon:in:secret"],
    ids=["plus-space-percent", "beyond-latin-1", "colon"],
    indirect=True,
)
def test_client_secret_basic_form_encodes_id_and_secret_as_rfc_6749_says(
    make_app, sandbox_with_secret
):
    server = sandbox_with_secret
    app = make_app(
        **server.app_settings,
        VCITA_TOKEN_AUTH_METHOD="client_secret_basic",
    )
    client = app.test_client()
    with SandboxPerson(server.url) as person:
        response = client.get(approved_callback(client, person))

    assert response.status_code == 303
    sent = server.sandbox.extensions["vcita_sandbox"].token_requests[0]["headers"]
    credentials = base64.b64decode(sent["Authorization"].removeprefix("Basic ")).decode()
    assert credentials == f"{quote_plus(CLIENT_ID)}:{quote_plus(server.client_secret)}"


def test_denying_access_shows_a_page_and_makes_no_token_request(client, connect, vcita):
    response = connect(allow=False)
    assert response.status_code == 403
    assert "You didn&#39;t allow access" in response.text
    assert 'href="/connect"' in response.text
    assert vcita.token_requests == []
    with client.session_transaction() as session:
        assert session.get(session_keys.PENDING_FLOWS) == {}


def test_denial_with_a_foreign_state_is_an_invalid_link(client, vcita):
    response = client.get("/callback?error=access_denied&state=not-ours")
    assert response.status_code == 400
    assert "This sign-in link is no longer valid" in response.text


@pytest.mark.parametrize(
    "query",
    ["code=abc", "code=abc&state=", "code=abc&state=forged-state-value"],
    ids=["missing", "empty", "unknown"],
)
def test_callback_without_a_known_state_is_rejected_without_token_request(client, vcita, query):
    client.get("/connect")
    response = client.get(f"/callback?{query}")
    assert response.status_code == 400
    assert "This sign-in link is no longer valid" in response.text
    assert "Start again" in response.text or "Connect vcita again" in response.text
    assert vcita.token_requests == []


def test_expired_state_is_rejected_without_token_request(client, person, vcita, monkeypatch):
    callback = approved_callback(client, person)
    later = flows.time.time() + flows.FLOW_LIFETIME.total_seconds() + 1
    monkeypatch.setattr(flows.time, "time", lambda: later)
    response = client.get(callback)
    assert response.status_code == 400
    assert vcita.token_requests == []


def test_code_is_exchanged_once_and_a_reload_is_rejected(client, person, vcita):
    callback = approved_callback(client, person)
    assert client.get(callback).status_code == 303
    reload = client.get(callback)
    assert reload.status_code == 400
    assert len(vcita.token_requests) == 1


def test_replaying_the_callback_with_an_old_cookie_is_rejected(app, person, vcita):
    browser = app.test_client()
    callback = approved_callback(browser, person)
    copied = app.test_client()
    cookie = browser.get_cookie("vcita_connect")
    copied.set_cookie(cookie.key, cookie.value, domain="localhost")
    assert browser.get(callback).status_code == 303
    replay = copied.get(callback)
    assert replay.status_code == 400
    assert len(vcita.token_requests) == 1


def test_state_is_consumed_before_the_exchange(client, person, vcita):
    callback = approved_callback(client, person)
    vcita.set_fault("token", status=500, json={"error": "server_error"})
    assert client.get(callback).status_code == 502
    vcita.clear_faults()
    assert client.get(callback).status_code == 400
    assert len(vcita.token_requests) == 1


def test_expired_code_shows_the_approval_expired_page(app, client, person, vcita):
    callback = approved_callback(client, person)
    vcita.set_fault(
        "token", status=400, json={"error": "invalid_grant", "error_description": "expired"}
    )
    response = client.get(callback)
    assert response.status_code == 400
    assert "The approval expired — vcita codes last 30 seconds" in response.text
    assert 'href="/connect"' in response.text
    assert store(app).count() == 0


def test_rejected_client_credentials_show_a_configuration_page_without_the_secret(
    make_app, person, vcita
):
    app = make_app(VCITA_CLIENT_SECRET="wrong-secret-3f9a")
    client = app.test_client()
    response = client.get(approved_callback(client, person))
    assert response.status_code == 502
    assert "not set up correctly" in response.text
    assert "wrong-secret-3f9a" not in response.text
    assert CLIENT_SECRET not in response.text
    assert app.extensions["connections"].count() == 0


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500, "body": "oops", "content_type": "text/plain"},
        {"status": 502, "body": "<html>Bad gateway</html>", "content_type": "text/html"},
        {"status": 200, "body": "not json", "content_type": "text/plain"},
        {"status": 200, "json": {"token_type": "Bearer"}},
        {"status": 200, "json": {"access_token": "a" * 64, "token_type": "mac"}},
        {"status": 200, "json": ["not", "an", "object"]},
    ],
    ids=["500", "502-html", "not-json", "no-access-token", "not-bearer", "json-list"],
)
def test_broken_token_answers_show_vcita_did_not_answer(app, client, person, vcita, fault):
    callback = approved_callback(client, person)
    vcita.set_fault("token", **fault)
    response = client.get(callback)
    assert response.status_code == 502
    assert "vcita did not answer" in response.text
    assert store(app).count() == 0


def test_token_endpoint_timeout_shows_vcita_did_not_answer(
    app, client, person, vcita, monkeypatch
):
    change_vcita_settings(app, exchange_timeout=(1, 0.2))
    callback = approved_callback(client, person)
    vcita.set_fault("token", delay=1)
    response = client.get(callback)
    assert response.status_code == 502
    assert "vcita did not answer" in response.text
    assert store(app).count() == 0


def test_unreachable_token_endpoint_shows_vcita_did_not_answer(make_app, person, vcita):
    app = make_app(VCITA_TOKEN_URL="http://127.0.0.1:9/oauth/token")
    client = app.test_client()
    response = client.get(approved_callback(client, person))
    assert response.status_code == 502
    assert "vcita did not answer" in response.text
    assert app.extensions["connections"].count() == 0


def test_session_is_rotated_keeping_only_flows_of_other_tabs(client, person, vcita):
    other_tab = state_of(client.get("/connect"))
    this_tab = client.get("/connect")
    with client.session_transaction() as session:
        session["leftover"] = "from before connecting"
    client.get(person.approve(this_tab.location))
    with client.session_transaction() as session:
        assert set(session) == {
            CONNECTION,
            CONNECTIONS,
            JUST_CONNECTED,
            session_keys.PENDING_FLOWS,
        }
        assert list(session[session_keys.PENDING_FLOWS]) == [other_tab]


def test_second_tab_still_connects_after_the_first(client, person, vcita):
    first = client.get("/connect")
    second = client.get("/connect")
    assert client.get(person.approve(first.location)).status_code == 303
    assert client.get(person.approve(second.location)).status_code == 303
    assert len(vcita.token_requests) == 2


def test_connecting_again_replaces_the_stored_connection(app, connect):
    connect()
    connect()
    assert store(app).count() == 1


def test_a_token_vcita_gives_back_years_later_updates_the_same_connection(app, connect, vcita):
    assert connect().status_code == 303
    first = only_connection(app)
    vcita.age_tokens(3 * YEAR)  # the staff member connects again three years later

    assert connect().status_code == 303

    again = only_connection(app)
    assert store(app).count() == 1
    assert again.id == first.id
    assert again.connected_at == first.connected_at
    # vcita gave the same token back, issued when it was first issued.
    assert again.token.access_token == first.token.access_token
    assert again.token.issued_at == first.token.issued_at - timedelta(seconds=3 * YEAR)
    # It expires when the time it has left runs out, counted from when vcita answered.
    left = (again.token.expires_at - again.updated_at).total_seconds()
    assert TWENTY_YEARS - 3 * YEAR - 5 < left <= TWENTY_YEARS - 3 * YEAR


def test_error_together_with_code_is_rejected(client, vcita):
    state = state_of(client.get("/connect"))
    response = client.get(f"/callback?error=access_denied&code=abc&state={state}")
    assert response.status_code == 400
    assert vcita.token_requests == []


# --- The callback's writes: one transaction once the state is claimed -------------------


@pytest.fixture
def traced_app(make_app):
    """An app that also keeps a flow trace: three writes in one callback."""
    return make_app(SHOW_FLOW_TRACE="true")


def test_the_callback_commits_twice_the_state_claim_then_everything_else(traced_app, person):
    commits = []
    sa.event.listen(traced_app.extensions["database"].engine, "commit", commits.append)
    client = traced_app.test_client()
    callback = approved_callback(client, person)
    commits.clear()
    assert client.get(callback).status_code == 303
    # The state is claimed (and committed) before the exchange, so no code is ever
    # exchanged twice; the connection, vcita's answers and the trace are one commit.
    assert len(commits) == 2
    assert client.get("/dashboard").status_code == 200
    assert "What just happened" in client.get("/dashboard").text


def test_a_failed_write_in_the_callback_saves_nothing(traced_app, person, monkeypatch):
    store = traced_app.extensions["connections"]

    def trace_cannot_be_saved(*args):
        raise StoreUnavailable("disk full")

    monkeypatch.setattr(traced_app.extensions["flow_traces"], "save", trace_cannot_be_saved)
    client = traced_app.test_client()
    assert client.get(approved_callback(client, person)).status_code == 503
    assert store.count() == 0  # not a connection without the rest
