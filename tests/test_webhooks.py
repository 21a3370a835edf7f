"""When the business uninstalls the app: vcita's application/uninstalled webhook.

vcita signs nothing and documents no payload, so a delivery is a hint: it only makes
the app ask vcita (userinfo with the stored token), and only vcita's 401 forgets the
connection. Subscribing never fails a connect; Disconnect unsubscribes, best effort.
"""

import logging

import pytest

from sandbox.testing import ServerThread

from .conftest import approved_callback

PUBLIC = "https://connect.example"


@pytest.fixture
def public_app(make_app):
    return make_app(PUBLIC_BASE_URL=PUBLIC)


def connect(app, person):
    browser = app.test_client()
    assert browser.get(approved_callback(browser, person)).status_code == 303
    return browser


def only_connection(app):
    store = app.extensions["token_store"]
    with app.app_context():
        rows = store.list_connections()
        return store.get_connection(rows[0].id) if rows else None


def subscribed_url(app) -> str | None:
    connection = only_connection(app)
    with app.app_context():
        return app.extensions["token_store"].subscription_of(connection.id)


def deliver(app, path: str, body=b'{"event": "application/uninstalled"}', **kwargs):
    response = app.test_client().post(path, data=body, content_type="application/json", **kwargs)
    app.extensions["webhook_confirmations"].wait()
    return response


def revoke_everything(vcita_server) -> None:
    vcita_server.sandbox.test_client().post("/_sandbox/revoke", json={})


# --- Receiving a delivery -----------------------------------------------------------------


@pytest.fixture
def with_subscription(app, person):
    """A connected app whose connection holds a known webhook secret."""
    connect(app, person)
    connection = only_connection(app)
    with app.app_context():
        app.extensions["token_store"].save_subscription(
            connection.id, "known-secret", f"{PUBLIC}/webhooks/vcita/known-secret"
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
    caplog.set_level(logging.INFO, logger="app.webhooks")
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


def test_a_delivery_needs_no_csrf_token_and_gets_no_cookie(with_subscription):
    response = deliver(with_subscription, "/webhooks/vcita/known-secret")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers


def test_only_a_post_is_a_delivery(with_subscription):
    assert with_subscription.test_client().get("/webhooks/vcita/known-secret").status_code == 405
