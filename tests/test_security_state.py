"""RFC 9700 §4.7 and RFC 6749 §10.12: the state binds vcita's answer to this browser, once.

Every rejected callback must be refused *before* the code is exchanged, so each test
checks what the sandbox's token endpoint received, not only the page.
"""

import base64
import hashlib
import threading
from urllib.parse import quote

import pytest
import requests

from app import session_keys, vcita
from app.connect import flows
from sandbox.testing import ServerThread

from .conftest import browser_with_cookie, stored
from .security_support import EVIL, Links, code_of, path_and_query, query_of, state_of

INVALID_LINK = "This sign-in link is no longer valid"


def assert_refused_before_the_exchange(response, app, vcita):
    assert response.status_code == 400
    assert INVALID_LINK in response.text
    assert vcita.token_requests == []
    assert stored(app).connections.count() == 0


# --- The state itself ----------------------------------------------------------------


def test_state_is_at_least_128_random_bits_and_unique_per_flow(browser, monkeypatch):
    drawn = []
    real_token_urlsafe = vcita.secrets.token_urlsafe

    class SpyingSecrets:
        @staticmethod
        def token_urlsafe(nbytes):
            drawn.append((nbytes, real_token_urlsafe(nbytes)))
            return drawn[-1][1]

    monkeypatch.setattr(vcita, "secrets", SpyingSecrets)
    states = [state_of(browser.get("/connect").location) for _ in range(flows.MAX_PENDING_FLOWS)]
    # Each state is drawn from the operating system's CSPRNG, 16 bytes or more.
    assert states == [value for nbytes, value in drawn if nbytes >= 16]
    assert len(set(states)) == len(states)
    for state in states:
        assert len(base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))) * 8 >= 128
    assert set(browser.pending_flows()) == set(states)


# --- Callbacks that are not this browser's answer --------------------------------------


def test_callback_rejects_state_from_another_browser(app, browser, vcita):
    victim_callback = browser.approve()
    attacker = app.test_client()
    attacker.get("/connect")  # the other browser has flows of its own, just not this one
    response = attacker.get(victim_callback)
    assert_refused_before_the_exchange(response, app, vcita)
    # The browser that started the flow still completes it.
    assert browser.get(victim_callback).status_code == 303


def test_a_denial_with_a_state_of_no_flow_is_an_invalid_link(browser, vcita):
    response = browser.get("/callback?error=access_denied&state=not-ours")
    assert response.status_code == 400
    assert INVALID_LINK in response.text


def test_callback_without_a_session_cookie_is_rejected(app, browser, vcita):
    callback = browser.approve()
    response = app.test_client().get(callback)
    assert_refused_before_the_exchange(response, app, vcita)


@pytest.mark.parametrize("where", ["payload", "signature"])
def test_callback_with_a_tampered_session_cookie_is_rejected(app, browser, vcita, where):
    callback = browser.approve()
    cookie = browser.session_cookie()
    position = 2 if where == "payload" else len(cookie) - 2
    flipped = "A" if cookie[position] != "A" else "B"
    tampered = cookie[:position] + flipped + cookie[position + 1 :]
    response = browser_with_cookie(app, tampered).get(callback)
    assert_refused_before_the_exchange(response, app, vcita)


@pytest.mark.parametrize(
    "state", [None, "", "forged-state-value"], ids=["missing", "empty", "unknown"]
)
def test_callback_with_a_missing_empty_or_unknown_state_is_rejected(app, browser, vcita, state):
    code = code_of(browser.approve())
    query = f"code={quote(code)}" + ("" if state is None else f"&state={state}")
    response = browser.get(f"/callback?{query}")
    assert_refused_before_the_exchange(response, app, vcita)
    assert "Start again" in response.text or "Connect vcita again" in response.text


@pytest.mark.parametrize("second", ["same", "other"])
def test_callback_with_the_state_sent_twice_is_rejected(app, browser, vcita, second):
    callback = browser.approve()
    other = state_of(browser.get("/connect").location)
    repeated = state_of(callback) if second == "same" else other
    response = browser.get(f"{callback}&state={repeated}")
    assert_refused_before_the_exchange(response, app, vcita)


def test_callback_with_the_code_sent_twice_is_rejected(app, browser, vcita):
    callback = browser.approve()
    response = browser.get(f"{callback}&code=second-code")
    assert_refused_before_the_exchange(response, app, vcita)


def test_state_is_compared_in_constant_time(browser, vcita, monkeypatch):
    compared = []
    real_compare_digest = flows.hmac.compare_digest

    class SpyingHmac:
        @staticmethod
        def compare_digest(a, b):
            compared.append((a, b))
            return real_compare_digest(a, b)

    monkeypatch.setattr(flows, "hmac", SpyingHmac)
    for _ in range(2):
        browser.get("/connect")
    callback = browser.approve()
    state = state_of(callback).encode()

    # A guess is compared with every pending state: no early exit tells how close it was.
    guess = state[:-1] + (b"A" if state[-1:] != b"A" else b"B")
    assert browser.get(f"/callback?code=x&state={guess.decode()}").status_code == 400
    assert len(compared) == 3
    assert all(sent == guess for _, sent in compared)

    compared.clear()
    assert browser.get(callback).status_code == 303
    assert (state, state) in compared
    assert len(vcita.token_requests) == 1


