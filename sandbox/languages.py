"""The language of the sandbox's sign-in pages: vcita localises its own pages.

vcita documents no parameter of the authorize URL that names a language, so the sandbox
does what vcita's pages can: follow the browser's Accept-Language among the App Market's
eleven locales, else English. A journey in Hebrew then shows the sign-in, consent and App
Market pages in Hebrew. The pages a developer reads (the front page, the App Market's
chooser, error pages) stay English. Catalogues: sandbox/translations/, compiled by the
Makefile. The sandbox shares no code with the app: this list is its own.
"""

from __future__ import annotations

from pathlib import Path

from babel import Locale
from flask import Flask, has_request_context, request
from flask_babel import Babel, get_locale

TRANSLATIONS = Path(__file__).resolve().parent / "translations"
# The App Market's locales (he is right-to-left), each with Babel's name for it.
LOCALES = {
    "en": "en",
    "he": "he",
    "es": "es",
    "pl": "pl",
    "fr": "fr",
    "it": "it",
    "pt": "pt",
    "de": "de",
    "nl": "nl",
    "en-GB": "en_GB",
    "zh-SG": "zh_Hans_SG",
}
# The pages a person meets while connecting an app, or using it inside vcita.
LOCALISED_ENDPOINTS = frozenset(
    {
        "authorize.authorize",
        "authorize.log_in",
        "authorize.switch_account",
        "app_market.open_app",
    }
)


def init_app(app: Flask) -> None:
    """Translate the sign-in pages into the browser's language."""
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=page_locale)
    app.jinja_env.policies["ext.i18n.trimmed"] = True  # as sandbox/babel.cfg extracts them
    app.jinja_env.globals["page_language"] = page_language


def page_locale() -> str:
    """Return the Babel name of this page's locale: the browser's choice on a sign-in page."""
    if not has_request_context() or request.endpoint not in LOCALISED_ENDPOINTS:
        return "en"
    return LOCALES[request.accept_languages.best_match(LOCALES) or "en"]


def page_language() -> dict[str, str]:
    """Return the page's `lang` (BCP 47) and `dir`, for the <html> element."""
    locale = get_locale() or Locale("en")
    return {"tag": str(locale).replace("_", "-"), "dir": locale.text_direction}
