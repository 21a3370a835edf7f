"""The pages speak the business owner's language: vcita's eleven locales, Hebrew right-to-left.

A page is in the first language that applies: the launch's `language`, the one chosen in
the menu, the business's brand_theme.locale once connected, the browser's Accept-Language,
then English (app/languages.py). A value that names none of the eleven is skipped.
"""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask_babel import force_locale
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import formatting, languages, views
from app.languages import LANGUAGES, known_language
from app.session_keys import LANGUAGE, LAUNCH
from app.token_use.ending import Ended
from sandbox.testing import demo_names, page_texts, texts_to_translate

ROOT = Path(__file__).resolve().parent.parent
HTML_TAG = re.compile(r'<html lang="([^"]+)" dir="(ltr|rtl)">')
HARBOR = "7c6dc1589f078b66"  # Harbor Light Yoga, whose locale is "en"
MAYA = "1beb795be66146bb"
SONRISA_OWNER = "Sofía Hernández"  # Clínica Dental Sonrisa's owner; its locale is "es"
OFEK_OWNER = "נועה לוי"  # the owner of a Hebrew business (locale "he")
TAGS = {code: language.tag for code, language in LANGUAGES.items()}
ANY = st.characters(exclude_categories=("Cs",))  # any character a URL can carry
FRAMED = {"Sec-Fetch-Dest": "iframe"}  # what Chromium sends when a frame loads a page
# What reads the same in every language: the app's name, the menu's languages, each in its
# own, and what vcita answered about the demo businesses.
NAMES = {"vcita Connect", *(language.name for language in LANGUAGES.values()), *demo_names()}
# Words a language writes as English does: the same text on both pages is no oversight.
SAME_AS_ENGLISH = {
    "de": {"Name", "Status"},
    "fr": {"E-mail"},
    "it": {"E-mail"},
    "nl": {"E-mail", "Status"},
    "pl": {"E-mail", "Status"},
    "pt": {"E-mail", "Status"},
}


def page_language(html: str) -> tuple[str, str]:
    """Return the page's <html lang> and dir."""
    return HTML_TAG.search(html).groups()


def choose(browser, code: str) -> None:
    """Pick a language in the page's menu (a GET form, as a browser without script sends it)."""
    response = browser.get("/language", query_string={"language": code, "next": "/"})
    assert response.status_code == 303


# Each page a person can meet, reached as they reach it: (status, how).
def landing(browser, code):
    return 200, browser.get("/")


def framed_landing(browser, code):
    # Inside vcita's frame, which keeps a session of its own, opened in vcita's language.
    # The popup's notes are there, which frame.js only shows or hides.
    return 200, browser.get("/", query_string={"language": code}, headers=FRAMED)


def dashboard(browser, code):
    browser.connect()
    return 200, browser.get("/dashboard")


def popup_last_page(browser, code):
    browser.connect()
    return 200, browser.get("/connected")


def not_found(browser, code):
    return 404, browser.get("/no-such-page")


def method_not_allowed(browser, code):
    return 405, browser.get("/disconnect")


def forged_form(browser, code):
    browser.connect()
    return 403, browser.post("/disconnect", data={"csrf_token": "forged"})


def invalid_callback(browser, code):
    return 400, browser.get("/callback?code=a-code&state=a-state-from-another-browser")


PAGES = {
    "landing": landing,
    "framed-landing": framed_landing,
    "dashboard": dashboard,
    "popup-last-page": popup_last_page,
    "404": not_found,
    "405": method_not_allowed,
    "csrf-403": forged_form,
    "invalid-callback": invalid_callback,
}


