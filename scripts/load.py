"""Load test: many browsers connect at once against `make serve`; print what it took.

    make load                     # 200 flows, all at once
    make load FLOWS=500
    make load ARGS="--concurrency 20 --rtt-ms 50"    # 20 browsers at once, vcita 50 ms away
    make load ARGS="--flows 200 --concurrency 20 --rtt-ms 50 --compare"    # app vs bare client
    make load ARGS="--concurrency 20 --processes"    # each browser a process of its own
    make load ARGS="--concurrency 20 --rtt-ms 50 --slow-clients-ms 8000"  # clients API 8 s slow
    make load ARGS="--concurrency 20 --compare --profile"    # where each flow's CPU goes
    WEB_CONCURRENCY=4 GUNICORN_THREADS=8 make load
    scripts/postgres.sh .venv/bin/python scripts/load.py    # on PostgreSQL

It starts, on 127.0.0.1 only:
- the vcita sandbox in a process of its own, with one demo business per browser. Its
  login and consent pages (vcita's app.vcita.com) and its API (api.vcita.biz: token,
  userinfo, /platform/v1) listen on two ports, so the connections the app opens to
  vcita's API are counted apart from the browsers'. With --rtt-ms N, vcita's API is N ms away: each
  API request waits one round trip, the first on a new connection two more (TCP and TLS
  handshakes), as sandbox/rtt.py explains; the pages answer at once;
- `scripts/run.py --gunicorn`, which is what `make serve` runs, with the sandbox as its
  vcita, on a new SQLite database (or the DATABASE_URL in the environment);
- FLOWS simulated browsers, all at once or --concurrency at a time, as threads of this
  process or (--processes) each in a process of its own. Each has its own cookie jars
  (requests sessions), presses Connect, logs in to the sandbox as its own
  business's staff member, allows access, follows the redirect to /callback and opens
  /dashboard, which must show its own business and nobody else's.

Then it prints the flows completed and failed, flows per second, the p50/p95/p99 latency
of /callback and /dashboard, of the whole way from pressing Allow to the dashboard's
HTML, of the sandbox's login and consent pages, and of the whole flow from pressing
Connect; the CPU per flow of the workers, the sandbox and the browsers, and the cores the
machine kept busy; the requests and connections the sandbox received, and the peak RSS
of each gunicorn worker; and exits 1 if any flow failed or saw another's dashboard.

With --compare it then runs the same flows, on a new sandbox with the same settings,
against scripts/bare_client.py (a naive client: a new connection to vcita per page, the
token in the session cookie) under the same gunicorn.conf.py, and prints the two side by
side with their ratio, app / bare.

With --slow-clients-ms N the sandbox's clients API answers N ms late (its fault switch),
while its token endpoint and userinfo answer at once. With --profile every thread of each
worker runs under cProfile with its own CPU clock while the flows run, and the workers'
CPU per flow is printed by step (scripts/load_profile.py): cProfile slows each call down,
so read the shares, and measure without it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pstats
import random
import re
import resource
import runpy
import secrets
import signal
import socket
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

from load_profile import print_profile  # noqa: E402 - beside this script

from sandbox import create_sandbox  # noqa: E402 - needs ROOT on sys.path
from sandbox.faults import FAULT_ENDPOINTS, MAX_DELAY  # noqa: E402
from sandbox.rtt import Connections, server_threads  # noqa: E402
from sandbox.settings import DEFAULT_BUSINESSES_FILE, MAX_RTT_MS  # noqa: E402
from sandbox.testing import THREADS, SandboxPerson, ServerThread  # noqa: E402
from tests.servers import ServerProcess  # noqa: E402

PROFILING = ROOT / "scripts" / "profiling"
# With --slow-clients-ms, the sandbox's API threads beyond its usual: the app's reading
# threads (client_reads.READING_THREADS, per worker) each hold a slow answer at a time.
SLOW_CLIENTS_THREADS = 64
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
# ... '%(s)s %(B)s %(M)sms': the milliseconds gunicorn's worker spent on the request.
SERVED_IN = re.compile(r'\S+ "GET (/callback|/dashboard) \S+" \d+ \S+ (\d+)ms')
ALLOW_TO_DASHBOARD = "Allow → dashboard"
# The whole flow, and its part on vcita's pages: with every browser busy, flows/s and
# these say where the cores made the browsers wait (see docs/load.md, "Reading the run").
CONNECT_TO_DASHBOARD = "Connect → dashboard"
VCITA_PAGES = "vcita's pages"
# The app's Recent clients panel while vcita is still listing them (it fetches itself).
CLIENTS_ON_THEIR_WAY = 'data-panel-url="/dashboard/recent-clients?'
# gunicorn.conf.py's post_worker_init: a worker has loaded the app and serves.
WORKER_LOADED = re.compile(r"Worker (\d+) has loaded the app")
# What --compare sets side by side, besides flows/s: (latency, percentile).
COMPARED_LATENCIES = [
    (ALLOW_TO_DASHBOARD, 50),
    (ALLOW_TO_DASHBOARD, 95),
    (ALLOW_TO_DASHBOARD, 99),
    ("/callback", 50),
    ("/dashboard", 50),
    (VCITA_PAGES, 50),
    (CONNECT_TO_DASHBOARD, 50),
]


class BrowserRetry(Retry):
    """Send a GET again, once, if the connection closed before any answer came back.

    A server may close a kept-alive connection just as the browser reuses it, and
    browsers then retry on a new connection (RFC 9112 §9.3.1); so does this client.
    Each retry is counted, and printed.
    """

    def __init__(self, *args, retried: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.retried = [] if retried is None else retried  # the browser's, kept by urllib3

    def new(self, **changes) -> BrowserRetry:
        retry = super().new(**changes)
        retry.retried = self.retried
        return retry

    def increment(self, method=None, url=None, *args, error=None, **kwargs):
        retry = super().increment(method, url, *args, error=error, **kwargs)
        # Without the query string: a callback's carries a code and a state.
        self.retried.append(f"{method} {str(url).split('?')[0]}: {error!r}")
        return retry


def new_browser(session: requests.Session, retried: list[str]) -> requests.Session:
    """Make `session` retry like a browser (see BrowserRetry), noting each retry in `retried`."""
    retry = BrowserRetry(
        total=1,
        connect=1,
        read=1,
        status=0,
        redirect=0,
        other=0,
        allowed_methods={"GET"},
        retried=retried,
    )
    session.mount("http://", HTTPAdapter(max_retries=retry))
    return session


@dataclass
class FlowResult:
    """What one simulated browser went through."""

    failure: str | None = None
    crossed: bool = False
    # The dashboard came before the clients list, and its panel fills itself later.
    clients_late: bool = False
    latencies: dict[str, float] = field(default_factory=dict)
    retried: list[str] = field(default_factory=list)  # GETs sent again (BrowserRetry)


@dataclass
class LoadRun:
    """The flows run against one client app, and what the sandbox saw of them."""

    name: str
    results: list[FlowResult]
    elapsed: float
    sandbox_counts: dict
    peak_rss: dict[int, int]
    retried: list[str]
    # Per path, the seconds the app's workers spent on each request, from the access log:
    # what the browsers waited beyond it was spent queueing, on the machine or in them.
    served: dict[str, list[float]] = field(default_factory=dict)
    # The CPU seconds (user + system) the workers spent while the flows ran, from /proc.
    workers_cpu: float | None = None
    # The same for the sandbox (vcita) and for the simulated browsers, and the cores the
    # whole machine kept busy meanwhile (/proc/stat): when they near all of them, every
    # process waits for a core and flows/s is the cores divided by the CPU per flow.
    sandbox_cpu: float | None = None
    browsers_cpu: float | None = None
    cores_busy: float | None = None
    # With --profile: every worker thread's CPU by function, while the flows ran.
    profile: pstats.Stats | None = None

    @property
    def completed(self) -> list[FlowResult]:
        return [result for result in self.results if not result.failure]

    @property
    def failed(self) -> bool:
        return any(result.failure or result.crossed for result in self.results)

    def flows_per_second(self) -> float:
        return len(self.completed) / self.elapsed

    def latencies(self, name: str) -> list[float]:
        return [result.latencies[name] for result in self.results if name in result.latencies]

    def cpu_per_flow(self, part: str = "workers") -> float | None:
        """Return the CPU seconds `part` (workers, sandbox, browsers) spent per flow."""
        seconds = getattr(self, f"{part}_cpu")
        if seconds is None or not self.completed:
            return None
        return seconds / len(self.completed)


def main() -> int:
    """Start the sandbox and the app (then the bare client), run the flows, print the figures."""
    options = parse_options()
    with tempfile.TemporaryDirectory(prefix="vcita-connect-load-") as workdir:
        workdir = Path(workdir)
        businesses = write_businesses(
            workdir / "businesses.json", min(options.flows, MAX_BUSINESSES)
        )
        runs = []
        for client_app in (MakeServe, BareClient) if options.compare else (MakeServe,):
            run = run_flows(client_app, businesses, workdir, options)
            report(run)
            runs.append(run)
    if options.compare:
        compare(*runs)
    return 1 if any(run.failed for run in runs) else 0


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=200, help="connect flows to run (200)")
    parser.add_argument(
        "--concurrency", type=int, help="browsers at once (default: all of them at once)"
    )
    parser.add_argument(
        "--rtt-ms",
        type=int,
        default=0,
        help="milliseconds between the app and vcita's API: one round trip per request, "
        "two more on a new connection (default 0: the sandbox answers at once)",
    )
    parser.add_argument(
        "--processes",
        action="store_true",
        help="run each browser at once in a process of its own, not a thread (one process "
        "per --concurrency), at a lower priority (nice 10): the browsers then share no "
        "interpreter lock, and take CPU from the servers only when they have it to spare",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="run the same flows against scripts/bare_client.py too; print both side by side",
    )
    parser.add_argument(
        "--slow-clients-ms",
        type=int,
        default=0,
        help="make vcita's clients API this many ms slow (the sandbox's fault switch); the "
        "token endpoint and userinfo still answer at once",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile each worker's CPU (cProfile on every thread, its CPU clock as timer) "
        "while the flows run, and print where one flow's CPU goes, by step; slower: "
        "measure without it",
    )
    parser.add_argument("--timeout", type=float, default=60, help="seconds per HTTP request")
    options = parser.parse_args()
    if options.flows < 1:
        parser.error("--flows must be at least 1")
    if not 0 <= options.rtt_ms <= MAX_RTT_MS:
        parser.error(f"--rtt-ms must be from 0 to {MAX_RTT_MS}")
    if not 0 <= options.slow_clients_ms <= MAX_DELAY * 1000:
        parser.error(f"--slow-clients-ms must be from 0 to {MAX_DELAY * 1000:.0f}")
    options.concurrency = max(1, options.concurrency or options.flows)
    return options


def run_flows(
    client_app: type[GunicornServer], businesses: list[dict], workdir: Path, options
) -> LoadRun:
    """Start a sandbox and `client_app` on it, run the flows, stop both; return the run."""
    app_url = f"http://127.0.0.1:{port_to_serve_on()}"
    sandbox = SandboxProcess(
        businesses_file=workdir / "businesses.json",
        app_url=app_url,
        rtt_ms=options.rtt_ms,
        slow_clients_ms=options.slow_clients_ms,
    )
    profile_dir = workdir / f"profile-{client_app.name}" if options.profile else None
    try:
        server = client_app(app_url, sandbox, workdir, profile_dir)
        try:
            slow = f", its clients API {options.slow_clients_ms} ms slow"
            print(
                f"\n{server.name}: {server.workers} gunicorn workers x {server.threads} threads "
                f"on {app_url} ({server.description}); sandbox pages on {sandbox.pages_url}, "
                f"API on {sandbox.api_url}, {options.rtt_ms} ms away"
                f"{slow if options.slow_clients_ms else ''}",
                flush=True,
            )
            print(
                f"Running {options.flows} connect flows, {options.concurrency} at once...",
                flush=True,
            )
            flows = [
                (app_url, sandbox.pages_url, businesses[number % len(businesses)], options.timeout)
                for number in range(options.flows)
            ]
            server.start_profiles()
            cpu_before = server.workers_cpu_seconds()
            sandbox_cpu_before = cpu_seconds(sandbox.process.pid)
            browsers_cpu_before = browsers_cpu_seconds()
            machine_before = machine_cpu_seconds()
            started = time.perf_counter()
            if options.processes:
                # Each browser a process of its own, as real browsers are: none waits for
                # another's turn at one Python interpreter (its GIL) to read its answers.
                # Real browsers run on their own machines: here they yield the cores to
                # the servers they load (nice 10), which then run about as they would.
                context = multiprocessing.get_context("fork")
                with context.Pool(
                    options.concurrency, initializer=os.nice, initargs=(10,)
                ) as pool:
                    results = pool.starmap(run_flow, flows, chunksize=1)
            else:
                with ThreadPoolExecutor(max_workers=options.concurrency) as pool:
                    results = list(pool.map(lambda flow: run_flow(*flow), flows))
            elapsed = time.perf_counter() - started
            workers_cpu = server.workers_cpu_seconds() - cpu_before
            sandbox_cpu = cpu_seconds(sandbox.process.pid) - sandbox_cpu_before
            browsers_cpu = browsers_cpu_seconds() - browsers_cpu_before
            cores_busy = (machine_cpu_seconds() - machine_before) / elapsed
            peak_rss = server.peak_rss_per_worker()
            profile = server.collect_profiles()
        finally:
            server.stop()
    finally:
        sandbox_counts = sandbox.stop()
    run = LoadRun(
        server.name,
        results,
        elapsed,
        sandbox_counts,
        peak_rss,
        [retried for result in results for retried in result.retried],
        served=served_times(server.log()) if server.log_path.exists() else {},
        workers_cpu=workers_cpu,
        profile=profile,
        sandbox_cpu=sandbox_cpu,
        browsers_cpu=browsers_cpu,
        cores_busy=cores_busy,
    )
    if run.failed and server.log_path.exists():
        print(f"\n{server.name}'s log, but for its access lines:", file=sys.stderr)
        lines = [line for line in server.log().splitlines() if not ACCESS_LINE.match(line)]
        print("\n".join(lines[-40:]), file=sys.stderr)
    return run


def served_times(log: str) -> dict[str, list[float]]:
    """Return, per path, the seconds gunicorn's access lines say each request took."""
    served: dict[str, list[float]] = {}
    for match in SERVED_IN.finditer(log):
        served.setdefault(match[1], []).append(int(match[2]) / 1000)
    return served


