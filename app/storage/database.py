"""The database behind the app: its engine, schema upgrades, and transactions that fail clearly.

SQLite by default, PostgreSQL where DATABASE_URL names it. The tables are declared in
`tables.py`; the schema changes only through the Alembic revisions in migrations/: `flask
init-db` and every app at startup bring the database to the newest one, keeping every row
(docs/configuration.md, "Schema migrations"). A change to a table needs a revision too,
`alembic revision -m "what changes" --rev-id 0005` (with `--autogenerate` for a first
draft), and a test fails until the revisions build exactly the declared tables. Any
failure to reach or write the database is raised as StoreUnavailable, which the views
answer with a 503 page; the next call tries the database again, bringing its schema up
first. A database whose recorded revision this version cannot upgrade from is
migrations.CannotUpgrade: the app does not start. A SQLite file, and the folder the app
makes for it, only the app's user can read.
"""

import functools
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import InterfaceError, OperationalError

from . import migrations
from .private_files import private_file, private_folder, tighten_file
from .tables import metadata

logger = logging.getLogger(__name__)

SUPPORTED_BACKENDS = ("sqlite", "postgresql")
# The database without DATABASE_URL: a SQLite file in the instance folder.
DEFAULT_DATABASE_FILE = "vcita_connect.db"
# Any constant shared by every worker: they take turns upgrading the schema on it.
SCHEMA_LOCK_ID = 0x7C17A
# Each dialect's INSERT .. ON CONFLICT, so that a write and its conflict check are one
# atomic statement: two workers saving the same connection at once cannot both insert.
INSERTS: dict[str, Callable[[sa.Table], sqlite.Insert | postgresql.Insert]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}


class StoreUnavailable(Exception):
    """The database cannot be reached or written."""


