"""POST /disconnect forgets the connection; nothing else can."""

import re

import sqlalchemy as sa

from app.session_keys import CONNECTION
from app.storage.tables import connections
from sandbox.testing import SandboxPerson

from .conftest import approved_callback


def csrf_token(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_disconnect_forgets_the_token_and_clears_the_session(app, client, connect):
    connect()
    token = csrf_token(client.get("/dashboard").text)
    response = client.post("/disconnect", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.location == "/"
    assert app.extensions["connections"].count() == 0
    with client.session_transaction() as session:
        assert CONNECTION not in session
    landing = client.get("/")
    assert "Disconnected" in landing.text


def test_disconnect_by_get_is_not_allowed(app, client, connect):
    connect()
    response = client.get("/disconnect")
    assert response.status_code == 405
    assert app.extensions["connections"].count() == 1


def test_disconnect_without_csrf_token_is_refused_and_deletes_nothing(app, client, connect):
    connect()
    client.get("/dashboard")
    response = client.post("/disconnect")
    assert response.status_code == 403
    assert app.extensions["connections"].count() == 1


def test_dashboard_is_unreachable_after_disconnect_even_with_the_old_cookie(app, client, connect):
    connect()
    token = csrf_token(client.get("/dashboard").text)
    old_cookie = client.get_cookie("vcita_connect").value
    client.post("/disconnect", data={"csrf_token": token})
    replay = app.test_client()
    replay.set_cookie("vcita_connect", old_cookie, domain="localhost")
    response = replay.get("/dashboard")
    assert response.status_code == 302
    assert response.location == "/"


def connect_as(client, vcita_server, staff: str) -> None:
    """Connect this browser as `staff`, logging in to vcita afresh (another vcita login)."""
    with SandboxPerson(vcita_server.url) as person:
        response = client.get(approved_callback(client, person, staff=staff))
    assert response.status_code == 303


def stored_pairs(app) -> set[tuple[str, str]]:
    with app.extensions["database"].transaction() as db:
        rows = db.execute(sa.select(connections.c.business_uid, connections.c.staff_uid))
        return {tuple(row) for row in rows}


def disconnect(client, page: str | None = None):
    """Press Disconnect on `page`, or on the dashboard."""
    page = page or client.get("/dashboard").text
    return client.post("/disconnect", data={"csrf_token": csrf_token(page)})


def test_disconnect_removes_every_connection_this_browser_made(app, client, vcita_server):
    connect_as(client, vcita_server, "Maya Goldberg")
    connect_as(client, vcita_server, "Leo Martins")  # another staff member, another token
    connect_as(client, vcita_server, "Priya Raman")  # another business
    assert len(stored_pairs(app)) == 3
    dashboard = client.get("/dashboard").text
    assert "and the 2 other vcita logins connected from this browser" in dashboard

    response = disconnect(client, page=dashboard)

    assert response.status_code == 303
    assert stored_pairs(app) == set()
    message = client.get("/").text
    assert "vcita no longer accepts any of the 3 keys this browser connected" in message


def test_disconnect_keeps_the_connections_of_other_browsers(app, client, vcita_server):
    other_browser = app.test_client()
    connect_as(other_browser, vcita_server, "Priya Raman")
    others = stored_pairs(app)
    connect_as(client, vcita_server, "Maya Goldberg")

    disconnect(client)

    assert stored_pairs(app) == others
    assert "Connected to vcita" in other_browser.get("/dashboard").text


def test_disconnect_of_one_connection_says_the_business_has_no_token_left(
    app, client, vcita_server
):
    connect_as(client, vcita_server, "Maya Goldberg")
    dashboard = client.get("/dashboard").text
    assert "other vcita login" not in dashboard

    disconnect(client, page=dashboard)

    assert stored_pairs(app) == set()
    assert (
        "vcita no longer accepts the key this app had for your business, and this app "
        "deleted it" in client.get("/").text
    )


def test_disconnect_after_the_connection_was_removed_elsewhere_says_so(app, client, vcita_server):
    connect_as(client, vcita_server, "Maya Goldberg")
    page = client.get("/dashboard").text
    with client.session_transaction() as session:
        app.extensions["connections"].delete(session[CONNECTION])

    client.post("/disconnect", data={"csrf_token": csrf_token(page)})

    assert stored_pairs(app) == set()
    assert "connection was already gone: no key was kept" in client.get("/").text


def test_a_revoked_connection_leaves_the_browsers_other_connections_for_disconnect(
    app, client, vcita_server, vcita
):
    connect_as(client, vcita_server, "Maya Goldberg")
    maya = stored_pairs(app)
    connect_as(client, vcita_server, "Priya Raman")
    dashboard = client.get("/dashboard").text
    vcita.revoke_all_tokens()  # both businesses removed the app in vcita

    revoked = client.get("/dashboard")  # shows Priya's, the newest: vcita answers 401

    assert revoked.status_code == 302
    assert stored_pairs(app) == maya  # forgotten; Maya's is still this browser's
    assert "no longer accepts this connection" in client.get("/").text
    disconnect(client, page=dashboard)
    assert stored_pairs(app) == set()


def test_the_dashboard_counts_only_the_other_connections_still_kept(app, client, vcita_server):
    connect_as(client, vcita_server, "Maya Goldberg")
    with client.session_transaction() as session:
        maya = session[CONNECTION]
    connect_as(client, vcita_server, "Priya Raman")
    assert "and the 1 other vcita login connected" in client.get("/dashboard").text

    app.extensions["connections"].delete(maya)  # say, revoked in another tab

    assert "other vcita login" not in client.get("/dashboard").text
