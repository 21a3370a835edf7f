"""Step 3: POST /oauth/token exchanges a code for an access token, once."""

from __future__ import annotations

import base64
import re
import time
from urllib.parse import quote_plus

import pytest

from sandbox.state import TOKEN_LIFETIME, s256

from .conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    OTHER_REDIRECT_URI,
    OWNER_UID,
    REDIRECT_URI,
    STAFF_UID,
    bearer,
    token_body,
)

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
YEAR = 365 * 86400


def basic(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> dict[str, str]:
    """Return an HTTP Basic header, id and secret form-encoded first (RFC 6749 §2.3.1)."""
    pair = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def assert_token_response(response) -> dict:
    """Check the 200 is exactly vcita's documented shape, a new token, and uncacheable."""
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in", "created_at"}
    assert re.fullmatch(r"[0-9a-f]{64}", body["access_token"])
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 631139040  # a new token's whole lifetime, as vcita's example
    assert isinstance(body["created_at"], int) and abs(body["created_at"] - time.time()) < 5
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    return body


def assert_error(response, status: int, error: str) -> dict:
    """Check an OAuth error: status, shape, no secret echoed, uncacheable."""
    assert response.status_code == status
    body = response.get_json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    assert CLIENT_SECRET not in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    return body


def test_documented_json_body_gets_token(browser, new_code, state):
    body = assert_token_response(browser.post("/oauth/token", json=token_body(new_code())))
    assert state.token_owner(body["access_token"]) == OWNER_UID


def test_form_encoded_body_gets_token(browser, new_code):
    assert_token_response(browser.post("/oauth/token", data=token_body(new_code())))


def test_http_basic_client_authentication_gets_token(browser, new_code):
    body = token_body(new_code(), client_id=None, client_secret=None)
    assert_token_response(browser.post("/oauth/token", data=body, headers=basic()))


def test_http_basic_with_client_id_also_in_body_gets_token(browser, new_code):
    body = token_body(new_code(), client_secret=None)
    assert_token_response(browser.post("/oauth/token", json=body, headers=basic()))


@pytest.mark.sandbox_settings(SANDBOX_CLIENT_SECRET="s3cret:with/odd+chars é")
def test_http_basic_credentials_are_form_decoded(browser, new_code):
    body = token_body(new_code(), client_id=None, client_secret=None)
    headers = basic(secret="s3cret:with/odd+chars é")
    assert_token_response(browser.post("/oauth/token", data=body, headers=headers))


@pytest.mark.parametrize(
    "missing", ["grant_type", "code", "client_id", "client_secret", "redirect_uri"]
)
@pytest.mark.parametrize("encoding", ["json", "data"])
def test_missing_field_is_invalid_request(browser, new_code, state, missing, encoding):
    body = token_body(new_code(), **{missing: None})
    response = browser.post("/oauth/token", **{encoding: body})
    assert missing in assert_error(response, 400, "invalid_request")["error_description"]
    assert state.token_requests[-1]["status"] == 400


@pytest.mark.parametrize("empty", ["code", "client_secret", "redirect_uri"])
def test_empty_field_counts_as_missing(browser, new_code, empty):
    response = browser.post("/oauth/token", json=token_body(new_code(), **{empty: ""}))
    assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    ("request_kwargs", "says"),
    [
        ({"data": "not json", "content_type": "application/json"}, "JSON object"),
        ({"json": ["grant_type", "authorization_code"]}, "JSON object"),
        ({"json": {**token_body("c"), "code": 123}}, "code must be a string"),
        (
            {"data": "grant_type=authorization_code", "content_type": "text/plain"},
            "application/json",
        ),
        ({}, "application/json"),
        ({"data": "code=a&code=b&grant_type=authorization_code"}, "Repeated parameter: code"),
    ],
)
def test_unreadable_body_is_invalid_request(browser, request_kwargs, says):
    if "data" in request_kwargs and "content_type" not in request_kwargs:
        request_kwargs["content_type"] = "application/x-www-form-urlencoded"
    response = browser.post("/oauth/token", **request_kwargs)
    assert says in assert_error(response, 400, "invalid_request")["error_description"]


def test_secret_in_body_and_basic_is_invalid_request(browser, new_code):
    response = browser.post("/oauth/token", json=token_body(new_code()), headers=basic())
    assert_error(response, 400, "invalid_request")


def test_basic_client_id_differing_from_body_is_invalid_request(browser, new_code):
    body = token_body(new_code(), client_id="other", client_secret=None)
    assert_error(browser.post("/oauth/token", json=body, headers=basic()), 400, "invalid_request")


@pytest.mark.parametrize("grant_type", ["client_credentials", "refresh_token", "password", "code"])
def test_other_grant_type_is_unsupported(browser, new_code, grant_type):
    body = token_body(new_code(), grant_type=grant_type)
    assert_error(browser.post("/oauth/token", json=body), 400, "unsupported_grant_type")


