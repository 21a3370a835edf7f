"""Opened from vcita's App Market: launch parameters, white-label hosts, vcita's frame.

vcita appends unsigned context to the landing page's URL; these tests hold the app to
reading it as hints. Inside vcita's frame the session lives in a partitioned cookie,
and a popup hands the connection back with a one-time code that only the frame's own
session redeems: the attempts to bind a connection to someone else's session fail.
The browser proof (a real Chromium with third-party cookies blocked) is in
tests/browser/test_app_market.py.
"""

import logging
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app import session_keys
from app.app_market import handoffs
from app.storage.connections import ConnectionStore
from app.storage.database import StoreUnavailable
from app.storage.sealer import Sealer
from app.vcita import allowed_brand_host

from .conftest import Browser, csrf_token_on, only_connection, stored
from .security_support import OPEN_REDIRECT_TARGETS

HARBOR = "7c6dc1589f078b66"  # Harbor Light Yoga: Maya Goldberg, Leo Martins
CEDAR = "9da2a88d42e6ff59"  # Cedar & Pine Law Office: Daniel O'Brien, Priya Raman
MAYA, LEO = "1beb795be66146bb", "41555f2fa81ceb05"
BRAND_HOSTS = "*.myclients.me studio.partner.example"
FRAMED = {"Sec-Fetch-Dest": "iframe"}  # what Chromium sends when a frame loads a page


@pytest.fixture
def branded_app(make_app):
    return make_app(VCITA_BRAND_HOSTS=BRAND_HOSTS)


def popup_url_of(page: str) -> str:
    match = re.search(r'data-popup-url="([^"]+)"', page)
    assert match, "the framed landing page opens Connect in a popup"
    return match.group(1).replace("&amp;", "&")


# --- 1. The launch page: hints, never proof ---------------------------------------------


def test_a_launch_naming_a_business_shows_a_stranger_nothing_of_it(browser):
    response = browser.get(f"/?business_uid={HARBOR}&staff_uid={MAYA}&language=en")
    assert response.status_code == 200
    assert "Connect vcita" in response.text
    assert "Harbor Light Yoga" not in response.text
    assert browser.dashboard().status_code == 302  # and no dashboard either


def test_a_browser_connected_to_the_launched_business_goes_straight_to_its_dashboard(browser):
    assert browser.connect(staff="Maya Goldberg").status_code == 303
    response = browser.get(f"/?business_uid={HARBOR}&staff_uid={MAYA}")
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"


def test_a_launch_chooses_among_the_businesses_this_browser_connected(browser):
    assert browser.connect(staff="Maya Goldberg").status_code == 303
    assert browser.connect(staff="Daniel O'Brien").status_code == 303  # the newest: Cedar & Pine
    assert "Cedar &amp; Pine" in browser.dashboard().text

    assert browser.get(f"/?business_uid={HARBOR}").headers["Location"] == "/dashboard"
    dashboard = browser.dashboard().text
    assert "Harbor Light Yoga" in dashboard
    assert "vcita opened this app for another business" not in dashboard


def test_a_launch_prefers_the_staff_members_own_connection(browser):
    assert browser.connect(staff="Maya Goldberg").status_code == 303
    assert browser.connect(staff="Leo Martins").status_code == 303
    browser.get(f"/?business_uid={HARBOR}&staff_uid={MAYA}")
    assert MAYA in browser.dashboard().text


def test_a_launch_finds_this_browsers_connection_without_decrypting_a_token(browser, monkeypatch):
    assert browser.connect(staff="Maya Goldberg").status_code == 303
    assert browser.connect(staff="Daniel O'Brien").status_code == 303
    opened = []
    monkeypatch.setattr(Sealer, "open_and_reseal", lambda sealer, text: opened.append(text))

    response = browser.get(f"/?business_uid={HARBOR}&staff_uid={MAYA}")

    assert response.status_code == 302 and response.headers["Location"] == "/dashboard"
    assert opened == []  # whose a connection is, the plaintext columns say


