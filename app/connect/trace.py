"""The flow trace: what went over the wire to vcita, with every secret taken out.

For integrators: the dashboard's "What just happened" panel shows the steps of the last
connect as they really went (the authorize URL, the token request and answer, the
userinfo request and answer). Shown in the sandbox, or with SHOW_FLOW_TRACE=true outside
production.

Secrets are taken out by structure, never by searching text: each URL query, JSON or
form body and header is parsed, and the value of every secret field (client secret,
code, state, PKCE verifier, tokens, assertions, credentials in headers) is replaced by a
placeholder that shows its length and not one of its characters, *before* anything is
serialised. No encoding of a secret can then bring it back. A body that cannot be parsed
is not shown at all. The trace is kept on the server, next to the connection it
describes, for a few minutes; the session carries only its random id.
"""

import json
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import requests
from flask import current_app, g, has_request_context, session
from flask import request as flask_request

from ..session_keys import FLOW_TRACE
from ..vcita_client import get_vcita
from .flow_traces import get_flow_traces
from .flows import PendingFlow

MAX_BODY = 2000  # characters shown of each body: enough to read a step
MAX_JSON_DEPTH = 32  # deeper bodies are not shown (vcita's answers are two levels deep)
SHOWN_HEADERS = ("Content-Type", "Accept", "Authorization", "Cache-Control", "WWW-Authenticate")
# Fields whose values are credentials or one-time values, wherever they appear. Any
# field named *token, *tokens or *secret counts too (refresh_token, id_token, a revoke's
# revoked_tokens, a future one).
SECRET_FIELDS = frozenset(
    {
        "client_secret",
        "code",
        "state",
        "code_verifier",
        "client_assertion",
        "assertion",
        "password",
        "authorization",
        "cookie",
        "set-cookie",
    }
)


def enabled() -> bool:
    """Trace only where a developer is looking: the sandbox, or when asked for."""
    config = current_app.config
    return bool(config["SANDBOX"] or config["SHOW_FLOW_TRACE"])


def hidden(value: object) -> str:
    """Return the placeholder shown instead of a secret: its length, no character of it."""
    length = len(value) if isinstance(value, str | bytes) else 0
    return f"[hidden: {length} characters]"


def is_secret_field(name: str) -> bool:
    """Say whether a field, parameter or header named `name` holds a secret."""
    name = name.lower()
    return name in SECRET_FIELDS or name.endswith(("token", "tokens", "secret"))


def record_exchange(
    response: requests.Response, *args: object, **kwargs: object
) -> requests.Response:
    """Keep one request to vcita and its answer, secrets taken out (a response hook).

    Only the callback's steps are kept (`keep`): any other request to vcita (a dashboard's
    userinfo, a clients page on a reading thread) is not parsed at all.
    """
    if has_request_context() and flask_request.endpoint == "connect.callback" and enabled():
        request = response.request
        g.setdefault("trace_steps", []).append(
            {
                "request": {
                    "method": request.method,
                    "url": redacted_url(response.url),  # where this request was sent
                    "headers": redacted_headers(request.headers),
                    "body": redacted_body(request.body, request.headers.get("Content-Type")),
                },
                "response": {
                    "status": response.status_code,
                    "headers": redacted_headers(response.headers),
                    "body": redacted_body(response.content, response.headers.get("Content-Type")),
                },
            }
        )
    return response


def keep(flow: PendingFlow, connection_id: str) -> str | None:
    """Store the trace of the flow that just completed; return its id, for the session."""
    if not enabled():
        return None
    # Step 2's URL is rebuilt from the flow, rather than kept through the redirect.
    authorize_url = get_vcita().authorization_url(flow.state, flow.code_verifier, flow.brand_host)
    steps = [{"authorize_url": redacted_url(authorize_url)}, *g.get("trace_steps", [])]
    return get_flow_traces().save(connection_id, steps)


def last_trace(connection_id: str) -> list | None:
    """Return the trace of this browser's last connect to `connection_id`, if still kept."""
    trace_id = session.get(FLOW_TRACE)
    if not enabled() or not isinstance(trace_id, str):
        return None
    return get_flow_traces().get(trace_id, connection_id)


def redacted_url(url: str) -> str:
    """Return `url` with the value of every secret query parameter hidden."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=_redacted_pairs(parts.query), fragment=""))


def redacted(value: object, depth: int = 0) -> object:
    """Return a copy of a parsed JSON value with every secret field's value hidden."""
    if depth > MAX_JSON_DEPTH:
        raise RecursionError("nested too deep to show")
    if isinstance(value, dict):
        return {
            key: hidden(item) if is_secret_field(key) else redacted(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redacted(item, depth + 1) for item in value]
    return value


def _redacted_pairs(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return "&".join(
        f"{quote(name, safe='')}={hidden(value) if is_secret_field(name) else quote(value)}"
        for name, value in pairs
    )


def redacted_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Return the headers worth showing, credentials hidden (the scheme stays)."""
    shown = {}
    for name in SHOWN_HEADERS:
        if name in headers:
            value = headers[name]
            if is_secret_field(name):
                # Keep the scheme (Bearer, Basic): it is what a reader wants to see.
                scheme, _, credential = value.partition(" ")
                value = f"{scheme} {hidden(credential)}" if credential else hidden(value)
            shown[name] = value
    return shown


def redacted_body(body: str | bytes | None, content_type: str | None) -> str:
    """Return a JSON or form body with its secrets hidden, or say what other body it was."""
    if not body:
        return ""
    raw = body if isinstance(body, bytes) else body.encode()
    mimetype = (content_type or "").split(";")[0].strip().lower()
    try:
        text = raw.decode("utf-8")
        if mimetype == "application/x-www-form-urlencoded":
            return _redacted_pairs(text).replace("&", "\n")[:MAX_BODY]
        parsed = redacted(json.loads(text))
        return json.dumps(parsed, indent=2, ensure_ascii=False)[:MAX_BODY]
    except (ValueError, RecursionError):
        return f"({len(raw)} bytes of {mimetype or 'unknown type'}, not shown)"
