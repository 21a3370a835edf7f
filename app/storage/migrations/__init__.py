"""Bring a database to the newest revision of the app's schema, with Alembic.

The revisions in versions/ are the schema's history; env.py runs them, for the app and
for the `alembic` command alike. A database reaches the newest revision one of three
ways: a new one gets today's tables at once and is stamped with the newest revision
(Alembic's recipe for a new database, as quick as creating the tables); one the app
made before migrations (its tables, no alembic_version) is stamped with the revision
it matches first, 0001, and upgraded from there; any other is upgraded from the
revision it records. A database whose alembic_version this version cannot upgrade from
(a revision it does not know, several at once, or one its tables do not match) is refused
with CannotUpgrade, naming the database and what is wrong.
"""

import logging
from functools import cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

logger = logging.getLogger(__name__)

MIGRATIONS_FOLDER = Path(__file__).resolve().parent
# The schema when migrations began (app/database.py at 09ee3c1): a database the app
# made before then is adopted at this revision, whatever it has gained since.
FIRST_REVISION = "0001"
# Every version of the app has created this table: it marks a database already in use.
FIRST_TABLE = "connections"
# A revision is text whoever wrote the database chose, shown on the operator's terminal:
# quoted with its control characters escaped, cut short, and only the first few.
MAX_SHOWN_REVISION = 40
MAX_SHOWN_REVISIONS = 3
MAX_SHOWN_REASON = 200


class CannotUpgrade(Exception):
    """The database records revisions this version of the app cannot upgrade from."""


def upgrade(connection: sa.Connection, metadata: sa.MetaData) -> str:
    """Bring the database on `connection` to the newest revision, and return it.

    Runs in the caller's transaction, which holds the schema lock: workers starting
    together take turns, and the later ones find the work done.
    """
    revisions = script_directory()
    newest = revisions.get_current_head()
    if newest is None:
        # An install that left versions/ out: there is no schema to bring the database to.
        raise CannotUpgrade(f"the app's revisions are missing from {revisions.versions}")
    context = MigrationContext.configure(connection)
    current = context.get_current_heads()
    if current == (newest,):
        return newest
    _refuse_unknown_revisions(connection, current, revisions)
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
    _run_revisions(connection, start, newest)
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


def _refuse_unknown_revisions(
    connection: sa.Connection, current: tuple[str, ...], revisions: ScriptDirectory
) -> None:
    """Raise CannotUpgrade if the database records a revision missing here, or several."""
    known = {script.revision for script in revisions.walk_revisions()}
    unknown = [revision for revision in current if revision not in known]
    newest = revisions.get_current_head()
    if unknown:
        # Code rolled back onto a database a newer version upgraded: this version
        # cannot tell what the newer tables and columns mean, nor undo them.
        raise CannotUpgrade(
            f"{_database(connection)} is at revision {_shown(unknown)}, which this version "
            f"of the app does not know (its newest is {newest}): a newer version upgraded "
            "it, or its alembic_version table was changed by hand"
        )
    if len(current) > 1:
        # The app's revisions are one line, so a database of its own is at one of them.
        raise CannotUpgrade(
            f"{_database(connection)} records several revisions at once ({_shown(current)}), "
            "which no version of the app writes: its alembic_version table was changed by hand"
        )


def _run_revisions(connection: sa.Connection, start: str, destination: str) -> None:
    """Run the revisions from `start` to `destination` on `connection`, in its transaction."""
    config = alembic_config()
    # env.py runs on this connection instead of opening its own (Alembic's recipe for
    # sharing a connection with commands).
    config.attributes["connection"] = connection
    try:
        command.upgrade(config, destination)
    except (sa.exc.DBAPIError, CommandError) as error:
        # The tables are not those the recorded revision made (an alembic_version edited
        # or restored apart from its tables): the transaction undoes whatever ran.
        reason = error.orig if isinstance(error, sa.exc.DBAPIError) else error
        # One line, and short: a server's message may run on (DETAIL, HINT, the statement).
        shown = " ".join(str(reason).split())[:MAX_SHOWN_REASON]
        raise CannotUpgrade(
            f"{_database(connection)} could not be upgraded from revision {start} to "
            f"{destination}, so its tables are not those of revision {start}: {shown}"
        ) from error


def _database(connection: sa.Connection) -> str:
    """Name the database on `connection` for a message, its password hidden."""
    return f"the database at {connection.engine.url.render_as_string(hide_password=True)}"


def _shown(revisions: list[str] | tuple[str, ...]) -> str:
    """Return revisions as a message may show them: quoted, escaped, cut short."""
    shown = []
    for revision in revisions[:MAX_SHOWN_REVISIONS]:
        quoted = repr(revision)
        cut = len(quoted) > MAX_SHOWN_REVISION
        shown.append(quoted[: MAX_SHOWN_REVISION - 3] + "..." if cut else quoted)
    more = len(revisions) - MAX_SHOWN_REVISIONS
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")
