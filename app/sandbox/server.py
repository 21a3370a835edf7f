"""A real HTTP server for any WSGI app, in a background thread, that keeps connections alive.

Tests serve the sandbox (and the client app) with `ServerThread` so that every request
crosses a real socket, as it does against vcita. Werkzeug's own handler closes every
connection after one response, so this module keeps Werkzeug's environ building and
writes responses itself, HTTP/1.1 style: a connection stays open until the client closes
it, asks to close it, or the server stops. `connections_accepted` counts TCP connections,
which lets a test prove that a client reuses one.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wsgi import LimitedStream

log = logging.getLogger(__name__)

# Leftover request bodies up to this size are read and discarded so the connection can
# carry the next request; a bigger one is not worth reading, so its connection is closed.
MAX_BODY_TO_DRAIN = 1024 * 1024
# An idle keep-alive connection is closed after this many seconds.
IDLE_TIMEOUT = 30
# How long `stop()` waits for requests still being answered.
STOP_GRACE = 5.0


class ConnectionAbort(Exception):
    """Raise from a response body to make the server reset the TCP connection at once."""


class ServerThread:
    """Serve a WSGI app over real HTTP on a background thread until stopped."""

    def __init__(
        self,
        wsgi_app: Callable[..., Iterable[bytes]],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        quiet: bool = True,
    ) -> None:
        self.wsgi_app = wsgi_app
        self.host = host
        self.requested_port = port
        self.quiet = quiet
        self._server: _KeepAliveWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """Return the port the server listens on (picked by the OS when 0 was asked)."""
        return self._running_server().port

    @property
    def url(self) -> str:
        """Return the base URL, e.g. http://127.0.0.1:51234."""
        return f"http://{self.host}:{self.port}"

    @property
    def connections_accepted(self) -> int:
        """Return how many TCP connections the server has accepted so far."""
        return self._running_server().connections_accepted

    def start(self) -> ServerThread:
        """Bind the socket and start serving in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("this ServerThread is already started")
        self._server = _KeepAliveWSGIServer(
            self.host, self.requested_port, self.wsgi_app, quiet=self.quiet
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            # A short poll interval makes stop() prompt.
            kwargs={"poll_interval": 0.05},
            name=f"ServerThread:{self._server.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every connection, and wait for the threads to finish."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        thread.join()
        server.server_close()
        server.close_connections(grace=STOP_GRACE)
        self._server = self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _running_server(self) -> _KeepAliveWSGIServer:
        if self._server is None:
            raise RuntimeError("the ServerThread is not running: call start() first")
        return self._server


class _KeepAliveWSGIServer(ThreadedWSGIServer):
    """Werkzeug's threaded server, tracking each connection and its thread."""

    def __init__(self, host: str, port: int, app: Any, *, quiet: bool) -> None:
        super().__init__(host, port, app, handler=_KeepAliveRequestHandler)
        self.quiet = quiet
        self.connections_accepted = 0
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._aborted: set[socket.socket] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Answer the connection on its own thread, remembering both."""
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"ServerThread:{self.port} connection",
            daemon=True,
        )
        with self._lock:
            self.connections_accepted += 1
            self._connections[request] = thread
        thread.start()

    def abort(self, connection: socket.socket) -> None:
        """Mark the connection to be closed with a TCP reset instead of a FIN."""
        with self._lock:
            self._aborted.add(connection)

    def shutdown_request(self, request: Any) -> None:
        """Close the connection: a reset if it was aborted, else an orderly close."""
        with self._lock:
            self._connections.pop(request, None)
            aborted = request in self._aborted
            self._aborted.discard(request)
        if aborted:
            # SO_LINGER with a zero timeout turns close() into an RST (RFC 9293 §3.6).
            request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_request(request)
        else:
            super().shutdown_request(request)

    def close_connections(self, grace: float) -> None:
        """Wake idle keep-alive connections so their threads end, then wait for them."""
        with self._lock:
            for connection in self._connections:
                # OSError: the client closed it already.
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            threads = list(self._connections.values())
        for thread in threads:
            thread.join(timeout=grace)

    def log(self, type: str, message: str, *args: Any) -> None:
        """Log server messages unless quiet."""
        if not self.quiet:
            super().log(type, message, *args)


class _KeepAliveRequestHandler(WSGIRequestHandler):
    """Run the WSGI app for each request on a connection, keeping it open in between."""

    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    # Headers and body go out in separate writes; without TCP_NODELAY the body would wait
    # for the client's delayed ACK (~40 ms) on every kept-alive response.
    disable_nagle_algorithm = True
    server: _KeepAliveWSGIServer

    def run_wsgi(self) -> None:
        """Answer one request; close the connection only when the exchange requires it."""
        if self.headers.get("Expect", "").lower().strip() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.make_environ()
        request_body = self._request_body(environ)
        response = _ResponseWriter(self, environ["REQUEST_METHOD"])
        try:
            app_iter = self.server.app(environ, response.start_response)
            try:
                for chunk in app_iter:
                    response.write(chunk)
                response.finish()
            finally:
                if hasattr(app_iter, "close"):
                    app_iter.close()
        except ConnectionAbort:
            self.server.abort(self.connection)
            self.close_connection = True
            return
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            return
        except Exception:
            log.exception("Error while serving %s %s", self.command, self.path)
            self.close_connection = True
            if not response.started:
                response.send_plain_error(500, "Internal Server Error")
            return
        self._discard_unread_body(request_body)

    def _request_body(self, environ: dict[str, Any]) -> LimitedStream | None:
        """Limit wsgi.input to this request's body so the app cannot read the next request."""
        if environ.get("wsgi.input_terminated"):
            # A chunked body: Werkzeug already decodes it; the connection is closed after
            # the response rather than tracking where the chunks end.
            self.close_connection = True
            return None
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
            self.close_connection = True
        if length > MAX_BODY_TO_DRAIN:
            self.close_connection = True
        body = LimitedStream(self.rfile, max(length, 0))
        environ["wsgi.input"] = body
        environ["wsgi.input_terminated"] = True
        return body

    def _discard_unread_body(self, request_body: LimitedStream | None) -> None:
        """Read what the app left of the body, so the next request starts where it should."""
        if request_body is None or self.close_connection:
            return
        try:
            request_body.exhaust()
        except Exception:  # the client went away mid-body
            self.close_connection = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log the request line unless the server is quiet."""
        if not self.server.quiet:
            super().log_request(code, size)

    def log(self, type: str, message: str, *args: Any) -> None:
        """Log handler messages (timeouts, bad request lines) unless quiet."""
        if not self.server.quiet:
            super().log(type, message, *args)


class _ResponseWriter:
    """Write one WSGI response, framed so the connection can carry the next one."""

    def __init__(self, handler: _KeepAliveRequestHandler, method: str) -> None:
        self.handler = handler
        self.method = method
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.started = False
        self.chunked = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        """Remember the status and headers until the first body bytes (PEP 3333)."""
        if exc_info and self.started:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status, self.headers = status, headers
        return self.write

    def write(self, data: bytes) -> None:
        """Send the headers on first use, then the data."""
        if not self.started:
            self._send_headers()
        if not data:
            return
        if self.chunked:
            self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self.handler.wfile.write(data)
        self.handler.wfile.flush()

    def finish(self) -> None:
        """Send the headers if no body came, and end a chunked body."""
        if not self.started:
            self._send_headers()
        if self.chunked:
            self.handler.wfile.write(b"0\r\n\r\n")
        self.handler.wfile.flush()

    def send_plain_error(self, code: int, message: str) -> None:
        """Answer with a small text error when the app failed before sending anything."""
        body = message.encode()
        self.status = f"{code} {message}"
        self.headers = [("Content-Type", "text/plain; charset=utf-8")]
        self.headers.append(("Content-Length", str(len(body))))
        self.write(body)
        self.finish()

    def _send_headers(self) -> None:
        assert self.status is not None, "write() before start_response()"  # noqa: S101
        handler = self.handler
        code_text, _, reason = self.status.partition(" ")
        code = int(code_text)
        names = {name.lower() for name, _ in self.headers}
        # A body must be framed for the connection to stay open (RFC 9112 §6.3): by its
        # length, or else by chunks on HTTP/1.1, or else by closing the connection.
        has_body = self.method != "HEAD" and code >= 200 and code not in (204, 304)
        if has_body and "content-length" not in names:
            if handler.request_version == "HTTP/1.1":
                self.chunked = True
            else:
                handler.close_connection = True
        handler.send_response(code, reason)
        for name, value in self.headers:
            handler.send_header(name, value)
        if self.chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        if handler.close_connection and "connection" not in names:
            handler.send_header("Connection", "close")
        handler.end_headers()
        self.started = True
