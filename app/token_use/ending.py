"""Ending a connection: one way, whatever the reason it ends.

Disconnect, `flask vcita forget`, vcita refusing the token (a 401 on the dashboard or in
the CLI) and a confirmed uninstall all end a connection here, and its token leaves the
connections table at once (bolt-python handles every uninstall and revocation in one
place the same way). When someone here asked (Disconnect, forget), vcita must hear it
too: the webhook is unsubscribed, then the token revoked, so that no copy of it (an old
backup of the database) works any more. Both calls are written to `pending_calls` in the
transaction that deletes the connection, then made; what vcita does not confirm is asked
again until it answers (`calls.py`), and what it refuses waits for an operator. When vcita
already refused the token, it is told nothing.
"""

import logging
import time
from collections.abc import Iterable
from enum import Enum

from ..storage.connections import get_connections
from ..storage.database import get_db
from ..vcita import AccessRevoked, VcitaError
from ..vcita_client import get_vcita
from . import calls
from .pending_calls import ClaimedCall
from .subscriptions import get_subscriptions

logger = logging.getLogger(__name__)

# How long a Disconnect waits on vcita before leaving the calls not yet made to the
# retrier: each may take the client's timeouts (13 s), and gunicorn gives a request 30.
TELLING_VCITA_WITHIN = 10  # seconds in which calls are still started


class Ending(Enum):
    """Why a connection ends."""

    DISCONNECTED = "the person pressed Disconnect"
    FORGOTTEN = "an operator ran `flask vcita forget`"
    REVOKED = "vcita no longer accepts the token (401)"
    UNINSTALLED = "vcita confirmed the app was uninstalled"

    @property
    def token_still_works(self) -> bool:
        """Say whether vcita may still accept the token: someone here asked to end it."""
        return self in (Ending.DISCONNECTED, Ending.FORGOTTEN)


class Ended(Enum):
    """What ending a connection left at vcita; its token is deleted here either way."""

    VCITA_STOPPED = "vcita no longer accepts the token"
    VCITA_ASKED_AGAIN = "vcita did not confirm it stopped accepting the token: asked again"
    VCITA_REFUSED = "vcita refused to revoke the token: kept for an operator, never asked again"


def end_connection(connection_id: str, why: Ending) -> Ended | None:
    """End a stored connection: delete its token, tell vcita what it must hear.

    Return None if there was no such connection. A connection whose token cannot be read
    (a key missing from TOKEN_ENCRYPTION_KEY) is ended too: its revocation waits, sealed,
    until the key is back.
    """
    ended = end_connections([connection_id], why)
    return ended[0] if ended else None


def end_connections(connection_ids: Iterable[str], why: Ending) -> list[Ended]:
    """End these connections: every token leaves the table first, then vcita is told.

    Return what each connection that existed left at vcita, in order.
    """
    removed = [owed for known in connection_ids if (owed := _remove(known, why)) is not None]
    deadline = time.monotonic() + TELLING_VCITA_WITHIN
    return [_tell_vcita(owed, deadline) for owed in removed]


def _remove(connection_id: str, why: Ending) -> list[ClaimedCall] | None:
    """Delete a connection and write down what vcita must hear, in one transaction."""
    with get_db().transaction():
        sealed_target_url = get_subscriptions().remove(connection_id)
        removed = get_connections().remove(connection_id)
        if removed is None:
            return None
        logger.info("A connection ended: %s", why.value)
        if not why.token_still_works:
            return []  # vcita refused the token already: there is nothing to tell it
        return calls.owe_goodbyes(removed, sealed_target_url)


def _tell_vcita(owed: list[ClaimedCall], deadline: float) -> Ended:
    """Make the calls a connection owes vcita (the revoke last), while there is time."""
    outcomes = [
        calls.make(call) if time.monotonic() < deadline else calls.Outcome.RETRY for call in owed
    ]
    if not outcomes or outcomes[-1] is calls.Outcome.DONE:
        return Ended.VCITA_STOPPED
    if outcomes[-1] is calls.Outcome.REFUSED:
        return Ended.VCITA_REFUSED
    return Ended.VCITA_ASKED_AGAIN


def end_if_vcita_refuses(connection_id: str, why: Ending) -> bool:
    """Ask vcita (userinfo) whether the token still works; end the connection on a 401.

    A webhook delivery proves nothing, and a 401 on one API path may be a permission vcita
    refuses there: only userinfo's 401 says the token itself is dead.
    """
    connection = get_connections().get(connection_id)
    if connection is None:
        return False
    try:
        get_vcita().fetch_userinfo(connection.token)
    except AccessRevoked:
        logger.info("vcita confirmed the token is revoked: the connection is forgotten")
        return end_connection(connection_id, why) is not None
    except VcitaError as error:
        logger.info("vcita did not confirm a revocation (%s): the connection is kept", error)
        return False
    logger.info("vcita still accepts the token: the connection is kept")
    return False
