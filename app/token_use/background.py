"""Talking to vcita off the request: subscribing a new connection, confirming an uninstall.

The person's page never waits on these calls. Each job runs once at a time: the same job
asked for while it waits is covered by the one already waiting.
"""

import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from flask import Flask, current_app

logger = logging.getLogger(__name__)

THREADS = 2  # a few calls to vcita at a time; none is urgent


class Background:
    """Run calls to vcita on a few threads of their own, in the app's context."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.executor = ThreadPoolExecutor(THREADS, "vcita-background")
        self.pending: set[Hashable] = set()
        self.lock = threading.Lock()

    def run(self, job: tuple[str, str], function: Callable[..., Any], *args: Any) -> Future | None:
        """Run `function(*args)` soon; the same job already waiting covers this one."""
        with self.lock:
            if job in self.pending:
                return None
            self.pending.add(job)
        return self.executor.submit(self._run, job, function, *args)

    def _run(self, job: tuple[str, str], function: Callable[..., Any], *args: Any) -> None:
        try:
            with self.app.app_context():
                function(*args)
        except Exception:
            logger.exception("Background work %r failed", job[0])
        finally:
            with self.lock:
                self.pending.discard(job)

    def wait(self, timeout: float = 10) -> None:
        """Wait until every job asked for has finished (tests, and a clean shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.pending:
                    return
            time.sleep(0.01)


def init_app(app: Flask) -> None:
    """Give the app its background threads."""
    app.extensions["background"] = Background(app)


def get_background() -> Background:
    """Return the current app's background work."""
    return current_app.extensions["background"]