@pytest.mark.parametrize("reach", PAGES.values(), ids=PAGES)
def test_every_page_renders_in_every_locale_in_its_language_and_direction(
    make_app, new_browser, reach
):
    pages = {}
    for code in LANGUAGES:
        browser = new_browser(make_app())
        choose(browser, code)

        status, response = reach(browser, code)

        assert response.status_code == status, code
        assert page_language(response.text) == (TAGS[code], LANGUAGES[code].direction)
        pages[code] = page_texts(response.text)

    # Every text of the English page that says more than names reads otherwise in each locale.
    for code in set(LANGUAGES) - {"en", "en-GB"}:
        english_left = texts_to_translate(pages["en"] & pages[code], NAMES)
        assert english_left <= SAME_AS_ENGLISH.get(code, set()), code
    assert page_language(response.text)[1] == "ltr"  # the last, zh-SG
    assert texts_to_translate(pages["en"], NAMES)  # there was text to translate


def test_hebrew_pages_are_right_to_left(browser):
    browser.environ_base["HTTP_ACCEPT_LANGUAGE"] = "he-IL,he;q=0.9,en;q=0.5"
    page = browser.get("/").text

    assert page_language(page) == ("he", "rtl")
    assert "חברו את חשבון ה־vcita שלכם" in page


def test_british_english_writes_colours_and_dates_its_own_way(browser):
    browser.connect()
    choose(browser, "en")
    american = browser.get("/dashboard").text
    choose(browser, "en-GB")
    british = browser.get("/dashboard").text
    landing = browser.get("/").text

    assert page_language(british) == ("en-GB", "ltr")
    assert "brand colours" in landing
    # The token expires in 20 years: "Nov 29, 2046" in American English, "29 Nov 2046" here.
    assert re.search(r"\(\w{3} \d{1,2}, \d{4}\)", american)
    assert re.search(r"\(\d{1,2} \w{3} \d{4}\)", british)


# The choice, step by step: each hint outranks the ones after it.


def test_without_any_hint_the_pages_are_english(browser):
    assert page_language(browser.get("/").text) == ("en", "ltr")


@pytest.mark.parametrize(
    ("accept_language", "shown"),
    [
        ("he", "he"),
        ("he-IL,en;q=0.5", "he"),
        ("de-CH;q=0.5, fr;q=0.9", "fr"),
        ("en-GB,en;q=0.8", "en-GB"),
        ("pt-BR", "pt"),
        ("zh-CN", "zh-Hans-SG"),
        ("zh-TW", "en"),  # Traditional Chinese: vcita's zh-SG is Simplified
        ("ja,ko;q=0.9", "en"),
        ("*", "en"),
        ("de;q=0,nl;q=0.5", "nl"),  # q=0: "not German"
    ],
)
def test_the_browsers_accept_language_chooses_among_the_eleven(browser, accept_language, shown):
    page = browser.get("/", headers={"Accept-Language": accept_language}).text

    assert page_language(page)[0] == shown


def test_the_business_locale_outranks_the_browser(browser):
    browser.environ_base["HTTP_ACCEPT_LANGUAGE"] = "de"
    assert page_language(browser.get("/").text)[0] == "de"

    browser.connect(staff=SONRISA_OWNER)  # her business's brand_theme.locale is "es"
    dashboard = browser.get("/dashboard").text

    assert page_language(dashboard) == ("es", "ltr")
    assert "Conectado a vcita" in dashboard
    assert page_language(browser.get("/").text)[0] == "es"  # every page, once connected


def test_a_hebrew_business_gets_its_dashboard_right_to_left(browser):
    browser.connect(staff=OFEK_OWNER)
    dashboard = browser.get("/dashboard").text

    assert page_language(dashboard) == ("he", "rtl")
    assert "מחובר ל־vcita" in dashboard
    # IDs and e-mails keep their own direction inside the Hebrew text.
    assert '<span dir="ltr">noa.levi@ofekphysio.example</span>' in dashboard
    assert re.search(r'<code dir="ltr">4f0b7d2e91c6a853</code>', dashboard)


def test_the_menus_choice_outranks_the_business_and_the_browser(browser):
    browser.environ_base["HTTP_ACCEPT_LANGUAGE"] = "de"
    browser.connect(staff=SONRISA_OWNER)

    choose(browser, "pl")

    assert page_language(browser.get("/dashboard").text)[0] == "pl"
    assert page_language(browser.get("/").text)[0] == "pl"


