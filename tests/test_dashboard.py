"""Step 4: the dashboard shows what vcita says about the business, and never the token.

Right after connecting it renders what the callback read; later views read vcita live
and keep a copy, shown with a banner when vcita does not answer.
"""

import html
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from app.storage.tables import connections
from sandbox.settings import DEFAULT_BUSINESSES_FILE

from .conftest import change_vcita_settings, forget_snapshots, only_snapshot, stored

OUTAGE_BANNER = "vcita did not answer; showing what it said"


def test_dashboard_without_a_connection_goes_back_to_the_landing_page(browser):
    response = browser.dashboard()
    assert response.status_code == 302
    assert response.location == "/"


def test_dashboard_shows_the_business_of_the_staff_member_who_approved(browser, vcita):
    business = json.loads(DEFAULT_BUSINESSES_FILE.read_text())["businesses"][1]
    member = business["staff"][0]
    browser.connect(staff=member["name"])
    response = browser.dashboard()
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


def test_dashboard_says_when_the_token_was_issued_and_expires(browser):
    browser.connect()
    page = browser.dashboard().text
    assert "just now" in page or "minute" in page
    assert "in 20 years" in page


def test_a_token_vcita_gives_back_shows_when_it_was_first_issued(browser, vcita):
    browser.connect()
    vcita.age_tokens(3 * 365 * 86400)  # the staff member connects again three years later
    browser.connect()

    response = browser.dashboard()

    assert response.status_code == 200
    assert re.search(r"<dt>Issued</dt>\s*<dd><time [^>]*>3 years ago</time>", response.text)
    assert re.search(r"<dt>Expires</dt>\s*<dd><time [^>]*>in 17 years</time>", response.text)


def test_dashboard_never_shows_the_token(browser):
    browser.connect()
    token = browser.connection().token.access_token
    response = browser.dashboard()
    assert token not in response.text
    assert token not in str(response.headers)


def test_missing_and_null_fields_render_as_dashes(browser, vcita):
    browser.connect()
    vcita.set_fault("userinfo", json={"business_uid": "b1", "sub": "s1", "email": None})
    response = browser.dashboard()
    assert response.status_code == 200
    assert "—" in response.text


def test_markup_in_userinfo_is_escaped(browser, vcita):
    browser.connect()
    vcita.set_fault(
        "userinfo",
        json_merge={
            "business_name": "<script>alert(1)</script>",
            "email": '"><img src=x onerror=alert(1)>',
        },
    )
    response = browser.dashboard()
    assert response.status_code == 200
    assert "<script>alert(1)" not in response.text
    assert "<img src=x" not in response.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_revoked_token_forgets_the_connection_and_asks_to_connect_again(app, browser, vcita):
    browser.connect()  # which keeps a copy of what vcita said: forgotten with the rest
    vcita.revoke_all_tokens()
    response = browser.get("/dashboard", follow_redirects=True)
    assert response.request.path == "/"
    assert "revoked" in response.text
    assert "Connect vcita" in response.text
    assert "Harbor Light Yoga" not in response.text
    assert stored(app).connections.count() == 0


# --- One round trip less, and a dashboard that outlives an outage ---------------------------


def vcita_calls(vcita) -> int:
    return len(vcita.userinfo_requests) + len(vcita.recorded_requests("clients"))


def test_the_dashboard_right_after_connecting_asks_vcita_nothing(browser, vcita):
    callback = browser.get(browser.approve(staff="Maya Goldberg"))
    assert callback.location == "/dashboard"
    asked = vcita_calls(vcita)
    assert asked == 2  # userinfo and the clients list, once each, by the callback
    page = browser.dashboard().get_data(as_text=True)
    assert vcita_calls(vcita) == asked
    assert "Harbor Light Yoga" in page
    assert len(panel_rows(page)) == 5
    assert OUTAGE_BANNER not in page


