"""Bring a database to the newest revision of the app's schema, with Alembic.

The revisions in versions/ are the schema's history; env.py runs them, for the app and
for the `alembic` command alike. A database reaches the newest revision one of three
ways: a new one gets today's tables at once and is stamped with the newest revision
(Alembic's recipe for a new database, as quick as creating the tables); one the app
made before migrations (its tables, no alembic_version) is stamped with the revision
it matches first, 0001, and upgraded from there; any other is upgraded from the
revision it records.
"""

import logging
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

logger = logging.getLogger(__name__)

MIGRATIONS_FOLDER = Path(__file__).resolve().parent
# The schema when migrations began (app/database.py at 09ee3c1): a database the app
# made before then is adopted at this revision, whatever it has gained since.
FIRST_REVISION = "0001"
# Every version of the app has created this table: it marks a database already in use.
FIRST_TABLE = "connections"


class UnknownRevision(Exception):
    """The database records a revision this version of the app does not have."""


def upgrade(connection: sa.Connection, metadata: sa.MetaData) -> str:
    """Bring the database on `connection` to the newest revision, and return it.

    Runs in the caller's transaction, which holds the schema lock: workers starting
    together take turns, and the later ones find the work done.
    """
    revisions = script_directory()
    newest = revisions.get_current_head()
    context = MigrationContext.configure(connection)
    current = context.get_current_heads()
    if current == (newest,):
        return newest
    _refuse_unknown_revisions(current, revisions)
    if current:
        start = current[0]
    elif sa.inspect(connection).has_table(FIRST_TABLE):
        # Made by the app before migrations: adopted, not created again.
        context.stamp(revisions, FIRST_REVISION)
        start = FIRST_REVISION
    else:
        # A new database: today's tables at once, as the revisions would build them
        # (a test compares the two), in half the time.
        metadata.create_all(connection)
        context.stamp(revisions, newest)
        logger.info("Database schema created at revision %s", newest)
        return newest
    _run_revisions(connection, newest)
    logger.info("Database schema upgraded from revision %s to %s", start, newest)
    return newest


@cache
def script_directory() -> ScriptDirectory:
    """Return the app's revisions (read once: they do not change while the app runs)."""
    return ScriptDirectory.from_config(alembic_config())


def alembic_config() -> Config:
    """Return the Alembic settings the app runs its revisions with.

    Built here rather than read from pyproject.toml, which an installed app may not
    ship; the `alembic` command reads the same script_location from there.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_FOLDER).replace("%", "%%"))
    return config


def _refuse_unknown_revisions(current: tuple[str, ...], revisions: ScriptDirectory) -> None:
    """Raise UnknownRevision if the database records a revision missing here."""
    known = {script.revision for script in revisions.walk_revisions()}
    unknown = [revision for revision in current if revision not in known]
    if unknown:
        # Code rolled back onto a database a newer version upgraded: this version
        # cannot tell what the newer tables and columns mean, nor undo them.
        raise UnknownRevision(
            f"the database is at revision {', '.join(unknown)}, which this version of the "
            f"app does not know (its newest is {revisions.get_current_head()}): a newer "
            "version upgraded it"
        )


def _run_revisions(connection: sa.Connection, destination: str) -> None:
    """Run the revisions up to `destination` on `connection`, in its transaction."""
    config = alembic_config()
    # env.py runs on this connection instead of opening its own (Alembic's recipe for
    # sharing a connection with commands).
    config.attributes["connection"] = connection
    command.upgrade(config, destination)
