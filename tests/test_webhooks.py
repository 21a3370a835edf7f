"""When the business uninstalls the app: vcita's application/uninstalled webhook.

vcita signs nothing and documents no payload, so a delivery is a hint: it only makes
the app ask vcita (userinfo with the stored token), and only vcita's 401 forgets the
connection. Subscribing never fails a connect; Disconnect unsubscribes, best effort.
"""

import io
import logging

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from app.token_use.webhooks import MAX_DELIVERY_BYTES
from sandbox.testing import ServerThread

from .conftest import finish_background_work, only_connection, stored
from .servers import DeferredApp, development_server

PUBLIC = "https://connect.example"


@pytest.fixture
def public_app(make_app):
    return make_app(PUBLIC_BASE_URL=PUBLIC)


def subscribed_url(app) -> str | None:
    return stored(app).subscriptions.target_url_of(only_connection(app).id)


def deliver(app, path: str, body=b'{"event": "application/uninstalled"}', **kwargs):
    response = app.test_client().post(path, data=body, content_type="application/json", **kwargs)
    finish_background_work(app)
    return response


class Trickle:
    """A request body that arrives at most `piece` bytes a read, as from a slow sender."""

    def __init__(self, body: bytes, piece: int):
        self.body, self.piece = io.BytesIO(body), piece

    def read(self, size: int = -1) -> bytes:
        return self.body.read(self.piece if size < 0 else min(size, self.piece))


def deliver_chunked(app, path: str, body: bytes, piece: int = 64 * 1024):
    """Deliver `body` as a server hands on a chunked request: without CONTENT_LENGTH, in a
    stream the server ends itself (`wsgi.input_terminated`, as gunicorn and Werkzeug's
    development server set), `piece` bytes a read at most."""
    environ = EnvironBuilder(
        path=path, method="POST", content_type="application/json"
    ).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ.update(
        {
            "wsgi.input": Trickle(body, piece),
            "wsgi.input_terminated": True,
            "HTTP_TRANSFER_ENCODING": "chunked",
        }
    )
    response = app.test_client().open(Request(environ))
    finish_background_work(app)
    return response


def revoke_everything(vcita_server) -> None:
    vcita_server.sandbox.test_client().post("/_sandbox/revoke", json={})


# --- Receiving a delivery -----------------------------------------------------------------


@pytest.fixture
def with_subscription(app, browser):
    """A connected app whose connection holds a known webhook secret."""
    assert browser.connect().status_code == 303
    finish_background_work(app)
    stored(app).subscriptions.save(
        only_connection(app).id, "known-secret", f"{PUBLIC}/webhooks/vcita/known-secret"
    )
    return app


def test_a_delivery_to_an_unknown_secret_is_a_404_and_does_nothing(
    with_subscription, vcita_server, vcita
):
    revoke_everything(vcita_server)  # even when vcita would confirm an uninstall
    asked = len(vcita.userinfo_requests)
    response = deliver(with_subscription, "/webhooks/vcita/wrong-secret")
    assert response.status_code == 404
    assert len(vcita.userinfo_requests) == asked  # vcita was not even asked
    assert only_connection(with_subscription) is not None


def test_a_confirmed_uninstall_forgets_the_connection(with_subscription, vcita_server):
    revoke_everything(vcita_server)
    response = deliver(with_subscription, "/webhooks/vcita/known-secret")
    assert response.status_code == 200
    assert only_connection(with_subscription) is None


def test_an_unconfirmed_delivery_changes_nothing(with_subscription, vcita, caplog):
    caplog.set_level(logging.INFO, logger="app.token_use")
    response = deliver(with_subscription, "/webhooks/vcita/known-secret")
    assert response.status_code == 200
    assert only_connection(with_subscription) is not None
    assert "still accepts the token" in caplog.text


def test_vcita_not_answering_keeps_the_connection(with_subscription, vcita):
    vcita.set_fault("userinfo", status=503)
    response = deliver(with_subscription, "/webhooks/vcita/known-secret")
    assert response.status_code == 200
    assert only_connection(with_subscription) is not None


def test_the_same_delivery_twice_is_harmless(with_subscription, vcita_server):
    revoke_everything(vcita_server)
    assert deliver(with_subscription, "/webhooks/vcita/known-secret").status_code == 200
    # The connection (and its secret) is gone: the second is an unknown secret.
    assert deliver(with_subscription, "/webhooks/vcita/known-secret").status_code == 404


