"""What the dashboard shows, read from vcita without waiting on the clients list, and kept.

The dashboard shows two answers of vcita's: userinfo (the business and staff member) and
the recent clients list. Both need only the token, so they are asked at once, on two of
the client's pooled connections. A page waits for userinfo, and for the clients only
CLIENTS_BUDGET longer: a list that comes later is not waited for. The panel then says the
clients are on their way, and the page's script (static/recent_clients.js) fetches the
panel alone (`clients_panel`) until they are there; the read goes on in the background
and its clients are kept with the connection when they arrive.

The callback reads the same way, right after the exchange, and the connection keeps what
vcita said (sealed, with the time it was read). `for_dashboard` decides what a dashboard
shows:

- right after the connect: the copy the callback read a moment ago, without asking again;
- otherwise, vcita's answer read live, with the clients last listed while new ones are
  on their way or if vcita did not list them, kept for next time;
- when vcita does not answer: the kept copy, with a banner that says so.
"""

import concurrent.futures
import json
import logging
import threading
from concurrent.futures import CancelledError as NotAsked
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as StillReading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum

from flask import Flask, current_app

from ..storage.connections import Connection, Snapshot, get_connections
from ..vcita import AccessRevoked, AccessToken, VcitaUnavailable
from ..vcita_client import get_vcita
from .recent_clients import ClientRow, fifth_newest, recent_clients

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


@dataclass(frozen=True)
class ClientsPanel:
    """The Recent clients panel: its rows, when vcita listed them, and whether just now."""

    listing: Listing
    rows: list[ClientRow] | None = None  # None: vcita never listed them (or not yet)
    listed_at: datetime | None = None

    @classmethod
    def kept_in(cls, snapshot: Snapshot | None, listing: Listing) -> "ClientsPanel":
        """Return the panel of the clients a snapshot keeps, in this `listing`."""
        if snapshot is None or snapshot.recent_clients is None:
            return cls(listing)
        rows = [ClientRow.from_json(row) for row in snapshot.recent_clients]
        return cls(listing, rows, snapshot.clients_read_at)

    @property
    def loading(self) -> bool:
        return self.listing is Listing.ON_THEIR_WAY


@dataclass(frozen=True)
class Dashboard:
    """What the dashboard shows of vcita's answers, and why it is not live when it is not."""

    snapshot: Snapshot
    clients: ClientsPanel
    unanswered: VcitaUnavailable | None = None  # vcita did not answer: the kept copy

    @property
    def userinfo(self) -> dict:
        return self.snapshot.userinfo

    @property
    def userinfo_json(self) -> str:
        """Return userinfo as the page shows it whole: indented, keys sorted."""
        return json.dumps(self.userinfo, indent=2, sort_keys=True, ensure_ascii=False)


@dataclass
class ClientsRead:
    """One read of a business's recent clients, on the reading threads, and who keeps it."""

    future: Future
    started_at: datetime
    ended_at: datetime | None = None
    _kept: bool = False
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


@dataclass(frozen=True)
class Reading:
    """What one read brought within the budget: userinfo, and the clients if they came."""

    snapshot: Snapshot  # what to keep: its clients only if they came and are ours to keep
    clients: ClientsRead
    listing: Listing
    rows: list[dict] | None  # the clients that came within the budget, as JSON

    def panel(self, kept: Snapshot | None) -> ClientsPanel:
        """Return the panel: the clients that came, else those kept, while they are late."""
        return _panel(self.listing, self.rows, self.clients, kept)

    def keep_late_clients(self, connection_id: str) -> None:
        """Keep the clients with the connection when they arrive, if they were late."""
        if self.listing is Listing.ON_THEIR_WAY:
            get_client_reads().keep_when_read(connection_id, self.clients)


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
        """Keep the read's rows with the connection as soon as they arrive."""
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

    def _recent_clients(self, token: AccessToken, since: datetime | None):
        with self._lock:
            self._waiting -= 1
        with self.app.app_context():
            return recent_clients(token, since)


