"""Empty PostgreSQL databases for tests, on the server that DATABASE_URL names.

`make test-postgres` starts a throwaway server (scripts/postgres.sh) and points
DATABASE_URL at it. The test run creates a database of its own there, and each test
that needs a database gets an empty schema in it (as quick to make as a database is
slow), dropped after the test; the database is dropped at the end of the run.
Without a PostgreSQL DATABASE_URL, tests use SQLite.
"""

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa


def server_url() -> sa.URL | None:
    """Return the PostgreSQL server DATABASE_URL names, or None to test on SQLite."""
    value = os.environ.get("DATABASE_URL", "")
    if not value:
        return None
    url = sa.make_url(value)
    return url if url.get_backend_name() == "postgresql" else None


@contextmanager
def fresh_database(server: sa.URL) -> Iterator[str]:
    """Create an empty database on `server`, yield its URL, then drop it."""
    name = f"vcita_connect_test_{secrets.token_hex(6)}"
    # CREATE and DROP DATABASE cannot run inside a transaction.
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as db:
            # FILE_COPY: the quicker way to copy a small template.
            db.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE template0 STRATEGY FILE_COPY'))
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as db:
                # FORCE ends any connection the test left open, e.g. a server it started.
                db.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def fresh_schema(database_url: str) -> Iterator[str]:
    """Create an empty schema, yield a URL whose connections use it, then drop it."""
    name = f"test_{secrets.token_hex(6)}"
    admin = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with admin.begin() as db:
            db.execute(sa.schema.CreateSchema(name))
        try:
            # Every connection of the app under test finds (and creates) its tables there.
            url = sa.make_url(database_url).update_query_dict({"options": f"-csearch_path={name}"})
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.begin() as db:
                # Fail, rather than hang, if a test left a transaction open on its tables.
                db.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
                db.execute(sa.schema.DropSchema(name, cascade=True))
    finally:
        admin.dispose()
