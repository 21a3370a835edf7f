"""SQLite and PostgreSQL answer alike: what one would store and the other refuse never
reaches either.

`make test` runs these on SQLite, `make test-postgres` on PostgreSQL, whose text columns
cannot hold a NUL character that SQLite stores without complaint.
"""

import pytest

from app.session_keys import CONNECTION

from .conftest import stored


@pytest.mark.parametrize("field", ["business_uid", "sub"])
@pytest.mark.parametrize(
    "value", ["7c6dc158\x009f078b66", "7c6dc158\n9f078b66"], ids=["nul", "newline"]
)
def test_callback_refuses_userinfo_ids_with_control_characters(app, browser, vcita, field, value):
    vcita.set_fault("userinfo", json_merge={field: value})

    response = browser.connect()

    assert response.status_code == 502
    assert "vcita did not answer" in response.get_data(as_text=True)
    assert stored(app).connections.count() == 0


def test_a_connection_id_with_a_nul_names_no_connection(app, browser):
    assert browser.connect().status_code == 303
    store = stored(app).connections

    assert store.get("abc\x00def") is None
    assert store.remove("abc\x00def") is None
    assert store.count() == 1


def test_a_session_naming_an_id_with_a_nul_is_sent_to_the_landing_page(browser):
    # Only a session signed with this app's SECRET_KEY gets here: another version of the
    # app, or a key that leaked.
    with browser.session_transaction() as session:
        session[CONNECTION] = "abc\x00def"

    response = browser.dashboard()

    assert response.status_code == 302
    assert response.location == "/"
