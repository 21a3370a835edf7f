"""The pages fit a phone (390 px) and a desktop (1280 px) window.

Nothing may scroll sideways, and Connect must be visible without scrolling.
"""

import pytest
from playwright.sync_api import Page, expect

from .conftest import Servers
from .steps import connect, horizontal_overflow, open_landing

WINDOWS = {"phone": (390, 844), "desktop": (1280, 800)}


@pytest.mark.parametrize(("width", "height"), WINDOWS.values(), ids=WINDOWS)
def test_pages_fit_the_window_and_connect_is_visible_without_scrolling(
    page: Page, servers: Servers, width: int, height: int
):
    page.set_viewport_size({"width": width, "height": height})

    open_landing(page, servers)
    assert horizontal_overflow(page) == 0, "the landing page scrolls sideways"
    connect_button = page.get_by_role("link", name="Connect vcita")
    expect(connect_button).to_be_in_viewport(ratio=1)  # wholly visible, before any scrolling
    assert page.evaluate("() => window.scrollY") == 0

    page.goto(f"{servers.app_url}/callback?code=a-code&state=a-state-from-another-browser")
    expect(page.get_by_role("heading", level=1)).to_contain_text("no longer valid")
    assert horizontal_overflow(page) == 0, "the error page scrolls sideways"
    expect(page.get_by_role("link", name="Connect vcita again")).to_be_in_viewport(ratio=1)

    connect(page, servers)
    # Open every panel: the raw JSON and the flow trace hold the longest lines.
    for summary in page.locator("summary").all():
        summary.click()
    expect(page.locator("details[open]")).to_have_count(page.locator("details").count())
    assert horizontal_overflow(page) == 0, "the dashboard scrolls sideways"


def test_pages_have_the_favicon(page: Page, servers: Servers):
    open_landing(page, servers)
    icon = page.locator("link[rel=icon]")
    response = page.request.get(f"{servers.app_url}{icon.get_attribute('href')}")
    assert response.status == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
