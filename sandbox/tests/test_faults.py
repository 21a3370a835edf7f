"""Fault injection: how the token and userinfo endpoints misbehave when a test asks them to."""

from __future__ import annotations

import contextlib
import json
import socket
import time

import pytest
import requests

from sandbox.faults import Fault

from .conftest import OWNER_UID, bearer, token_body


@pytest.mark.parametrize("endpoint", ["token", "userinfo"])
@pytest.mark.parametrize(
    ("spec", "status", "content_type", "body"),
    [
        ({"status": 503}, 503, "text/plain; charset=utf-8", b""),
        (
            {"status": 502, "body": "<html>Bad gateway</html>", "content_type": "text/html"},
            502,
            "text/html",
            b"<html>Bad gateway</html>",
        ),
        ({"json": {"unexpected": True}}, 200, "application/json", b'{"unexpected": true}'),
        ({"json": None, "status": 500}, 500, "application/json", b"null"),
        (
            {"body": "not json", "content_type": "application/json"},
            200,
            "application/json",
            b"not json",
        ),
    ],
)
def test_fault_replaces_answer_without_processing(
    browser, new_code, new_token, state, endpoint, spec, status, content_type, body
):
    code, token = new_code(), new_token()
    state.set_fault(endpoint, **spec)
    if endpoint == "token":
        response = browser.post("/oauth/token", json=token_body(code))
    else:
        response = browser.get("/oauth/userinfo", headers=bearer(token))
    assert (response.status_code, response.content_type, response.data) == (
        status,
        content_type,
        body,
    )
    recorded = state.recorded_requests(endpoint)[-1]
    assert recorded["status"] == status
    assert recorded["fault"] == {"endpoint": endpoint, **spec}
    if endpoint == "token":
        state.clear_faults()
        # The code was not spent: the request never reached the code check.
        assert browser.post("/oauth/token", json=token_body(code)).status_code == 200


def test_json_merge_alters_the_real_userinfo(browser, new_token, state):
    token = new_token()
    state.set_fault("userinfo", json_merge={"business_name": "<b>x</b>", "role": 7, "email": None})
    body = browser.get("/oauth/userinfo", headers=bearer(token)).get_json()
    assert (body["business_name"], body["role"], body["email"]) == ("<b>x</b>", 7, None)
    assert body["sub"] == OWNER_UID


def test_json_merge_with_status_processes_the_request(browser, new_code, state):
    code = new_code()
    state.set_fault("token", json_merge={"token_type": "mac"}, status=201)
    response = browser.post("/oauth/token", json=token_body(code))
    assert response.status_code == 201
    assert response.get_json()["token_type"] == "mac"
    assert state.is_token_active(response.get_json()["access_token"])


def test_headers_and_content_type_alter_the_real_answer(browser, new_code, state):
    state.set_fault("token", headers={"X-Request-Id": "abc"}, content_type="text/html")
    response = browser.post("/oauth/token", json=token_body(new_code()))
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == "abc"
    assert response.content_type == "text/html"
    assert "access_token" in json.loads(response.data)


def test_fault_applies_times_then_stops(browser, state):
    state.set_fault("userinfo", status=503, times=2)
    statuses = [browser.get("/oauth/userinfo").status_code for _ in range(3)]
    assert statuses == [503, 503, 401]
    assert [r["status"] for r in state.userinfo_requests] == [503, 503, 401]


def test_fault_without_times_lasts_until_cleared(browser, state):
    state.set_fault("userinfo", status=500)
    assert [browser.get("/oauth/userinfo").status_code for _ in range(3)] == [500] * 3
    state.clear_faults()
    assert browser.get("/oauth/userinfo").status_code == 401


def test_fault_on_one_endpoint_leaves_the_other_alone(browser, new_token, state):
    token = new_token()
    state.set_fault("token", status=500)
    assert browser.get("/oauth/userinfo", headers=bearer(token)).status_code == 200


def test_delay_alone_then_processes_normally(browser, new_code, state):
    code = new_code()
    state.set_fault("token", delay=0.15)
    started = time.monotonic()
    response = browser.post("/oauth/token", json=token_body(code))
    assert time.monotonic() - started >= 0.15
    assert response.status_code == 200


