"""gunicorn settings for `make serve`. Workers and threads come from the environment."""

import os

# More would exhaust a machine long before they served more connect flows.
MAX_WORKERS = 64
MAX_THREADS = 64


def whole_number(name: str, default: int, maximum: int) -> int:
    """Return the count `name` sets, or stop gunicorn with a message that names it."""
    value = os.environ.get(name, "").strip() or str(default)
    # ASCII digits only: "²".isdigit() is true, and int() refuses it.
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= maximum):
        raise SystemExit(f"{name} must be a whole number from 1 to {maximum}, not {value!r}")
    return int(value)


bind = os.environ.get("BIND", f"127.0.0.1:{os.environ.get('PORT', '5000')}")
# One worker per core of the 2-core machine it was measured on (docs/load.md).
workers = whole_number("WEB_CONCURRENCY", default=2, maximum=MAX_WORKERS)
# A thread spends most of a connect waiting on vcita (two round trips in /callback), not
# computing: with 4 threads per worker, 20 browsers at once queued for a thread, and at
# 16 they do not (make load --rtt-ms 50: /dashboard p95 153 -> 80 ms, flows/s 34.7 ->
# 37.3). More threads add nothing there; the machine's CPU is then the limit.
threads = whole_number("GUNICORN_THREADS", default=16, maximum=MAX_THREADS)
# A connect flow waits on vcita for up to ~13 s (the token timeout); leave room for it.
timeout = 30
# gunicorn's control socket has one path per user ($HOME/.gunicorn/gunicorn.ctl): two
# instances on one machine would take it from each other, and nothing here uses it.
control_socket_disable = True
accesslog = "-"
# %(U)s is the path without its query string: a callback's query carries a code and state.
# gunicorn decodes it (%0A is a newline): app/logs.py escapes the control characters of
# every line the gunicorn.access logger writes, so no path can start a line of its own.
# The X-Request-Id the app set ties the access line to the app's own log lines.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms [%({x-request-id}o)s]'


def post_worker_init(worker) -> None:
    """Say when a worker has loaded the app: make load measures only from then on."""
    worker.log.info("Worker %s has loaded the app", worker.pid)