def test_a_browser_connected_to_another_business_is_told_so_and_sees_none_of_its_data(browser):
    assert browser.connect(staff="Maya Goldberg").status_code == 303
    response = browser.get(f"/?business_uid={CEDAR}")
    assert response.status_code == 200
    assert "connected to a different vcita business" in response.text
    assert "Harbor Light Yoga" not in response.text
    assert "Go to your dashboard" not in response.text
    assert "Connect vcita" in response.text


@pytest.mark.parametrize(
    "query",
    [
        "business_uid=abc%0Adef",  # a control character
        "business_uid=" + "a" * 65,  # over-long
        "staff_uid=%3Cscript%3E",
        "language=xx",  # not an App Market locale
        "language=en%00",
        "brand_host=" + "a" * 254,
        "staff_role=owner%0D%0A2026-11-28%20INFO%20forged",
        "business_uid=a&business_uid=b",  # repeated
    ],
)
def test_a_malformed_launch_parameter_is_ignored_with_a_log_line(browser, caplog, query):
    caplog.set_level(logging.INFO, logger="app.app_market.launch")
    response = browser.get(f"/?{query}")
    assert response.status_code == 200
    name = query.partition("=")[0]
    assert f"Ignored the launch parameter {name}" in caplog.text
    assert "forged" not in caplog.text  # the value itself is never logged


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["business_uid", "staff_uid", "staff_role", "language", "brand_host", "package"]
            ),
            st.text(max_size=300),
        ),
        max_size=6,
    )
)
def test_any_launch_query_gives_the_landing_page_never_an_error(branded_app, launch):
    browser = branded_app.test_client()
    response = browser.get("/", query_string=launch)
    assert response.status_code == 200
    connect = browser.get("/connect", query_string=launch)
    assert connect.status_code == 302


def test_the_dashboard_says_when_the_approved_business_is_not_the_launched_one(browser):
    browser.get(f"/?business_uid={CEDAR}&staff_uid=6df31cfb24107721")
    assert (
        browser.connect(staff="Maya Goldberg").status_code == 303
    )  # approved with Harbor Light Yoga instead
    dashboard = browser.dashboard().text
    assert "vcita opened this app for another business" in dashboard
    assert CEDAR in dashboard


def test_the_dashboard_says_nothing_when_the_launched_business_was_approved(browser):
    browser.get(f"/?business_uid={HARBOR}")
    assert browser.connect(staff="Maya Goldberg").status_code == 303
    assert "vcita opened this app for another business" not in browser.dashboard().text


# --- 2. White-label hosts ---------------------------------------------------------------

# The `next=` tests' open-redirect payloads, and the ways a host check is fooled.
HOSTILE_BRAND_HOSTS = [
    *OPEN_REDIRECT_TARGETS.values(),
    "evil.example",
    "//evil.example",
    "https://evil.example",
    "evil.com#.myclients.me",
    "evil.com?.myclients.me",
    "evil.com/.myclients.me",
    "evil.com\\.myclients.me",
    "myclients.me.evil.com",
    "a.myclients.me.evil.com",
    "user@a.myclients.me",
    "a.myclients.me@evil.com",
    "a.myclients.me:8443",
    "a.myclients.me.",
    "a.b.myclients.me",  # two labels under a one-label pattern
    ".myclients.me",
    "myclients.me",
    "\u0430.myclients.me",  # Cyrillic a
    "a.myclients.m\u0435",  # Cyrillic e
    "xn--80a.myclients.me.evil.com",
    "a.myclients.me%2F@evil.com",
    "a.myclients.me\t",
    " a.myclients.me",
    "a.myclients.me\x00.evil.com",
    "-a.myclients.me",
    "127.0.0.1",
    "[::1]",
    "",
]


