"""axe-core finds nothing serious on any page, and the flow works with the keyboard alone.

Every error page is reached the way a person meets it, by provoking the failure.
"""

import time
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from .conftest import Servers
from .steps import (
    answer_consent,
    assert_accessible,
    before_vcita_sends_back,
    click_connect,
    connect,
    expect_error_page,
    log_in,
    open_landing,
    wait_for_dashboard,
)

WRONG_SECRET = "not-the-secret-vcita-registered-0000"


def test_landing_page_has_no_serious_accessibility_violation(page: Page, servers: Servers):
    open_landing(page, servers)
    assert_accessible(page)


def test_dashboard_has_no_serious_accessibility_violation(page: Page, servers: Servers):
    connect(page, servers)
    page.get_by_text("Everything vcita returned").click()  # open the raw JSON panel too
    expect(page.locator("details.raw pre")).to_be_visible()
    assert_accessible(page)


def come_back_from_vcita(page: Page, servers: Servers, allow: bool = True) -> None:
    open_landing(page, servers)
    click_connect(page, servers)
    log_in(page)
    answer_consent(page, allow=allow)


def invalid_state(page: Page, start_servers) -> None:
    servers = start_servers()
    page.goto(f"{servers.app_url}/callback?code=a-code&state=a-state-from-another-browser")


def deny(page: Page, start_servers) -> None:
    come_back_from_vcita(page, start_servers(), allow=False)


def expired_code(page: Page, start_servers) -> None:
    servers = start_servers(sandbox_settings={"SANDBOX_CODE_LIFETIME": "0.5"})
    before_vcita_sends_back(page, servers, lambda: time.sleep(0.7))
    come_back_from_vcita(page, servers)


def invalid_client(page: Page, start_servers) -> None:
    come_back_from_vcita(page, start_servers(app_settings={"VCITA_CLIENT_SECRET": WRONG_SECRET}))


def vcita_down(page: Page, start_servers) -> None:
    servers = start_servers()
    before_vcita_sends_back(page, servers, servers.stop_sandbox)
    come_back_from_vcita(page, servers)


def not_found(page: Page, start_servers) -> None:
    page.goto(f"{start_servers().app_url}/no-such-page")


def method_not_allowed(page: Page, start_servers) -> None:
    page.goto(f"{start_servers().app_url}/disconnect")  # a POST-only address


def forged_disconnect(page: Page, start_servers) -> None:
    connect(page, start_servers())
    page.locator("input[name=csrf_token]").evaluate("field => { field.value = 'forged' }")
    page.get_by_role("button", name="Disconnect").click()


ERROR_PAGES = {
    "invalid-state": (
        invalid_state,
        "This sign-in link is no longer valid",
        "Connect vcita again",
    ),
    "deny": (deny, "You didn't allow access", "Connect vcita again"),
    "expired-code": (
        expired_code,
        "The approval expired — vcita codes last 30 seconds",
        "Connect vcita again",
    ),
    "invalid-client": (
        invalid_client,
        "vcita Connect is not set up correctly",
        "Back to the start page",
    ),
    "vcita-down": (vcita_down, "vcita did not answer", "Try again"),
    "404": (not_found, "Page not found", "Back to the start page"),
    "405": (method_not_allowed, "That action isn't available here", "Back to the start page"),
    "csrf-403": (forged_disconnect, "This request was refused", "Back to the start page"),
}


@pytest.mark.parametrize(("provoke", "title", "button"), ERROR_PAGES.values(), ids=ERROR_PAGES)
def test_error_page_has_no_serious_accessibility_violation(
    page: Page, start_servers, provoke: Callable, title: str, button: str
):
    provoke(page, start_servers)
    expect_error_page(page, title, button)
    assert_accessible(page)


def test_connecting_works_with_the_keyboard_alone(page: Page, servers: Servers):
    open_landing(page, servers)
    tab_to(page, "Connect vcita")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{servers.sandbox_url}/app/oauth/authorize?**")

    tab_to(page, "Log in")  # the first demo staff member is chosen already
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Allow")).to_be_visible()
    tab_to(page, "Allow")
    page.keyboard.press("Enter")
    wait_for_dashboard(page, servers)

    tab_to(page, "Disconnect")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Disconnected")


def tab_to(page: Page, name: str, most: int = 25) -> None:
    """Press Tab until the focused element is the one named `name`."""
    for _ in range(most):
        page.keyboard.press("Tab")
        focused = page.evaluate("() => document.activeElement.textContent.trim()")
        if focused == name:
            return
    pytest.fail(f"{most} presses of Tab never reached {name!r} on {page.url}")