def test_a_delivery_over_the_size_limit_is_refused(with_subscription, vcita_server):
    revoke_everything(vcita_server)
    response = deliver(with_subscription, "/webhooks/vcita/known-secret", body=b"x" * 20_000)
    assert response.status_code == 413
    assert only_connection(with_subscription) is not None


@pytest.mark.parametrize("size", [MAX_DELIVERY_BYTES + 1, 17 * 1024, 1024 * 1024])
def test_a_chunked_delivery_over_the_size_limit_is_refused_and_nothing_is_asked(
    with_subscription, vcita_server, vcita, size
):
    revoke_everything(vcita_server)  # acting on it would forget the connection
    asked = len(vcita.userinfo_requests)
    response = deliver_chunked(with_subscription, "/webhooks/vcita/known-secret", b"x" * size)
    assert response.status_code == 413
    assert len(vcita.userinfo_requests) == asked  # vcita was not asked to confirm
    assert only_connection(with_subscription) is not None


@pytest.mark.parametrize("size", [0, 15 * 1024, MAX_DELIVERY_BYTES])
def test_a_chunked_delivery_within_the_limit_is_taken(
    with_subscription, vcita_server, vcita, size
):
    revoke_everything(vcita_server)
    asked = len(vcita.userinfo_requests)
    response = deliver_chunked(with_subscription, "/webhooks/vcita/known-secret", b"x" * size)
    assert response.status_code == 200
    assert len(vcita.userinfo_requests) == asked + 1  # vcita asked, and confirmed
    assert only_connection(with_subscription) is None


def sent_in_chunks(size: int):
    """A body of `size` bytes that requests sends with Transfer-Encoding: chunked."""
    for start in range(0, size, 1000):
        yield b"x" * min(1000, size - start)


@pytest.mark.parametrize("server", ["development server", "waitress"])
def test_a_chunked_delivery_over_http_is_bounded_by_each_server_the_app_runs_on(
    with_subscription, vcita_server, vcita, server
):
    # `make run` serves the app with Werkzeug's server, which dechunks and ends the body
    # itself; waitress buffers the body and sets its length. gunicorn: tests/test_serve.py.
    revoke_everything(vcita_server)
    asked = len(vcita.userinfo_requests)
    if server == "waitress":
        serving = ServerThread(with_subscription)
    else:
        serving = development_server(with_subscription)
    with serving as served:
        url = f"{served.url}/webhooks/vcita/known-secret"
        too_long = requests.post(url, data=sent_in_chunks(17 * 1024), timeout=10)
        finish_background_work(with_subscription)
    assert too_long.request.headers["Transfer-Encoding"] == "chunked"
    assert too_long.status_code == 413
    assert len(vcita.userinfo_requests) == asked
    assert only_connection(with_subscription) is not None


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    size=st.one_of(
        st.integers(0, 3 * MAX_DELIVERY_BYTES),
        st.integers(MAX_DELIVERY_BYTES - 2, MAX_DELIVERY_BYTES + 2),
    ),
    piece=st.integers(1, 2 * MAX_DELIVERY_BYTES),
)
def test_any_body_without_a_length_is_bounded_before_anything_else(app, size, piece):
    # An unknown secret answers 404 only after the body passed the bound: so the status
    # says which came first, for every size and however the body arrives.
    response = deliver_chunked(app, "/webhooks/vcita/unknown", b"x" * size, piece=piece)
    assert response.status_code == (413 if size > MAX_DELIVERY_BYTES else 404)


def test_a_delivery_needs_no_csrf_token_and_gets_no_cookie(with_subscription):
    response = deliver(with_subscription, "/webhooks/vcita/known-secret")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def test_only_a_post_is_a_delivery(with_subscription):
    assert with_subscription.test_client().get("/webhooks/vcita/known-secret").status_code == 405


# --- Subscribing and unsubscribing --------------------------------------------------------


def test_a_connect_subscribes_to_the_uninstall_event_with_a_secret_url(
    public_app, new_browser, vcita
):
    assert new_browser(public_app).connect().status_code == 303
    finish_background_work(public_app)
    (held,) = vcita.subscriptions()
    assert held.event == "application/uninstalled"
    prefix = f"{PUBLIC}/webhooks/vcita/"
    assert held.target_url.startswith(prefix)
    assert len(held.target_url.removeprefix(prefix)) >= 43  # 256 random bits
    assert subscribed_url(public_app) == held.target_url


