"""vcita localises its own pages: the sign-in, consent and App Market pages follow the browser.

vcita documents no language parameter for its authorize URL, so the sandbox reads the
browser's Accept-Language among the App Market's eleven locales (sandbox/languages.py).
The pages a developer reads stay English.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from sandbox.languages import LOCALES
from sandbox.settings import DEFAULT_APP_NAME
from sandbox.testing import demo_names, page_texts, texts_to_translate

from .conftest import OWNER_UID, REDIRECT_URI, authorize_url, log_in

HTML_TAG = re.compile(r'<html lang="([^"]+)" dir="(ltr|rtl)">')
TAGS = {code: babel.replace("_", "-") for code, babel in LOCALES.items()}
HEBREW = {"Accept-Language": "he-IL,he;q=0.9"}
# Words written as in English: the same text on both pages is no oversight.
SAME_AS_ENGLISH = {"de": {"Apps"}, "fr": {"Clients"}, "nl": {"Apps"}, "pt": {"Apps"}}
# What reads the same in every language: vcita, the app's name and host, the demo businesses.
NAMES = {"vcita", DEFAULT_APP_NAME, urlsplit(REDIRECT_URI).netloc, *demo_names()}


def language_of(html: str) -> tuple[str, str]:
    return HTML_TAG.search(html).groups()


def login_page(browser, headers):
    return browser.get(authorize_url(), headers=headers)


def consent_page(browser, headers):
    # A browser sends its Accept-Language with every request, the login form's too.
    browser.environ_base.update(
        {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}
    )
    return log_in(browser, browser.get(authorize_url()))


def app_market_frame(browser, headers):
    return browser.get(f"/app-market/open?staff={OWNER_UID}&mode=frame", headers=headers)


def app_market_tab(browser, headers):
    return browser.get(f"/app-market/open?staff={OWNER_UID}&mode=tab", headers=headers)


PAGES = {
    "login": login_page,
    "consent": consent_page,
    "app-market-frame": app_market_frame,
    "app-market-tab": app_market_tab,
}


@pytest.mark.sandbox_settings(SANDBOX_APP_URL="http://localhost:5000/")
@pytest.mark.parametrize("reach", PAGES.values(), ids=PAGES)
def test_the_pages_a_person_meets_follow_the_browsers_language(sandbox, reach):
    pages = {}
    for code in LOCALES:
        page = reach(sandbox.test_client(), {"Accept-Language": code})
        html = page.get_data(as_text=True)

        assert page.status_code == 200, code
        assert language_of(html) == (TAGS[code], "rtl" if code == "he" else "ltr")
        pages[code] = page_texts(html)

    for code in set(LOCALES) - {"en", "en-GB"}:
        english_left = texts_to_translate(pages["en"] & pages[code], NAMES)
        assert english_left <= SAME_AS_ENGLISH.get(code, set()), code
    assert texts_to_translate(pages["en"], NAMES)


def test_the_consent_page_in_hebrew(browser):
    page = consent_page(browser, HEBREW)
    html = page.get_data(as_text=True)

    assert language_of(html) == ("he", "rtl")
    assert "vcita Connect מבקשת גישה לחשבון ה־vcita שלכם" in html
    assert (
        '<button type="submit" name="decision" value="allow" class="primary">אישור</button>'
        in html
    )
    # The e-mail and the app's host keep their own direction inside the Hebrew text.
    assert '(<span dir="ltr">maya.goldberg@harborlightyoga.example</span>)' in html
    assert '<strong dir="ltr">localhost:5000</strong>' in html


def test_without_accept_language_the_pages_are_english(browser):
    html = login_page(browser, {}).get_data(as_text=True)

    assert language_of(html) == ("en", "ltr")
    assert "<h1>Log in to vcita</h1>" in html


@pytest.mark.parametrize(
    "path",
    ["/", "/app-market", authorize_url(client_id="unknown"), "/no-such-page"],
    ids=["front-page", "app-market-chooser", "refusal", "404"],
)
def test_the_pages_a_developer_reads_stay_english(browser, path):
    html = browser.get(path, headers=HEBREW).get_data(as_text=True)

    assert language_of(html) == ("en", "ltr")
    assert "vcita sandbox — a local emulator, not vcita.com" in html


@pytest.mark.parametrize(
    "accept_language",
    ["he;q=oops", "../x", "x" * 1024, ",".join(["xx;q=0.1"] * 120), "zh-TW", ";;,"],
)
def test_an_accept_language_naming_none_of_the_eleven_gives_english(browser, accept_language):
    page = login_page(browser, {"Accept-Language": accept_language})

    assert page.status_code == 200
    assert language_of(page.get_data(as_text=True)) == ("en", "ltr")
