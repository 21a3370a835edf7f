"""Which connections this browser made, as its session remembers them.

The session holds ids only, never a token. It names the connection the dashboard
shows (the newest) and every connection the browser made since it last disconnected
(two staff logins of one business, say), so that Disconnect removes all of them and
orphans no token.
"""

from flask import g, session

from . import flows, launch
from .store import Connection, get_store

CONNECTION_KEY = "connection_id"  # the connection the dashboard shows: the newest
CONNECTIONS_KEY = "connection_ids"
MAX_CONNECTIONS_PER_BROWSER = 10  # bounded, like everything in the session cookie


def current_connection() -> Connection | None:
    """Return this browser's connection, if it has one that still exists."""
    if "connection" not in g:
        connection_id = session.get(CONNECTION_KEY)
        # Not a string: a session written by another version of the app.
        known = isinstance(connection_id, str) and connection_id
        g.connection = get_store().get_connection(connection_id) if known else None
    return g.connection


def connections_in_session() -> list[str]:
    """Return the ids of every connection this browser made, oldest first."""
    known = session.get(CONNECTIONS_KEY)
    ids = [item for item in known if isinstance(item, str)] if isinstance(known, list) else []
    current = session.get(CONNECTION_KEY)
    if isinstance(current, str) and current and current not in ids:
        ids.append(current)  # a session from before the app kept the list
    return ids


def rotate_session(connection_id: str) -> None:
    """Start a fresh session for the connected browser (no session fixation).

    Everything is dropped except flows still pending in other tabs, the launch vcita
    opened this page with, and the connections this browser made before, so a cookie
    captured before connecting never grants the dashboard, and Disconnect still finds
    every connection.
    """
    carried = flows.pending_flows()
    launched = session.get(launch.SESSION_KEY)
    known = [known for known in connections_in_session() if known != connection_id]
    session.clear()
    if carried:
        session[flows.SESSION_KEY] = carried
    if launched:
        session[launch.SESSION_KEY] = launched  # what vcita opened this page for
    session[CONNECTIONS_KEY] = [*known, connection_id][-MAX_CONNECTIONS_PER_BROWSER:]
    session[CONNECTION_KEY] = connection_id
    flows.fit_session_cookie()


def choose_connection(connection: Connection) -> None:
    """Show `connection`, one this browser made before, on the dashboard."""
    session[CONNECTION_KEY] = connection.id
    g.connection = connection


def connection_for(business_uid: str, staff_uid: str | None) -> Connection | None:
    """Return this browser's connection to the business (the staff member's first).

    Only connections this browser made are looked at: a launch parameter that names a
    business never shows that business's data to a browser that did not connect it.
    """
    store = get_store()
    mine = [store.get_connection(known) for known in reversed(connections_in_session())]
    of_business = [found for found in mine if found and found.business_uid == business_uid]
    of_staff = [found for found in of_business if found.staff_uid == staff_uid]
    return (of_staff or of_business or [None])[0]


def forget_in_session(connection_id: str) -> None:
    """Drop one connection from this browser's session; the newest left becomes current."""
    remaining = [known for known in connections_in_session() if known != connection_id]
    session.pop(CONNECTION_KEY, None)
    session[CONNECTIONS_KEY] = remaining
    if remaining:
        session[CONNECTION_KEY] = remaining[-1]
