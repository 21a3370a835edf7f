"""Whatever a client sends, the sandbox answers as vcita would: an OAuth error (or, on the
platform API, vcita's legacy error), never a 5xx.

And what it keeps of the requests stays bounded, however long it runs.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox.recording import MAX_RECORDED_BODY
from sandbox.state import MAX_RECORDED_REQUESTS
from sandbox.webhooks import EVENTS

from .conftest import bearer

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
deeply_nested = st.integers(min_value=100, max_value=100_000).map(
    lambda depth: ("[" * depth + "]" * depth).encode()
)
bodies = st.one_of(
    json_values.map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries(
        {"grant_type": st.one_of(st.just("authorization_code"), json_values)},
        optional={"code": json_values, "client_id": json_values, "client_secret": json_values},
    ).map(lambda value: json.dumps(value).encode()),
    deeply_nested,
    st.binary(max_size=200),
)
content_types = st.sampled_from(
    [
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
        "",
        "application/json; charset=latin-1",
    ]
)
# Every run tries the same examples, all of them on the one sandbox the test's fixtures built.
REPEATABLE = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
authorizations = st.one_of(
    st.none(), st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
)


@settings(REPEATABLE, max_examples=300)
@given(body=bodies, content_type=content_types, authorization=authorizations)
def test_any_request_gets_an_oauth_error_never_a_server_error(
    browser, body, content_type, authorization
):
    headers = {"Authorization": authorization} if authorization is not None else {}
    for method, path in (("POST", "/oauth/token"), ("GET", "/oauth/userinfo")):
        response = browser.open(
            path, method=method, data=body, content_type=content_type, headers=headers
        )

        assert response.status_code < 500, (path, response.get_data(as_text=True)[:300])
        if response.status_code >= 400:
            assert "error" in response.get_json()


query_values = st.text(max_size=30) | st.sampled_from(["0", "1", "100", "101", "-1", "2019-01-01"])
client_queries = st.dictionaries(
    st.sampled_from(
        ["page", "per_page", "search_term", "search_by", "updated_at[gte]", "updated_at[lte]"]
    )
    | st.text(max_size=12),
    query_values,
    max_size=4,
)
platform_bodies = st.one_of(
    bodies,
    st.fixed_dictionaries(
        {"event": st.sampled_from(EVENTS) | json_values},
        optional={"target_url": st.just("http://127.0.0.1:9/hook") | st.text(max_size=40)},
    ).map(lambda value: json.dumps(value).encode()),
)
PLATFORM_CALLS = [
    ("GET", "/platform/v1/clients"),
    ("POST", "/platform/v1/webhook/subscribe"),
    ("POST", "/platform/v1/webhook/unsubscribe"),
    ("GET", "/platform/v1/webhooks"),
]


@settings(REPEATABLE, max_examples=150)
@given(body=platform_bodies, content_type=content_types, query=client_queries)
def test_any_platform_call_with_a_token_gets_a_legacy_error_never_a_server_error(
    browser, new_token, body, content_type, query
):
    headers = bearer(new_token())
    for method, path in PLATFORM_CALLS:
        response = browser.open(
            path,
            method=method,
            data=body,
            content_type=content_type,
            query_string=query,
            headers=headers,
        )

        assert response.status_code < 500, (path, response.get_data(as_text=True)[:300])
        answer = response.get_json()
        assert answer["status"] == ("OK" if response.status_code == 200 else "Error")


def test_deeply_nested_json_is_an_invalid_request(browser, state):
    response = browser.post(
        "/oauth/token", data=b"[" * 20_000 + b"]" * 20_000, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    assert state.token_requests[-1]["status"] == 400


def test_the_recording_keeps_the_newest_requests_up_to_its_bound(browser, state):
    for number in range(MAX_RECORDED_REQUESTS + 5):
        browser.get("/oauth/userinfo", headers={"X-Number": str(number)})

    recorded = state.userinfo_requests
    assert len(recorded) == MAX_RECORDED_REQUESTS
    assert recorded[-1]["headers"]["X-Number"] == str(MAX_RECORDED_REQUESTS + 4)
    assert recorded[0]["headers"]["X-Number"] == "5"  # the five oldest went
    assert state.requests_received("userinfo") == MAX_RECORDED_REQUESTS + 5


def test_an_oversized_body_is_recorded_cut_short(browser, state):
    browser.post("/oauth/token", data=b"x" * 60_000, content_type="text/plain")

    body = state.token_requests[-1]["body"]
    assert len(body) <= MAX_RECORDED_BODY + 1 and body.endswith("…")