def test_only_the_first_dashboard_after_connecting_uses_the_callbacks_copy(browser, vcita):
    browser.connect()  # and the dashboard it leads to
    asked = vcita_calls(vcita)
    assert browser.dashboard().status_code == 200
    assert vcita_calls(vcita) == asked + 2


def test_a_copy_older_than_a_moment_is_not_shown_as_fresh(app, browser, vcita):
    assert browser.get(browser.approve()).status_code == 303
    read_earlier(app, minutes=5)  # the browser took long to follow the redirect
    asked = vcita_calls(vcita)
    assert browser.dashboard().status_code == 200
    assert vcita_calls(vcita) == asked + 2


def test_a_later_dashboard_reads_live_and_keeps_the_new_copy(app, browser, vcita):
    browser.connect()
    vcita.set_fault("userinfo", json_merge={"business_name": "Harbor Light Yoga & Pilates"})
    assert "Harbor Light Yoga &amp; Pilates" in browser.dashboard().text
    vcita.set_fault("userinfo", status=503)
    page = browser.dashboard().text
    assert OUTAGE_BANNER in page
    assert "Harbor Light Yoga &amp; Pilates" in page  # the copy the last live view kept


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500, "body": "down"},
        {"status": 502, "body": "<html>Bad gateway</html>", "content_type": "text/html"},
        {"status": 429, "headers": {"Retry-After": "30"}},
        {"delay": 1.0},
        {"json": ["a", "list"]},
    ],
    ids=["500", "502", "429", "timeout", "not-the-documented-json"],
)
def test_vcita_not_answering_shows_the_kept_copy_with_a_banner(app, browser, vcita, fault):
    browser.connect(staff="Maya Goldberg")
    read_earlier(app, minutes=5)
    change_vcita_settings(app, api_timeout=(1, 0.3))
    vcita.set_fault("userinfo", **fault)
    response = browser.dashboard()
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert OUTAGE_BANNER in page
    assert ">5 minutes ago</time>" in page
    assert "Harbor Light Yoga" in page and len(panel_rows(page)) == 5
    assert stored(app).connections.count() == 1
    vcita.clear_faults()
    assert OUTAGE_BANNER not in browser.dashboard().text


def test_an_outage_page_does_not_call_the_rest_up_to_date(app, browser, vcita):
    vcita.set_fault("clients", status=503)
    browser.connect()  # kept: userinfo, and no clients
    vcita.set_fault("userinfo", status=503)
    page = browser.dashboard().text
    assert OUTAGE_BANNER in page
    assert "your clients cannot be shown just" in page
    assert "The rest of this page is up to date" not in page


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ({"status": 500, "body": "down"}, 502),
        ({"status": 429, "headers": {"Retry-After": "30"}}, 503),
    ],
    ids=["500", "429"],
)
def test_without_a_kept_copy_vcita_not_answering_shows_the_error_page(
    app, browser, vcita, fault, status
):
    browser.connect()
    forget_snapshots(app)  # a connection stored before the app kept copies
    vcita.set_fault("userinfo", **fault)
    response = browser.dashboard()
    assert response.status_code == status
    assert 'href="/dashboard"' in response.text
    assert stored(app).connections.count() == 1
    vcita.clear_faults()
    assert browser.dashboard().status_code == 200
    assert only_snapshot(app) is not None  # the next live read keeps a copy again


def test_the_kept_copy_is_encrypted_at_rest(app, browser):
    browser.connect(staff="Maya Goldberg")
    with stored(app).database.transaction() as db:
        row = db.execute(sa.select(connections)).one()
    at_rest = " ".join(str(value) for value in row)
    kept = only_snapshot(app)
    assert kept.userinfo["business_name"] == "Harbor Light Yoga"
    assert len(kept.recent_clients) == 5
    plaintexts = [kept.userinfo["business_name"], kept.userinfo["email"]]
    plaintexts += [customer["email"] for customer in kept.recent_clients]
    for plaintext in plaintexts:
        assert plaintext not in at_rest


