"""Shared fixtures, and the one set of actions every test takes.

The vcita sandbox runs as a real HTTP server: the app reaches it only over loopback,
exactly as it reaches vcita. A test drives the app through a `Browser` (a Flask test
client with the person's vcita login) whose steps — connect, press Disconnect, read the
CSRF token — are written once, here; it reads what the app keeps with `stored(app)`,
through the app's own accessors. Helpers act; tests assert.
"""

import os
import re
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from typing import Generic, TypeVar

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from werkzeug.test import TestResponse

from app import create_app, session_keys
from app.connect.flow_traces import get_flow_traces
from app.connect.used_states import get_used_states
from app.session_keys import CONNECTION
from app.storage.connections import SNAPSHOT_COLUMNS, Connection, get_connections
from app.storage.database import get_db
from app.storage.tables import connections
from app.token_use.background import get_background
from app.token_use.client_reads import get_client_reads
from app.token_use.pending_calls import get_pending_calls
from app.token_use.subscriptions import get_subscriptions
from app.vcita import VcitaClient
from app.vcita_client import get_vcita
from sandbox import SandboxState, create_sandbox
from sandbox.recording import sandbox_state
from sandbox.testing import SandboxPerson, ServerThread

from . import postgres
from .security_support import decode_session
from .servers import ScriptedApi

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-client-secret-7463f1a2b9c0144b"
REDIRECT_URI = "http://localhost/callback"  # the Flask test client's host
SESSION_COOKIE = "vcita_connect"  # the session cookie's name outside production
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
# Hypothesis's settings for a property whose examples share the test's fixtures (one
# tmp_path, one app): the same examples every run, none kept between runs.
REPEATABLE = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
Store = TypeVar("Store")


# --- What the app keeps, reached as the app reaches it ----------------------------------


class _ReachedThrough(Generic[Store]):
    """One of an app's stores, reached through the app's own accessor, in that app's context."""

    def __init__(self, accessor: Callable[[], Store]) -> None:
        self.accessor = accessor

    def __get__(self, stores: "Stored", owner: type) -> Store:
        with stores.app.app_context():
            return self.accessor()


class Stored:
    """What one app keeps, each store reached as the app reaches it: not `app.extensions`."""

    database = _ReachedThrough(get_db)
    connections = _ReachedThrough(get_connections)
    used_states = _ReachedThrough(get_used_states)
    flow_traces = _ReachedThrough(get_flow_traces)
    subscriptions = _ReachedThrough(get_subscriptions)
    pending_calls = _ReachedThrough(get_pending_calls)

    def __init__(self, app: Flask) -> None:
        self.app = app


def stored(app: Flask) -> Stored:
    """Return what `app` keeps: `stored(app).connections.count()`."""
    return Stored(app)


def only_connection(app: Flask) -> Connection | None:
    """Return the one stored connection, with its token; None if there is none."""
    store = stored(app).connections
    rows = store.all()
    return store.get(rows[0].id) if rows else None


def only_snapshot(app: Flask):
    """Return what the only stored connection keeps of vcita's answers."""
    return only_connection(app).snapshot


def forget_snapshots(app: Flask) -> None:
    """Drop what every connection keeps of vcita's answers, as before the app kept any."""
    with stored(app).database.transaction() as db:
        db.execute(sa.update(connections).values(dict.fromkeys(SNAPSHOT_COLUMNS)))


def vcita_client_of(app: Flask) -> VcitaClient:
    """Return the app's vcita client, reached as the app reaches it."""
    with app.app_context():
        return get_vcita()


def change_vcita_settings(app: Flask, **changes) -> None:
    """Change the settings of the app's vcita client (fault tests: timeouts, URLs)."""
    vcita_client = vcita_client_of(app)
    vcita_client.settings = replace(vcita_client.settings, **changes)


def finish_background_work(app: Flask) -> None:
    """Wait until the app's calls to vcita off the request (subscribing, confirming) are done."""
    with app.app_context():
        get_background().wait()


def close(app: Flask) -> None:
    """Close what the app holds open: its clients-list reads, its database's pool, and its
    vcita client's connections."""
    with app.app_context():
        get_client_reads().close()
    stored(app).database.dispose()
    vcita_client_of(app).close()


def sandbox_state_of(sandbox: Flask) -> SandboxState:
    """Return a sandbox's recorded requests and fault switches, as its own views reach them."""
    with sandbox.app_context():
        return sandbox_state()


def vcita_at(url: str) -> dict[str, str]:
    """Return the settings that point the app at a vcita (a sandbox) served at `url`."""
    return {
        "VCITA_AUTHORIZE_URL": f"{url}/app/oauth/authorize",
        "VCITA_TOKEN_URL": f"{url}/oauth/token",
        "VCITA_USERINFO_URL": f"{url}/oauth/userinfo",
        "VCITA_API_URL": url,
    }


# --- The actions: a person's browser ----------------------------------------------------