@pytest.mark.parametrize(
    "credentials",
    [
        {"client_secret": "wrong-secret"},
        {"client_secret": CLIENT_SECRET + "x"},
        {"client_secret": CLIENT_SECRET[:-1]},
        {"client_id": "someone-else"},
        {"client_id": CLIENT_ID.upper()},
        {"client_secret": "ünïcode"},
    ],
)
def test_bad_client_credentials_in_body_are_invalid_client(browser, new_code, state, credentials):
    code = new_code()
    response = browser.post("/oauth/token", json=token_body(code, **credentials))
    body = assert_error(response, 401, "invalid_client")
    assert body["error_description"].startswith("Client authentication failed.")
    assert "WWW-Authenticate" not in response.headers
    assert credentials.get("client_secret", "-") not in response.get_data(as_text=True)
    # The code survives a failed client authentication.
    assert_token_response(browser.post("/oauth/token", json=token_body(code)))


@pytest.mark.parametrize(
    "authorization",
    [
        basic(secret="wrong-secret")["Authorization"],
        basic(client_id="someone-else")["Authorization"],
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b":secret-only").decode(),
        "Basic",
    ],
)
def test_bad_basic_credentials_are_invalid_client_with_challenge(browser, new_code, authorization):
    body = token_body(new_code(), client_id=None, client_secret=None)
    response = browser.post("/oauth/token", data=body, headers={"Authorization": authorization})
    assert_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"] == 'Basic realm="vcita"'


def test_unknown_code_is_invalid_grant(browser):
    response = browser.post("/oauth/token", json=token_body("no-such-code"))
    assert "unknown" in assert_error(response, 400, "invalid_grant")["error_description"]


def test_code_is_exchanged_once(browser, new_code):
    code = new_code()
    assert_token_response(browser.post("/oauth/token", json=token_body(code)))
    second = browser.post("/oauth/token", json=token_body(code))
    assert "already used" in assert_error(second, 400, "invalid_grant")["error_description"]


def test_reused_code_revokes_first_token(browser, new_code, state):
    code = new_code()
    first = assert_token_response(browser.post("/oauth/token", json=token_body(code)))
    assert state.is_token_active(first["access_token"])
    browser.post("/oauth/token", json=token_body(code))
    assert not state.is_token_active(first["access_token"])
    userinfo = browser.get("/oauth/userinfo", headers=bearer(first["access_token"]))
    assert userinfo.status_code == 401


# --- Connecting again: Doorkeeper's reuse_access_token ------------------------------------


def test_a_staff_member_holding_a_live_token_gets_that_token_back(browser, new_code, state):
    first = assert_token_response(browser.post("/oauth/token", json=token_body(new_code())))
    state.age_tokens(3 * YEAR)  # they connect again three years later

    response = browser.post("/oauth/token", json=token_body(new_code()))

    assert response.status_code == 200
    again = response.get_json()
    assert set(again) == {"access_token", "token_type", "expires_in", "created_at"}
    assert again["access_token"] == first["access_token"]
    assert again["token_type"] == "Bearer"
    assert again["created_at"] == first["created_at"] - 3 * YEAR  # when it was first issued
    # The time it has left: three years (and the moment these requests took) less.
    assert TOKEN_LIFETIME - 3 * YEAR - 5 < again["expires_in"] <= TOKEN_LIFETIME - 3 * YEAR
    assert response.headers["Cache-Control"] == "no-store"
    assert state.is_token_active(first["access_token"])


@pytest.mark.sandbox_settings(SANDBOX_REUSE_ACCESS_TOKEN="false")
def test_without_reuse_each_code_gets_a_new_token(browser, new_code, state):
    first = assert_token_response(browser.post("/oauth/token", json=token_body(new_code())))
    state.age_tokens(3 * YEAR)

    again = assert_token_response(browser.post("/oauth/token", json=token_body(new_code())))

    assert again["access_token"] != first["access_token"]
    assert state.is_token_active(first["access_token"]) and state.is_token_active(
        again["access_token"]
    )


@pytest.mark.parametrize(
    ("staff_uid", "scope", "meanwhile"),
    [
        pytest.param(STAFF_UID, None, None, id="another staff member"),
        pytest.param(OWNER_UID, "openid", None, id="another scope"),
        pytest.param(
            OWNER_UID, None, lambda state: state.revoke_tokens_of([OWNER_UID]), id="revoked"
        ),
        pytest.param(
            OWNER_UID, None, lambda state: state.age_tokens(TOKEN_LIFETIME), id="expired"
        ),
    ],
)
def test_only_a_live_token_of_the_same_staff_member_and_scope_is_given_back(
    browser, new_code, state, staff_uid, scope, meanwhile
):
    first = assert_token_response(browser.post("/oauth/token", json=token_body(new_code())))
    if meanwhile:
        meanwhile(state)

    code = new_code(staff_uid, scope=scope)
    again = assert_token_response(browser.post("/oauth/token", json=token_body(code)))

    assert again["access_token"] != first["access_token"]
    assert state.token_owner(again["access_token"]) == staff_uid