def port_to_serve_on() -> int:
    """Return a free port below the ephemeral range, for gunicorn to bind a while later.

    A port from that range (as `tests.servers.free_port` gives) may be handed meanwhile to
    a server binding port 0, such as the sandbox's, and gunicorn then stops: "Connection
    in use". The system hands out no port below it.
    """
    lowest = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(max(1024, lowest - 10_000), lowest), 100):
        try:
            with socket.create_server(("127.0.0.1", port)):
                return port
        except OSError:
            continue  # someone listens on it
    raise RuntimeError("no free port below the ephemeral range")


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
            new_browser(requests.Session(), result.retried) as browser,
            SandboxPerson(pages_url, timeout=timeout) as person,
        ):
            new_browser(person.browser, result.retried)
            pressed_connect = time.perf_counter()
            start = browser.get(f"{app_url}/connect", allow_redirects=False, timeout=timeout)
            if start.status_code != 302:
                result.failure = f"/connect answered {start.status_code}"
                return result
            step = "sandbox login and consent"
            on_vcita = time.perf_counter()
            callback_url = person.approve(start.headers["Location"], staff=staff_uid)
            result.latencies[VCITA_PAGES] = time.perf_counter() - on_vcita
            step = "/callback"
            callback = timed(result, step, browser, callback_url, timeout)
            # The app answers 303 See Other, Flask's redirect() 302: both lead on with a GET.
            if callback.status_code not in (302, 303):
                result.failure = f"/callback answered {callback.status_code}"
                return result
            step = "/dashboard"
            dashboard = timed(result, step, browser, f"{app_url}/dashboard", timeout)
            if dashboard.status_code != 200:
                result.failure = f"/dashboard answered {dashboard.status_code}"
                return result
            # The person pressed Allow; the browser has the dashboard's HTML now.
            shown_at = time.perf_counter()
            result.latencies[ALLOW_TO_DASHBOARD] = shown_at - person.answered_at
            result.latencies[CONNECT_TO_DASHBOARD] = shown_at - pressed_connect
    except Exception as error:  # a load run counts every kind of failure
        result.failure = f"{step}: {type(error).__name__}: {str(error)[:120]}"
        return result
    shown = set(BUSINESS_UID.findall(dashboard.text)) | set(STAFF_UID.findall(dashboard.text))
    result.crossed = shown != {business["business_uid"], staff_uid}
    result.clients_late = CLIENTS_ON_THEIR_WAY in dashboard.text
    return result


