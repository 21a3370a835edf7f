"""Each connection's subscription to vcita's uninstall event, at vcita and kept here.

After a connect, the connection subscribes to `application/uninstalled` with a target URL
under PUBLIC_BASE_URL that ends in a random secret of its own (`webhooks.py` receives the
deliveries); a connection that ends while its token works unsubscribes. A delivery is
found by the secret's sha256, never by the secret itself, and the URL is sealed like a
token, since it is needed again to unsubscribe.
"""

import hashlib
import logging
import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.exc import IntegrityError

from ..storage.connections import Connection, could_be_stored
from ..storage.database import Database
from ..storage.sealer import InvalidToken, Sealer
from ..storage.tables import webhook_subscriptions
from ..vcita import VcitaError
from ..vcita_client import get_vcita
from .background import get_background

logger = logging.getLogger(__name__)

EVENT = "application/uninstalled"
SUBSCRIBE = "/platform/v1/webhook/subscribe"
UNSUBSCRIBE = "/platform/v1/webhook/unsubscribe"
WEBHOOK_PATH = "/webhooks/vcita/"  # + the secret: where `webhooks.py` receives deliveries


def subscribe_soon(connection: Connection) -> None:
    """Subscribe a new connection off the request: the person's dashboard does not wait."""
    if current_app.config["PUBLIC_BASE_URL"] is not None:
        get_background().run(("subscribe", connection.id), subscribe, connection)


def subscribe(connection: Connection) -> None:
    """Subscribe a new connection to the uninstall event; a failure never fails the connect."""
    base = current_app.config["PUBLIC_BASE_URL"]
    subscriptions = get_subscriptions()
    if base is None or subscriptions.target_url_of(connection.id) is not None:
        return  # vcita could not reach us; or connecting again keeps the subscription
    secret = secrets.token_urlsafe(32)
    target_url = f"{base}{WEBHOOK_PATH}{secret}"
    try:
        get_vcita().api_post(
            connection.token, SUBSCRIBE, {"event": EVENT, "target_url": target_url}
        )
    except VcitaError as error:
        logger.warning("Could not subscribe to %s: %s", EVENT, error)
        return
    if not subscriptions.save(connection.id, secret, target_url):
        # Disconnected while vcita was asked: leave no subscription behind at vcita.
        _unsubscribe(connection, target_url)
        return
    logger.info("Subscribed to %s", EVENT)


def unsubscribe(connection: Connection) -> None:
    """Unsubscribe before the token is deleted; best effort: a failure is only logged."""
    target_url = get_subscriptions().target_url_of(connection.id)
    if target_url is not None:
        _unsubscribe(connection, target_url)


def _unsubscribe(connection: Connection, target_url: str) -> None:
    try:
        get_vcita().api_post(
            connection.token, UNSUBSCRIBE, {"event": EVENT, "target_url": target_url}
        )
    except VcitaError as error:
        logger.warning("Could not unsubscribe from %s: %s", EVENT, error)


class Subscriptions:
    """One subscription per connection: kept, looked up by its secret, read to unsubscribe."""

    def __init__(self, database: Database, sealer: Sealer) -> None:
        self.database = database
        self.sealer = sealer

    def save(self, connection_id: str, secret: str, target_url: str) -> bool:
        """Keep the connection's subscription: its secret's hash, its URL sealed.

        Return False if the connection is gone (disconnected while vcita was asked).
        """
        values = {
            "connection_id": connection_id,
            "secret_hash": _sha256(secret),
            "encrypted_target_url": self.sealer.seal(target_url),
            "subscribed_at": datetime.now(UTC),
        }
        statement = self.database.insert(webhook_subscriptions).values(values)
        try:
            with self.database.transaction() as db:
                db.execute(
                    statement.on_conflict_do_update(
                        index_elements=[webhook_subscriptions.c.connection_id],
                        set_={name: statement.excluded[name] for name in values},
                    )
                )
        except IntegrityError:  # the foreign key: no such connection any more
            return False
        return True

    def target_url_of(self, connection_id: str) -> str | None:
        """Return the target URL the connection is subscribed with, or None."""
        with self.database.transaction() as db:
            sealed = db.execute(
                sa.select(webhook_subscriptions.c.encrypted_target_url).where(
                    webhook_subscriptions.c.connection_id == connection_id
                )
            ).scalar_one_or_none()
        if sealed is None:
            return None
        try:
            return self.sealer.open(sealed)
        except InvalidToken:
            return None

    def connection_for(self, secret: str) -> str | None:
        """Return the id of the connection whose target URL carries `secret`, or None."""
        if not could_be_stored(secret):
            return None
        with self.database.transaction() as db:
            return db.execute(
                sa.select(webhook_subscriptions.c.connection_id).where(
                    webhook_subscriptions.c.secret_hash == _sha256(secret)
                )
            ).scalar_one_or_none()


def init_app(app: Flask) -> None:
    """Keep webhook subscriptions on the app's database."""
    app.extensions["subscriptions"] = Subscriptions(
        app.extensions["database"], app.extensions["sealer"]
    )


def get_subscriptions() -> Subscriptions:
    """Return the current app's webhook subscriptions."""
    return current_app.extensions["subscriptions"]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
