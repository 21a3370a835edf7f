"""vcita's distance: with SANDBOX_RTT_MS its API answers as if it were that far away.

On loopback the sandbox answers in a millisecond; vcita's API is tens of milliseconds away,
behind TLS. With SANDBOX_RTT_MS=N each request to the API side (the token and userinfo
endpoints, /platform/v1/...) waits one round trip, N ms, before it is answered, and the
first request on a new TCP connection waits two more: the TCP handshake and TLS 1.3's. A
client that keeps its connections alive pays the handshakes once, one that opens a
connection per call pays them every time, as against vcita. The pages (login, consent,
App Market) and the control endpoints answer at once: they are the browser's, not the app's.

A connection is told apart by waitress's channel, the object that lives as long as the TCP
connection: waitress hands each request a method of it. The client's address and port
would not do: on loopback Linux gives a closed connection's port to the next one at once
(net.ipv4.tcp_tw_reuse), which would then skip its handshakes. Under a server other than
waitress (Flask's test client) each API request waits one round trip.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Flask

# What api.vcita.biz serves; everything else is app.vcita.com's pages or the sandbox's own.
API_PATHS = ("/oauth/token", "/oauth/userinfo", "/platform/")
# A new connection: a TCP handshake, then a TLS 1.3 handshake, one round trip each.
HANDSHAKE_ROUND_TRIPS = 2
# Where a request's environ says how many round trips it waited (the recording keeps it).
ROUND_TRIPS_KEY = "vcita_sandbox.round_trips"
# A request waiting out its round trips holds one of waitress's threads while vcita's
# servers would hold none: enough threads that this many wait side by side, not in a queue.
THREADS_WHEN_DISTANT = 64


def init_app(app: Flask) -> None:
    """Make the app's API answer SANDBOX_RTT_MS late, when it is set."""
    if app.config["SANDBOX_RTT_MS"]:
        round_trip = app.config["SANDBOX_RTT_MS"] / 1000
        app.wsgi_app = RoundTrips(app.wsgi_app, round_trip)  # type: ignore[method-assign]


def server_threads(config: Mapping[str, Any], threads: int) -> int:
    """Return the threads to serve the sandbox with: `threads`, more when it is far away."""
    return max(threads, THREADS_WHEN_DISTANT) if config["SANDBOX_RTT_MS"] else threads


def connection_of(environ: dict[str, Any]) -> object | None:
    """Return the connection a request came on: waitress's channel (None under another server)."""
    return getattr(environ.get("waitress.client_disconnected"), "__self__", None)


class Connections:
    """The connections requests came on, each known by waitress's channel, and their count."""

    def __init__(self) -> None:
        self.count = 0
        # The connections seen; each drops out once closed and forgotten by waitress.
        self._seen: weakref.WeakSet = weakref.WeakSet()
        self._lock = threading.Lock()

    def is_new(self, environ: dict[str, Any]) -> bool | None:
        """Say whether the request is the first on its connection; None under another server."""
        connection = connection_of(environ)
        if connection is None:
            return None
        with self._lock:
            if connection in self._seen:
                return False
            self._seen.add(connection)
            self.count += 1
            return True


class RoundTrips:
    """WSGI middleware: wait one round trip per API request, three on a new connection."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]], round_trip: float) -> None:
        self.wsgi_app = wsgi_app
        self.round_trip = round_trip  # seconds
        self._connections = Connections()

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(API_PATHS):
            environ[ROUND_TRIPS_KEY] = self.round_trips(environ)
            time.sleep(environ[ROUND_TRIPS_KEY] * self.round_trip)
        return self.wsgi_app(environ, start_response)

    def round_trips(self, environ: dict[str, Any]) -> int:
        """Return the round trips a request costs: one, plus the handshakes of a new connection."""
        return 1 + HANDSHAKE_ROUND_TRIPS if self._connections.is_new(environ) else 1
