"""SQLite and PostgreSQL answer alike: what one would store and the other refuse never
reaches either.

`make test` runs these on SQLite, `make test-postgres` on PostgreSQL, whose text columns
cannot hold a NUL character that SQLite stores without complaint.
"""

import pytest


@pytest.mark.parametrize("field", ["business_uid", "sub"])
@pytest.mark.parametrize(
    "value", ["7c6dc158\x009f078b66", "7c6dc158\n9f078b66"], ids=["nul", "newline"]
)
def test_callback_refuses_userinfo_ids_with_control_characters(app, connect, vcita, field, value):
    vcita.set_fault("userinfo", json_merge={field: value})

    response = connect()

    assert response.status_code == 502
    assert "vcita did not answer" in response.get_data(as_text=True)
    assert app.extensions["token_store"].count_connections() == 0
