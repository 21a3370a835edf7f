"""What a business owner does in the browser, one step at a time, and what the tests check.

The steps click what a person clicks, found by role and visible name, so a renamed
button breaks the tests as it would confuse a person.
"""

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, Route, expect

from ..conftest import stored
from .conftest import Servers

CALLBACK = re.compile(r"/callback\?")
DEFAULT_STAFF = "Maya Goldberg"  # owner of Harbor Light Yoga, the first demo business
SERIOUS = ("serious", "critical")
_axe = Axe()


def open_landing(page: Page, servers: Servers) -> None:
    """Open the app's start page."""
    page.goto(f"{servers.app_url}/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()


def click_connect(page: Page, servers: Servers) -> None:
    """Press Connect vcita and arrive on vcita's (the sandbox's) page."""
    page.get_by_role("link", name="Connect vcita").click()
    page.wait_for_url(re.compile(rf"^{re.escape(servers.sandbox_url)}/"))


def log_in(page: Page, staff: str = DEFAULT_STAFF) -> None:
    """Choose a demo staff member on the sandbox's login page and log in."""
    page.get_by_label(staff).check()
    page.get_by_role("button", name="Log in").click()


def answer_consent(page: Page, allow: bool = True) -> None:
    """Press Allow (or Deny) on the sandbox's consent page."""
    expect(page.get_by_role("heading", name=re.compile("wants to access"))).to_be_visible()
    page.get_by_role("button", name="Allow" if allow else "Deny").click()


def connect(page: Page, servers: Servers, staff: str = DEFAULT_STAFF) -> None:
    """Go from the start page to the dashboard as `staff`, allowing access."""
    open_landing(page, servers)
    click_connect(page, servers)
    log_in(page, staff)
    answer_consent(page, allow=True)
    wait_for_dashboard(page, servers)


def wait_for_dashboard(page: Page, servers: Servers, says: str = "Connected to vcita") -> None:
    """Wait until the browser shows the dashboard, in English unless `says` is in another."""
    page.wait_for_url(f"{servers.app_url}/dashboard")
    expect(page.get_by_text(says, exact=True)).to_be_visible()


def expect_error_page(page: Page, title: str, button: str) -> None:
    """Check the page says what happened (its title) and offers exactly one button."""
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    expect(page).to_have_title(re.compile(re.escape(title)))
    buttons = page.locator("main a.button, main button")
    expect(buttons).to_have_count(1)
    expect(buttons).to_have_text(button)


def stored_connections(servers: Servers) -> int:
    """Return how many connections the app has stored."""
    return stored(servers.app).connections.count()


def statuses(records: list[dict]) -> list[int]:
    """Return the statuses the sandbox answered to recorded requests, in order."""
    return [record["status"] for record in records]


def before_vcita_sends_back(page: Page, servers: Servers, action: Callable[[], None]) -> None:
    """Run `action` once vcita has issued its answer, before the browser carries it back.

    The sandbox answers Allow with a redirect to /callback. The browser's request for
    that decision is held: the sandbox's answer is fetched, `action` runs, and only then
    does the browser get the redirect and follow it.
    """

    def hold(route: Route) -> None:
        answer = route.fetch(max_redirects=0)
        assert CALLBACK.search(answer.headers["location"])
        action()
        route.fulfill(response=answer)

    page.route(f"{servers.sandbox_url}/app/oauth/authorize/decision", hold, times=1)


def document_status(page: Page) -> int:
    """Return the HTTP status of the page's document, as the browser itself recorded it.

    Where a route held vcita's redirect (before_vcita_sends_back), Playwright's response
    event for the page it leads to now and then never comes; the browser's navigation
    timing always has it.
    """
    return page.evaluate("performance.getEntriesByType('navigation')[0].responseStatus")


def press_back(page: Page) -> None:
    """Press the Back button.

    A page that answered a form (the sandbox's consent page) is not sent again: Chromium
    shows its "Confirm form resubmission" notice (ERR_CACHE_MISS) instead.
    """
    try:
        page.go_back()
    except PlaywrightError as error:
        if "ERR_CACHE_MISS" not in str(error):
            raise
        page.wait_for_url(re.compile(r"^chrome-error://"))


def address_bar_query(page: Page) -> str:
    """Return the query string of the page's URL (what the address bar shows after the path)."""
    return urlsplit(page.url).query


def assert_accessible(page: Page) -> None:
    """Run axe-core on the page: no violation of impact serious or critical."""
    results = _axe.run(page)
    serious = [
        f"{violation['id']} ({violation['impact']}): {violation['help']} — "
        + ", ".join(str(node["target"]) for node in violation["nodes"])
        for violation in results.response["violations"]
        if violation["impact"] in SERIOUS
    ]
    assert not serious, f"axe-core on {page.url}:\n" + "\n".join(serious)


def horizontal_overflow(page: Page) -> int:
    """Return by how many CSS pixels the page is wider than the window (0: it fits)."""
    return page.evaluate(
        "() => Math.max(0, document.scrollingElement.scrollWidth - window.innerWidth)"
    )