def timed(result: FlowResult, name: str, browser, url: str, timeout: float):
    """GET `url` in `browser`; note the seconds it took as the flow's `name` latency."""
    started = time.perf_counter()
    response = browser.get(url, allow_redirects=False, timeout=timeout)
    result.latencies[name] = time.perf_counter() - started
    return response


def report(run: LoadRun) -> None:
    """Print what one run took, and what the sandbox saw of it."""
    failures = Counter(r.failure for r in run.results if r.failure)
    counts = run.sandbox_counts
    print()
    print(f"flows completed:            {len(run.completed)} of {len(run.results)}")
    print(f"flows failed:               {sum(failures.values())}")
    for reason, count in failures.most_common(5):
        print(f"  {count} x {reason}")
    print(f"crossed dashboards:         {sum(r.crossed for r in run.results)}")
    late = sum(r.clients_late for r in run.completed)
    if late:
        print(f"dashboards that came before their clients list (the panel fills itself): {late}")
    print(f"wall time:                  {run.elapsed:.1f} s")
    print(f"flows/s:                    {run.flows_per_second():.1f}")
    for name in ("/callback", "/dashboard", ALLOW_TO_DASHBOARD, VCITA_PAGES, CONNECT_TO_DASHBOARD):
        print(f"{name + ' latency:':<28}{percentiles(run.latencies(name))}")
    for path, seconds in run.served.items():
        print(f"{path + ' in the worker:':<28}{percentiles(seconds)}")
    cpu_per_flow = run.cpu_per_flow()
    if cpu_per_flow is not None:
        print(
            f"{'workers CPU per flow:':<28}{cpu_per_flow * 1000:.1f} ms"
            f" ({run.workers_cpu:.2f} s in all, user + system, from /proc/<pid>/stat)"
        )
    for label, part in (("sandbox", "sandbox"), ("browsers", "browsers")):
        per_flow = run.cpu_per_flow(part)
        if per_flow is not None:
            print(f"{label + ' CPU per flow:':<28}{per_flow * 1000:.1f} ms")
    if run.cores_busy is not None:
        print(
            f"{'cores busy:':<28}{run.cores_busy:.2f} of {os.cpu_count()} (every process"
            " on the machine, from /proc/stat)"
        )
    if run.profile is not None:
        print_profile(run.profile, len(run.completed))
    requests_received = ", ".join(
        f"{count} {endpoint}" for endpoint, count in counts["requests"].items() if count
    )
    print(
        f"requests to vcita's API (sandbox): {requests_received or 'none'}, on"
        f" {counts['api']} connections"
    )
    print(f"connections to the sandbox's pages (browsers): {counts['pages']}")
    print(
        f"GETs sent again after a kept-alive connection closed: {len(run.retried)}"
        " (browsers do the same)"
    )
    for retried in run.retried[:3]:
        print(f"  {retried[:160]}")
    for pid, kib in run.peak_rss.items():
        print(f"peak RSS of gunicorn worker {pid}: {kib / 1024:.1f} MiB")


