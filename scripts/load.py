"""Load test: many browsers connect at once against `make serve`; print what it took.

    make load                     # 200 flows, all at once
    make load FLOWS=500
    WEB_CONCURRENCY=4 GUNICORN_THREADS=8 make load
    scripts/postgres.sh .venv/bin/python scripts/load.py    # on PostgreSQL

It starts, on 127.0.0.1 only:
- the vcita sandbox in a process of its own, with one demo business per browser. Its
  login and consent pages (vcita's app.vcita.com) and its token and userinfo endpoints
  (api.vcita.biz) listen on two ports, so the connections the app opens to vcita's API
  are counted apart from the browsers';
- `scripts/run.py --gunicorn`, which is what `make serve` runs, with the sandbox as its
  vcita, on a new SQLite database (or the DATABASE_URL in the environment);
- FLOWS simulated browsers at once. Each has its own cookie jars (requests sessions),
  presses Connect, logs in to the sandbox as its own business's staff member, allows
  access, follows the redirect to /callback and opens /dashboard, which must show its
  own business and nobody else's.

Then it prints the flows completed and failed, flows per second, the p50/p95/p99
latency of /callback and /dashboard, the connections the sandbox accepted, and the peak
RSS of each gunicorn worker; and exits 1 if any flow failed or saw another's dashboard.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests
from cryptography.fernet import Fernet
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox import create_sandbox  # noqa: E402 - needs ROOT on sys.path
from sandbox.settings import DEFAULT_BUSINESSES_FILE  # noqa: E402
from sandbox.testing import SandboxPerson, ServerThread  # noqa: E402
from tests.servers import ServerProcess, free_port  # noqa: E402

CLIENT_ID = "vcita-connect-load"
CLIENT_SECRET = secrets.token_hex(16)  # for this run's sandbox only
# More browsers than this share businesses (the sandbox's login page lists them all).
MAX_BUSINESSES = 250
STARTUP_TIMEOUT = 60
# Uids the dashboard may show; any of another browser's is a crossed dashboard.
BUSINESS_UID = re.compile(r"load-business-\d{4}")
STAFF_UID = re.compile(r"load-staff-\d{4}")
# gunicorn.conf.py's access_log_format: '%(h)s "%(m)s %(U)s %(H)s" ...'
ACCESS_LINE = re.compile(r'\S+ "[A-Z]+ /')


class BrowserRetry(Retry):
    """Send a GET again, once, if the connection closed before any answer came back.

    A server may close a kept-alive connection just as the browser reuses it, and
    browsers then retry on a new connection (RFC 9112 §9.3.1); so does this client.
    Each retry is counted, and printed.
    """

    retried: list[str] = []  # noqa: RUF012 - shared by every browser on purpose

    def increment(self, method=None, url=None, *args, error=None, **kwargs):
        retry = super().increment(method, url, *args, error=error, **kwargs)
        # Without the query string: a callback's carries a code and a state.
        BrowserRetry.retried.append(f"{method} {str(url).split('?')[0]}: {error!r}")
        return retry


BROWSER_RETRY = BrowserRetry(
    total=1, connect=1, read=1, status=0, redirect=0, other=0, allowed_methods={"GET"}
)


def new_browser(session: requests.Session) -> requests.Session:
    """Make `session` retry like a browser (see BrowserRetry)."""
    adapter = HTTPAdapter(max_retries=BROWSER_RETRY)
    session.mount("http://", adapter)
    return session


@dataclass
class FlowResult:
    """What one simulated browser went through."""

    failure: str | None = None
    crossed: bool = False
    latencies: dict[str, float] = field(default_factory=dict)


def main() -> int:
    """Start the sandbox and the app, run the flows, print the figures."""
    options = parse_options()
    flows = options.flows
    with tempfile.TemporaryDirectory(prefix="vcita-connect-load-") as workdir:
        workdir = Path(workdir)
        app_port = free_port()
        app_url = f"http://127.0.0.1:{app_port}"
        businesses = write_businesses(workdir / "businesses.json", min(flows, MAX_BUSINESSES))
        sandbox = SandboxProcess(businesses_file=workdir / "businesses.json", app_url=app_url)
        try:
            server = MakeServe(app_port, sandbox, workdir)
            try:
                print(
                    f"make serve: {server.workers} gunicorn workers x {server.threads} threads "
                    f"on {app_url} ({server.database}); sandbox pages on "
                    f"{sandbox.pages_url}, API on {sandbox.api_url}",
                    flush=True,
                )
                print(
                    f"Running {flows} connect flows, {options.concurrency} at once...", flush=True
                )
                started = time.perf_counter()
                with ThreadPoolExecutor(max_workers=options.concurrency) as pool:
                    results = list(
                        pool.map(
                            lambda number: run_flow(
                                app_url,
                                sandbox.pages_url,
                                businesses[number % len(businesses)],
                                options.timeout,
                            ),
                            range(flows),
                        )
                    )
                elapsed = time.perf_counter() - started
                peak_rss = server.peak_rss_per_worker()
            finally:
                server.stop()
        finally:
            connections = sandbox.stop()
        report(results, elapsed, connections, peak_rss)
        failed = [result for result in results if result.failure or result.crossed]
        if failed and server.log_path.exists():
            print("\nThe server's log, but for its access lines:", file=sys.stderr)
            lines = [line for line in server.log().splitlines() if not ACCESS_LINE.match(line)]
            print("\n".join(lines[-40:]), file=sys.stderr)
        return 1 if failed else 0


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=200, help="connect flows to run (200)")
    parser.add_argument(
        "--concurrency", type=int, help="browsers at once (default: all of them at once)"
    )
    parser.add_argument("--timeout", type=float, default=60, help="seconds per HTTP request")
    options = parser.parse_args()
    if options.flows < 1:
        parser.error("--flows must be at least 1")
    options.concurrency = max(1, options.concurrency or options.flows)
    return options


def write_businesses(path: Path, count: int) -> list[dict]:
    """Write a sandbox directory of `count` businesses, one staff member each."""
    theme = json.loads(DEFAULT_BUSINESSES_FILE.read_text())["businesses"][0]["brand_theme"]
    businesses = [
        {
            "business_uid": f"load-business-{number:04d}",
            "business_name": f"Load Test Business {number:04d}",
            "directory_uid": "load-directory",
            "brand_host": f"load-{number:04d}.myclients.example",
            "brand_theme": theme,
            "staff": [
                {
                    "uid": f"load-staff-{number:04d}",
                    "name": f"Staff Member {number:04d}",
                    "email": f"staff-{number:04d}@load.example",
                    "role": "owner",
                }
            ],
        }
        for number in range(count)
    ]
    path.write_text(json.dumps({"businesses": businesses}))
    return businesses


def run_flow(app_url: str, pages_url: str, business: dict, timeout: float) -> FlowResult:
    """Connect one business from a new browser; return how it went."""
    result = FlowResult()
    staff_uid = business["staff"][0]["uid"]
    step = "/connect"
    try:
        with (
            new_browser(requests.Session()) as browser,
            SandboxPerson(pages_url, timeout=timeout) as person,
        ):
            new_browser(person.browser)
            start = browser.get(f"{app_url}/connect", allow_redirects=False, timeout=timeout)
            if start.status_code != 302:
                result.failure = f"/connect answered {start.status_code}"
                return result
            step = "sandbox login and consent"
            callback_url = person.approve(start.headers["Location"], staff=staff_uid)
            step = "/callback"
            callback = timed(result, step, browser, callback_url, timeout)
            if callback.status_code != 303:
                result.failure = f"/callback answered {callback.status_code}"
                return result
            step = "/dashboard"
            dashboard = timed(result, step, browser, f"{app_url}/dashboard", timeout)
            if dashboard.status_code != 200:
                result.failure = f"/dashboard answered {dashboard.status_code}"
                return result
    except Exception as error:  # a load run counts every kind of failure
        result.failure = f"{step}: {type(error).__name__}: {str(error)[:120]}"
        return result
    shown = set(BUSINESS_UID.findall(dashboard.text)) | set(STAFF_UID.findall(dashboard.text))
    result.crossed = shown != {business["business_uid"], staff_uid}
    return result


def timed(result: FlowResult, name: str, browser, url: str, timeout: float):
    started = time.perf_counter()
    response = browser.get(url, allow_redirects=False, timeout=timeout)
    result.latencies[name] = time.perf_counter() - started
    return response


def report(results: list[FlowResult], elapsed: float, connections: dict, peak_rss: dict) -> None:
    completed = [r for r in results if not r.failure]
    failures = Counter(r.failure for r in results if r.failure)
    print()
    print(f"flows completed:        {len(completed)} of {len(results)}")
    print(f"flows failed:           {sum(failures.values())}")
    for reason, count in failures.most_common(5):
        print(f"  {count} x {reason}")
    print(f"crossed dashboards:     {sum(r.crossed for r in results)}")
    print(f"wall time:              {elapsed:.1f} s")
    print(f"flows/s:                {len(completed) / elapsed:.1f}")
    for name in ("/callback", "/dashboard"):
        latencies = [r.latencies[name] for r in results if name in r.latencies]
        print(f"{name + ' latency:':<24}{percentiles(latencies)}")
    print(
        f"connections to vcita's API (sandbox token + userinfo): {connections['api']}"
        f" for {connections['token_requests']} token and "
        f"{connections['userinfo_requests']} userinfo requests"
    )
    print(f"connections to the sandbox's pages (browsers): {connections['pages']}")
    print(
        f"GETs sent again after a kept-alive connection closed: {len(BrowserRetry.retried)}"
        " (browsers do the same)"
    )
    for retried in BrowserRetry.retried[:3]:
        print(f"  {retried[:160]}")
    for pid, kib in peak_rss.items():
        print(f"peak RSS of gunicorn worker {pid}: {kib / 1024:.1f} MiB")


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a" if not values else f"{values[0] * 1000:.0f} ms (one request)"
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return (
        "  ".join(f"p{p} {cuts[p - 1] * 1000:.0f} ms" for p in (50, 95, 99))
        + f"  (max {max(values) * 1000:.0f} ms)"
    )


class SandboxProcess:
    """The vcita sandbox in a process of its own, so it does not share the load's GIL."""

    def __init__(self, businesses_file: Path, app_url: str):
        self._pipe, child_end = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("fork").Process(
            target=serve_sandbox,
            args=(child_end, str(businesses_file), f"{app_url}/callback"),
            daemon=True,
        )
        self.process.start()
        if not self._pipe.poll(STARTUP_TIMEOUT):
            raise RuntimeError("the sandbox did not start")
        self.pages_url, self.api_url = self._pipe.recv()

    def stop(self) -> dict:
        """Stop the sandbox; return the connections and requests it served."""
        self._pipe.send("stop")
        counts = (
            self._pipe.recv()
            if self._pipe.poll(30)
            else dict.fromkeys(("pages", "api", "token_requests", "userinfo_requests"), "?")
        )
        self.process.join(10)
        self._pipe.close()
        return counts


