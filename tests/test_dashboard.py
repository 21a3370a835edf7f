"""Step 4: the dashboard shows the business's live userinfo, and never the token."""

import html
import json
import re

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


# --- Recent clients: a live read of vcita's API with the stored token ----------------------


def panel_rows(page: str) -> list[str]:
    """Return the text of each row of the Recent clients table."""
    table = page.split('<table class="clients">', 1)[1].split("</table>", 1)[0]
    body = table.split("<tbody>", 1)[1]
    cells = [re.sub(r"<[^>]*>", " ", row) for row in body.split("<tr>")[1:]]
    return [" ".join(html.unescape(text).split()) for text in cells]


def demo_clients(business_index: int) -> list[dict]:
    return json.loads(DEFAULT_BUSINESSES_FILE.read_text())["businesses"][business_index]["clients"]


def test_recent_clients_shows_the_five_most_recently_updated(client, connect):
    connect(staff="Maya Goldberg")
    page = client.get("/dashboard").get_data(as_text=True)
    newest = sorted(demo_clients(0), key=lambda c: c["updated_at"], reverse=True)[:5]
    rows = panel_rows(page)
    assert len(rows) == 5
    for row, expected in zip(rows, newest, strict=True):
        assert row.startswith(f"{expected['first_name']} {expected['last_name']}")
        assert expected["email"] in row and expected["customer_status"] in row


def test_recent_clients_says_when_there_are_none(client, connect):
    connect(staff="Sofía Hernández")  # Clínica Dental Sonrisa has no clients yet
    page = client.get("/dashboard").get_data(as_text=True)
    assert "No clients yet." in page
    assert '<table class="clients">' not in page


def test_hostile_client_data_is_text(client, connect, vcita_server):
    vcita_server.sandbox.test_client().post(
        "/_sandbox/clients",
        json={
            "business_uid": "7c6dc1589f078b66",
            "client": {
                "first_name": "<script>alert(1)</script>",
                "last_name": '"><img src=x onerror=alert(2)>',
                "email": "<b>bold</b>@mail.example",
                "customer_status": "<i>lead</i>",
                "updated_at": "2099-01-01T00:00:00Z",
            },
        },
    )
    connect(staff="Maya Goldberg")
    page = client.get("/dashboard").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "<img src=x" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert panel_rows(page)[0].startswith("<script>alert(1)</script>")  # shown, as text


@pytest.mark.parametrize("fault", [{"status": 503}, {"status": 429}, {"body": "<html>oops"}])
def test_the_panels_failure_leaves_the_dashboard_up(client, connect, vcita, fault):
    connect(staff="Maya Goldberg")
    vcita.set_fault("clients", **fault)
    response = client.get("/dashboard")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Harbor Light Yoga" in page
    assert "vcita did not answer, so your clients cannot be shown just" in page


def test_a_429_then_success_on_the_panels_get_shows_the_clients(client, connect, vcita):
    connect(staff="Maya Goldberg")
    vcita.set_fault("clients", status=429, headers={"Retry-After": "1"}, times=1)
    page = client.get("/dashboard").get_data(as_text=True)
    assert len(panel_rows(page)) == 5
