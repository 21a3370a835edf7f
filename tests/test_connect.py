"""Step 2: /connect starts a flow and sends the browser to vcita's authorize page."""

from urllib.parse import urlsplit

from app.connect import flows

from .conftest import CLIENT_ID, REDIRECT_URI
from .security_support import query_of, state_of


def test_connect_redirects_to_the_authorize_url_with_the_documented_parameters(browser, settings):
    response = browser.get("/connect")
    assert response.status_code == 302
    target = urlsplit(response.location)
    assert f"{target.scheme}://{target.netloc}{target.path}" == settings["VCITA_AUTHORIZE_URL"]
    params = query_of(response.location)
    assert params["response_type"] == ["code"]
    assert params["client_id"] == [CLIENT_ID]
    assert params["redirect_uri"] == [REDIRECT_URI]
    assert params["state"] == list(browser.pending_flows())
    assert "scope" not in params
    assert "code_challenge" not in params


def test_scope_is_sent_only_when_configured(make_app, vcita):
    app = make_app(VCITA_SCOPE="openid")
    response = app.test_client().get("/connect")
    assert query_of(response.location)["scope"] == ["openid"]


def test_two_tabs_keep_two_pending_flows(browser):
    first = state_of(browser.get("/connect").location)
    second = state_of(browser.get("/connect").location)
    assert set(browser.pending_flows()) == {first, second}


def test_pending_flows_are_bounded_dropping_the_oldest(browser):
    states = [
        state_of(browser.get("/connect").location) for _ in range(flows.MAX_PENDING_FLOWS + 2)
    ]
    assert set(browser.pending_flows()) == set(states[-flows.MAX_PENDING_FLOWS :])


def test_expired_flows_are_dropped_when_a_new_one_starts(browser, monkeypatch):
    old = state_of(browser.get("/connect").location)
    later = flows.time.time() + flows.FLOW_LIFETIME.total_seconds() + 1
    monkeypatch.setattr(flows.time, "time", lambda: later)
    new = state_of(browser.get("/connect").location)
    assert list(browser.pending_flows()) == [new]
    assert old != new


def test_the_session_holds_the_state_but_the_page_does_not_cache(browser):
    response = browser.get("/connect")
    assert response.headers["Cache-Control"] == "no-store"