def compare(app: LoadRun, bare: LoadRun) -> None:
    """Print the app's figures beside the bare client's, with their ratio app / bare."""
    print(f"\n{'':<28}{app.name:>12}{bare.name:>12}{'app / bare':>12}")
    comparison_row("flows/s", app.flows_per_second(), bare.flows_per_second(), "{:.1f}")
    for name, p in COMPARED_LATENCIES:
        comparison_row(
            f"{name} p{p} (ms)",
            *(milliseconds(percentile(run.latencies(name), p)) for run in (app, bare)),
        )
    for path in ("/callback", "/dashboard"):
        comparison_row(
            f"{path} in the worker p50 (ms)",
            *(milliseconds(percentile(run.served.get(path, []), 50)) for run in (app, bare)),
        )
    comparison_row(
        "workers CPU per flow (ms)",
        *(milliseconds(run.cpu_per_flow()) for run in (app, bare)),
        "{:.1f}",
    )
    for part in ("sandbox", "browsers"):
        comparison_row(
            f"{part} CPU per flow (ms)",
            *(milliseconds(run.cpu_per_flow(part)) for run in (app, bare)),
            "{:.1f}",
        )
    comparison_row("cores busy", app.cores_busy, bare.cores_busy, "{:.2f}")
    for label, key in (("requests to vcita's API", "requests"), ("connections to it", "api")):
        comparison_row(label, *(total(run.sandbox_counts[key]) for run in (app, bare)))
    print("app / bare: above 1, the app completes more flows/s; below 1, it waits less.")


