"""POST /disconnect forgets the connection; nothing else can."""

import re

from app.views import CONNECTION_KEY


def csrf_token(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_disconnect_forgets_the_token_and_clears_the_session(app, client, connect):
    connect()
    token = csrf_token(client.get("/dashboard").text)
    response = client.post("/disconnect", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.location == "/"
    assert app.extensions["token_store"].count_connections() == 0
    with client.session_transaction() as session:
        assert CONNECTION_KEY not in session
    landing = client.get("/")
    assert "Disconnected" in landing.text


def test_disconnect_by_get_is_not_allowed(app, client, connect):
    connect()
    response = client.get("/disconnect")
    assert response.status_code == 405
    assert app.extensions["token_store"].count_connections() == 1


def test_disconnect_without_csrf_token_is_refused_and_deletes_nothing(app, client, connect):
    connect()
    client.get("/dashboard")
    response = client.post("/disconnect")
    assert response.status_code == 403
    assert app.extensions["token_store"].count_connections() == 1


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
