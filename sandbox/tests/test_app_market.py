"""The App Market: the sandbox opens the client app as vcita does, framed or in a new tab.

Also what the App Market relies on elsewhere in the sandbox: vcita's own sign-in pages
refuse to be framed, and answer on a white-label brand host as on any other name.
"""

from __future__ import annotations

from html import unescape
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from markupsafe import escape

from sandbox.__main__ import describe
from sandbox.app_market import landing_url
from sandbox.settings import brand_host_of, load_settings

from .conftest import (
    OWNER_UID,
    STAFF_UID,
    authorize_url,
    bearer,
    form_fields,
    log_in,
    redirect_params,
    token_body,
)

APP_URL = "http://localhost:5000/"
HARBOR = "7c6dc1589f078b66"  # Harbor Light Yoga: Maya Goldberg (owner), Leo Martins (staff)
CEDAR = "9da2a88d42e6ff59"  # Cedar & Pine Law Office
CEDAR_ADMIN = "9080de61d2e74845"  # Priya Raman, its admin
SONRISA = "29e5fb9706d9eae3"  # Clínica Dental Sonrisa, whose locale is "es"
SONRISA_OWNER = "a383717599bf1893"  # Sofía Hernández
BRAND_BASE_URL = "http://3e2929cf6c34632e.myclients.localhost:5001"  # Harbor's brand host

pytestmark = pytest.mark.sandbox_settings(
    SANDBOX_APP_URL=APP_URL, SANDBOX_BRAND_DOMAIN="myclients.localhost"
)