def test_the_launchs_language_outranks_every_other_hint(browser):
    browser.environ_base["HTTP_ACCEPT_LANGUAGE"] = "de"
    browser.connect(staff=SONRISA_OWNER)
    choose(browser, "pl")

    landing = browser.get("/", query_string={"language": "he", "business_uid": HARBOR})

    assert page_language(landing.text) == ("he", "rtl")
    assert page_language(browser.get("/dashboard").text)[0] == "he"  # kept for the session


def test_the_launchs_language_lasts_through_the_connect(browser):
    browser.get("/", query_string={"language": "fr", "business_uid": HARBOR, "staff_uid": MAYA})
    browser.get(browser.approve())  # the session is rotated here

    dashboard = browser.get("/dashboard").text  # Harbor Light Yoga's locale is "en"

    assert page_language(dashboard)[0] == "fr"
    assert "Connecté à vcita" in dashboard


def test_choosing_in_the_menu_after_a_launch_replaces_the_launchs_language(browser):
    browser.get("/", query_string={"language": "he", "business_uid": HARBOR})
    choose(browser, "it")
    with browser.session_transaction() as session:
        assert session[LAUNCH] == {"business_uid": HARBOR}  # the other hints are kept
    assert page_language(browser.get("/").text)[0] == "it"

    # vcita opens the app again: its language wins again.
    launched = browser.get("/", query_string={"language": "nl", "business_uid": HARBOR})
    assert page_language(launched.text)[0] == "nl"


@pytest.mark.parametrize(
    ("language", "code"),
    [("en_GB", "en-GB"), ("HE", "he"), ("zh-sg", "zh-SG"), ("EN-gb", "en-GB")],
)
def test_a_launch_language_is_read_in_any_spelling_the_menu_takes(browser, language, code):
    browser.environ_base["HTTP_ACCEPT_LANGUAGE"] = "es"
    response = browser.get("/", query_string={"language": language, "business_uid": HARBOR})

    assert page_language(response.text)[0] == TAGS[code]
    with browser.session_transaction() as session:
        assert session[LAUNCH] == {"language": code, "business_uid": HARBOR}  # vcita's spelling


# Hostile values: ignored, never an error.


@pytest.mark.parametrize(
    "language",
    ["../x", "he/../../etc", "he ", "iw", "zh_Hans_SG", "x" * 1024, "<script>", ""],
)
def test_a_launch_language_vcita_never_sends_is_ignored(browser, language):
    browser.environ_base["HTTP_ACCEPT_LANGUAGE"] = "es"
    response = browser.get("/", query_string={"language": language})

    assert response.status_code == 200
    assert page_language(response.text)[0] == "es"  # the next hint, the browser's


def test_a_repeated_launch_language_is_ignored(browser):
    response = browser.get("/?language=he&language=fr")

    assert response.status_code == 200
    assert page_language(response.text)[0] == "en"


@pytest.mark.parametrize("language", ["../x", "xx", "he\r\nSet-Cookie: a=b", "x" * 1024, ""])
def test_a_menu_choice_of_no_known_language_changes_nothing(browser, language):
    response = browser.get("/language", query_string={"language": language, "next": "/"})

    assert response.status_code == 303
    assert response.location == "/"
    with browser.session_transaction() as session:
        assert LANGUAGE not in session
    assert page_language(browser.get("/").text)[0] == "en"


@pytest.mark.parametrize(
    ("accept_language", "shown"),
    [
        ("he;q=oops", "en"),  # Werkzeug drops an entry whose quality it cannot read
        ("he;q=oops, fr;q=0.5", "fr"),
        (";;;,,,=", "en"),
        ("he-" + "x" * 1021, "en"),  # 1 KB, one tag: no browser's
        (",".join(["xx-YY;q=0.1"] * 93), "en"),  # 1 KB of tags no one speaks
        (",".join(["xx-YY;q=0.1"] * 92) + ",he;q=0.05", "he"),  # 1 KB, and Hebrew last
        ("q=1, he", "he"),
    ],
)
def test_an_accept_language_header_no_browser_sends_is_read_without_fail(
    browser, accept_language, shown
):
    response = browser.get("/", headers={"Accept-Language": accept_language})

    assert response.status_code == 200
    assert page_language(response.text)[0] == shown


