"""Which connections this browser made, as its session remembers them.

The session holds ids only, never a token. It names the connection the dashboard
shows (the newest) and every connection the browser made since it last disconnected
(two staff logins of one business, say), so that Disconnect removes all of them and
orphans no token.
"""

from flask import g, session

from ..session_keys import (
    CONNECTION,
    CONNECTIONS,
    FLOW_TRACE,
    HANDOFF_CODE,
    JUST_CONNECTED,
    KEPT_ON_ROTATION,
    PENDING_FLOWS,
)
from ..storage.connections import Connection, get_connections
from . import flows

MAX_CONNECTIONS_PER_BROWSER = 10  # bounded, like everything in the session cookie


def current_connection() -> Connection | None:
    """Return this browser's connection, if it has one that still exists."""
    if "connection" not in g:
        connection_id = session.get(CONNECTION)
        g.connection = None
        # Not a string: a session written by another version of the app.
        if isinstance(connection_id, str) and connection_id:
            g.connection = get_connections().get(connection_id)
    return g.connection


def connections_in_session() -> list[str]:
    """Return the ids of every connection this browser made, oldest first."""
    known = session.get(CONNECTIONS)
    ids = [item for item in known if isinstance(item, str)] if isinstance(known, list) else []
    current = session.get(CONNECTION)
    if isinstance(current, str) and current and current not in ids:
        ids.append(current)  # a session from before the app kept the list
    return ids


def other_connections_kept(connection: Connection) -> int:
    """Return how many other connections this browser made are still stored.

    Disconnect removes them too: the dashboard says so before the person presses it.
    """
    others = [known for known in connections_in_session() if known != connection.id]
    return get_connections().count_existing(others)


def rotate_session(connection_id: str) -> None:
    """Start a fresh session for the browser now connected to `connection_id`.

    No session fixation: a cookie captured before connecting never grants the dashboard.
    Only the keys in KEPT_ON_ROTATION outlive it (flows still pending in other tabs, the
    launch vcita opened this page with, the connections made before), so Disconnect still
    finds every connection.
    """
    known = [known for known in connections_in_session() if known != connection_id]
    kept = {key: session[key] for key in KEPT_ON_ROTATION if session.get(key)}
    kept[PENDING_FLOWS] = flows.pending_flows()  # only those that have not expired
    session.clear()
    session.update({key: value for key, value in kept.items() if value})
    session[CONNECTIONS] = [*known, connection_id][-MAX_CONNECTIONS_PER_BROWSER:]
    session[CONNECTION] = connection_id
    flows.fit_session_cookie()


def start_connected_session(
    connection: Connection, *, flow_trace: str | None, handoff_code: str | None
) -> None:
    """Rotate the session onto a connection the callback just made, with what it wrote.

    The connect's trace and the popup's handoff code belong to the fresh session, so they
    are written after the rotation, here, and the dashboard that follows renders what the
    callback read (`just_connected`): in the callback's browser, or in vcita's frame that
    redeems the popup's handoff code.
    """
    rotate_session(connection.id)
    session[JUST_CONNECTED] = connection.id
    if flow_trace is not None:
        session[FLOW_TRACE] = flow_trace
    if handoff_code is not None:
        session[HANDOFF_CODE] = handoff_code


def just_connected(connection: Connection) -> bool:
    """Say whether the callback just made this connection in this browser (once per connect)."""
    return session.pop(JUST_CONNECTED, None) == connection.id


def take_handoff_code() -> str | None:
    """Take the popup's handoff code out of the session, to render it once."""
    code = session.pop(HANDOFF_CODE, None)
    return code if isinstance(code, str) else None


def choose_connection(connection_id: str) -> None:
    """Show `connection_id`, one this browser made before, on the dashboard."""
    session[CONNECTION] = connection_id
    g.pop("connection", None)  # read again, if this request shows it


def connection_for(business_uid: str, staff_uid: str | None) -> str | None:
    """Return the id of this browser's connection to the business (the staff member's first).

    Only connections this browser made are looked at: a launch parameter that names a
    business never shows that business's data to a browser that did not connect it.
    """
    mine = list(reversed(connections_in_session()))
    whose = get_connections().whose(mine)
    of_business = [known for known in mine if known in whose and whose[known][0] == business_uid]
    of_staff = [known for known in of_business if whose[known][1] == staff_uid]
    return next(iter(of_staff or of_business), None)


def forget_in_session(connection_id: str) -> None:
    """Drop one connection from this browser's session; the newest left becomes current."""
    remaining = [known for known in connections_in_session() if known != connection_id]
    session.pop(CONNECTION, None)
    session[CONNECTIONS] = remaining
    if remaining:
        session[CONNECTION] = remaining[-1]
