"""SameSite=Lax, not Strict: vcita sends the person back with a cross-site redirect.

The app is on localhost and the sandbox on 127.0.0.1, two sites, as the app and vcita
are. The redirect from vcita to /callback is a cross-site navigation: a Lax cookie comes
along with it (a top-level GET), a Strict one does not — and without the cookie the app
cannot find the pending flow the state belongs to.
"""

from urllib.parse import quote

from playwright.sync_api import BrowserContext, Page, Response, expect

from ..test_cookie_budget import BROWSER_COOKIE_LIMIT, random_characters
from .conftest import Servers
from .steps import (
    CALLBACK,
    answer_consent,
    click_connect,
    connect,
    log_in,
    open_landing,
    statuses,
)

SESSION_COOKIE = "vcita_connect"
STATE_NOT_FOUND = "This sign-in link is no longer valid"


def come_back_from_vcita(page: Page, servers: Servers) -> Response:
    """Connect and allow; return the app's response to the browser's /callback request."""
    open_landing(page, servers)
    click_connect(page, servers)
    log_in(page)
    with page.expect_response(CALLBACK) as callback:
        answer_consent(page, allow=True)
    return callback.value


def cookies_sent(callback: Response) -> str:
    return callback.request.all_headers().get("cookie", "")


def session_cookie(context: BrowserContext) -> dict:
    return next(cookie for cookie in context.cookies() if cookie["name"] == SESSION_COOKIE)


def test_lax_session_cookie_comes_back_with_vcitas_cross_site_redirect(
    page: Page, context: BrowserContext, servers: Servers
):
    assert servers.app.config["SESSION_COOKIE_SAMESITE"] == "Lax"  # the app's own setting

    callback = come_back_from_vcita(page, servers)

    assert f"{SESSION_COOKIE}=" in cookies_sent(callback)
    assert callback.status == 303
    page.wait_for_url(f"{servers.app_url}/dashboard")
    expect(page.get_by_text("Connected to vcita", exact=True)).to_be_visible()
    assert session_cookie(context)["sameSite"] == "Lax"
    assert statuses(servers.vcita.token_requests) == [200]


def test_strict_session_cookie_would_be_lost_on_vcitas_redirect(
    page: Page, context: BrowserContext, servers: Servers
):
    servers.app.config["SESSION_COOKIE_SAMESITE"] = "Strict"  # what this app must not do

    callback = come_back_from_vcita(page, servers)

    assert session_cookie(context)["sameSite"] == "Strict"  # the browser holds the cookie...
    assert SESSION_COOKIE not in cookies_sent(callback)  # ...but does not send it to /callback
    assert callback.status == 400
    expect(page.get_by_role("heading", level=1)).to_have_text(STATE_NOT_FOUND)
    assert servers.vcita.token_requests == []  # the code was never exchanged


def test_links_a_hostile_page_opens_never_push_out_the_persons_own_flow(
    page: Page, context: BrowserContext, servers: Servers
):
    # A page the victim visits opens /connect links with long return paths in their
    # browser first: three, then a fourth as long as still fits, to fill the cookie to the
    # brim. The person's own flow would then push it over the browser's limit.
    def open_hostile_link(length: int, seed: int) -> bool:
        before = session_cookie(context)["value"] if context.cookies() else ""
        hostile_next = "/" + random_characters(0x4E00, 0x9FFF, count=length, seed=seed)
        page.goto(f"{servers.app_url}/connect?next={quote(hostile_next)}")
        after = session_cookie(context)["value"]
        assert len(after) < BROWSER_COOKIE_LIMIT
        return after != before  # False: the browser dropped the grown cookie

    for seed in range(3):
        open_hostile_link(255, seed)
    for length in range(255, 0, -8):
        if open_hostile_link(length, seed=length):
            break

    connect(page, servers)

    expect(page.get_by_text(STATE_NOT_FOUND)).to_have_count(0)
    expect(page.get_by_role("heading", level=1)).to_have_text("Harbor Light Yoga")
