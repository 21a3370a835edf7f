"""What leaves the server: redirects, headers, pages and cookies (RFC 9700 §4.1, §4.2, §4.11).

A code or state must not leak through a Referer, a cache, a third-party resource or
the address bar; a token must never reach the browser at all.
"""

import re
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from app.session_keys import CONNECTION

from .conftest import REDIRECT_URI
from .security_support import (
    EVIL,
    OPEN_REDIRECT_TARGETS,
    Links,
    decode_session,
    is_same_origin_path,
    query_of,
)

ROOT = Path(__file__).resolve().parent.parent


# --- The redirect URI and the return target --------------------------------------------


@pytest.mark.parametrize("proxies", ["0", "1"], ids=["direct", "behind-a-trusted-proxy"])
@pytest.mark.parametrize(
    "headers",
    [
        {"Host": EVIL},
        {"X-Forwarded-Host": EVIL},
        {"X-Forwarded-Host": EVIL, "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"},
        {"X-Forwarded-Host": f"{EVIL}:443", "X-Forwarded-Proto": "https"},
    ],
    ids=["host", "x-forwarded-host", "x-forwarded-host-and-proto", "x-forwarded-host-with-port"],
)
def test_redirect_uri_comes_from_config_even_when_the_request_names_another_host(
    make_app, new_browser, vcita, proxies, headers
):
    app = make_app(TRUSTED_PROXY_COUNT=proxies)
    browser = new_browser(app)
    start = browser.get("/connect", headers=headers)
    assert query_of(start.location)["redirect_uri"] == [REDIRECT_URI]
    assert EVIL not in start.location
    callback = browser.person.approve(start.location)
    # The same browser, through the same proxy or DNS trick, comes back with its cookie.
    assert browser.get(callback, headers=headers).status_code == 303
    assert vcita.token_requests[0]["body"]["redirect_uri"] == REDIRECT_URI


@pytest.mark.parametrize("target", OPEN_REDIRECT_TARGETS.values(), ids=list(OPEN_REDIRECT_TARGETS))
def test_next_that_leaves_the_site_falls_back_to_the_dashboard(browser, person, vcita, target):
    start = browser.get(f"/connect?next={quote(target, safe='')}")
    response = browser.get(person.approve(start.location))
    assert response.status_code == 303
    assert response.location == "/dashboard"


def test_next_that_is_a_path_on_this_site_is_followed_after_the_callback(browser, person, vcita):
    start = browser.get(f"/connect?next={quote('/dashboard?x=1', safe='')}")
    response = browser.get(person.approve(start.location))
    assert response.status_code == 303
    assert response.location == "/dashboard?x=1"


def test_next_on_the_callback_itself_is_ignored(browser, vcita):
    callback = browser.approve()
    response = browser.get(f"{callback}&next=//{EVIL}")
    assert response.status_code == 303
    assert response.location == "/dashboard"


# --- The callback's answer -------------------------------------------------------------


def test_callback_answers_with_no_referrer_and_no_store(browser, vcita):
    callback = browser.approve()
    success = browser.get(callback)
    failure = browser.get(callback)  # the same URL again: a used state
    assert (success.status_code, failure.status_code) == (303, 400)
    for response in (success, failure):
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-store"


def test_callback_loads_no_third_party_resource(browser, vcita):
    callback = browser.approve()
    for response in (browser.get(callback), browser.get(callback)):
        links = Links(response.text)
        assert links.foreign_urls() == []
        assert links.inline_scripts == 0
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_successful_callback_redirects_to_a_url_without_code_or_state(browser, vcita):
    callback = browser.approve()
    code, state = query_of(callback)["code"][0], query_of(callback)["state"][0]
    response = browser.get(callback)
    assert response.status_code == 303
    assert urlsplit(response.location).query == ""
    assert code not in response.location
    assert state not in response.location
    assert code not in response.text
    assert state not in response.text


# --- Every page ------------------------------------------------------------------------


def read_and_closed(response):
    """Read a streamed file response and close its file (no ResourceWarning)."""
    response.get_data()
    response.close()
    return response


def every_kind_of_response(app, browser) -> dict:
    """Return one response of each kind the app gives, from a browser that connects."""
    stranger = app.test_client()
    responses = {
        "landing": stranger.get("/"),
        "connect": stranger.get("/connect"),
        "invalid-callback": stranger.get("/callback?code=x&state=y"),
        "dashboard-redirect": stranger.get("/dashboard"),
        "not-found": stranger.get("/missing"),
        "method-not-allowed": stranger.get("/disconnect"),
        "csrf-refused": stranger.post("/disconnect"),
        "handoff-refused": stranger.post("/handoff"),
        "stylesheet": read_and_closed(stranger.get("/static/style.css")),
    }
    responses["callback"] = browser.connect()
    responses["dashboard"] = browser.dashboard()
    # The dashboard's Recent clients panel alone: fetched by its script, or as a page.
    responses["clients-panel"] = browser.get(
        panel_of(browser), headers={"Sec-Fetch-Dest": "empty"}
    )
    responses["clients-panel-page"] = browser.get(panel_of(browser))
    responses["landing-connected"] = browser.get("/")
    responses["disconnect"] = browser.disconnect(page=responses["dashboard"].text)
    responses["landing-flash"] = browser.get("/")
    return responses


