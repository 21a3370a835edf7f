"""Whatever vcita's token and userinfo endpoints answer, the person sees a documented page.

A property over generated answers: any JSON value (deeply nested, huge or non-finite
numbers, a `created_at` in the year 9999 or 400 digits long, an `expires_in` of 1e20), any
non-JSON body and any status. The callback and the dashboard answer with one of the app's
pages, never a stack trace and never a 5xx other than 502/503. The transport is stubbed: the
answers are vcita's, the requests never leave the process.
"""

import json
import math
from urllib.parse import urlsplit

import pytest
import requests
from hypothesis import example, given
from hypothesis import strategies as st

from app.errors import HTTP_PAGES, PAGES

from .conftest import vcita_client_of
from .security_support import state_of
from .test_fuzz import fuzz_settings

DOCUMENTED_TITLES = {page.title for page in PAGES.values()} - {HTTP_PAGES[500].title}
GOOD_TOKEN = {"access_token": "a" * 64, "token_type": "Bearer", "expires_in": 600}
GOOD_USERINFO = {"sub": "staff-1", "business_uid": "business-1", "business_name": "Yoga"}


class ScriptedVcita(requests.adapters.BaseAdapter):
    """A transport that answers each vcita path with a scripted status and body."""

    def __init__(self) -> None:
        super().__init__()
        self.answers: dict[str, tuple[int, bytes]] = {}

    def answer(self, path: str, status: int, body) -> None:
        self.answers[path] = (
            status,
            body if isinstance(body, bytes) else json.dumps(body).encode(),
        )

    def send(self, request, **kwargs) -> requests.Response:
        # A path no answer was scripted for is one vcita does not have.
        status, body = self.answers.get(urlsplit(request.url).path, (404, b"{}"))
        response = requests.Response()
        response.status_code = status
        response.headers["Content-Type"] = "application/json"
        response._content = body
        response.url = request.url
        response.request = request
        return response

    def close(self) -> None:
        pass


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()  # NaN and ±Infinity too: Python's json reads them
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
odd_numbers = st.sampled_from([1e20, 10**18, 10**400, -1, math.inf, -math.inf, math.nan, 0.5])
token_like = st.fixed_dictionaries(
    {
        "access_token": st.one_of(st.just("a" * 64), json_values),
        "token_type": st.one_of(st.just("Bearer"), json_values),
    },
    optional={
        "expires_in": st.one_of(odd_numbers, json_values),
        "created_at": st.one_of(odd_numbers, st.just(253402300799), json_values),
        "error": st.one_of(st.sampled_from(["invalid_grant", "invalid_client"]), json_values),
    },
)
userinfo_like = st.fixed_dictionaries(
    {
        "sub": st.one_of(st.just("staff-1"), json_values),
        "business_uid": st.one_of(st.just("business-1"), json_values),
    },
    optional={
        "business_name": json_values,
        "email": json_values,
        "brand_theme": json_values,
        "role": json_values,
    },
)
deeply_nested = st.integers(min_value=33, max_value=200_000).flatmap(
    lambda depth: st.sampled_from(
        [("[" * depth + "]" * depth).encode(), ('{"a":' * depth + "1" + "}" * depth).encode()]
    )
)
bodies = st.one_of(
    json_values.map(lambda value: json.dumps(value).encode()),
    deeply_nested,
    st.binary(max_size=64),
)
statuses = st.sampled_from([200, 200, 200, 201, 400, 401, 403, 404, 429, 500, 502, 503])


def answers(shaped):
    return st.tuples(statuses, st.one_of(shaped, bodies))


@pytest.fixture
def scripted(make_app, vcita):
    """The app with its transport to vcita replaced by a scripted one, and the flow trace on."""
    app = make_app(SHOW_FLOW_TRACE="true")
    transport = ScriptedVcita()
    vcita_client_of(app).transport = transport
    yield app, transport


def assert_documented_page(response) -> None:
    """Assert the answer is a redirect of the flow, the dashboard, or a documented error page."""
    text = response.get_data(as_text=True)
    if response.status_code in (302, 303):
        return
    if response.status_code == 200:
        assert "Connected to vcita" in text
        return
    assert response.status_code in (400, 403, 502, 503), response.status_code
    assert any(title.replace("'", "&#39;") in text for title in DOCUMENTED_TITLES), text[:300]