# --- A state answers once, and only for a while ---------------------------------------


def test_two_identical_callbacks_at_the_same_moment_make_one_token_request(
    app, browser, vcita, monkeypatch
):
    callback = browser.approve()
    cookie = browser.get_cookie("vcita_connect")
    # Hold both requests at the single-use check until both have reached it, so they
    # really race there, as a double click or a replayed URL would.
    both_arrived = threading.Barrier(2, timeout=10)
    ledger = stored(app).used_states
    mark_used = ledger.mark_used

    def mark_together(state, expires_at):
        both_arrived.wait()
        return mark_used(state, expires_at)

    monkeypatch.setattr(ledger, "mark_used", mark_together)
    statuses = []

    def click(server_url):
        answer = requests.get(
            f"{server_url}{path_and_query(callback)}",
            headers={"Cookie": f"{cookie.key}={cookie.value}"},
            allow_redirects=False,
            timeout=20,
        )
        statuses.append(answer.status_code)

    with ServerThread(app) as server:
        clicks = [threading.Thread(target=click, args=(server.url,)) for _ in range(2)]
        for thread in clicks:
            thread.start()
        for thread in clicks:
            thread.join()
    assert sorted(statuses) == [303, 400]
    assert len(vcita.token_requests) == 1
    assert stored(app).connections.count() == 1


def test_expired_state_is_rejected_without_token_request(browser, vcita, monkeypatch):
    callback = browser.approve()
    later = flows.time.time() + flows.FLOW_LIFETIME.total_seconds() + 1
    monkeypatch.setattr(flows.time, "time", lambda: later)
    response = browser.get(callback)
    assert response.status_code == 400
    assert vcita.token_requests == []


def test_code_is_exchanged_once_and_a_reload_is_rejected(browser, vcita):
    callback = browser.approve()
    assert browser.get(callback).status_code == 303
    reload = browser.get(callback)
    assert reload.status_code == 400
    assert len(vcita.token_requests) == 1


def test_replaying_the_callback_with_an_old_cookie_is_rejected(app, browser, vcita):
    callback = browser.approve()
    copied = browser_with_cookie(app, browser.session_cookie())
    assert browser.get(callback).status_code == 303
    replay = copied.get(callback)
    assert replay.status_code == 400
    assert len(vcita.token_requests) == 1


def test_state_is_consumed_before_the_exchange(browser, vcita):
    callback = browser.approve()
    vcita.set_fault("token", status=500, json={"error": "server_error"})
    assert browser.get(callback).status_code == 502
    vcita.clear_faults()
    assert browser.get(callback).status_code == 400
    assert len(vcita.token_requests) == 1


# --- What vcita's answer may carry -----------------------------------------------------


def test_error_together_with_code_is_rejected(app, browser, vcita):
    callback = browser.approve()
    response = browser.get(f"{callback}&error=access_denied")
    assert response.status_code == 400
    assert vcita.token_requests == []
    assert stored(app).connections.count() == 0


def test_error_description_is_shown_escaped_or_not_at_all(browser, vcita):
    state = state_of(browser.get("/connect").location)
    markup = '<img src=x onerror="alert(1)">Call +1-555-0100 now'
    response = browser.get(
        "/callback",
        query_string={"error": "server_error", "error_description": markup, "state": state},
    )
    assert response.status_code == 502
    assert "<img src=x" not in response.text
    assert "+1-555-0100" not in response.text  # not at all: vcita's words could be anyone's
    assert Links(response.text).event_handlers == []
    assert vcita.token_requests == []


def test_error_uri_is_never_rendered_as_a_link(browser, vcita):
    state = state_of(browser.get("/connect").location)
    response = browser.get(
        "/callback",
        query_string={
            "error": "temporarily_unavailable",
            "error_uri": f"https://{EVIL}/help",
            "state": state,
        },
    )
    assert response.status_code == 502
    assert EVIL not in response.text
    assert Links(response.text).foreign_urls() == []


def test_access_token_and_id_token_on_the_callback_are_ignored(browser, vcita):
    injected = "injected-access-token-0123456789abcdef"
    callback = browser.approve()
    response = browser.get(f"{callback}&access_token={injected}&id_token=eyJhbGciOiJub25lIn0.e30.")
    assert response.status_code == 303
    assert len(vcita.token_requests) == 1
    token = browser.connection().token.access_token
    assert token != injected
    assert vcita.is_token_active(token)  # the token vcita issued for the exchanged code


# --- RFC 9207: the issuer of the answer ------------------------------------------------


@pytest.fixture
def vcita_issuer(vcita_server, monkeypatch) -> str:
    """Make the sandbox name itself with `iss` in every authorization response."""
    issuer = vcita_server.url
    monkeypatch.setitem(vcita_server.sandbox.config, "SANDBOX_ISSUER", issuer)
    return issuer


