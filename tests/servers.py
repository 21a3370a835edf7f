"""Servers the tests start: a free port, the app as `make run` serves it, a server process,
a scripted API that answers each request as a test says, and an app served before it exists.

`scripts/load.py` uses the same ServerProcess to run `make serve`.
"""

import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs

import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return listener.getsockname()[1]


@contextmanager
def development_server(app: Flask) -> Iterator[BaseWSGIServer]:
    """Serve `app` with Werkzeug's development server, as `make run` (flask run) does.

    Unlike the tests' other servers it writes an access log line per request, through
    the "werkzeug" logger: what the log tests read.
    """
    server = make_server("127.0.0.1", 0, app, threaded=True)
    server.url = f"http://127.0.0.1:{server.port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


class ServerProcess:
    """A server command running in the background, its output in a file, until stopped.

    `make run`, `make serve` and bare gunicorn instances are started this way by the
    tests and by `make load`: `wait_until_serving` returns once every URL answers (and
    `ready()` agrees), or raises with the server's output.
    """

    def __init__(
        self,
        command: list[str],
        environ: dict[str, str],
        log_path: Path,
        urls: list[str],
        *,
        cwd: Path = ROOT,
        pass_fds: tuple[int, ...] = (),
        stop_signal: int = signal.SIGTERM,
        startup_timeout: float = 30,
    ) -> None:
        self.urls = urls
        self.log_path = log_path
        self.stop_signal = stop_signal
        self.startup_timeout = startup_timeout
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=cwd,
                env=environ,
                pass_fds=pass_fds,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_until_serving(self, ready: Callable[[], bool] = lambda: True) -> None:
        """Wait until every URL answers and `ready()` holds; raise with the output if not."""
        deadline = time.monotonic() + self.startup_timeout
        waiting_for = list(self.urls)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.process.args} exited:\n{self.log()}")
            try:
                while waiting_for:
                    requests.get(waiting_for[0], timeout=2)
                    waiting_for.pop(0)
                if ready():
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or still loading the app
            time.sleep(0.1)
        raise RuntimeError(f"{self.process.args} did not start:\n{self.log()}")

    def stop(self) -> None:
        """Stop it as a service manager would; kill it if it does not stop in time."""
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        """Return what the server wrote so far."""
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> "ServerProcess":
        try:
            self.wait_until_serving()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class ScriptedApi:
    """A WSGI app answering each request with the next scripted (status, headers, body)."""

    def __init__(self):
        self.script: list[tuple[int, dict, object]] = []
        self.received: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        with self.lock:
            self.received.append(
                {
                    "method": environ["REQUEST_METHOD"],
                    "path": environ["PATH_INFO"],
                    "query": parse_qs(environ.get("QUERY_STRING", "")),
                    "accept": environ.get("HTTP_ACCEPT"),
                    "authorization": environ.get("HTTP_AUTHORIZATION"),
                    "body": environ["wsgi.input"].read(length) if length else b"",
                }
            )
            status, headers, body = self.script.pop(0) if self.script else (200, {}, {})
        if isinstance(body, float):  # a delay, then an empty object
            time.sleep(body)
            body = {}
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        start_response(
            f"{status} X",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(raw))),
                *headers.items(),
            ],
        )
        return [raw]


class DeferredApp:
    """A WSGI app filled in later: served first, because its own URL is one of its settings."""

    def __init__(self) -> None:
        self.app: Callable | None = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)
