"""`make serve`: gunicorn workers serve the whole flow, with the sandbox beside them.

Runs scripts/run.py --gunicorn as `make serve` does, on free ports, with workers and
threads taken from WEB_CONCURRENCY and GUNICORN_THREADS.
"""

import html
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from cryptography.fernet import Fernet

from app.token_use.webhooks import MAX_DELIVERY_BYTES
from sandbox.settings import DEFAULT_BUSINESSES_FILE
from sandbox.testing import SandboxPerson

from .servers import ROOT, ServerProcess, free_port
from .test_log_injection import FORGED, is_one_clean_line, send_raw
from .test_webhooks import sent_in_chunks

WORKERS = 2


class Served(ServerProcess):
    """`scripts/run.py --gunicorn` running in the background, on free ports."""

    def __init__(self, environ: dict[str, str], log_path: Path):
        self.app_port, self.sandbox_port = free_port(), free_port()
        self.app_url = f"http://localhost:{self.app_port}"
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        super().__init__(
            [sys.executable, "scripts/run.py", "--gunicorn"],
            {**environ, "PORT": str(self.app_port), "SANDBOX_PORT": str(self.sandbox_port)},
            log_path,
            urls=[self.app_url, self.sandbox_url],
        )


def serve_environ(database_url: str, **changes: str) -> dict[str, str]:
    """Return the environment `make serve` gets here: on the sandbox, with secrets given."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "VCITA_SANDBOX": "true",
        # Given, so that run.py does not generate and keep secrets in instance/.
        "SECRET_KEY": "serve-test-secret-key-that-is-long-enough-0123456789",
        "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "DATABASE_URL": database_url,
        "WEB_CONCURRENCY": str(WORKERS),
        "GUNICORN_THREADS": "2",
        **changes,
    }


@pytest.fixture
def served(empty_database_url, tmp_path):
    with Served(serve_environ(empty_database_url), tmp_path / "serve.log") as server:
        yield server


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
    forged = FORGED.replace(" ", "%20")
    decoded_by_gunicorn = ["%0A", "%0D", "%E2%80%A8", "%C2%85", "%1B"]
    for line_break in decoded_by_gunicorn:
        assert b" 404 " in send_raw(served.app_port, f"/x{line_break}{forged}")
    # A raw control character: gunicorn refuses the request itself, and says so.
    assert b" 400 " in send_raw(served.app_port, f"/x\x1b[8m{forged}")
    served.stop()

    lines = served.log().splitlines()
    assert not [line for line in lines if line.startswith("2026-11-28 17:59:59,000")]
    access_lines = [line for line in lines if line.startswith('127.0.0.1 "GET /x')]
    assert len(access_lines) == len(decoded_by_gunicorn), "\n".join(lines[-20:])
    assert all(is_one_clean_line(line) for line in access_lines)
    # gunicorn hands the path on as Latin-1 (PEP 3333): U+2028 arrives as â\x80¨.
    assert any('"GET /x\\n2026-11-28' in line for line in access_lines)
    assert any("/xâ\\x80¨2026-11-28" in line for line in access_lines)
    [refused] = [line for line in lines if "Invalid HTTP request line" in line]
    assert is_one_clean_line(refused)


@pytest.mark.parametrize("value", ["²", "0", "four", "65", "-1"])
def test_make_serve_names_a_thread_count_it_cannot_use(value):
    check = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--check-config", "app"],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GUNICORN_THREADS": value},
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert check.returncode == 1
    assert check.stderr.strip() == (
        f"GUNICORN_THREADS must be a whole number from 1 to 64, not {value!r}"
    )


@pytest.mark.parametrize("name", ["WEB_CONCURRENCY", "GUNICORN_THREADS"])
def test_make_serve_names_a_worker_count_before_gunicorn_can_crash_on_it(name, tmp_path):
    served = subprocess.run(
        [sys.executable, "scripts/run.py", "--gunicorn"],
        cwd=ROOT,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}",
            name: "²",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert served.returncode == 1
    assert served.stderr.strip() == f"{name} must be a whole number from 1 to 64, not '²'"
    assert "Traceback" not in served.stderr


@pytest.fixture
def served_with_webhooks(empty_database_url, tmp_path):
    """`make serve` on the sandbox with its control endpoints on, subscribing to webhooks."""
    environ = serve_environ(
        empty_database_url,
        WEB_CONCURRENCY="1",
        # Only the subscription's secret path is used: the test posts it to the app itself.
        PUBLIC_BASE_URL="https://connect.example",
        SANDBOX_CONTROL="true",
    )
    with Served(environ, tmp_path / "serve.log") as server:
        yield server


def eventually(read, timeout: float = 20):
    """Return the first true value `read()` gives, asking again until `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not (value := read()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def test_a_chunked_webhook_delivery_over_the_limit_is_refused_under_gunicorn(
    served_with_webhooks,
):
    served = served_with_webhooks

    def sandbox(path: str) -> dict:
        return requests.get(f"{served.sandbox_url}/_sandbox/{path}", timeout=10).json()

    with requests.Session() as browser, SandboxPerson(served.sandbox_url) as person:
        start = browser.get(f"{served.app_url}/connect", allow_redirects=False)
        callback = browser.get(person.approve(start.headers["Location"]), allow_redirects=False)
    assert callback.status_code == 303
    (subscription,) = eventually(lambda: sandbox("webhooks")["webhooks"])
    delivery_url = served.app_url + urlsplit(subscription["target_url"]).path
    # Acting on a delivery now would forget the connection: vcita confirms any uninstall.
    requests.post(f"{served.sandbox_url}/_sandbox/revoke", json={}, timeout=10)
    asked_before = len(sandbox("requests")["userinfo"])

    too_long = requests.post(delivery_url, data=sent_in_chunks(17 * 1024), timeout=10)
    assert too_long.request.headers["Transfer-Encoding"] == "chunked"
    assert too_long.status_code == 413
    # The connection is still there: its secret is known, and this delivery is taken.
    fits = requests.post(delivery_url, data=sent_in_chunks(15 * 1024), timeout=10)
    assert fits.status_code == 200
    assert eventually(lambda: len(sandbox("requests")["userinfo"]) > asked_before)
    served.stop()

    assert 15 * 1024 < MAX_DELIVERY_BYTES < 17 * 1024
    # What the app acted on, by the request id each answer carried: the one that fits.
    lines = served.log().splitlines()
    taken = [line for line in lines if "asking vcita to confirm" in line]
    assert len(taken) == 1
    assert f"[{fits.headers['X-Request-Id']}] app.token_use.webhooks:" in taken[0]
    refused = [line for line in lines if too_long.headers["X-Request-Id"] in line]
    assert len(refused) == 1
    assert refused[0].startswith('127.0.0.1 "POST /webhooks/vcita/… HTTP/1.1" 413 ')
