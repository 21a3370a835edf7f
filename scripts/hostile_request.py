"""What one hostile request costs the server: the CPU time its process spends on it.

    make hostile-request
    .venv/bin/python scripts/hostile_request.py --no-development-server

Starts `scripts/run.py --gunicorn` (what `make serve` runs) with one worker, on free ports,
a new SQLite database in a temporary folder and the sandbox as vcita, so it never touches
a running `make run` or its instance/ folder. It sends a plain `GET /`, then `GET /` with
4 and with 10 headers of `"? " * 4000` (gunicorn hands every header to the access log as
an atom), and prints the CPU time (user + system, from /proc/<pid>/stat) the worker spent
per request, and how long a plain `GET /` sent meanwhile waited. Then the same for
`make run`'s development server and a 20 KB request line it refuses (Werkzeug logs the
line as it came).

Each figure is the worker's own CPU time over as many requests as make it at least half
a second (three at least), divided by their number.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.load import child_pids, command_of, cpu_seconds, port_to_serve_on  # noqa: E402
from tests.servers import ServerProcess  # noqa: E402

HOSTILE_VALUE = "? " * 4000  # under gunicorn's limit of 8190 bytes a header line
MALFORMED_LINE = "GET /" + "? " * 10_000  # 20 KB; its last word is no HTTP version
ENOUGH_CPU = 0.5  # seconds of the server's CPU per figure
FEWEST_REQUESTS = 3
MOST_REQUESTS = 300


def main() -> int:
    """Measure `make serve`, then `make run`; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--no-development-server", action="store_true", help="measure `make serve` only"
    )
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hostile-request-") as workdir:
        with Served(Path(workdir), gunicorn=True) as served:
            measure_gunicorn(served)
        if not options.no_development_server:
            with Served(Path(workdir), gunicorn=False) as served:
                measure_development_server(served)
    return 0


class Served(ServerProcess):
    """`scripts/run.py` (`make run`) or `scripts/run.py --gunicorn` (`make serve`)."""

    def __init__(self, workdir: Path, gunicorn: bool):
        self.gunicorn = gunicorn
        self.port, sandbox_port = port_to_serve_on(), port_to_serve_on()
        name = "serve" if gunicorn else "run"
        environ = {
            **os.environ,
            "APP_ENV": "development",  # plain http on 127.0.0.1, the sandbox as vcita
            "VCITA_SANDBOX": "true",
            "PORT": str(self.port),
            "SANDBOX_PORT": str(sandbox_port),
            # Given, so that run.py neither makes nor keeps secrets in instance/.
            "SECRET_KEY": os.urandom(32).hex(),
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "DATABASE_URL": f"sqlite:///{workdir / f'{name}.db'}",
            "WEB_CONCURRENCY": "1",  # one worker: its CPU time is the server's
        }
        command = [sys.executable, "scripts/run.py", *(["--gunicorn"] if gunicorn else [])]
        urls = [f"http://127.0.0.1:{self.port}/", f"http://127.0.0.1:{sandbox_port}/"]
        super().__init__(command, environ, workdir / f"{name}.log", urls, startup_timeout=60)

    def __enter__(self) -> Served:
        try:
            self.wait_until_serving(ready=lambda: self.server_pid() is not None)
        except BaseException:
            self.stop()
            raise
        return self

    def server_pid(self) -> int | None:
        """Return the process that serves requests: gunicorn's worker, or `flask run`."""
        children = child_pids()
        for child in children.get(self.process.pid, []):
            command = command_of(child)
            if self.gunicorn and " -m gunicorn " in command:
                workers = children.get(child, [])
                return workers[0] if workers else None
            if not self.gunicorn and " -m flask " in command and " run " in command:
                return child
        return None


def send(port: int, request: str) -> str:
    """Send one raw HTTP request, closing the connection; return the status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as connection:
        connection.sendall(request.encode("latin-1"))
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer.split(b"\r\n", 1)[0].decode("latin-1")


def get(headers: dict[str, str] | None = None) -> str:
    """Return a GET / with `headers`, as a browser would send it."""
    lines = ["GET / HTTP/1.1", "Host: localhost", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return "\r\n".join(lines) + "\r\n\r\n"


def hostile_get(header_count: int) -> str:
    return get({f"X-Hostile-{number}": HOSTILE_VALUE for number in range(header_count)})


def cpu_per_request(served: Served, request: str, expected_status: str) -> tuple[float, int]:
    """Return the server's CPU seconds per request for `request`, and how many were sent."""
    pid = served.server_pid()
    started = cpu_seconds(pid)
    sent = 0
    while sent < FEWEST_REQUESTS or (
        cpu_seconds(pid) - started < ENOUGH_CPU and sent < MOST_REQUESTS
    ):
        status = send(served.port, request)
        if expected_status not in status:
            raise RuntimeError(f"expected {expected_status}, got {status!r}:\n{served.log()}")
        sent += 1
    return (cpu_seconds(pid) - started) / sent, sent


def longest_wait_meanwhile(served: Served, hostile: Callable[[], object]) -> float:
    """Return the longest a plain GET / waited while `hostile` ran, in seconds."""
    done = threading.Event()
    waits = []

    def plain_gets() -> None:
        while not done.is_set():
            started = time.perf_counter()
            send(served.port, get())
            waits.append(time.perf_counter() - started)

    neighbour = threading.Thread(target=plain_gets)
    neighbour.start()
    try:
        hostile()
    finally:
        done.set()
        neighbour.join()
    return max(waits)


def measure_gunicorn(served: Served) -> None:
    print("make serve (gunicorn, 1 worker, its threads as shipped): worker CPU per request")
    plain, count = cpu_per_request(served, get(), " 200 ")
    print(f"  GET /                                   {plain * 1000:8.1f} ms  ({count} sent)")
    for header_count in (4, 10):
        request = hostile_get(header_count)
        hostile, count = cpu_per_request(served, request, " 200 ")
        label = f"GET / with {header_count} headers of '? ' * 4000"
        print(f"  {label:39} {hostile * 1000:8.1f} ms  ({count} sent)")
    waited = longest_wait_meanwhile(
        served, lambda: [send(served.port, hostile_get(10)) for _ in range(3)]
    )
    print(f"  a plain GET / meanwhile waited up to    {waited * 1000:8.1f} ms")


def measure_development_server(served: Served) -> None:
    print("make run (Flask's development server): server CPU per request")
    plain, count = cpu_per_request(served, get(), " 200 ")
    print(f"  GET /                                   {plain * 1000:8.1f} ms  ({count} sent)")
    request = f"{MALFORMED_LINE}\r\nHost: localhost\r\n\r\n"
    malformed, count = cpu_per_request(served, request, " 400 ")
    label = f"a {len(MALFORMED_LINE) // 1000} KB malformed request line"
    print(f"  {label:39} {malformed * 1000:8.1f} ms  ({count} sent)")


if __name__ == "__main__":
    sys.exit(main())