def test_callback_with_the_configured_issuer_connects(make_app, new_browser, vcita, vcita_issuer):
    app = make_app(VCITA_ISSUER=vcita_issuer)
    browser = new_browser(app)
    callback = browser.approve()
    assert "iss=" in callback
    assert browser.get(callback).status_code == 303
    assert stored(app).connections.count() == 1


@pytest.mark.parametrize("sent", ["configured-elsewhere", "forged-in-the-url"])
def test_callback_with_a_mismatching_issuer_is_rejected(
    make_app, new_browser, vcita, vcita_issuer, sent
):
    configured = f"https://{EVIL}" if sent == "configured-elsewhere" else vcita_issuer
    app = make_app(VCITA_ISSUER=configured)
    browser = new_browser(app)
    callback = browser.approve()
    if sent == "forged-in-the-url":
        callback = callback.replace(f"iss={quote(vcita_issuer, safe='')}", f"iss=https://{EVIL}")
    response = browser.get(callback)
    assert_refused_before_the_exchange(response, app, vcita)


@pytest.mark.parametrize("sent", ["no-iss", "empty-iss"])
def test_callback_without_iss_is_rejected_when_an_issuer_is_configured(
    make_app, new_browser, vcita, vcita_issuer, sent
):
    # RFC 9207 §2.4: a client that expects `iss` refuses a response that lacks it.
    app = make_app(VCITA_ISSUER=vcita_issuer)
    browser = new_browser(app)
    callback = browser.approve()
    issued = f"iss={quote(vcita_issuer, safe='')}"
    assert issued in callback
    callback = callback.replace(issued, "" if sent == "no-iss" else "iss=")
    response = browser.get(callback)
    assert_refused_before_the_exchange(response, app, vcita)


# --- PKCE (RFC 7636, RFC 9700 §2.1.1) --------------------------------------------------


@pytest.fixture
def pkce_app(make_app, vcita):
    app = make_app(VCITA_USE_PKCE="true")
    yield app


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_pkce_sends_an_s256_challenge_and_a_fresh_verifier_per_flow(pkce_app, new_browser, vcita):
    browser = new_browser(pkce_app)
    first, second = browser.get("/connect").location, browser.get("/connect").location
    flows_now = browser.pending_flows()
    verifiers = [flows_now[state_of(url)]["code_verifier"] for url in (first, second)]
    assert verifiers[0] != verifiers[1]
    for url, verifier in zip((first, second), verifiers, strict=True):
        assert 43 <= len(verifier) <= 128
        assert set(verifier) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
        )
        params = query_of(url)
        assert params["code_challenge_method"] == ["S256"]
        assert params["code_challenge"] == [s256(verifier)]
        assert verifier not in url

    assert browser.get(browser.person.approve(second)).status_code == 303
    assert vcita.token_requests[0]["body"]["code_verifier"] == verifiers[1]


def test_pkce_verifier_is_enforced_by_the_sandbox(pkce_app, new_browser, vcita):
    browser = new_browser(pkce_app)
    callback = browser.approve()
    # The right code and state with a wrong verifier: the code alone is not enough.
    with browser.session_transaction() as session:
        pending = session[session_keys.PENDING_FLOWS]
        pending[state_of(callback)]["code_verifier"] = "x" * 43
        session[session_keys.PENDING_FLOWS] = pending
    response = browser.get(callback)
    assert response.status_code == 400
    assert vcita.token_requests[0]["status"] == 400
    assert stored(pkce_app).connections.count() == 0


def test_code_injected_from_another_flow_fails_with_pkce(pkce_app, new_browser, vcita):
    attacker = new_browser(pkce_app)
    attackers_callback = attacker.approve()
    victim = new_browser(pkce_app)
    victims_state = state_of(victim.get("/connect").location)
    victims_verifier = victim.pending_flows()[victims_state]["code_verifier"]

    # The attacker plants their own code in the victim's browser, with the victim's state.
    injected = f"/callback?code={quote(code_of(attackers_callback))}&state={victims_state}"
    response = victim.get(injected)
    assert response.status_code == 400
    assert [request["body"]["code_verifier"] for request in vcita.token_requests] == [
        victims_verifier
    ]
    assert vcita.token_requests[0]["status"] == 400
    assert stored(pkce_app).connections.count() == 0
    # The code itself was good: only the verifier it was bound to was missing.
    assert attacker.get(attackers_callback).status_code == 303


def test_without_pkce_an_injected_code_is_not_detected(app, new_browser, vcita):
    """Why VCITA_USE_PKCE exists: with state alone, a planted code still connects."""
    attacker = new_browser(app)
    attackers_callback = attacker.approve()
    victim = app.test_client()
    victims_state = state_of(victim.get("/connect").location)
    response = victim.get(
        f"/callback?code={quote(code_of(attackers_callback))}&state={victims_state}"
    )
    assert response.status_code == 303
    assert stored(app).connections.count() == 1
