"""Shared fixtures: the vcita sandbox as a real HTTP server, and the app pointed at it.

The app reaches the sandbox only over HTTP on loopback, exactly as it reaches vcita.
pytest-flask gives every test a `client` for the `app` fixture below.
"""

import os
from dataclasses import replace

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from flask import Flask

from app import create_app
from app.storage.connections import SNAPSHOT_COLUMNS
from app.storage.tables import connections
from sandbox import create_sandbox
from sandbox.testing import SandboxPerson, ServerThread

from . import postgres
from .servers import ScriptedApi

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-client-secret-7463f1a2b9c0144b"
REDIRECT_URI = "http://localhost/callback"  # the Flask test client's host


def change_vcita_settings(app, **changes) -> None:
    """Change the settings of the app's vcita client (fault tests: timeouts, URLs)."""
    client = app.extensions["vcita"]
    client.settings = replace(client.settings, **changes)


def only_connection(app):
    """Return the one stored connection, with its token; None if there is none."""
    store = app.extensions["connections"]
    with app.app_context():
        rows = store.all()
        return store.get(rows[0].id) if rows else None


def only_snapshot(app):
    """Return what the only stored connection keeps of vcita's answers."""
    return only_connection(app).snapshot


def forget_snapshots(app) -> None:
    """Drop what every connection keeps of vcita's answers, as before the app kept any."""
    with app.extensions["database"].transaction() as db:
        db.execute(sa.update(connections).values(dict.fromkeys(SNAPSHOT_COLUMNS)))


@pytest.fixture(scope="session")
def vcita_server():
    """The vcita sandbox, served on a free loopback port for the whole test run."""
    sandbox = create_sandbox(
        {
            "SANDBOX_CLIENT_ID": CLIENT_ID,
            "SANDBOX_CLIENT_SECRET": CLIENT_SECRET,
            "SANDBOX_REDIRECT_URIS": REDIRECT_URI,
            "SANDBOX_CONTROL": "true",
            "SANDBOX_SECRET_KEY": "sandbox-test-secret",
        }
    )
    with ServerThread(sandbox) as server:
        server.sandbox = sandbox
        yield server


@pytest.fixture
def sandbox_with_secret(request):
    """A sandbox of its own whose client secret is the test's parameter."""
    secret = request.param
    sandbox = create_sandbox(
        {
            "SANDBOX_CLIENT_ID": CLIENT_ID,
            "SANDBOX_CLIENT_SECRET": secret,
            "SANDBOX_REDIRECT_URIS": REDIRECT_URI,
            "SANDBOX_SECRET_KEY": "sandbox-test-secret",
        }
    )
    with ServerThread(sandbox) as server:
        server.sandbox = sandbox
        server.client_secret = secret
        # The settings that make an app this sandbox's client.
        server.app_settings = {
            "VCITA_CLIENT_SECRET": secret,
            "VCITA_AUTHORIZE_URL": f"{server.url}/app/oauth/authorize",
            "VCITA_TOKEN_URL": f"{server.url}/oauth/token",
            "VCITA_USERINFO_URL": f"{server.url}/oauth/userinfo",
            "VCITA_API_URL": server.url,
        }
        yield server


@pytest.fixture
def vcita(vcita_server):
    """The sandbox's recorded requests and fault switches, reset for each test."""
    state = vcita_server.sandbox.extensions["vcita_sandbox"]
    state.reset()
    yield state
    state.reset()


@pytest.fixture
def scripted_api():
    """A scripted HTTP API on loopback (tests.servers.ScriptedApi), with its `url`."""
    scripted = ScriptedApi()
    with ServerThread(scripted) as server:
        scripted.url = server.url
        yield scripted


@pytest.fixture(scope="session")
def postgres_database():
    """The run's own database on the PostgreSQL server DATABASE_URL names, or None."""
    server = postgres.server_url()
    if server is None:
        yield None
        return
    with postgres.fresh_database(server) as url:
        yield url


@pytest.fixture
def empty_database_url(tmp_path, postgres_database):
    """An empty database for one test: a SQLite file, or, when DATABASE_URL names a
    PostgreSQL server (`make test-postgres`), a new schema there, dropped afterwards."""
    if postgres_database is None:
        yield f"sqlite:///{tmp_path / 'connect.db'}"
        return
    with postgres.fresh_schema(postgres_database) as url:
        yield url


@pytest.fixture
def settings(vcita_server, empty_database_url) -> dict:
    """The environment the app under test starts from; tests may change it."""
    return {
        "VCITA_CLIENT_ID": CLIENT_ID,
        "VCITA_CLIENT_SECRET": CLIENT_SECRET,
        "VCITA_REDIRECT_URI": REDIRECT_URI,
        "VCITA_AUTHORIZE_URL": f"{vcita_server.url}/app/oauth/authorize",
        "VCITA_TOKEN_URL": f"{vcita_server.url}/oauth/token",
        "VCITA_USERINFO_URL": f"{vcita_server.url}/oauth/userinfo",
        "VCITA_API_URL": vcita_server.url,
        "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "DATABASE_URL": empty_database_url,
    }


@pytest.fixture
def make_app(settings, vcita):
    """Build the app from the test settings with `overrides`; every one is closed afterwards.

    pytest-flask's `client` fixture uses the `app` fixture below: `make_app()`.
    """
    made = []

    def make_app(**overrides):
        app = create_app({**settings, **overrides})
        made.append(app)
        return app

    yield make_app
    vcita.clear_faults()  # a slow answer ends now: no read outlives its test
    for app in made:
        app.extensions["client_reads"].close()
        app.extensions["database"].dispose()
        app.extensions["vcita"].close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def instance_folder(tmp_path, monkeypatch):
    """The instance folder of the apps this test makes: tmp_path / "instance", not the
    project's own, so that a test can see what the app makes there (by default nothing)."""
    path = tmp_path / "instance"
    monkeypatch.setattr(Flask, "auto_find_instance_path", lambda app: str(path))
    return path


@pytest.fixture
def usual_umask():
    """Run the test under umask 022, the usual one, which leaves new files readable by all;
    a stricter umask would hide whether the app asks for private modes itself."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def person(vcita_server):
    """A business owner who signs in to the sandbox and answers its consent page."""
    with SandboxPerson(vcita_server.url) as person:
        yield person


def approved_callback(browser, person, staff: str | None = None, allow: bool = True) -> str:
    """Press Connect in `browser`, answer vcita's pages as `person`; return the callback URL.

    The one way the tests run a flow up to vcita's answer: what they check comes after.
    """
    start = browser.get("/connect")  # a test client, or anything with the same get()
    return person.approve(start.headers["Location"], staff=staff, allow=allow)


@pytest.fixture
def connect(client, person):
    """Run the whole flow from Connect to the callback; return the callback's response.

    Like a browser, it then opens the dashboard the callback sends it to, which renders
    what the callback read: so a test's own next dashboard is a later view, read live.
    """

    def connect(staff: str | None = None, allow: bool = True):
        callback = client.get(approved_callback(client, person, staff=staff, allow=allow))
        if callback.status_code == 303 and callback.location == "/dashboard":
            client.get(callback.location)
        return callback

    return connect
