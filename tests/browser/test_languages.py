"""A business owner who works in Hebrew, in a real Chromium: every page right to left.

The browser asks for Hebrew (Accept-Language), and the business's own locale is Hebrew
(the sandbox's demo clinic): the app's pages, vcita's (the sandbox's) sign-in and consent
pages, the dashboard and what Disconnect says are all Hebrew, laid out right to left with
one stylesheet, without a sideways scroll, and pass axe-core.
"""

from urllib.parse import urlencode

from playwright.sync_api import Browser, BrowserContext, Frame, Page, expect

from .conftest import Servers
from .steps import assert_accessible, horizontal_overflow

HEBREW = {"Accept-Language": "he-IL,he;q=0.9"}  # what Chromium sends with --lang=he
OFEK = "4f0b7d2e91c6a853"  # מרפאת אופק לפיזיותרפיה, a physiotherapy clinic; locale "he"
NOA = "e07c4a9d3b5f1268"  # its owner, נועה לוי
OFEK_NAME = "מרפאת אופק לפיזיותרפיה"
NOA_NAME = "נועה לוי"
PHONE = {"width": 390, "height": 844}


def expect_right_to_left(page: Page | Frame, lang: str = "he") -> None:
    """Check the page says it is Hebrew, right to left, and fits the window's width."""
    html = page.locator("html")
    expect(html).to_have_attribute("lang", lang)
    expect(html).to_have_attribute("dir", "rtl")
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    assert horizontal_overflow(page) == 0, f"{page.url} scrolls sideways"


def sign_in_and_allow(page: Page, staff: str = NOA_NAME) -> None:
    """Answer vcita's sign-in and consent pages, in Hebrew, as a person reading them."""
    expect(page.get_by_role("heading", level=1)).to_have_text("כניסה ל־vcita")
    expect_right_to_left(page)
    page.get_by_label(staff).check()
    page.get_by_role("button", name="כניסה", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "vcita Connect מבקשת גישה לחשבון ה־vcita שלכם"
    )
    expect_right_to_left(page)
    assert_accessible(page)
    page.get_by_role("button", name="אישור").click()


def open_every_panel(page: Page | Frame) -> None:
    """Open the raw JSON and the flow trace: they hold the longest lines."""
    for summary in page.locator("summary").all():
        summary.click()


def test_the_whole_journey_in_hebrew_is_right_to_left(
    page: Page, context: BrowserContext, servers: Servers, readme_screenshot
):
    context.set_extra_http_headers(HEBREW)
    page.goto(f"{servers.app_url}/")
    expect(page).to_have_title("חברו את חשבון ה־vcita שלכם · vcita Connect")
    expect_right_to_left(page)
    assert_accessible(page)

    page.get_by_role("link", name="חיבור ל־vcita").click()
    sign_in_and_allow(page)

    page.wait_for_url(f"{servers.app_url}/dashboard")
    expect(page.get_by_text("מחובר ל־vcita", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text(OFEK_NAME)
    expect(page).to_have_title(f"{OFEK_NAME} · vcita Connect")
    # Right to left for real: the monogram starts the line on the right, before the name.
    monogram = page.locator(".monogram").bounding_box()
    heading = page.get_by_role("heading", level=1).bounding_box()
    assert monogram["x"] > heading["x"]
    # An e-mail stays left to right inside the Hebrew page.
    email = page.get_by_text("noa.levi@ofekphysio.example", exact=True)
    assert email.evaluate("element => getComputedStyle(element).direction") == "ltr"
    readme_screenshot(page, "dashboard-he")
    open_every_panel(page)
    expect_right_to_left(page)
    assert_accessible(page)

    page.get_by_role("button", name="ניתוק").click()
    page.wait_for_url(f"{servers.app_url}/")
    expect(page.get_by_role("status")).to_contain_text(
        "החיבור נותק. vcita כבר לא מקבלת את המפתח שהיה לאפליקציה הזו עבור העסק שלכם, "
        "והאפליקציה מחקה אותו."
    )
    expect_right_to_left(page)


def test_the_language_menu_works_without_script(browser: Browser, servers: Servers):
    context = browser.new_context(
        java_script_enabled=False, extra_http_headers={"Accept-Language": "en-US,en;q=0.9"}
    )
    page = context.new_page()
    page.goto(f"{servers.app_url}/")
    expect(page.locator("html")).to_have_attribute("lang", "en")

    page.get_by_label("Language").select_option(label="עברית")
    page.get_by_role("button", name="Change").click()

    page.wait_for_url(f"{servers.app_url}/")
    expect_right_to_left(page)
    expect(page.get_by_label("שפה")).to_have_value("he")
    page.get_by_label("שפה").select_option(label="Deutsch")
    page.get_by_role("button", name="החלפה").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Verbinden Sie Ihr vcita-Konto")
    context.close()


def test_the_framed_app_market_in_hebrew_on_a_phone(
    page: Page, context: BrowserContext, servers: Servers, readme_screenshot
):
    context.set_extra_http_headers(HEBREW)
    page.set_viewport_size(PHONE)
    query = urlencode({"business": OFEK, "staff": NOA, "mode": "frame"})
    page.goto(f"{servers.app_market_url}/app-market/open?{query}")  # with language=he
    frame = page.frame_locator("#app-frame")
    expect(frame.get_by_role("link", name="חיבור ל־vcita")).to_be_visible()
    expect_right_to_left(page)  # vcita's own page around the app
    expect_right_to_left(page.frame(name="app-frame"))
    assert_accessible(page.frame(name="app-frame"))

    with context.expect_page() as opened:
        frame.get_by_role("link", name="חיבור ל־vcita").click()
    sign_in_and_allow(opened.value)

    expect(frame.get_by_text("מחובר ל־vcita", exact=True)).to_be_visible()
    expect(frame.get_by_role("heading", level=1)).to_have_text(OFEK_NAME)
    framed = page.frame(name="app-frame")
    readme_screenshot(page, "framed-dashboard-he")
    open_every_panel(framed)
    expect_right_to_left(framed)
    expect_right_to_left(page)
    assert_accessible(framed)
    assert_accessible(page)
