"""What the token and userinfo endpoints share: each request is recorded, then any fault applied.

Recording happens as the request arrives, before any delay, so a test whose client gave
up waiting can still see what the provider received.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, request

from .rtt import ROUND_TRIPS_KEY
from .state import SandboxState

MAX_RECORDED_BODY = 4096  # bytes of a body kept in the recording


def sandbox_state() -> SandboxState:
    """Return the running sandbox's state."""
    return current_app.extensions["vcita_sandbox"]


def serve_observed(endpoint: str, answer: Callable[[], Response]) -> Response:
    """Record the request, answer it (through a fault, if one is set) and note the status."""
    state = sandbox_state()
    fault = state.take_fault(endpoint)
    record = describe_request()
    record["fault"] = fault.describe() if fault else None
    state.record_request(endpoint, record)
    response = fault.apply(answer) if fault else answer()
    state.note_status(record, response.status_code)
    return response


def describe_request() -> dict[str, Any]:
    """Return the current request as plain data: method, path, headers, parsed body."""
    return {
        "method": request.method,
        # The client's address and port name its TCP connection: a test can count how
        # many connections a client opened from the requests alone.
        "peer": f"{request.remote_addr}:{request.environ.get('REMOTE_PORT', '?')}",
        "path": request.path,
        "query_string": request.query_string.decode("latin-1"),
        "headers": dict(request.headers),
        "content_type": request.headers.get("Content-Type"),
        "body": parsed_body(),
        "status": None,
        "received_at": time.time(),
        # The round trips it waited out before reaching the endpoint (SANDBOX_RTT_MS).
        "round_trips": request.environ.get(ROUND_TRIPS_KEY, 0),
    }


def parsed_body() -> Any:
    """Return the body as a JSON value, a form dict (repeated fields as lists) or text.

    A body over MAX_RECORDED_BODY bytes is kept as the start of its text only, so the
    recording stays small whatever a client sends.
    """
    raw = request.get_data(cache=True)
    if len(raw) > MAX_RECORDED_BODY:
        return raw[:MAX_RECORDED_BODY].decode("utf-8", "replace") + "…"
    if request.is_json:
        parsed, body = json_body()
        return body if parsed else raw.decode("utf-8", "replace")
    if request.mimetype == "application/x-www-form-urlencoded":
        return {
            name: values[0] if len(values) == 1 else values
            for name, values in request.form.lists()
        }
    return raw.decode("utf-8", "replace")


def json_body() -> tuple[bool, Any]:
    """Return (True, the body as JSON), or (False, None) when it is no JSON we can hold.

    Deep nesting would exhaust Python's recursion in the parser (a RecursionError, not
    the ValueError Flask expects): it is malformed input like any other.
    """
    try:
        return True, json.loads(request.get_data(cache=True))
    except (ValueError, RecursionError):
        return False, None
