"""Bad input, fuzzed: whatever reaches the app, it answers without a server error.

Hypothesis sends arbitrary methods, paths, query strings, headers, cookies and bodies
to every route: repeated and empty parameters, %00, CR/LF, bytes that are not UTF-8,
8 KB and 1 MB values, oversized cookies and session cookies with one character changed.
For every request: no 5xx, no token request unless the browser's own pending state came
back with its own cookie, no connection stored, and a marker of markup (`<x9q>`) never
appears unescaped in what the app sends back.

`make test` runs a few hundred fixed examples; `make fuzz` (scripts/fuzz.py) sets
FUZZ_EXAMPLES and runs tens of thousands of random ones.
"""

import enum
import os
import re
import secrets
import time
from collections import Counter
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from app import session_keys
from app.connect import flows
from app.connect.flows import MAX_NEXT_URL_BYTES
from app.session_keys import CONNECTION, CONNECTIONS

from .conftest import stored

MARKER = "<x9q>"
# Hypothesis warns when it prints a failing example holding an 8 KB value; the suite's
# filterwarnings=error would otherwise hide the failure behind that warning.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0"))
# How many examples each test has run in this process; scripts/fuzz.py prints them.
EXAMPLES_RUN: Counter = Counter()


def every_case(cases: list):
    """Add each case as an explicit Hypothesis example, run before the random ones."""

    def decorate(test):
        for case in reversed(cases):
            test = example(sent=case)(test)
        return test

    return decorate


