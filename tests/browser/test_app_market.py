"""Opened from vcita's App Market, in a real Chromium with third-party cookies blocked.

The sandbox plays vcita's own UI on http://vcita.localhost:<port>, another site than
the app's http://localhost:<port>: it opens the app in a new tab, or inside its page in
an iframe, with the launch parameters vcita appends. Inside the frame the app has only
its partitioned cookie, vcita's sign-in page refuses to be framed, and connecting goes
through a popup that hands the connection back to the frame.
"""

import re
import time
from urllib.parse import urlencode, urlsplit

from playwright.sync_api import BrowserContext, FrameLocator, Page, expect

from ..conftest import finish_background_work
from .conftest import BRAND_DOMAIN, CLIENT_ID, TIMEOUT_MS, Servers
from .steps import DEFAULT_STAFF, answer_consent, assert_accessible, connect, log_in

HARBOR = "7c6dc1589f078b66"  # Harbor Light Yoga
MAYA = "1beb795be66146bb"  # its owner, Maya Goldberg
CEDAR = "9da2a88d42e6ff59"  # Cedar & Pine Law Office
DANIEL = "6df31cfb24107721"  # its owner, Daniel O'Brien
HARBOR_BRAND_HOST = f"3e2929cf6c34632e.{BRAND_DOMAIN}"


def open_from_app_market(
    page: Page, servers: Servers, mode: str, business=HARBOR, staff=MAYA, extra=""
) -> None:
    """Open the app the way vcita's App Market does, as `staff` of `business`."""
    query = {"business": business, "staff": staff, "mode": mode}
    if extra:
        query["extra"] = extra
    page.goto(f"{servers.app_market_url}/app-market/open?{urlencode(query)}")


def app_frame(page: Page) -> FrameLocator:
    return page.frame_locator("#app-frame")


def framed_page(page: Page):
    """The Frame object of the app inside vcita's page."""
    return page.frame(name="app-frame")


def connect_in_popup(page: Page, context: BrowserContext, staff: str = DEFAULT_STAFF) -> Page:
    """Press Connect in the frame, sign in and allow in the popup; return the popup."""
    with context.expect_page() as opened:
        app_frame(page).get_by_role("link", name="Connect vcita").click()
    popup = opened.value
    log_in(popup, staff)
    answer_consent(popup, allow=True)
    return popup


def expect_framed_dashboard(page: Page, business_name: str) -> None:
    frame = app_frame(page)
    expect(frame.get_by_text("Connected to vcita", exact=True)).to_be_visible()
    expect(frame.get_by_role("heading", level=1)).to_have_text(business_name)


def test_launched_in_a_new_tab_connects_the_launched_business(
    page: Page, context: BrowserContext, servers: Servers
):
    page.goto(f"{servers.app_market_url}/app-market")
    page.get_by_label("In a new tab").check()
    page.get_by_role("button", name="Open vcita Connect").click()
    with context.expect_page() as opened:
        page.locator("#open-app").click()
    tab = opened.value
    tab.wait_for_load_state()
    assert urlsplit(tab.url).netloc == urlsplit(servers.app_url).netloc
    tab.get_by_role("link", name="Connect vcita").click()
    # The launched business's white-label consent page, on its brand host.
    tab.wait_for_url(re.compile(rf"^http://{re.escape(HARBOR_BRAND_HOST)}:\d+/"))
    log_in(tab)
    answer_consent(tab)
    tab.wait_for_url(f"{servers.app_url}/dashboard")
    expect(tab.get_by_role("heading", level=1)).to_have_text("Harbor Light Yoga")


