"""Deployed databases upgrade to the newest schema and keep every connection and token.

Every test runs on SQLite, and on PostgreSQL too under `make test-postgres` (in a schema
of its own, dropped afterwards). The schemas of earlier versions are written out here as
those versions of app/database.py created them, so they stay what deployed databases
hold however the app's tables change.
"""

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import hypothesis
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st

from app import create_app
from app.config import EXIT_CONFIG_ERROR, ConfigError
from app.storage import migrations
from app.storage.database import Database
from app.storage.tables import metadata
from app.vcita import AccessToken

from . import postgres
from .conftest import REPEATABLE, close, stored

ROOT = Path(__file__).resolve().parent.parent
NEWEST = migrations.script_directory().get_current_head()
ACCESS_TOKEN = "vcita-access-token-0b8e41c7d2a94f65"
ISSUED_AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CONNECTION_ID = "Xq2b7Yc0Qm9sLk3RtV1wZg"
TARGET_URL = "https://connect.example/webhooks/vcita/9f2c41d07a6b4e35"
# Statements that change a database; reading its revision or taking a lock does not.
WRITES = re.compile(r"\s*(CREATE|ALTER|DROP|INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


# --- The schemas before migrations -------------------------------------------------------


def schema_before_migrations(commit: str) -> sa.MetaData:
    """Return the tables app/database.py created at `commit`, with their names and indexes.

    09ee3c1: when issue 12 was filed. ffb1f5c: handoffs, activity and webhook
    subscriptions added. 628ebe8: the snapshot columns on connections, still without
    migrations.
    """
    schema = sa.MetaData()
    timestamp = sa.DateTime(timezone=True)
    snapshot_columns = [
        sa.Column("encrypted_userinfo", sa.Text, nullable=True),
        sa.Column("encrypted_recent_clients", sa.Text, nullable=True),
        sa.Column("userinfo_read_at", timestamp, nullable=True),
    ]
    sa.Table(
        "connections",
        schema,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("business_uid", sa.String(255), nullable=False),
        sa.Column("staff_uid", sa.String(255), nullable=False),
        sa.Column("encrypted_access_token", sa.Text, nullable=False),
        sa.Column("token_type", sa.String(40), nullable=False),
        sa.Column("issued_at", timestamp, nullable=False),
        sa.Column("expires_at", timestamp, nullable=True),
        sa.Column("connected_at", timestamp, nullable=False),
        sa.Column("updated_at", timestamp, nullable=False),
        *(snapshot_columns if commit == "628ebe8" else []),
        sa.UniqueConstraint("business_uid", "staff_uid", name="uq_connections_business_staff"),
    )
    sa.Table(
        "used_states",
        schema,
        sa.Column("state_hash", sa.String(64), primary_key=True),
        sa.Column("expires_at", timestamp, nullable=False, index=True),
    )
    if commit != "09ee3c1":
        add_tables_of_ffb1f5c(schema, timestamp)
    sa.Table(
        "flow_traces",
        schema,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "connection_id",
            sa.String(64),
            sa.ForeignKey("connections.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("encrypted_steps", sa.Text, nullable=False),
        sa.Column("expires_at", timestamp, nullable=False, index=True),
    )
    return schema


def add_tables_of_ffb1f5c(schema: sa.MetaData, timestamp: sa.DateTime) -> None:
    """Add the handoffs, connection_activity and webhook_subscriptions of ffb1f5c."""
    sa.Table(
        "handoffs",
        schema,
        sa.Column("code_hash", sa.String(64), primary_key=True),
        sa.Column("binding", sa.String(64), nullable=False),
        sa.Column(
            "connection_id",
            sa.String(64),
            sa.ForeignKey("connections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("expires_at", timestamp, nullable=False, index=True),
    )
    sa.Table(
        "connection_activity",
        schema,
        sa.Column(
            "connection_id",
            sa.String(64),
            sa.ForeignKey("connections.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("last_used_at", timestamp, nullable=False),
    )
    sa.Table(
        "webhook_subscriptions",
        schema,
        sa.Column(
            "connection_id",
            sa.String(64),
            sa.ForeignKey("connections.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("encrypted_target_url", sa.Text, nullable=False),
        sa.Column("subscribed_at", timestamp, nullable=False),
    )


# --- Fixtures and helpers ----------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """An empty database: a SQLite file, or a new schema in `make test-postgres`'s server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'connect.db'}"
        return
    server_database = request.getfixturevalue("postgres_database")
    if server_database is None:
        pytest.skip("DATABASE_URL does not name a PostgreSQL server")
    with postgres.fresh_schema(server_database) as url:
        yield url


@pytest.fixture
def engine(database_url):
    """A plain engine on the database under test, for building and inspecting it."""
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def key(settings) -> str:
    """The TOKEN_ENCRYPTION_KEY of the apps these tests start."""
    return settings["TOKEN_ENCRYPTION_KEY"]


@pytest.fixture
def open_databases():
    """Open Database objects (one per worker), each disposed afterwards."""
    opened = []

    def open_databases(url: str, count: int) -> list[Database]:
        opened.extend(Database(url) for _ in range(count))
        return opened[-count:]

    yield open_databases
    for database in opened:
        database.dispose()


def build_before_migrations(engine: sa.Engine, commit: str, key: str) -> None:
    """Create the tables `commit` created, and store a connection as its app did."""
    schema = schema_before_migrations(commit)
    schema.create_all(engine)
    fernet = Fernet(key)
    with engine.begin() as db:
        db.execute(
            schema.tables["connections"].insert(),
            {
                "id": CONNECTION_ID,
                "business_uid": "business-1",
                "staff_uid": "staff-1",
                # ConnectionStore's way: Fernet with the app's key, never the token itself.
                "encrypted_access_token": fernet.encrypt(ACCESS_TOKEN.encode()).decode(),
                "token_type": "Bearer",
                "issued_at": ISSUED_AT,
                "expires_at": None,
                "connected_at": ISSUED_AT,
                "updated_at": ISSUED_AT,
            },
        )
        if "webhook_subscriptions" in schema.tables:
            db.execute(
                schema.tables["webhook_subscriptions"].insert(),
                {
                    "connection_id": CONNECTION_ID,
                    "secret_hash": hashlib.sha256(b"9f2c41d07a6b4e35").hexdigest(),
                    "encrypted_target_url": fernet.encrypt(TARGET_URL.encode()).decode(),
                    "subscribed_at": ISSUED_AT,
                },
            )


def build_at_revision(engine: sa.Engine, revision: str, key: str) -> None:
    """Run the revisions up to `revision`, and store a connection in its tables."""
    run_revisions(engine.url.render_as_string(hide_password=False), revision)
    with engine.begin() as db:
        db.execute(
            sa.text(
                "INSERT INTO connections (id, business_uid, staff_uid, encrypted_access_token,"
                " token_type, issued_at, connected_at, updated_at) VALUES (:id, 'business-1',"
                " 'staff-1', :ciphertext, 'Bearer', :issued_at, :issued_at, :issued_at)"
            ).bindparams(sa.bindparam("issued_at", type_=sa.DateTime(timezone=True))),
            {
                "id": CONNECTION_ID,
                "ciphertext": Fernet(key).encrypt(ACCESS_TOKEN.encode()).decode(),
                "issued_at": ISSUED_AT,
            },
        )


def run_revisions(url: str, destination: str) -> None:
    """Run the revisions one by one up to `destination`, as `alembic upgrade` does."""
    database = Database(url)
    try:
        with database.schema_lock() as connection:
            config = migrations.alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, destination)
    finally:
        database.dispose()


def revision_of(engine: sa.Engine) -> tuple[str, ...]:
    with engine.connect() as db:
        return MigrationContext.configure(db).get_current_heads()


def differences(engine: sa.Engine, schema: sa.MetaData) -> list:
    """Return what Alembic's autogenerate finds between the database and `schema`."""
    with engine.connect() as db:
        return compare_metadata(MigrationContext.configure(db), schema)


def tables_but(schema: sa.MetaData, left_out: str) -> sa.MetaData:
    """Return a copy of `schema` without one of its tables (the newest revision's)."""
    copy = sa.MetaData()
    for table in schema.sorted_tables:
        if table.name != left_out:
            table.to_metadata(copy)
    return copy


def record_statements(engine: sa.Engine) -> list[str]:
    """Return a list that collects every statement `engine` runs from now on."""
    statements = []
    sa.event.listen(
        engine, "before_cursor_execute", lambda *args: statements.append(args[2]), named=False
    )
    return statements


def record_revisions(engine: sa.Engine, revisions: list[str]) -> None:
    """Make alembic_version hold exactly `revisions`, one row each, as if edited by hand."""
    with engine.begin() as db:
        if engine.dialect.name == "postgresql":
            # Alembic makes version_num VARCHAR(32); SQLite would keep a longer one anyway.
            db.execute(sa.text("ALTER TABLE alembic_version ALTER COLUMN version_num TYPE text"))
        db.execute(sa.text("DELETE FROM alembic_version"))
        for revision in revisions:
            db.execute(
                sa.text("INSERT INTO alembic_version VALUES (:revision)"), {"revision": revision}
            )


def run_command(command_line: list[str], settings: dict, database_url: str):
    """Run a command of the project as a developer would, on `database_url`."""
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VCITA_", "DATABASE_"))},
        **settings,
        "DATABASE_URL": database_url,
        "FLASK_SKIP_DOTENV": "1",
    }
    return subprocess.run(
        command_line, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


# --- Upgrading keeps every connection ---------------------------------------------------


@pytest.mark.parametrize(
    "old",
    [
        pytest.param("09ee3c1", id="made-by-09ee3c1"),
        pytest.param("ffb1f5c", id="made-by-ffb1f5c"),
        pytest.param("628ebe8", id="made-by-628ebe8"),
        pytest.param("0001", id="at-revision-0001"),
        pytest.param("0002", id="at-revision-0002"),
        pytest.param("0003", id="at-revision-0003"),
        pytest.param("0004", id="at-revision-0004"),
    ],
)
def test_the_app_upgrades_an_old_database_and_reads_its_connection(
    make_app, database_url, engine, key, old
):
    if old.isdigit():
        build_at_revision(engine, old, key)
    else:
        build_before_migrations(engine, old, key)

    app = make_app(DATABASE_URL=database_url)

    connection = stored(app).connections.get(CONNECTION_ID)
    assert connection.id == CONNECTION_ID
    assert (connection.business_uid, connection.staff_uid) == ("business-1", "staff-1")
    assert connection.token == AccessToken(ACCESS_TOKEN, "Bearer", ISSUED_AT, None)
    assert revision_of(engine) == (NEWEST,)
    # Adopted or upgraded, the database ends exactly as a new one begins.
    assert differences(engine, metadata) == []


def test_clients_kept_before_0004_are_dated_with_the_userinfo_they_were_read_with(
    make_app, database_url, engine, key
):
    build_at_revision(engine, "0003", key)
    read_at = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    fernet = Fernet(key)
    with engine.begin() as db:
        db.execute(
            sa.text(
                "UPDATE connections SET encrypted_userinfo = :userinfo,"
                " encrypted_recent_clients = :clients, userinfo_read_at = :read_at"
            ).bindparams(sa.bindparam("read_at", type_=sa.DateTime(timezone=True))),
            {
                "userinfo": fernet.encrypt(b'{"business_uid": "business-1"}').decode(),
                "clients": fernet.encrypt(b"[]").decode(),
                "read_at": read_at,
            },
        )

    app = make_app(DATABASE_URL=database_url)

    snapshot = stored(app).connections.get(CONNECTION_ID).snapshot
    assert snapshot.recent_clients == []
    assert snapshot.read_at == snapshot.clients_read_at == read_at


def test_a_webhook_subscription_made_before_migrations_is_kept(
    make_app, database_url, engine, key
):
    build_before_migrations(engine, "ffb1f5c", key)

    app = make_app(DATABASE_URL=database_url)

    assert stored(app).subscriptions.target_url_of(CONNECTION_ID) == TARGET_URL


def test_init_db_upgrades_an_old_database_and_names_its_revision(
    settings, database_url, engine, key
):
    build_before_migrations(engine, "09ee3c1", key)

    result = run_command(
        [sys.executable, "-m", "flask", "--app", "app", "init-db"], settings, database_url
    )

    assert result.returncode == 0, result.stderr
    assert f"is at schema revision {NEWEST}" in result.stdout
    assert revision_of(engine) == (NEWEST,)


def test_a_database_at_the_newest_revision_is_left_as_it_is(make_app, database_url, engine):
    app = make_app(DATABASE_URL=database_url)
    store = stored(app).connections
    saved = store.save(
        business_uid="business-1",
        staff_uid="staff-1",
        token=AccessToken(ACCESS_TOKEN, "Bearer", ISSUED_AT, None),
    )
    statements = record_statements(stored(app).database.engine)

    result = app.test_cli_runner().invoke(args=["init-db"])

    assert result.exit_code == 0
    assert f"is at schema revision {NEWEST}" in result.output
    assert statements  # it did look
    assert [statement for statement in statements if WRITES.match(statement)] == []
    assert store.get(saved.id).token.access_token == ACCESS_TOKEN


def test_a_new_database_is_created_at_the_newest_revision(make_app, engine):
    make_app(DATABASE_URL=engine.url.render_as_string(hide_password=False))

    assert revision_of(engine) == (NEWEST,)
    assert differences(engine, metadata) == []


def test_an_install_without_its_revisions_refuses_to_build_a_schema(engine, tmp_path, monkeypatch):
    (tmp_path / "versions").mkdir()  # the revisions' folder, left empty by the install
    monkeypatch.setattr(migrations, "script_directory", lambda: ScriptDirectory(str(tmp_path)))

    with pytest.raises(migrations.CannotUpgrade) as raised, engine.begin() as connection:
        migrations.upgrade(connection, metadata)

    assert str(raised.value) == f"the app's revisions are missing from {tmp_path / 'versions'}"
    assert sa.inspect(engine).get_table_names() == []  # no tables, and no revision stamped


def test_a_database_a_newer_version_upgraded_is_refused(make_app, database_url, engine):
    app = make_app(DATABASE_URL=database_url)
    record_revisions(engine, ["0999"])

    # The database was out of reach when this app was made, and is back: init-db says why.
    result = app.test_cli_runner().invoke(args=["init-db"])

    assert result.exit_code == 1
    assert "at revision '0999', which this version of the app does not know" in result.output
    # A new app stops with the settings message, as `flask`, gunicorn and make run do.
    with pytest.raises(ConfigError) as raised:
        make_app(DATABASE_URL=database_url)
    assert raised.value.code == EXIT_CONFIG_ERROR
    [problem] = raised.value.problems
    location = engine.url.render_as_string(hide_password=True)
    assert problem.startswith(f"DATABASE_URL: the database at {location} is at revision '0999'")
    assert revision_of(engine) == ("0999",)  # refused, not touched


# Each was a traceback (UnknownRevision, Alembic's CommandError), or an app that started
# and answered 503 to every page while it failed to upgrade on each of them.
UNUSABLE_HISTORIES = [
    pytest.param(["0999"], "is at revision '0999', which", id="unknown"),
    pytest.param([NEWEST, "0999"], "is at revision '0999', which", id="known-and-unknown"),
    pytest.param([NEWEST, "0003"], f"several revisions at once ('{NEWEST}', '0003')", id="two"),
    pytest.param([""], "is at revision '', which", id="empty-string"),
    pytest.param(["9" * 300], "is at revision '999999", id="very-long"),
    # On a terminal: clear the screen, then a line of the writer's own.
    pytest.param(["\x1b[2J\n  - all fine"], r"revision '\x1b[2J\n  - all fine'", id="control"),
    pytest.param(["head"], "is at revision 'head', which", id="alembic-keyword"),
    pytest.param(["0002"], "from revision 0002 to", id="older-than-its-tables"),
    pytest.param([], "from revision 0001 to", id="no-row-beside-todays-tables"),
]


@pytest.mark.parametrize(("revisions", "says"), UNUSABLE_HISTORIES)
def test_a_database_whose_revisions_cannot_be_upgraded_stops_the_app_with_the_one_message(
    make_app, database_url, engine, revisions, says, capsys
):
    make_app(DATABASE_URL=database_url)  # today's tables
    record_revisions(engine, revisions)
    capsys.readouterr()

    with pytest.raises(ConfigError) as raised:
        make_app(DATABASE_URL=database_url)

    assert raised.value.code == EXIT_CONFIG_ERROR
    [problem] = raised.value.problems
    location = engine.url.render_as_string(hide_password=True)
    assert problem.startswith(f"DATABASE_URL: the database at {location} ")
    assert says in problem
    assert problem.isprintable() and len(problem) < 500  # escaped, and cut short
    assert capsys.readouterr().err == f"{raised.value}\n"  # said once, on stderr
    with engine.connect() as db:  # nothing was changed
        kept = db.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
        assert sorted(kept) == sorted(revisions)


KNOWN_REVISIONS = [script.revision for script in migrations.script_directory().walk_revisions()]
any_revision = st.one_of(
    st.sampled_from([*KNOWN_REVISIONS, "", "head", "base", "heads", "0999"]),
    # Any text SQLite keeps (a lone surrogate cannot even be written).
    st.text(st.characters(exclude_categories=("Cs",)), max_size=80),
)


@pytest.fixture
def todays_database(tmp_path) -> Path:
    """A SQLite file with today's tables at the newest revision, for a test to copy."""
    path = tmp_path / "today.db"
    database = Database(f"sqlite:///{path}")
    database.upgrade_schema()
    database.dispose()  # folds the write-ahead log into the file
    return path


@hypothesis.settings(REPEATABLE, max_examples=40)
@given(
    revisions=st.one_of(
        st.just([NEWEST]),
        st.lists(st.sampled_from(KNOWN_REVISIONS), max_size=2, unique=True),
        st.lists(any_revision, max_size=2, unique=True),
    )
)
def test_any_alembic_version_starts_the_app_or_stops_it_with_the_one_message(
    settings, todays_database, tmp_path, revisions
):
    copy = tmp_path / f"{uuid.uuid4().hex}.db"
    shutil.copyfile(todays_database, copy)
    url = f"sqlite:///{copy}"
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    record_revisions(engine, revisions)

    try:
        app = create_app({**settings, "DATABASE_URL": url})
    except ConfigError as error:
        [problem] = error.problems
        assert problem.startswith(f"DATABASE_URL: the database at {url} ")
        assert problem.isprintable() and len(problem) < 500
        assert revisions != [NEWEST]
    else:
        close(app)
        # Today's tables: only the newest revision describes them.
        assert revisions == [NEWEST]
        assert revision_of(engine) == (NEWEST,)
    finally:
        engine.dispose()


# --- Workers starting together -----------------------------------------------------------


def test_workers_starting_together_on_an_old_database_upgrade_it_once(
    database_url, engine, key, open_databases, caplog
):
    build_before_migrations(engine, "09ee3c1", key)
    workers = open_databases(database_url, 2)
    for worker in workers:
        # Whoever upgrades takes its time, so the other surely arrives meanwhile.
        sa.event.listen(worker.engine, "before_cursor_execute", pause_before_altering)
    together = threading.Barrier(len(workers))

    def start(worker: Database) -> str:
        together.wait()
        return worker.upgrade_schema()

    with (
        caplog.at_level(logging.INFO, logger="alembic"),
        ThreadPoolExecutor(len(workers)) as pool,
    ):
        revisions = list(pool.map(start, workers))

    assert revisions == [NEWEST, NEWEST]
    ran = [record.getMessage().split(",")[0] for record in caplog.records]
    assert [line for line in ran if line.startswith("Running upgrade")] == [
        "Running upgrade 0001 -> 0002",
        "Running upgrade 0002 -> 0003",
        "Running upgrade 0003 -> 0004",
        "Running upgrade 0004 -> 0005",
    ]
    assert revision_of(engine) == (NEWEST,)


def pause_before_altering(connection, cursor, statement, parameters, context, executemany):
    if statement.lstrip().upper().startswith("ALTER TABLE"):
        time.sleep(0.3)


# --- The revisions themselves ------------------------------------------------------------


def test_every_revision_from_nothing_builds_the_tables_the_app_creates(database_url, engine):
    run_revisions(database_url, "head")

    assert differences(engine, metadata) == []


@pytest.mark.parametrize(
    ("revision", "commit"), [("0001", "09ee3c1"), ("0002", "ffb1f5c"), ("0003", "628ebe8")]
)
def test_a_revision_builds_the_schema_of_its_commit(database_url, engine, revision, commit):
    run_revisions(database_url, revision)

    assert differences(engine, schema_before_migrations(commit)) == []


def test_the_alembic_command_undoes_the_newest_revision_and_does_it_again(
    settings, database_url, engine, key
):
    build_at_revision(engine, NEWEST, key)
    alembic = [sys.executable, "-m", "alembic"]

    undone = run_command([*alembic, "downgrade", "-1"], settings, database_url)

    assert undone.returncode == 0, undone.stderr
    assert revision_of(engine) == ("0004",)
    assert differences(engine, tables_but(metadata, "pending_calls")) == []
    with engine.connect() as db:
        assert db.execute(sa.text("SELECT id FROM connections")).scalars().all() == [CONNECTION_ID]

    redone = run_command([*alembic, "upgrade", "head"], settings, database_url)

    assert redone.returncode == 0, redone.stderr
    assert revision_of(engine) == (NEWEST,)
    assert differences(engine, metadata) == []
