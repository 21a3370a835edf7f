"""What the dashboard shows, read from vcita in one round trip, and kept for an outage.

The dashboard shows two answers of vcita's: userinfo (the business and staff member) and
the recent clients list. Both need only the token, so they are asked at once, on two of
the client's pooled connections: a dashboard costs one round trip to vcita, not two. The
callback reads them the same way, right after the exchange, and the connection keeps
what vcita said (sealed, with the time it was read). `for_dashboard` decides what a
dashboard shows:

- right after the connect: the copy the callback read a moment ago, without asking again;
- otherwise, vcita's answer read live, with the clients last listed if only that list
  failed, kept for next time;
- when vcita does not answer: the kept copy, with a banner that says so.
"""

import json
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from flask import Flask, current_app

from ..storage.connections import Connection, Snapshot, get_connections
from ..vcita import AccessToken, VcitaUnavailable
from ..vcita_client import get_vcita
from .recent_clients import ClientRow, recent_clients

logger = logging.getLogger(__name__)

# Each one waits on vcita for a clients list while a request thread reads userinfo: as
# many as the request threads a worker runs (gunicorn.conf.py), and a few more.
READING_THREADS = 32
# The callback's copy is shown instead of a live read only this soon after the connect.
JUST_CONNECTED_FOR = timedelta(seconds=30)


@dataclass(frozen=True)
class Dashboard:
    """What the dashboard shows of vcita's answers, and why it is not live when it is not."""

    snapshot: Snapshot
    unanswered: VcitaUnavailable | None = None  # vcita did not answer: the kept copy

    @property
    def userinfo(self) -> dict:
        return self.snapshot.userinfo

    @property
    def userinfo_json(self) -> str:
        """Return userinfo as the page shows it whole: indented, keys sorted."""
        return json.dumps(self.userinfo, indent=2, sort_keys=True, ensure_ascii=False)

    @property
    def recent_clients(self) -> list[ClientRow] | None:
        """Return the recent clients panel's rows; None if vcita never listed them."""
        return client_rows(self.snapshot)


def for_dashboard(connection: Connection, just_connected: bool) -> Dashboard:
    """Decide what the dashboard shows of the connection's business (see the module's list).

    Raises AccessRevoked when vcita refuses the token, and VcitaUnavailable when vcita
    does not answer and nothing is kept to show instead.
    """
    kept = connection.snapshot
    if just_connected and kept is not None and _read_in_the_last(kept, JUST_CONNECTED_FOR):
        return Dashboard(kept)  # the callback read it a moment ago
    try:
        snapshot = with_last_clients(read(connection.token), kept)
    except VcitaUnavailable as error:
        if kept is None:
            raise  # nothing kept to show: the error page says vcita did not answer
        logger.warning("vcita did not answer (%s); showing the kept copy", error)
        return Dashboard(kept, unanswered=error)
    get_connections().keep_snapshot(connection.id, snapshot)
    return Dashboard(snapshot)


def read(token: AccessToken) -> Snapshot:
    """Ask vcita for userinfo and the recent clients at once; return both.

    Raises what reading userinfo raises (AccessRevoked, VcitaUnavailable, ...), and
    AccessRevoked from the clients list too; any other failure of the clients list
    leaves the panel empty-handed (None), as the dashboard always allowed.
    """
    # The app itself, not the proxy, for the other thread (Flask types the proxy as the app).
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    clients = _readers().submit(_recent_clients_in, app, token)
    userinfo = get_vcita().fetch_userinfo(token)
    rows, now = _rows(clients), datetime.now(UTC)
    return Snapshot(userinfo, rows, now, clients_read_at=None if rows is None else now)


def with_last_clients(snapshot: Snapshot, kept: Snapshot | None) -> Snapshot:
    """Return `snapshot`, with the clients `kept` lists if vcita did not answer for them now."""
    if snapshot.recent_clients is not None or kept is None or kept.recent_clients is None:
        return snapshot
    return replace(
        snapshot, recent_clients=kept.recent_clients, clients_read_at=kept.clients_read_at
    )


def client_rows(snapshot: Snapshot) -> list[ClientRow] | None:
    """Return the recent clients a snapshot keeps, as the dashboard's panel shows them."""
    if snapshot.recent_clients is None:
        return None
    return [ClientRow.from_json(row) for row in snapshot.recent_clients]


def init_app(app: Flask) -> None:
    """Give the app the threads that read vcita's clients list beside userinfo."""
    app.extensions["snapshot_readers"] = ThreadPoolExecutor(READING_THREADS, "vcita-reading")


def _read_in_the_last(snapshot: Snapshot, period: timedelta) -> bool:
    return datetime.now(UTC) - snapshot.read_at < period


def _readers() -> ThreadPoolExecutor:
    return current_app.extensions["snapshot_readers"]


def _recent_clients_in(app: Flask, token: AccessToken) -> list[ClientRow] | None:
    with app.app_context():
        return recent_clients(token)


def _rows(clients: Future) -> list[dict] | None:
    rows = clients.result()  # AccessRevoked, raised in its thread, is raised here
    return None if rows is None else [row.as_json() for row in rows]