def test_launched_inside_vcita_connects_through_a_popup_and_the_frame_shows_the_dashboard(
    page: Page, context: BrowserContext, servers: Servers, readme_screenshot
):
    open_from_app_market(page, servers, "frame")
    expect(app_frame(page).get_by_role("link", name="Connect vcita")).to_be_visible()

    popup = connect_in_popup(page, context)

    expect_framed_dashboard(page, "Harbor Light Yoga")
    # It closes itself once the frame has the connection, perhaps before the dashboard
    # showed: a close already seen is not waited for again (it would never come).
    if not popup.is_closed():
        popup.wait_for_event("close")
    assert popup.is_closed()
    readme_screenshot(page, "framed-dashboard")
    # The frame's session is its partitioned cookie, keyed by vcita's site.
    framed = [c for c in context.cookies() if c["name"] == "vcita_connect_framed"]
    assert [c.get("partitionKey") for c in framed] == [f"http://{urlsplit(page.url).hostname}"]

    # Opened again from vcita: straight to the dashboard, no Connect.
    open_from_app_market(page, servers, "frame")
    expect_framed_dashboard(page, "Harbor Light Yoga")


def test_inside_vcitas_frame_the_recent_clients_panel_fills_itself(
    page: Page, context: BrowserContext, servers: Servers
):
    servers.vcita.set_fault("clients", delay=60)  # far longer than a page waits for it
    open_from_app_market(page, servers, "frame")
    connect_in_popup(page, context)
    expect_framed_dashboard(page, "Harbor Light Yoga")
    panel = app_frame(page).locator("#recent-clients")
    expect(panel).to_contain_text("vcita is still listing your clients.")

    servers.vcita.clear_faults()

    # The frame's script asks with the frame's own (partitioned) cookie, and gets its panel.
    expect(panel.locator("table.clients tbody tr")).to_have_count(5, timeout=20_000)


def test_a_launch_for_another_business_shows_none_of_the_connected_ones_data(
    page: Page, context: BrowserContext, servers: Servers
):
    open_from_app_market(page, servers, "frame")
    connect_in_popup(page, context)
    expect_framed_dashboard(page, "Harbor Light Yoga")

    open_from_app_market(page, servers, "frame", business=CEDAR, staff=DANIEL)
    frame = app_frame(page)
    expect(frame.get_by_text("connected to a different vcita business")).to_be_visible()
    expect(frame.get_by_role("link", name="Connect vcita")).to_be_visible()
    expect(frame.locator("body")).not_to_contain_text("Harbor Light Yoga")


def test_a_blocked_popup_offers_a_new_tab_that_connects_the_frame(
    page: Page, context: BrowserContext, servers: Servers
):
    # A popup blocker: window.open() gives nothing.
    page.add_init_script("window.open = function () { return null; };")
    open_from_app_market(page, servers, "frame")
    frame = app_frame(page)
    frame.get_by_role("link", name="Connect vcita").click()
    expect(frame.get_by_text("Your browser blocked the vcita window")).to_be_visible()
    with context.expect_page() as opened:
        frame.get_by_role("link", name="Connect in a new tab instead").click()
    tab = opened.value
    log_in(tab)
    answer_consent(tab)
    expect_framed_dashboard(page, "Harbor Light Yoga")


def test_approving_with_another_business_than_the_launched_one_is_said(
    page: Page, context: BrowserContext, servers: Servers
):
    open_from_app_market(page, servers, "frame", business=CEDAR, staff=DANIEL)
    connect_in_popup(page, context, staff="Maya Goldberg")  # signs in to another business
    expect_framed_dashboard(page, "Harbor Light Yoga")
    expect(app_frame(page).get_by_role("alert")).to_contain_text(
        "vcita opened this app for another business"
    )


def test_a_hostile_brand_host_in_the_launch_never_leaves_the_configured_consent_page(
    page: Page, context: BrowserContext, servers: Servers
):
    open_from_app_market(
        page, servers, "frame", extra=f"brand_host=evil.example%23.{BRAND_DOMAIN}"
    )
    with context.expect_page() as opened:
        app_frame(page).get_by_role("link", name="Connect vcita").click()
    popup = opened.value
    popup.wait_for_load_state()
    assert popup.url.startswith(f"{servers.sandbox_url}/")


