"""Step 2: the authorize request, the login and consent pages, and the redirect back."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest

from sandbox.state import TOKEN_LIFETIME, s256
from sandbox.testing import SandboxPageError, SandboxPerson

from .conftest import (
    CLIENT_ID,
    OTHER_REDIRECT_URI,
    OWNER_UID,
    REDIRECT_URI,
    SESSION_COOKIE,
    STAFF_UID,
    authorize_url,
    decide,
    form_fields,
    log_in,
    redirect_params,
    token_body,
)

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
HARBOR = "7c6dc1589f078b66"  # Harbor Light Yoga: Maya Goldberg (OWNER_UID), Leo Martins
CONSENT = "wants to access your vcita account"


def approved_code(browser, staff_uid: str = OWNER_UID, **params: str) -> str:
    """Log in and press Allow in `browser`; return the code."""
    consent = log_in(browser, browser.get(authorize_url(**params)), staff_uid)
    return redirect_params(decide(browser, consent, "allow"))["code"]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"client_id": None}, "exactly one client_id"),
        ({"client_id": "someone-else"}, "No app is registered with client_id"),
        ({"redirect_uri": None}, "exactly one redirect_uri"),
        ({"redirect_uri": "https://evil.example/callback"}, "is not registered"),
        ({"redirect_uri": REDIRECT_URI + "/"}, "is not registered"),
        ({"redirect_uri": REDIRECT_URI + "?x=1"}, "is not registered"),
        ({"redirect_uri": REDIRECT_URI.replace("5000", "5001")}, "is not registered"),
        ({"redirect_uri": REDIRECT_URI.upper()}, "is not registered"),
        ({"redirect_uri": "http://localhost:5000/callbackX"}, "is not registered"),
        # A bad response_type is not reported to an unregistered redirect URI either.
        ({"redirect_uri": "https://evil.example/", "response_type": "token"}, "not registered"),
    ],
)
def test_unregistered_redirect_uri_shows_error_page_not_redirect(browser, params, says):
    response = browser.get(authorize_url(**params))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"
    assert says in response.get_data(as_text=True)


@pytest.mark.parametrize("name", ["client_id", "redirect_uri"])
def test_repeated_client_id_or_redirect_uri_shows_error_page(browser, name):
    value = CLIENT_ID if name == "client_id" else REDIRECT_URI
    response = browser.get(authorize_url() + "&" + urlencode({name: value}))
    assert response.status_code == 400
    assert "Location" not in response.headers


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code id_token"}, "unsupported_response_type"),
        ({"response_type": ""}, "unsupported_response_type"),
        ({"code_challenge": s256(VERIFIER), "code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": s256(VERIFIER)}, "invalid_request"),  # method defaults to plain
        ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request"),
        ({"code_challenge_method": "S256"}, "invalid_request"),
    ],
)
def test_bad_request_from_registered_client_redirects_back_with_error(browser, params, error):
    response = browser.get(authorize_url(**params))
    assert response.headers["Location"].startswith(REDIRECT_URI + "?")
    assert redirect_params(response) == {
        "error": error,
        "error_description": redirect_params(response)["error_description"],
        "state": "xyz-state",
    }


def test_repeated_state_redirects_back_with_invalid_request(browser):
    response = browser.get(authorize_url() + "&state=second")
    assert redirect_params(response)["error"] == "invalid_request"


def test_valid_request_shows_login_page_listing_demo_staff(browser, state):
    response = browser.get(authorize_url())
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Log in to vcita" in page
    assert "Maya Goldberg" in page and "Sofía Hernández" in page
    assert "Cedar &amp; Pine Law Office" in page  # escaped
    fields = form_fields(response)
    assert state.pending_authorization(fields["request_id"]).client_id == CLIENT_ID
    assert fields["csrf_token"]


def test_login_then_consent_page_names_app_person_and_return_host(browser):
    consent = log_in(browser, browser.get(authorize_url(scope="openid")), STAFF_UID)
    page = consent.get_data(as_text=True)
    assert consent.status_code == 200
    assert "vcita Connect wants to access your vcita account" in page
    assert "Leo Martins" in page and "Harbor Light Yoga" in page
    assert "localhost:5000" in page
    assert "openid" in page
    assert 'value="allow"' in page and 'value="deny"' in page


def test_allow_redirects_with_code_and_state(approve, state):
    response = approve()
    params = redirect_params(response)
    assert response.headers["Location"].startswith(REDIRECT_URI + "?code=")
    assert set(params) == {"code", "state"}
    assert params["state"] == "xyz-state"
    assert len(params["code"]) >= 32


def test_deny_redirects_with_access_denied_and_state(browser, state):
    consent = log_in(browser, browser.get(authorize_url()))
    response = decide(browser, consent, "deny")
    assert redirect_params(response) == {
        "error": "access_denied",
        "error_description": "The user denied access to the app.",
        "state": "xyz-state",
    }
    assert state.pending_authorization(form_fields(consent)["request_id"]) is None


@pytest.mark.parametrize(
    "sent_state",
    [
        "plain",
        "with space+plus&amp=eq#hash%percent",
        "ünïcødé-☃",
        "../\\'\"<script>",
        "",
        "a" * 500,
    ],
)
def test_state_is_echoed_verbatim(approve, sent_state):
    assert redirect_params(approve(state=sent_state))["state"] == sent_state


def test_state_bytes_are_echoed_even_when_not_utf8(browser):
    login = browser.get(authorize_url(state=None) + "&state=%FF%00%2B+x")
    consent = log_in(browser, login)
    location = decide(browser, consent, "allow").headers["Location"]
    assert location.endswith("&state=%FF%00%2B%20x")


def test_absent_state_is_omitted(approve):
    assert "state" not in redirect_params(approve(state=None))


def test_redirect_uri_with_query_string_keeps_it(approve):
    location = approve(redirect_uri=OTHER_REDIRECT_URI).headers["Location"]
    assert location.startswith(OTHER_REDIRECT_URI + "&code=")
    assert urlsplit(location).query.startswith("tenant=7&code=")


@pytest.mark.sandbox_settings(SANDBOX_ISSUER="http://127.0.0.1:5001")
def test_issuer_is_added_to_every_redirect_when_configured(browser, approve):
    assert redirect_params(approve())["iss"] == "http://127.0.0.1:5001"
    refused = browser.get(authorize_url(response_type="token"))
    assert redirect_params(refused)["iss"] == "http://127.0.0.1:5001"


@pytest.mark.sandbox_settings(SANDBOX_TRUSTED="true")
def test_trusted_app_skips_consent_after_login(browser):
    response = log_in(browser, browser.get(authorize_url()))
    assert set(redirect_params(response)) == {"code", "state"}


@pytest.mark.sandbox_settings(SANDBOX_TRUSTED="true")
def test_trusted_app_with_logged_in_person_redirects_at_once(browser):
    log_in(browser, browser.get(authorize_url()))
    response = browser.get(authorize_url(state="second"))
    assert redirect_params(response)["state"] == "second"
    assert "code" in redirect_params(response)


def test_logged_in_person_goes_straight_to_consent(browser):
    log_in(browser, browser.get(authorize_url()), STAFF_UID)
    again = browser.get(authorize_url())
    assert "wants to access your vcita account" in again.get_data(as_text=True)
    assert "Leo Martins" in again.get_data(as_text=True)


# --- Consent is asked once: Doorkeeper skips it for a staff member with a live token ------


@pytest.mark.parametrize(
    "reused",
    [
        pytest.param(True, marks=pytest.mark.sandbox_settings(SANDBOX_REUSE_ACCESS_TOKEN="true")),
        pytest.param(
            False, marks=pytest.mark.sandbox_settings(SANDBOX_REUSE_ACCESS_TOKEN="false")
        ),
    ],
)
def test_a_staff_member_holding_a_live_token_is_sent_back_at_once(browser, reused):
    held = browser.post("/oauth/token", json=token_body(approved_code(browser)))
    assert held.status_code == 200

    response = browser.get(authorize_url(state="again"))  # still logged in to vcita

    params = redirect_params(response)
    assert params["state"] == "again"
    again = browser.post("/oauth/token", json=token_body(params["code"]))
    assert again.status_code == 200
    # Consent is skipped either way; the token is the same one only with reuse.
    same_token = again.get_json()["access_token"] == held.get_json()["access_token"]
    assert same_token is reused


def test_logging_in_as_a_staff_member_holding_a_live_token_skips_consent(browser, new_token):
    new_token(OWNER_UID)
    browser.delete_cookie(SESSION_COOKIE)  # logged out of vcita since

    response = log_in(browser, browser.get(authorize_url()), OWNER_UID)

    assert set(redirect_params(response)) == {"code", "state"}


def test_the_same_scopes_in_another_order_are_the_same_scopes(browser, new_token):
    code = approved_code(browser, scope="openid profile")
    assert browser.post("/oauth/token", json=token_body(code)).status_code == 200

    response = browser.get(authorize_url(scope="profile openid"))

    assert set(redirect_params(response)) == {"code", "state"}


@pytest.mark.parametrize(
    ("staff_uid", "scope", "meanwhile"),
    [
        pytest.param(STAFF_UID, None, None, id="another staff member"),
        pytest.param(OWNER_UID, "openid", None, id="another scope"),
        pytest.param(
            OWNER_UID,
            None,
            lambda browser, state: browser.post(
                "/_sandbox/uninstall", json={"business_uid": HARBOR}
            ),
            id="uninstalled",
        ),
        pytest.param(
            OWNER_UID,
            None,
            lambda browser, state: browser.post("/_sandbox/revoke"),
            id="revoked",
        ),
        pytest.param(
            OWNER_UID,
            None,
            lambda browser, state: state.age_tokens(TOKEN_LIFETIME),
            id="expired",
        ),
    ],
)
def test_consent_is_asked_without_a_live_token_for_the_staff_member_and_scope(
    browser, new_token, state, staff_uid, scope, meanwhile
):
    token = new_token(OWNER_UID)
    if meanwhile:
        meanwhile(browser, state)
        assert not state.is_token_active(token)
    browser.delete_cookie(SESSION_COOKIE)

    page = log_in(browser, browser.get(authorize_url(scope=scope)), staff_uid)

    assert page.status_code == 200
    assert CONSENT in page.get_data(as_text=True)


def test_the_scripted_person_is_sent_back_without_consent_and_cannot_deny_then(
    served_sandbox, state
):
    url = served_sandbox.url + authorize_url()
    with SandboxPerson(served_sandbox.url) as person:
        code = parse_qs(urlsplit(person.approve(url, staff=OWNER_UID)).query)["code"][0]
        state.redeem_code(code, client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, code_verifier=None)

        again = person.approve(served_sandbox.url + authorize_url(state="again"))

        assert again.startswith(REDIRECT_URI + "?")
        assert set(parse_qs(urlsplit(again).query)) == {"code", "state"}
        with pytest.raises(SandboxPageError, match="nothing to deny"):
            person.approve(url, allow=False)


def test_switch_account_logs_out_and_shows_login_again(browser, state):
    consent = log_in(browser, browser.get(authorize_url()), STAFF_UID)
    login = browser.post("/app/oauth/authorize/switch-account", data=form_fields(consent))
    assert "Log in to vcita" in login.get_data(as_text=True)
    consent = log_in(browser, login, OWNER_UID)
    code = redirect_params(decide(browser, consent, "allow"))["code"]
    token, _ = state.redeem_code(
        code, client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, code_verifier=None
    )
    assert token.staff_uid == OWNER_UID


@pytest.mark.parametrize(
    "tamper",
    [
        {"csrf_token": "forged"},
        {"csrf_token": ""},
        {"request_id": "no-such-request"},
    ],
)
@pytest.mark.parametrize("path", ["login", "decision", "switch-account"])
def test_sandbox_forms_refuse_forged_or_unknown_submissions(browser, tamper, path):
    consent = log_in(browser, browser.get(authorize_url()))
    data = {**form_fields(consent), "staff_uid": OWNER_UID, "decision": "allow", **tamper}
    response = browser.post(f"/app/oauth/authorize/{path}", data=data)
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_forms_from_another_browser_session_are_refused(sandbox, browser):
    consent = log_in(browser, browser.get(authorize_url()))
    other_browser = sandbox.test_client()
    other_browser.get(authorize_url())
    response = decide(other_browser, consent, "allow")
    assert response.status_code == 400


def test_login_as_unknown_staff_member_is_refused(browser):
    response = log_in(browser, browser.get(authorize_url()), "not-a-staff-uid")
    assert response.status_code == 400


@pytest.mark.parametrize("decision", ["", "maybe"])
def test_decision_must_be_allow_or_deny(browser, decision):
    consent = log_in(browser, browser.get(authorize_url()))
    assert decide(browser, consent, decision).status_code == 400


def test_each_request_is_decided_once(browser):
    consent = log_in(browser, browser.get(authorize_url()))
    assert decide(browser, consent, "allow").status_code == 302
    assert decide(browser, consent, "allow").status_code == 400


def test_code_is_bound_to_request_person_and_pkce(browser, state):
    challenge = s256(VERIFIER)
    login = browser.get(
        authorize_url(code_challenge=challenge, code_challenge_method="S256", scope="openid")
    )
    code = redirect_params(decide(browser, log_in(browser, login, STAFF_UID), "allow"))["code"]
    token, _ = state.redeem_code(
        code, client_id=CLIENT_ID, redirect_uri=REDIRECT_URI, code_verifier=VERIFIER
    )
    assert token.staff_uid == STAFF_UID


def test_session_cookie_is_the_sandbox_own(browser):
    response = browser.get(authorize_url())
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("vcita_sandbox_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_authorize_parameters_are_case_sensitive_exact_strings(browser):
    response = browser.get(authorize_url(client_id=CLIENT_ID.upper()))
    assert response.status_code == 400
    url = authorize_url(redirect_uri=None) + "&redirect_uri=" + quote(REDIRECT_URI, safe="")
    assert browser.get(url).status_code == 200  # percent-encoding is not a different URI
