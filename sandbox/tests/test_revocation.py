"""POST /platform/v1/tokens/revoke: vcita's "Revoke Token", its answers, faults and after."""

from __future__ import annotations

import pytest

from .conftest import (
    CLIENT_ID,
    OWNER_UID,
    SESSION_COOKIE,
    STAFF_UID,
    authorize_url,
    bearer,
    log_in,
)

REVOKE = "/platform/v1/tokens/revoke"
CEDAR_OWNER = "6df31cfb24107721"  # Daniel O'Brien, another business
CONSENT = "wants to access your vcita account"


def test_a_token_revokes_itself_with_201_and_is_refused_everywhere_after(
    browser, new_token, state
):
    token = new_token(OWNER_UID)

    response = browser.post(REVOKE, json={"token": token}, headers=bearer(token))

    assert response.status_code == 201
    assert response.get_json() == {"status": "OK", "data": {"revoked_tokens": [token]}}
    assert response.headers["Cache-Control"] == "no-store"
    assert not state.is_token_active(token)
    for method, path in [
        ("GET", "/oauth/userinfo"),
        ("GET", "/platform/v1/clients"),
        ("GET", "/platform/v1/webhooks"),
        ("POST", "/platform/v1/webhook/unsubscribe"),
    ]:
        refused = browser.open(path, method=method, json={}, headers=bearer(token))
        assert refused.status_code == 401, path
        assert refused.headers["WWW-Authenticate"].startswith("Bearer ")


def test_revoking_again_with_the_revoked_token_is_401(browser, new_token):
    token = new_token(OWNER_UID)
    assert browser.post(REVOKE, json={"token": token}, headers=bearer(token)).status_code == 201

    again = browser.post(REVOKE, json={"token": token}, headers=bearer(token))

    assert again.status_code == 401
    assert again.get_json() == {"status": "Error", "message": "Unauthorized"}
    assert again.headers["WWW-Authenticate"].startswith("Bearer ")


@pytest.mark.parametrize(
    "named",
    [
        pytest.param(lambda token, other: "f" * 64, id="never-issued"),
        pytest.param(lambda token, other: other, id="already-revoked"),
        pytest.param(lambda token, other: None, id="no-token-in-the-body"),
        pytest.param(lambda token, other: 12345, id="not-a-string"),
    ],
)
def test_a_token_vcita_does_not_know_is_422_invalid_token(browser, new_token, named):
    other = new_token(STAFF_UID)
    browser.post(REVOKE, json={"token": other}, headers=bearer(other))  # revoked
    token = new_token(OWNER_UID)

    response = browser.post(REVOKE, json={"token": named(token, other)}, headers=bearer(token))

    assert response.status_code == 422
    assert response.get_json() == {"status": "Error", "error": "invalid token"}
    assert browser.get("/oauth/userinfo", headers=bearer(token)).status_code == 200


def test_a_staff_token_may_not_revoke_another_staff_members_token(browser, new_token, state):
    owners = new_token(OWNER_UID)
    colleagues = new_token(STAFF_UID)  # the same business, another staff member
    strangers = new_token(CEDAR_OWNER)

    for other in (colleagues, strangers):
        response = browser.post(REVOKE, json={"token": other}, headers=bearer(owners))
        assert response.status_code == 422
        assert response.get_json() == {"status": "Error", "error": "Unauthorized"}
        assert state.is_token_active(other)


@pytest.mark.sandbox_settings(SANDBOX_REUSE_ACCESS_TOKEN="false")
def test_a_staff_token_may_revoke_another_token_of_the_same_staff_member(
    browser, new_token, state
):
    first, second = new_token(OWNER_UID), new_token(OWNER_UID)
    assert first != second

    response = browser.post(REVOKE, json={"token": first}, headers=bearer(second))

    assert response.status_code == 201
    assert not state.is_token_active(first)
    assert state.is_token_active(second)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-bearer"),
        pytest.param(bearer("f" * 64), id="unknown-bearer"),
        pytest.param({"Authorization": "Basic dGVzdDp0ZXN0"}, id="basic"),
    ],
)
def test_a_bearer_vcita_does_not_accept_is_401(browser, new_token, state, headers):
    token = new_token(OWNER_UID)

    response = browser.post(REVOKE, json={"token": token}, headers=headers)

    assert response.status_code == 401
    assert response.get_json() == {"status": "Error", "message": "Unauthorized"}
    assert state.is_token_active(token)


@pytest.mark.parametrize(
    ("spec", "status"),
    [
        pytest.param({"status": 500}, 500, id="500"),
        pytest.param({"status": 503}, 503, id="503"),
        pytest.param({"status": 429, "headers": {"Retry-After": "120"}}, 429, id="429"),
    ],
)
def test_a_fault_answers_instead_and_revokes_nothing(browser, new_token, state, spec, status):
    token = new_token(OWNER_UID)
    state.set_fault("revoke", **spec)

    response = browser.post(REVOKE, json={"token": token}, headers=bearer(token))

    assert response.status_code == status
    assert state.is_token_active(token)
    (recorded,) = state.recorded_requests("revoke")
    assert recorded["status"] == status
    assert recorded["fault"] == {"endpoint": "revoke", **spec}
    assert recorded["body"] == {"token": token}
    assert recorded["headers"]["Authorization"] == f"Bearer {token}"


def test_a_delayed_revoke_is_processed_after_the_delay(browser, new_token, state):
    # A client that timed out meanwhile does not know; the token is revoked all the same.
    token = new_token(OWNER_UID)
    state.set_fault("revoke", delay=0.05, times=1)

    response = browser.post(REVOKE, json={"token": token}, headers=bearer(token))

    assert response.status_code == 201
    assert not state.is_token_active(token)


def test_the_control_api_shows_revoke_requests_with_the_token_masked(browser, new_token):
    token = new_token(OWNER_UID)
    browser.post(REVOKE, json={"token": token}, headers=bearer(token))

    recorded = browser.get("/_sandbox/requests").get_json()["revoke"]

    assert len(recorded) == 1
    assert token not in str(recorded)
    assert recorded[0]["status"] == 201


def test_consent_is_asked_again_after_the_token_is_revoked(browser, new_token):
    token = new_token(OWNER_UID)
    browser.delete_cookie(SESSION_COOKIE)
    page = log_in(browser, browser.get(authorize_url()), OWNER_UID)
    assert page.status_code == 302  # a live token: vcita asks nothing
    browser.post(REVOKE, json={"token": token}, headers=bearer(token))
    browser.delete_cookie(SESSION_COOKIE)

    page = log_in(browser, browser.get(authorize_url(client_id=CLIENT_ID)), OWNER_UID)

    assert page.status_code == 200
    assert CONSENT in page.get_data(as_text=True)
