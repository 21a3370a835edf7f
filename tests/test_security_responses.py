"""What leaves the server: redirects, headers, pages and cookies (RFC 9700 §4.1, §4.2, §4.11).

A code or state must not leak through a Referer, a cache, a third-party resource or
the address bar; a token must never reach the browser at all.
"""

import re
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from app.session_keys import CONNECTION

from .conftest import REDIRECT_URI, approved_callback
from .security_support import (
    EVIL,
    OPEN_REDIRECT_TARGETS,
    Links,
    decode_session,
    is_same_origin_path,
    query_of,
    stored_token,
)

ROOT = Path(__file__).resolve().parent.parent


def store(app):
    return app.extensions["connections"]


def csrf_token(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


# --- The redirect URI and the return target --------------------------------------------


@pytest.mark.parametrize("proxies", ["0", "1"], ids=["direct", "behind-a-trusted-proxy"])
@pytest.mark.parametrize(
    "headers",
    [
        {"Host": EVIL},
        {"X-Forwarded-Host": EVIL},
        {"X-Forwarded-Host": EVIL, "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"},
    ],
    ids=["host", "x-forwarded-host", "x-forwarded-host-and-proto"],
)
def test_redirect_uri_comes_from_config_even_when_the_request_names_another_host(
    make_app, person, vcita, proxies, headers
):
    app = make_app(TRUSTED_PROXY_COUNT=proxies)
    client = app.test_client()
    start = client.get("/connect", headers=headers)
    assert query_of(start.location)["redirect_uri"] == [REDIRECT_URI]
    assert EVIL not in start.location
    callback = person.approve(start.location)
    # The same browser, through the same proxy or DNS trick, comes back with its cookie.
    assert client.get(callback, headers=headers).status_code == 303
    assert vcita.token_requests[0]["body"]["redirect_uri"] == REDIRECT_URI


@pytest.mark.parametrize("target", OPEN_REDIRECT_TARGETS.values(), ids=list(OPEN_REDIRECT_TARGETS))
def test_next_that_leaves_the_site_falls_back_to_the_dashboard(client, person, vcita, target):
    start = client.get(f"/connect?next={quote(target, safe='')}")
    response = client.get(person.approve(start.location))
    assert response.status_code == 303
    assert response.location == "/dashboard"


def test_next_that_is_a_path_on_this_site_is_followed_after_the_callback(client, person, vcita):
    start = client.get(f"/connect?next={quote('/dashboard?x=1', safe='')}")
    response = client.get(person.approve(start.location))
    assert response.status_code == 303
    assert response.location == "/dashboard?x=1"


def test_next_on_the_callback_itself_is_ignored(client, person, vcita):
    callback = approved_callback(client, person)
    response = client.get(f"{callback}&next=//{EVIL}")
    assert response.status_code == 303
    assert response.location == "/dashboard"


# --- The callback's answer -------------------------------------------------------------


def test_callback_answers_with_no_referrer_and_no_store(client, person, vcita):
    callback = approved_callback(client, person)
    success = client.get(callback)
    failure = client.get(callback)  # the same URL again: a used state
    assert (success.status_code, failure.status_code) == (303, 400)
    for response in (success, failure):
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-store"


def test_callback_loads_no_third_party_resource(client, person, vcita):
    callback = approved_callback(client, person)
    for response in (client.get(callback), client.get(callback)):
        links = Links(response.text)
        assert links.foreign_urls() == []
        assert links.inline_scripts == 0
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_successful_callback_redirects_to_a_url_without_code_or_state(client, person, vcita):
    callback = approved_callback(client, person)
    code, state = query_of(callback)["code"][0], query_of(callback)["state"][0]
    response = client.get(callback)
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


def every_kind_of_response(app, client, connect) -> dict:
    """Return one response of each kind the app gives, from a connected browser."""
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
    responses["callback"] = connect()
    responses["dashboard"] = client.get("/dashboard")
    # The dashboard's Recent clients panel alone: fetched by its script, or as a page.
    responses["clients-panel"] = client.get(
        "/dashboard/recent-clients", headers={"Sec-Fetch-Dest": "empty"}
    )
    responses["clients-panel-page"] = client.get("/dashboard/recent-clients")
    responses["landing-connected"] = client.get("/")
    responses["disconnect"] = client.post(
        "/disconnect", data={"csrf_token": csrf_token(responses["dashboard"].text)}
    )
    responses["landing-flash"] = client.get("/")
    return responses


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


def test_every_page_has_a_csp_without_inline_script_and_no_framing(app, client, connect):
    """No page runs inline script; only vcita's pages frame the app, and only where shown."""
    for kind, response in every_kind_of_response(app, client, connect).items():
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


def test_all_assets_are_served_by_the_app_itself(app, client, connect):
    pages = every_kind_of_response(app, client, connect)
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
def test_tokens_never_reach_the_browser(make_app, person, vcita, trace):
    app = make_app(SHOW_FLOW_TRACE=trace)
    client = app.test_client()
    responses = [client.get("/"), client.get("/connect")]
    callback = person.approve(responses[-1].location)
    responses.append(client.get(callback))
    token = stored_token(app, client)
    responses += [client.get("/dashboard"), client.get("/")]
    responses.append(client.get("/dashboard/recent-clients", headers={"Sec-Fetch-Dest": "empty"}))
    responses.append(client.get("/dashboard"))
    if trace == "true":
        assert "What just happened" in responses[-1].text  # the trace was really shown
    responses.append(
        client.post("/disconnect", data={"csrf_token": csrf_token(responses[-1].text)})
    )
    responses.append(client.get("/"))

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


def test_each_request_gets_its_own_csp_nonce_even_in_one_app_context(app, client, connect):
    # pytest-flask keeps one context pushed around the whole test, as a command might.
    connect()
    policies = [client.get("/dashboard").headers["Content-Security-Policy"] for _ in range(2)]

    nonces = [re.search(r"'nonce-([^']+)'", policy).group(1) for policy in policies]
    assert nonces[0] != nonces[1]
