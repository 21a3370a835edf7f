"""Fixtures for the sandbox's own tests: the sandbox app, a browser on it, a code, a token.

Most tests drive the sandbox in-process with Flask's test client; the tests of real HTTP
behaviour (keep-alive, resets, curl) serve it with `ServerThread`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from sandbox import SandboxState, create_sandbox
from sandbox.testing import ServerThread

CLIENT_ID = "test-sandbox-client"
CLIENT_SECRET = "test-sandbox-secret-0f3c9a"
REDIRECT_URI = "http://localhost:5000/callback"
OTHER_REDIRECT_URI = "https://connect.example/oauth/callback?tenant=7"
OWNER_UID = "1beb795be66146bb"  # Maya Goldberg, owner of Harbor Light Yoga (demo data)
STAFF_UID = "41555f2fa81ceb05"  # Leo Martins, staff at Harbor Light Yoga
SESSION_COOKIE = "vcita_sandbox_session"  # who is logged in to the sandbox's pages


@pytest.fixture(autouse=True)
def no_sandbox_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep SANDBOX_* variables of the machine running the tests out of them."""
    for name in [name for name in os.environ if name.startswith("SANDBOX_")]:
        monkeypatch.delenv(name)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sandbox_settings(**settings): run the sandbox with these settings changed"
    )


@pytest.fixture
def sandbox_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The sandbox's settings; `@pytest.mark.sandbox_settings(...)` changes some."""
    marker = request.node.get_closest_marker("sandbox_settings")
    return {
        "SANDBOX_CLIENT_ID": CLIENT_ID,
        "SANDBOX_CLIENT_SECRET": CLIENT_SECRET,
        "SANDBOX_REDIRECT_URIS": f"{REDIRECT_URI} {OTHER_REDIRECT_URI}",
        "SANDBOX_SECRET_KEY": "sandbox-tests-secret-key",
        "SANDBOX_CONTROL": "true",
        **(marker.kwargs if marker else {}),
    }


@pytest.fixture
def sandbox(sandbox_config: dict[str, Any]) -> Flask:
    """The sandbox app, configured by `sandbox_config`."""
    return create_sandbox(sandbox_config)


@pytest.fixture
def state(sandbox: Flask) -> SandboxState:
    """The sandbox's state: recorded requests, codes, tokens, faults."""
    return sandbox.extensions["vcita_sandbox"]


@pytest.fixture
def browser(sandbox: Flask) -> FlaskClient:
    """A browser (with cookies) on the sandbox's pages, and a client of its API."""
    return sandbox.test_client()


@pytest.fixture
def served_sandbox(sandbox: Flask) -> Iterator[ServerThread]:
    """The sandbox served over real HTTP on a free loopback port."""
    with ServerThread(sandbox) as server:
        yield server


def authorize_url(**params: str | None) -> str:
    """Return an authorize path with the registered client's parameters, overridable."""
    query = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "state": "xyz-state",
        **params,
    }
    return "/app/oauth/authorize?" + urlencode({k: v for k, v in query.items() if v is not None})


def form_fields(page: TestResponse) -> dict[str, str]:
    """Return the hidden fields of the page's forms (request_id, csrf_token)."""
    html = page.get_data(as_text=True)
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))


def log_in(browser: FlaskClient, page: TestResponse, staff_uid: str = OWNER_UID) -> TestResponse:
    """Submit the login page as a staff member."""
    return browser.post(
        "/app/oauth/authorize/login", data={**form_fields(page), "staff_uid": staff_uid}
    )


def decide(browser: FlaskClient, page: TestResponse, decision: str) -> TestResponse:
    """Press Allow or Deny on the consent page."""
    return browser.post(
        "/app/oauth/authorize/decision", data={**form_fields(page), "decision": decision}
    )


def redirect_params(response: TestResponse) -> dict[str, str]:
    """Return the query parameters of a redirect back to the app (one value each)."""
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query, keep_blank_values=True)
    assert all(len(values) == 1 for values in query.values())
    return {name: values[0] for name, values in query.items()}


@pytest.fixture
def approve(browser: FlaskClient) -> Callable[..., TestResponse]:
    """Run the pages as a person would: authorize, log in, Allow; return the redirect.

    Without the consent page when the staff member holds a live token for the client
    (vcita asks only once): logging in then leads straight back with a code.
    """

    def approve(staff_uid: str = OWNER_UID, **params: str | None) -> TestResponse:
        # Signed out first: a browser still logged in as someone holding a live token
        # would be sent back at once, with a code for them rather than for staff_uid.
        browser.delete_cookie(SESSION_COOKIE)
        login_page = browser.get(authorize_url(**params))
        assert login_page.status_code == 200
        after_login = log_in(browser, login_page, staff_uid)
        if after_login.status_code == 302:
            return after_login
        assert after_login.status_code == 200
        return decide(browser, after_login, "allow")

    return approve


@pytest.fixture
def new_code(approve: Callable[..., TestResponse]) -> Callable[..., str]:
    """Return a fresh authorization code obtained through the pages."""

    def new_code(staff_uid: str = OWNER_UID, **params: str | None) -> str:
        return redirect_params(approve(staff_uid, **params))["code"]

    return new_code


def token_body(code: str, /, **overrides: str | None) -> dict[str, str]:
    """Return vcita's documented token request body, with fields changed or removed (None)."""
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uri": REDIRECT_URI,
        **overrides,
    }
    return {name: value for name, value in body.items() if value is not None}


@pytest.fixture
def new_token(browser: FlaskClient, new_code: Callable[..., str]) -> Callable[..., str]:
    """Return a fresh access token for a staff member, through the pages and step 3."""

    def new_token(staff_uid: str = OWNER_UID) -> str:
        response = browser.post("/oauth/token", json=token_body(new_code(staff_uid)))
        assert response.status_code == 200
        return response.get_json()["access_token"]

    return new_token


def bearer(token: str) -> dict[str, str]:
    """Return the Authorization header that sends `token` (RFC 6750 §2.1)."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def owner_headers(new_token: Callable[..., str]) -> dict[str, str]:
    """The headers of an API call made with a fresh token of Harbor Light Yoga's owner."""
    return bearer(new_token(OWNER_UID))
