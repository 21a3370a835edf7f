"""The token store keeps tokens encrypted, one connection per business, states once.

Every test runs on SQLite; those about what is stored run on PostgreSQL too when
DATABASE_URL names one (each test gets its own schema there, dropped afterwards).
"""

import hashlib
import logging
import os
import secrets
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken
from flask import Flask
from sqlalchemy.schema import CreateSchema, DropSchema

from app import storage
from app.connect import used_states
from app.connect.used_states import UsedStates
from app.storage import migrations
from app.storage.connections import Connection, ConnectionStore, Snapshot
from app.storage.database import Database, StoreUnavailable
from app.storage.sealer import Sealer
from app.vcita import AccessToken

from .conftest import stored

ACCESS_TOKEN = "vcita-access-token-5f2c8a91d04e4b7f"
ISSUED_AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
THREADS = 8


@pytest.fixture
def key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture
def sqlite_path(tmp_path) -> Path:
    # In a folder that does not exist yet: the store creates it.
    return tmp_path / "instance" / "connect.db"


@pytest.fixture
def sqlite_url(sqlite_path) -> str:
    return f"sqlite:///{sqlite_path}"


@pytest.fixture
def postgres_url():
    """A fresh schema in the PostgreSQL that DATABASE_URL names, dropped afterwards."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("DATABASE_URL does not name a PostgreSQL database")
    schema = f"test_store_{secrets.token_hex(4)}"
    admin = sa.create_engine(url)
    with admin.begin() as db:
        db.execute(CreateSchema(schema))
    yield sa.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    with admin.begin() as db:
        db.execute(DropSchema(schema, cascade=True))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request) -> str:
    """The database under test: SQLite always, PostgreSQL when DATABASE_URL names one."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    url = request.getfixturevalue("postgres_url")
    return url.render_as_string(hide_password=False)


@pytest.fixture
def open_app():
    """Build tiny apps, each with its own database; every one is disposed afterwards."""
    stores = []

    def open_app(url: str, *keys: str) -> Flask:
        app = Flask(__name__)
        app.config.update(DATABASE_URL=url, TOKEN_ENCRYPTION_KEYS=list(keys))
        storage.init_app(app)
        used_states.init_app(app)
        stores.append(stored(app).connections)
        return app

    yield open_app
    for opened in stores:
        opened.database.dispose()


@pytest.fixture
def open_store(open_app):
    def open_store(url: str, *keys: str) -> ConnectionStore:
        return stored(open_app(url, *keys)).connections

    return open_store


@pytest.fixture
def make_store(open_store, database_url):
    """Open another store on the database under test, with these keys."""

    def make_store(*keys: str) -> ConnectionStore:
        return open_store(database_url, *keys)

    return make_store


@pytest.fixture
def store(make_store, key) -> ConnectionStore:
    return make_store(key)


@pytest.fixture
def store_log(caplog):
    """Capture the store's log, even when another test stopped the app's propagating."""
    loggers = [
        logging.getLogger(name) for name in ("app.storage.connections", "app.storage.database")
    ]
    for logger in loggers:
        logger.addHandler(caplog.handler)
    yield caplog
    for logger in loggers:
        logger.removeHandler(caplog.handler)


def save(store: ConnectionStore, staff_uid: str = "staff-1", **changes) -> Connection:
    token = {"access_token": ACCESS_TOKEN, "token_type": "Bearer", "issued_at": ISSUED_AT}
    token = AccessToken(**{"expires_at": None, **token, **changes})
    return store.save(business_uid="business-1", staff_uid=staff_uid, token=token)


def mark_used(store: ConnectionStore, state: str, expires_at: datetime) -> bool:
    """Mark a state used in the ledger on the store's database."""
    return UsedStates(store.database).mark_used(state, expires_at)


