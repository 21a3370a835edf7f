"""Connections: a business's token, when it was last used, and what vcita last said.

A connection is one vcita business (and the staff member who approved the app) with
the access token vcita gave us in step 3 of its guide. The token lives about 20 years
and acts for the whole business, so it is stored only sealed (`sealer.py`), and
connecting again replaces it rather than adding a second copy. A token sealed with an
older key is sealed again with the newest the first time it is read.
"""

import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from flask import current_app

from ..vcita import AccessToken
from .database import Database
from .sealer import InvalidToken, Sealer
from .tables import connection_activity, connections, flow_traces

logger = logging.getLogger(__name__)

# Where a connection keeps what vcita last said (Snapshot), encrypted but for the times.
USERINFO_COLUMNS = ("encrypted_userinfo", "userinfo_read_at")
CLIENTS_COLUMNS = ("encrypted_recent_clients", "recent_clients_read_at")
SNAPSHOT_COLUMNS = (*USERINFO_COLUMNS, *CLIENTS_COLUMNS)
# What connecting again replaces; the id and connected_at of the first connection stay,
# so every browser that holds the id keeps finding the connection.
REPLACED_ON_RECONNECT: tuple[str, ...] = (
    "encrypted_access_token",
    "token_type",
    "issued_at",
    "expires_at",
    "updated_at",
    *SNAPSHOT_COLUMNS,
)
KEEPING_CLIENTS_ON_RECONNECT = tuple(
    name for name in REPLACED_ON_RECONNECT if name not in CLIENTS_COLUMNS
)
# The statements every connect and dashboard runs, built once (see ConnectionStore).
_THIS_CONNECTION = connections.c.id == sa.bindparam("connection_id")
SELECT_CONNECTION = sa.select(connections).where(_THIS_CONNECTION)
KEEP_USERINFO = sa.update(connections).where(_THIS_CONNECTION)


def _keep_clients_of_a_later_read() -> sa.Update:
    kept_at = connections.c.recent_clients_read_at
    later = sa.or_(kept_at.is_(None), kept_at < sa.bindparam("read_at"))
    return sa.update(connections).where(_THIS_CONNECTION).where(later)


KEEP_CLIENTS_OF_A_LATER_READ = _keep_clients_of_a_later_read()


@dataclass(frozen=True)
class Snapshot:
    """What vcita last said about a business, and when: kept for when vcita is down."""

    userinfo: dict
    # The Recent clients panel's rows, as JSON; None if vcita did not answer that call.
    recent_clients: list[dict] | None
    read_at: datetime  # when userinfo was read
    clients_read_at: datetime | None  # when the clients were; None with them


@dataclass(frozen=True)
class Connection:
    """A vcita business connected to this app, with its decrypted access token."""

    id: str
    business_uid: str
    staff_uid: str
    token: AccessToken
    connected_at: datetime
    updated_at: datetime
    snapshot: Snapshot | None = None  # None: never read, or unreadable with today's keys


@dataclass(frozen=True)
class RemovedConnection:
    """A connection just deleted: whose it was, and its token, still sealed."""

    business_uid: str
    staff_uid: str
    sealed_token: str = field(repr=False)


@dataclass(frozen=True)
class StoredConnection:
    """A connection as the CLI lists it: who, and when; never its token."""

    id: str
    business_uid: str
    staff_uid: str
    connected_at: datetime
    last_used_at: datetime | None


