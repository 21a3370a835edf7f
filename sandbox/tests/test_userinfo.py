"""Step 4: GET /oauth/userinfo describes the staff member who approved, and their business."""

from __future__ import annotations

import json

import pytest

from sandbox.settings import DEFAULT_BUSINESSES_FILE

from .conftest import OWNER_UID, STAFF_UID, bearer

DEMO = json.loads(DEFAULT_BUSINESSES_FILE.read_text(encoding="utf-8"))
DEMO_STAFF = [
    (business, member) for business in DEMO["businesses"] for member in business["staff"]
]


@pytest.mark.parametrize(
    ("business", "member"), DEMO_STAFF, ids=[member["name"] for _, member in DEMO_STAFF]
)
def test_userinfo_describes_the_approving_staff_member(browser, new_token, business, member):
    response = browser.get("/oauth/userinfo", headers=bearer(new_token(member["uid"])))
    assert response.status_code == 200
    assert response.get_json() == {
        "brand_host": business["brand_host"],
        "brand_theme": business["brand_theme"],
        "business_id": business["business_uid"],
        "business_name": business["business_name"],
        "business_uid": business["business_uid"],
        "directory_uid": business["directory_uid"],
        "email": member["email"],
        "role": member["role"],
        "sub": member["uid"],
        "type": "staff",
    }


def test_each_token_stays_with_its_own_staff_member(browser, new_token):
    owner_token, staff_token = new_token(OWNER_UID), new_token(STAFF_UID)
    assert browser.get("/oauth/userinfo", headers=bearer(owner_token)).json["sub"] == OWNER_UID
    assert browser.get("/oauth/userinfo", headers=bearer(staff_token)).json["sub"] == STAFF_UID


def test_bearer_scheme_is_case_insensitive(browser, new_token):
    headers = {"Authorization": f"bearer {new_token()}"}
    assert browser.get("/oauth/userinfo", headers=headers).status_code == 200


def test_userinfo_sends_utf8_as_is(browser, new_token):
    response = browser.get("/oauth/userinfo", headers=bearer(new_token("a383717599bf1893")))
    assert "Clínica Dental Sonrisa" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer " + "0" * 64},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Token abc"},
    ],
    ids=["none", "empty", "blank", "unknown", "basic", "other-scheme"],
)
def test_missing_or_invalid_token_gets_401_with_bearer_challenge(browser, state, headers):
    response = browser.get("/oauth/userinfo", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="vcita", error="invalid_token"'
    assert set(response.get_json()) == {"error", "error_description"}
    assert response.get_json()["error"] == "invalid_token"
    assert state.userinfo_requests[-1]["status"] == 401


def test_token_in_query_string_is_not_accepted(browser, new_token):
    response = browser.get(f"/oauth/userinfo?access_token={new_token()}")
    assert response.status_code == 401


def test_revoked_tokens_get_401(browser, new_token, state):
    tokens = [new_token(OWNER_UID), new_token(STAFF_UID)]
    assert state.revoke_all_tokens() == 2
    for token in tokens:
        response = browser.get("/oauth/userinfo", headers=bearer(token))
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert state.revoke_all_tokens() == 0


def test_reset_forgets_tokens(browser, new_token, state):
    token = new_token()
    state.reset()
    assert browser.get("/oauth/userinfo", headers=bearer(token)).status_code == 401


def test_every_userinfo_request_is_recorded(browser, new_token, state):
    token = new_token()
    browser.get("/oauth/userinfo", headers=bearer(token))
    browser.get("/oauth/userinfo")
    first, second = state.userinfo_requests
    assert first["method"] == "GET" and first["path"] == "/oauth/userinfo"
    assert first["headers"]["Authorization"] == f"Bearer {token}"
    assert first["body"] == "" and first["status"] == 200
    assert "Authorization" not in second["headers"] and second["status"] == 401


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_userinfo_takes_only_get(browser, method):
    response = browser.open("/oauth/userinfo", method=method)
    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"