# Accept-Language as browsers send it and as none does: the eleven's tags and others, with
# qualities good and bad, among junk.
language_ranges = st.sampled_from(
    [*LANGUAGES, *TAGS.values(), "he-IL", "iw", "pt-BR", "zh-CN", "zh-TW", "en-US", "ja", "*"]
)
qualities = st.sampled_from(
    ["", ";q=1", ";q=0.8", ";q=0.05", ";q=0", ";q=oops", ";q=", ";q=1.5", ";q=-1", " ; q=0.9"]
)
junk = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
accept_languages = st.lists(
    st.one_of(st.tuples(language_ranges, qualities).map("".join), junk), max_size=6
).map(",".join)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    accept_language=accept_languages,
    launched=st.one_of(st.none(), st.text(ANY, max_size=40), st.sampled_from(list(LANGUAGES))),
    chosen=st.one_of(st.none(), st.text(ANY, max_size=40), st.sampled_from(list(LANGUAGES))),
)
def test_any_hints_give_one_of_the_eleven_languages_or_english(
    app, accept_language, launched, chosen
):
    browser = app.test_client()
    if chosen is not None:
        browser.get("/language", query_string={"language": chosen})
    query = {} if launched is None else {"language": launched}

    response = browser.get("/", query_string=query, headers={"Accept-Language": accept_language})

    assert response.status_code == 200
    lang, direction = page_language(response.text)
    assert lang in TAGS.values()
    assert direction == ("rtl" if lang == "he" else "ltr")
    if known_language(launched):
        assert lang == known_language(launched).tag  # the launch always wins
    elif known_language(chosen):
        assert lang == known_language(chosen).tag
    else:  # the browser's, or English
        named = {
            languages.ALIASES.get(word, word)
            for word in re.findall(r"[a-z]+", accept_language.lower())
        }
        assert lang == "en" or lang.split("-")[0] in named


@pytest.mark.parametrize(
    ("value", "known"),
    [
        ("en-GB", "en-GB"),
        ("en_gb", "en-GB"),
        ("ZH-sg", "zh-SG"),
        ("he", "he"),
        ("he-IL", None),
        ("../he", None),
        ("", None),
        (None, None),
        (["he"], None),
        ("e" * 17, None),
    ],
)
def test_a_business_locale_is_read_in_any_spelling_of_the_eleven_and_nothing_else(value, known):
    found = known_language(value)

    assert (found.code if found else None) == known


# The menu: a GET form that changes the language, and nothing else.


def test_the_menu_is_a_form_that_works_without_script(browser):
    page = browser.get("/").text

    form = re.search(
        r'<form class="language-menu" method="get" action="/language">.*?</form>', page, re.S
    )
    assert form
    assert '<select id="language-choice" name="language">' in form.group()
    assert re.search(r'<label for="language-choice">', form.group())
    assert '<option value="he" lang="he" dir="rtl">עברית</option>' in form.group()
    assert '<input type="hidden" name="next" value="/">' in form.group()


def test_the_menu_changes_the_language_and_nothing_else(browser):
    browser.connect()
    with browser.session_transaction() as session:
        before = dict(session)

    response = browser.get("/language", query_string={"language": "he", "next": "/dashboard"})

    assert response.status_code == 303
    assert response.location == "/dashboard"
    with browser.session_transaction() as session:
        assert dict(session) == {**before, LANGUAGE: "he"}
    assert page_language(browser.get("/dashboard").text) == ("he", "rtl")


@pytest.mark.parametrize(
    "next_url",
    ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)", ""],
)
def test_the_menu_never_sends_the_person_to_another_site(browser, next_url):
    response = browser.get("/language", query_string={"language": "fr", "next": next_url})

    assert response.status_code == 303
    assert response.location == "/"