class ConnectionCounter:
    """Count the TCP connections a WSGI app is reached on, by their peer address and port."""

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app
        self.peers: set[tuple[str, str]] = set()

    def __call__(self, environ, start_response):
        self.peers.add((environ["REMOTE_ADDR"], environ["REMOTE_PORT"]))  # waitress sets both
        return self.wsgi_app(environ, start_response)


def serve_sandbox(pipe, businesses_file: str, redirect_uri: str) -> None:
    """Serve the sandbox's pages and its API on two ports until told to stop."""
    sandbox = create_sandbox(
        {
            "SANDBOX_CLIENT_ID": CLIENT_ID,
            "SANDBOX_CLIENT_SECRET": CLIENT_SECRET,
            "SANDBOX_REDIRECT_URIS": redirect_uri,
            "SANDBOX_BUSINESSES_FILE": businesses_file,
        }
    )
    pages_counter, api_counter = ConnectionCounter(sandbox), ConnectionCounter(sandbox)
    with ServerThread(pages_counter) as pages, ServerThread(api_counter) as api:
        pipe.send((pages.url, api.url))
        pipe.recv()
        state = sandbox.extensions["vcita_sandbox"]
        pipe.send(
            {
                "pages": len(pages_counter.peers),
                "api": len(api_counter.peers),
                "token_requests": state.requests_received("token"),
                "userinfo_requests": state.requests_received("userinfo"),
            }
        )