class ConnectionStore:
    """The connections, on the app's database, their tokens and vcita's answers sealed."""

    def __init__(self, database: Database, sealer: Sealer) -> None:
        self.database = database
        self.sealer = sealer
        # The statements every connect and dashboard runs, built once: SQLAlchemy compiles
        # a statement once, but building it on every call cost more than running it.
        self._upserts = {
            replaced: self._upsert_connection(replaced)
            for replaced in (REPLACED_ON_RECONNECT, KEEPING_CLIENTS_ON_RECONNECT)
        }
        activity = self.database.insert(connection_activity)
        self._touch = activity.on_conflict_do_update(
            index_elements=[connection_activity.c.connection_id],
            set_={"last_used_at": activity.excluded.last_used_at},
        )

    def save(
        self,
        *,
        business_uid: str,
        staff_uid: str,
        token: AccessToken,
        snapshot: Snapshot | None = None,
    ) -> Connection:
        """Store a business's token, and what vcita said, replacing what it had before.

        What vcita said was read with the token: a snapshot given touches the connection.
        """
        now = datetime.now(UTC)
        values = {
            "id": secrets.token_urlsafe(16),  # kept only if this pair is new
            "business_uid": business_uid,
            "staff_uid": staff_uid,
            "encrypted_access_token": self.sealer.seal(token.access_token),
            "token_type": token.token_type,
            "issued_at": token.issued_at,
            "expires_at": token.expires_at,
            "connected_at": now,
            "updated_at": now,
            **self._snapshot_values(snapshot),
        }
        # Without clients (vcita was slow to list them), a reconnect keeps those listed before.
        replaced = REPLACED_ON_RECONNECT
        if snapshot is None or snapshot.recent_clients is None:
            replaced = KEEPING_CLIENTS_ON_RECONNECT
        with self.database.transaction() as db:
            row = db.execute(self._upserts[replaced], values).one()
            if snapshot is not None:
                self.touch(row.id)
        return _connection_from(row, token.access_token, snapshot)

    def keep_snapshot(self, connection_id: str, snapshot: Snapshot) -> None:
        """Replace what vcita last said about the connection's business, and touch it.

        Clients the snapshot does not list (vcita did not answer for them, or not yet)
        leave those kept as they are.
        """
        values = self._snapshot_values(snapshot)
        with self.database.transaction() as db:
            userinfo = {name: values[name] for name in USERINFO_COLUMNS}
            db.execute(KEEP_USERINFO, {"connection_id": connection_id, **userinfo})
            if snapshot.recent_clients is not None and snapshot.clients_read_at is not None:
                self.keep_recent_clients(
                    connection_id, snapshot.recent_clients, snapshot.clients_read_at
                )
            self.touch(connection_id)

    def keep_recent_clients(self, connection_id: str, rows: list[dict], read_at: datetime) -> None:
        """Keep the clients vcita listed for the connection, unless a later read's are kept.

        Reads may end in any order (a slow one finishes in the background): the clients
        kept are those of the read that started last.
        """
        with self.database.transaction() as db:
            db.execute(
                KEEP_CLIENTS_OF_A_LATER_READ,
                {
                    "connection_id": connection_id,
                    "encrypted_recent_clients": self.sealer.seal(json.dumps(rows)),
                    "recent_clients_read_at": read_at,
                    "read_at": read_at,
                },
            )

    def get(self, connection_id: str) -> Connection | None:
        """Return the connection with this id and its decrypted token, or None."""
        if not could_be_stored(connection_id):
            return None
        with self.database.transaction() as db:
            row = db.execute(SELECT_CONNECTION, {"connection_id": connection_id}).one_or_none()
        return None if row is None else self._from_row(row)

    def remove(self, connection_id: str) -> RemovedConnection | None:
        """Forget a connection; return whose it was and its sealed token, or None.

        One statement deletes the row and returns it: the token returned is exactly the
        one deleted, even when a reconnect replaced it a moment before.
        """
        if not could_be_stored(connection_id):
            return None
        with self.database.transaction() as db:
            db.execute(sa.delete(flow_traces).where(flow_traces.c.connection_id == connection_id))
            row = db.execute(
                sa.delete(connections)
                .where(connections.c.id == connection_id)
                .returning(
                    connections.c.business_uid,
                    connections.c.staff_uid,
                    connections.c.encrypted_access_token,
                )
            ).one_or_none()
        if row is None:
            return None
        return RemovedConnection(row.business_uid, row.staff_uid, row.encrypted_access_token)

    def count_existing(self, connection_ids: list[str]) -> int:
        """Return how many of these connections are still stored."""
        ids = [known for known in connection_ids if could_be_stored(known)]
        if not ids:
            return 0
        with self.database.transaction() as db:
            return db.execute(
                sa.select(sa.func.count())
                .select_from(connections)
                .where(connections.c.id.in_(ids))
            ).scalar_one()

    def whose(self, connection_ids: list[str]) -> dict[str, tuple[str, str]]:
        """Return the business and staff uid of each of these connections still stored.

        Plaintext columns only: no token is decrypted to learn whose a connection is.
        """
        ids = [known for known in connection_ids if could_be_stored(known)]
        if not ids:
            return {}
        with self.database.transaction() as db:
            rows = db.execute(
                sa.select(
                    connections.c.id, connections.c.business_uid, connections.c.staff_uid
                ).where(connections.c.id.in_(ids))
            ).all()
        return {row.id: (row.business_uid, row.staff_uid) for row in rows}

    def all(self) -> list[StoredConnection]:
        """Return every stored connection, without its token, newest first."""
        with self.database.transaction() as db:
            rows = db.execute(
                sa.select(
                    connections.c.id,
                    connections.c.business_uid,
                    connections.c.staff_uid,
                    connections.c.connected_at,
                    connection_activity.c.last_used_at,
                )
                .outerjoin(connection_activity)
                .order_by(connections.c.connected_at.desc(), connections.c.id)
            ).all()
        return [StoredConnection(**row._mapping) for row in rows]

    def find(self, business_uid: str, staff_uid: str | None = None) -> Connection | None:
        """Return the business's connection (the staff member's, else the newest), or None."""
        if not could_be_stored(business_uid) or not could_be_stored(staff_uid or ""):
            return None
        query = sa.select(connections).where(connections.c.business_uid == business_uid)
        if staff_uid is not None:
            query = query.where(connections.c.staff_uid == staff_uid)
        with self.database.transaction() as db:
            row = db.execute(
                query.order_by(connections.c.updated_at.desc()).limit(1)
            ).one_or_none()
        return None if row is None else self._from_row(row)

    def touch(self, connection_id: str) -> None:
        """Record that the connection's token was just used."""
        with self.database.transaction() as db:
            db.execute(
                self._touch, {"connection_id": connection_id, "last_used_at": datetime.now(UTC)}
            )

    def count(self) -> int:
        """Return how many connections are stored."""
        with self.database.transaction() as db:
            return db.execute(sa.select(sa.func.count()).select_from(connections)).scalar_one()

    def _from_row(self, row: sa.Row) -> Connection | None:
        """Decrypt a stored connection, sealing its token again if an older key had.

        None if no key opens the token.
        """
        try:
            access_token, resealed = self.sealer.open_and_reseal(row.encrypted_access_token)
        except InvalidToken:
            # Keep the row: the key that can read it may only be missing from this
            # deployment's TOKEN_ENCRYPTION_KEY. Never log the id (what a session
            # holds to find the connection) or the ciphertext.
            logger.warning(
                "The stored token of business %s (staff %s) cannot be decrypted with "
                "any TOKEN_ENCRYPTION_KEY; treating it as not connected",
                row.business_uid,
                row.staff_uid,
            )
            return None
        if resealed is not None:
            self._replace_ciphertext(row, resealed)
        return _connection_from(row, access_token, self._snapshot_from(row))

    def _upsert_connection(self, replaced: tuple[str, ...]) -> sa.Executable:
        """Build one atomic INSERT .. ON CONFLICT DO UPDATE on business and staff."""
        statement = self.database.insert(connections)
        return statement.on_conflict_do_update(
            index_elements=[connections.c.business_uid, connections.c.staff_uid],
            set_={name: statement.excluded[name] for name in replaced},
        ).returning(*connections.c)

    def _replace_ciphertext(self, row: sa.Row, ciphertext: str) -> None:
        """Write back a token re-encrypted with the newest key (rotation on use)."""
        with self.database.transaction() as db:
            db.execute(
                sa.update(connections)
                .where(connections.c.id == row.id)
                # Unless a reconnect stored a new token since we read this one.
                .where(connections.c.encrypted_access_token == row.encrypted_access_token)
                .values(encrypted_access_token=ciphertext)
            )

    def _snapshot_values(self, snapshot: Snapshot | None) -> dict:
        """Return the columns that keep `snapshot`, encrypted; NULLs if there is none."""
        if snapshot is None:
            return dict.fromkeys(SNAPSHOT_COLUMNS)
        clients = snapshot.recent_clients
        return {
            "encrypted_userinfo": self.sealer.seal(json.dumps(snapshot.userinfo)),
            "encrypted_recent_clients": None
            if clients is None
            else self.sealer.seal(json.dumps(clients)),
            "userinfo_read_at": snapshot.read_at,
            "recent_clients_read_at": None if clients is None else snapshot.clients_read_at,
        }

    def _snapshot_from(self, row: sa.Row) -> Snapshot | None:
        """Decrypt what vcita last said, kept with the connection; None if unreadable."""
        if row.encrypted_userinfo is None or row.userinfo_read_at is None:
            return None
        try:
            userinfo = json.loads(self.sealer.open(row.encrypted_userinfo))
            clients = None
            if row.encrypted_recent_clients is not None:
                clients = json.loads(self.sealer.open(row.encrypted_recent_clients))
        except (InvalidToken, ValueError):
            return None  # written under a key this deployment no longer has
        if not isinstance(userinfo, dict) or not isinstance(clients, list | None):
            return None
        clients_read_at = None if clients is None else row.recent_clients_read_at
        return Snapshot(userinfo, clients, row.userinfo_read_at, clients_read_at)


def get_connections() -> ConnectionStore:
    """Return the current app's connections."""
    return current_app.extensions["connections"]


def could_be_stored(text: str) -> bool:
    """Return whether both databases can hold `text`; PostgreSQL's text holds no NUL.

    An id that could not be stored names no connection, on SQLite and PostgreSQL alike,
    instead of failing the query on PostgreSQL.
    """
    return "\x00" not in text


def _connection_from(
    row: sa.Row, access_token: str, snapshot: Snapshot | None = None
) -> Connection:
    return Connection(
        id=row.id,
        business_uid=row.business_uid,
        staff_uid=row.staff_uid,
        token=AccessToken(access_token, row.token_type, row.issued_at, row.expires_at),
        connected_at=row.connected_at,
        updated_at=row.updated_at,
        snapshot=snapshot,
    )