def test_the_menu_brings_the_landing_page_back_with_its_launch_hints_but_not_its_language(browser):
    page = browser.get(
        "/", query_string={"business_uid": HARBOR, "language": "he", "brand_host": "a.example"}
    ).text

    back = re.search(r'name="next" value="([^"]+)"', page).group(1)
    assert back == f"/?business_uid={HARBOR}&amp;brand_host=a.example"


def test_the_menu_on_an_error_page_leads_to_the_start_page(browser):
    page = browser.get("/callback?code=a-spent-code&state=a-state").text

    assert '<input type="hidden" name="next" value="/">' in page
    assert "a-spent-code" not in page


def test_vcitas_frame_may_show_what_the_menu_answers(make_app):
    browser = make_app(VCITA_FRAME_ANCESTORS="https://app.vcita.com").test_client()

    response = browser.get(
        "/language", query_string={"language": "he"}, headers={"Sec-Fetch-Dest": "iframe"}
    )

    assert "frame-ancestors https://app.vcita.com" in response.headers["Content-Security-Policy"]


# What the pages say in each language: Disconnect, plurals, dates.


def test_disconnect_says_what_it_did_in_the_language_of_the_page_pressed(browser):
    browser.connect(staff=OFEK_OWNER)  # a Hebrew business: its pages are in Hebrew
    response = browser.disconnect()
    landing = browser.get(response.location).text

    assert response.status_code == 303
    assert page_language(landing) == ("he", "rtl")  # no business left, the language stays
    assert (
        "החיבור נותק. vcita כבר לא מקבלת את המפתח שהיה לאפליקציה הזו עבור העסק שלכם, "
        "והאפליקציה מחקה אותו."
    ) in landing


@pytest.mark.parametrize(
    ("locale", "stopped", "asked_again", "says"),
    [
        ("pl", 2, 0, "usunęła 2 klucze połączone"),
        ("pl", 4, 0, "usunęła 4 klucze połączone"),
        ("pl", 5, 0, "usunęła 5 kluczy połączonych"),
        ("pl", 12, 0, "usunęła 12 kluczy połączonych"),
        ("pl", 22, 0, "usunęła 22 klucze połączone"),
        ("pl", 0, 5, "usunęła 5 kluczy połączonych z tej przeglądarki; vcita nie potwierdziła"),
        ("pl", 1, 2, "usunęła 3 klucze połączone z tej przeglądarki; vcita nie akceptuje już 1"),
        ("he", 2, 0, "אף אחד מ־2 המפתחות"),
        ("he", 0, 2, "מחקה את 2 המפתחות שהדפדפן הזה חיבר; vcita לא אישרה"),
        ("he", 1, 2, "מחקה את 3 המפתחות שהדפדפן הזה חיבר; vcita כבר לא מקבלת 1 מהם"),
        ("fr", 2, 0, "aucune des 2 clés connectées"),
        ("es", 1_000_000, 0, "ninguna de las 1000000 de claves"),  # CLDR's "many"
        ("de", 3, 0, "keinen der 3 Schlüssel mehr"),
        ("zh_Hans_SG", 3, 0, "全部 3 个密钥"),
        ("en", 3, 0, "any of the 3 keys"),
        ("en", 0, 2, "deleted the 2 keys this browser connected; vcita did not confirm"),
    ],
)
def test_disconnects_message_counts_in_each_languages_plural_forms(
    app, locale, stopped, asked_again, says
):
    ended = [Ended.VCITA_STOPPED] * stopped + [Ended.VCITA_ASKED_AGAIN] * asked_again
    with app.test_request_context("/"), force_locale(locale):
        assert says in views.disconnect_message(ended)