class MakeServe(ServerProcess):
    """`scripts/run.py --gunicorn` (what `make serve` runs), with the sandbox as vcita."""

    def __init__(self, port: int, sandbox: SandboxProcess, workdir: Path):
        self.workers = os.environ.get("WEB_CONCURRENCY", "2")
        self.threads = os.environ.get("GUNICORN_THREADS", "4")
        self.database = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'load.db'}"
        self.url = f"http://127.0.0.1:{port}"
        environ = {
            **os.environ,
            "PORT": str(port),
            "WEB_CONCURRENCY": self.workers,
            "GUNICORN_THREADS": self.threads,
            # Credentials set, so run.py starts no sandbox of its own: ours is vcita.
            "VCITA_SANDBOX": "false",
            # Plain http on 127.0.0.1: production's Secure cookies would never come back.
            "APP_ENV": "development",
            "VCITA_CLIENT_ID": CLIENT_ID,
            "VCITA_CLIENT_SECRET": CLIENT_SECRET,
            "VCITA_REDIRECT_URI": f"{self.url}/callback",
            "VCITA_AUTHORIZE_URL": f"{sandbox.pages_url}/app/oauth/authorize",
            "VCITA_TOKEN_URL": f"{sandbox.api_url}/oauth/token",
            "VCITA_USERINFO_URL": f"{sandbox.api_url}/oauth/userinfo",
            "SECRET_KEY": secrets.token_hex(32),
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "DATABASE_URL": self.database,
        }
        self.database = self.database.split("://")[0].split("+")[0]
        super().__init__(
            [sys.executable, "scripts/run.py", "--gunicorn"],
            environ,
            workdir / "serve.log",
            urls=[self.url],
            startup_timeout=STARTUP_TIMEOUT,
        )
        # Measure only once every worker has booted.
        self.wait_until_serving(ready=lambda: len(self.worker_pids()) == int(self.workers))

    def worker_pids(self) -> list[int]:
        """Return the gunicorn workers: the children of gunicorn's master process."""
        children = child_pids()
        masters = [
            pid for pid in children.get(self.process.pid, []) if "gunicorn" in command_of(pid)
        ]
        return [pid for master in masters for pid in children.get(master, [])]

    def peak_rss_per_worker(self) -> dict[int, int]:
        """Return each worker's peak resident memory (VmHWM), in KiB."""
        peaks = {}
        for pid in self.worker_pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
            if match:
                peaks[pid] = int(match.group(1))
        return peaks


def child_pids() -> dict[int, list[int]]:
    """Return every process's children, read from /proc (parent pid -> child pids)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces; the parent pid follows it.
        parent = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(stat.parent.name))
    return children


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