def approved_callback(browser, person, staff: str | None = None, allow: bool = True) -> str:
    """Press Connect in `browser`, answer vcita's pages as `person`; return the callback URL.

    The one way the tests run a flow up to vcita's answer: what they check comes after.
    Naming `staff` signs in to vcita afresh as them; without it, whoever is signed in
    answers (else the first staff member listed).
    """
    if staff is not None:
        person.sign_out()
    start = browser.get("/connect")  # a test client, or anything with the same get()
    return person.approve(start.headers["Location"], staff=staff, allow=allow)


def csrf_token_on(page: str) -> str:
    """Return the CSRF token of a page's form (the dashboard's Disconnect)."""
    return CSRF_FIELD.search(page).group(1)


def browser_with_cookie(app: Flask, session_cookie: str) -> FlaskClient:
    """Return a browser of its own that holds `session_cookie`: copied, replayed or forged."""
    browser = app.test_client()
    browser.set_cookie(SESSION_COOKIE, session_cookie, domain="localhost")
    return browser


class Browser(FlaskClient):
    """A person's browser on the app: its cookies, and the person signed in at vcita.

    flaskr's AuthActions: the steps a person takes, written once. Each returns what the
    app answered, for the test to check. Every test client of an app that `make_app`
    made is one; `app.test_client()` is a browser whose person never goes to vcita.
    """

    def __init__(self, *args, person: SandboxPerson | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.person = person

    def approve(self, staff: str | None = None, allow: bool = True) -> str:
        """Press Connect and answer vcita's pages; return the callback URL, not yet opened."""
        if self.person is None:
            raise RuntimeError("this browser has no person at vcita: use `new_browser(app)`")
        return approved_callback(self, self.person, staff=staff, allow=allow)

    def connect(self, staff: str | None = None, allow: bool = True) -> TestResponse:
        """Run the whole flow from Connect to the callback; return the callback's response.

        Like a browser, it then opens the dashboard the callback sends it to, which renders
        what the callback read: so a test's own next dashboard is a later view, read live.
        """
        callback = self.get(self.approve(staff=staff, allow=allow))
        if callback.status_code == 303 and callback.location == "/dashboard":
            self.get(callback.location)
        return callback

    def dashboard(self) -> TestResponse:
        """Open the dashboard."""
        return self.get("/dashboard")

    def csrf_token(self, page: str | None = None) -> str:
        """Return the CSRF token on `page` (its text), or on the dashboard as it is now."""
        return csrf_token_on(self.dashboard().text if page is None else page)

    def disconnect(self, page: str | None = None) -> TestResponse:
        """Press Disconnect on `page` (its text), or on the dashboard as it is now."""
        return self.post("/disconnect", data={"csrf_token": self.csrf_token(page)})

    def session_cookie(self) -> str | None:
        """Return the session cookie this browser holds, if any."""
        cookie = self.get_cookie(SESSION_COOKIE)
        return cookie.value if cookie else None

    def session(self) -> dict:
        """Return what the session cookie holds, read as the app reads it (without writing)."""
        return decode_session(self.application, self.session_cookie())

    def pending_flows(self) -> dict:
        """Return the flows this browser started and has not finished, by their state."""
        return self.session().get(session_keys.PENDING_FLOWS, {})

    def connection(self) -> Connection | None:
        """Return the connection this browser's session names, as stored, with its token."""
        return stored(self.application).connections.get(self.session()[CONNECTION])


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
        server.app_settings = {"VCITA_CLIENT_SECRET": secret, **vcita_at(server.url)}
        yield server


@pytest.fixture
def vcita(vcita_server):
    """The sandbox's recorded requests and fault switches, reset for each test."""
    state = sandbox_state_of(vcita_server.sandbox)
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
        **vcita_at(vcita_server.url),
        "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "DATABASE_URL": empty_database_url,
    }


@pytest.fixture
def make_app(settings, vcita):
    """Build the app from the test settings with `overrides`; every one is closed afterwards.

    Its test clients are Browsers; the `app` fixture below is `make_app()`, pushed by
    pytest-flask around each test that uses it.
    """
    made = []

    def make_app(**overrides):
        app = create_app({**settings, **overrides})
        app.test_client_class = Browser
        made.append(app)
        return app

    yield make_app
    vcita.clear_faults()  # a slow answer ends now: no read outlives its test
    for app in made:
        close(app)


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def served_app(app):
    """The app on a real threaded HTTP server on loopback, as under gunicorn's threads."""
    with ServerThread(app) as server:
        yield server


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


@pytest.fixture
def browser(app, person) -> Browser:
    """A browser on the app under test, whose person signs in to vcita as `person`."""
    return app.test_client(person=person)


@pytest.fixture
def new_browser(vcita_server):
    """Open another browser on an app: its own cookies, its own person signed in at vcita.

    `new_browser(app)` signs in to the sandbox of the run; `vcita_url=` names another.
    """
    with ExitStack() as people:

        def new_browser(app: Flask, vcita_url: str | None = None) -> Browser:
            person = people.enter_context(SandboxPerson(vcita_url or vcita_server.url))
            return app.test_client(person=person)

        yield new_browser
