"""ServerThread, waitress on a thread: any WSGI app over real HTTP, with keep-alive."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from sandbox.testing import ServerThread


def hello_app(environ, start_response):
    """A tiny WSGI app: echoes the method, path and body it received."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    reply = f"{environ['REQUEST_METHOD']} {environ['PATH_INFO']} {len(body)}".encode()
    # The client's port names its TCP connection: the tests count connections by it.
    peer = f"{environ['REMOTE_ADDR']}:{environ['REMOTE_PORT']}"
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(reply))), ("X-Peer", peer)],
    )
    return [reply]


def streaming_app(environ, start_response):
    """A WSGI app with no Content-Length: the server must frame it with chunks."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return iter([b"one ", b"two ", b"three"])


def lazy_reader_app(environ, start_response):
    """A WSGI app that ignores the request body; the server must discard it."""
    start_response("204 No Content", [("X-Peer", str(environ["REMOTE_PORT"]))])
    return []


def connections_used(responses) -> int:
    """Return how many TCP connections carried these responses."""
    return len({response.headers["X-Peer"] for response in responses})


@pytest.fixture
def hello_server():
    with ServerThread(hello_app) as server:
        yield server


def test_serves_any_wsgi_app_over_real_http(hello_server):
    assert hello_server.url == f"http://127.0.0.1:{hello_server.port}"
    assert hello_server.port > 0
    with requests.Session() as http:
        response = http.post(f"{hello_server.url}/echo", data=b"12345", timeout=5)
    assert response.status_code == 200
    assert response.text == "POST /echo 5"


def test_each_new_client_connection_is_told_apart_by_its_peer_port(hello_server):
    responses = []
    for _ in range(3):
        # A new Session per request: a new TCP connection each time.
        with requests.Session() as http:
            responses.append(http.get(f"{hello_server.url}/", timeout=5))
    assert connections_used(responses) == 3


def test_keep_alive_reuses_one_connection_for_several_requests(hello_server):
    with requests.Session() as http:
        responses = [http.get(f"{hello_server.url}/{n}", timeout=5) for n in range(5)]
        responses.append(http.post(f"{hello_server.url}/post", data=b"x" * 3000, timeout=5))
        responses.append(http.get(f"{hello_server.url}/after", timeout=5))
    replies = [response.text for response in responses]
    assert replies[:5] == [f"GET /{n} 0" for n in range(5)]
    assert replies[5:] == ["POST /post 3000", "GET /after 0"]
    assert connections_used(responses) == 1


def test_unread_request_body_does_not_corrupt_the_next_request():
    with ServerThread(lazy_reader_app) as server, requests.Session() as http:
        responses = [
            http.post(f"{server.url}/", data=b"ignored " * 500, timeout=5) for _ in range(3)
        ]
        assert [response.status_code for response in responses] == [204, 204, 204]


def test_response_without_length_is_chunked_and_keeps_the_connection():
    with ServerThread(streaming_app) as server, requests.Session() as http:
        first = http.get(f"{server.url}/", timeout=5)
        second = http.get(f"{server.url}/", timeout=5)
        assert first.headers["Transfer-Encoding"] == "chunked"
        assert first.text == second.text == "one two three"
        # The same connection served both: the second answer came on the kept one.
        assert first.raw._connection is None or first.connection is second.connection


def test_http_1_0_and_connection_close_requests_are_closed_after_the_response(hello_server):
    for request_line, extra in [
        ("GET / HTTP/1.0", ""),
        ("GET / HTTP/1.1", "Connection: close\r\n"),
    ]:
        with socket.create_connection(("127.0.0.1", hello_server.port), timeout=5) as sock:
            sock.sendall(f"{request_line}\r\nHost: x\r\n{extra}\r\n".encode())
            received = b""
            while chunk := sock.recv(4096):  # ends because the server closes
                received += chunk
        assert received.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200"))
        assert b"Connection: close" in received or received.startswith(b"HTTP/1.0")
        assert received.endswith(b"GET / 0")


def test_stop_is_prompt_even_with_idle_keep_alive_connections():
    server = ServerThread(hello_app).start()
    url = server.url
    http = requests.Session()
    http.get(f"{url}/", timeout=5)  # leaves an idle keep-alive connection open
    threads_before = threading.active_count()
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1
    assert threading.active_count() < threads_before
    with pytest.raises(requests.ConnectionError):
        http.get(f"{url}/", timeout=1)
    http.close()


def test_stop_frees_the_port_and_is_idempotent():
    server = ServerThread(hello_app).start()
    port = server.port
    server.stop()
    server.stop()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
    with ServerThread(hello_app, port=port) as again, requests.Session() as http:
        assert http.get(f"{again.url}/", timeout=5).status_code == 200


def test_stop_never_wakes_a_loop_that_already_closed_its_trigger():
    """The loop can see the stop on its own timeout while stop() is still waking it."""
    server = ServerThread(hello_app).start()
    waitress_server = server._server
    wake = waitress_server.pull_trigger

    def slow_wake(*args):
        time.sleep(1.5)  # longer than the loop's timeout: it notices the stop on its own
        wake(*args)

    waitress_server.pull_trigger = slow_wake
    server.stop()  # without the lock: OSError, Bad file descriptor


def test_url_before_start_is_an_error():
    server = ServerThread(hello_app)
    with pytest.raises(RuntimeError, match="start"):
        _ = server.url


def test_serves_concurrent_requests(served_sandbox, state):
    state.set_fault("userinfo", delay=0.3)
    results = []

    def call():
        with requests.Session() as http:
            results.append(http.get(f"{served_sandbox.url}/oauth/userinfo", timeout=5).status_code)

    threads = [threading.Thread(target=call) for _ in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [401] * 4
    assert time.monotonic() - started < 1.0  # in parallel, not 4 x 0.3 s