@fuzz_settings(examples_in_the_suite=150)
@given(token=answers(token_like), userinfo=answers(userinfo_like))
@example(token=(200, {**GOOD_TOKEN, "expires_in": 1e20}), userinfo=(200, GOOD_USERINFO))
@example(token=(200, {**GOOD_TOKEN, "expires_in": 10**18}), userinfo=(200, GOOD_USERINFO))
@example(token=(200, {**GOOD_TOKEN, "created_at": 253402300799}), userinfo=(200, GOOD_USERINFO))
@example(token=(200, {**GOOD_TOKEN, "expires_in": math.inf}), userinfo=(200, GOOD_USERINFO))
# Integers no float can hold (math.isfinite raised OverflowError on them: a 500).
@example(token=(200, {**GOOD_TOKEN, "created_at": 10**400}), userinfo=(200, GOOD_USERINFO))
@example(token=(200, {**GOOD_TOKEN, "expires_in": 10**400}), userinfo=(200, GOOD_USERINFO))
@example(token=(200, b"[" * 100_000 + b"]" * 100_000), userinfo=(200, GOOD_USERINFO))
@example(token=(200, GOOD_TOKEN), userinfo=(200, b'{"a":' * 5_000 + b"1" + b"}" * 5_000))
def test_the_callback_answers_any_token_and_userinfo_with_a_documented_page(
    scripted, token, userinfo
):
    app, transport = scripted
    transport.answer("/oauth/token", *token)
    transport.answer("/oauth/userinfo", *userinfo)
    browser = app.test_client()
    state = state_of(browser.get("/connect").location)

    response = browser.get("/callback", query_string={"state": state, "code": "a-code"})

    assert_documented_page(response)
    if response.status_code == 303:
        # The dashboard then shows the flow trace of those very answers.
        transport.answer("/oauth/userinfo", 200, GOOD_USERINFO)
        assert_documented_page(browser.get("/dashboard"))


def connected_browser(app, transport):
    """Connect a browser through vcita's good answers; return it and the transport.

    Like a browser, it opens the dashboard the callback leads to (rendered from what the
    callback read), so the test's own next dashboard reads vcita's answers live.
    """
    transport.answer("/oauth/token", 200, GOOD_TOKEN)
    transport.answer("/oauth/userinfo", 200, GOOD_USERINFO)
    transport.answer("/platform/v1/clients", 200, {"data": {"clients": []}})
    browser = app.test_client()
    state = state_of(browser.get("/connect").location)
    assert browser.get("/callback", query_string={"state": state, "code": "c"}).status_code == 303
    assert browser.get("/dashboard").status_code == 200
    return browser, transport


@fuzz_settings(examples_in_the_suite=100)
@given(userinfo=answers(userinfo_like))
@example(userinfo=(200, b"[" * 100_000 + b"]" * 100_000))
@example(userinfo=(200, {**GOOD_USERINFO, "business_name": 10**400}))
def test_the_dashboard_answers_any_userinfo_with_a_documented_page(scripted, userinfo):
    browser, transport = connected_browser(*scripted)
    transport.answer("/oauth/userinfo", *userinfo)

    response = browser.get("/dashboard")

    assert_documented_page(response)


clients_like = st.fixed_dictionaries(
    {
        "data": st.one_of(
            st.fixed_dictionaries(
                {
                    "clients": st.lists(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                name: st.one_of(st.text(max_size=30), json_values)
                                for name in (
                                    "first_name",
                                    "last_name",
                                    "email",
                                    "customer_status",
                                    "updated_at",
                                )
                            },
                        )
                        | json_values,
                        max_size=6,
                    )
                }
            ),
            json_values,
        )
    },
    optional={"status": json_values},
)


@fuzz_settings(examples_in_the_suite=100)
@given(clients=answers(clients_like))
@example(clients=(200, {"data": {"clients": [{"first_name": "<script>", "updated_at": "9999"}]}}))
@example(clients=(200, {"data": {"clients": [{"updated_at": "2026-01-01T00:00:00"}, {}]}}))
@example(clients=(429, {"error": "slow down"}))
@example(clients=(401, {"error": "unauthorized"}))
@example(clients=(200, {"data": {"clients": [{"updated_at": "0001-01-01T00:00:00-23:59"}]}}))
@example(clients=(200, {"data": {"clients": [{"updated_at": "9999-12-31T23:59:59+23:59"}]}}))
def test_the_dashboard_renders_whatever_the_clients_list_answers(scripted, clients):
    browser, transport = connected_browser(*scripted)
    transport.answer("/platform/v1/clients", *clients)

    response = browser.get("/dashboard")

    # The panel shows the clients, none, or that vcita did not answer: the page stays up,
    # on a 401 too (userinfo accepted the token: vcita refuses only the list).
    assert response.status_code == 200
    assert "Recent clients" in response.get_data(as_text=True)
    assert "<script>" not in response.get_data(as_text=True)
