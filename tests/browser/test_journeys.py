"""The journeys of issue 4, each in a real Chromium against the app and the sandbox.

The app runs on http://localhost:<port> and the sandbox on http://127.0.0.1:<port>, so
every click crosses real sockets and vcita's redirect back is a cross-site navigation.
"""

import re
import time
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from .conftest import Servers
from .steps import (
    CALLBACK,
    address_bar_query,
    answer_consent,
    before_vcita_sends_back,
    click_connect,
    connect,
    document_status,
    expect_error_page,
    log_in,
    open_landing,
    press_back,
    statuses,
    stored_connections,
    wait_for_dashboard,
)

YEAR = 365 * 86400


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def test_journey_1_connect_shows_the_chosen_business_on_the_dashboard(
    page: Page, servers: Servers, readme_screenshot
):
    origins, console_errors = set(), []
    page.on("request", lambda request: origins.add(origin(request.url)))
    page.on("console", lambda message: message.type == "error" and console_errors.append(message))
    open_landing(page, servers)
    expect(page).to_have_title("Connect your vcita account · vcita Connect")
    readme_screenshot(page, "landing")

    click_connect(page, servers)
    log_in(page, "Daniel O'Brien")
    expect(page.get_by_text("Cedar & Pine Law Office").first).to_be_visible()
    readme_screenshot(page, "consent")
    answer_consent(page, allow=True)

    wait_for_dashboard(page, servers)
    expect(page.get_by_role("heading", level=1)).to_have_text("Cedar & Pine Law Office")
    expect(page.get_by_text("daniel.obrien@cedarpinelaw.example", exact=True)).to_be_visible()
    expect(page).to_have_title("Cedar & Pine Law Office · vcita Connect")
    assert address_bar_query(page) == ""  # neither code nor state stays in the address bar
    assert statuses(servers.vcita.token_requests) == [200]
    readme_screenshot(page, "dashboard")
    # Every file came from the app or vcita (no CDN, no web font), and the Content-Security-
    # Policy refused nothing (no inline script or style slipped into a template).
    assert origins == {servers.app_url, servers.sandbox_url}
    app_errors = [m.text for m in console_errors if origin(m.location["url"]) == servers.app_url]
    assert app_errors == []


def test_journey_2_deny_then_try_again_connects(page: Page, servers: Servers):
    open_landing(page, servers)
    click_connect(page, servers)
    log_in(page)
    with page.expect_response(CALLBACK) as callback:
        answer_consent(page, allow=False)
    assert callback.value.status == 403
    expect_error_page(page, "You didn't allow access", "Connect vcita again")
    assert servers.vcita.token_requests == []  # a denial spends nothing
    assert stored_connections(servers) == 0

    page.get_by_role("link", name="Connect vcita again").click()
    answer_consent(page, allow=True)  # still logged in to vcita: straight to consent
    wait_for_dashboard(page, servers)
    expect(page.get_by_role("heading", level=1)).to_have_text("Harbor Light Yoga")
    assert statuses(servers.vcita.token_requests) == [200]


@pytest.mark.sandbox_settings(SANDBOX_TRUSTED="true")
def test_journey_3_trusted_app_skips_the_consent_page(page: Page, servers: Servers):
    shown = []  # every page the browser actually displayed, redirects aside
    page.on("framenavigated", lambda frame: frame.parent_frame or shown.append(frame.url))
    open_landing(page, servers)
    click_connect(page, servers)
    log_in(page)

    wait_for_dashboard(page, servers)
    expect(page.get_by_role("heading", level=1)).to_have_text("Harbor Light Yoga")
    # vcita showed its login page only: Log in led straight back to the app.
    sandbox_pages = [url for url in shown if url.startswith(servers.sandbox_url)]
    assert len(sandbox_pages) == 1
    assert sandbox_pages[0].startswith(f"{servers.sandbox_url}/app/oauth/authorize?")
    expect(page.get_by_role("button", name="Allow")).to_have_count(0)


