"""Step 2: /connect starts a flow and sends the browser to vcita's authorize page."""

import base64
from urllib.parse import parse_qs, urlsplit

import pytest

from app import session_keys
from app.connect import flows

from .conftest import CLIENT_ID, REDIRECT_URI


def authorize_params(response) -> dict[str, list[str]]:
    return parse_qs(urlsplit(response.location).query, keep_blank_values=True)


def pending_states(client) -> list[str]:
    with client.session_transaction() as session:
        return list(session.get(session_keys.PENDING_FLOWS, {}))


def test_connect_redirects_to_the_authorize_url_with_the_documented_parameters(client, settings):
    response = client.get("/connect")
    assert response.status_code == 302
    target = urlsplit(response.location)
    assert f"{target.scheme}://{target.netloc}{target.path}" == settings["VCITA_AUTHORIZE_URL"]
    params = authorize_params(response)
    assert params["response_type"] == ["code"]
    assert params["client_id"] == [CLIENT_ID]
    assert params["redirect_uri"] == [REDIRECT_URI]
    assert params["state"] == pending_states(client)
    assert "scope" not in params
    assert "code_challenge" not in params


def test_state_carries_at_least_128_random_bits(client):
    states = {authorize_params(client.get("/connect"))["state"][0] for _ in range(3)}
    assert len(states) == 3
    for state in states:
        assert len(base64.urlsafe_b64decode(state + "==")) * 8 >= 128


def test_scope_is_sent_only_when_configured(make_app, vcita):
    app = make_app(VCITA_SCOPE="openid")
    response = app.test_client().get("/connect")
    assert authorize_params(response)["scope"] == ["openid"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example"},
        {"X-Forwarded-Host": "evil.example"},
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example:443"},
    ],
)
def test_redirect_uri_comes_from_config_not_from_the_request(client, headers):
    response = client.get("/connect", headers=headers)
    assert authorize_params(response)["redirect_uri"] == [REDIRECT_URI]
    assert "evil.example" not in response.location


def test_two_tabs_keep_two_pending_flows(client):
    first = authorize_params(client.get("/connect"))["state"][0]
    second = authorize_params(client.get("/connect"))["state"][0]
    assert set(pending_states(client)) == {first, second}


def test_pending_flows_are_bounded_dropping_the_oldest(client):
    states = [
        authorize_params(client.get("/connect"))["state"][0]
        for _ in range(flows.MAX_PENDING_FLOWS + 2)
    ]
    assert set(pending_states(client)) == set(states[-flows.MAX_PENDING_FLOWS :])


def test_expired_flows_are_dropped_when_a_new_one_starts(client, monkeypatch):
    old = authorize_params(client.get("/connect"))["state"][0]
    later = flows.time.time() + flows.FLOW_LIFETIME.total_seconds() + 1
    monkeypatch.setattr(flows.time, "time", lambda: later)
    new = authorize_params(client.get("/connect"))["state"][0]
    assert pending_states(client) == [new]
    assert old != new


def test_the_session_holds_the_state_but_the_page_does_not_cache(client):
    response = client.get("/connect")
    assert response.headers["Cache-Control"] == "no-store"
