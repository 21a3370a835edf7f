"""Each connection's subscription to vcita's uninstall event, as kept here.

After a connect, the connection subscribes to `application/uninstalled` with a target URL
under PUBLIC_BASE_URL that ends in a random secret of its own (`calls.py` asks vcita,
`webhooks.py` receives the deliveries); a connection that ends while its token works
unsubscribes. A delivery is found by the secret's sha256, never by the secret itself,
and the URL is sealed like a token, since it is needed again to unsubscribe.
"""

import hashlib
import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.exc import IntegrityError

from ..storage.connections import could_be_stored
from ..storage.database import Database
from ..storage.sealer import InvalidToken, Sealer
from ..storage.tables import webhook_subscriptions

EVENT = "application/uninstalled"
SUBSCRIBE = "/platform/v1/webhook/subscribe"
UNSUBSCRIBE = "/platform/v1/webhook/unsubscribe"
WEBHOOKS = "/platform/v1/webhooks"  # the token's business and app's subscriptions
WEBHOOK_PATH = "/webhooks/vcita/"  # + the secret: where `webhooks.py` receives deliveries


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

    def remove(self, connection_id: str) -> str | None:
        """Forget the connection's subscription; return its target URL, still sealed, or None."""
        with self.database.transaction() as db:
            return db.execute(
                sa.delete(webhook_subscriptions)
                .where(webhook_subscriptions.c.connection_id == connection_id)
                .returning(webhook_subscriptions.c.encrypted_target_url)
            ).scalar_one_or_none()

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


def new_target_url(base: str) -> str:
    """Return a new target URL under PUBLIC_BASE_URL, ending in a secret of its own."""
    return f"{base}{WEBHOOK_PATH}{secrets.token_urlsafe(32)}"


def secret_of(target_url: str) -> str:
    """Return the secret a target URL ends in."""
    return target_url.rpartition("/")[2]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