def comparison_row(label: str, app_value, bare_value, shape: str = "{:.0f}") -> None:
    cells = ["n/a" if value is None else shape.format(value) for value in (app_value, bare_value)]
    numbers = all(isinstance(value, int | float) for value in (app_value, bare_value))
    cells.append(f"{app_value / bare_value:.2f}" if numbers and bare_value else "n/a")
    print(f"{label:<28}" + "".join(f"{cell:>12}" for cell in cells))


def total(count: int | str | dict) -> int | str:
    """Return a count, or the sum of a dict of counts; "?" when the sandbox did not say."""
    counts = list(count.values()) if isinstance(count, dict) else [count]
    return "?" if "?" in counts else sum(counts)


def milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def percentile(values: list[float], p: int) -> float | None:
    """Return the p-th percentile of `values` (None when there are none)."""
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a" if not values else f"{values[0] * 1000:.0f} ms (one request)"
    return (
        "  ".join(f"p{p} {percentile(values, p) * 1000:.0f} ms" for p in (50, 95, 99))
        + f"  (max {max(values) * 1000:.0f} ms)"
    )


class SandboxProcess:
    """The vcita sandbox in a process of its own, so it does not share the load's GIL."""

    def __init__(
        self, businesses_file: Path, app_url: str, rtt_ms: int = 0, slow_clients_ms: int = 0
    ):
        self._pipe, child_end = multiprocessing.Pipe()
        self.process = multiprocessing.get_context("fork").Process(
            target=serve_sandbox,
            args=(
                child_end,
                str(businesses_file),
                f"{app_url}/callback",
                rtt_ms,
                slow_clients_ms,
            ),
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
            else {"pages": "?", "api": "?", "requests": {"?": "?"}}
        )
        self.process.join(10)
        self._pipe.close()
        return counts