@pytest.mark.parametrize("brand_host", HOSTILE_BRAND_HOSTS)
def test_a_brand_host_off_the_list_falls_back_to_the_configured_consent_page(
    branded_app, vcita_server, caplog, brand_host
):
    caplog.set_level(logging.INFO, logger="app")
    response = branded_app.test_client().get("/connect", query_string={"brand_host": brand_host})
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == vcita_server.url
    if brand_host:
        assert "Ignored a brand_host" in caplog.text


@pytest.mark.parametrize(
    ("brand_host", "expected"),
    [
        ("3e2929cf6c34632e.myclients.me", "3e2929cf6c34632e.myclients.me"),
        ("ACME.MyClients.ME", "acme.myclients.me"),  # DNS names are case-insensitive
        ("studio.partner.example", "studio.partner.example"),
        ("xn--80a.myclients.me", "xn--80a.myclients.me"),  # an IDN, as DNS spells it
    ],
)
def test_a_brand_host_on_the_list_gets_its_own_consent_page(branded_app, brand_host, expected):
    response = branded_app.test_client().get("/connect", query_string={"brand_host": brand_host})
    location = urlsplit(response.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == (
        "https",
        expected,
        "/app/oauth/authorize",
    )
    assert parse_qs(location.query)["client_id"] == ["test-client"]


def test_the_brand_consent_page_comes_from_the_template_and_the_rest_stays(
    make_app, new_browser, vcita, vcita_server
):
    port = urlsplit(vcita_server.url).port
    app = make_app(
        VCITA_BRAND_HOSTS="*.myclients.localhost",
        VCITA_BRAND_AUTHORIZE_URL=f"http://{{brand_host}}:{port}/app/oauth/authorize",
    )
    browser = new_browser(app)
    start = browser.get("/connect?brand_host=acme.myclients.localhost")
    location = start.headers["Location"]
    assert location.startswith(f"http://acme.myclients.localhost:{port}/app/oauth/authorize?")
    # The token and userinfo endpoints stay the configured ones.
    sandbox_url = location.replace("acme.myclients.localhost", "127.0.0.1")
    callback = browser.person.approve(sandbox_url)
    assert browser.get(callback).status_code == 303
    assert len(vcita.token_requests) == 1
    assert len(vcita.userinfo_requests) == 1


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=80),
        st.builds(
            lambda prefix, suffix: prefix + suffix,
            st.text(max_size=20),
            st.sampled_from([".myclients.me", "myclients.me", ".partner.example", ""]),
        ),
        st.sampled_from(HOSTILE_BRAND_HOSTS),
    )
)
@example("studio.partner.example")
def test_any_brand_host_is_refused_or_is_exactly_a_listed_host(value):
    patterns = ("*.myclients.me", "studio.partner.example")
    template = "https://{brand_host}/app/oauth/authorize"
    host = allowed_brand_host(value, patterns)
    if host is None:
        return
    url = urlsplit(template.replace("{brand_host}", host))
    assert url.netloc == url.hostname == host
    assert host == "studio.partner.example" or (
        host.endswith(".myclients.me") and "." not in host.removesuffix(".myclients.me")
    )


# --- 3. Inside vcita's frame ------------------------------------------------------------


def session_cookie_header(response) -> str:
    (header,) = [value for value in response.headers.getlist("Set-Cookie")]
    return header


def test_inside_a_frame_the_session_is_a_partitioned_cookie(browser):
    header = session_cookie_header(browser.get("/", headers=FRAMED))
    assert header.startswith("vcita_connect_framed=")
    assert "; Secure" in header
    assert "; SameSite=None" in header
    assert "; Partitioned" in header
    assert "; HttpOnly" in header


def test_as_a_page_of_its_own_the_session_stays_lax_and_unpartitioned(browser):
    browser.get("/connect", headers={"Sec-Fetch-Dest": "document"})
    header = session_cookie_header(browser.get("/connect", headers={"Sec-Fetch-Dest": "document"}))
    assert header.startswith("vcita_connect=")
    assert "; SameSite=Lax" in header
    assert "Partitioned" not in header


