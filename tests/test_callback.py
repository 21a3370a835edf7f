"""Step 3: /callback exchanges the code and stores the connection.

What the state must be (this browser's, once, in time) is tested in
tests/test_security_state.py; how the session turns over, in tests/test_security_session.py;
every way the exchange can fail, in tests/test_faults.py.
"""

import base64
from datetime import timedelta
from urllib.parse import quote_plus

import pytest
import sqlalchemy as sa

from app import session_keys
from app.storage.database import StoreUnavailable

from .conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    REDIRECT_URI,
    only_connection,
    sandbox_state_of,
    stored,
)

YEAR = 365 * 86400
TWENTY_YEARS = 631139040  # a new token's expires_in


def test_allowing_access_connects_and_redirects_to_the_dashboard(app, browser, vcita):
    response = browser.connect()
    assert response.status_code == 303
    assert response.location == "/dashboard"
    assert len(vcita.token_requests) == 1
    assert stored(app).connections.count() == 1
    connection = browser.connection()
    assert connection.business_uid and connection.staff_uid
    assert len(connection.token.access_token) == 64


def test_token_request_is_vcitas_documented_json_body(browser, vcita):
    browser.connect()
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
    make_app, new_browser, vcita, method, content_type, in_body, basic
):
    browser = new_browser(make_app(VCITA_TOKEN_AUTH_METHOD=method))
    response = browser.get(browser.approve())
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
    make_app, new_browser, sandbox_with_secret
):
    server = sandbox_with_secret
    app = make_app(
        **server.app_settings,
        VCITA_TOKEN_AUTH_METHOD="client_secret_basic",
    )
    browser = new_browser(app, vcita_url=server.url)
    response = browser.get(browser.approve())

    assert response.status_code == 303
    sent = sandbox_state_of(server.sandbox).token_requests[0]["headers"]
    credentials = base64.b64decode(sent["Authorization"].removeprefix("Basic ")).decode()
    assert credentials == f"{quote_plus(CLIENT_ID)}:{quote_plus(server.client_secret)}"


def test_denying_access_shows_a_page_and_makes_no_token_request(browser, vcita):
    response = browser.connect(allow=False)
    assert response.status_code == 403
    assert "You didn&#39;t allow access" in response.text
    assert 'href="/connect"' in response.text
    assert vcita.token_requests == []
    assert browser.session().get(session_keys.PENDING_FLOWS) == {}


def test_second_tab_still_connects_after_the_first(browser, person, vcita):
    first = browser.get("/connect")
    second = browser.get("/connect")
    assert browser.get(person.approve(first.location)).status_code == 303
    assert browser.get(person.approve(second.location)).status_code == 303
    assert len(vcita.token_requests) == 2


def test_connecting_again_replaces_the_stored_connection(app, browser):
    browser.connect()
    browser.connect()
    assert stored(app).connections.count() == 1


def test_a_token_vcita_gives_back_years_later_updates_the_same_connection(app, browser, vcita):
    assert browser.connect().status_code == 303
    first = only_connection(app)
    vcita.age_tokens(3 * YEAR)  # the staff member connects again three years later

    assert browser.connect().status_code == 303

    again = only_connection(app)
    assert stored(app).connections.count() == 1
    assert again.id == first.id
    assert again.connected_at == first.connected_at
    # vcita gave the same token back, issued when it was first issued.
    assert again.token.access_token == first.token.access_token
    assert again.token.issued_at == first.token.issued_at - timedelta(seconds=3 * YEAR)
    # It expires when the time it has left runs out, counted from when vcita answered.
    left = (again.token.expires_at - again.updated_at).total_seconds()
    assert TWENTY_YEARS - 3 * YEAR - 5 < left <= TWENTY_YEARS - 3 * YEAR


# --- The callback's writes: one transaction once the state is claimed -------------------


@pytest.fixture
def traced_app(make_app):
    """An app that also keeps a flow trace: three writes in one callback."""
    return make_app(SHOW_FLOW_TRACE="true")


def test_the_callback_commits_twice_the_state_claim_then_everything_else(traced_app, new_browser):
    commits = []
    sa.event.listen(stored(traced_app).database.engine, "commit", commits.append)
    browser = new_browser(traced_app)
    callback = browser.approve()
    commits.clear()
    assert browser.get(callback).status_code == 303
    # The state is claimed (and committed) before the exchange, so no code is ever
    # exchanged twice; the connection, vcita's answers and the trace are one commit.
    assert len(commits) == 2
    assert browser.dashboard().status_code == 200
    assert "What just happened" in browser.dashboard().text


def test_a_failed_write_in_the_callback_saves_nothing(traced_app, new_browser, monkeypatch):
    def trace_cannot_be_saved(*args):
        raise StoreUnavailable("disk full")

    monkeypatch.setattr(stored(traced_app).flow_traces, "save", trace_cannot_be_saved)
    browser = new_browser(traced_app)
    assert browser.get(browser.approve()).status_code == 503
    assert stored(traced_app).connections.count() == 0  # not a connection without the rest
