"""The clients lists read in the background, so that no page waits on one for long.

A page asks for a business's recent clients on one of a few reading threads, and waits
for them only CLIENTS_BUDGET (`ClientsRead.wait`); a slower read goes on, and the page
that started it says who keeps its rows when they come (`ClientReads.keep_when_read`).
This process remembers the latest read of each connection a short while: a later page of
the same connection waits on a read under way rather than asking vcita again, and the
panel's own requests (`snapshots.clients_panel`) use one that just ended, failed or not.
"""

import concurrent.futures
import logging
import threading
from concurrent.futures import CancelledError as NotAsked
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as StillReading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum

from flask import Flask, current_app

from ..storage.connections import get_connections
from ..vcita import AccessRevoked, AccessToken
from .recent_clients import ClientRow, recent_clients

logger = logging.getLogger(__name__)

# How much longer than userinfo a page waits for the clients list. Both are asked at the
# same moment and travel the same way, so a healthy list arrives within a few
# milliseconds of userinfo (in make load, 20 browsers at once, vcita 50 ms away: 1 ms at
# the median, 21 ms at p95). 50 ms more is not a wait a person notices; a list later
# than that is slow, or needs a second request (over 100 clients, on a first read): the
# page does not wait for it, and its panel fills itself a moment later.
CLIENTS_BUDGET = timedelta(milliseconds=50)
# Each reads one business's clients list. As many as a worker's request threads
# (gunicorn.conf.py): with them, every call to vcita at a moment keeps a connection of
# the client's pool (32), and reads beyond that wait their turn instead of opening more.
READING_THREADS = 16
# Reads waiting for a reading thread, beyond which no more wait: while vcita's clients
# API is slow, each page would add one, without end. A page that finds no room says the
# clients are on their way, and its panel asks again.
MAX_WAITING_READS = 4 * READING_THREADS
# The callback's copy is shown instead of a live read only this soon after the connect;
# clients kept this recently are shown by the panel without asking vcita again.
JUST_READ_FOR = timedelta(seconds=30)


class Listing(Enum):
    """Where the panel's clients stand in this render."""

    LISTED = "listed"  # read just now
    ON_THEIR_WAY = "on their way"  # the read is slower than CLIENTS_BUDGET: the page fills later
    UNANSWERED = "unanswered"  # vcita did not answer for them


@dataclass
class ClientsRead:
    """One read of a business's recent clients, on the reading threads, and who keeps it."""

    future: Future
    started_at: datetime
    ended_at: datetime | None = None
    _kept: bool = False
    _has_keeper: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def end(self) -> None:
        self.ended_at = datetime.now(UTC)

    def ended_before(self, period: timedelta) -> bool:
        """Say whether the read ended longer than `period` ago."""
        return self.ended_at is not None and datetime.now(UTC) - self.ended_at >= period

    def wait(self) -> tuple[Listing, list[dict] | None]:
        """Wait up to CLIENTS_BUDGET; return the listing, and the rows as JSON when listed.

        Raises AccessRevoked when vcita refused the token for the list.
        """
        try:
            rows = self.future.result(timeout=CLIENTS_BUDGET.total_seconds())
        except (StillReading, NotAsked):
            return Listing.ON_THEIR_WAY, None
        if rows is None:
            return Listing.UNANSWERED, None
        return Listing.LISTED, [row.as_json() for row in rows]

    def claim(self) -> bool:
        """Say whether the caller is the one to keep the rows: only the first to ask is."""
        with self._lock:
            claimed, self._kept = not self._kept, True
        return claimed

    def take_keeper(self) -> bool:
        """Say whether the caller is to give the read its keeper: only the first to ask is."""
        with self._lock:
            first, self._has_keeper = not self._has_keeper, True
        return first


class ClientReads:
    """The clients lists read in this process, the latest of each connection remembered.

    A read slower than the budget goes on in the background; the page that started it
    says who keeps its rows (`keep_when_read`). Later pages of the same connection wait on
    a read under way rather than asking vcita again, and the panel's own requests use one
    that ended in the last JUST_READ_FOR, failed or not, rather than asking again.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.executor = ThreadPoolExecutor(READING_THREADS, "vcita-reading")
        self._latest: dict[str, ClientsRead] = {}
        self._waiting = 0  # reads not yet on a thread
        self._lock = threading.Lock()

    def start(
        self, token: AccessToken, since: datetime | None, connection_id: str | None = None
    ) -> ClientsRead:
        """Start reading the clients of the token's business; reuse a read under way."""
        if connection_id is not None:
            latest = self.latest(connection_id)
            if latest is not None and not latest.future.done():
                return latest
        with self._lock:
            room = self._waiting < MAX_WAITING_READS
            if room:
                self._waiting += 1
        if room:
            future = self.executor.submit(self._recent_clients, token, since)
        else:  # not asked now: the panel asks again, as for a slow read
            future = Future()
            future.cancel()
        read = ClientsRead(future, datetime.now(UTC))
        read.future.add_done_callback(lambda done: read.end())
        if connection_id is not None:
            self._remember(connection_id, read)
        return read

    def latest(self, connection_id: str) -> ClientsRead | None:
        """Return this connection's read under way here, or one that ended just now."""
        with self._lock:
            read = self._latest.get(connection_id)
        if read is None or read.future.cancelled() or read.ended_before(JUST_READ_FOR):
            return None
        return read

    def keep_when_read(self, connection_id: str, read: ClientsRead) -> None:
        """Keep the read's rows with the connection as soon as they arrive.

        Every page that waited on a late read asks; the read is given one keeper.
        """
        if read.take_keeper():
            self._remember(connection_id, read)
            read.future.add_done_callback(lambda done: self._keep(connection_id, read))

    def wait(self, timeout: float = 10) -> None:
        """Wait until every read under way has ended (tests)."""
        with self._lock:
            futures = [read.future for read in self._latest.values()]
        concurrent.futures.wait(futures, timeout)

    def close(self) -> None:
        """Wait for the reads under way, and start no more (a test's end, a shutdown)."""
        self.executor.shutdown(wait=True)

    def _remember(self, connection_id: str, read: ClientsRead) -> None:
        with self._lock:
            # Forget reads that ended long enough ago: the dict stays as small as the
            # connections read in the last moments.
            for known, old in list(self._latest.items()):
                if old.ended_before(JUST_READ_FOR):
                    del self._latest[known]
            self._latest[connection_id] = read

    def _keep(self, connection_id: str, read: ClientsRead) -> None:
        try:
            rows = read.future.result()
        except NotAsked:
            return
        except AccessRevoked:
            logger.info("Recent clients: vcita refused the token; nothing kept")
            return
        except Exception:
            logger.exception("Recent clients: the read failed")
            return
        if rows is None or not read.claim():
            return  # vcita did not list them; or the page that waited keeps them
        with self.app.app_context():
            get_connections().keep_recent_clients(
                connection_id, [row.as_json() for row in rows], read.started_at
            )

    def _recent_clients(
        self, token: AccessToken, since: datetime | None
    ) -> list[ClientRow] | None:
        with self._lock:
            self._waiting -= 1
        with self.app.app_context():
            return recent_clients(token, since)


def init_app(app: Flask) -> None:
    """Give the app the threads that read vcita's clients lists beside userinfo."""
    app.extensions["client_reads"] = ClientReads(app)


def get_client_reads() -> ClientReads:
    """Return the current app's clients lists being read."""
    return current_app.extensions["client_reads"]
