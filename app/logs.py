"""Log lines a support engineer can follow, with nothing secret in them.

Every line written while a request is served carries that request's id, so the steps
of one connect flow can be read together. Codes, states and tokens are never logged,
and access-log lines lose what a URL carries secretly: query strings (a callback's code
and state) and the secret path segment of a webhook URL. Only what can hold a URL is
cut (a request line, gunicorn's URL atoms), in time linear in its length.
Control characters in any logged value are escaped (`\n`, `\u2028`), so nothing a
client sends (a decoded `%0A` in a path) can start a forged line of its own; a
traceback keeps its lines, each indented.
"""

import logging
import re
import secrets
import traceback
from collections.abc import Mapping, MutableMapping
from types import TracebackType

from flask import Flask, Response, g, has_request_context

LOG_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
# The end of a request line ("GET /callback?code=… HTTP/1.1"): a query string is cut to it.
PROTOCOL = " HTTP/"
# gunicorn's access-log atoms that can hold a URL (gunicorn/glogging.py, Logger.atoms):
# the request line and path, the Referer, the Location of a redirect (one to vcita
# carries `state`), and the environ atoms holding the same values. Only these are cut:
# every request header is an atom, twice ({…}i and {http_…}e), and cutting them all cost
# CPU on each request for nothing. The rest are still escaped (ControlCharacterFilter).
# What stays readable: the cookie atoms ({cookie}i, {http_cookie}e, {set-cookie}o) carry
# the Flask session, signed but not encrypted (a flow's state and code_verifier). The
# shipped access_log_format (gunicorn.conf.py) logs none of them; an operator must not
# add them.
URL_ATOMS = frozenset(
    {"r", "U", "f", "{referer}i", "{location}o", "{raw_uri}e", "{path_info}e", "{http_referer}e"}
)
# The atoms that are a query string and nothing else (no "?" to cut from): hidden whole.
QUERY_ATOMS = frozenset({"q", "{query_string}e"})
# The per-connection secret that ends a webhook URL (app/token_use/subscriptions.py), up
# to the query, the next space or slash.
WEBHOOK_SECRET = re.compile(r"(/webhooks/vcita/)[^/?\s]+")
# The colours Werkzeug's development server gives its access lines (ANSI SGR codes). It
# escapes the request's own control characters first, so every such code is its own.
WERKZEUG_COLOURS = re.compile(r"\x1b\[[0-9;]*m")
# sys.exc_info() as a log record keeps it.
ExceptionInfo = (
    tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]
)


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


def indented_traceback(exc_info: ExceptionInfo) -> str:
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


def cut_query_strings(text: str) -> str:
    """Replace each query string in `text` with `?…`, in time linear in its length.

    A query runs from its "?" to the last " HTTP/" later on its line (the end of a request
    line), else to the next ASCII space or the end (a request target has none). Not to a
    quote or any other space: Werkzeug's access log decodes the path, so vcita's
    error_description=%22no%22 or %C2%A0 must not end the cut before the state.
    Plain string searches, not a regular expression: a pattern that looks ahead for
    " HTTP/" after each "?" rescans the rest of the line every time, and a line of
    "? ? ? …" then costs seconds. Here each line's last " HTTP/" is found once.
    """
    pieces: list[str] = []
    copied = 0  # text[:copied] is in pieces already
    # The line of the last "?" seen: where it ends, and where its last " HTTP/" starts.
    line_end = protocol = -1
    while (mark := text.find("?", copied)) != -1:
        if mark > line_end:  # the first "?" seen on this line
            line_end = text.find("\n", mark)
            if line_end == -1:
                line_end = len(text)
            protocol = text.rfind(PROTOCOL, mark, line_end)
        if protocol > mark:
            end = protocol
        else:
            end = text.find(" ", mark)
            if end == -1:
                end = len(text)
        pieces += (text[copied:mark], "?…")
        copied = end
    if not pieces:
        return text
    pieces.append(text[copied:])
    return "".join(pieces)


def hide_url_secrets(text: str) -> str:
    """Cut query strings and hide a webhook URL's secret in an access-log line or atom."""
    return WEBHOOK_SECRET.sub(r"\1…", cut_query_strings(text))


class UrlSecretsFilter(logging.Filter):
    """Access-log lines: no query string (a callback's code and state), no webhook secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = hide_url_secrets(str(record.msg))
        if isinstance(record.args, Mapping):
            # gunicorn passes its access-log atoms as one mapping (%(U)s style), a dict of
            # its own that is edited in place: its lookups of headers and missing atoms stay.
            atoms = record.args if isinstance(record.args, MutableMapping) else dict(record.args)
            for name in URL_ATOMS & atoms.keys():
                if isinstance(value := atoms[name], str):
                    atoms[name] = hide_url_secrets(value)
            for name in QUERY_ATOMS & atoms.keys():
                if atoms[name]:
                    atoms[name] = "…"
            record.args = atoms
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


def expose_request_id(response: Response) -> Response:
    response.headers["X-Request-Id"] = g.get("request_id", "-")
    return response