def for_dashboard(connection: Connection, just_connected: bool) -> Dashboard:
    """Decide what the dashboard shows of the connection's business (see the module's list).

    Raises AccessRevoked when vcita refuses the token, and VcitaUnavailable when vcita
    does not answer and nothing is kept to show instead.
    """
    kept = connection.snapshot
    if just_connected and kept is not None and _in_the_last(kept.read_at, JUST_READ_FOR):
        # The callback read it a moment ago; its clients too, unless they were late.
        fresh = _in_the_last(kept.clients_read_at, JUST_READ_FOR)
        return Dashboard(kept, ClientsPanel.kept_in(kept, _listed_if(fresh)))
    reads = get_client_reads()
    clients = reads.start(connection.token, _since(kept), connection.id)
    try:
        reading = read(connection.token, clients)
    except VcitaUnavailable as error:
        if kept is None:
            raise  # nothing kept to show: the error page says vcita did not answer
        logger.warning("vcita did not answer (%s); showing the kept copy", error)
        return Dashboard(kept, ClientsPanel.kept_in(kept, Listing.UNANSWERED), unanswered=error)
    get_connections().keep_snapshot(connection.id, reading.snapshot)
    reading.keep_late_clients(connection.id)
    return Dashboard(reading.snapshot, reading.panel(kept))


def clients_panel(connection: Connection) -> ClientsPanel:
    """Return the Recent clients panel on its own, for the page that waits for it.

    Clients kept in the last JUST_READ_FOR are shown as they are (a late read stored them);
    otherwise the read under way, or a new one, is given CLIENTS_BUDGET like a page.
    Raises AccessRevoked when vcita refuses the token.
    """
    kept = connection.snapshot
    reads = get_client_reads()
    read = reads.latest(connection.id)
    if read is None:
        if kept is not None and _in_the_last(kept.clients_read_at, JUST_READ_FOR):
            return ClientsPanel.kept_in(kept, Listing.LISTED)
        read = reads.start(connection.token, _since(kept), connection.id)
    listing, rows = read.wait()
    if rows is not None and read.claim():
        get_connections().keep_recent_clients(connection.id, rows, read.started_at)
    if listing is Listing.ON_THEIR_WAY:
        reads.keep_when_read(connection.id, read)
    return _panel(listing, rows, read, kept)


def read(token: AccessToken, clients: ClientsRead | None = None) -> Reading:
    """Ask vcita for userinfo and the recent clients at once; wait for the clients briefly.

    `clients` is a read already started (by `for_dashboard`); else one starts here.
    Raises what reading userinfo raises (AccessRevoked, VcitaUnavailable, ...), and
    AccessRevoked from the clients list too; the clients' other failures leave the panel
    empty-handed, as the dashboard always allowed.
    """
    clients = clients or get_client_reads().start(token, since=None)
    userinfo = get_vcita().fetch_userinfo(token)
    read_at = datetime.now(UTC)
    listing, rows = clients.wait()
    # Another page that waited on the same read may be the one to keep its rows.
    ours = rows if rows is not None and clients.claim() else None
    listed_at = clients.started_at if ours is not None else None
    return Reading(Snapshot(userinfo, ours, read_at, listed_at), clients, listing, rows)


def init_app(app: Flask) -> None:
    """Give the app the threads that read vcita's clients lists beside userinfo."""
    app.extensions["client_reads"] = ClientReads(app)


def get_client_reads() -> ClientReads:
    """Return the current app's clients lists being read."""
    return current_app.extensions["client_reads"]


def _panel(
    listing: Listing, rows: list[dict] | None, read: ClientsRead, kept: Snapshot | None
) -> ClientsPanel:
    """Return the panel of a read: its clients if they came, else those kept, dated."""
    if listing is Listing.LISTED and rows is not None:
        return ClientsPanel(listing, [ClientRow.from_json(row) for row in rows], read.started_at)
    return ClientsPanel.kept_in(kept, listing)


def _since(kept: Snapshot | None) -> datetime | None:
    """Where a read may start: the fifth newest time of the clients kept, if there are five."""
    return fifth_newest(kept.recent_clients) if kept is not None else None


def _listed_if(fresh: bool) -> Listing:
    return Listing.LISTED if fresh else Listing.ON_THEIR_WAY


def _in_the_last(moment: datetime | None, period: timedelta) -> bool:
    return moment is not None and datetime.now(UTC) - moment < period
