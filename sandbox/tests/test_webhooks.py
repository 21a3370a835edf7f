"""Webhook subscriptions: subscribe, unsubscribe and list, each on a business's own token."""

from __future__ import annotations

import pytest

from sandbox.webhooks import EVENTS, NOT_SUBSCRIBED

from .conftest import CLIENT_ID, STAFF_UID, bearer

SUBSCRIBE = "/platform/v1/webhook/subscribe"
UNSUBSCRIBE = "/platform/v1/webhook/unsubscribe"
WEBHOOKS = "/platform/v1/webhooks"
HARBOR = "7c6dc1589f078b66"
CEDAR_OWNER = "6df31cfb24107721"
TARGET = "https://connect.example/webhooks/vcita/5Jx0s3cr3t"
UNINSTALLED = "application/uninstalled"


def listed(browser, headers) -> list[dict[str, str]]:
    response = browser.get(WEBHOOKS, headers=headers)
    assert response.status_code == 200
    return response.get_json()["data"]["webhooks"]


def test_subscribe_answers_ok_and_the_list_shows_it(browser, owner_headers):
    response = browser.post(
        SUBSCRIBE, json={"event": UNINSTALLED, "target_url": TARGET}, headers=owner_headers
    )
    assert response.status_code == 200
    assert response.get_json() == {"status": "OK"}
    listing = browser.get(WEBHOOKS, headers=owner_headers)
    assert listing.get_json() == {
        "status": "OK",
        "data": {"webhooks": [{"event": UNINSTALLED, "target_url": TARGET}]},
    }
    assert listing.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "event",
    [
        "application/uninstalled",
        "app_subscription/uninstalled",
        "client/created",
        "client/updated",
        "appointment/scheduled",
        "payment/paid",
    ],
)
def test_every_documented_event_can_be_subscribed(browser, owner_headers, event):
    assert event in EVENTS
    body = {"event": event, "target_url": TARGET}
    assert browser.post(SUBSCRIBE, json=body, headers=owner_headers).status_code == 200
    assert listed(browser, owner_headers) == [body]


@pytest.mark.parametrize(
    "target_url",
    [
        "http://127.0.0.1:5000/webhooks/vcita/abc",
        "http://localhost:5000/webhooks/vcita/abc?tenant=7",
        "http://[::1]:5000/hook",
        "https://connect.example",
    ],
)
def test_a_target_on_this_machine_or_any_http_host_is_accepted(browser, owner_headers, target_url):
    body = {"event": UNINSTALLED, "target_url": target_url}
    assert browser.post(SUBSCRIBE, json=body, headers=owner_headers).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"event": "application/installed", "target_url": TARGET},
        {"event": "APPLICATION/UNINSTALLED", "target_url": TARGET},
        {"event": ["application/uninstalled"], "target_url": TARGET},
        {"target_url": TARGET},
    ],
)
def test_an_unknown_event_is_422(browser, owner_headers, body):
    response = browser.post(SUBSCRIBE, json=body, headers=owner_headers)
    assert response.status_code == 422
    assert response.get_json()["status"] == "Error"
    assert response.get_json()["error"].startswith("event must be one of application/uninstalled")
    assert listed(browser, owner_headers) == []


