"""Scale-out: two app instances share one PostgreSQL database, and need no sticky sessions.

Each instance is its own gunicorn process on its own port, as on two machines behind a
load balancer. A flow's pending state travels in the signed session cookie and the
connections live in the shared database, so either instance can finish a flow the other
started, and show its dashboard. The test plays the load balancer: it sends each of the
browser's requests to the instance it chooses.

Runs under `make test-postgres`, which points DATABASE_URL at a throwaway PostgreSQL.
"""

import html
import os
import signal
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa

from . import postgres
from .conftest import csrf_token_on
from .servers import ServerProcess

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        postgres.server_url() is None,
        reason="two instances need a shared PostgreSQL: run `make test-postgres` "
        "(DATABASE_URL does not name a PostgreSQL server)",
    ),
]


class Instance(ServerProcess):
    """One gunicorn process serving the app, on a port of its own."""

    def __init__(self, name: str, environ: dict[str, str], log_path: Path):
        self.name = name
        # The socket is bound here and handed to gunicorn (fd://), so the port is known
        # before it starts and no other process can take it in between.
        listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with listener:
            super().__init__(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"],
                {**environ, "BIND": f"fd://{listener.fileno()}"},
                log_path,
                urls=[self.url],
                pass_fds=(listener.fileno(),),
                # SIGINT: gunicorn's quick shutdown; nothing is in flight once a test is over.
                stop_signal=signal.SIGINT,
            )


@pytest.fixture
def instances(settings, tmp_path):
    """Instances A and B: same settings and secrets, one database, separate processes."""
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        **settings,
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "4",
    }
    started = []
    try:
        for name in ("A", "B"):
            started.append(Instance(name, environ, tmp_path / f"instance-{name}.log"))
        for instance in started:  # both start at once, then we wait for each
            instance.wait_until_serving()
        yield dict(zip("AB", started, strict=True))
    finally:
        for instance in started:
            instance.stop()


@pytest.fixture
def browser():
    """A browser's cookie jar. Cookies ignore ports, so both instances receive them."""
    with requests.Session() as session:
        yield session


@pytest.fixture
def business(vcita_server):
    """A demo business other than the default one, and the staff member who connects it."""
    chosen = vcita_server.sandbox.config["SANDBOX_DIRECTORY"].businesses[1]
    return chosen, chosen.staff[0]


def on(instance: Instance, url: str) -> str:
    """Return `url` sent to `instance`, as the load balancer would route it."""
    parts = urlsplit(url)
    return f"{instance.url}{parts.path}" + (f"?{parts.query}" if parts.query else "")


def start_and_approve(browser, person, instance: Instance, staff_uid: str) -> str:
    """Press Connect on `instance`, approve in the sandbox; return the callback URL."""
    start = browser.get(f"{instance.url}/connect", allow_redirects=False)
    assert start.status_code == 302
    return person.approve(start.headers["Location"], staff=staff_uid)


def stored_connections(database_url: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(database_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as db:
            rows = db.execute(sa.text("SELECT business_uid, staff_uid FROM connections"))
            return [tuple(row) for row in rows]
    finally:
        engine.dispose()


@pytest.mark.parametrize(("started_on", "finished_on"), [("A", "B"), ("B", "A")])
def test_flow_started_on_one_instance_finishes_on_the_other(
    instances, browser, person, vcita, business, settings, started_on, finished_on
):
    chosen, staff = business
    callback_url = start_and_approve(browser, person, instances[started_on], staff.uid)

    callback = browser.get(on(instances[finished_on], callback_url), allow_redirects=False)

    assert callback.status_code == 303
    assert callback.headers["Location"] == "/dashboard"
    assert len(vcita.token_requests) == 1
    assert stored_connections(settings["DATABASE_URL"]) == [(chosen.uid, staff.uid)]


def test_dashboard_works_on_either_instance(instances, browser, person, business):
    chosen, staff = business
    callback_url = start_and_approve(browser, person, instances["A"], staff.uid)
    assert browser.get(on(instances["B"], callback_url), allow_redirects=False).status_code == 303

    for instance in instances.values():
        dashboard = browser.get(f"{instance.url}/dashboard", allow_redirects=False)
        assert dashboard.status_code == 200
        assert html.escape(chosen.name) in dashboard.text
        assert chosen.uid in dashboard.text
        assert staff.uid in dashboard.text


def test_callback_replayed_on_the_other_instance_is_refused(
    instances, browser, person, vcita, business, settings
):
    chosen, staff = business
    callback_url = start_and_approve(browser, person, instances["A"], staff.uid)
    # An attacker (or a double click) holding the same cookie and callback URL.
    replay = requests.Session()
    replay.cookies.update(browser.cookies)
    assert browser.get(on(instances["B"], callback_url), allow_redirects=False).status_code == 303

    with replay:
        replayed = replay.get(on(instances["A"], callback_url), allow_redirects=False)

    # The cookie still carries the pending flow; only the shared database knows that
    # instance B already used its state.
    assert replayed.status_code == 400
    assert "no longer valid" in replayed.text
    assert len(vcita.token_requests) == 1
    assert stored_connections(settings["DATABASE_URL"]) == [(chosen.uid, staff.uid)]


def test_disconnecting_on_one_instance_disconnects_on_both(
    instances, browser, person, business, settings
):
    _, staff = business
    callback_url = start_and_approve(browser, person, instances["A"], staff.uid)
    assert browser.get(on(instances["A"], callback_url), allow_redirects=False).status_code == 303
    dashboard = browser.get(f"{instances['A'].url}/dashboard", allow_redirects=False)
    csrf_token = csrf_token_on(dashboard.text)
    # A second tab's copy of the cookie, taken while connected.
    other_tab = requests.Session()
    other_tab.cookies.update(browser.cookies)

    disconnect = browser.post(
        f"{instances['B'].url}/disconnect", data={"csrf_token": csrf_token}, allow_redirects=False
    )

    assert disconnect.status_code == 303
    assert stored_connections(settings["DATABASE_URL"]) == []
    with other_tab:
        stale = other_tab.get(f"{instances['A'].url}/dashboard", allow_redirects=False)
    assert stale.status_code == 302
    assert urlsplit(stale.headers["Location"]).path == "/"
