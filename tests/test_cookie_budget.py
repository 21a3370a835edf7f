"""The session cookie always fits a browser, and the flow the person started always stays.

Browsers drop a cookie over 4096 bytes (RFC 6265 §6.1) silently, and every pending flow
with it. A hostile page can make a victim's browser open many /connect links with long
return paths; non-ASCII characters grow six- to twelve-fold in the cookie. Whatever is
opened, the cookie stays under the limit by its size in bytes, the oldest flows go
first, and the newest flow is never dropped (at most its return path is).
"""

import random

import pytest
from flask import session
from flask.sessions import SessionInterface
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.connect import flows

from .security_support import state_of

BROWSER_COOKIE_LIMIT = 4096


def random_characters(first: int, last: int, count: int, seed: int) -> str:
    """Characters the session's compression cannot shrink, as an attacker would pick."""
    chosen = random.Random(seed)
    return "".join(chr(chosen.randint(first, last)) for _ in range(count))


# 256 characters each: the old limit counted characters, not the bytes they become.
LONGEST_CJK_NEXT = "/" + random_characters(0x4E00, 0x9FFF, 255, seed=0)
HOSTILE_RANGES = {
    "CJK": (0x4E00, 0x9FFF),
    "emoji": (0x1F300, 0x1F5FF),  # escaped as a surrogate pair: 12 bytes each
    "Latin-1": (0xC0, 0xFF),
}


def set_cookie_sizes(response) -> list[int]:
    return [len(header) for header in response.headers.getlist("Set-Cookie")]


@pytest.mark.parametrize("characters", HOSTILE_RANGES.values(), ids=HOSTILE_RANGES.keys())
def test_long_non_ascii_next_links_never_push_out_the_flow_the_person_started(
    browser, person, vcita, characters
):
    sizes = []
    for link in range(10):  # what a hostile page makes the victim's browser open
        hostile_next = "/" + random_characters(*characters, count=255, seed=link)
        opened = browser.get("/connect", query_string={"next": hostile_next})
        assert opened.status_code == 302
        sizes += set_cookie_sizes(opened)
    own = browser.get("/connect")
    sizes += set_cookie_sizes(own)
    callback = browser.get(person.approve(own.location))
    sizes += set_cookie_sizes(callback)

    assert callback.status_code == 303
    assert callback.location == "/dashboard"
    assert max(sizes) < BROWSER_COOKIE_LIMIT
    assert "Connected to vcita" in browser.dashboard().text


def test_a_next_that_cannot_be_kept_is_dropped_not_the_flow(browser):
    response = browser.get("/connect", query_string={"next": LONGEST_CJK_NEXT})

    assert response.status_code == 302
    flow = browser.pending_flows()[state_of(response.location)]
    assert flow["next_url"] is None


def test_a_short_non_ascii_next_is_kept(browser):
    response = browser.get("/connect", query_string={"next": "/café/漢字"})

    flow = browser.pending_flows()[state_of(response.location)]
    assert flow["next_url"] == "/café/漢字"


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    nexts=st.lists(
        st.one_of(
            st.text(st.characters(codec="utf-8"), max_size=300),
            st.integers(0, 2**32).map(lambda seed: random_characters(0x4E00, 0x9FFF, 255, seed)),
        ).map(lambda text: f"/{text}"),
        min_size=1,
        max_size=9,
    ),
    pkce=st.booleans(),
)
def test_the_cookie_fits_and_keeps_the_newest_flow_whatever_links_were_opened(
    settings_for_app, nexts, pkce
):
    app = settings_for_app(pkce)
    browser = app.test_client()
    started = []
    for next_url in nexts:
        response = browser.get("/connect", query_string={"next": next_url})
        assert response.status_code == 302
        assert max(set_cookie_sizes(response), default=0) < BROWSER_COOKIE_LIMIT
        started.append(state_of(response.location))

    pending = browser.pending_flows()
    assert started[-1] in pending  # the newest flow is never dropped
    assert len(pending) <= flows.MAX_PENDING_FLOWS
    # Only the oldest flows go: what is kept is the newest run of what was started.
    assert set(pending) == set(started[-len(pending) :])


@pytest.fixture
def settings_for_app(make_app):
    """One app per PKCE setting, shared by every example (like one server for every browser)."""
    apps = {}

    def app_with(pkce: bool):
        if pkce not in apps:
            apps[pkce] = make_app(VCITA_USE_PKCE=str(pkce).lower())
        return apps[pkce]

    return app_with


def test_only_a_session_kept_in_the_cookie_is_measured_against_the_cookie_limit(app):
    with app.test_request_context("/"):
        session["filler"] = random_characters(0x4E00, 0x9FFF, 1000, seed=1)
        assert flows._session_cookie_bytes() > flows.MAX_SESSION_COOKIE_BYTES

        app.session_interface = SessionInterface()  # a session kept on the server
        assert flows._session_cookie_bytes() == 0  # the browser holds its id alone
