"""What the app keeps on this machine only its own user can read: the SQLite database (its
-wal and -shm files too) and the instance folder it lives in.

Run under umask 022, with which SQLite and mkdir alone make files and folders everyone
can read (0644, 0755). `make run`'s secrets and `flask vcita new-key`'s keys: in
tests/test_app.py and tests/test_private_key_jwt.py.
"""

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.storage.database import get_db
from app.storage.private_files import private_file, private_folder
from app.storage.tables import used_states

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.usefixtures("usual_umask")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def database_files(database: Path) -> list[Path]:
    """The database file, and its write-ahead log and shared-memory index."""
    return [
        database,
        database.with_name(f"{database.name}-wal"),
        database.with_name(f"{database.name}-shm"),
    ]


def write_something(app) -> None:
    """Write a row through the app's database, so that SQLite opens its -wal and -shm."""
    with app.app_context(), get_db().transaction() as db:
        db.execute(sa.insert(used_states).values(state_hash="0" * 64, expires_at=sa.func.now()))


def test_a_new_default_database_and_its_wal_and_shm_files_are_private(make_app, instance_folder):
    app = make_app(DATABASE_URL="")  # the default: a SQLite file in the instance folder

    write_something(app)

    database = instance_folder / "vcita_connect.db"
    # SQLite makes -wal and -shm with the database file's mode, which the app chose.
    assert [mode_of(path) for path in database_files(database)] == [0o600, 0o600, 0o600]
    assert mode_of(instance_folder) == 0o700


def test_a_database_an_older_version_left_readable_is_made_private_at_start(
    make_app, instance_folder
):
    instance_folder.mkdir(mode=0o755)
    database = instance_folder / "vcita_connect.db"
    older_app = sqlite3.connect(database)  # still running: its -wal and -shm stay
    older_app.execute("PRAGMA journal_mode = WAL")
    older_app.execute("CREATE TABLE kept (id INTEGER)")
    older_app.commit()
    try:
        assert [mode_of(path) for path in database_files(database)] == [0o644, 0o644, 0o644]

        make_app(DATABASE_URL="")

        assert [mode_of(path) for path in database_files(database)] == [0o600, 0o600, 0o600]
        assert mode_of(instance_folder) == 0o700
    finally:
        older_app.close()


def test_a_folder_the_operator_named_keeps_its_mode_and_a_folder_the_app_makes_is_private(
    make_app, tmp_path
):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    made = tmp_path / "made" / "for" / "the-database"

    for folder in (shared, made):
        write_something(make_app(DATABASE_URL=f"sqlite:///{folder / 'connect.db'}"))

    assert mode_of(shared) == 0o755  # DATABASE_URL=sqlite:////tmp/x.db must not chmod /tmp
    assert mode_of(made) == 0o700
    for folder in (shared, made):
        assert mode_of(folder / "connect.db") == 0o600


def test_whoever_comes_second_finds_the_private_file_and_folder_the_first_made(tmp_path):
    # Workers starting together: no O_EXCL, so the second does not fail where the first won.
    folder, database = tmp_path / "instance", tmp_path / "instance" / "connect.db"
    for _ in range(2):
        private_folder(folder, tighten=True)
        private_file(database)

    assert (mode_of(folder), mode_of(database)) == (0o700, 0o600)


def test_the_alembic_command_makes_a_new_database_private_too(tmp_path, usual_umask):
    database = tmp_path / "new-folder" / "connect.db"
    environment = {
        **{name: value for name, value in os.environ.items() if name != "DATABASE_URL"},
        "DATABASE_URL": f"sqlite:///{database}",
    }

    upgraded = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert upgraded.returncode == 0, upgraded.stderr
    assert mode_of(database) == 0o600
    assert mode_of(database.parent) == 0o700
