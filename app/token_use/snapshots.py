"""What the dashboard shows, read from vcita without waiting on the clients list, and kept.

The dashboard shows two answers of vcita's: userinfo (the business and staff member) and
the recent clients list. Both need only the token, so they are asked at once, on two of
the client's pooled connections. A page waits for userinfo, and for the clients only a
moment longer (`client_reads.CLIENTS_BUDGET`): a list that comes later is not waited for.
The panel then says the clients are on their way, and the page's script
(static/recent_clients.js) fetches the panel alone (`clients_panel`) until they are there;
the read goes on in the background, and its clients are kept with the connection when
they arrive.

The callback reads the same way, right after the exchange, and the connection keeps what
vcita said (sealed, with the time it was read). `for_dashboard` decides what a dashboard
shows:

- right after the connect: the copy the callback read a moment ago, without asking again;
- otherwise, vcita's answer read live, with the clients last listed while new ones are
  on their way or if vcita did not list them, kept for next time;
- when vcita does not answer: the kept copy, with a banner that says so.
"""

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..storage.connections import Connection, Snapshot, get_connections
from ..vcita import AccessRevoked, AccessToken, VcitaUnavailable
from ..vcita_client import get_vcita
from .client_reads import JUST_READ_FOR, ClientsRead, Listing, get_client_reads
from .ending import Ending, end_connection, end_if_vcita_refuses
from .recent_clients import ClientRow, fifth_newest

logger = logging.getLogger(__name__)


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


def for_dashboard(connection: Connection, just_connected: bool) -> Dashboard:
    """Decide what the dashboard shows of the connection's business (see the module's list).

    Raises AccessRevoked when vcita refuses the token at userinfo, which says the token
    itself is dead: the connection is then ended. Raises VcitaUnavailable when vcita does
    not answer and nothing is kept to show instead.
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
    except AccessRevoked:
        end_connection(connection.id, Ending.REVOKED)
        raise
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
    otherwise the read under way, or a new one, is given the budget a page gives it.
    A 401 on the clients list may be a permission vcita refuses there: the connection
    ends, and AccessRevoked is raised, only if userinfo refuses the token too; else the
    panel says the clients cannot be shown.
    """
    kept = connection.snapshot
    reads = get_client_reads()
    read = reads.latest(connection.id)
    if read is None:
        if kept is not None and _in_the_last(kept.clients_read_at, JUST_READ_FOR):
            return ClientsPanel.kept_in(kept, Listing.LISTED)
        read = reads.start(connection.token, _since(kept), connection.id)
    try:
        listing, rows = read.wait()
    except AccessRevoked:
        if end_if_vcita_refuses(connection.id, Ending.REVOKED):
            raise
        return ClientsPanel.kept_in(kept, Listing.UNANSWERED)
    if rows is not None and read.claim():
        get_connections().keep_recent_clients(connection.id, rows, read.started_at)
    if listing is Listing.ON_THEIR_WAY:
        reads.keep_when_read(connection.id, read)
    return _panel(listing, rows, read, kept)


def read(token: AccessToken, clients: ClientsRead | None = None) -> Reading:
    """Ask vcita for userinfo and the recent clients at once; wait for the clients briefly.

    `clients` is a read already started (by `for_dashboard`); else one starts here.
    Raises what reading userinfo raises (AccessRevoked, VcitaUnavailable, ...). The
    clients' failures leave the panel empty-handed, as the dashboard always allowed, a 401
    too: userinfo has just accepted the token, so vcita refuses only the clients list.
    """
    clients = clients or get_client_reads().start(token, since=None)
    userinfo = get_vcita().fetch_userinfo(token)
    read_at = datetime.now(UTC)
    try:
        listing, rows = clients.wait()
    except AccessRevoked:
        listing, rows = Listing.UNANSWERED, None
    # Another page that waited on the same read may be the one to keep its rows.
    ours = rows if rows is not None and clients.claim() else None
    listed_at = clients.started_at if ours is not None else None
    return Reading(Snapshot(userinfo, ours, read_at, listed_at), clients, listing, rows)


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
