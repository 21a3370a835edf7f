"""`make serve`: gunicorn workers serve the whole flow, with the sandbox beside them.

Runs scripts/run.py --gunicorn as `make serve` does, on free ports, with workers and
threads taken from WEB_CONCURRENCY and GUNICORN_THREADS.
"""

import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from sandbox.settings import DEFAULT_BUSINESSES_FILE
from sandbox.testing import SandboxPerson

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 30
WORKERS = 2


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return listener.getsockname()[1]


class Served:
    """`scripts/run.py --gunicorn` running in the background, its output in a file."""

    def __init__(self, environ: dict[str, str], log_path: Path):
        self.app_port, self.sandbox_port = free_port(), free_port()
        self.app_url = f"http://localhost:{self.app_port}"
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "scripts/run.py", "--gunicorn"],
                cwd=ROOT,
                env={
                    **environ,
                    "PORT": str(self.app_port),
                    "SANDBOX_PORT": str(self.sandbox_port),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        waiting_for = [self.app_url, self.sandbox_url]
        while waiting_for and time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"make serve exited:\n{self.log()}")
            try:
                requests.get(waiting_for[0], timeout=2)
                waiting_for.pop(0)
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.1)
        if waiting_for:
            raise AssertionError(f"make serve did not start:\n{self.log()}")

    def stop(self) -> None:
        """Stop it as a service manager would (SIGTERM); it stops its own servers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def served(empty_database_url, tmp_path):
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "VCITA_SANDBOX": "true",
        # Given, so that run.py does not generate and keep secrets in instance/.
        "SECRET_KEY": "serve-test-secret-key-that-is-long-enough-0123456789",
        "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "DATABASE_URL": empty_database_url,
        "WEB_CONCURRENCY": str(WORKERS),
        "GUNICORN_THREADS": "2",
    }
    server = Served(environ, tmp_path / "serve.log")
    try:
        server.wait_until_serving()
        yield server
    finally:
        server.stop()


def test_make_serve_runs_a_connect_flow_under_gunicorn(served):
    business = json.loads(DEFAULT_BUSINESSES_FILE.read_text())["businesses"][0]
    with requests.Session() as browser, SandboxPerson(served.sandbox_url) as person:
        start = browser.get(f"{served.app_url}/connect", allow_redirects=False)
        assert start.status_code == 302
        callback_url = person.approve(start.headers["Location"])
        callback = browser.get(callback_url, allow_redirects=False)
        dashboard = browser.get(f"{served.app_url}/dashboard", allow_redirects=False)
    served.stop()

    assert callback_url.startswith(f"{served.app_url}/callback?")
    assert callback.status_code == 303
    assert dashboard.status_code == 200
    assert html.escape(business["business_name"]) in dashboard.text
    log = served.log()
    assert served.process.returncode == 0
    assert log.count("Booting worker") == WORKERS
    # gunicorn's access log: one line per request, the callback's code and state cut.
    access_lines = [line for line in log.splitlines() if re.match(r'127\.0\.0\.1 "[A-Z]+ ', line)]
    assert any(line.startswith('127.0.0.1 "GET /callback HTTP/1.1" 303 ') for line in access_lines)
    assert not [line for line in access_lines if "code=" in line or "state=" in line]
    # Each access line carries the request id that the app's own lines for it carry.
    callback_id = callback.headers["X-Request-Id"]
    assert any(line.endswith(f"[{callback_id}]") for line in access_lines)
    assert f"[{callback_id}] app: Connected business" in log
    assert "Logging error" not in log


def test_make_serve_access_log_cannot_be_forged(served):
    forged = "2026-11-28 17:59:59,000 INFO [abcdef012345] app: Connected business FORGED"
    targets = [
        f"/x{line_break}{forged.replace(' ', '%20')}" for line_break in ("%0A", "%E2%80%A8")
    ]
    for target in targets:
        with socket.create_connection(("127.0.0.1", served.app_port), timeout=5) as connection:
            connection.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
            assert b" 404 " in connection.recv(65536).split(b"\r\n")[0] + b" "
    served.stop()

    lines = served.log().splitlines()
    assert not [line for line in lines if line.startswith("2026-11-28 17:59:59,000")]
    # gunicorn hands the path on as Latin-1 (PEP 3333): U+2028 arrives as â\x80¨.
    escaped = [line for line in lines if '"GET /x\\n2026-11-28' in line or "/xâ\\x80¨" in line]
    assert len(escaped) == 2, "\n".join(lines[-20:])
