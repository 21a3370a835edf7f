"""Step 4: the dashboard shows what vcita says about the business, and never the token.

Right after connecting it renders what the callback read; later views read vcita live
and keep a copy, shown with a banner when vcita does not answer.
"""

import html
import json
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa

from app.storage.tables import connections
from app.token_use import client_reads
from app.token_use.client_reads import ClientReads, get_client_reads
from sandbox.settings import DEFAULT_BUSINESSES_FILE

from .conftest import (
    browser_with_cookie,
    change_vcita_settings,
    forget_snapshots,
    only_connection,
    only_snapshot,
    stored,
)
from .security_support import path_and_query

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


def test_a_401_on_the_clients_list_alone_keeps_the_connection(app, browser, vcita):
    browser.connect(staff="Maya Goldberg")
    read_earlier(app, minutes=5)
    vcita.set_fault("clients", status=401)  # a permission refused there; userinfo answers

    response = browser.dashboard()

    assert response.status_code == 200
    assert "Harbor Light Yoga" in response.text
    assert "vcita did not answer for your clients just now" in response.text
    assert len(panel_rows(response.text)) == 5  # those listed before
    assert stored(app).connections.count() == 1


def test_a_401_on_the_panels_clients_list_ends_the_connection_only_if_userinfo_agrees(
    app, browser, vcita
):
    browser.connect(staff="Maya Goldberg")
    read_earlier(app, minutes=5)
    vcita.set_fault("clients", status=401)
    asked = len(vcita.userinfo_requests)

    panel = browser.get(PANEL, headers=FETCHED)

    assert panel.status_code == 200
    assert "vcita did not answer for your clients just now" in panel.text
    assert len(panel_rows(panel.text)) == 5
    assert len(vcita.userinfo_requests) == asked + 1  # vcita was asked whether the token works
    assert stored(app).connections.count() == 1
    assert vcita.recorded_requests("revoke") == []


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


# Failures vcita's clients list answers at once: none is retried, so each comes within
# the budget the dashboard gives the list (a retried one is late: see below).
FAILURES_AT_ONCE = [
    {"status": 500},
    {"status": 429, "headers": {"Retry-After": "30"}},
    {"body": "<html>oops"},
]


@pytest.mark.parametrize("fault", FAILURES_AT_ONCE, ids=["500", "429", "not-json"])
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
    vcita.set_fault("clients", status=500)
    for view in ("first", "second"):  # userinfo is read live each time; the clients are not
        page = browser.dashboard().text
        assert "vcita did not answer for your clients just now" in page, view
        assert ">5 minutes ago</time>" in page, view  # when they were listed, not the last view
        assert OUTAGE_BANNER not in page and len(panel_rows(page)) == 5


@pytest.mark.parametrize("fault", FAILURES_AT_ONCE, ids=["500", "429", "not-json"])
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


def test_a_429_then_success_on_the_panels_get_shows_the_clients(app, browser, vcita):
    browser.connect(staff="Maya Goldberg")
    vcita.set_fault("clients", status=429, headers={"Retry-After": "1"}, times=1)
    page = browser.dashboard().text  # the retry waits a second: longer than the budget
    assert "vcita is still listing your newest clients" in page
    wait_for_client_reads(app)
    panel = browser.get(PANEL, headers=FETCHED)
    assert panel.status_code == 200
    assert len(panel_rows(panel.text)) == 5
    assert "Read from vcita's API with the stored token" in panel.text
    assert statuses(vcita.recorded_requests("clients"))[-2:] == [429, 200]


# --- The clients list is never waited for beyond its budget ---------------------------------

HARBOR, MAYA = "7c6dc1589f078b66", "1beb795be66146bb"  # Harbor Light Yoga, Maya Goldberg
CEDAR = "9da2a88d42e6ff59"  # Cedar & Pine Law Office
# The panel of the page's business and staff member, as the dashboard's script asks for it.
PANEL = f"/dashboard/recent-clients?business_uid={HARBOR}&staff_uid={MAYA}"
FETCHED = {"Sec-Fetch-Dest": "empty"}  # what a browser sends with a script's fetch
# Far longer than the budget the pages give the clients list (client_reads.CLIENTS_BUDGET).
SLOW_LIST = {"delay": 60}
# A page that waited for SLOW_LIST would still be silent after this long (the browser then
# gives up and the test fails); one that does not wait answers in milliseconds, however
# busy the machine.
NO_WAITING_SECONDS = 5


@pytest.fixture
def http_browser(served_app, person):
    """A browser over real HTTP that gives up on a page after NO_WAITING_SECONDS."""

    class HttpBrowser(requests.Session):
        def get(self, path, **kwargs):
            kwargs = {"allow_redirects": False, "timeout": NO_WAITING_SECONDS, **kwargs}
            return super().get(f"{served_app.url}{path}", **kwargs)

        def approve(self, staff: str) -> str:
            """Press Connect and Allow as `staff`; return the callback's path and query."""
            start = self.get("/connect")
            return path_and_query(person.approve(start.headers["Location"], staff=staff))

    with HttpBrowser() as browser:
        yield browser