def read_earlier(app, minutes: int) -> None:
    """Make the kept copy `minutes` older, as if vcita had been read that long ago."""
    earlier = datetime.now(UTC) - timedelta(minutes=minutes)
    with stored(app).database.transaction() as db:
        db.execute(
            sa.update(connections).values(userinfo_read_at=earlier, recent_clients_read_at=earlier)
        )


def test_landing_page_links_a_connected_browser_to_its_dashboard(browser):
    assert "Connect vcita" in browser.get("/").text
    browser.connect()
    page = browser.get("/").text
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


def test_recent_clients_shows_the_five_most_recently_updated(browser):
    browser.connect(staff="Maya Goldberg")
    page = browser.dashboard().get_data(as_text=True)
    newest = sorted(demo_clients(0), key=lambda c: c["updated_at"], reverse=True)[:5]
    rows = panel_rows(page)
    assert len(rows) == 5
    for row, expected in zip(rows, newest, strict=True):
        assert row.startswith(f"{expected['first_name']} {expected['last_name']}")
        assert expected["email"] in row and expected["customer_status"] in row


def test_recent_clients_says_when_there_are_none(browser):
    browser.connect(staff="Sofía Hernández")  # Clínica Dental Sonrisa has no clients yet
    page = browser.dashboard().get_data(as_text=True)
    assert "Todavía no hay clientes." in page  # in Spanish, her business's language
    assert '<table class="clients">' not in page


def test_hostile_client_data_is_text(browser, vcita_server):
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
    browser.connect(staff="Maya Goldberg")
    page = browser.dashboard().get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "<img src=x" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert panel_rows(page)[0].startswith("<script>alert(1)</script>")  # shown, as text


@pytest.mark.parametrize("fault", [{"status": 503}, {"status": 429}, {"body": "<html>oops"}])
def test_the_panels_failure_shows_the_clients_last_listed(app, browser, vcita, fault):
    browser.connect(staff="Maya Goldberg")
    read_earlier(app, minutes=5)
    vcita.set_fault("clients", **fault)
    vcita.set_fault("userinfo", json_merge={"business_name": "Harbor Light Yoga & Pilates"})
    response = browser.dashboard()
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Harbor Light Yoga &amp; Pilates" in page  # userinfo is live
    assert OUTAGE_BANNER not in page
    assert len(panel_rows(page)) == 5
    assert "vcita did not answer for your clients just now" in page
    assert ">5 minutes ago</time>" in page
    assert len(only_snapshot(app).recent_clients) == 5  # the rows are kept, not dropped


def test_clients_last_listed_keep_their_own_time_while_vcita_fails_to_list_them(
    app, browser, vcita
):
    browser.connect(staff="Maya Goldberg")
    read_earlier(app, minutes=5)
    vcita.set_fault("clients", status=503)
    for view in ("first", "second"):  # userinfo is read live each time; the clients are not
        page = browser.dashboard().text
        assert "vcita did not answer for your clients just now" in page, view
        assert ">5 minutes ago</time>" in page, view  # when they were listed, not the last view
        assert OUTAGE_BANNER not in page and len(panel_rows(page)) == 5


@pytest.mark.parametrize("fault", [{"status": 503}, {"status": 429}, {"body": "<html>oops"}])
def test_the_panels_failure_with_no_clients_kept_leaves_the_dashboard_up(
    app, browser, vcita, fault
):
    browser.connect(staff="Maya Goldberg")
    forget_snapshots(app)
    vcita.set_fault("clients", **fault)
    response = browser.dashboard()
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Harbor Light Yoga" in page
    assert "vcita did not answer, so your clients cannot be shown just" in page


def test_a_429_then_success_on_the_panels_get_shows_the_clients(browser, vcita):
    browser.connect(staff="Maya Goldberg")
    vcita.set_fault("clients", status=429, headers={"Retry-After": "1"}, times=1)
    page = browser.dashboard().get_data(as_text=True)
    assert len(panel_rows(page)) == 5