class ConnectionCounter:
    """Count the TCP connections a WSGI app served by waitress is reached on.

    By connection (waitress's channel, as sandbox/rtt.py tells them apart), not by the
    client's port: on loopback Linux hands a closed connection's port to the next one at once.
    """

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app
        self.connections = Connections()

    def __call__(self, environ, start_response):
        self.connections.is_new(environ)
        return self.wsgi_app(environ, start_response)


def serve_sandbox(
    pipe, businesses_file: str, redirect_uri: str, rtt_ms: int, slow_clients_ms: int
) -> None:
    """Serve the sandbox's pages and its API on two ports until told to stop."""
    sandbox = create_sandbox(
        {
            "SANDBOX_CLIENT_ID": CLIENT_ID,
            "SANDBOX_CLIENT_SECRET": CLIENT_SECRET,
            "SANDBOX_REDIRECT_URIS": redirect_uri,
            "SANDBOX_BUSINESSES_FILE": businesses_file,
            "SANDBOX_RTT_MS": rtt_ms,
        }
    )
    pages_counter, api_counter = ConnectionCounter(sandbox), ConnectionCounter(sandbox)
    api_threads = server_threads(sandbox.config, THREADS)
    if slow_clients_ms:
        sandbox.extensions["vcita_sandbox"].set_fault("clients", delay=slow_clients_ms / 1000)
        # Each slow answer holds one of waitress's threads: enough for every clients
        # request the app's reading threads can have out at once, and the rest beside.
        api_threads += SLOW_CLIENTS_THREADS
    with (
        ServerThread(pages_counter) as pages,
        ServerThread(api_counter, threads=api_threads) as api,
    ):
        pipe.send((pages.url, api.url))
        pipe.recv()
        state = sandbox.extensions["vcita_sandbox"]
        pipe.send(
            {
                "pages": pages_counter.connections.count,
                "api": api_counter.connections.count,
                "requests": {
                    endpoint: state.requests_received(endpoint) for endpoint in FAULT_ENDPOINTS
                },
            }
        )


