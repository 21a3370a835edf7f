"""Log lines a support engineer can follow, with nothing secret in them.

Every line written while a request is served carries that request's id, so the steps
of one connect flow can be read together. Codes, states and tokens are never logged,
and query strings are cut from access-log lines, where a callback URL would carry them.
Control characters in any logged value are escaped (`\n`, `\u2028`), so nothing a
client sends (a decoded `%0A` in a path) can start a forged line of its own.
"""

import logging
import re
import secrets
from collections.abc import Mapping

from flask import Flask, g, has_request_context

LOG_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
# From "?" to the " HTTP/1.1" that ends a request line, else to the next ASCII space
# (a request target has none). Not to any quote or \s: Werkzeug's access log decodes
# the path, so vcita's error_description=%22no%22 or %C2%A0 must not end the cut
# before the state.
QUERY_STRING = re.compile(r"\?(?:.*(?= HTTP/)|[^ ]*)")


def escape_controls(text: str) -> str:
    """Return `text` with every non-printable character escaped, so it stays one line.

    Non-printable is Unicode's view: control and format characters, line and paragraph
    separators (which str.splitlines() and many log viewers break on), unassigned ones.
    """
    if text.isprintable():
        return text
    return "".join(
        character if character.isprintable() else character.encode("unicode_escape").decode()
        for character in text
    )


class ControlCharacterFilter(logging.Filter):
    """Render a record's message with its values, then escape its control characters.

    Escaping the rendered line, not each value, covers every way a value reaches it
    (%s, %r, an exception's text, gunicorn's atoms). A traceback (exc_info) is
    formatted apart and keeps its own lines.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = escape_controls(record.getMessage())
        record.args = None
        return True


class RequestIdFilter(logging.Filter):
    """Stamp each record with the id of the request being served."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


class QueryStringFilter(logging.Filter):
    """Drop query strings from access-log lines: a callback's carries a code and state."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = QUERY_STRING.sub("?…", str(record.msg))
        if isinstance(record.args, Mapping):
            # gunicorn passes its access-log atoms as one mapping (%(U)s style).
            for name, value in record.args.items():
                if isinstance(value, str):
                    record.args[name] = QUERY_STRING.sub("?…", value)
        elif record.args:
            record.args = tuple(
                QUERY_STRING.sub("?…", arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def init_app(app: Flask) -> None:
    """Give every request an id and every log line that id and a safe shape."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RequestIdFilter())
    app.logger.handlers[:] = [handler]
    app.logger.setLevel(logging.INFO)
    app.logger.propagate = False
    for name in ("werkzeug", "gunicorn.access", "gunicorn.error", app.logger.name):
        logger = logging.getLogger(name)
        filters = (QueryStringFilter, ControlCharacterFilter)
        if name == app.logger.name:
            filters = (ControlCharacterFilter,)
        for kind in filters:
            if not any(isinstance(known, kind) for known in logger.filters):
                logger.addFilter(kind())
    app.before_request(assign_request_id)
    app.after_request(expose_request_id)


def assign_request_id() -> None:
    # Our own id, never one taken from the request: a client could inject log lines.
    g.request_id = secrets.token_hex(6)


def expose_request_id(response):
    response.headers["X-Request-Id"] = g.get("request_id", "-")
    return response