def fuzz_settings(examples_in_the_suite: int) -> settings:
    """Fixed, fast examples in the suite; FUZZ_EXAMPLES random ones under `make fuzz`."""
    shared = {
        "deadline": None,
        # One app and one sandbox serve every example, as one server serves every browser.
        "suppress_health_check": [
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    }
    if FUZZ_EXAMPLES:
        # Each property keeps its share: FUZZ_EXAMPLES is the main property's count.
        share = max(1, FUZZ_EXAMPLES * examples_in_the_suite // 300)
        return settings(max_examples=share, **shared)
    return settings(max_examples=examples_in_the_suite, derandomize=True, database=None, **shared)


class Real(enum.Enum):
    """A value only known once the example runs: this browser's own flow."""

    STATE = "the state of the flow this browser started"
    COOKIE = "this browser's session cookie"
    TAMPERED_COOKIE = "this browser's session cookie with one character changed"
    NOW = "the time the request is sent"


# --- What a request is made of ----------------------------------------------------------

ROUTES = (
    "/",
    "/connect",
    "/callback",
    "/dashboard",
    "/disconnect",
    "/static/style.css",
    "/static/../app/vcita.py",
    "/no-such-page",
)
METHODS = ("GET", "GET", "GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")
PARAMETERS = ("state", "code", "error", "error_description", "iss", "next", "scope", "")
HEADERS = (
    "HTTP_HOST",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "HTTP_ACCEPT",
    "HTTP_AUTHORIZATION",
    "HTTP_REFERER",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_REQUEST_ID",
    "HTTP_RANGE",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_NONE_MATCH",
    "HTTP_TRANSFER_ENCODING",
    "HTTP_ORIGIN",
)
COOKIES = ("vcita_connect", "__Host-vcita_connect", "session", "")
CONTENT_TYPES = (
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json",
    "text/plain; charset=utf-16",
)

# Characters a browser, a proxy or an attacker may send: NUL, CR/LF, quotes, markup,
# percent signs, non-ASCII and the odd control character.
awkward_characters = st.sampled_from(
    ["\x00", "\r", "\n", "\r\n", "%", "%00", "%0d%0a", "&", "=", ";", '"', "'", "<", ">", "\\",
     "/", "..", "é", "\u202e", "\ufeff", "\U0001d4b3", " ", "\t", "+"]
)  # fmt: skip
text = st.lists(st.one_of(st.text(max_size=12), awkward_characters), max_size=6).map("".join)
marked = st.one_of(text, st.builds(lambda a, b: a + MARKER + b, text, text))
value = st.one_of(marked, st.just(""))
# 8 KB and 1 MB values, at most one per request, so that most examples stay small and fast.
KB, MB = 1024, 1024 * 1024
large = st.one_of(
    st.sampled_from(["a", MARKER, "%00", "é", "\r\n"]).map(lambda fill: (fill * 8 * KB)[: 8 * KB]),
    st.sampled_from(["a", MARKER]).map(lambda fill: (fill * MB)[:MB]),
)
LARGE_PLACES = (
    "query:state",
    "query:code",
    "query:next",
    "cookie:vcita_connect",
    "cookie:other",
    "header:HTTP_REFERER",
    "header:HTTP_X_FORWARDED_FOR",
    "body",
)


# Raw bytes that no UTF-8 decoder accepts, as WSGI hands them over (latin-1 text).
NOT_UTF8 = ("\xff", "\xc3", "\xc3(", "\xed\xa0\x80", "\xc0\xaf", "\xf5\x80\x80\x80")


def as_wire_text(chosen: str | bytes) -> str:
    """Return what WSGI hands the app for these bytes on the wire: latin-1 text."""
    if isinstance(chosen, bytes):
        return chosen.decode("latin-1")
    return chosen.encode("utf-8").decode("latin-1")


# A query parameter as it may arrive: percent-encoded, raw UTF-8, raw bytes that are not
# UTF-8 (b"\xff"), or bare without "=".
query_value = st.one_of(
    value.map(lambda v: quote(v, safe="")),
    value.map(as_wire_text),
    st.binary(max_size=12).map(as_wire_text),
    st.sampled_from(NOT_UTF8),
    st.just(Real.STATE),
)
query_parameter = st.tuples(
    st.one_of(st.sampled_from(PARAMETERS), text.map(as_wire_text)),
    st.one_of(query_value, st.none()),
)
header_value = st.one_of(
    value.map(as_wire_text), st.binary(max_size=24).map(as_wire_text), st.sampled_from(["0", "-1"])
)
headers = st.dictionaries(
    st.one_of(st.sampled_from(HEADERS), st.from_regex(r"HTTP_[A-Z_]{1,12}", fullmatch=True)),
    st.one_of(header_value, st.sampled_from(CONTENT_TYPES)),
    max_size=4,
)
cookie = st.tuples(
    st.one_of(st.sampled_from(COOKIES), text.map(as_wire_text)),
    st.one_of(
        st.sampled_from(list(Real)).filter(lambda real: real is not Real.STATE),
        value.map(as_wire_text),
        st.binary(max_size=64).map(as_wire_text),
    ),
)
body = st.one_of(
    st.just(b""),
    st.binary(max_size=256),
    value.map(lambda v: v.encode("utf-8")),
    st.builds(
        lambda fields: "&".join(f"{quote(k)}={quote(v)}" for k, v in fields).encode(),
        st.lists(st.tuples(st.sampled_from(["csrf_token", "state", "code"]), value), max_size=3),
    ),
)


@st.composite
def fuzzed_requests(draw) -> dict:
    """One request from a browser that may first have started a connect flow."""
    path = draw(st.sampled_from(ROUTES))
    if draw(st.booleans()):  # half the time a route exactly, else with something after it
        path += draw(st.one_of(st.sampled_from(["/", "//", "%00", MARKER, *NOT_UTF8]), text))
    return {
        "started_a_flow": draw(st.booleans()),
        "method": draw(st.sampled_from(METHODS)),
        "path": path,
        "query": draw(st.lists(query_parameter, max_size=6)),
        "cookies": draw(st.lists(cookie, max_size=3)),
        "headers": draw(headers),
        "body": draw(body),
        "tamper_at": draw(st.integers(min_value=0)),
        "large": draw(
            st.one_of(st.none(), st.none(), st.tuples(st.sampled_from(LARGE_PLACES), large))
        ),
    }


def request_of(path: str, query=(), cookies=(), method="GET", **rest) -> dict:
    """One request written out by hand, for the cases every run must include."""
    return {
        "started_a_flow": any(isinstance(v, Real) for _, v in [*query, *cookies]),
        "method": method,
        "path": path,
        "query": list(query),
        "cookies": list(cookies),
        "headers": rest.get("headers", {}),
        "body": rest.get("body", b""),
        "tamper_at": rest.get("tamper_at", 0),
        "large": rest.get("large"),
    }


OWN_COOKIE = ("vcita_connect", Real.COOKIE)
TAMPERED_COOKIE = ("vcita_connect", Real.TAMPERED_COOKIE)
OWN_STATE = ("state", Real.STATE)
# The list, so that every run covers it whatever the random examples are.
CASES_EVERY_RUN = [
    request_of("/connect", [("next", "\xff")]),
    request_of("/callback", [("state", "\xc3("), ("code", "abc")]),
    request_of("/callback", [("state", "%00"), ("code", "%0d%0a<x9q>")]),
    request_of("/callback", [("state", "a"), ("state", "b"), ("code", ""), ("code", None)]),
    request_of("/callback", [OWN_STATE, OWN_STATE, ("code", "abc")], [OWN_COOKIE]),
    request_of("/callback", [OWN_STATE, ("code", "forged")], [OWN_COOKIE]),
    request_of("/callback", [OWN_STATE, ("code", "abc")], [TAMPERED_COOKIE], tamper_at=40),
    request_of("/callback", [OWN_STATE, ("error", MARKER)], [OWN_COOKIE]),
    request_of("/connect", [("next", "/dashboard\r\nSet-Cookie: x=<x9q>")]),
    request_of("/connect", large=("query:next", "/" * 8 * KB)),
    request_of("/dashboard", large=("cookie:vcita_connect", "a" * MB)),
    request_of("/", headers={"HTTP_X_REQUEST_ID": "a\r\nSet-Cookie: x=<x9q>"}),
    request_of("/disconnect", method="POST", large=("body", "csrf_token=" + "a" * MB)),
    request_of("/static/style.css", headers={"HTTP_RANGE": "bytes=9-1,<x9q>"}),
    request_of("/\xff\xfe<x9q>", [("\xff", "\xfe")]),
    # Hosts no URL can be built for: a lone dot, an empty label, a label over 63 letters.
    request_of("/", headers={"HTTP_HOST": "."}),
    request_of("/dashboard", headers={"HTTP_HOST": "a..example"}),
    request_of("/connect", headers={"HTTP_HOST": "x" * 64 + ".example"}),
]


# --- The properties -----------------------------------------------------------------------


@fuzz_settings(examples_in_the_suite=300)
@given(sent=fuzzed_requests())
@every_case(CASES_EVERY_RUN)
def test_any_request_to_any_route_is_answered_without_a_server_error(app, vcita, sent):
    EXAMPLES_RUN["any request to any route"] += 1
    store = stored(app).connections
    state, cookie = start_flow(app) if sent["started_a_flow"] else (None, None)
    token_requests = len(vcita.token_requests)

    environ = {
        "PATH_INFO": as_wire_text(sent["path"]),
        "QUERY_STRING": query_string(sent["query"], state),
        "HTTP_COOKIE": cookie_header(sent["cookies"], cookie, sent["tamper_at"]),
        **sent["headers"],
    }
    body = sent["body"]
    if sent["large"]:
        body = with_large_value(environ, body, *sent["large"])
    browser = app.test_client(use_cookies=False)
    response = browser.open("/", method=sent["method"], data=body, environ_overrides=environ)
    response.get_data()  # read a streamed static file, then close it
    response.close()

    own_flow = (
        state is not None
        and Real.STATE in [v for _, v in sent["query"]]
        and Real.COOKIE in [v for _, v in sent["cookies"]]
    )
    if own_flow and response.status_code == 502:
        # The browser's own flow, answered with an OAuth error: vcita's failure, not ours.
        assert "error" in [name for name, _ in sent["query"]]
    else:
        assert response.status_code < 500, response.text[:500]
    assert_marker_not_reflected(response)
    assert store.count() == 0
    assert vcita.userinfo_requests == []
    if len(vcita.token_requests) > token_requests:
        # Only the browser's own state, back with its own cookie, may reach step 3.
        assert own_flow


def json_values(*leaves) -> st.SearchStrategy:
    """Any JSON value: scalars, marked text, and lists and objects of them."""
    return st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(allow_nan=False, allow_infinity=False),
            marked,
            *leaves,
        ),
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(marked, children, max_size=4)
        ),
        max_leaves=12,
    )


json_value = json_values(
    st.sampled_from(["N", MARKER, "é"]).map(lambda fill: (fill * 8 * KB)[: 8 * KB])
)
USERINFO_FIELDS = (
    "business_name",
    "email",
    "role",
    "type",
    "brand_host",
    "business_uid",
    "sub",
    "directory_uid",
    "brand_theme",
)
userinfo = st.dictionaries(
    st.one_of(st.sampled_from(USERINFO_FIELDS), marked), json_value, max_size=8
)
colours = st.dictionaries(
    st.sampled_from(["primary", "secondary", "text"]),
    st.one_of(st.from_regex(r"#[0-9a-fA-F]{6}", fullmatch=True), marked, json_value),
)
brand_theme = st.one_of(json_value, st.builds(lambda c: {"colors": c}, colours))
STYLE = re.compile(r"<style nonce=\"[^\"]+\">:root \{ (--[a-z-]+: #[0-9a-f]{6}; )*\}</style>")


@fuzz_settings(examples_in_the_suite=100)
@given(served=userinfo, theme=brand_theme)
def test_userinfo_of_any_shape_is_shown_escaped_on_the_dashboard(
    connected_browser, vcita, served, theme
):
    EXAMPLES_RUN["userinfo of any shape"] += 1
    vcita.set_fault("userinfo", json={**served, "brand_theme": theme})

    response = connected_browser.get("/dashboard")

    assert response.status_code == 200
    assert_marker_not_reflected(response)
    page = response.text
    assert "<style" not in page or STYLE.search(page), page.split("</head>")[0]