def raw_rows(database_url: str, table: str) -> list[dict]:
    """Read a table as the database holds it: plain SQL on an engine of its own."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as db:
            query = sa.select(sa.literal_column("*")).select_from(sa.table(table))
            return [dict(row) for row in db.execute(query).mappings()]
    finally:
        engine.dispose()


def sqlite_tables(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as db:
        return {
            name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
        }


def run_together(function, times: int = THREADS) -> list:
    """Call `function` from `times` threads released at the same moment."""
    start = threading.Barrier(times)

    def call(_):
        start.wait()
        return function()

    with ThreadPoolExecutor(max_workers=times) as pool:
        return list(pool.map(call, range(times)))


# --- Tokens are encrypted ------------------------------------------------------------


def test_token_is_not_stored_in_plain_text(store, database_url):
    save(store)
    [row] = raw_rows(database_url, "connections")
    assert all(ACCESS_TOKEN not in str(value) for value in row.values())
    assert row["encrypted_access_token"].startswith("gAAAAA")  # a Fernet token


def test_token_is_not_in_the_sqlite_files(open_store, key, sqlite_url, sqlite_path):
    store = open_store(sqlite_url, key)
    save(store)
    store.database.dispose()
    contents = b"".join(path.read_bytes() for path in sqlite_path.parent.iterdir())
    assert b"business-1" in contents
    assert ACCESS_TOKEN.encode() not in contents


def test_stored_token_is_decrypted_on_read(store):
    connection = save(store)
    assert store.get(connection.id).token.access_token == ACCESS_TOKEN


def test_store_with_another_key_cannot_read_the_token(make_store, key, database_url, store_log):
    connection = save(make_store(key))
    other = make_store(Fernet.generate_key().decode())

    assert other.get(connection.id) is None
    assert other.count() == 1  # kept, in case the right key comes back
    [row] = raw_rows(database_url, "connections")
    assert "cannot be decrypted" in store_log.text
    assert ACCESS_TOKEN not in store_log.text
    assert row["encrypted_access_token"] not in store_log.text
    assert connection.id not in store_log.text


@pytest.mark.parametrize("show", [repr, str])
def test_connection_repr_does_not_show_the_token(store, show):
    connection = save(store)
    assert ACCESS_TOKEN not in show(connection)
    assert connection.business_uid in show(connection)


# --- Key rotation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "read",
    [
        lambda store, connection: store.get(connection.id),
        lambda store, connection: store.find(connection.business_uid, connection.staff_uid),
    ],
    ids=["get", "find"],
)
def test_token_from_an_older_key_is_reencrypted_with_the_newest_on_read(
    make_store, database_url, read
):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    connection = save(make_store(old_key))
    rotated = make_store(new_key, old_key)

    assert read(rotated, connection).token.access_token == ACCESS_TOKEN
    [row] = raw_rows(database_url, "connections")
    assert Fernet(new_key).decrypt(row["encrypted_access_token"].encode()) == ACCESS_TOKEN.encode()
    assert make_store(old_key).get(connection.id) is None


@pytest.mark.parametrize("sealed_by", [0, 1, 2], ids=["newest", "older", "oldest"])
def test_sealer_opens_what_any_key_sealed_and_reseals_it_with_the_newest(sealed_by):
    keys = [Fernet.generate_key().decode() for _ in range(3)]
    sealed = Fernet(keys[sealed_by]).encrypt(ACCESS_TOKEN.encode()).decode()

    plaintext, resealed = Sealer(keys).open_and_reseal(sealed)

    assert plaintext == ACCESS_TOKEN
    if sealed_by == 0:
        assert resealed is None  # nothing to write back
    else:
        assert Fernet(keys[0]).decrypt(resealed.encode()) == ACCESS_TOKEN.encode()


@pytest.mark.parametrize("key_count", [1, 3])
def test_sealer_raises_invalid_token_for_what_no_key_sealed(key_count):
    sealer = Sealer([Fernet.generate_key().decode() for _ in range(key_count)])
    sealed = Fernet(Fernet.generate_key()).encrypt(ACCESS_TOKEN.encode()).decode()

    with pytest.raises(InvalidToken):
        sealer.open_and_reseal(sealed)


def test_token_from_the_newest_key_is_not_rewritten_on_read(make_store, key, database_url):
    store = make_store(key, Fernet.generate_key().decode())
    connection = save(store)
    [before] = raw_rows(database_url, "connections")

    assert store.get(connection.id).token.access_token == ACCESS_TOKEN
    [after] = raw_rows(database_url, "connections")
    assert after["encrypted_access_token"] == before["encrypted_access_token"]


# --- One connection per business and staff member -------------------------------------


def test_connecting_again_replaces_the_token_and_keeps_the_id(store):
    first = save(store)
    again = save(store, access_token="new-token-0b7e", issued_at=ISSUED_AT + timedelta(days=1))

    assert again.id == first.id
    assert store.count() == 1
    stored = store.get(first.id)
    assert stored.token.access_token == "new-token-0b7e"
    assert stored.token.issued_at == ISSUED_AT + timedelta(days=1)
    assert stored.connected_at == first.connected_at
    assert stored.updated_at >= first.updated_at


def test_another_staff_member_gets_another_connection(store):
    first = save(store, staff_uid="staff-1")
    second = save(store, staff_uid="staff-2", access_token="staff-2-token-91ac")

    assert second.id != first.id
    assert store.count() == 2
    assert store.get(first.id).token.access_token == ACCESS_TOKEN
    assert store.get(second.id).token.access_token == "staff-2-token-91ac"


def test_connection_ids_are_random_and_unguessable(store):
    ids = {save(store, staff_uid=f"staff-{n}").id for n in range(5)}
    assert len(ids) == 5
    assert all(len(connection_id) >= 22 for connection_id in ids)  # 128 random bits


def test_same_business_connecting_from_many_browsers_at_once_stores_one_row(store):
    connections = run_together(lambda: save(store))

    assert store.count() == 1
    assert {connection.id for connection in connections} == {connections[0].id}


@pytest.mark.parametrize(
    "expires_at", [None, datetime(2045, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))]
)
def test_times_are_read_back_in_utc(store, expires_at):
    issued_at = datetime(2025, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    connection = save(store, issued_at=issued_at, expires_at=expires_at)
    stored = store.get(connection.id)

    assert stored.token.issued_at == issued_at
    assert stored.token.issued_at.tzinfo == UTC
    assert stored.connected_at.tzinfo == UTC
    assert stored.token.expires_at == expires_at
    assert stored == connection


def test_unknown_connection_is_none(store):
    save(store)
    assert store.get("no-such-id") is None


def test_find_returns_the_staff_members_connection_else_the_newest(store):
    maya = save(store, staff_uid="staff-1")
    leo = save(store, staff_uid="staff-2", access_token="staff-2-token-91ac")

    assert store.find("business-1", "staff-1") == maya
    assert store.find("business-1") == leo
    assert store.find("business-1", "staff-3") is None
    assert store.find("business-2") is None


def test_find_reads_the_connection_in_one_query(store):
    connection = save(store)
    statements: list[str] = []
    sa.event.listen(
        store.database.engine,
        "before_cursor_execute",
        lambda *args: statements.append(args[2]),
        named=False,
    )

    assert store.find("business-1", "staff-1") == connection
    assert len(statements) == 1


def test_removed_connection_is_gone_and_says_whose_it_was(store):
    connection = save(store)

    removed = store.remove(connection.id)

    assert (removed.business_uid, removed.staff_uid) == ("business-1", "staff-1")
    assert store.sealer.open(removed.sealed_token) == ACCESS_TOKEN
    assert store.get(connection.id) is None
    assert store.count() == 0
    assert store.remove(connection.id) is None


# --- Single-use states ------------------------------------------------------------------


def in_minutes(minutes: int) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


def test_state_is_accepted_once(store):
    assert mark_used(store, "state-a", in_minutes(10)) is True
    assert mark_used(store, "state-a", in_minutes(10)) is False
    assert mark_used(store, "state-b", in_minutes(10)) is True


def test_state_used_by_two_callbacks_at_once_is_accepted_once(store):
    results = run_together(lambda: mark_used(store, "raced-state", in_minutes(10)))
    assert sorted(results) == [False] * (THREADS - 1) + [True]


def test_state_itself_is_not_stored(store, database_url):
    state = secrets.token_urlsafe(32)
    mark_used(store, state, in_minutes(10))

    [row] = raw_rows(database_url, "used_states")
    assert all(state not in str(value) for value in row.values())
    assert row["state_hash"] == hashlib.sha256(state.encode()).hexdigest()


def test_expired_states_are_pruned(store, database_url):
    mark_used(store, "long-gone", in_minutes(-1))
    mark_used(store, "fresh", in_minutes(10))

    hashes = {row["state_hash"] for row in raw_rows(database_url, "used_states")}
    assert hashes == {hashlib.sha256(b"fresh").hexdigest()}


# --- Schema ------------------------------------------------------------------------------


def test_schema_is_created_on_first_use_of_an_empty_database(
    open_store, key, sqlite_url, sqlite_path
):
    assert not sqlite_path.parent.exists()
    store = open_store(sqlite_url, key)
    assert sqlite_tables(sqlite_path) >= {"connections", "used_states"}
    assert store.count() == 0


def test_init_db_command_creates_the_schema_and_says_where(open_app, key, sqlite_url, sqlite_path):
    app = open_app(sqlite_url, key)
    path = sqlite_path
    with closing(sqlite3.connect(path)) as db:
        db.execute("DROP TABLE flow_traces")
        db.execute("DROP TABLE handoffs")
        db.execute("DROP TABLE connection_activity")
        db.execute("DROP TABLE webhook_subscriptions")
        db.execute("DROP TABLE pending_calls")
        db.execute("DROP TABLE connections")
        db.execute("DROP TABLE used_states")
        db.execute("DROP TABLE alembic_version")
    assert sqlite_tables(path) == set()

    result = app.test_cli_runner().invoke(args=["init-db"])

    assert result.exit_code == 0
    assert str(path) in result.output
    assert f"schema revision {migrations.script_directory().get_current_head()}" in result.output
    assert sqlite_tables(path) >= {"connections", "used_states", "handoffs", "alembic_version"}


def test_workers_starting_together_on_an_empty_database_all_start(make_store, key, store_log):
    stores = run_together(lambda: make_store(key), times=4)

    assert [store.count() for store in stores] == [0, 0, 0, 0]
    assert "unavailable" not in store_log.text


def test_sqlite_database_uses_write_ahead_logging(open_store, key, sqlite_url, sqlite_path):
    open_store(sqlite_url, key).database.ping()
    with closing(sqlite3.connect(sqlite_path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


# --- The database cannot be used --------------------------------------------------------


def block_parent_folder(path: Path) -> None:
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    path.parent.write_text("a file where the database's folder should be")


def unblock_parent_folder(path: Path) -> None:
    path.parent.unlink()


def block_database_file(path: Path) -> None:
    path.mkdir(parents=True)  # a folder where the database file should be


def unblock_database_file(path: Path) -> None:
    path.rmdir()


BROKEN_DATABASES = [
    pytest.param(block_parent_folder, unblock_parent_folder, id="folder-is-a-file"),
    pytest.param(block_database_file, unblock_database_file, id="file-is-a-folder"),
]
PUBLIC_CALLS = [
    pytest.param(save, id="save_connection"),
    pytest.param(lambda store: store.get("some-id"), id="get_connection"),
    pytest.param(lambda store: store.remove("some-id"), id="remove_connection"),
    pytest.param(lambda store: mark_used(store, "s", in_minutes(10)), id="mark_used"),
    pytest.param(lambda store: store.count(), id="count_connections"),
    pytest.param(lambda store: store.database.ping(), id="ping"),
]


@pytest.mark.parametrize("call", PUBLIC_CALLS)
@pytest.mark.parametrize(("block", "unblock"), BROKEN_DATABASES)
def test_unwritable_database_is_store_unavailable(
    open_store, key, sqlite_url, sqlite_path, store_log, block, unblock, call
):
    block(sqlite_path)
    store = open_store(sqlite_url, key)  # the app still starts
    assert "unavailable at startup" in store_log.text

    with pytest.raises(StoreUnavailable) as raised:
        call(store)
    assert raised.value.__cause__ is not None


@pytest.mark.parametrize(("block", "unblock"), BROKEN_DATABASES)
def test_store_works_again_once_the_database_can_be_written(
    open_store, key, sqlite_url, sqlite_path, block, unblock
):
    block(sqlite_path)
    store = open_store(sqlite_url, key)
    with pytest.raises(StoreUnavailable):
        save(store)

    unblock(sqlite_path)

    connection = save(store)
    assert store.get(connection.id).token.access_token == ACCESS_TOKEN
    assert sqlite_tables(sqlite_path) >= {"connections", "used_states"}


def test_a_database_back_at_a_revision_this_version_cannot_use_is_store_unavailable(
    open_store, key, sqlite_url, sqlite_path
):
    block_database_file(sqlite_path)
    store = open_store(sqlite_url, key)  # started without it
    unblock_database_file(sqlite_path)
    newer = Database(sqlite_url)  # back, upgraded meanwhile by a newer version
    newer.upgrade_schema()
    with newer.transaction() as db:
        db.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
    newer.dispose()

    # The 503 page, as while it was away: a request cannot stop the app.
    with pytest.raises(StoreUnavailable) as raised:
        save(store)

    assert "is at revision '0999', which this version of the app does not know" in str(
        raised.value
    )


def test_unreachable_postgresql_server_is_store_unavailable(open_store, key):
    # Port 9 (discard) has no PostgreSQL listening: the connection is refused at once.
    store = open_store("postgresql+psycopg://vcita@127.0.0.1:9/vcita_connect", key)
    with pytest.raises(StoreUnavailable):
        store.database.ping()
    with pytest.raises(StoreUnavailable):
        save(store)


def test_init_db_command_reports_an_unreachable_database(open_app, key, sqlite_url, sqlite_path):
    block_database_file(sqlite_path)
    app = open_app(sqlite_url, key)

    result = app.test_cli_runner().invoke(args=["init-db"])

    assert result.exit_code == 1
    assert "Cannot upgrade the database" in result.output


# --- What vcita said: clients read late are kept in the order the reads started ------------


def clients_read_at(store: ConnectionStore, connection_id: str) -> tuple[list, datetime]:
    snapshot = store.get(connection_id).snapshot
    return snapshot.recent_clients, snapshot.clients_read_at


def test_a_read_that_started_earlier_never_replaces_the_clients_of_a_later_one(store):
    connection = save(store)
    store.keep_snapshot(connection.id, Snapshot({"sub": "s"}, [], ISSUED_AT, ISSUED_AT))
    later, earlier = ISSUED_AT + timedelta(seconds=20), ISSUED_AT + timedelta(seconds=10)

    store.keep_recent_clients(connection.id, [{"name": "later"}], later)
    store.keep_recent_clients(connection.id, [{"name": "earlier"}], earlier)  # ended last

    assert clients_read_at(store, connection.id) == ([{"name": "later"}], later)


def test_a_snapshot_without_clients_keeps_those_listed_before(store):
    connection = save(store)
    listed = [{"name": "Ava"}]
    store.keep_snapshot(connection.id, Snapshot({"sub": "s"}, listed, ISSUED_AT, ISSUED_AT))
    moments_later = ISSUED_AT + timedelta(minutes=5)

    store.keep_snapshot(connection.id, Snapshot({"sub": "s2"}, None, moments_later, None))
    reconnected = store.save(
        business_uid="business-1",
        staff_uid="staff-1",
        token=connection.token,
        snapshot=Snapshot({"sub": "s3"}, None, moments_later, None),
    )

    assert reconnected.id == connection.id
    assert clients_read_at(store, connection.id) == (listed, ISSUED_AT)
    assert store.get(connection.id).snapshot.userinfo == {"sub": "s3"}