class GunicornServer(ServerProcess):
    """A client app under gunicorn.conf.py's settings, with the sandbox as its vcita."""

    name = ""
    description = "no database"

    def __init__(
        self, url: str, sandbox: SandboxProcess, workdir: Path, profile_dir: Path | None = None
    ):
        # What gunicorn.conf.py makes of the environment: the settings `make serve` ships.
        shipped = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
        self.workers = str(shipped["workers"])
        self.threads = str(shipped["threads"])
        self.url = url
        self.own_settings = self.settings(workdir)
        environ = {
            **os.environ,
            "PORT": url.rsplit(":", 1)[1],
            "WEB_CONCURRENCY": self.workers,
            "GUNICORN_THREADS": self.threads,
            "VCITA_CLIENT_ID": CLIENT_ID,
            "VCITA_CLIENT_SECRET": CLIENT_SECRET,
            "VCITA_REDIRECT_URI": f"{url}/callback",
            "VCITA_AUTHORIZE_URL": f"{sandbox.pages_url}/app/oauth/authorize",
            "VCITA_TOKEN_URL": f"{sandbox.api_url}/oauth/token",
            "VCITA_USERINFO_URL": f"{sandbox.api_url}/oauth/userinfo",
            "VCITA_API_URL": sandbox.api_url,
            "SECRET_KEY": secrets.token_hex(32),
            **self.own_settings,
        }
        self.profile_dir = profile_dir
        if profile_dir is not None:
            profile_dir.mkdir()
            # Python imports scripts/profiling/sitecustomize.py at start-up: it profiles each
            # worker (--profile). Nothing else the servers run needs a PYTHONPATH.
            environ.update(PYTHONPATH=str(PROFILING), LOAD_PROFILE_DIR=str(profile_dir))
        super().__init__(
            self.command(),
            environ,
            workdir / f"{self.name}.log",
            urls=[self.url],
            startup_timeout=STARTUP_TIMEOUT,
        )
        try:
            # Measure only once every worker has loaded the app (gunicorn.conf.py says so):
            # a worker still loading would count its start-up among the flows' CPU.
            self.wait_until_serving(ready=self.every_worker_loaded_the_app)
        except BaseException:
            self.stop()
            raise

    def command(self) -> list[str]:
        raise NotImplementedError

    def settings(self, workdir: Path) -> dict[str, str]:
        """Return the environment this client app needs beyond vcita's URLs and credentials."""
        return {}

    def worker_pids(self) -> list[int]:
        """Return the gunicorn workers: the children of gunicorn's master process."""
        children = child_pids()
        # Ours is gunicorn's master (BareClient), or its parent (run.py, for MakeServe).
        candidates = [self.process.pid, *children.get(self.process.pid, [])]
        masters = [pid for pid in candidates if " -m gunicorn " in command_of(pid)]
        return [pid for master in masters for pid in children.get(master, [])]

    def every_worker_loaded_the_app(self) -> bool:
        """Say whether each worker has said it loaded the app (gunicorn.conf.py)."""
        loaded = set(WORKER_LOADED.findall(self.log()))
        pids = {str(pid) for pid in self.worker_pids()}
        return len(pids) == int(self.workers) and pids <= loaded

    def start_profiles(self) -> None:
        """With --profile, have every worker count its CPU afresh from now on."""
        if self.profile_dir is not None:
            for pid in self.worker_pids():
                os.kill(pid, signal.SIGPROF)

    def collect_profiles(self) -> pstats.Stats | None:
        """With --profile, return the workers' profiles since start_profiles, merged."""
        if self.profile_dir is None:
            return None
        pids = self.worker_pids()
        for pid in pids:
            os.kill(pid, signal.SIGPROF)
        paths = [self.profile_dir / f"{pid}.prof" for pid in pids]
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not all(path.exists() for path in paths) and time.monotonic() < deadline:
            time.sleep(0.1)
        return pstats.Stats(*(str(path) for path in paths))

    def workers_cpu_seconds(self) -> float:
        """Return the CPU seconds (user + system) the workers have spent since they started."""
        return sum(cpu_seconds(pid) for pid in self.worker_pids())

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


