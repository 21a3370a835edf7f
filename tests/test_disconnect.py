"""POST /disconnect forgets the connection; nothing else can.

Its CSRF token and what an old cookie reaches afterwards are session rules: they live in
tests/test_security_session.py.
"""

import sqlalchemy as sa

from app.session_keys import CONNECTION
from app.storage.tables import connections

from .conftest import stored


def test_disconnect_forgets_the_token_and_clears_the_session(app, browser):
    browser.connect()
    response = browser.disconnect()
    assert response.status_code == 303
    assert response.location == "/"
    assert stored(app).connections.count() == 0
    assert CONNECTION not in browser.session()
    landing = browser.get("/")
    assert "Disconnected" in landing.text


def test_disconnect_by_get_is_not_allowed(app, browser):
    browser.connect()
    response = browser.get("/disconnect")
    assert response.status_code == 405
    assert stored(app).connections.count() == 1


def stored_pairs(app) -> set[tuple[str, str]]:
    with stored(app).database.transaction() as db:
        rows = db.execute(sa.select(connections.c.business_uid, connections.c.staff_uid))
        return {tuple(row) for row in rows}


def test_disconnect_removes_every_connection_this_browser_made(app, browser):
    assert browser.connect(staff="Maya Goldberg").status_code == 303
    # Another staff member, another token; then another business.
    assert browser.connect(staff="Leo Martins").status_code == 303
    assert browser.connect(staff="Priya Raman").status_code == 303
    assert len(stored_pairs(app)) == 3
    dashboard = browser.dashboard().text
    assert "and the 2 other vcita logins connected from this browser" in dashboard

    response = browser.disconnect(page=dashboard)

    assert response.status_code == 303
    assert stored_pairs(app) == set()
    message = browser.get("/").text
    assert "vcita no longer accepts any of the 3 keys this browser connected" in message


def test_disconnect_keeps_the_connections_of_other_browsers(app, browser, new_browser):
    other_browser = new_browser(app)
    assert other_browser.connect(staff="Priya Raman").status_code == 303
    others = stored_pairs(app)
    assert browser.connect(staff="Maya Goldberg").status_code == 303

    assert browser.disconnect().status_code == 303

    assert stored_pairs(app) == others
    assert "Connected to vcita" in other_browser.dashboard().text


def test_disconnect_of_one_connection_says_the_business_has_no_token_left(app, browser):
    assert browser.connect(staff="Maya Goldberg").status_code == 303
    dashboard = browser.dashboard().text
    assert "other vcita login" not in dashboard

    assert browser.disconnect(page=dashboard).status_code == 303

    assert stored_pairs(app) == set()
    assert (
        "vcita no longer accepts the key this app had for your business, and this app "
        "deleted it" in browser.get("/").text
    )


def test_disconnect_after_the_connection_was_removed_elsewhere_says_so(app, browser):
    assert browser.connect(staff="Maya Goldberg").status_code == 303
    page = browser.dashboard().text
    stored(app).connections.remove(browser.session()[CONNECTION])

    assert browser.disconnect(page=page).status_code == 303

    assert stored_pairs(app) == set()
    assert "connection was already gone: no key was kept" in browser.get("/").text


def test_a_revoked_connection_leaves_the_browsers_other_connections_for_disconnect(
    app, browser, vcita
):
    assert browser.connect(staff="Maya Goldberg").status_code == 303
    maya = stored_pairs(app)
    assert browser.connect(staff="Priya Raman").status_code == 303
    dashboard = browser.dashboard().text
    vcita.revoke_all_tokens()  # both businesses removed the app in vcita

    revoked = browser.dashboard()  # shows Priya's, the newest: vcita answers 401

    assert revoked.status_code == 302
    assert stored_pairs(app) == maya  # forgotten; Maya's is still this browser's
    assert "no longer accepts this connection" in browser.get("/").text
    assert browser.disconnect(page=dashboard).status_code == 303
    assert stored_pairs(app) == set()


def test_the_dashboard_counts_only_the_other_connections_still_kept(app, browser):
    assert browser.connect(staff="Maya Goldberg").status_code == 303
    maya = browser.session()[CONNECTION]
    assert browser.connect(staff="Priya Raman").status_code == 303
    assert "and the 1 other vcita login connected" in browser.dashboard().text

    stored(app).connections.remove(maya)  # say, revoked in another tab

    assert "other vcita login" not in browser.dashboard().text