@pytest.mark.sandbox_settings(SANDBOX_CODE_LIFETIME="0.1")
def test_code_can_expire_during_a_delay(browser, new_code, state):
    code = new_code()
    state.set_fault("token", delay=0.2)
    response = browser.post("/oauth/token", json=token_body(code))
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"
    assert state.token_requests[-1]["body"]["code"] == code


@pytest.mark.parametrize(
    ("endpoint", "spec", "says"),
    [
        ("tokens", {}, "endpoint must be one of"),
        ("token", {"colour": "red"}, "unknown fault key 'colour'"),
        ("token", {"status": "500"}, "status must be int"),
        ("token", {"status": True}, "status must be int"),
        ("token", {"status": 42}, "HTTP status code"),
        ("token", {"delay": -1}, "delay must be between"),
        ("token", {"delay": "1"}, "delay must be int or float"),
        ("token", {"times": 0}, "times must be at least 1"),
        ("token", {"body": "x", "json": {}}, "not both"),
        ("token", {"reset": "yes"}, "reset must be bool"),
        ("token", {"headers": {"X": 1}}, "headers must map text to text"),
        ("token", {"json": {1, 2}}, "json must be JSON-serializable"),
        ("userinfo", {"json_merge": ["a"]}, "json_merge must be dict"),
    ],
)
def test_invalid_fault_is_refused(state, endpoint, spec, says):
    with pytest.raises(ValueError, match=says):
        state.set_fault(endpoint, **spec)


def test_fault_spec_is_described_for_the_recording():
    fault = Fault("token", status=503, times=1)
    assert fault.describe() == {"endpoint": "token", "status": 503, "times": 1}
    assert fault.replaces_response


# --- Over real HTTP --------------------------------------------------------------------


def test_reset_drops_connection_mid_response_over_http(served_sandbox, new_code, state):
    code = new_code()
    state.set_fault("token", reset=True, times=1)
    with (
        requests.Session() as http,
        pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)),
    ):
        http.post(f"{served_sandbox.url}/oauth/token", json=token_body(code), timeout=5)
    recorded = state.token_requests[-1]
    assert recorded["status"] == 200 and recorded["fault"]["reset"] is True
    # The exchange happened before the connection dropped: the code is spent.
    with requests.Session() as http:
        again = http.post(f"{served_sandbox.url}/oauth/token", json=token_body(code), timeout=5)
    assert again.json()["error"] == "invalid_grant"


def test_reset_sends_status_headers_and_part_of_body_then_drops_the_connection(
    served_sandbox, state
):
    state.set_fault("userinfo", reset=True)
    request = f"GET /oauth/userinfo HTTP/1.1\r\nHost: {served_sandbox.url[7:]}\r\n\r\n"
    received = b""
    with socket.create_connection(("127.0.0.1", served_sandbox.port), timeout=5) as sock:
        sock.sendall(request.encode())
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):  # ends: the server drops the connection
                received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 ")
    length = int(
        next(line for line in head.split(b"\r\n") if line.startswith(b"Content-Length")).split(
            b":"
        )[1]
    )
    assert 0 < len(body) < length


def test_server_keeps_serving_after_a_reset(served_sandbox, state):
    state.set_fault("userinfo", reset=True, times=1)
    with requests.Session() as http:
        with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
            http.get(f"{served_sandbox.url}/oauth/userinfo", timeout=5)
        assert http.get(f"{served_sandbox.url}/oauth/userinfo", timeout=5).status_code == 401


@pytest.mark.parametrize("times", [None, 1])
def test_client_timeout_during_delay_is_still_recorded(served_sandbox, new_code, state, times):
    code = new_code()
    state.set_fault("token", delay=30, **({"times": times} if times else {}))
    with requests.Session() as http, pytest.raises(requests.Timeout):
        http.post(f"{served_sandbox.url}/oauth/token", json=token_body(code), timeout=0.2)
    assert state.token_requests[-1]["body"]["code"] == code
    assert state.token_requests[-1]["status"] is None  # still waiting
    state.clear_faults()  # wakes the waiting request, even a fault already used up
    deadline = time.monotonic() + 2
    while state.token_requests[-1]["status"] is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert state.token_requests[-1]["status"] == 200
