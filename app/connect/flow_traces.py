"""Flow traces: what went over the wire in a connect, kept a few minutes for its dashboard.

Secrets are already taken out (`trace.py`), but userinfo names a person: the steps are
sealed like a token, tied to the connection they describe (Disconnect deletes them too),
and read back only with the random id the browser's session holds.
"""

import json
import secrets
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import Flask, current_app

from ..storage.connections import could_be_stored
from ..storage.database import Database, insert_expiring
from ..storage.sealer import InvalidToken, Sealer
from ..storage.tables import flow_traces

# A trace is for the developer looking at the dashboard right after connecting.
TRACE_LIFETIME = timedelta(minutes=15)


class FlowTraces:
    """Keep a connect's trace for a short while, and read it back by its id."""

    def __init__(self, database: Database, sealer: Sealer) -> None:
        self.database = database
        self.sealer = sealer

    def save(self, connection_id: str, steps: list) -> str:
        """Keep the steps of a connect to `connection_id`; return the id that reads them."""
        trace_id = secrets.token_urlsafe(16)
        with self.database.transaction() as db:
            insert_expiring(
                db,
                flow_traces,
                {
                    "id": trace_id,
                    "connection_id": connection_id,
                    "encrypted_steps": self.sealer.seal(json.dumps(steps)),
                    "expires_at": datetime.now(UTC) + TRACE_LIFETIME,
                },
            )
        return trace_id

    def get(self, trace_id: str, connection_id: str) -> list | None:
        """Return the unexpired trace `trace_id` of `connection_id`, or None."""
        if not (could_be_stored(trace_id) and could_be_stored(connection_id)):
            return None
        with self.database.transaction() as db:
            sealed = db.execute(
                sa.select(flow_traces.c.encrypted_steps)
                .where(flow_traces.c.id == trace_id)
                .where(flow_traces.c.connection_id == connection_id)
                .where(flow_traces.c.expires_at >= datetime.now(UTC))
            ).scalar_one_or_none()
        if sealed is None:
            return None
        try:
            return json.loads(self.sealer.open(sealed))
        except InvalidToken:
            return None  # sealed under a key this deployment no longer has


def init_app(app: Flask) -> None:
    """Keep flow traces on the app's database."""
    app.extensions["flow_traces"] = FlowTraces(
        app.extensions["database"], app.extensions["sealer"]
    )


def get_flow_traces() -> FlowTraces:
    """Return the current app's flow traces."""
    return current_app.extensions["flow_traces"]
