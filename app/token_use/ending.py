"""Ending a connection: one way, whatever the reason it ends.

Disconnect, `flask vcita forget`, vcita refusing the token (a 401 on the dashboard or in
the CLI) and a confirmed uninstall all end a connection here: what vcita must still hear
is said while the token works, then the token is deleted (bolt-python handles every
uninstall and revocation in one place the same way).
"""

import logging
from enum import Enum

from ..storage.connections import get_connections
from ..vcita import AccessRevoked, VcitaError
from ..vcita_client import get_vcita
from .subscriptions import unsubscribe

logger = logging.getLogger(__name__)


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


def end_connection(connection_id: str, why: Ending) -> bool:
    """End a stored connection: tell vcita what it must hear, delete the token; True if it was.

    A connection whose token cannot be read (a key missing from TOKEN_ENCRYPTION_KEY) is
    deleted too: nothing can be said to vcita with it.
    """
    connections = get_connections()
    if why.token_still_works and (connection := connections.get(connection_id)) is not None:
        unsubscribe(connection)  # while the token still works
    ended = connections.delete(connection_id)
    if ended:
        logger.info("A connection ended: %s", why.value)
    return ended


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
        return end_connection(connection_id, why)
    except VcitaError as error:
        logger.info("vcita did not confirm a revocation (%s): the connection is kept", error)
        return False
    logger.info("vcita still accepts the token: the connection is kept")
    return False
