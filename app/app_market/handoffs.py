"""Bringing a connection made in a popup back into vcita's frame, safely.

Inside vcita's frame the app connects through a popup: vcita's sign-in page refuses to
be framed. The popup is a top-level window, so it holds the app's ordinary cookies,
while the frame holds its own, partitioned ones (CHIPS): the two share no session. The
connection is carried across in three steps, each bound to one of the two:

1. The frame's session holds a random `secret`; the popup is opened with its hash,
   the `binding`, which rides through the flow in the popup's pending flow.
2. The popup's callback saves the connection and offers it under a random one-time
   `code`, stored (hashed) with the binding. The popup's page hands the code to the
   window that opened it with `postMessage`, to the app's own origin only.
3. The frame posts the code (with its CSRF token). It is redeemed only if it is
   unexpired, unused, and its binding is the hash of the secret in the frame's own
   session; then the frame's session is rotated onto the connection.

The code never travels in a URL and reaches only a window of the app's origin, so a
link that makes someone else connect with an attacker's binding hands the attacker
nothing; and a code alone, stolen, does not redeem without the frame's secret. Polling
for "any connection offered under my binding" would not be safe: anyone who can put a
binding in a link could then receive another person's connection.
"""

import base64
import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import Flask, current_app, session

from .. import session_keys
from ..storage.database import Database, insert_expiring
from ..storage.tables import handoffs

SECRET_LIFETIME = timedelta(minutes=10)  # as long as a pending flow lives
CODE_LIFETIME = timedelta(minutes=2)  # the popup's page delivers it at once
BINDING_LENGTH = 43  # a sha256, unpadded url-safe base64


def _hash(value: str) -> str:
    digest = hashlib.sha256(value.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def binding_for_this_session() -> str:
    """Return the binding to open the popup with, keeping its secret in this session."""
    kept = session.get(session_keys.HANDOFF_SECRET)
    if not (
        isinstance(kept, dict)
        and isinstance(kept.get("secret"), str)
        and isinstance(kept.get("made_at"), int | float)
        and time.time() - kept["made_at"] < SECRET_LIFETIME.total_seconds()
    ):
        kept = {"secret": secrets.token_urlsafe(32), "made_at": time.time()}
        session[session_keys.HANDOFF_SECRET] = kept
    return _hash(kept["secret"])


def is_binding(value: object) -> bool:
    """Say whether `value` has the form of a binding (a link may carry anything)."""
    return (
        isinstance(value, str)
        and len(value) == BINDING_LENGTH
        and value.isascii()
        and all(character.isalnum() or character in "-_" for character in value)
    )


class Handoffs:
    """One-time codes that carry a connection from a popup to a frame's session."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def offer(self, binding: str | None, connection_id: str) -> str | None:
        """Offer `connection_id` to the session whose secret hashes to `binding`.

        Return the one-time code, for the popup's page to hand to its opener; None for a
        flow that no frame started (no binding).
        """
        if binding is None:
            return None
        code = secrets.token_urlsafe(32)
        with self.database.transaction() as db:
            insert_expiring(
                db,
                handoffs,
                {
                    "code_hash": _hash(code),
                    "binding": binding,
                    "connection_id": connection_id,
                    "expires_at": datetime.now(UTC) + CODE_LIFETIME,
                },
            )
        return code

    def redeem(self, code: str) -> str | None:
        """Return the connection `code` carries to this session, once; else None."""
        kept = session.get(session_keys.HANDOFF_SECRET)
        secret = kept.get("secret") if isinstance(kept, dict) else None
        if not isinstance(secret, str) or not isinstance(code, str) or not code:
            return None
        code_hash = _hash(code)
        with self.database.transaction() as db:
            row = db.execute(
                sa.select(handoffs.c.binding, handoffs.c.connection_id).where(
                    handoffs.c.code_hash == code_hash,
                    handoffs.c.expires_at >= datetime.now(UTC),
                )
            ).first()
            if row is None or not hmac.compare_digest(row.binding, _hash(secret)):
                return None
            # Whoever deletes the row redeemed it: two posts of one code cannot both win.
            deleted = db.execute(sa.delete(handoffs).where(handoffs.c.code_hash == code_hash))
            if deleted.rowcount != 1:
                return None
        session.pop(session_keys.HANDOFF_SECRET, None)
        return row.connection_id


def init_app(app: Flask) -> None:
    """Keep handoffs on the app's database."""
    app.extensions["handoffs"] = Handoffs(app.extensions["database"])


def get_handoffs() -> Handoffs:
    """Return the current app's handoffs."""
    return current_app.extensions["handoffs"]
