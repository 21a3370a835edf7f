"""Ending a connection: one way, whatever the reason it ends.

Disconnect, `flask vcita forget`, vcita refusing the token (a 401 on the dashboard or in
the CLI) and a confirmed uninstall all end a connection here: what vcita must still hear
is said while the token works, then the token is deleted (bolt-python handles every
uninstall and revocation in one place the same way).
"""

import logging
from enum import Enum

from ..storage.connections import get_connections
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