def test_vcitas_sign_in_page_refuses_to_be_framed(page: Page, servers: Servers):
    query = urlencode(
        {
            "client_id": CLIENT_ID,
            "redirect_uri": f"{servers.app_url}/callback",
            "response_type": "code",
            "state": "s" * 43,
        }
    )
    sign_in = f"{servers.sandbox_url}/app/oauth/authorize?{query}"
    page.goto(sign_in)
    expect(page.get_by_role("button", name="Log in")).to_be_visible()  # as a page: shown

    page.goto(f"{servers.app_url}/static/style.css")  # any page of another origin
    page.set_content(f'<iframe id="app-frame" name="app-frame" src="{sign_in}"></iframe>')
    page.wait_for_load_state("load")
    expect(app_frame(page).get_by_role("button", name="Log in")).to_have_count(0)
    assert framed_page(page).url.startswith("chrome-error://")


def test_framing_from_an_origin_not_on_the_list_is_refused(page: Page, servers: Servers):
    other = f"http://elsewhere.localhost:{servers.sandbox_port}"
    page.goto(f"{other}/app-market/open?business={HARBOR}&staff={MAYA}&mode=frame")
    page.wait_for_load_state("load")
    expect(app_frame(page).get_by_role("link", name="Connect vcita")).to_have_count(0)
    assert framed_page(page).url.startswith("chrome-error://")


def closed_after_opening(opener: Page, context: BrowserContext, url: str) -> bool:
    """Open `url` from `opener` with window.open, let it load, and read `w.closed`.

    The opener asks until the window reads closed, or the test's timeout passes, as a
    page probing it would: a window cut off from its opener reads closed soon after its
    page commits, one that keeps it never does.
    """
    with context.expect_page() as opened:
        opener.evaluate("url => { window.probe = window.open(url); }", url)
    window = opened.value
    # Not the blank page a new window starts with: the app's page, loaded.
    origin = urlsplit(url)._replace(path="", query="").geturl()
    window.wait_for_url(re.compile(rf"^{re.escape(origin)}/"), wait_until="load")
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not (closed := opener.evaluate("window.probe.closed")) and time.monotonic() < deadline:
        opener.wait_for_timeout(50)  # wait_for_function would eval: the page's CSP forbids it
    window.close()
    return closed


def test_a_page_of_another_site_cannot_tell_whether_the_browser_is_connected(
    page: Page, context: BrowserContext, servers: Servers
):
    # The sandbox's origin, 127.0.0.1, is another site than the app's localhost.
    foreign = context.new_page()
    foreign.goto(f"{servers.sandbox_url}/static/sandbox.css")
    probe = f"{servers.app_url}/connected"
    before = closed_after_opening(foreign, context, probe)
    connect(page, servers)
    after = closed_after_opening(foreign, context, probe)
    # Cut off from its opener either way, as every page is that hands nothing over.
    assert (before, after) == (True, True)


def test_the_framed_pages_pass_axe(page: Page, context: BrowserContext, servers: Servers):
    open_from_app_market(page, servers, "frame")
    expect(app_frame(page).get_by_role("link", name="Connect vcita")).to_be_visible()
    assert_accessible(framed_page(page))
    connect_in_popup(page, context)
    expect_framed_dashboard(page, "Harbor Light Yoga")
    assert_accessible(framed_page(page))
    assert_accessible(page)  # the App Market shell around it


def test_after_uninstall_app_in_vcita_the_dashboard_sends_the_person_back_to_connect(
    page: Page, context: BrowserContext, servers: Servers
):
    connect_in_new_tab = page
    connect_in_new_tab.goto(f"{servers.app_url}/")
    connect_in_new_tab.get_by_role("link", name="Connect vcita").click()
    log_in(connect_in_new_tab)
    answer_consent(connect_in_new_tab)
    connect_in_new_tab.wait_for_url(f"{servers.app_url}/dashboard")
    assert len(servers.vcita.subscriptions()) == 1  # the uninstall webhook

    vcita = context.new_page()
    open_from_app_market(vcita, servers, "tab")
    vcita.get_by_role("button", name="Uninstall app").click()
    expect(vcita.get_by_text("uninstalled from Harbor Light Yoga")).to_be_visible()
    finish_background_work(servers.app)
    assert [delivery["status"] for delivery in servers.vcita.deliveries] == [200]

    page.reload()
    page.wait_for_url(f"{servers.app_url}/")
    expect(page.get_by_role("link", name="Connect vcita")).to_be_visible()
