"""The ledger of `state` values already used, shared by every worker and instance.

A signed session cookie cannot forget: a copy taken before the callback still holds
the state. So each state a callback uses is written here, and a second callback with
it is refused (RFC 9700 §4.7). Only its sha256 is kept, until the flow would expire.
"""

import hashlib
from datetime import datetime

from flask import Flask, current_app
from sqlalchemy.exc import IntegrityError

from ..storage.database import Database, insert_expiring
from ..storage.tables import used_states


class UsedStates:
    """Mark states used, once each, on the app's database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def mark_used(self, state: str, expires_at: datetime) -> bool:
        """Record that a callback used `state`; return False if one already had.

        The unique key makes this hold across every worker and instance, so a state
        is accepted once even when two callbacks carry it at the same moment.
        """
        state_hash = hashlib.sha256(state.encode()).hexdigest()
        try:
            with self.database.transaction() as db:
                # A flow past its expiry is refused before its state gets here, so
                # expired rows protect nothing: they are pruned as states are added.
                insert_expiring(
                    db, used_states, {"state_hash": state_hash, "expires_at": expires_at}
                )
        except IntegrityError:
            return False
        return True


def init_app(app: Flask) -> None:
    """Keep the ledger on the app's database."""
    app.extensions["used_states"] = UsedStates(app.extensions["database"])


def get_used_states() -> UsedStates:
    """Return the current app's ledger of used states."""
    return current_app.extensions["used_states"]
