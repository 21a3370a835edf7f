"""Many browsers at once: pooled connections to vcita, and one row per business.

Every call to vcita goes through the vcita client's one shared transport, so token
exchanges and userinfo calls reuse keep-alive connections instead of opening a new TCP
(against vcita, TLS) connection each; the sandbox records each request's peer address
and port, which name its connection. And two browsers connecting the same business at
the same moment leave one row, without an error for either.
The app is served by a real threaded HTTP server, as under gunicorn's threads.
"""

import html
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet

from app.storage.connections import ConnectionStore
from app.storage.database import Database
from app.storage.sealer import Sealer
from app.token_use import snapshots
from app.vcita import AccessToken
from sandbox.testing import SandboxPerson

from .conftest import stored
from .security_support import path_and_query

FLOWS = 20
BROWSERS_AT_ONCE = 4


@pytest.fixture
def staff(vcita_server):
    """The first demo business's staff members, as the sandbox lists them."""
    return vcita_server.sandbox.config["SANDBOX_DIRECTORY"].businesses[0].staff


def approve_in_new_browser(served_app, vcita_server, staff_uid: str | None = None):
    """Open a browser, press Connect and approve on the sandbox; return it and its callback.

    Each browser signs in to the sandbox on its own, as a staff member of its own.
    """
    browser = requests.Session()
    start = browser.get(f"{served_app.url}/connect", allow_redirects=False, timeout=10)
    assert start.status_code == 302
    with SandboxPerson(vcita_server.url) as person:
        callback = person.approve(start.headers["Location"], staff=staff_uid)
    return browser, f"{served_app.url}{path_and_query(callback)}"


def connections_to_vcita(vcita) -> int:
    """Return how many TCP connections the app's calls to vcita's API came on."""
    calls = vcita.token_requests + vcita.userinfo_requests + vcita.recorded_requests("clients")
    return len({record["peer"] for record in calls})


def finish(browser: requests.Session, callback: str, served_app) -> str:
    """Follow the callback to the dashboard; return the dashboard's page."""
    answer = browser.get(callback, allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text[:300]
    assert answer.headers["Location"] == "/dashboard"
    dashboard = browser.get(f"{served_app.url}/dashboard", allow_redirects=False, timeout=10)
    assert dashboard.status_code == 200
    return dashboard.text


def test_sequential_flows_reuse_one_keep_alive_connection_to_vcita(
    app, served_app, vcita, vcita_server
):
    approved = [approve_in_new_browser(served_app, vcita_server) for _ in range(FLOWS)]

    for browser, callback in approved:
        with browser:
            finish(browser, callback, served_app)

    opened = connections_to_vcita(vcita)
    calls = len(vcita.token_requests) + len(vcita.userinfo_requests)
    # An exchange and a userinfo call per flow; the dashboard that follows asks vcita
    # nothing: it renders what the callback read.
    assert calls == 2 * FLOWS
    assert len(vcita.recorded_requests("clients")) == FLOWS  # read beside userinfo
    # Two connections, kept alive across all of them (a new one per call would be 60):
    # userinfo and the clients list are asked at once, on one connection each.
    assert opened == 2, f"{opened} connections opened for {3 * FLOWS} calls to vcita"


def test_concurrent_flows_share_a_pool_of_at_most_two_connections_per_flow_in_flight(
    app, served_app, vcita, vcita_server
):
    approved = [approve_in_new_browser(served_app, vcita_server) for _ in range(FLOWS)]

    def complete(approval):
        browser, callback = approval
        with browser:
            return finish(browser, callback, served_app)

    with ThreadPoolExecutor(max_workers=BROWSERS_AT_ONCE) as pool:
        pages = list(pool.map(complete, approved))

    opened = connections_to_vcita(vcita)
    assert len(pages) == FLOWS
    assert len(vcita.token_requests) == FLOWS
    # The pool grows to the calls in flight at once (two per callback), never one per call.
    assert 1 <= opened <= 2 * BROWSERS_AT_ONCE, f"{opened} connections for {3 * FLOWS} calls"


@pytest.mark.parametrize(
    ("staff_members", "rows"),
    [((0, 0), 1), ((0, 1), 2)],
    ids=["same-business-and-staff", "two-staff-of-one-business"],
)
def test_two_browsers_connecting_at_the_same_moment(
    app, served_app, vcita, vcita_server, staff, monkeypatch, staff_members, rows
):
    chosen = [staff[index] for index in staff_members]
    approved = [approve_in_new_browser(served_app, vcita_server, member.uid) for member in chosen]
    # Hold both callbacks just before they write, until both are there: they really race
    # on the same row, as two tabs or two people at one business would.
    both_arrived = threading.Barrier(2, timeout=10)
    token_store = stored(app).connections
    read_from_vcita = snapshots.read

    def read_together(token):
        snapshot = read_from_vcita(token)
        both_arrived.wait()
        return snapshot

    monkeypatch.setattr(snapshots, "read", read_together)

    def complete(approval):
        browser, callback = approval
        with browser:
            return finish(browser, callback, served_app)

    with ThreadPoolExecutor(max_workers=2) as pool:
        pages = list(pool.map(complete, approved))

    assert token_store.count() == rows
    business = staff[0].business_uid
    for page, member in zip(pages, chosen, strict=True):
        assert html.escape(business) in page
        assert html.escape(member.uid) in page


def test_the_threads_of_one_worker_take_turns_writing_to_sqlite(tmp_path):
    """No thread of a worker ever meets another's write lock in SQLite.

    SQLite's busy handler sleeps up to 100 ms at a time while a writer waits; with a
    busy timeout of 0, meeting the lock at all fails the write, so any contention shows.
    """
    database = Database(f"sqlite:///{tmp_path / 'turns.db'}")
    sa.event.listen(
        database.engine, "connect", lambda dbapi, record: dbapi.execute("PRAGMA busy_timeout = 0")
    )
    database.upgrade_schema()  # as every worker does at startup
    store = ConnectionStore(database, Sealer([Fernet.generate_key().decode()]))
    token = AccessToken("t" * 40, "Bearer", datetime.now(UTC), None)

    def connect_many(thread: int) -> None:
        for count in range(25):
            store.save(business_uid=f"b{thread}", staff_uid=f"s{count}", token=token)
            store.touch(store.find(f"b{thread}", f"s{count}").id)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(connect_many, range(8)))  # raises StoreUnavailable on "locked"
    assert store.count() == 200
    database.dispose()
