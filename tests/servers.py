"""Servers the tests start: a free port, the app as `make run` serves it, a server process."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return listener.getsockname()[1]


@contextmanager
def development_server(app: Flask) -> Iterator[BaseWSGIServer]:
    """Serve `app` with Werkzeug's development server, as `make run` (flask run) does.

    Unlike the tests' other servers it writes an access log line per request, through
    the "werkzeug" logger: what the log tests read.
    """
    server = make_server("127.0.0.1", 0, app, threaded=True)
    server.url = f"http://127.0.0.1:{server.port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
