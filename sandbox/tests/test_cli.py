"""`python -m sandbox`: serve the sandbox on its own, for integrators' clients."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
import requests

from sandbox.__main__ import describe
from sandbox.settings import load_settings
from sandbox.testing import as_a_shell_starts

ROOT = Path(__file__).resolve().parents[2]


def run_cli(
    *args: str, env: dict[str, str] | None = None, in_the_background: bool = False
) -> subprocess.Popen:
    """Start `python -m sandbox` as a shell would, from a terminal or in the background."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    return subprocess.Popen(
        as_a_shell_starts(["-m", "sandbox", *args], in_the_background=in_the_background),
        cwd=ROOT,
        env={**clean, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def interrupt(process: subprocess.Popen) -> None:
    """Press Ctrl+C on it; kill it, and fail, if it does not stop."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError("the sandbox did not stop on SIGINT") from None


def test_help_describes_the_options():
    process = run_cli("--help")
    out, _ = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "--host" in out and "--port" in out and "vcita sandbox" in out


# In the background, a shell leaves SIGINT ignored; the sandbox still stops on it.
@pytest.mark.parametrize("in_the_background", [False, True], ids=["terminal", "background"])
def test_serves_until_interrupted_and_prints_what_it_accepts(in_the_background):
    process = run_cli("--port", "0", "--quiet", in_the_background=in_the_background)
    try:
        first_line = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", first_line).group(0)
        with requests.Session() as http:
            assert http.get(f"{url}/", timeout=5).status_code == 200
    finally:
        interrupt(process)
    out = first_line + process.stdout.read()
    err = process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    assert process.returncode == 0, err
    assert "client_id:     vcita-connect-sandbox" in out
    assert "http://localhost:5000/callback" in out
    assert "sandbox-client-secret (the public demo secret)" in out
    assert out.endswith("Stopping the vcita sandbox.\n")


def test_invalid_settings_stop_it_with_the_variable_named():
    process = run_cli("--port", "0", env={"SANDBOX_CODE_LIFETIME": "never"})
    _, err = process.communicate(timeout=20)
    assert process.returncode == 2
    assert "SANDBOX_CODE_LIFETIME" in err


def test_a_custom_secret_is_never_printed():
    settings = load_settings({}, {"SANDBOX_CLIENT_SECRET": "my-real-secret-123"})
    text = describe("http://127.0.0.1:5001", settings)
    assert "my-real-secret-123" not in text
    assert "not shown" in text


def test_the_access_log_masks_state_and_code_and_cannot_be_forged():
    process = run_cli("--port", "0")
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+", process.stdout.readline()).group(0)
        with requests.Session() as http:
            http.get(f"{url}/app/oauth/authorize?client_id=x&state=LIVE-STATE-1234", timeout=5)
            http.get(f"{url}/oauth/token?code=LIVE-CODE-5678", timeout=5)
            forged = "2026-11-28 17:59:59 sandbox: 127.0.0.1 FORGED"
            http.get(f"{url}/x%0A{forged.replace(' ', '%20')}", timeout=5)
    finally:
        interrupt(process)
    out = process.stdout.read()
    process.stdout.close()
    process.stderr.close()

    access = [line for line in out.splitlines() if line.startswith("sandbox: ")]
    assert len(access) == 3, out
    assert "LIVE-STATE-1234" not in out and "LIVE-CODE-5678" not in out
    assert "state=…" in access[0] and "code=…" in access[1]
    assert "/x\\n2026-11-28" in access[2]
    assert not any(line.startswith("2026-11-28") for line in out.splitlines())
