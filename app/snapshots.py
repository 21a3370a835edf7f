"""What the dashboard shows, read from vcita in one round trip, and kept for an outage.

The dashboard shows two answers of vcita's: userinfo (the business and staff member) and
the recent clients list. Both need only the token, so they are asked at once, on two of
the client's pooled connections: a dashboard costs one round trip to vcita, not two. The
callback reads them the same way, right after the exchange, and the connection keeps
what vcita said (encrypted, with the time it was read): the dashboard that follows the
connect renders from that copy without asking again, and a later dashboard falls back
to it, with a banner, when vcita does not answer.
"""

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime

from flask import Flask, current_app

from .client import get_client
from .recent_clients import ClientRow, recent_clients
from .store import Snapshot
from .vcita import AccessToken

# Each one waits on vcita for a clients list while a request thread reads userinfo: as
# many as the request threads a worker runs (gunicorn.conf.py), and a few more.
READING_THREADS = 32


def read(token: AccessToken) -> Snapshot:
    """Ask vcita for userinfo and the recent clients at once; return both.

    Raises what reading userinfo raises (AccessRevoked, VcitaUnavailable, ...), and
    AccessRevoked from the clients list too; any other failure of the clients list
    leaves the panel empty-handed (None), as the dashboard always allowed.
    """
    clients = _readers().submit(_recent_clients_in, current_app._get_current_object(), token)
    userinfo = get_client().fetch_userinfo(token)
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


def _readers() -> ThreadPoolExecutor:
    return current_app.extensions["snapshot_readers"]


def _recent_clients_in(app: Flask, token: AccessToken) -> list[ClientRow] | None:
    with app.app_context():
        return recent_clients(token)


def _rows(clients: Future) -> list[dict] | None:
    rows = clients.result()  # AccessRevoked, raised in its thread, is raised here
    return None if rows is None else [row.as_json() for row in rows]
