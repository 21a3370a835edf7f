"""Uninstalling the app from a business: tokens revoked, subscribers told, subscriptions gone.

Deliveries go over real HTTP to small receivers served with ServerThread, as they would
reach an app; the sandbox itself runs in-process.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import pytest

from sandbox.testing import ServerThread

from .conftest import CLIENT_ID, OWNER_UID, STAFF_UID, bearer, form_fields

HARBOR = "7c6dc1589f078b66"
CEDAR = "9da2a88d42e6ff59"
CEDAR_OWNER = "6df31cfb24107721"
SUBSCRIBE = "/platform/v1/webhook/subscribe"
UNINSTALLED = "application/uninstalled"
APP_URL = "http://localhost:5000/"


class Receiver:
    """A tiny WSGI app standing in for an app's webhook endpoint: it keeps what it got."""

    def __init__(self, status: str = "200 OK", headers: list | None = None, hold: bool = False):
        self.status = status
        self.headers = headers or []
        self.received: list[dict[str, Any]] = []
        # When holding, it answers only once released (or after 5 s): a receiver that hangs.
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, environ: dict, start_response: Callable) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.received.append(
            {
                "method": environ["REQUEST_METHOD"],
                "path": environ["PATH_INFO"],
                "query": environ.get("QUERY_STRING", ""),
                "content_type": environ.get("CONTENT_TYPE"),
                "headers": {k[5:]: v for k, v in environ.items() if k.startswith("HTTP_")},
                "body": environ["wsgi.input"].read(length),
            }
        )
        self.release.wait(5)
        start_response(self.status, [("Content-Type", "text/plain"), *self.headers])
        return [b"ok"]


@pytest.fixture
def serve_receiver() -> Iterator[Callable[..., tuple[Receiver, str]]]:
    """Start receivers on free loopback ports; return (receiver, its base URL)."""
    with ExitStack() as servers:

        def serve(**options: Any) -> tuple[Receiver, str]:
            receiver = Receiver(**options)
            server = servers.enter_context(ServerThread(receiver))
            servers.callback(receiver.release.set)  # last in, first out: before the stop
            return receiver, server.url

        yield serve


def subscribe(browser, token: str, target_url: str, event: str = UNINSTALLED) -> None:
    body = {"event": event, "target_url": target_url}
    response = browser.post(SUBSCRIBE, json=body, headers=bearer(token))
    assert response.status_code == 200, response.get_json()


def uninstall(browser, business_uid: str = HARBOR) -> dict[str, Any]:
    response = browser.post("/_sandbox/uninstall", json={"business_uid": business_uid})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def text_of(html: str) -> str:
    """Return the page's text as a reader sees it: entities decoded, spaces collapsed."""
    return " ".join(unescape(html).split())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_uninstall_revokes_every_token_of_the_business_and_no_other(browser, new_token):
    harbor_tokens = [new_token(OWNER_UID), new_token(STAFF_UID)]
    cedar_token = new_token(CEDAR_OWNER)

    answer = uninstall(browser)

    assert answer == {"business_uid": HARBOR, "revoked": 2, "deliveries": []}
    for token in harbor_tokens:
        for path in ("/oauth/userinfo", "/platform/v1/clients", "/platform/v1/webhooks"):
            assert browser.get(path, headers=bearer(token)).status_code == 401, path
    assert browser.get("/oauth/userinfo", headers=bearer(cedar_token)).status_code == 200
    assert browser.get("/platform/v1/clients", headers=bearer(cedar_token)).status_code == 200


def test_uninstall_delivers_the_event_to_a_real_http_receiver(
    browser, state, new_token, serve_receiver
):
    receiver, base_url = serve_receiver()
    target_url = f"{base_url}/webhooks/vcita/s3cr3t?tenant=7"
    subscribe(browser, new_token(), target_url)
    before = datetime.now(UTC) - timedelta(seconds=1)

    answer = uninstall(browser)

    [got] = receiver.received
    assert (got["method"], got["path"], got["query"]) == (
        "POST",
        "/webhooks/vcita/s3cr3t",
        "tenant=7",
    )
    assert got["content_type"] == "application/json"
    assert "AUTHORIZATION" not in got["headers"]  # vcita documents no signature, none is sent
    assert not [name for name in got["headers"] if "SIGNATURE" in name]
    body = json.loads(got["body"])
    assert set(body) == {"event", "business_uid", "client_id", "created_at"}
    assert (body["event"], body["business_uid"], body["client_id"]) == (
        UNINSTALLED,
        HARBOR,
        CLIENT_ID,
    )
    assert datetime.fromisoformat(body["created_at"]) >= before
    [delivery] = answer["deliveries"]
    assert delivery["target_url"] == target_url
    assert (delivery["status"], delivery["error"]) == (200, None)
    assert delivery["body"] == body and delivery["business_uid"] == HARBOR
    assert state.deliveries == [delivery]
    assert browser.get("/_sandbox/deliveries").get_json() == {"deliveries": [delivery]}


