"""The sandbox's console access log: one line per request, no live value in it.

A WSGI middleware, because waitress keeps no access log of its own. The `state`,
`code` and every other credential-like query value is shown as `…`, and control
characters are escaped, so a request cannot print a live state or forge a line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

logger = logging.getLogger("sandbox.access")
# Query values worth nothing to a reader and everything to an attacker.
HIDDEN_PARAMETERS = {
    "state",
    "code",
    "code_verifier",
    "client_secret",
    "client_assertion",
    "access_token",
}


def escape_controls(text: str) -> str:
    """Return `text` with non-printable characters escaped, so it stays one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def request_line(environ: dict[str, Any]) -> str:
    """Return `METHOD /path?query` with hidden values masked, as one printable line."""
    # PEP 3333 hands the path over as Latin-1 text of the raw bytes.
    path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
    query = environ.get("QUERY_STRING", "")
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        shown = [f"{name}={'…' if name in HIDDEN_PARAMETERS else value}" for name, value in pairs]
        path = f"{path}?{'&'.join(shown)}"
    return escape_controls(f"{environ.get('REQUEST_METHOD', '-')} {path}")


class AccessLog:
    """Log each request and its status, after masking and escaping them."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        def logged_start_response(status: str, headers: list, *args: Any):
            logger.info(
                'sandbox: %s "%s" %s',
                environ.get("REMOTE_ADDR", "-"),
                request_line(environ),
                status.split(" ")[0],
            )
            return start_response(status, headers, *args)

        return self.wsgi_app(environ, logged_start_response)


def log_to_console() -> None:
    """Print the access log on standard output, one plain line per request."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
