"""/_sandbox/*: control endpoints, on only when SANDBOX_CONTROL is true."""

from __future__ import annotations

import base64

import pytest

from sandbox import create_sandbox

from .conftest import CLIENT_ID, CLIENT_SECRET, token_body

CONTROL_CALLS = [
    ("POST", "/_sandbox/faults"),
    ("DELETE", "/_sandbox/faults"),
    ("GET", "/_sandbox/requests"),
    ("POST", "/_sandbox/reset"),
    ("POST", "/_sandbox/revoke"),
]


@pytest.mark.parametrize("control", [None, "false", False])
@pytest.mark.parametrize(("method", "path"), CONTROL_CALLS)
def test_control_endpoints_are_404_unless_enabled(sandbox_config, control, method, path):
    sandbox_config["SANDBOX_CONTROL"] = control
    response = create_sandbox(sandbox_config).test_client().open(path, method=method, json={})
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_post_fault_sets_it(browser, state):
    response = browser.post("/_sandbox/faults", json={"endpoint": "userinfo", "status": 503})
    assert response.status_code == 201
    assert response.get_json() == {"fault": {"endpoint": "userinfo", "status": 503}}
    assert browser.get("/oauth/userinfo").status_code == 503


@pytest.mark.parametrize(
    "payload",
    [{"endpoint": "nowhere"}, {"status": 500}, {"endpoint": "token", "delay": "x"}, ["token"]],
)
def test_post_invalid_fault_is_400(browser, state, payload):
    response = browser.post("/_sandbox/faults", json=payload)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    assert browser.get("/oauth/userinfo").status_code == 401  # nothing was set


def test_delete_faults_clears_them(browser, state):
    state.set_fault("userinfo", status=500)
    assert browser.delete("/_sandbox/faults").status_code == 204
    assert browser.get("/oauth/userinfo").status_code == 401


def test_get_requests_lists_both_endpoints_with_the_secret_masked(browser, new_code):
    code = new_code()
    browser.post("/oauth/token", json=token_body(code))
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    browser.post(
        "/oauth/token",
        data=token_body(code, client_id=None, client_secret=None),
        headers={"Authorization": f"Basic {basic}"},
    )
    browser.post(
        "/oauth/token",
        data=f'{{"client_secret": "{CLIENT_SECRET}", "x": 1',  # unparsable JSON
        content_type="application/json",
    )
    browser.post(
        "/oauth/token", data="client_secret=typo-secret&code=1", content_type="text/plain"
    )
    browser.get("/oauth/userinfo")
    response = browser.get("/_sandbox/requests")
    assert response.status_code == 200
    recorded = response.get_json()
    text = response.get_data(as_text=True)
    assert CLIENT_SECRET not in text and basic not in text and "typo-secret" not in text
    json_body, basic_request, broken, plain = recorded["token"]
    assert json_body["body"]["client_secret"] == "********"
    assert json_body["body"]["code"] == code and json_body["status"] == 200
    assert basic_request["headers"]["Authorization"] == "Basic ********"
    assert "client_secret" in broken["body"] and "client_secret=********" in plain["body"]
    assert [r["status"] for r in recorded["userinfo"]] == [401]


def test_post_reset_forgets_everything(browser, new_token, state):
    token = new_token()
    state.set_fault("userinfo", status=500)
    assert browser.post("/_sandbox/reset").status_code == 204
    assert state.token_requests == [] and state.userinfo_requests == []
    assert not state.is_token_active(token)
    assert browser.get("/oauth/userinfo").status_code == 401  # fault gone too


def test_post_revoke_revokes_every_token(browser, new_token):
    tokens = [new_token(), new_token()]
    response = browser.post("/_sandbox/revoke")
    assert response.status_code == 200 and response.get_json() == {"revoked": 2}
    for token in tokens:
        headers = {"Authorization": f"Bearer {token}"}
        assert browser.get("/oauth/userinfo", headers=headers).status_code == 401