def test_only_uninstalled_subscribers_are_told_and_every_subscription_of_the_business_goes(
    browser, state, new_token, serve_receiver
):
    receiver, base_url = serve_receiver()
    harbor, cedar = new_token(), new_token(CEDAR_OWNER)
    subscribe(browser, harbor, f"{base_url}/uninstalled")
    subscribe(browser, harbor, f"{base_url}/created", event="client/created")
    subscribe(browser, cedar, f"{base_url}/cedar")

    answer = uninstall(browser)

    assert [got["path"] for got in receiver.received] == ["/uninstalled"]
    assert len(answer["deliveries"]) == 1
    remaining = browser.get("/_sandbox/webhooks").get_json()["webhooks"]
    assert [(w["business_uid"], w["target_url"]) for w in remaining] == [
        (CEDAR, f"{base_url}/cedar")
    ]


def test_every_subscriber_is_told_in_turn(browser, new_token, serve_receiver):
    first, first_url = serve_receiver()
    second, second_url = serve_receiver()
    token = new_token()
    subscribe(browser, token, f"{first_url}/a")
    subscribe(browser, token, f"{second_url}/b")

    answer = uninstall(browser)

    assert [d["target_url"] for d in answer["deliveries"]] == [f"{first_url}/a", f"{second_url}/b"]
    assert len(first.received) == len(second.received) == 1


def test_failing_receivers_never_fail_the_uninstall(
    browser, state, new_token, serve_receiver, monkeypatch
):
    monkeypatch.setattr("sandbox.uninstall.DELIVERY_TIMEOUT", 0.3)
    _, broken_url = serve_receiver(status="500 Internal Server Error")
    _, hanging_url = serve_receiver(hold=True)
    _, moved_url = serve_receiver(status="302 Found", headers=[("Location", "/elsewhere")])
    good, good_url = serve_receiver()
    refused_url = f"http://127.0.0.1:{free_port()}/hook"
    token = new_token()
    for url in (f"{broken_url}/hook", f"{hanging_url}/hook", f"{moved_url}/hook", refused_url):
        subscribe(browser, token, url)
    subscribe(browser, token, f"{good_url}/hook")

    answer = uninstall(browser)

    outcomes = [(d["status"], d["error"]) for d in answer["deliveries"]]
    assert outcomes == [
        (500, None),
        (None, "ReadTimeout"),
        (302, None),  # not followed
        (None, "ConnectionError"),
        (200, None),
    ]
    assert [got["path"] for got in good.received] == ["/hook"]
    assert answer["revoked"] == 1
    assert browser.get("/oauth/userinfo", headers=bearer(token)).status_code == 401
    assert state.subscriptions() == []
    assert [(d["status"], d["error"]) for d in state.deliveries] == outcomes


def test_uninstalling_again_revokes_and_tells_nobody(browser, new_token, serve_receiver):
    receiver, base_url = serve_receiver()
    subscribe(browser, new_token(), f"{base_url}/hook")
    uninstall(browser)

    assert uninstall(browser) == {"business_uid": HARBOR, "revoked": 0, "deliveries": []}
    assert len(receiver.received) == 1


