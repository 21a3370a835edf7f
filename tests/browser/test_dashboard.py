"""The dashboard in a browser: brand colours, the masked flow trace, a panel that fills itself."""

from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from app.connect.trace import hidden
from app.session_keys import CONNECTION
from app.token_use.client_reads import get_client_reads

from ..conftest import SESSION_COOKIE, stored
from ..security_support import decode_session, runs_of
from .conftest import CLIENT_SECRET, TIMEOUT_MS, Servers
from .steps import CALLBACK, connect

# Harbor Light Yoga's brand_theme.colors in the sandbox's demo data.
HARBOR_PRIMARY, HARBOR_SECONDARY = "#1f4d5c", "#f2b134"
DEFAULT_ACCENT = "#131a46"  # static/style.css
ATTACKER_URL = "http://127.0.0.1:9/x"


def css_variable(page: Page, name: str) -> str:
    return page.evaluate(
        "name => getComputedStyle(document.documentElement).getPropertyValue(name).trim()", name
    )


def test_dashboard_takes_its_accent_from_the_brand_colours(page: Page, servers: Servers):
    connect(page, servers, staff="Maya Goldberg")

    assert css_variable(page, "--accent") == HARBOR_PRIMARY
    assert css_variable(page, "--brand-line") == HARBOR_SECONDARY
    expect(page.locator(".monogram")).to_have_css("background-color", "rgb(31, 77, 92)")


def test_css_injection_in_brand_colours_is_ignored(page: Page, servers: Servers):
    servers.vcita.set_fault(
        "userinfo",
        json_merge={
            "brand_theme": {
                "colors": {
                    "primary": f"red;background:url({ATTACKER_URL})",
                    "secondary": "#0b6e4f",
                    "text": "#ffffff",
                }
            }
        },
    )
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    connect(page, servers)

    assert css_variable(page, "--accent") == DEFAULT_ACCENT  # the injected primary is dropped
    assert css_variable(page, "--brand-line") == "#0b6e4f"  # while the valid colour is used
    for element in ("html", "body", "main", ".business"):
        expect(page.locator(element).first).to_have_css("background-image", "none")
    brand_style = page.locator("head style").text_content()
    assert "url(" not in brand_style and "red" not in brand_style
    assert not [url for url in requested if url.startswith("http://127.0.0.1:9")]
    # The attempt is still shown, as text, in the raw JSON vcita returned.
    expect(page.locator("details.raw code")).to_contain_text("red;background:url(")


@pytest.mark.app_settings(VCITA_USE_PKCE="true")
def test_flow_trace_masks_every_secret_code_state_and_token(
    page: Page, context: BrowserContext, servers: Servers
):
    callbacks = []
    page.on("request", lambda request: CALLBACK.search(request.url) and callbacks.append(request))
    connect(page, servers)
    trace = page.locator("section.trace")
    expect(trace.get_by_role("heading", name="What just happened")).to_be_visible()
    for summary in trace.locator("summary").all():
        summary.click()  # open the three steps, as a developer would

    query = parse_qs(urlsplit(callbacks[0].url).query)
    token_request = servers.vcita.token_requests[0]["body"]
    secrets = {
        "client secret": CLIENT_SECRET,
        "state": query["state"][0],
        "code": query["code"][0],
        "PKCE verifier": token_request["code_verifier"],
        "access token": stored_access_token(context, servers),
    }
    assert token_request["code"] == secrets["code"]
    shown = trace.inner_text()
    html = page.content()
    for name, secret in secrets.items():
        assert [run for run in runs_of(secret) if run in html] == [], (
            f"part of the {name} is shown"
        )
        assert hidden(secret) in shown, f"the hidden {name} is missing from the trace"
    assert "GET http" in shown and "POST http" in shown  # the authorize URL, the token request
    assert shown.count("HTTP 200") >= 2  # the token and userinfo answers


def stored_access_token(context: BrowserContext, servers: Servers) -> str:
    """Read the access token the app stored, via this browser's session cookie."""
    cookie = next(c for c in context.cookies() if c["name"] == SESSION_COOKIE)
    session = decode_session(servers.app, cookie["value"])
    return stored(servers.app).connections.get(session[CONNECTION]).token.access_token


def test_flow_trace_is_off_outside_the_sandbox_by_default(page: Page, start_servers):
    servers = start_servers(app_settings={"VCITA_SANDBOX": "false"})
    connect(page, servers)
    expect(page.get_by_text("What just happened")).to_have_count(0)
    expect(page.get_by_text("Sandbox — not connected to vcita.com")).to_have_count(0)
    expect(page.get_by_role("heading", level=1)).to_have_text("Harbor Light Yoga")


# --- The Recent clients panel fills itself when vcita is slow to list the clients --------

SLOW_LIST = {"delay": 60}  # far longer than the budget a page gives the clients list
PANEL_FILLED_MS = 20_000  # the panel asks again after 0.5, 1, 2, 4 and 8 s


def test_the_recent_clients_panel_fills_itself_when_the_list_comes(page: Page, servers: Servers):
    servers.vcita.set_fault("clients", **SLOW_LIST)
    connect(page, servers, staff="Maya Goldberg")

    panel = page.locator("#recent-clients")
    expect(panel).to_contain_text("vcita is still listing your clients.")
    expect(panel).to_have_attribute("aria-busy", "true")
    expect(page.get_by_role("heading", level=1)).to_have_text("Harbor Light Yoga")
    servers.vcita.clear_faults()  # vcita answers the list at last

    expect(panel.locator("table.clients tbody tr")).to_have_count(5, timeout=PANEL_FILLED_MS)
    expect(panel).to_contain_text("Read from vcita's API with the stored token")
    expect(panel).not_to_have_attribute("aria-busy", "true")
    assert page.url == f"{servers.app_url}/dashboard"  # the page itself stayed


def test_without_javascript_the_panels_link_shows_the_clients(browser: Browser, servers: Servers):
    context = browser.new_context(java_script_enabled=False)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        servers.vcita.set_fault("clients", **SLOW_LIST)
        connect(page, servers, staff="Maya Goldberg")
        expect(page.locator("#recent-clients")).to_contain_text("vcita is still listing")
        servers.vcita.clear_faults()
        with servers.app.app_context():
            get_client_reads().wait()

        page.get_by_role("link", name="Show the clients vcita has listed").click()

        expect(page.locator("#recent-clients table.clients tbody tr")).to_have_count(5)
        page.get_by_role("link", name="Back to your dashboard").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Harbor Light Yoga")
    finally:
        context.close()