class Elements(HTMLParser):
    """A page's start tags with their attributes, as a browser's parser sees them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def by_id(self, element_id: str) -> dict[str, str | None] | None:
        return next((attrs for _, attrs in self.tags if attrs.get("id") == element_id), None)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


def open_path(**query: str) -> str:
    return f"/app-market/open?{urlencode(query)}"


def test_the_app_market_lists_every_demo_business_and_staff_member(browser, sandbox):
    response = browser.get("/app-market")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    page = Elements(html)
    assert "<h1>App Market (sandbox)</h1>" in html
    form = page.named("form")
    assert form == [{"method": "get", "action": "/app-market/open"}]
    staff_choices = [attrs for attrs in page.named("input") if attrs.get("name") == "staff"]
    directory = sandbox.config["SANDBOX_DIRECTORY"]
    assert [choice["value"] for choice in staff_choices] == [
        member.uid for business in directory.businesses for member in business.staff
    ]
    for business in directory.businesses:
        assert f"<legend>{escape(business.name)}</legend>" in html
        for member in business.staff:
            assert f'<span class="staff-name">{escape(member.name)}</span>' in html
    assert "checked" in staff_choices[0] and "required" in staff_choices[0]


def test_every_field_of_the_app_market_has_a_label(browser):
    html = browser.get("/app-market").get_data(as_text=True)
    page = Elements(html)
    fields = page.named("input")
    labelled = {attrs["for"] for attrs in page.named("label")}
    assert len(fields) == 9  # six staff members, two modes, extra
    assert {field["id"] for field in fields} <= labelled
    assert '<label for="mode-frame">Inside vcita (iframe)</label>' in html
    assert '<label for="mode-tab">In a new tab</label>' in html
    assert "checked" in page.by_id("mode-frame")
    assert page.by_id("extra") == {
        "type": "text",
        "name": "extra",
        "id": "extra",
        "maxlength": "2000",
        "autocomplete": "off",
    }
    assert (
        '<label for="extra">Extra launch parameters (raw query string, for tests)</label>' in html
    )
    assert '<button type="submit" class="primary wide">Open vcita Connect</button>' in html
    assert "<script" not in html and " style=" not in html


@pytest.mark.parametrize(
    ("business", "staff", "expected"),
    [
        (
            HARBOR,
            OWNER_UID,
            [
                ("business_uid", HARBOR),
                ("staff_uid", OWNER_UID),
                ("staff_role", "owner"),
                ("language", "en"),
                ("brand_host", "3e2929cf6c34632e.myclients.localhost"),
            ],
        ),
        (
            SONRISA,
            SONRISA_OWNER,
            [
                ("business_uid", SONRISA),
                ("staff_uid", SONRISA_OWNER),
                ("staff_role", "owner"),
                ("language", "es"),
                ("brand_host", "5d5dd1b5051ee611.myclients.localhost"),
            ],
        ),
    ],
)
def test_inside_vcita_the_app_is_framed_at_its_landing_page_with_the_launch_parameters(
    browser, business, staff, expected
):
    response = browser.get(open_path(business=business, staff=staff, mode="frame"))
    assert response.status_code == 200
    page = Elements(response.get_data(as_text=True))
    frame = page.by_id("app-frame")
    assert frame is not None
    src = urlsplit(frame["src"])
    assert f"{src.scheme}://{src.netloc}{src.path}" == APP_URL
    assert parse_qsl(src.query, keep_blank_values=True) == expected
    assert frame["name"] == "app-frame" and frame["title"] == "vcita Connect"
    assert "sandbox" not in frame  # real vcita lets apps open popups
    assert page.by_id("open-app") is None


def test_the_shell_looks_like_vcita_around_the_app(browser):
    html = browser.get(open_path(business=CEDAR, staff=CEDAR_ADMIN)).get_data(as_text=True)
    page = Elements(html)
    assert '<span class="shell-wordmark">vcita</span>' in html
    assert "Cedar &amp; Pine Law Office" in html and "Priya Raman" in html
    assert "a local emulator, not vcita.com" in html
    assert [nav.get("aria-label") for nav in page.named("nav")] == ["vcita"]
    assert "<li>Calendar</li>" in html and "<li>Clients</li>" in html
    assert '<a href="/app-market">Apps</a>' in html
    assert len(page.named("h1")) == 1
    assert "<script" not in html and " style=" not in html


@pytest.mark.sandbox_settings(SANDBOX_APP_URL=APP_URL)
def test_brand_hosts_default_to_vcitas_partner_domain(browser):
    src = Elements(browser.get(open_path(staff=OWNER_UID)).get_data(as_text=True)).by_id(
        "app-frame"
    )["src"]
    assert dict(parse_qsl(urlsplit(src).query))["brand_host"] == "3e2929cf6c34632e.myclients.me"


def test_a_brand_host_keeps_the_first_label_under_the_configured_domain(sandbox):
    harbor = sandbox.config["SANDBOX_DIRECTORY"].businesses[0]
    assert harbor.brand_host == "3e2929cf6c34632e.myclients.me"
    assert brand_host_of(harbor, "myclients.localhost") == "3e2929cf6c34632e.myclients.localhost"
    assert brand_host_of(harbor, "localhost") == "3e2929cf6c34632e.localhost"


def test_in_a_new_tab_the_app_is_a_link_that_opens_one(browser):
    response = browser.get(open_path(business=CEDAR, staff=CEDAR_ADMIN, mode="tab"))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    page = Elements(html)
    link = page.by_id("open-app")
    assert link is not None
    assert link["target"] == "_blank" and link["rel"] == "noopener"
    href = urlsplit(link["href"])
    assert f"{href.scheme}://{href.netloc}{href.path}" == APP_URL
    assert parse_qsl(href.query) == [
        ("business_uid", CEDAR),
        ("staff_uid", CEDAR_ADMIN),
        ("staff_role", "admin"),
        ("language", "en"),
        ("brand_host", "8d6f4e3d0ed7b110.myclients.localhost"),
    ]
    assert ">Open vcita Connect in a new tab</a>" in html
    assert page.by_id("app-frame") is None


def test_the_form_as_sent_opens_the_app_of_the_chosen_staff_members_business(browser):
    # The form sends the staff member alone, and an empty extra.
    response = browser.get("/app-market/open?staff=41555f2fa81ceb05&mode=frame&extra=")
    src = Elements(response.get_data(as_text=True)).by_id("app-frame")["src"]
    assert response.status_code == 200
    assert src == (
        f"{APP_URL}?business_uid={HARBOR}&staff_uid={STAFF_UID}&staff_role=staff&language=en"
        "&brand_host=3e2929cf6c34632e.myclients.localhost"
    )


def test_extra_parameters_are_appended_verbatim_and_never_make_a_tag(browser):
    extra = "brand_host=evil.com%23.myclients.me&x=\"><script>alert(1)</script><b x='"
    response = browser.get(open_path(staff=OWNER_UID, extra=extra))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    page = Elements(html)
    assert "<script" not in html and "<b " not in html
    assert {tag for tag, _ in page.tags} <= {
        "html", "head", "meta", "title", "link", "body", "a", "header", "span", "div",
        "nav", "ul", "li", "main", "h1", "iframe", "form", "input", "button",
    }  # fmt: skip
    src = page.by_id("app-frame")["src"]
    assert src.endswith("&brand_host=3e2929cf6c34632e.myclients.localhost&" + extra)


def test_extra_may_be_2000_characters_and_no_more(browser):
    assert browser.get(open_path(staff=OWNER_UID, extra="x" * 2000)).status_code == 200
    response = browser.get(open_path(staff=OWNER_UID, extra="x" * 2001))
    assert response.status_code == 400
    assert "extra must be at most 2000 characters" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ({"business": HARBOR, "staff": CEDAR_ADMIN}, 404, "No such staff member in that business"),
        ({"business": "nope", "staff": OWNER_UID}, 404, "No such staff member in that business"),
        ({"staff": "nobody"}, 404, "No such staff member"),
        ({}, 404, "No such staff member"),
        ({"staff": OWNER_UID, "mode": "popup"}, 400, "mode must be frame"),
    ],
)
def test_a_launch_the_app_market_cannot_open_is_a_page_saying_why(browser, query, status, says):
    response = browser.get(open_path(**query))
    assert response.status_code == status
    assert response.mimetype == "text/html"
    assert says in response.get_data(as_text=True)
    assert "frame-src" not in response.headers["Content-Security-Policy"]


@pytest.mark.sandbox_settings(SANDBOX_APP_URL=None)
def test_without_the_apps_url_the_app_market_says_what_to_set(browser):
    response = browser.get(open_path(business=HARBOR, staff=OWNER_UID))
    assert response.status_code == 503
    assert "Set SANDBOX_APP_URL to the app's landing page" in unescape(response.text)
    page = browser.get("/app-market")
    assert page.status_code == 200
    assert "Set SANDBOX_APP_URL to the app's landing page" in unescape(page.text)


def test_the_framing_page_may_frame_the_apps_origin_alone_and_is_never_framed_itself(browser):
    response = browser.get(open_path(business=HARBOR, staff=OWNER_UID, mode="frame"))
    directives = [d.strip() for d in response.headers["Content-Security-Policy"].split(";")]
    assert [d for d in directives if d.startswith("frame-src")] == [
        "frame-src http://localhost:5000"
    ]
    assert "frame-ancestors 'none'" in directives
    assert "default-src 'none'" in directives
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.sandbox_settings(
    SANDBOX_APP_URL="https://connect.example:8443/vcita/launch?from=market"
)
def test_an_app_url_with_its_own_query_keeps_it_and_frames_its_origin(browser):
    response = browser.get(open_path(staff=OWNER_UID))
    src = Elements(response.get_data(as_text=True)).by_id("app-frame")["src"]
    assert src.startswith(
        "https://connect.example:8443/vcita/launch?from=market&business_uid=7c6dc1589f078b66&"
    )
    assert response.headers["Content-Security-Policy"].endswith(
        "; frame-src https://connect.example:8443"
    )


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/app-market",
        open_path(business=HARBOR, staff=OWNER_UID, mode="tab"),
        authorize_url(),
        "/no-such-page",
        "/oauth/userinfo",
    ],
)
def test_no_other_page_may_frame_anything(browser, path):
    policy = browser.get(path).headers["Content-Security-Policy"]
    assert "frame-src" not in policy
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy


@pytest.mark.parametrize(
    ("app_url", "parameters", "extra", "expected"),
    [
        ("http://a.example/", [("b", "1")], "", "http://a.example/?b=1"),
        ("http://a.example/?", [("b", "1")], "", "http://a.example/?b=1"),
        ("http://a.example/?t=2", [("b", "1")], "", "http://a.example/?t=2&b=1"),
        ("http://a.example/?t=2&", [("b", "1")], "", "http://a.example/?t=2&b=1"),
        ("http://a.example", [("b", "x y&z")], "", "http://a.example?b=x+y%26z"),
        ("http://a.example/", [("b", "1")], "b=2&c", "http://a.example/?b=1&b=2&c"),
    ],
)
def test_the_landing_url_appends_the_parameters_then_extra(app_url, parameters, extra, expected):
    assert landing_url(app_url, parameters, extra) == expected


def test_the_sign_in_and_consent_pages_refuse_to_be_framed(browser):
    login_page = browser.get(authorize_url())
    consent_page = log_in(browser, login_page)
    assert "<h1>Log in to vcita</h1>" in login_page.get_data(as_text=True)
    assert "wants to access your vcita account</h1>" in consent_page.get_data(as_text=True)
    for page in (login_page, consent_page):
        assert page.status_code == 200
        assert page.headers["X-Frame-Options"] == "DENY"
        directives = [d.strip() for d in page.headers["Content-Security-Policy"].split(";")]
        assert "frame-ancestors 'none'" in directives


def test_the_authorize_page_works_on_a_brand_host_and_its_code_is_accepted(browser, state):
    login_page = browser.get(authorize_url(), base_url=BRAND_BASE_URL)
    assert login_page.status_code == 200
    consent_page = browser.post(
        "/app/oauth/authorize/login",
        data={**form_fields(login_page), "staff_uid": OWNER_UID},
        base_url=BRAND_BASE_URL,
    )
    assert consent_page.status_code == 200
    assert consent_page.headers["X-Frame-Options"] == "DENY"
    answer = browser.post(
        "/app/oauth/authorize/decision",
        data={**form_fields(consent_page), "decision": "allow"},
        base_url=BRAND_BASE_URL,
    )
    assert redirect_params(answer)["state"] == "xyz-state"
    token = browser.post("/oauth/token", json=token_body(redirect_params(answer)["code"]))
    assert token.status_code == 200
    userinfo = browser.get("/oauth/userinfo", headers=bearer(token.get_json()["access_token"]))
    assert userinfo.get_json()["sub"] == OWNER_UID
    assert [request["status"] for request in state.token_requests] == [200]


def test_control_endpoints_do_not_answer_on_a_brand_host(browser):
    assert browser.get("/_sandbox/requests").status_code == 200
    assert browser.get("/_sandbox/requests", base_url=BRAND_BASE_URL).status_code == 404


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"SANDBOX_APP_URL": APP_URL}, f"landing page: {APP_URL}"),
        ({}, "landing page: unset: set SANDBOX_APP_URL"),
    ],
)
def test_python_m_sandbox_says_where_the_app_market_is(settings, says):
    text = describe("http://127.0.0.1:5001", load_settings({}, settings))
    assert "App Market:    http://127.0.0.1:5001/app-market" in text
    assert says in text
    assert "brand hosts:  *.myclients.me" in text
