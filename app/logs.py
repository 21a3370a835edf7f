"""Log lines a support engineer can follow, with nothing secret in them.

Every line written while a request is served carries that request's id, so the steps
of one connect flow can be read together. Codes, states and tokens are never logged,
and access-log lines lose what a URL carries secretly: query strings (a callback's code
and state) and the secret path segment of a webhook URL.
Control characters in any logged value are escaped (`\n`, `\u2028`), so nothing a
client sends (a decoded `%0A` in a path) can start a forged line of its own; a
traceback keeps its lines, each indented.
"""

import logging
import re
import secrets
import traceback
from collections.abc import Mapping

from flask import Flask, g, has_request_context

LOG_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
# From "?" to the " HTTP/1.1" that ends a request line, else to the next ASCII space
# (a request target has none). Not to any quote or \s: Werkzeug's access log decodes
# the path, so vcita's error_description=%22no%22 or %C2%A0 must not end the cut
# before the state.
QUERY_STRING = re.compile(r"\?(?:.*(?= HTTP/)|[^ ]*)")
# The per-connection secret that ends a webhook URL (app/token_use/subscriptions.py), up
# to the query, the next space or slash.
WEBHOOK_SECRET = re.compile(r"(/webhooks/vcita/)[^/?\s]+")
# The colours Werkzeug's development server gives its access lines (ANSI SGR codes). It
# escapes the request's own control characters first, so every such code is its own.
WERKZEUG_COLOURS = re.compile(r"\x1b\[[0-9;]*m")


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
    (%s, %r, an exception's text, gunicorn's atoms). `drop` removes a server's own
    decoration first (Werkzeug's colours), which would otherwise show as `\x1b[33m`.
    """

    def __init__(self, drop: re.Pattern | None = None):
        super().__init__()
        self.drop = drop

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.drop:
            message = self.drop.sub("", message)
        record.msg = escape_controls(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = indented_traceback(record.exc_info)
        return True


def indented_traceback(exc_info) -> str:
    """Return the traceback of `exc_info` with its own lines, each indented and escaped.

    An exception's message can carry a newline of its own ("unknown uid b1\n2026-…"):
    indented, that line cannot pass for a log line. Formatters use this text as it is.
    """
    lines = "".join(traceback.format_exception(*exc_info)).rstrip("\n").split("\n")
    return "\n".join(f"  {escape_controls(line)}" for line in lines)


class RequestIdFilter(logging.Filter):
    """Stamp each record with the id of the request being served."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def hide_url_secrets(text: str) -> str:
    """Cut query strings and hide a webhook URL's secret in an access-log line or atom."""
    return WEBHOOK_SECRET.sub(r"\1…", QUERY_STRING.sub("?…", text))


class UrlSecretsFilter(logging.Filter):
    """Access-log lines: no query string (a callback's code and state), no webhook secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = hide_url_secrets(str(record.msg))
        if isinstance(record.args, Mapping):
            # gunicorn passes its access-log atoms as one mapping (%(U)s style).
            for name, value in record.args.items():
                if isinstance(value, str):
                    record.args[name] = hide_url_secrets(value)
        elif record.args:
            record.args = tuple(
                hide_url_secrets(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def init_app(app: Flask) -> None:
    """Give every request an id and every log line that id and a safe shape."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(RequestIdFilter())
    # On the handler too: lines of app.storage and the rest reach it by propagation,
    # which skips the filters of the "app" logger itself.
    handler.addFilter(ControlCharacterFilter())
    app.logger.handlers[:] = [handler]
    app.logger.setLevel(logging.INFO)
    app.logger.propagate = False
    _add_once(app.logger, ControlCharacterFilter())
    # The servers' own loggers: each writes through handlers of its own.
    for name in ("werkzeug", "gunicorn.access", "gunicorn.error"):
        logger = logging.getLogger(name)
        _add_once(logger, UrlSecretsFilter())
        colours = WERKZEUG_COLOURS if name == "werkzeug" else None
        _add_once(logger, ControlCharacterFilter(drop=colours))
    app.before_request(assign_request_id)
    app.after_request(expose_request_id)


def _add_once(logger: logging.Logger, new: logging.Filter) -> None:
    # Once per process, however many apps are created (tests create hundreds).
    if not any(type(known) is type(new) for known in logger.filters):
        logger.addFilter(new)


def assign_request_id() -> None:
    # Our own id, never one taken from the request: a client could inject log lines.
    g.request_id = secrets.token_hex(6)


def expose_request_id(response):
    response.headers["X-Request-Id"] = g.get("request_id", "-")
    return response
