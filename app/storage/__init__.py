"""What the app keeps: the database and its migrations, the sealer, and the connections.

Every other thing stored has a small store of its own beside the feature it serves (used
states and flow traces in `connect/`, handoffs in `app_market/`, webhook subscriptions in
`token_use/`), on this database, sealing what is secret with this sealer.
"""

from flask import Flask

from . import database
from .connections import ConnectionStore
from .sealer import Sealer


def init_app(app: Flask) -> None:
    """Open the database, and keep the connections on it, sealed with TOKEN_ENCRYPTION_KEY."""
    database.init_app(app)
    sealer = Sealer(app.config["TOKEN_ENCRYPTION_KEYS"])
    app.extensions["sealer"] = sealer
    app.extensions["connections"] = ConnectionStore(app.extensions["database"], sealer)