@pytest.mark.sandbox_settings(SANDBOX_CODE_LIFETIME="1")
def test_journey_4_expired_code_then_try_again_connects(page: Page, servers: Servers):
    # The person's network is slow: the 1-second code expires on its way back to the app.
    before_vcita_sends_back(page, servers, lambda: time.sleep(1.5))
    open_landing(page, servers)
    click_connect(page, servers)
    log_in(page)
    answer_consent(page, allow=True)
    expect_error_page(
        page, "The approval expired — vcita codes last 30 seconds", "Connect vcita again"
    )
    assert CALLBACK.search(page.url)
    assert document_status(page) == 400
    assert statuses(servers.vcita.token_requests) == [400]  # invalid_grant
    assert stored_connections(servers) == 0

    page.get_by_role("link", name="Connect vcita again").click()
    answer_consent(page, allow=True)
    wait_for_dashboard(page, servers)
    assert statuses(servers.vcita.token_requests) == [400, 200]


def test_journey_5_two_tabs_connect_at_once_and_each_ends_on_its_own_dashboard(
    context: BrowserContext, servers: Servers
):
    first, second = context.new_page(), context.new_page()
    open_landing(first, servers)
    click_connect(first, servers)
    log_in(first, "Maya Goldberg")
    expect(first.get_by_role("button", name="Allow")).to_be_visible()
    # The second tab starts its own flow before the first one finishes; the browser
    # is logged in to vcita as Maya by now, so vcita asks for her consent directly.
    open_landing(second, servers)
    click_connect(second, servers)
    expect(second.get_by_text("Logged in as Maya Goldberg")).to_be_visible()

    answer_consent(first, allow=True)
    wait_for_dashboard(first, servers)
    expect(first.get_by_role("heading", level=1)).to_have_text("Harbor Light Yoga")

    # The second tab's flow survived the first one's session rotation: it finishes too,
    # for another business.
    second.get_by_role("button", name=re.compile("Use a different account")).click()
    log_in(second, "Sofía Hernández")
    answer_consent(second, allow=True)
    # Her business works in Spanish (its brand_theme.locale is "es"), and so does its dashboard.
    wait_for_dashboard(second, servers, says="Conectado a vcita")
    expect(second.get_by_role("heading", level=1)).to_have_text("Clínica Dental Sonrisa")

    expect(first.get_by_role("heading", level=1)).to_have_text("Harbor Light Yoga")
    assert statuses(servers.vcita.token_requests) == [200, 200]
    assert stored_connections(servers) == 2


def test_two_tabs_allowing_at_the_same_moment_both_finish(
    context: BrowserContext, servers: Servers
):
    first, second = context.new_page(), context.new_page()
    open_landing(first, servers)
    click_connect(first, servers)
    log_in(first)
    open_landing(second, servers)
    click_connect(second, servers)

    for tab in (first, second):
        expect(tab.get_by_role("button", name="Allow")).to_be_visible()
    for tab in (first, second):
        tab.get_by_role("button", name="Allow").click(no_wait_after=True)
    for tab in (first, second):
        wait_for_dashboard(tab, servers)
        expect(tab.get_by_role("heading", level=1)).to_have_text("Harbor Light Yoga")
    assert statuses(servers.vcita.token_requests) == [200, 200]


def test_journey_6_back_and_reload_on_the_dashboard_replay_nothing(page: Page, servers: Servers):
    callbacks = []  # the status of each /callback the browser loaded
    page.on(
        "response", lambda response: CALLBACK.search(response.url) and callbacks.append(response)
    )
    connect(page, servers)

    page.reload()
    wait_for_dashboard(page, servers)
    press_back(page)  # to vcita's consent page: the callback itself is not in the history
    page.go_forward()
    wait_for_dashboard(page, servers)
    press_back(page)  # the consent page
    # Back to vcita's authorize URL: vcita asks nothing of a staff member who holds a live
    # token for the app, and sends a new code back at once, with the flow's used state.
    press_back(page)
    expect_error_page(page, "This sign-in link is no longer valid", "Connect vcita again")
    press_back(page)  # the start page
    expect(page).to_have_url(f"{servers.app_url}/")
    page.reload()
    expect(page.get_by_role("link", name="Go to your dashboard")).to_be_visible()
    page.get_by_role("link", name="Go to your dashboard").click()
    wait_for_dashboard(page, servers)
    expect(page.get_by_role("heading", level=1)).to_have_text("Harbor Light Yoga")

    assert [response.status for response in callbacks] == [303, 400]
    # The first code was spent once; the second was never exchanged: its state was used.
    assert statuses(servers.vcita.token_requests) == [200]