@pytest.fixture
def connected_browser(browser):
    """A browser whose business is connected, on its dashboard."""
    assert browser.connect().status_code == 303
    return browser


# What an older or newer version of the app may have left in a session it signed: the
# same keys holding other shapes (a rolling deploy serves both versions at once).
small_json_value = json_values()  # the session fits in a cookie a browser sends back
# A pending flow with this version's fields, each maybe of another type, and maybe more.
old_flow = st.fixed_dictionaries(
    {
        "state": st.one_of(st.just(Real.STATE), small_json_value),
        "started_at": st.one_of(st.just(Real.NOW), st.floats(), small_json_value),
    },
    optional={
        "code_verifier": st.one_of(st.just("v" * 43), small_json_value),
        "next_url": st.one_of(st.just("/dashboard"), small_json_value),
        "scope": small_json_value,
    },
)
session_of_another_version = st.fixed_dictionaries(
    {},
    optional={
        session_keys.PENDING_FLOWS: st.one_of(
            st.dictionaries(
                st.one_of(st.just(Real.STATE), marked),
                st.one_of(old_flow, small_json_value),
                max_size=3,
            ),
            small_json_value,
        ),
        CONNECTION: st.one_of(marked, small_json_value),
        "csrf_token": st.one_of(marked, small_json_value),
        session_keys.FLOW_TRACE: st.one_of(marked, small_json_value),
        CONNECTIONS: st.one_of(st.lists(marked, max_size=3), small_json_value),
    },
)
# Browsers keep cookies up to 4096 bytes (RFC 6265 §6.1); leave room for what the app adds.
LARGEST_SESSION_SENT = 3000


CALLBACK = [OWN_STATE, ("code", "abc")]


def flow_of(**fields) -> dict:
    """A session whose one pending flow, for this browser's state, has these fields."""
    return {
        session_keys.PENDING_FLOWS: {
            Real.STATE: {"state": Real.STATE, "started_at": Real.NOW, **fields}
        }
    }


SESSIONS_EVERY_RUN = [
    (flow_of(started_at="yesterday"), "/connect", []),
    (flow_of(started_at=None), "/callback", CALLBACK),
    (flow_of(started_at=1e18), "/callback", CALLBACK),
    (flow_of(state=5), "/callback", CALLBACK),
    (flow_of(code_verifier=7), "/callback", CALLBACK),
    (flow_of(next_url=["/dashboard"]), "/callback", CALLBACK),
    (flow_of(scope="openid"), "/callback", CALLBACK),
    ({session_keys.PENDING_FLOWS: ["a", "list"]}, "/connect", []),
    ({CONNECTION: {"id": 1}}, "/dashboard", []),
    ({CONNECTION: 7}, "/", []),
    ({"csrf_token": True}, "/disconnect", []),
]


def every_session(cases: list):
    """Add each (session, path, query) as an explicit Hypothesis example."""

    def decorate(test):
        for old_session, path, query in reversed(cases):
            test = example(old_session=old_session, path=path, query=query)(test)
        return test

    return decorate


