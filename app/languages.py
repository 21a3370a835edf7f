"""The page's language: one of the eleven locales of vcita's App Market, chosen per request.

A page is shown in the first of these that names one of the eleven:

1. the `language` vcita launched the app with, kept for the session (`app_market.launch`);
2. the language the person chose in the page's menu, kept for the session;
3. the business's `brand_theme.locale`, from userinfo, once this browser is connected;
4. the best of the browser's Accept-Language;
5. English.

Each one is a hint anyone can send, so a value that names none of the eleven is skipped,
never an error. The menu outranks vcita's launch once the person uses it: choosing drops
the launch's language, and the next launch from vcita sets it again.

Flask-Babel translates with the catalogues in translations/ (compiled by the Makefile),
and formats dates and numbers in the locale; one stylesheet serves both directions.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from babel import Locale
from flask import Flask, g, has_request_context, request, session, url_for
from flask_babel import Babel, refresh

from .app_market import launch
from .connect import browser
from .session_keys import LANGUAGE
from .storage.database import StoreUnavailable

logger = logging.getLogger(__name__)

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
DEFAULT = "en"
# Each locale's own name in the menu, so a person finds theirs whatever the page's language.
OWN_NAMES = {
    "en": "English",
    "en-GB": "English (UK)",
    "he": "עברית",
    "es": "Español",
    "pl": "Polski",
    "fr": "Français",
    "it": "Italiano",
    "pt": "Português",
    "de": "Deutsch",
    "nl": "Nederlands",
    "zh-SG": "简体中文",
}
# Longer language tags are not ones a browser sends (RFC 5646 §4.4.1 asks for 35 at most).
LONGEST_TAG = 35
# Tags browsers still send for one of the eleven: Hebrew's code before 1989.
ALIASES = {"iw": "he"}
# Chinese written in traditional characters: vcita's zh-SG (Simplified) is not theirs.
TRADITIONAL_CHINESE = frozenset({"hant", "tw", "hk", "mo"})
# The pages the menu brings the person back to; from any other it goes to the start page
# (so do error pages: their address may hold a spent code, and only reloads the error).
RETURN_ENDPOINTS = ("connect.index", "connect.dashboard")


@dataclass(frozen=True)
class Language:
    """One App Market locale, as a page and its menu show it."""

    code: str  # the App Market's name: "he", "en-GB", "zh-SG"
    locale: str  # Babel's name, that of the catalogue: "he", "en_GB", "zh_Hans_SG"
    name: str  # its own name, for the menu
    direction: str  # "rtl" or "ltr", for the `dir` attribute

    @property
    def tag(self) -> str:
        """Return its BCP 47 tag, for `lang` attributes: "en-GB", "zh-Hans-SG"."""
        return self.locale.replace("_", "-")


LANGUAGES = {
    code: Language(code, locale, OWN_NAMES[code], Locale.parse(locale).text_direction)
    for code, locale in launch.LANGUAGES.items()
}


def init_app(app: Flask) -> None:
    """Translate pages with Flask-Babel in the language this module chooses for each request."""
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=page_locale)
    # `{% trans %}` blocks span lines in the templates; their messages are one line
    # (babel.cfg extracts them trimmed too).
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.jinja_env.globals.update(
        page_language=page_language,
        menu_languages=tuple(LANGUAGES.values()),
        menu_return_path=menu_return_path,
    )
    folder = Path(app.config["BABEL_TRANSLATION_DIRECTORIES"])
    uncompiled = sorted(po.parent.parent.name for po in folder.glob("*/*/*.po") if _stale(po))
    if uncompiled:
        app.logger.warning(
            "The translations are not compiled (%s): their pages show in English. "
            "Run `make translations` (make run, serve and test do it).",
            ", ".join(uncompiled),
        )


def page_locale() -> str | None:
    """Return the Babel name of the locale this request's page is shown in."""
    if not has_request_context():
        return None  # a command's output: the default, English
    return page_language().locale


def page_language() -> Language:
    """Return the language this request's page is shown in: the first that applies."""
    if "page_language" not in g:
        g.page_language = _first_known_hint()
    return g.page_language


def _first_known_hint() -> Language:
    for hint in (
        _launched,
        _chosen,
        _business_locale,
    ):
        language = known_language(hint())
        if language is not None:
            return language
    return _browser_language() or LANGUAGES[DEFAULT]


def known_language(value: object) -> Language | None:
    """Return the App Market locale `value` names ("he", "en-GB", "en_gb"), else None."""
    code = launch.language_code(value)
    return LANGUAGES[code] if code else None


def _browser_language() -> Language | None:
    """Return the first of the browser's Accept-Language that one of the eleven serves.

    "he-IL" is read as Hebrew and "zh-CN" as Simplified Chinese; "zh-TW" (Traditional)
    is served by none of them. Werkzeug lists the languages by quality, and drops any
    it cannot read ("he;q=oops").
    """
    for value, quality in request.accept_languages:
        if quality > 0 and len(value) <= LONGEST_TAG:
            language = known_language(value) or _by_primary_subtag(value)
            if language is not None:
                return language
    return None


def _by_primary_subtag(value: str) -> Language | None:
    subtags = value.replace("_", "-").lower().split("-")
    primary = ALIASES.get(subtags[0], subtags[0])
    if primary == "zh":
        traditional = TRADITIONAL_CHINESE & set(subtags[1:])
        return None if traditional else LANGUAGES["zh-SG"]
    return LANGUAGES.get(primary)


def choose(value: str | None) -> None:
    """Keep the language the person chose for this session; ignore one that is not known."""
    language = known_language(value)
    if language is None:
        logger.info("Ignored a language choice: not one of the App Market's locales")
        return
    session[LANGUAGE] = language.code
    launch.forget_language()  # the person's own choice now outranks vcita's launch
    g.pop("page_language", None)
    refresh()  # what this request says from now on, it says in the new language


def menu_return_path() -> str:
    """Return where the language menu brings the person back to: this page, or the start.

    The landing page keeps its launch hints, but not their `language`, which would
    outrank the choice just made.
    """
    if request.endpoint not in RETURN_ENDPOINTS:
        return url_for("connect.index")
    kept = [(name, value) for name, value in request.args.items(multi=True) if name != "language"]
    return f"{request.path}?{urlencode(kept)}" if kept else request.path


def _launched() -> str | None:
    return launch.remembered().language


def _chosen() -> object:
    return session.get(LANGUAGE)


def _business_locale() -> object:
    """Return the connected business's brand_theme.locale, as vcita last said it."""
    try:
        connection = browser.current_connection()
    except StoreUnavailable:
        return None  # the error page that says so is shown in another hint's language
    if connection is None or connection.snapshot is None:
        return None
    theme = connection.snapshot.userinfo.get("brand_theme")
    return theme.get("locale") if isinstance(theme, dict) else None


def _stale(po: Path) -> bool:
    mo = po.with_suffix(".mo")
    return not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime
