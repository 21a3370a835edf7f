"""No request can forge a log line: control characters in any logged value are escaped.

A path like `/x%0A2026-11-28 17:59:59,000 INFO [abcdef012345] app: Connected business
FORGED` is decoded by the servers before they log it; unescaped, its newline would start
a line identical to the app's own. Proven for any text by a property, and for each
server the project runs: Flask's development server (`make run`) here, gunicorn
(`make serve`) in tests/test_serve.py, the sandbox in sandbox/tests/.
"""

import io
import logging
import socket
import sys

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st

from app import create_app
from app.logs import WERKZEUG_COLOURS, ControlCharacterFilter, escape_controls

from .conftest import close
from .servers import development_server

FORGED = "2026-11-28 17:59:59,000 INFO [abcdef012345] app: Connected business FORGED"
# Each decodes to a character that ends a line for someone: a log file, str.splitlines().
LINE_BREAKS = ["%0A", "%0D", "%0D%0A", "%E2%80%A8", "%E2%80%A9", "%C2%85", "%0B", "%0C", "%1C"]
# Sent as they are, not percent-encoded: escape (a terminal's), NUL, DEL, a raw U+2028.
RAW_CONTROLS = ["\x1b[8m", "\x00", "\x7f", "\u2028"]


def is_one_clean_line(text: str) -> bool:
    return len(text.splitlines()) <= 1 and all(c.isprintable() for c in text)


@given(st.text())
def test_escaped_text_is_one_line_of_printable_characters(text):
    escaped = escape_controls(text)

    assert is_one_clean_line(escaped)
    if text.isprintable():
        assert escaped == text  # ordinary text, accents and all, is left as it is


@given(
    message=st.text(),
    args=st.one_of(
        st.tuples(st.text(), st.integers(), st.text()),
        st.dictionaries(st.sampled_from(["U", "r", "q", "{x-request-id}o"]), st.text()),
    ),
    # The app's and gunicorn's filter, and Werkzeug's, which also drops its colours.
    log_filter=st.sampled_from(
        [ControlCharacterFilter(), ControlCharacterFilter(WERKZEUG_COLOURS)]
    ),
)
def test_a_record_is_rendered_as_one_line_whatever_its_values(message, args, log_filter):
    # %-placeholders taken from the values, as an access-log format takes them.
    template = "%(U)s %(r)s" if isinstance(args, dict) else "%s %d %r"
    if isinstance(args, dict):
        args = {"U": "", "r": "", **args}
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, template, (args,), None)
    if not isinstance(args, dict):
        record.args = args
    record.msg = f"{template} {message.replace('%', '%%')}"

    log_filter.filter(record)

    assert is_one_clean_line(record.getMessage())


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app under Werkzeug's development server, as `make run` (flask run) serves it.

    One for the module (stopping one takes half a second): each test reads the line of
    its own request, and none reaches vcita or the database.
    """
    app = create_app(
        {
            "VCITA_CLIENT_ID": "client",
            "VCITA_CLIENT_SECRET": "secret",
            "VCITA_REDIRECT_URI": "http://localhost/callback",
            "SECRET_KEY": "log-injection-test-secret-key-0123456789",
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('served') / 'connect.db'}",
        }
    )
    with development_server(app) as server:
        yield server
    close(app)


def send_raw(port: int, target: str) -> bytes:
    """Send one request line as an attacker would, byte for byte; return the status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        return connection.recv(65536).split(b"\r\n")[0]


@pytest.mark.parametrize("line_break", LINE_BREAKS + RAW_CONTROLS)
def test_development_server_access_log_cannot_be_forged(served, caplog, line_break):
    caplog.set_level(logging.INFO, logger="werkzeug")
    forged = FORGED.replace(" ", "%20")

    assert b" 404 " in send_raw(served.port, f"/x{line_break}{forged}")

    lines = [record.getMessage() for record in caplog.records if record.name == "werkzeug"]
    assert len(lines) == 1
    assert is_one_clean_line(lines[0])
    assert "FORGED" in lines[0]  # escaped, still readable
    assert not any(line.lstrip().startswith(FORGED) for line in caplog.text.splitlines())


def test_app_log_lines_cannot_be_forged_by_a_logged_value(app, caplog):
    with app.test_request_context("/"):
        app.logger.warning("Connected business %s", f"b1\n{FORGED}\u2028{FORGED}")

    [record] = [record for record in caplog.records if record.name == app.logger.name]
    written = app.logger.handlers[0].format(record)  # the line the app's handler writes
    assert is_one_clean_line(written)
    assert "Connected business b1\\n2026-11-28" in written


def test_development_server_access_lines_carry_no_escaped_colour_codes(served, caplog):
    caplog.set_level(logging.INFO, logger="werkzeug")

    send_raw(served.port, "/no-such-page")  # a 404, which Werkzeug colours yellow

    [line] = [record.getMessage() for record in caplog.records if record.name == "werkzeug"]
    assert line.endswith('"GET /no-such-page HTTP/1.1" 404 -')
    assert "\\x1b" not in line and "\x1b" not in line


def written_by_the_app(app) -> io.StringIO:
    """Return what the app's log handler writes from now on."""
    written = io.StringIO()
    app.logger.handlers[0].setStream(written)
    return written


def test_log_lines_of_the_apps_modules_cannot_be_forged(app):
    written = written_by_the_app(app)

    # app.storage.database logs the driver's error, which PostgreSQL's spreads over lines.
    logging.getLogger("app.storage.database").warning(
        "Database unavailable at startup (%s): %s", "postgresql", f"refused\n{FORGED}"
    )

    assert is_one_clean_line(written.getvalue().rstrip("\n"))
    assert (
        "app.storage.database: Database unavailable at startup (postgresql): refused\\n2026"
        in (written.getvalue())
    )


@given(st.text())
def test_a_logged_exception_cannot_forge_a_line(message):
    record = logging.LogRecord("app", logging.ERROR, __file__, 1, "Unexpected error", (), None)
    try:
        raise ValueError(message)
    except ValueError:
        record.exc_info = sys.exc_info()

    ControlCharacterFilter().filter(record)
    first, *traceback = logging.Formatter().format(record).split("\n")

    assert first == "Unexpected error"
    assert traceback[0] == "  Traceback (most recent call last):"
    assert all(line.startswith("  ") and line.isprintable() for line in traceback)


def test_a_traceback_keeps_its_lines_each_indented(app):
    written = written_by_the_app(app)

    try:
        raise ValueError(f"unknown business b1\n{FORGED}")
    except ValueError:
        app.logger.exception("Unexpected error on %s", f"/x\n{FORGED}")

    first, *traceback = written.getvalue().splitlines()
    assert first.endswith("app: Unexpected error on /x\\n" + FORGED)
    assert traceback[0] == "  Traceback (most recent call last):"
    assert traceback[-2:] == ["  ValueError: unknown business b1", f"  {FORGED}"]
