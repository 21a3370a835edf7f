"""/_sandbox/*: control endpoints, on only when SANDBOX_CONTROL is true."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox import create_sandbox

from .conftest import CLIENT_ID, CLIENT_SECRET, STAFF_UID, bearer, token_body

CONTROL_CALLS = [
    ("POST", "/_sandbox/faults"),
    ("DELETE", "/_sandbox/faults"),
    ("GET", "/_sandbox/requests"),
    ("POST", "/_sandbox/reset"),
    ("POST", "/_sandbox/revoke"),
    ("POST", "/_sandbox/clients"),
    ("GET", "/_sandbox/webhooks"),
    ("POST", "/_sandbox/uninstall"),
    ("GET", "/_sandbox/deliveries"),
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
    assert json_body["body"]["code"] == "********" and json_body["status"] == 200
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
    # Two staff members: one connecting again would get the same token back.
    tokens = [new_token(), new_token(STAFF_UID)]
    response = browser.post("/_sandbox/revoke")
    assert response.status_code == 200 and response.get_json() == {"revoked": 2}
    for token in tokens:
        headers = bearer(token)
        assert browser.get("/oauth/userinfo", headers=headers).status_code == 401


@pytest.mark.parametrize(
    ("peer", "host", "answered"),
    [
        ("127.0.0.1", "localhost", True),
        ("127.0.0.1", "127.0.0.1:5001", True),
        ("::1", "[::1]:5001", True),
        ("10.0.0.5", "localhost", False),  # another machine
        ("127.0.0.1", "evil.example", False),  # DNS rebinding: a page's own host name
        ("127.0.0.1", "localhost.evil.example:5001", False),
    ],
)
def test_control_endpoints_answer_only_this_machine(browser, state, peer, host, answered):
    response = browser.post(
        "/_sandbox/revoke", environ_overrides={"REMOTE_ADDR": peer, "HTTP_HOST": host}
    )

    assert (response.status_code == 200) is answered
    if not answered:
        assert response.status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
    ],
)
def test_control_endpoints_refuse_cross_site_requests(browser, new_token, state, headers):
    token = new_token()

    response = browser.post("/_sandbox/revoke", headers=headers)

    assert response.status_code == 403
    assert state.is_token_active(token)  # nothing was done


@pytest.mark.parametrize(
    "content_type", ["application/x-www-form-urlencoded", "multipart/form-data", "text/plain"]
)
def test_control_endpoints_refuse_a_body_a_page_could_post(browser, state, content_type):
    response = browser.post(
        "/_sandbox/faults",
        data='{"endpoint": "userinfo", "status": 503}',
        content_type=content_type,
    )

    assert response.status_code == 415
    assert browser.get("/oauth/userinfo").status_code == 401  # no fault was set


def runs_of(secret: str, length: int = 6) -> set[str]:
    """Return the secret's runs of `length` characters, leaving out runs of digits only.

    A hex token's run of digits can turn up by chance among the digits of a recorded
    time (received_at) or port, as "592898" once did.
    """
    runs = {secret[start : start + length] for start in range(len(secret) - length + 1)}
    return {run for run in runs if not run.isdigit()}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    secret=st.text(alphabet="QXZJKqxzjkVW", min_size=6, max_size=40),  # no word, no digit
    field=st.sampled_from(
        ["client_secret", "client_assertion", "code", "code_verifier", "access_token", "state"]
    ),
)
def test_recorded_requests_show_no_run_of_any_credential(browser, state, new_token, secret, field):
    state.reset()
    token = new_token()
    browser.post("/oauth/token", json={"grant_type": "authorization_code", field: secret})
    browser.post(
        "/oauth/token", data={field: secret}, content_type="application/x-www-form-urlencoded"
    )
    browser.post(
        "/oauth/token", data=f'{{"{field}": "{secret}", ', content_type="application/json"
    )
    browser.get(f"/oauth/userinfo?{field}={secret}", headers=bearer(secret))
    browser.get("/oauth/userinfo", headers=bearer(token))

    text = browser.get("/_sandbox/requests").get_data(as_text=True)

    for credential in (secret, token):
        assert not [run for run in runs_of(credential) if run in text], credential
    assert CLIENT_SECRET not in text


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/_sandbox/uninstall", {"business_uid": "7c6dc1589f078b66"}),
        ("/_sandbox/clients", {"business_uid": "7c6dc1589f078b66", "client": {"id": "x"}}),
    ],
)
@pytest.mark.parametrize(
    ("headers", "host", "content_type", "status"),
    [
        ({"Sec-Fetch-Site": "cross-site"}, "localhost", "application/json", 403),
        ({"Origin": "http://evil.example"}, "localhost", "application/json", 403),
        ({}, "localhost", "text/plain", 415),
        ({}, "evil.example", "application/json", 404),  # DNS rebinding
    ],
)
def test_the_platform_control_endpoints_keep_the_same_rules(
    browser, state, new_token, path, payload, headers, host, content_type, status
):
    token = new_token()

    response = browser.post(
        path,
        data=json.dumps(payload),
        content_type=content_type,
        headers=headers,
        environ_overrides={"HTTP_HOST": host},
    )

    assert response.status_code == status
    assert state.is_token_active(token)  # nothing was uninstalled
    assert state.added_clients("7c6dc1589f078b66") == []  # nor added