def wait_for_client_reads(app) -> None:
    """Wait until the clients lists the app is reading in the background have ended."""
    with app.app_context():
        get_client_reads().wait()


def statuses(records: list[dict]) -> list[int]:
    return [record["status"] for record in records]


def test_the_callback_does_not_wait_for_a_slow_clients_list(app, http_browser, vcita):
    vcita.set_fault("clients", **SLOW_LIST)

    callback = http_browser.get(http_browser.approve(staff="Maya Goldberg"))
    dashboard = http_browser.get("/dashboard")

    assert callback.status_code == 303 and callback.headers["Location"] == "/dashboard"
    assert len(vcita.recorded_requests("clients")) == 1  # asked beside userinfo, not answered
    page = dashboard.text
    assert dashboard.status_code == 200
    assert "Harbor Light Yoga" in page
    assert "vcita is still listing your clients. They will show here in a moment." in page
    assert f'data-panel-url="{html.escape(PANEL)}"' in page  # the panel fills itself...
    assert 'src="/static/recent_clients.js"' in page
    assert f'href="{html.escape(PANEL)}"' in page  # ...or, without JavaScript, follows its link
    assert only_snapshot(app).recent_clients is None  # nothing listed yet

    asked = vcita_calls(vcita)
    vcita.clear_faults()  # vcita answers the list at last
    wait_for_client_reads(app)
    assert len(only_snapshot(app).recent_clients) == 5  # kept with the connection
    panel = http_browser.get(PANEL, headers=FETCHED)
    assert panel.status_code == 200
    assert len(panel_rows(panel.text)) == 5
    assert "still listing" not in panel.text
    assert panel.text.lstrip().startswith('<section class="card" id="recent-clients"')
    assert vcita_calls(vcita) == asked  # the panel shows what the read kept: no new call


def test_a_later_dashboard_does_not_wait_for_a_slow_clients_list(app, http_browser, vcita):
    http_browser.get(http_browser.approve(staff="Maya Goldberg"))
    http_browser.get("/dashboard")
    read_earlier(app, minutes=5)
    vcita.set_fault("clients", **SLOW_LIST)
    vcita.set_fault("userinfo", json_merge={"business_name": "Harbor Light Yoga & Pilates"})
    lists_asked = len(vcita.recorded_requests("clients"))

    response = http_browser.get("/dashboard")
    panel = http_browser.get(PANEL, headers=FETCHED)

    page = response.text
    assert response.status_code == 200
    assert "Harbor Light Yoga &amp; Pilates" in page  # userinfo is live
    assert OUTAGE_BANNER not in page
    assert "vcita is still listing your newest clients" in page
    assert ">5 minutes ago</time>" in page and len(panel_rows(page)) == 5  # kept, meanwhile
    assert "vcita is still listing your newest clients" in panel.text
    # The panel waited on the read under way rather than asking vcita again.
    assert len(vcita.recorded_requests("clients")) == lists_asked + 1

    vcita.clear_faults()
    wait_for_client_reads(app)
    panel = http_browser.get(PANEL, headers=FETCHED)
    assert "Read from vcita's API with the stored token" in panel.text
    assert "minutes ago</time>" not in panel.text
    assert datetime.now(UTC) - only_snapshot(app).clients_read_at < timedelta(minutes=1)


def test_a_list_that_fails_slower_than_the_budget_says_so_when_it_ends(app, browser, vcita):
    browser.connect(staff="Maya Goldberg")
    read_earlier(app, minutes=5)
    vcita.set_fault("clients", status=503)  # retried twice, 0.25 s and 0.5 s apart
    lists_asked = len(vcita.recorded_requests("clients"))

    page = browser.dashboard().text
    assert "vcita is still listing your newest clients" in page
    wait_for_client_reads(app)
    panel = browser.get(PANEL, headers=FETCHED)

    assert panel.status_code == 200
    assert "vcita did not answer for your clients just now" in panel.text
    assert ">5 minutes ago</time>" in panel.text and len(panel_rows(panel.text)) == 5
    # The panel reports the read that failed; it does not start another one.
    assert len(vcita.recorded_requests("clients")) == lists_asked + 3


def test_another_worker_shows_the_clients_a_late_read_kept_without_asking_vcita(
    app, make_app, settings, browser, vcita
):
    vcita.set_fault("clients", **SLOW_LIST)
    browser.get(browser.approve(staff="Maya Goldberg"))
    vcita.clear_faults()
    wait_for_client_reads(app)
    asked = vcita_calls(vcita)
    # Another worker of the same deployment: its own process, the same database and keys.
    other_worker = browser_with_cookie(
        make_app(TOKEN_ENCRYPTION_KEY=settings["TOKEN_ENCRYPTION_KEY"]), browser.session_cookie()
    )

    panel = other_worker.get(PANEL, headers=FETCHED)

    assert panel.status_code == 200
    assert len(panel_rows(panel.text)) == 5
    assert "Read from vcita's API with the stored token" in panel.text
    assert vcita_calls(vcita) == asked


