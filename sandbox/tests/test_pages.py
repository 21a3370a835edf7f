"""The sandbox's pages: the banner, accessibility basics, security headers, error answers."""

from __future__ import annotations

import re

import pytest

from sandbox.__main__ import describe
from sandbox.settings import load_settings

from .conftest import authorize_url, log_in

PAGES = ["/", authorize_url(), authorize_url(client_id="unknown"), "/no-such-page"]


@pytest.fixture
def consent_page(browser):
    return log_in(browser, browser.get(authorize_url()))


@pytest.mark.parametrize("path", PAGES)
def test_every_page_says_it_is_a_sandbox_not_vcita(browser, path):
    html = browser.get(path).get_data(as_text=True)
    assert "vcita sandbox — a local emulator, not vcita.com" in html
    # English, left to right, without an Accept-Language (sandbox/languages.py).
    assert '<html lang="en" dir="ltr">' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert re.search(r"<h1>[^<]+</h1>", html)
    assert "<title>" in html


@pytest.mark.parametrize("path", PAGES)
def test_pages_use_no_script_and_nothing_external(browser, path):
    html = browser.get(path).get_data(as_text=True)
    assert "<script" not in html and " style=" not in html and "<style" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_pages_send_a_strict_csp_that_allows_the_redirect_back(browser):
    response = browser.get(authorize_url())
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'none'" in csp and "style-src 'self'" in csp
    # Chrome applies form-action to the redirect after Allow: the app's origins are listed.
    assert "form-action 'self' http://localhost:5000 https://connect.example;" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"


def test_stylesheet_is_served_by_the_sandbox(browser):
    response = browser.get("/static/sandbox.css")
    assert response.status_code == 200
    assert response.mimetype == "text/css"
    css = response.get_data(as_text=True)
    assert "@import" not in css and "url(" not in css
    response.close()


def test_login_page_labels_every_choice(browser):
    html = browser.get(authorize_url()).get_data(as_text=True)
    radios = re.findall(r'id="(staff-[0-9a-f]+)"', html)
    assert len(radios) == 6
    for radio in radios:
        assert f'<label for="{radio}">' in html
    assert html.count("<fieldset") == html.count("<legend>") == 4
    assert '<button type="submit" class="primary wide">Log in</button>' in html


def test_consent_page_has_allow_and_deny_buttons(consent_page):
    html = consent_page.get_data(as_text=True)
    assert ">Allow</button>" in html and ">Deny</button>" in html


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        ("/no-such-page", "GET", 404),
        ("/app/oauth/authorize", "POST", 405),
        ("/app/oauth/authorize/login", "GET", 405),
    ],
)
def test_unknown_pages_get_small_html_errors(browser, path, method, status):
    response = browser.open(path, method=method)
    assert response.status_code == status
    assert response.mimetype == "text/html"
    assert "Traceback" not in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/oauth/nothing", "/_sandbox/nothing"])
def test_unknown_api_paths_get_json_errors(browser, path):
    response = browser.get(path)
    assert response.status_code == 404
    assert response.get_json() == {
        "error": "not_found",
        "error_description": response.get_json()["error_description"],
    }


def test_unexpected_error_is_a_plain_500_without_trace(sandbox, browser, state, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom in the sandbox")

    monkeypatch.setattr(state, "token_owner", broken)
    sandbox.logger.disabled = True  # Flask logs the exception; keep the test output quiet
    response = browser.get("/oauth/userinfo", headers={"Authorization": "Bearer x"})
    assert response.status_code == 500
    assert response.get_json()["error"] == "internal_server_error"
    assert "boom" not in response.get_data(as_text=True)


def test_oversized_body_is_refused(browser):
    response = browser.post("/oauth/token", data="x" * 70_000, content_type="text/plain")
    assert response.status_code == 413


def test_front_page_shows_client_but_not_a_custom_secret(browser):
    html = browser.get("/").get_data(as_text=True)
    assert "test-sandbox-client" in html
    assert "test-sandbox-secret" not in html
    assert "not shown" in html


def test_the_front_page_and_python_m_sandbox_name_the_platform_api_endpoints(browser):
    html = browser.get("/").get_data(as_text=True)
    printed = describe("http://127.0.0.1:5001", load_settings({}, {}))
    for endpoint in (
        "platform/v1/clients",
        "platform/v1/webhook/subscribe",
        "platform/v1/webhook/unsubscribe",
        "platform/v1/webhooks",
    ):
        assert f"http://localhost/{endpoint}</code>" in html
    assert "clients:       http://127.0.0.1:5001/platform/v1/clients" in printed
    assert "webhooks:      http://127.0.0.1:5001/platform/v1/webhook/subscribe" in printed