class Database:
    """One engine on DATABASE_URL, with the schema upgraded before the first transaction."""

    def __init__(self, url: str, instance_path: str | None = None) -> None:
        parsed = sa.make_url(url)
        if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
            raise ValueError("DATABASE_URL must be a SQLite or PostgreSQL URL")
        self.engine = _create_engine(parsed)
        # The transaction open in this thread (or context), which nested calls join.
        self._open: ContextVar[sa.Connection | None] = ContextVar(
            f"open_transaction_{id(self)}", default=None
        )
        self._schema_ready = False
        # The app's own folder: made private even if it exists (private_files.py).
        self._instance_path = instance_path
        # SQLite has one writer at a time, and a thread that finds the file locked sleeps
        # in SQLite's busy handler (1, 2, 5, ... 100 ms) before trying again: the threads
        # of one worker take turns here instead, and only other workers ever wait there.
        self._turns = threading.Lock() if self.dialect == "sqlite" else nullcontext()
        # Closing SQLite's last connection at exit folds its write-ahead log into the file.
        weakref.finalize(self, self.engine.dispose)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def insert(self, table: sa.Table) -> sqlite.Insert | postgresql.Insert:
        """Return an INSERT into `table` that can take ON CONFLICT, on this database."""
        return INSERTS[self.dialect](table)

    @property
    def location(self) -> str:
        """Return the database URL with any password hidden, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def upgrade_schema(self) -> str:
        """Bring the schema to the newest revision, keeping every row; return the revision.

        Raise StoreUnavailable if the database cannot be reached, and
        migrations.CannotUpgrade if its recorded revision is one this version cannot use.
        """
        with self._unavailable_on_failure(), self.schema_lock() as db:
            revision = migrations.upgrade(db, metadata)
        self._schema_ready = True
        return revision

    @contextmanager
    def schema_lock(self) -> Iterator[sa.Connection]:
        """Open a transaction that no other worker's schema_lock enters until it ends.

        Workers starting together on an old database would otherwise all run the same
        revisions, and all but the first fail (a column that already exists). A SQLite
        file is made private first, whoever opens it: the app or the `alembic` command.
        """
        _make_sqlite_file_private(self.engine.url, self._instance_path)
        with self.engine.begin() as db:
            if self.dialect == "postgresql":
                # Alembic runs PostgreSQL's DDL in this same transaction: the lock is
                # held until the revisions are committed.
                db.execute(sa.select(sa.func.pg_advisory_xact_lock(SCHEMA_LOCK_ID)))
            else:
                # Python's sqlite3 opens no transaction before DDL, so take SQLite's
                # write lock now: another worker waits here (busy_timeout), then finds
                # the schema upgraded (SQLAlchemy's pysqlite "transactional DDL" recipe,
                # on this one connection).
                db.exec_driver_sql("BEGIN IMMEDIATE")
            yield db

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """Run one transaction on a schema that exists, or raise StoreUnavailable.

        Inside another transaction of this database, in the same thread, it joins that
        one: a view can group several repository calls (save a connection, its trace, a
        handoff) into one commit, and each call still works on its own.
        """
        joined = self._open.get()
        if joined is not None:
            yield joined
            return
        if not self._schema_ready:
            try:
                self.upgrade_schema()
            except migrations.CannotUpgrade as error:
                # Out of reach at start-up, and back at a revision this version cannot
                # use: pages answer 503 as while it was away, and the log says why.
                raise StoreUnavailable(str(error)) from error
        with self._turns, self._unavailable_on_failure(), self.engine.begin() as db:
            reset = self._open.set(db)
            try:
                yield db
            finally:
                self._open.reset(reset)

    def ping(self) -> None:
        """Check that the database answers; raise StoreUnavailable if it does not."""
        with self.transaction() as db:
            db.execute(sa.select(1))

    def dispose(self) -> None:
        """Close the pooled database connections; the next call opens new ones.

        Closing SQLite's last connection also folds its write-ahead log into the file.
        """
        self.engine.dispose()

    @contextmanager
    def _unavailable_on_failure(self) -> Iterator[None]:
        """Raise a database that cannot be reached or written as StoreUnavailable."""
        try:
            yield
        except (OperationalError, InterfaceError) as error:
            # The database may come back empty or older (a new file, a restored
            # server): bring its schema up again on the next call.
            self._schema_ready = False
            raise StoreUnavailable(f"the database cannot be used: {error.orig}") from error


def insert_expiring(db: sa.Connection, table: sa.Table, values: dict) -> None:
    """Insert a row that expires, deleting the rows of `table` already expired.

    Each insert prunes as many rows as it could add, so the table stays small without a
    cleaning job; an expired row is refused by its reader anyway.
    """
    prune, insert = _expiring_statements(table)
    db.execute(prune, {"now": datetime.now(UTC)})
    db.execute(insert, values)


@functools.cache
def _expiring_statements(table: sa.Table) -> tuple[sa.Delete, sa.Insert]:
    # Built once: SQLAlchemy compiles a statement once, but building it on every call
    # cost more than running it. The values come with each execution.
    prune = sa.delete(table).where(table.c.expires_at < sa.bindparam("now"))
    return prune, sa.insert(table)


def init_app(app: Flask) -> None:
    """Open DATABASE_URL, bring its schema to the newest revision, add `flask init-db`."""
    database = Database(app.config["DATABASE_URL"], app.instance_path)
    try:
        database.upgrade_schema()
    except StoreUnavailable as error:
        # Start anyway: pages answer 503 until the database is back, and its schema is
        # upgraded on its first use.
        logger.warning("Database unavailable at startup (%s): %s", database.location, error)
    except migrations.CannotUpgrade:
        database.dispose()  # the app is not made; create_app says why
        raise
    app.extensions["database"] = database
    app.cli.add_command(init_db_command)


def get_db() -> Database:
    """Return the current app's database."""
    return current_app.extensions["database"]


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Bring DATABASE_URL to the newest schema revision, keeping every row."""
    database = get_db()
    try:
        revision = database.upgrade_schema()
    except StoreUnavailable as error:
        raise click.ClickException(
            f"Cannot upgrade the database at {database.location}: {error}"
        ) from error
    except migrations.CannotUpgrade as error:
        # The database was out of reach when the app was made, and is back.
        raise click.ClickException(f"Cannot upgrade: {error}") from error
    click.echo(f"The database at {database.location} is at schema revision {revision}.")


def _create_engine(url: sa.URL) -> sa.Engine:
    """Create an engine that checks each pooled connection before handing it out."""
    # pool_pre_ping: a connection broken by a restart is replaced, not reused, so the
    # first call after the database comes back works.
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    engine = sa.create_engine(url, pool_pre_ping=True, connect_args={"check_same_thread": False})
    sa.event.listen(engine, "connect", _configure_sqlite)
    return engine


def _configure_sqlite(dbapi_connection: sqlite3.Connection, connection_record: object) -> None:
    """Let SQLite serve several threads and workers writing at once."""
    cursor = dbapi_connection.cursor()
    # Wait up to 5 s for another writer instead of failing with "database is locked".
    cursor.execute("PRAGMA busy_timeout = 5000")
    # Write-ahead logging: readers do not block the writer, nor the writer readers.
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _switch_to_wal(cursor: sqlite3.Cursor, attempts: int = 50) -> None:
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


def _make_sqlite_file_private(url: sa.URL, instance_path: str | None) -> None:
    """Create a SQLite file 0600 in a 0700 folder before SQLite opens it, or tighten them.

    SQLite would create the file 0644; it gives its -wal and -shm files the database
    file's own mode, so they follow. A fresh checkout starts without setup, and a
    database made before this rule is made private at the next start.
    """
    database = url.database
    if url.get_backend_name() != "sqlite" or database in (None, "", ":memory:"):
        return
    if url.query.get("uri"):
        return  # a SQLite URI filename ("file:…?mode=memory"): SQLite's to interpret
    path = Path(database)
    folder = path.parent.absolute()
    ours = instance_path is not None and folder == Path(instance_path).absolute()
    try:
        private_folder(folder, tighten=ours)
        private_file(path)
        for suffix in ("-wal", "-shm"):
            tighten_file(path.with_name(path.name + suffix))
    except OSError as error:
        raise StoreUnavailable(f"cannot prepare the database's file: {error}") from error
