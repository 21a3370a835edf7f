"""The flow trace: what went over the wire to vcita, with every secret masked.

For integrators: the dashboard's "What just happened" panel shows the three steps of
the last connect as they really went (the authorize URL, the token request and answer,
the userinfo request and answer). Shown in the sandbox, or with SHOW_FLOW_TRACE=true.

Secrets are masked before anything is kept: the client secret, code, state, PKCE
verifier and tokens become `7463…144b`, so the trace can live in the session cookie.
"""

import base64
import json
import re
from urllib.parse import quote, quote_plus

import requests
from flask import current_app, g, session

SESSION_KEY = "flow_trace"
MAX_BODY = 2000  # characters kept of each body: enough to read, small enough for a cookie
SHOWN_HEADERS = ("Content-Type", "Accept", "Authorization", "Cache-Control", "WWW-Authenticate")
BEARER = re.compile(r"^(Bearer|Basic)\s+(.+)$", re.IGNORECASE)


def enabled() -> bool:
    """Trace only where a developer is looking: the sandbox, or when asked for."""
    config = current_app.config
    return bool(config["SANDBOX"] or config["SHOW_FLOW_TRACE"])


def mask(secret: str) -> str:
    """Keep the first and last four characters of a secret: `7463…144b`."""
    if len(secret) <= 12:
        return "…"
    return f"{secret[:4]}…{secret[-4:]}"


def remember_secret(*values: str | None) -> None:
    """Note values of this request that must never appear in the trace."""
    g.setdefault("trace_secrets", set()).update(value for value in values if value)


def record_exchange(response: requests.Response, *args, **kwargs) -> requests.Response:
    """Keep one request to vcita and its answer (a requests response hook)."""
    if enabled():
        request = response.request
        remember_secret(*_tokens_in(response))
        g.setdefault("trace_steps", []).append(
            {
                "request": {
                    "method": request.method,
                    "url": request.url,
                    "headers": _headers(request.headers),
                    "body": _text(request.body),
                },
                "response": {
                    "status": response.status_code,
                    "headers": _headers(response.headers),
                    "body": _text(response.content),
                },
            }
        )
    return response


def keep(authorize_url: str) -> None:
    """Store the masked trace of the flow that just completed in the session."""
    if not enabled():
        return
    steps = [{"authorize_url": authorize_url}, *g.get("trace_steps", [])]
    session[SESSION_KEY] = _masked(steps, g.get("trace_secrets", set()))


def last_trace() -> list | None:
    """Return the masked trace of this browser's last connect, if tracing is on."""
    return session.get(SESSION_KEY) if enabled() else None


def _tokens_in(response: requests.Response) -> list[str]:
    try:
        body = response.json()
    except ValueError:
        return []
    if isinstance(body, dict):
        return [
            value
            for key, value in body.items()
            if key.endswith("token") and isinstance(value, str)
        ]
    return []


def _headers(headers) -> dict:
    shown = {}
    for name in SHOWN_HEADERS:
        if name in headers:
            value = headers[name]
            match = BEARER.match(value)
            # The Basic credential is base64 of id:secret; a bearer header is the token.
            shown[name] = f"{match.group(1)} {mask(match.group(2))}" if match else value
    return shown


def _text(body) -> str:
    if body is None:
        return ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)[:MAX_BODY]
    except ValueError:
        return body[:MAX_BODY]


def _masked(steps: list, secrets: set[str]) -> list:
    """Replace every secret, and its base64 and URL-encoded forms, by its mask."""
    secrets = {*secrets, current_app.config["VCITA_CLIENT_SECRET"]}
    text = json.dumps(steps)
    for secret in sorted(secrets, key=len, reverse=True):
        for form in _forms_of(secret):
            text = text.replace(form, mask(secret))
    return json.loads(text)


def _forms_of(secret: str) -> set[str]:
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        json.dumps(secret)[1:-1],
        base64.b64encode(secret.encode()).decode().rstrip("="),
    }