def test_a_frames_script_request_uses_the_frames_cookie(app, browser):
    page = browser.get("/", headers=FRAMED)
    # fetch() from the frame says "empty", and carries only the partitioned cookie.
    answer = browser.post(
        "/handoff", data={"code": "x", "csrf_token": script_csrf_token(page.text)}
    )
    assert answer.status_code == 403  # the CSRF token matched: the code did not
    assert answer.json == {"connected": False}


def script_csrf_token(page: str) -> str:
    """Return the CSRF token the framed landing page hands its script (not a form's)."""
    return re.search(r'data-csrf="([^"]+)"', page).group(1)


@pytest.mark.parametrize(
    ("path", "framed"),
    [
        ("/", True),
        ("/dashboard", True),
        ("/dashboard/recent-clients", True),
        ("/connect", False),
        ("/callback", False),
    ],
)
def test_only_the_pages_shown_in_vcita_may_be_framed_and_only_by_its_origins(
    make_app, path, framed
):
    app = make_app(VCITA_FRAME_ANCESTORS="https://app.vcita.com https://*.myclients.me")
    response = app.test_client().get(path, headers=FRAMED)
    policy = response.headers["Content-Security-Policy"]
    if framed:
        assert policy.endswith("frame-ancestors https://app.vcita.com https://*.myclients.me")
        assert "X-Frame-Options" not in response.headers
    else:
        assert policy.endswith("frame-ancestors 'none'")
        assert response.headers["X-Frame-Options"] == "DENY"


def test_the_default_frame_ancestors_are_vcita_and_the_exact_brand_hosts(branded_app):
    # *.myclients.me is on VCITA_BRAND_HOSTS too: a wildcard frames the app only when
    # VCITA_FRAME_ANCESTORS lists it (tests/test_config.py).
    policy = branded_app.test_client().get("/").headers["Content-Security-Policy"]
    assert policy.endswith("frame-ancestors https://app.vcita.com https://studio.partner.example")


# --- The popup's handoff: only the frame's own session redeems it ------------------------


def code_on(page) -> str:
    """Return the handoff code the popup's last page carries."""
    match = re.search(r'data-code="([^"]+)"', page.text)
    assert match, "the popup's last page carries a handoff code"
    return match.group(1)


class Frame:
    """vcita's frame in one browser: its partitioned session, and the popup it opens."""

    def __init__(self, browser: Browser):
        self.browser = browser  # its cookies are the frame's partition
        landing = self.browser.get("/", headers=FRAMED)
        self.popup_url = popup_url_of(landing.text)
        self.csrf = script_csrf_token(landing.text)

    def connect_in_popup(self, popup=None, popup_url=None, staff="Maya Goldberg") -> str:
        """Run the flow in a popup window (a top-level browser); return its handoff code."""
        popup = self.approve_in_popup(popup, popup_url, staff)
        return code_on(popup.get("/connected"))

    def approve_in_popup(self, popup=None, popup_url=None, staff="Maya Goldberg"):
        """Run the flow in a popup up to vcita's redirect back; return the popup."""
        popup = popup or self.browser.application.test_client()
        start = popup.get(popup_url or self.popup_url, headers={"Sec-Fetch-Dest": "document"})
        callback = self.browser.person.approve(start.headers["Location"], staff=staff)
        answer = popup.get(callback)
        assert answer.headers["Location"] == "/connected"
        return popup

    def redeem(self, code: str, csrf: str | None = None):
        return self.browser.post(
            "/handoff", data={"code": code, "csrf_token": csrf or self.csrf}, headers=FRAMED
        )


