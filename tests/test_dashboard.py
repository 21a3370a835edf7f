"""Step 4: the dashboard shows the business's live userinfo, and never the token."""

import html
import json

import pytest

from app.sessions import CONNECTION_KEY
from sandbox.settings import DEFAULT_BUSINESSES_FILE


def store(app):
    return app.extensions["token_store"]


def test_dashboard_without_a_connection_goes_back_to_the_landing_page(client):
    response = client.get("/dashboard")
    assert response.status_code == 302
    assert response.location == "/"


def test_dashboard_shows_the_business_of_the_staff_member_who_approved(client, connect, vcita):
    business = json.loads(DEFAULT_BUSINESSES_FILE.read_text())["businesses"][1]
    member = business["staff"][0]
    connect(staff=member["name"])
    response = client.get("/dashboard")
    assert response.status_code == 200
    assert vcita.userinfo_requests[-1]["headers"]["Authorization"].startswith("Bearer ")
    expected = {
        "business_name": business["business_name"],
        "email": member["email"],
        "role": member["role"],
        "type": "staff",
        "business_uid": business["business_uid"],
        "sub": member["uid"],
        "brand_host": business["brand_host"],
    }
    for field, value in expected.items():
        assert html.escape(value) in response.text, field


def test_dashboard_says_when_the_token_was_issued_and_expires(client, connect):
    connect()
    page = client.get("/dashboard").text
    assert "just now" in page or "minute" in page
    assert "in 20 years" in page


def test_dashboard_never_shows_the_token(app, client, connect):
    connect()
    with client.session_transaction() as session:
        token = store(app).get_connection(session[CONNECTION_KEY]).token.access_token
    response = client.get("/dashboard")
    assert token not in response.text
    assert token not in str(response.headers)


def test_missing_and_null_fields_render_as_dashes(client, connect, vcita):
    connect()
    vcita.set_fault("userinfo", json={"business_uid": "b1", "sub": "s1", "email": None})
    response = client.get("/dashboard")
    assert response.status_code == 200
    assert "—" in response.text


def test_markup_in_userinfo_is_escaped(client, connect, vcita):
    connect()
    vcita.set_fault(
        "userinfo",
        json_merge={
            "business_name": "<script>alert(1)</script>",
            "email": '"><img src=x onerror=alert(1)>',
        },
    )
    response = client.get("/dashboard")
    assert response.status_code == 200
    assert "<script>alert(1)" not in response.text
    assert "<img src=x" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_revoked_token_forgets_the_connection_and_asks_to_connect_again(
    app, client, connect, vcita
):
    connect()
    vcita.revoke_all_tokens()
    response = client.get("/dashboard", follow_redirects=True)
    assert response.request.path == "/"
    assert "revoked" in response.text
    assert "Connect vcita" in response.text
    assert store(app).count_connections() == 0


@pytest.mark.parametrize("fault", [{"status": 500, "body": "down"}, {"json": ["a", "list"]}])
def test_userinfo_failure_on_the_dashboard_keeps_the_connection(
    app, client, connect, vcita, fault
):
    connect()
    vcita.set_fault("userinfo", **fault)
    response = client.get("/dashboard")
    assert response.status_code == 502
    assert 'href="/dashboard"' in response.text
    assert store(app).count_connections() == 1


def test_landing_page_links_a_connected_browser_to_its_dashboard(client, connect):
    assert "Connect vcita" in client.get("/").text
    connect()
    page = client.get("/").text
    assert 'href="/dashboard"' in page
    assert ">Connect vcita<" not in page
