"""Faults a test can inject into the sandbox's API endpoints, to see how a client copes.

The endpoints go by the names in FAULT_ENDPOINTS: the OAuth ones (token, userinfo) and the
platform API ones (clients, the webhooks' subscribe, unsubscribe and list, and revoke).

A fault either **replaces** the answer (`status`, `body` or `json`: the request is recorded
but not processed, as when a proxy in front of vcita answers), or **alters** the real
answer (`json_merge`, `headers`, `content_type`, and `status` together with `json_merge`:
the request is processed, so a code is spent). `delay` waits first, then carries on — a
code can expire meanwhile. `reset` sends the status line, the headers (promising the
whole body) and half the body, then the server drops the connection, as a connection
broken mid-response looks to a client. `times` limits how many requests the fault affects.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from flask import Flask, Response

# The endpoints a fault can apply to, which are also the ones whose requests are recorded.
FAULT_ENDPOINTS = (
    "token",
    "userinfo",
    "clients",
    "subscribe",
    "unsubscribe",
    "webhooks",
    "revoke",
)
# The longest delay worth waiting for: client timeouts are a few seconds.
MAX_DELAY = 120.0


class ConnectionDropped(Exception):
    """Raised by a response body to make the server drop the connection mid-response."""


class _QuietAboutDroppedConnections(logging.Filter):
    """Keep waitress from logging a traceback for a connection the sandbox drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionDropped))


def init_app(app: Flask) -> None:
    """Silence the server's complaint about a fault's dropped connection, once."""
    server_log = logging.getLogger("waitress")
    if not any(isinstance(known, _QuietAboutDroppedConnections) for known in server_log.filters):
        server_log.addFilter(_QuietAboutDroppedConnections())


class Fault:
    """One injected fault for one endpoint, validated."""

    def __init__(self, endpoint: str, **spec: Any) -> None:
        if endpoint not in FAULT_ENDPOINTS:
            raise ValueError(f"endpoint must be one of {', '.join(FAULT_ENDPOINTS)}")
        self.endpoint = endpoint
        self.spec = _validated(spec)
        self.remaining: int | None = spec.get("times")
        # Set when the fault is cleared, so a request sleeping in `delay` wakes up.
        self.cancelled = threading.Event()

    @property
    def replaces_response(self) -> bool:
        """Say whether the request is answered without being processed."""
        spec = self.spec
        return "body" in spec or "json" in spec or ("status" in spec and "json_merge" not in spec)

    def describe(self) -> dict[str, Any]:
        """Return the spec as JSON-friendly data, with the endpoint."""
        return {"endpoint": self.endpoint, **self.spec}

    def wait(self) -> None:
        """Sleep for the fault's delay, or until the fault is cleared."""
        if self.spec.get("delay"):
            self.cancelled.wait(self.spec["delay"])

    def apply(self, answer: Callable[[], Response]) -> Response:
        """Return the faulty response: waited for, replaced or altered, maybe cut short."""
        self.wait()
        response = self._canned_response() if self.replaces_response else self._alter(answer())
        return _cut_short(response) if self.spec.get("reset") else response

    def _canned_response(self) -> Response:
        spec = self.spec
        if "json" in spec:
            data, content_type = json.dumps(spec["json"]), "application/json"
        else:
            data, content_type = spec.get("body", ""), "text/plain; charset=utf-8"
        response = Response(
            data,
            status=spec.get("status", 200),
            content_type=spec.get("content_type", content_type),
        )
        response.headers.update(spec.get("headers", {}))
        return response

    def _alter(self, response: Response) -> Response:
        spec = self.spec
        if "json_merge" in spec:
            body = response.get_json(silent=True)
            if isinstance(body, dict):
                response.set_data(json.dumps({**body, **spec["json_merge"]}))
        if "status" in spec:
            response.status_code = spec["status"]
        if "content_type" in spec:
            response.headers["Content-Type"] = spec["content_type"]
        response.headers.update(spec.get("headers", {}))
        return response


def _cut_short(response: Response) -> Response:
    """Send the headers (promising the full length) and half the body, then drop it."""
    body = response.get_data()

    def half_then_drop() -> Iterator[bytes]:
        yield body[: len(body) // 2]
        raise ConnectionDropped("sandbox fault: connection dropped mid-response")

    return Response(half_then_drop(), status=response.status, headers=list(response.headers))


SPEC_TYPES: dict[str, tuple[type, ...]] = {
    "delay": (int, float),
    "status": (int,),
    "body": (str,),
    "json": (object,),
    "json_merge": (dict,),
    "content_type": (str,),
    "headers": (dict,),
    "reset": (bool,),
    "times": (int,),
}


def _validated(spec: dict[str, Any]) -> dict[str, Any]:
    """Return the spec if every key and value makes sense; raise ValueError otherwise."""
    problems = [f"unknown fault key {key!r}" for key in spec if key not in SPEC_TYPES]
    for key, value in spec.items():
        types = SPEC_TYPES.get(key, (object,))
        # bool is an int in Python; only `reset` takes one.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            problems.append(f"{key} must be {' or '.join(t.__name__ for t in types)}")
    if not problems:
        problems += _range_problems(spec)
    if problems:
        raise ValueError("; ".join(problems))
    return dict(spec)


def _range_problems(spec: dict[str, Any]) -> list[str]:
    problems = []
    if not 0 <= spec.get("delay", 0) <= MAX_DELAY:
        problems.append(f"delay must be between 0 and {MAX_DELAY:g} seconds")
    if not 100 <= spec.get("status", 200) <= 599:
        problems.append("status must be an HTTP status code (100-599)")
    if spec.get("times", 1) < 1:
        problems.append("times must be at least 1")
    if "body" in spec and "json" in spec:
        problems.append("give body or json, not both")
    headers = spec.get("headers", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        problems.append("headers must map text to text")
    for key in ("json", "json_merge"):
        try:
            json.dumps(spec.get(key))
        except (TypeError, ValueError):
            problems.append(f"{key} must be JSON-serializable")
    return problems