def test_a_popup_connects_the_frame_it_was_opened_from(browser):
    frame = Frame(browser)
    code = frame.connect_in_popup()
    answer = frame.redeem(code)
    assert answer.status_code == 200
    assert answer.json == {"connected": True, "location": "/dashboard"}
    assert "Harbor Light Yoga" in frame.browser.get("/dashboard", headers=FRAMED).text


def test_the_frames_first_dashboard_shows_what_the_popups_callback_read(browser, vcita):
    frame = Frame(browser)
    frame.redeem(frame.connect_in_popup())

    page = frame.browser.get("/dashboard", headers=FRAMED).text

    assert "Harbor Light Yoga" in page
    assert len(vcita.userinfo_requests) == 1  # the callback's: vcita is asked once per connect
    assert len(vcita.recorded_requests("clients")) == 1


def test_the_popups_pages_keep_their_opener_and_no_other_page_does(app, browser, person):
    frame = Frame(browser)
    popup = app.test_client()
    start = popup.get(frame.popup_url)
    assert start.headers["Cross-Origin-Opener-Policy"] == "unsafe-none"
    callback = popup.get(person.approve(start.headers["Location"]))
    assert callback.headers["Cross-Origin-Opener-Policy"] == "unsafe-none"
    assert popup.get("/connected").headers["Cross-Origin-Opener-Policy"] == "unsafe-none"
    for path in ("/", "/connect", "/dashboard"):
        assert app.test_client().get(path).headers["Cross-Origin-Opener-Policy"] == "same-origin"


def test_a_handoff_code_is_redeemed_once(browser):
    frame = Frame(browser)
    code = frame.connect_in_popup()
    with frame.browser.session_transaction() as session:
        secret = session[session_keys.HANDOFF_SECRET]
    assert frame.redeem(code).status_code == 200
    # The frame's session holding the same secret again (a cookie copied before): the
    # code itself is spent.
    with frame.browser.session_transaction() as session:
        session[session_keys.HANDOFF_SECRET] = secret
    dashboard = frame.browser.get("/dashboard", headers=FRAMED).text
    again = frame.redeem(code, csrf=csrf_token_on(dashboard))
    assert again.status_code == 403
    assert again.json == {"connected": False}  # refused by the handoff, not by CSRF


def test_another_browser_cannot_redeem_a_stolen_code(app, browser, new_browser):
    frame = Frame(browser)
    code = frame.connect_in_popup()
    thief = Frame(new_browser(app))  # its own frame session, its own secret
    assert thief.redeem(code).status_code == 403
    assert thief.browser.get("/dashboard", headers=FRAMED).status_code == 302
    assert frame.redeem(code).status_code == 200  # the refused attempt spent nothing


def test_a_session_without_a_secret_cannot_redeem_a_code(app, browser, new_browser):
    code = Frame(browser).connect_in_popup()
    # A browser of its own, connected as a page of its own: a CSRF token, but no secret.
    stranger = new_browser(app)
    assert stranger.connect(staff="Leo Martins").status_code == 303
    answer = stranger.post("/handoff", data={"code": code, "csrf_token": stranger.csrf_token()})
    assert answer.status_code == 403


def test_a_link_that_makes_a_victim_connect_with_an_attackers_binding_hands_over_nothing(
    app, browser, new_browser
):
    attacker = Frame(browser)
    # The victim opens the attacker's popup URL in their own browser and connects.
    victim_browser = app.test_client()
    victim = Frame(new_browser(app))
    code = victim.connect_in_popup(popup=victim_browser, popup_url=attacker.popup_url)
    # The code reaches only the victim's own window (postMessage to the app's origin); the
    # attacker has no code to post, and guessing one redeems nothing.
    for guess in ("", "x" * 43, attacker.popup_url.rpartition("=")[2]):
        assert attacker.redeem(guess).status_code == 403
    assert attacker.browser.get("/dashboard", headers=FRAMED).status_code == 302
    assert code  # the victim's own window holds it


