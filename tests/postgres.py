"""Empty PostgreSQL databases for tests, on the server that DATABASE_URL names.

`make test-postgres` starts a throwaway server (scripts/postgres.sh) and points
DATABASE_URL at it; each test that needs a database then gets one of its own, created
empty and dropped after the test. Without a PostgreSQL DATABASE_URL, tests use SQLite.
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