def test_a_token_is_refused_once_its_lifetime_is_over(browser, new_token, state):
    token = new_token()
    state.age_tokens(TOKEN_LIFETIME - 60)
    headers = bearer(token)
    assert browser.get("/oauth/userinfo", headers=headers).status_code == 200

    state.age_tokens(60)

    assert browser.get("/oauth/userinfo", headers=headers).status_code == 401


@pytest.mark.sandbox_settings(SANDBOX_CODE_LIFETIME="0.2")
def test_expired_code_is_invalid_grant(browser, new_code):
    code = new_code()
    time.sleep(0.25)
    response = browser.post("/oauth/token", json=token_body(code))
    assert "expired" in assert_error(response, 400, "invalid_grant")["error_description"]


@pytest.mark.sandbox_settings(SANDBOX_CODE_LIFETIME="0.2")
def test_code_within_its_lifetime_is_accepted(browser, new_code):
    assert_token_response(browser.post("/oauth/token", json=token_body(new_code())))


def test_code_for_another_redirect_uri_is_invalid_grant(browser, new_code):
    code = new_code(redirect_uri=OTHER_REDIRECT_URI)
    response = browser.post("/oauth/token", json=token_body(code, redirect_uri=REDIRECT_URI))
    assert "redirect_uri" in assert_error(response, 400, "invalid_grant")["error_description"]
    # The right redirect_uri still works: a failed attempt does not burn the code.
    ok = browser.post("/oauth/token", json=token_body(code, redirect_uri=OTHER_REDIRECT_URI))
    assert_token_response(ok)


def test_code_issued_to_another_client_is_invalid_grant(browser, state):
    # Only one client is registered, so another client's code is made directly.
    pending = state.start_authorization(
        client_id="another-app",
        redirect_uri=REDIRECT_URI,
        state=None,
        code_challenge=None,
        scope=None,
    )
    code = state.issue_code(pending, OWNER_UID)
    response = browser.post("/oauth/token", json=token_body(code))
    assert "another client" in assert_error(response, 400, "invalid_grant")["error_description"]


PKCE = {"code_challenge": s256(VERIFIER), "code_challenge_method": "S256"}


@pytest.mark.parametrize("encoding", ["json", "data"])
def test_pkce_code_needs_its_matching_verifier(browser, new_code, encoding):
    body = token_body(new_code(**PKCE), code_verifier=VERIFIER)
    assert_token_response(browser.post("/oauth/token", **{encoding: body}))


@pytest.mark.parametrize(
    "verifier",
    [
        None,
        "",
        VERIFIER[:-1] + "Y",
        VERIFIER[:42],  # too short for RFC 7636 §4.1
        s256(VERIFIER),  # the challenge itself
        "é" * 43,
    ],
)
def test_pkce_code_without_matching_verifier_is_invalid_grant(browser, new_code, verifier):
    body = token_body(new_code(**PKCE), code_verifier=verifier)
    assert_error(browser.post("/oauth/token", json=body), 400, "invalid_grant")


def test_verifier_for_code_without_pkce_is_invalid_grant(browser, new_code):
    body = token_body(new_code(), code_verifier=VERIFIER)
    assert_error(browser.post("/oauth/token", json=body), 400, "invalid_grant")


def test_s256_matches_rfc_7636_appendix_b():
    assert s256(VERIFIER) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_token_endpoint_takes_only_post(browser, method):
    response = browser.open("/oauth/token", method=method)
    assert response.status_code == 405
    assert response.get_json()["error"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_every_token_request_is_recorded_with_its_status(browser, new_code, state):
    code = new_code()
    browser.post("/oauth/token", json=token_body(code))
    browser.post("/oauth/token", data=token_body(code), headers={"X-Trace": "2"})
    first, second = state.token_requests
    assert first["method"] == "POST" and first["path"] == "/oauth/token"
    assert first["content_type"] == "application/json"
    assert first["body"] == token_body(code)
    assert first["status"] == 200
    assert second["content_type"] == "application/x-www-form-urlencoded"
    assert second["body"] == token_body(code)
    assert second["headers"]["X-Trace"] == "2"
    assert second["status"] == 400


def test_parameters_in_the_url_query_are_ignored(browser, new_code):
    # RFC 6749 §3.2 and §2.3.1: parameters and credentials travel in the body, not the URI.
    query = "&".join(f"{name}={value}" for name, value in token_body(new_code()).items())
    response = browser.post(f"/oauth/token?{query}")
    assert_error(response, 400, "invalid_request")
