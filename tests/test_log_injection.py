"""No request can forge a log line: control characters in any logged value are escaped.

A path like `/x%0A2026-11-28 17:59:59,000 INFO [abcdef012345] app: Connected business
FORGED` is decoded by the servers before they log it; unescaped, its newline would start
a line identical to the app's own. Proven for any text by a property, and for each
server the project runs: Flask's development server (`make run`) here, gunicorn
(`make serve`) in tests/test_serve.py, the sandbox in sandbox/tests/.
"""

import logging
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.logs import ControlCharacterFilter, escape_controls

from .servers import development_server

FORGED = "2026-11-28 17:59:59,000 INFO [abcdef012345] app: Connected business FORGED"
# Each decodes to a character that ends a line for someone: a log file, str.splitlines().
LINE_BREAKS = ["%0A", "%0D", "%0D%0A", "%E2%80%A8", "%E2%80%A9", "%C2%85", "%0B", "%0C", "%1C"]


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
)
def test_a_record_is_rendered_as_one_line_whatever_its_values(message, args):
    # %-placeholders taken from the values, as an access-log format takes them.
    template = "%(U)s %(r)s" if isinstance(args, dict) else "%s %d %r"
    if isinstance(args, dict):
        args = {"U": "", "r": "", **args}
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, template, (args,), None)
    if not isinstance(args, dict):
        record.args = args
    record.msg = f"{template} {message.replace('%', '%%')}"

    ControlCharacterFilter().filter(record)

    assert is_one_clean_line(record.getMessage())


@pytest.fixture
def served(app):
    """The app under Werkzeug's development server, as `make run` (flask run) serves it."""
    with development_server(app) as server:
        yield server


def send_raw(port: int, target: str) -> None:
    """Send one request line as an attacker would, byte for byte."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        connection.recv(65536)


@pytest.mark.parametrize("line_break", LINE_BREAKS)
def test_development_server_access_log_cannot_be_forged(served, caplog, line_break):
    caplog.set_level(logging.INFO, logger="werkzeug")
    forged = FORGED.replace(" ", "%20")

    send_raw(served.port, f"/x{line_break}{forged}")

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