def test_journey_7_disconnect_returns_to_the_start_and_closes_the_dashboard(
    page: Page, servers: Servers
):
    connect(page, servers)
    page.get_by_role("button", name="Disconnect").click()

    expect(page).to_have_url(f"{servers.app_url}/")
    expect(page.get_by_role("status")).to_contain_text("Disconnected")
    expect(page.get_by_role("link", name="Connect vcita")).to_be_visible()
    assert stored_connections(servers) == 0

    page.goto(f"{servers.app_url}/dashboard")
    expect(page).to_have_url(f"{servers.app_url}/")
    expect(page.get_by_role("link", name="Connect vcita")).to_be_visible()
    expect(page.get_by_text("Disconnected")).to_have_count(0)  # a flash shows only once


def test_journey_8_vcita_down_shows_the_502_page_and_try_again_works(page: Page, servers: Servers):
    # vcita goes down just as the person comes back with a code.
    before_vcita_sends_back(page, servers, servers.stop_sandbox)
    open_landing(page, servers)
    click_connect(page, servers)
    log_in(page)
    answer_consent(page, allow=True)
    expect_error_page(page, "vcita did not answer", "Try again")
    assert CALLBACK.search(page.url)
    assert document_status(page) == 502
    assert servers.vcita.token_requests == []  # nothing reached vcita
    assert stored_connections(servers) == 0

    servers.restart_sandbox()
    page.get_by_role("link", name="Try again").click()
    answer_consent(page, allow=True)
    wait_for_dashboard(page, servers)
    assert statuses(servers.vcita.token_requests) == [200]


def test_journey_9_connecting_again_comes_straight_back_without_vcitas_consent_page(
    page: Page, servers: Servers
):
    connect(page, servers)
    servers.vcita.age_tokens(3 * YEAR)  # three years pass; the token vcita issued lives on
    asked, shown = [], []  # the requests to vcita; every page the browser displayed
    page.on("request", lambda request: asked.append(request.url))
    page.on("framenavigated", lambda frame: frame.parent_frame or shown.append(frame.url))

    page.goto(f"{servers.app_url}/connect")  # Connect again, say from a bookmark

    wait_for_dashboard(page, servers)
    expect(page.get_by_role("heading", level=1)).to_have_text("Harbor Light Yoga")
    # The browser went to vcita, still logged in as the staff member who allowed the app
    # and holds a live token for it: vcita showed no page and sent a code straight back.
    assert any(url.startswith(f"{servers.sandbox_url}/app/oauth/authorize?") for url in asked)
    assert shown == [f"{servers.app_url}/dashboard"]
    # vcita gave the same token back: the dashboard says when it was first issued.
    issued = page.locator(".facts div", has=page.locator("dt", has_text="Issued")).locator("time")
    expect(issued).to_have_text("3 years ago")
    assert statuses(servers.vcita.token_requests) == [200, 200]
    assert stored_connections(servers) == 1


def test_journey_10_disconnect_then_connect_again_passes_through_consent(
    page: Page, servers: Servers
):
    connect(page, servers)
    page.get_by_role("button", name="Disconnect").click()

    expect(page.get_by_role("status")).to_contain_text(
        "vcita no longer accepts the key this app had for your business"
    )
    (revoke,) = servers.vcita.recorded_requests("revoke")
    assert revoke["status"] == 201
    assert not servers.vcita.is_token_active(revoke["body"]["token"])
    expect(page.get_by_text("unless this app already holds a key you allowed")).to_be_visible()

    page.get_by_role("link", name="Connect vcita").click()

    # Still logged in to vcita, but holding no live token for the app: vcita asks again.
    answer_consent(page, allow=True)
    wait_for_dashboard(page, servers)
    expect(page.get_by_role("heading", level=1)).to_have_text("Harbor Light Yoga")
    assert statuses(servers.vcita.token_requests) == [200, 200]
    assert stored_connections(servers) == 1
