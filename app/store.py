"""Connections and their encrypted tokens, the OAuth states already used, and flow traces.

A connection is one vcita business (and the staff member who approved the app) with
the access token vcita gave us in step 3 of its guide. The token lives about 20 years
and acts for the whole business, so it is stored only encrypted (Fernet), and
connecting again replaces it rather than adding a second copy.

TOKEN_ENCRYPTION_KEY lists Fernet keys, comma-separated, newest first (the app config
holds them as TOKEN_ENCRYPTION_KEYS). Every key can read, only the newest writes, and
a token still encrypted with an older key is re-encrypted the first time it is read:
to rotate, put a new key first, and drop the old one later.

Any failure to reach or write the database is raised as StoreUnavailable, which the
views answer with a 503 page; the next call tries the database again.
"""

import atexit
import hashlib
import json
import logging
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.schema import CreateIndex, CreateTable

logger = logging.getLogger(__name__)


class StoreUnavailable(Exception):
    """The database cannot be reached or written."""


class UTCDateTime(sa.TypeDecorator):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no timezone, so values are converted to UTC on the way in and
    marked as UTC on the way out; PostgreSQL's timestamptz is normalised the same way.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = sa.MetaData()

connections = sa.Table(
    "connections",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("business_uid", sa.String(255), nullable=False),
    sa.Column("staff_uid", sa.String(255), nullable=False),
    # A Fernet token (ciphertext): the access token itself is never written.
    sa.Column("encrypted_access_token", sa.Text, nullable=False),
    sa.Column("token_type", sa.String(40), nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("connected_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # One connection per business and staff member: connecting again replaces it.
    sa.UniqueConstraint("business_uid", "staff_uid", name="uq_connections_business_staff"),
)

used_states = sa.Table(
    "used_states",
    metadata,
    # sha256 of the state: a leaked table must not hand out states still in flight.
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
)

flow_traces = sa.Table(
    "flow_traces",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # Tied to the connection it describes: disconnecting deletes it too.
    sa.Column(
        "connection_id",
        sa.String(64),
        sa.ForeignKey("connections.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    # Fernet, like the token: secrets are already out, but userinfo names a person.
    sa.Column("encrypted_steps", sa.Text, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
)
# A trace is for the developer looking at the dashboard right after connecting.
TRACE_LIFETIME = timedelta(minutes=15)

# Each dialect's INSERT .. ON CONFLICT, so that a write and its conflict check are one
# atomic statement: two workers saving the same connection at once cannot both insert.
INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
# What connecting again replaces; the id and connected_at of the first connection stay,
# so every browser that holds the id keeps finding the connection.
REPLACED_ON_RECONNECT = (
    "encrypted_access_token",
    "token_type",
    "issued_at",
    "expires_at",
    "updated_at",
)
# Any constant shared by every worker: they serialise creating the schema on it.
SCHEMA_LOCK_ID = 0x7C17A


@dataclass(frozen=True)
class Connection:
    """A vcita business connected to this app, with its decrypted access token."""

    id: str
    business_uid: str
    staff_uid: str
    access_token: str = field(repr=False)
    token_type: str
    issued_at: datetime
    expires_at: datetime | None
    connected_at: datetime
    updated_at: datetime


class TokenStore:
    """The connections database; created unbound and bound to an app by init_app()."""

    def __init__(self) -> None:
        self._engine: sa.Engine | None = None
        self._keys: MultiFernet | None = None
        self._newest_key: Fernet | None = None
        self._schema_ready = False
        # Closing SQLite's last connection folds its write-ahead log back into the file.
        atexit.register(self.dispose)

    def init_app(self, app: Flask) -> None:
        """Connect to DATABASE_URL, create missing tables, and add `flask init-db`."""
        url = sa.make_url(app.config["DATABASE_URL"])
        if url.get_backend_name() not in INSERTS:
            raise ValueError("DATABASE_URL must be a SQLite or PostgreSQL URL")
        keys = [Fernet(key) for key in app.config["TOKEN_ENCRYPTION_KEYS"]]
        # One store serves one app at a time: binding it again (a test's new app)
        # lets go of the previous database.
        self.dispose()
        self._engine = _create_engine(url)
        self._keys = MultiFernet(keys)
        self._newest_key = keys[0]
        self._schema_ready = False
        try:
            self.create_schema()
        except StoreUnavailable as error:
            # Start anyway: pages answer 503 until the database is back, and the
            # tables are created on its first use.
            logger.warning("Token store unavailable at startup (%s): %s", self.location, error)
        app.cli.add_command(init_db_command)
        app.extensions["token_store"] = self

    @property
    def location(self) -> str:
        """Return the database URL with any password hidden, for messages."""
        return self._bound_engine().url.render_as_string(hide_password=True)

    def create_schema(self) -> None:
        """Create the tables that are missing; existing tables and rows are kept."""
        engine = self._bound_engine()
        _make_sqlite_directory(engine.url)
        with self._unavailable_on_failure(), engine.begin() as db:
            if engine.dialect.name == "postgresql":
                # Workers starting together on an empty database would race to create
                # the same tables; IF NOT EXISTS alone does not stop that in PostgreSQL.
                db.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK_ID)))
            for table in metadata.sorted_tables:
                db.execute(CreateTable(table, if_not_exists=True))
                for index in table.indexes:
                    db.execute(CreateIndex(index, if_not_exists=True))
        self._schema_ready = True

    def save_connection(
        self,
        *,
        business_uid: str,
        staff_uid: str,
        access_token: str,
        token_type: str,
        issued_at: datetime,
        expires_at: datetime | None,
    ) -> Connection:
        """Store a business's token, replacing the one it connected with before."""
        now = datetime.now(UTC)
        values = {
            "id": secrets.token_urlsafe(16),  # kept only if this pair is new
            "business_uid": business_uid,
            "staff_uid": staff_uid,
            "encrypted_access_token": self._encrypt(access_token),
            "token_type": token_type,
            "issued_at": issued_at,
            "expires_at": expires_at,
            "connected_at": now,
            "updated_at": now,
        }
        with self._transaction() as db:
            row = db.execute(self._upsert_connection(values)).one()
        return _connection_from(row, access_token)

    def get_connection(self, connection_id: str) -> Connection | None:
        """Return the connection with this id and its decrypted token, or None."""
        if not _could_be_stored(connection_id):
            return None
        with self._transaction() as db:
            row = db.execute(
                sa.select(connections).where(connections.c.id == connection_id)
            ).one_or_none()
        if row is None:
            return None
        try:
            access_token, reencrypted = self._decrypt(row.encrypted_access_token)
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
        if reencrypted is not None:
            self._replace_ciphertext(row, reencrypted)
        return _connection_from(row, access_token)

    def delete_connection(self, connection_id: str) -> bool:
        """Forget a connection and its token; return whether there was one."""
        if not _could_be_stored(connection_id):
            return False
        with self._transaction() as db:
            db.execute(sa.delete(flow_traces).where(flow_traces.c.connection_id == connection_id))
            result = db.execute(sa.delete(connections).where(connections.c.id == connection_id))
        return result.rowcount == 1

    def mark_state_used(self, state: str, expires_at: datetime) -> bool:
        """Record that a callback used `state`; return False if one already had.

        The unique key makes this hold across every worker and instance, so a state
        is accepted once even when two callbacks carry it at the same moment
        (RFC 9700 §4.7). Only its sha256 is kept, until `expires_at`.
        """
        state_hash = hashlib.sha256(state.encode()).hexdigest()
        try:
            with self._transaction() as db:
                db.execute(
                    sa.insert(used_states).values(state_hash=state_hash, expires_at=expires_at)
                )
                # A flow past its expiry is refused before its state gets here, so
                # expired rows protect nothing: prune as many as we add.
                db.execute(
                    sa.delete(used_states).where(used_states.c.expires_at < datetime.now(UTC))
                )
        except IntegrityError:
            return False
        return True

    def save_trace(self, connection_id: str, steps: list) -> str:
        """Keep a connect's flow trace for a short while; return the id that reads it."""
        trace_id = secrets.token_urlsafe(16)
        now = datetime.now(UTC)
        with self._transaction() as db:
            db.execute(sa.delete(flow_traces).where(flow_traces.c.expires_at < now))
            db.execute(
                sa.insert(flow_traces).values(
                    id=trace_id,
                    connection_id=connection_id,
                    encrypted_steps=self._encrypt(json.dumps(steps)),
                    expires_at=now + TRACE_LIFETIME,
                )
            )
        return trace_id

    def get_trace(self, trace_id: str, connection_id: str) -> list | None:
        """Return the unexpired trace `trace_id` of `connection_id`, or None."""
        if not (_could_be_stored(trace_id) and _could_be_stored(connection_id)):
            return None
        with self._transaction() as db:
            ciphertext = db.execute(
                sa.select(flow_traces.c.encrypted_steps)
                .where(flow_traces.c.id == trace_id)
                .where(flow_traces.c.connection_id == connection_id)
                .where(flow_traces.c.expires_at >= datetime.now(UTC))
            ).scalar_one_or_none()
        if ciphertext is None:
            return None
        try:
            return json.loads(self._keys.decrypt(ciphertext.encode()))
        except InvalidToken:
            return None  # written under a key this deployment no longer has

    def count_connections(self) -> int:
        """Return how many connections are stored."""
        with self._transaction() as db:
            return db.execute(sa.select(sa.func.count()).select_from(connections)).scalar_one()

    def ping(self) -> None:
        """Check that the database answers; raise StoreUnavailable if it does not."""
        with self._transaction() as db:
            db.execute(sa.select(1))

    def dispose(self) -> None:
        """Close the pooled database connections; the next call opens new ones."""
        if self._engine is not None:
            self._engine.dispose()

    def _upsert_connection(self, values: dict) -> sa.Executable:
        """Build one atomic INSERT .. ON CONFLICT DO UPDATE on business and staff."""
        statement = INSERTS[self._bound_engine().dialect.name](connections).values(values)
        return statement.on_conflict_do_update(
            index_elements=[connections.c.business_uid, connections.c.staff_uid],
            set_={name: statement.excluded[name] for name in REPLACED_ON_RECONNECT},
        ).returning(*connections.c)

    def _replace_ciphertext(self, row: sa.Row, ciphertext: str) -> None:
        """Write back a token re-encrypted with the newest key (rotation on use)."""
        with self._transaction() as db:
            db.execute(
                sa.update(connections)
                .where(connections.c.id == row.id)
                # Unless a reconnect stored a new token since we read this one.
                .where(connections.c.encrypted_access_token == row.encrypted_access_token)
                .values(encrypted_access_token=ciphertext)
            )

    def _encrypt(self, access_token: str) -> str:
        return self._newest_key.encrypt(access_token.encode()).decode()

    def _decrypt(self, ciphertext: str) -> tuple[str, str | None]:
        """Return the token, and its re-encryption if an older key had encrypted it."""
        try:
            return self._newest_key.decrypt(ciphertext.encode()).decode(), None
        except InvalidToken:
            pass
        reencrypted = self._keys.rotate(ciphertext.encode())  # InvalidToken if no key fits
        return self._newest_key.decrypt(reencrypted).decode(), reencrypted.decode()

    @contextmanager
    def _transaction(self) -> Iterator[sa.Connection]:
        """Run one transaction on a schema that exists, or raise StoreUnavailable."""
        engine = self._bound_engine()
        if not self._schema_ready:
            self.create_schema()
        with self._unavailable_on_failure(), engine.begin() as db:
            yield db

    @contextmanager
    def _unavailable_on_failure(self) -> Iterator[None]:
        """Raise a database that cannot be reached or written as StoreUnavailable."""
        try:
            yield
        except (OperationalError, InterfaceError) as error:
            # The database may come back empty (a new file, a restored server):
            # check the tables again on the next call.
            self._schema_ready = False
            raise StoreUnavailable(f"the database cannot be used: {error.orig}") from error

    def _bound_engine(self) -> sa.Engine:
        if self._engine is None:
            raise RuntimeError("TokenStore is not bound to an app: call init_app(app) first")
        return self._engine


token_store = TokenStore()


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create the token store's tables in DATABASE_URL."""
    store = current_app.extensions["token_store"]
    try:
        store.create_schema()
    except StoreUnavailable as error:
        raise click.ClickException(
            f"Cannot create the tables at {store.location}: {error}"
        ) from error
    click.echo(f"Token store tables are ready at {store.location}.")


def _create_engine(url: sa.URL) -> sa.Engine:
    """Create an engine that checks each pooled connection before handing it out."""
    # pool_pre_ping: a connection broken by a restart is replaced, not reused, so the
    # first call after the database comes back works.
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args={"check_same_thread": False})
    sa.event.listen(engine, "connect", _configure_sqlite)
    return engine


def _configure_sqlite(dbapi_connection, connection_record) -> None:
    """Let SQLite serve several threads and workers writing at once."""
    cursor = dbapi_connection.cursor()
    # Wait up to 5 s for another writer instead of failing with "database is locked".
    cursor.execute("PRAGMA busy_timeout = 5000")
    # Write-ahead logging: readers do not block the writer, nor the writer readers.
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _switch_to_wal(cursor, attempts: int = 50) -> None:
    """Put the database in WAL mode, waiting out workers that do the same right now.

    The switch needs the database to itself, and SQLite may refuse it with "database
    is locked" without waiting its busy timeout: so several workers starting together
    on a new file retry for a while. Once switched, the mode stays with the file.
    """
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.1)


def _make_sqlite_directory(url: sa.URL) -> None:
    """Create the folder of a SQLite file, so a fresh checkout starts without setup."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    try:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreUnavailable(f"cannot create the database's folder: {error}") from error


def _could_be_stored(text: str) -> bool:
    """Return whether both databases can hold `text`; PostgreSQL's text holds no NUL.

    An id that could not be stored names no connection, on SQLite and PostgreSQL alike,
    instead of failing the query on PostgreSQL.
    """
    return "\x00" not in text


def _connection_from(row: sa.Row, access_token: str) -> Connection:
    return Connection(
        id=row.id,
        business_uid=row.business_uid,
        staff_uid=row.staff_uid,
        access_token=access_token,
        token_type=row.token_type,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        connected_at=row.connected_at,
        updated_at=row.updated_at,
    )
