"""Alembic's entry point: run the revisions in versions/ on the app's database.

The app runs it (app.storage.migrations) on a connection it has already locked. The `alembic`
command runs it on DATABASE_URL, read from the environment and .env as `flask` reads
it, under the same lock as the app's workers.
"""

import logging
import os
from pathlib import Path

import sqlalchemy as sa
from alembic import context
from dotenv import load_dotenv

from app.storage.database import DEFAULT_DATABASE_FILE, Database
from app.storage.tables import metadata

# The app's default database (app/config.py): in instance/ beside the app package.
INSTANCE_FOLDER = Path(__file__).resolve().parents[3] / "instance"
DEFAULT_DATABASE_URL = f"sqlite:///{INSTANCE_FOLDER / DEFAULT_DATABASE_FILE}"


def run_revisions(connection: sa.Connection) -> None:
    """Run the revisions Alembic was asked for, in the transaction `connection` holds."""
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


def database_url() -> str:
    """Return DATABASE_URL, from the environment or .env, or the app's default."""
    load_dotenv()
    return os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


if context.is_offline_mode():
    # 0002 and 0003 look at the database to skip what a pre-migrations app made.
    raise SystemExit("These revisions inspect the database: run them online, not with --sql.")

shared_connection = context.config.attributes.get("connection")
if shared_connection is not None:
    run_revisions(shared_connection)
else:
    logging.basicConfig(level=logging.INFO, format="%(levelname)-5.5s [%(name)s] %(message)s")
    database = Database(database_url(), str(INSTANCE_FOLDER))
    try:
        with database.schema_lock() as connection:
            run_revisions(connection)
    finally:
        database.dispose()