@pytest.mark.parametrize(
    "target_url",
    [
        "",
        "/webhooks/vcita/abc",
        "connect.example/hook",
        "ftp://connect.example/hook",
        "javascript:alert(1)",
        "http://",
        "https://user:password@connect.example/hook",
        "http://connect.example:port/hook",
        "http://connect.example/ho ok",
        "http://connect.example/\nX-Injected: 1",
        "http://bücher.example/hook",
        "https://connect.example/" + "x" * 2100,
        5,
        None,
    ],
)
def test_a_target_url_that_is_not_an_absolute_http_url_is_422(browser, owner_headers, target_url):
    body = {"event": UNINSTALLED, "target_url": target_url}
    response = browser.post(SUBSCRIBE, json=body, headers=owner_headers)
    assert response.status_code == 422
    assert response.get_json() == {
        "status": "Error",
        "error": "target_url must be an absolute http(s) URL",
    }
    assert listed(browser, owner_headers) == []


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("event=application/uninstalled", "application/x-www-form-urlencoded"),
        ('{"event": ', "application/json"),
        ('["application/uninstalled"]', "application/json"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_422(browser, owner_headers, data, content_type):
    response = browser.post(SUBSCRIBE, data=data, content_type=content_type, headers=owner_headers)
    assert response.status_code == 422
    assert response.get_json()["error"].startswith("Send a JSON object")


def test_the_same_subscription_twice_is_422_webhook_already_exists(browser, owner_headers):
    body = {"event": UNINSTALLED, "target_url": TARGET}
    assert browser.post(SUBSCRIBE, json=body, headers=owner_headers).status_code == 200
    again = browser.post(SUBSCRIBE, json=body, headers=owner_headers)
    assert again.status_code == 422
    assert again.get_json() == {"status": "Error", "error": "Webhook already exists"}
    assert listed(browser, owner_headers) == [body]


def test_another_staff_members_token_of_the_same_business_sees_the_same_subscription(
    browser, owner_headers, new_token
):
    body = {"event": UNINSTALLED, "target_url": TARGET}
    browser.post(SUBSCRIBE, json=body, headers=owner_headers)
    staff_headers = bearer(new_token(STAFF_UID))
    assert listed(browser, staff_headers) == [body]
    assert browser.post(SUBSCRIBE, json=body, headers=staff_headers).status_code == 422


def test_the_same_target_for_another_event_or_business_is_a_new_subscription(
    browser, owner_headers, new_token
):
    body = {"event": UNINSTALLED, "target_url": TARGET}
    browser.post(SUBSCRIBE, json=body, headers=owner_headers)
    other_event = {"event": "client/created", "target_url": TARGET}
    assert browser.post(SUBSCRIBE, json=other_event, headers=owner_headers).status_code == 200
    cedar = bearer(new_token(CEDAR_OWNER))
    assert browser.post(SUBSCRIBE, json=body, headers=cedar).status_code == 200
    assert listed(browser, owner_headers) == [body, other_event]
    assert listed(browser, cedar) == [body]


def test_unsubscribe_with_an_event_removes_only_that_one(browser, owner_headers):
    for event in (UNINSTALLED, "client/created"):
        browser.post(SUBSCRIBE, json={"event": event, "target_url": TARGET}, headers=owner_headers)
    response = browser.post(
        UNSUBSCRIBE, json={"event": "client/created", "target_url": TARGET}, headers=owner_headers
    )
    assert response.status_code == 200 and response.get_json() == {"status": "OK"}
    assert listed(browser, owner_headers) == [{"event": UNINSTALLED, "target_url": TARGET}]


def test_unsubscribe_without_an_event_removes_every_one_to_that_target(browser, owner_headers):
    other = "https://connect.example/another"
    for event, target in ((UNINSTALLED, TARGET), ("client/created", TARGET), (UNINSTALLED, other)):
        browser.post(SUBSCRIBE, json={"event": event, "target_url": target}, headers=owner_headers)
    response = browser.post(UNSUBSCRIBE, json={"target_url": TARGET}, headers=owner_headers)
    assert response.status_code == 200
    assert listed(browser, owner_headers) == [{"event": UNINSTALLED, "target_url": other}]


def test_unsubscribing_what_is_not_there_is_ok_and_changes_nothing(browser, owner_headers):
    browser.post(
        SUBSCRIBE, json={"event": UNINSTALLED, "target_url": TARGET}, headers=owner_headers
    )
    response = browser.post(
        UNSUBSCRIBE, json={"target_url": "https://elsewhere.example/"}, headers=owner_headers
    )
    assert response.status_code == 200
    assert len(listed(browser, owner_headers)) == 1


def test_another_business_can_neither_see_nor_remove_a_subscription(
    browser, owner_headers, new_token
):
    body = {"event": UNINSTALLED, "target_url": TARGET}
    browser.post(SUBSCRIBE, json=body, headers=owner_headers)
    cedar = bearer(new_token(CEDAR_OWNER))
    assert listed(browser, cedar) == []
    assert browser.post(UNSUBSCRIBE, json=body, headers=cedar).status_code == 200
    assert listed(browser, owner_headers) == [body]


@pytest.mark.parametrize(
    "body",
    [
        {"event": UNINSTALLED},
        {"event": "nope", "target_url": TARGET},
        {"target_url": "not a url"},
    ],
)
def test_unsubscribe_needs_a_target_url_and_a_known_event_if_any(browser, owner_headers, body):
    response = browser.post(UNSUBSCRIBE, json=body, headers=owner_headers)
    assert response.status_code == 422
    assert response.get_json()["status"] == "Error"


@pytest.mark.parametrize(
    ("method", "path"), [("POST", SUBSCRIBE), ("POST", UNSUBSCRIBE), ("GET", WEBHOOKS)]
)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer " + "0" * 64}])
def test_each_call_without_an_active_token_is_401(browser, method, path, headers):
    body = {"event": UNINSTALLED, "target_url": TARGET}
    response = browser.open(path, method=method, json=body, headers=headers)
    assert response.status_code == 401
    assert response.get_json() == {"status": "Error", "error": "Unauthorized"}
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="vcita", error="invalid_token"'


def test_a_revoked_token_cannot_subscribe(browser, state, owner_headers):
    state.revoke_all_tokens()
    body = {"event": UNINSTALLED, "target_url": TARGET}
    assert browser.post(SUBSCRIBE, json=body, headers=owner_headers).status_code == 401
    assert state.subscriptions() == []


def test_a_fault_simulates_vcitas_documented_failure(browser, state, owner_headers):
    state.set_fault("subscribe", status=500, json=NOT_SUBSCRIBED, times=1)
    body = {"event": UNINSTALLED, "target_url": TARGET}
    failed = browser.post(SUBSCRIBE, json=body, headers=owner_headers)
    assert failed.status_code == 500
    assert failed.get_json() == {"response": "Not Subscribed"}
    assert listed(browser, owner_headers) == []  # the request was not processed
    assert browser.post(SUBSCRIBE, json=body, headers=owner_headers).status_code == 200


def test_the_failure_fault_is_set_over_the_control_api(browser, owner_headers):
    response = browser.post(
        "/_sandbox/faults",
        json={"endpoint": "subscribe", "status": 500, "json": {"response": "Not Subscribed"}},
    )
    assert response.status_code == 201
    body = {"event": UNINSTALLED, "target_url": TARGET}
    assert browser.post(SUBSCRIBE, json=body, headers=owner_headers).status_code == 500


def test_more_subscriptions_than_the_sandbox_keeps_fail_as_vcita_documents(
    browser, owner_headers, monkeypatch
):
    monkeypatch.setattr("sandbox.state.MAX_SUBSCRIPTIONS", 2)
    answers = [
        browser.post(
            SUBSCRIBE,
            json={"event": UNINSTALLED, "target_url": f"{TARGET}/{number}"},
            headers=owner_headers,
        )
        for number in range(3)
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 500]
    assert answers[2].get_json() == {"response": "Not Subscribed"}
    assert len(listed(browser, owner_headers)) == 2


@pytest.mark.parametrize("endpoint", ["unsubscribe", "webhooks"])
def test_faults_apply_to_unsubscribe_and_the_list_too(browser, state, owner_headers, endpoint):
    state.set_fault(endpoint, status=503, times=1)
    path = UNSUBSCRIBE if endpoint == "unsubscribe" else WEBHOOKS
    method = "POST" if endpoint == "unsubscribe" else "GET"
    response = browser.open(
        path, method=method, json={"target_url": TARGET}, headers=owner_headers
    )
    assert response.status_code == 503


def test_subscribe_and_unsubscribe_requests_are_recorded(browser, state, owner_headers):
    body = {"event": UNINSTALLED, "target_url": TARGET}
    browser.post(SUBSCRIBE, json=body, headers=owner_headers)
    browser.post(SUBSCRIBE, json=body, headers=owner_headers)
    browser.post(UNSUBSCRIBE, json=body, headers=owner_headers)
    subscribed = state.recorded_requests("subscribe")
    assert [(r["method"], r["path"], r["status"]) for r in subscribed] == [
        ("POST", SUBSCRIBE, 200),
        ("POST", SUBSCRIBE, 422),
    ]
    assert subscribed[0]["body"] == body and subscribed[0]["peer"].startswith("127.0.0.1:")
    assert [r["status"] for r in state.recorded_requests("unsubscribe")] == [200]
    recorded = browser.get("/_sandbox/requests").get_json()
    assert recorded["subscribe"][0]["body"] == body
    assert recorded["subscribe"][0]["headers"]["Authorization"] == "Bearer ********"
    assert [r["status"] for r in recorded["unsubscribe"]] == [200]


def test_the_control_api_lists_every_businesss_subscriptions(browser, owner_headers, new_token):
    browser.post(
        SUBSCRIBE, json={"event": UNINSTALLED, "target_url": TARGET}, headers=owner_headers
    )
    browser.post(
        SUBSCRIBE,
        json={"event": "client/updated", "target_url": TARGET},
        headers=bearer(new_token(CEDAR_OWNER)),
    )
    webhooks = browser.get("/_sandbox/webhooks").get_json()["webhooks"]
    assert [(w["business_uid"], w["client_id"], w["event"]) for w in webhooks] == [
        (HARBOR, CLIENT_ID, UNINSTALLED),
        ("9da2a88d42e6ff59", CLIENT_ID, "client/updated"),
    ]
    assert {w["target_url"] for w in webhooks} == {TARGET}
    assert all(isinstance(w["created_at"], int) for w in webhooks)


def test_reset_forgets_subscriptions(browser, state, owner_headers, new_token):
    browser.post(
        SUBSCRIBE, json={"event": UNINSTALLED, "target_url": TARGET}, headers=owner_headers
    )
    state.reset()
    assert state.subscriptions() == []
    assert listed(browser, bearer(new_token())) == []


@pytest.mark.parametrize(
    ("method", "path"), [("GET", SUBSCRIBE), ("GET", UNSUBSCRIBE), ("POST", WEBHOOKS)]
)
def test_other_methods_get_405_in_vcitas_error_shape(browser, method, path):
    response = browser.open(path, method=method)
    assert response.status_code == 405
    assert response.get_json()["status"] == "Error"
