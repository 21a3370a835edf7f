"""SANDBOX_RTT_MS: vcita's API answers a round trip late, three on a new connection; pages at once.

Timings here are lower bounds, each far from what the machine's load could fake; the
upper bounds are generous, and each one sits where the rule under test would put the time
(a round trip, or the handshakes) if it were broken.
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from sandbox import SandboxConfigError, create_sandbox
from sandbox.rtt import THREADS_WHEN_DISTANT, server_threads
from sandbox.testing import THREADS, SandboxPerson, ServerThread

from .conftest import authorize_url

RTT = 0.05  # seconds: the SANDBOX_RTT_MS="50" of these tests
NEW_CONNECTION = 3 * RTT  # a round trip, then the TCP and TLS handshakes


def timed_get(http: requests.Session, url: str) -> float:
    """GET `url` on `http`'s connection; return the seconds until the answer arrived."""
    started = time.perf_counter()
    http.get(url, timeout=30)
    return time.perf_counter() - started


def first_request_seconds(url: str) -> float:
    """GET `url` on a new connection; return the seconds until the answer arrived."""
    with requests.Session() as http:
        return timed_get(http, url)


def seconds_from_port(local_port: int, server: ServerThread, path: str) -> float:
    """GET `path` on a new connection from `local_port`, which the server closes first."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", local_port))
        started = time.perf_counter()
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        # Read until the server closes: then the port is free again at once, on this side.
        while sock.recv(65536):
            pass
        return time.perf_counter() - started


def test_rtt_is_off_by_default():
    assert create_sandbox().config["SANDBOX_RTT_MS"] == 0


@pytest.mark.parametrize(
    ("value", "milliseconds"), [("50", 50), (" 120 ", 120), (80, 80), ("", 0)]
)
def test_rtt_is_a_whole_number_of_milliseconds(value, milliseconds):
    assert create_sandbox({"SANDBOX_RTT_MS": value}).config["SANDBOX_RTT_MS"] == milliseconds


@pytest.mark.parametrize("value", ["fast", "-5", "12.5", "²", "10001", True])
def test_a_bad_rtt_is_named_in_the_settings_error(value):
    with pytest.raises(SandboxConfigError) as error:
        create_sandbox({"SANDBOX_RTT_MS": value})
    assert len(error.value.problems) == 1
    assert error.value.problems[0].startswith("SANDBOX_RTT_MS must be a whole number")


@pytest.mark.sandbox_settings(SANDBOX_RTT_MS="50")
def test_a_new_connection_waits_for_its_handshakes_then_one_round_trip_per_request(
    served_sandbox, state
):
    url = f"{served_sandbox.url}/oauth/userinfo"
    with requests.Session() as http:
        first = timed_get(http, url)
        second = timed_get(http, url)
        third = timed_get(http, url)
    recorded = state.recorded_requests("userinfo")
    # The same kept-alive connection: one round trip, no handshakes, after the first.
    assert len({record["peer"] for record in recorded}) == 1
    assert [record["round_trips"] for record in recorded] == [3, 1, 1]
    assert first >= NEW_CONNECTION
    assert second >= RTT and third >= RTT


@pytest.mark.sandbox_settings(SANDBOX_RTT_MS="50")
def test_every_new_connection_pays_the_handshakes(served_sandbox, state):
    url = f"{served_sandbox.url}/oauth/userinfo"
    seconds = [first_request_seconds(url) for _ in range(3)]
    assert len({record["peer"] for record in state.recorded_requests("userinfo")}) == 3
    assert min(seconds) >= NEW_CONNECTION


@pytest.mark.sandbox_settings(SANDBOX_RTT_MS="50")
def test_a_new_connection_on_a_closed_ones_port_pays_the_handshakes_too(served_sandbox, state):
    # On loopback Linux hands a closed connection's port to the next one (tcp_tw_reuse).
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]  # a port free right now
    seconds = [seconds_from_port(port, served_sandbox, "/oauth/userinfo") for _ in range(3)]
    assert {record["peer"] for record in state.recorded_requests("userinfo")} == {
        f"127.0.0.1:{port}"
    }
    assert min(seconds) >= NEW_CONNECTION


@pytest.mark.sandbox_settings(SANDBOX_RTT_MS="50")
def test_without_waitress_each_api_request_waits_one_round_trip(browser):
    # Flask's test client has no connections to tell apart.
    started = time.perf_counter()
    response = browser.get("/oauth/userinfo")
    assert response.status_code == 401
    assert time.perf_counter() - started >= RTT


@pytest.mark.sandbox_settings(SANDBOX_RTT_MS="50")
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/oauth/token"),
        ("GET", "/oauth/userinfo"),
        ("GET", "/platform/v1/clients"),
        ("POST", "/platform/v1/webhook/subscribe"),
        ("GET", "/platform/v1/webhooks"),
    ],
)
def test_every_api_endpoint_is_a_round_trip_away(served_sandbox, method, path):
    with requests.Session() as http:
        started = time.perf_counter()
        response = http.request(method, f"{served_sandbox.url}{path}", timeout=30)
        seconds = time.perf_counter() - started
    assert response.status_code in (400, 401)  # no credentials: refused, but only once there
    assert seconds >= NEW_CONNECTION


# Two seconds a request if the pages were far away: far beyond a page's time on loopback.
@pytest.mark.sandbox_settings(SANDBOX_RTT_MS="2000")
def test_the_login_and_consent_pages_answer_at_once(served_sandbox):
    with SandboxPerson(served_sandbox.url) as person:
        started = time.perf_counter()
        callback_url = person.approve(served_sandbox.url + authorize_url())
        seconds = time.perf_counter() - started
    assert callback_url.startswith("http://localhost:5000/callback?code=")
    assert seconds < 2.0  # the authorize page, login, Allow: none of them delayed


@pytest.mark.parametrize("rtt_ms", [None, "0"])
def test_zero_means_vcita_on_this_machine(sandbox_config, rtt_ms):
    sandbox = create_sandbox({**sandbox_config, "SANDBOX_RTT_MS": rtt_ms})
    with ServerThread(sandbox) as server:
        first_request_seconds(f"{server.url}/oauth/userinfo")
    [recorded] = sandbox.extensions["vcita_sandbox"].recorded_requests("userinfo")
    assert recorded["round_trips"] == 0  # not waited: no distance to wait out


def test_the_sandbox_is_served_with_more_threads_when_far_away():
    assert server_threads(create_sandbox().config, THREADS) == THREADS
    distant = create_sandbox({"SANDBOX_RTT_MS": "50"}).config
    assert server_threads(distant, THREADS) == THREADS_WHEN_DISTANT > THREADS


def test_requests_waiting_out_their_round_trips_wait_side_by_side(sandbox_config):
    # 24 clients at once, each on a new connection: 0.9 s each side by side, at least
    # 1.8 s if they queued for THREADS (16) threads.
    sandbox = create_sandbox({**sandbox_config, "SANDBOX_RTT_MS": "300"})
    clients = 24
    with ServerThread(sandbox, threads=server_threads(sandbox.config, THREADS)) as server:
        urls = [f"{server.url}/oauth/userinfo"] * clients
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(first_request_seconds, urls))
        seconds = time.perf_counter() - started
    assert 0.9 <= seconds < 1.8