def test_a_slow_read_is_kept_once_however_many_pages_wait_on_it(app, browser, vcita, monkeypatch):
    vcita.set_fault("clients", **SLOW_LIST)
    kept = []
    keep = ClientReads._keep

    def counted(reads, connection_id, read):
        kept.append(read)
        keep(reads, connection_id, read)

    monkeypatch.setattr(ClientReads, "_keep", counted)
    browser.get(browser.approve(staff="Maya Goldberg"))  # the callback's read: late, kept later
    for _ in range(3):
        assert "still listing" in browser.get(PANEL, headers=FETCHED).text
    browser.dashboard()  # shows what the callback read
    browser.dashboard()  # waits on the same read, and asks to keep it too

    with app.app_context():
        read = get_client_reads().latest(only_connection(app).id)
    keepers_ran = threading.Event()  # a future's callbacks run in the order they were given
    read.future.add_done_callback(lambda done: keepers_ran.set())
    vcita.clear_faults()  # the list answers: the read ends, and its keepers run

    assert keepers_ran.wait(NO_WAITING_SECONDS)
    assert len(kept) == 1  # the callback's read, kept once however many pages waited on it


def test_a_token_revoked_while_the_list_was_slow_ends_the_connection_at_the_panel(
    app, browser, vcita
):
    vcita.set_fault("clients", **SLOW_LIST)
    browser.get(browser.approve(staff="Maya Goldberg"))
    vcita.revoke_all_tokens()
    vcita.clear_faults()  # the list answers now: 401, the token is revoked
    wait_for_client_reads(app)
    assert only_snapshot(app).recent_clients is None  # nothing was kept

    response = browser.get(PANEL, headers=FETCHED)

    assert response.status_code == 302 and response.location == "/"
    assert stored(app).connections.count() == 0


def test_reads_beyond_what_the_threads_can_hold_wait_for_the_panel_to_ask_again(
    app, browser, vcita, monkeypatch
):
    monkeypatch.setattr(client_reads, "MAX_WAITING_READS", 0)  # every reading thread is taken
    browser.get(browser.approve(staff="Maya Goldberg"))
    page = browser.dashboard().text
    assert "vcita is still listing your clients" in page
    assert vcita.recorded_requests("clients") == []  # not asked, not queued

    monkeypatch.setattr(client_reads, "MAX_WAITING_READS", 64)  # a thread is free again
    panel = browser.get(PANEL, headers=FETCHED)

    assert len(panel_rows(panel.text)) == 5
    assert len(vcita.recorded_requests("clients")) == 1
    assert len(only_snapshot(app).recent_clients) == 5


def test_the_panel_opened_as_a_page_works_without_javascript(app, browser, vcita):
    vcita.set_fault("clients", **SLOW_LIST)
    browser.get(browser.approve(staff="Maya Goldberg"))
    vcita.clear_faults()
    wait_for_client_reads(app)

    response = browser.get(PANEL)  # a link followed: Sec-Fetch-Dest is "document"

    assert response.status_code == 200
    assert response.text.startswith("<!doctype html>")
    assert len(panel_rows(response.text)) == 5
    assert 'href="/dashboard">Back to your dashboard</a>' in response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert "Sec-Fetch-Dest" in response.headers["Vary"]


def test_the_panel_without_a_connection_goes_back_to_the_landing_page(browser):
    response = browser.get(PANEL, headers=FETCHED)
    assert response.status_code == 302
    assert response.location == "/"


def test_a_revoked_token_on_the_panel_forgets_the_connection(app, browser, vcita):
    browser.connect()
    read_earlier(app, minutes=5)
    vcita.revoke_all_tokens()
    response = browser.get(PANEL, headers=FETCHED)
    assert response.status_code == 302
    assert response.location == "/"
    assert stored(app).connections.count() == 0


def test_the_panel_shows_its_pages_business_after_another_tab_connects_another(browser):
    browser.connect(staff="Maya Goldberg")
    harbor = panel_rows(browser.dashboard().text)
    browser.connect(staff="Daniel O'Brien")  # another tab: the session now shows Cedar & Pine
    cedar = panel_rows(browser.dashboard().text)
    assert harbor != cedar

    panel = browser.get(PANEL, headers=FETCHED)  # Harbor's page asks for its panel

    assert panel.status_code == 200
    assert panel_rows(panel.text) == harbor


@pytest.mark.parametrize(
    "query",
    [f"business_uid={CEDAR}", f"business_uid={CEDAR}&staff_uid={MAYA}", "", "business_uid="],
    ids=["another-business", "another-business-our-staff", "none", "empty"],
)
def test_the_panel_answers_only_for_a_business_this_browser_connected(app, browser, query):
    browser.connect(staff="Maya Goldberg")

    response = browser.get(f"/dashboard/recent-clients?{query}", headers=FETCHED)

    assert response.status_code == 302 and response.location == "/"
    assert stored(app).connections.count() == 1  # refused: nothing ended