def test_each_connection_has_a_secret_of_its_own(public_app, new_browser, vcita):
    for staff in ("Maya Goldberg", "Daniel O'Brien"):
        browser = new_browser(public_app)
        browser.get(browser.approve(staff=staff))
    finish_background_work(public_app)
    urls = [held.target_url for held in vcita.subscriptions()]
    assert len(urls) == len(set(urls)) == 2


def test_without_a_public_url_nothing_is_subscribed(app, browser, vcita):
    assert browser.connect().status_code == 303
    finish_background_work(app)
    assert vcita.subscriptions() == []
    assert subscribed_url(app) is None


def test_a_failed_subscription_never_fails_the_connect(public_app, new_browser, vcita, caplog):
    caplog.set_level(logging.WARNING, logger="app.token_use")
    vcita.set_fault("subscribe", status=500, json={"response": "Not Subscribed"})
    browser = new_browser(public_app)
    assert browser.connect().status_code == 303
    finish_background_work(public_app)
    assert browser.dashboard().status_code == 200
    assert subscribed_url(public_app) is None
    assert "Could not subscribe" in caplog.text


def test_connecting_again_keeps_the_one_subscription(public_app, new_browser, vcita):
    for _ in range(2):
        assert new_browser(public_app).connect().status_code == 303
        finish_background_work(public_app)
    assert len(vcita.subscriptions()) == 1


def test_the_connect_does_not_wait_for_the_subscription(public_app, new_browser, vcita):
    vcita.set_fault("subscribe", delay=3)  # vcita slow to subscribe; answers in the end
    browser = new_browser(public_app)
    assert browser.get(browser.approve()).status_code == 303
    assert browser.dashboard().status_code == 200
    assert vcita.subscriptions() == []  # the person already has the dashboard
    finish_background_work(public_app)
    (held,) = vcita.subscriptions()
    assert subscribed_url(public_app) == held.target_url


def test_a_disconnect_before_the_subscription_lands_leaves_none_at_vcita(
    public_app, new_browser, vcita, caplog
):
    vcita.set_fault("subscribe", delay=1, times=1)
    browser = new_browser(public_app)
    assert browser.get(browser.approve()).status_code == 303
    assert browser.disconnect().status_code == 303  # while vcita is still subscribing
    finish_background_work(public_app)
    assert vcita.subscriptions() == []
    assert only_connection(public_app) is None
    assert "failed" not in caplog.text


def test_disconnect_unsubscribes_then_deletes(public_app, new_browser, vcita):
    browser = new_browser(public_app)
    assert browser.connect().status_code == 303
    finish_background_work(public_app)
    assert browser.disconnect().status_code == 303
    assert vcita.subscriptions() == []
    assert only_connection(public_app) is None


def test_a_failed_unsubscribe_is_logged_and_the_token_deleted_anyway(
    public_app, new_browser, vcita, caplog
):
    caplog.set_level(logging.WARNING, logger="app.token_use")
    browser = new_browser(public_app)
    assert browser.connect().status_code == 303
    finish_background_work(public_app)
    vcita.set_fault("unsubscribe", status=503)
    assert browser.disconnect().status_code == 303
    assert only_connection(public_app) is None
    assert "Could not unsubscribe" in caplog.text


def test_an_uninstall_in_the_sandbox_removes_the_connection_within_one_delivery(
    make_app, new_browser, vcita, vcita_server
):
    deferred = DeferredApp()
    with ServerThread(deferred) as served:
        app = make_app(PUBLIC_BASE_URL=served.url)
        deferred.app = app.wsgi_app
        assert new_browser(app).connect().status_code == 303
        finish_background_work(app)
        assert len(vcita.subscriptions()) == 1

        answer = vcita_server.sandbox.test_client().post(
            "/_sandbox/uninstall", json={"business_uid": "7c6dc1589f078b66"}
        )
        assert answer.status_code == 200
        finish_background_work(app)

    (delivery,) = vcita.deliveries
    assert delivery["status"] == 200
    assert only_connection(app) is None


def test_a_forged_delivery_to_a_wrong_secret_changes_nothing(make_app, new_browser, vcita):
    app = make_app(PUBLIC_BASE_URL=PUBLIC)
    assert new_browser(app).connect().status_code == 303
    finish_background_work(app)
    secret = subscribed_url(app).rpartition("/")[2]
    for forged in (secret[:-1], secret + "x", secret.upper(), "", "..%2F" + secret):
        response = deliver(app, f"/webhooks/vcita/{forged}")
        assert response.status_code in (404, 405)
    assert only_connection(app) is not None