@fuzz_settings(examples_in_the_suite=100)
@every_session(SESSIONS_EVERY_RUN)
@given(
    old_session=session_of_another_version,
    path=st.sampled_from(ROUTES[:5]),
    query=st.lists(
        st.tuples(
            st.sampled_from(["state", "code", "error", "next"]),
            st.one_of(st.just(Real.STATE), query_value),
        ),
        max_size=4,
    ),
)
def test_session_of_another_app_version_is_answered_without_a_server_error(
    app, vcita, old_session, path, query
):
    EXAMPLES_RUN["session of another app version"] += 1
    state = "a-state-this-browser-holds"
    old_session = resolved(old_session, {Real.STATE: state, Real.NOW: time.time()})
    signed = app.session_interface.get_signing_serializer(app).dumps(old_session)
    assume(len(signed) <= LARGEST_SESSION_SENT)
    browser = app.test_client(use_cookies=False)
    method = "POST" if path == "/disconnect" else "GET"

    response = browser.open(
        path,
        method=method,
        environ_overrides={
            "HTTP_COOKIE": f"vcita_connect={signed}",
            "QUERY_STRING": query_string(query, state),
        },
    )

    assert response.status_code < 500, response.text[:500]
    assert_marker_not_reflected(response)
    assert stored(app).connections.count() == 0
    assert vcita.userinfo_requests == []
    if vcita.token_requests:
        # A well-formed flow of this browser's: its forged code was refused by vcita.
        assert Real.STATE in [value for _, value in query]
        assert response.status_code == 400


@pytest.mark.parametrize(
    ("length", "kept"),
    [(MAX_NEXT_URL_BYTES, True), (MAX_NEXT_URL_BYTES + 1, False), (6000, False)],
)
def test_long_next_urls_never_make_the_session_cookie_too_large_for_a_browser(
    make_app, length, kept
):
    # Browsers drop a cookie over 4096 bytes (RFC 6265 §6.1), and every pending flow with
    # it; werkzeug warns, and the suite turns the warning into an error.
    app = make_app(VCITA_USE_PKCE="true")
    browser = app.test_client()
    for tab in range(flows.MAX_PENDING_FLOWS + 1):
        # Random characters, which the session's compression cannot shrink.
        next_url = f"/{tab}/{secrets.token_urlsafe(length)}"[:length]
        response = browser.get("/connect", query_string={"next": next_url})
        assert response.status_code == 302
        assert len(response.headers["Set-Cookie"]) < 4096
        with browser.session_transaction() as session:
            newest = max(
                session[session_keys.PENDING_FLOWS].values(), key=lambda f: f["started_at"]
            )
        assert newest["next_url"] == (next_url if kept else None)


# --- Helpers --------------------------------------------------------------------------------


def resolved(value, known: dict):
    """Replace each Real placeholder in a JSON-like value, keys included."""
    if isinstance(value, Real):
        return known[value]
    if isinstance(value, dict):
        return {resolved(k, known): resolved(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [resolved(item, known) for item in value]
    return value


def start_flow(app) -> tuple[str, str]:
    """Start a flow in a fresh browser; return its state and its session cookie."""
    browser = app.test_client()
    browser.get("/connect")
    with browser.session_transaction() as session:
        [state] = session[session_keys.PENDING_FLOWS]
    return state, browser.get_cookie("vcita_connect").value


def query_string(parameters: list, state: str | None) -> str:
    parts = []
    for name, chosen in parameters:
        if chosen is Real.STATE:
            chosen = state or "no-flow-was-started"
        parts.append(name if chosen is None else f"{name}={chosen}")
    return "&".join(parts)


def cookie_header(cookies: list, real_cookie: str | None, tamper_at: int) -> str:
    parts = []
    for name, chosen in cookies:
        if chosen is Real.COOKIE:
            chosen = real_cookie or ""
        elif chosen is Real.TAMPERED_COOKIE:
            chosen = tampered(real_cookie or "", tamper_at)
        parts.append(f"{name}={chosen}")
    return "; ".join(parts)


def with_large_value(environ: dict, body: bytes, place: str, large: str) -> bytes:
    """Put one 8 KB or 1 MB value in its place in the request; return the body."""
    kind, _, name = place.partition(":")
    if kind == "query":
        environ["QUERY_STRING"] += f"&{name}={quote(large, safe='/')}"
    elif kind == "cookie":
        environ["HTTP_COOKIE"] += f"; {name}={as_wire_text(large)}"
    elif kind == "header":
        environ[name] = as_wire_text(large)
    else:
        return large.encode()
    return body


def tampered(cookie: str, position: int) -> str:
    """Change one character of a signed cookie, as someone editing it would."""
    if not cookie:
        return "x"
    position %= len(cookie)
    replacement = "A" if cookie[position] != "A" else "B"
    return cookie[:position] + replacement + cookie[position + 1 :]


def assert_marker_not_reflected(response) -> None:
    raw_marker = MARKER.encode()
    assert raw_marker not in response.get_data()
    for name, header in response.headers.items():
        assert MARKER not in header, name