def test_connecting_again_after_an_uninstall_works(browser, new_token):
    uninstall(browser)
    token = new_token()
    assert browser.get("/platform/v1/clients", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize(
    "payload", [{"business_uid": "nope"}, {}, {"business_uid": ["7c6dc1589f078b66"]}, [HARBOR]]
)
def test_uninstalling_an_unknown_business_is_400(browser, new_token, payload):
    token = new_token()
    response = browser.post("/_sandbox/uninstall", json=payload)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    assert browser.get("/oauth/userinfo", headers=bearer(token)).status_code == 200


def test_reset_forgets_deliveries(browser, state, new_token, serve_receiver):
    _, base_url = serve_receiver()
    subscribe(browser, new_token(), f"{base_url}/hook")
    uninstall(browser)
    state.reset()
    assert state.deliveries == []


# --- The App Market's "Uninstall app" button -------------------------------------------


def shell_page(browser, mode: str, staff: str = OWNER_UID):
    response = browser.get(f"/app-market/open?staff={staff}&mode={mode}")
    assert response.status_code == 200
    return response


@pytest.mark.sandbox_settings(SANDBOX_APP_URL=APP_URL)
@pytest.mark.parametrize("mode", ["frame", "tab"])
def test_the_shell_has_an_uninstall_button_in_both_modes(browser, mode):
    html = shell_page(browser, mode).get_data(as_text=True)
    assert '<form class="shell-app-bar" method="post" action="/app-market/uninstall">' in html
    assert '<button type="submit" class="secondary">Uninstall app</button>' in html
    fields = form_fields(shell_page(browser, mode))
    assert set(fields) == {"csrf_token", "staff", "business"}
    assert (fields["staff"], fields["business"]) == (OWNER_UID, HARBOR)
    assert "vcita Connect is installed for Harbor Light Yoga." in html


@pytest.mark.sandbox_settings(SANDBOX_APP_URL=APP_URL)
@pytest.mark.parametrize("mode", ["frame", "tab"])
def test_pressing_uninstall_app_uninstalls_and_says_so(
    browser, state, new_token, serve_receiver, mode
):
    receiver, base_url = serve_receiver()
    token = new_token(STAFF_UID)
    subscribe(browser, token, f"{base_url}/webhooks/vcita/s3cr3t")
    fields = form_fields(shell_page(browser, mode))

    response = browser.post("/app-market/uninstall", data=fields)

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<h1>vcita Connect was uninstalled from Harbor Light Yoga</h1>" in html
    assert '<a href="/app-market">Back to the App Market</a>' in html
    assert "1 access token now gets 401 from userinfo and the API." in text_of(html)
    assert f"<li><code>{base_url}</code>: answered 200</li>" in text_of(html)
    assert "s3cr3t" not in html  # the target's path is the app's secret
    assert browser.get("/oauth/userinfo", headers=bearer(token)).status_code == 401
    assert len(receiver.received) == 1 and state.subscriptions() == []
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.sandbox_settings(SANDBOX_APP_URL=APP_URL)
def test_the_page_says_when_nobody_was_told(browser):
    fields = form_fields(shell_page(browser, "frame", staff=CEDAR_OWNER))
    html = browser.post("/app-market/uninstall", data=fields).get_data(as_text=True)
    assert "<h1>vcita Connect was uninstalled from Cedar &amp; Pine Law Office</h1>" in html
    assert "0 access tokens now get 401" in text_of(html)
    assert (
        "No webhook subscription asked for <code>application/uninstalled</code>, so nothing"
        " was sent." in text_of(html)
    )


@pytest.mark.sandbox_settings(SANDBOX_APP_URL=APP_URL)
@pytest.mark.parametrize(
    "change",
    [
        {"csrf_token": "forged"},
        {"csrf_token": ""},
    ],
)
def test_an_uninstall_without_the_pages_csrf_token_is_refused(browser, new_token, change):
    token = new_token()
    fields = {**form_fields(shell_page(browser, "frame")), **change}
    response = browser.post("/app-market/uninstall", data=fields)
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert "not sent from the sandbox&#39;s App Market page" in response.get_data(as_text=True)
    assert browser.get("/oauth/userinfo", headers=bearer(token)).status_code == 200


def test_an_uninstall_from_a_browser_that_never_opened_the_page_is_refused(
    sandbox, browser, new_token
):
    token = new_token()
    stranger = sandbox.test_client()  # no session, so no CSRF token to match
    response = stranger.post(
        "/app-market/uninstall", data={"csrf_token": "", "staff": OWNER_UID, "business": HARBOR}
    )
    assert response.status_code == 400
    assert browser.get("/oauth/userinfo", headers=bearer(token)).status_code == 200


@pytest.mark.sandbox_settings(SANDBOX_APP_URL=APP_URL)
@pytest.mark.parametrize(
    "change", [{"business": CEDAR}, {"staff": "nobody"}, {"staff": CEDAR_OWNER, "business": ""}]
)
def test_an_uninstall_naming_no_staff_member_of_the_business_is_404(browser, new_token, change):
    tokens = [new_token(), new_token(CEDAR_OWNER)]
    fields = {**form_fields(shell_page(browser, "frame")), **change}
    response = browser.post("/app-market/uninstall", data=fields)
    assert response.status_code == 404
    for token in tokens:
        assert browser.get("/oauth/userinfo", headers=bearer(token)).status_code == 200