class MakeServe(GunicornServer):
    """`scripts/run.py --gunicorn` (what `make serve` runs): the app."""

    name = "app"

    def command(self) -> list[str]:
        return [sys.executable, "scripts/run.py", "--gunicorn"]

    def settings(self, workdir: Path) -> dict[str, str]:
        database = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'load.db'}"
        return {
            # Credentials set, so run.py starts no sandbox of its own: ours is vcita.
            "VCITA_SANDBOX": "false",
            # Plain http on 127.0.0.1: production's Secure cookies would never come back.
            "APP_ENV": "development",
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "DATABASE_URL": database,
        }

    @property
    def description(self) -> str:
        return self.own_settings["DATABASE_URL"].split("://")[0].split("+")[0]


class BareClient(GunicornServer):
    """scripts/bare_client.py under gunicorn, as gunicorn.conf.py sets it up for the app."""

    name = "bare"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "gunicorn.conf.py",
            "scripts.bare_client:app",
        ]


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


def cpu_seconds(pid: int) -> float:
    """Return the CPU seconds a process has spent, user + system, from /proc/<pid>/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # After the command name in parentheses: state is field 3, utime 14 and stime 15.
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def browsers_cpu_seconds() -> float:
    """Return the CPU seconds the simulated browsers have spent: this process's threads,
    and the --processes browsers once their pool has ended (its children, waited for)."""
    spent = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        spent += usage.ru_utime + usage.ru_stime
    return spent


def machine_cpu_seconds() -> float:
    """Return the CPU seconds every core of the machine has spent busy, from /proc/stat."""
    fields = [int(field) for field in Path("/proc/stat").read_text().split()[1:9]]
    # user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    busy = sum(fields) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