def test_a_code_is_never_in_a_url_or_a_log_line(app, browser, person, caplog):
    caplog.set_level(logging.INFO)
    frame = Frame(browser)
    popup = app.test_client()
    start = popup.get(frame.popup_url)
    callback = popup.get(person.approve(start.headers["Location"]))
    page = popup.get("/connected")
    code = re.search(r'data-code="([^"]+)"', page.text).group(1)
    assert code not in callback.headers["Location"]
    assert code not in caplog.text
    assert code not in popup.get("/connected").text  # shown once
    frame.redeem(code)
    assert code not in caplog.text


def test_a_handoff_needs_the_frames_csrf_token(browser):
    frame = Frame(browser)
    code = frame.connect_in_popup()
    assert frame.redeem(code, csrf="forged").status_code == 403
    assert frame.redeem(code).status_code == 200


def test_an_expired_code_redeems_nothing(browser, monkeypatch):
    frame = Frame(browser)
    monkeypatch.setattr(handoffs, "CODE_LIFETIME", handoffs.CODE_LIFETIME * -1)
    code = frame.connect_in_popup()
    assert frame.redeem(code).status_code == 403


def test_a_malformed_binding_gives_an_ordinary_flow(browser, person):
    start = browser.get("/connect?handoff=not-a-binding")
    callback = browser.get(person.approve(start.headers["Location"]))
    assert callback.headers["Location"] == "/dashboard"


def test_connected_without_a_connection_goes_to_the_landing_page(browser):
    assert browser.get("/connected").headers["Location"] == "/"


# --- /connected tells a page of another site nothing (issue 16) --------------------------


def test_connected_keeps_its_opener_only_when_it_hands_over_a_code(browser):
    popup = Frame(browser).approve_in_popup()
    handing_over = popup.get("/connected")
    assert handing_over.status_code == 200
    assert code_on(handing_over)
    assert handing_over.headers["Cross-Origin-Opener-Policy"] == "unsafe-none"
    # Connected, nothing (more) to hand over: the page, cut off from its opener.
    nothing_to_hand = popup.get("/connected")
    assert nothing_to_hand.status_code == 200
    assert "data-code" not in nothing_to_hand.text
    assert nothing_to_hand.headers["Cross-Origin-Opener-Policy"] == "same-origin"


def test_connected_gives_a_browser_with_or_without_a_connection_the_same_opener_policy(browser):
    # A page of another site that opens /connected reads `w.closed`: the policy decides it.
    not_connected = browser.get("/connected")
    assert not_connected.status_code == 302
    assert not_connected.headers["Location"] == "/"
    assert browser.connect(staff="Maya Goldberg").status_code == 303
    connected = browser.get("/connected")
    assert connected.status_code == 200
    policies = {
        answer.headers["Cross-Origin-Opener-Policy"] for answer in (connected, not_connected)
    }
    assert policies == {"same-origin"}


def test_a_probe_that_finds_no_connection_leaves_the_pending_code(app, browser):
    popup = Frame(browser).approve_in_popup()
    stored(app).connections.remove(only_connection(app).id)  # forgotten meanwhile
    probe = popup.get("/connected")
    assert probe.status_code == 302
    assert probe.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    with popup.session_transaction() as session:
        assert isinstance(session.get(session_keys.HANDOFF_CODE), str)  # not spent on a redirect


def test_a_popups_page_that_fails_keeps_its_code_for_the_reload(browser, monkeypatch):
    frame = Frame(browser)
    popup = frame.approve_in_popup()
    with monkeypatch.context() as database_down:

        def unavailable(*args):
            raise StoreUnavailable("the database cannot be used: test")

        database_down.setattr(ConnectionStore, "get", unavailable)
        failed = popup.get("/connected")
    assert failed.status_code == 503
    assert failed.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    reloaded = popup.get("/connected")
    assert frame.redeem(code_on(reloaded)).status_code == 200
    assert "Harbor Light Yoga" in frame.browser.get("/dashboard", headers=FRAMED).text