def panel_of(browser) -> str:
    """Return the Recent clients panel's address for the connection the session shows."""
    connection = browser.connection()
    return (
        f"/dashboard/recent-clients?business_uid={connection.business_uid}"
        f"&staff_uid={connection.staff_uid}"
    )


def directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for directive in policy.split(";"):
        name, *values = directive.split()
        parsed[name] = values
    return parsed


# The pages vcita shows in its frame, and the answers to their forms and scripts.
FRAMED_KINDS = {
    "landing",
    "landing-connected",
    "landing-flash",
    "dashboard",
    "dashboard-redirect",
    "clients-panel",
    "clients-panel-page",
    "csrf-refused",
    "disconnect",
    "handoff-refused",
}


def test_every_page_has_a_csp_without_inline_script_and_no_framing(app, browser):
    """No page runs inline script; only vcita's pages frame the app, and only where shown."""
    for kind, response in every_kind_of_response(app, browser).items():
        policy = directives(response.headers["Content-Security-Policy"])
        script_sources = policy.get("script-src", policy["default-src"])
        assert script_sources == ["'self'"], kind
        if kind in FRAMED_KINDS:
            assert policy["frame-ancestors"] == ["https://app.vcita.com"], kind
            assert "X-Frame-Options" not in response.headers, kind
        else:
            assert policy["frame-ancestors"] == ["'none'"], kind
            assert response.headers["X-Frame-Options"] == "DENY", kind
        assert policy["object-src"] == ["'none'"], kind
        assert response.headers["X-Content-Type-Options"] == "nosniff", kind
        if response.mimetype == "text/html":
            links = Links(response.text)
            assert links.inline_scripts == 0, kind
            assert links.event_handlers == [], kind
            assert "javascript:" not in response.text, kind


def test_all_assets_are_served_by_the_app_itself(app, browser):
    pages = every_kind_of_response(app, browser)
    assets = set()
    for kind, response in pages.items():
        if response.mimetype == "text/html":
            loaded = Links(response.text).loaded_urls()
            assert [url for url in loaded if not is_same_origin_path(url)] == [], kind
            assets |= set(loaded)
    assert assets, "the pages load at least their stylesheet and icon"
    for asset in assets:
        assert asset.startswith("/static/")
        assert read_and_closed(app.test_client().get(asset)).status_code == 200
    for stylesheet in (ROOT / "static").glob("*.css"):
        css = stylesheet.read_text()
        assert "@import" not in css
        for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", css):
            assert url.startswith(("data:", "/", "#")) and not url.startswith("//"), url


@pytest.mark.parametrize("trace", ["false", "true"], ids=["plain", "with-flow-trace"])
def test_tokens_never_reach_the_browser(make_app, new_browser, vcita, trace):
    app = make_app(SHOW_FLOW_TRACE=trace)
    browser = new_browser(app)
    responses = [browser.get("/"), browser.get("/connect")]
    callback = browser.person.approve(responses[-1].location)
    responses.append(browser.get(callback))
    token = browser.connection().token.access_token
    responses += [browser.dashboard(), browser.get("/")]
    responses.append(browser.get(panel_of(browser), headers={"Sec-Fetch-Dest": "empty"}))
    responses.append(browser.dashboard())
    if trace == "true":
        assert "What just happened" in responses[-1].text  # the trace was really shown
    responses.append(browser.disconnect(page=responses[-1].text))
    responses.append(browser.get("/"))

    sessions = []
    for response in responses:
        assert token not in response.get_data(as_text=True)
        for name, value in response.headers.items():
            assert token not in value, name
        for cookie in response.headers.getlist("Set-Cookie"):
            value = cookie.split("=", 1)[1].split(";", 1)[0]
            if value:
                sessions.append(decode_session(app, value))
    assert any(CONNECTION in session for session in sessions)  # the cookies were read
    for session in sessions:
        assert token not in repr(session)


def test_each_request_gets_its_own_csp_nonce_even_in_one_app_context(app, browser):
    # pytest-flask keeps one context pushed around the whole test, as a command might.
    browser.connect()
    policies = [browser.dashboard().headers["Content-Security-Policy"] for _ in range(2)]

    nonces = [re.search(r"'nonce-([^']+)'", policy).group(1) for policy in policies]
    assert nonces[0] != nonces[1]