@pytest.mark.parametrize(
    ("locale", "other_logins", "says"),
    [
        ("he", 1, "חשבון vcita נוסף (1)"),
        ("he", 2, "של 2 חשבונות vcita נוספים"),
        ("pl", 1, "1 inne konto vcita"),
        ("pl", 3, "3 inne konta vcita"),
        ("pl", 5, "5 innych kont vcita"),
        ("en", 1, "the 1 other vcita login connected"),
        ("en", 2, "the 2 other vcita logins connected"),
    ],
)
def test_the_other_logins_disconnect_ends_are_counted_in_each_language(
    app, locale, other_logins, says
):
    # The dashboard's sentence alone, as the template writes it.
    source = (ROOT / "templates/connect/dashboard.html").read_text()
    sentence = re.search(r"\{% if other_connections %\}.*?\{% endif %\}", source, re.S).group()
    with app.test_request_context("/"), force_locale(locale):
        shown = app.jinja_env.from_string(sentence).render(other_connections=other_logins)

    assert says in " ".join(shown.split())


@pytest.mark.parametrize(
    ("locale", "moment", "words"),
    [
        ("en", timedelta(days=365 * 20), "in 20 years"),
        ("en", -timedelta(minutes=5), "5 minutes ago"),
        ("he", timedelta(days=365 * 20), "בעוד 20 שנים"),
        ("he", -timedelta(days=365 * 3), "לפני 3 שנים"),
        ("pl", timedelta(days=365 * 20), "za 20 lat"),
        ("pl", -timedelta(days=365 * 3), "3 lata temu"),
        ("de", -timedelta(minutes=5), "vor 5 Minuten"),
        ("zh_Hans_SG", -timedelta(minutes=5), "5分钟前"),
        ("es", timedelta(seconds=20), "ahora mismo"),
    ],
)
def test_dates_are_said_in_words_of_the_pages_locale(app, locale, moment, words):
    now = datetime(2026, 12, 7, tzinfo=UTC)
    with app.test_request_context("/"), force_locale(locale):
        assert formatting.in_words(now + moment, now=now) == words


# One stylesheet for both directions.


PHYSICAL = re.compile(
    r"(?<![\w-])(margin|padding|border)-(left|right|top|bottom)\b"
    r"|(?<![\w-])(left|right|top|bottom)\s*:"
    r"|text-align\s*:\s*(left|right)|float\s*:\s*(left|right)|clear\s*:\s*(left|right)"
)


@pytest.mark.parametrize(
    "stylesheet", ["static/style.css", "sandbox/static/sandbox.css"], ids=["app", "sandbox"]
)
def test_the_stylesheets_use_logical_properties_only(stylesheet):
    css = re.sub(r"/\*.*?\*/", "", (ROOT / stylesheet).read_text(), flags=re.S)

    assert PHYSICAL.findall(css) == []


@pytest.mark.parametrize(
    "rule",
    [".skip-link { left: -999px; }", "td { text-align: left }", "ol { padding-left: 1rem }"],
)
def test_the_physical_property_check_finds_them(rule):
    assert PHYSICAL.search(rule)


def test_catalogues_not_compiled_are_named_at_start_up(make_app, tmp_path, monkeypatch, capsys):
    for locale in ("he", "pl"):
        folder = tmp_path / locale / "LC_MESSAGES"
        folder.mkdir(parents=True)
        (folder / "messages.po").write_text('msgid ""\nmsgstr ""\n')
    (tmp_path / "pl" / "LC_MESSAGES" / "messages.mo").write_bytes(b"compiled after the .po")
    monkeypatch.setattr(languages, "TRANSLATIONS", tmp_path)

    app = make_app()

    logged = [line for line in capsys.readouterr().err.splitlines() if " WARNING " in line]
    assert len(logged) == 1
    assert logged[0].endswith(
        "The translations are not compiled (he): their pages show in English. "
        "Run `make translations` (make run, serve and test do it)."
    )
    with app.test_request_context(headers={"Accept-Language": "he"}):
        assert languages.page_language().code == "he"  # chosen still, shown in English


def test_compiled_catalogues_make_no_warning(make_app, capsys):
    make_app()

    assert [line for line in capsys.readouterr().err.splitlines() if " WARNING " in line] == []
