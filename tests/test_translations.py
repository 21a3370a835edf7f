"""The catalogues: complete, well formed, in step with the marked strings, and nothing unmarked.

The app's catalogues (translations/) and the sandbox's own (sandbox/translations/) hold
every string a person reads, in each of the App Market's locales but English, the
language of the source. `make messages` extracts the marked strings into them with
babel.cfg; these tests extract again, the same way, and compare.
"""

import os
import re
import shutil
import subprocess
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from app.app_market.launch import LANGUAGES

ROOT = Path(__file__).resolve().parent.parent
# Each set of catalogues, with the folder `make messages` extracts from and its babel.cfg.
DOMAINS = {
    "app": (ROOT / "translations", ROOT, ROOT / "babel.cfg"),
    "sandbox": (
        ROOT / "sandbox" / "translations",
        ROOT / "sandbox",
        ROOT / "sandbox" / "babel.cfg",
    ),
}
TRANSLATED = sorted(set(LANGUAGES.values()) - {"en"})  # English is the source
CATALOGUES = [
    pytest.param(domain, locale, id=f"{domain}-{locale}")
    for domain in DOMAINS
    for locale in TRANSLATED
]
# %(name)s as gettext and Python use it, and {name} as str.format does.
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|\{(\w+)\}")
TAG = re.compile(r"<[^>]+>")
# The templates a person reads. The sandbox's developer pages (its front page, the App
# Market's chooser, error and uninstall pages) speak to a developer, in English.
TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))
SANDBOX_TEMPLATES = [
    ROOT / "sandbox" / "templates" / "sandbox" / name
    for name in ("base.html", "login.html", "consent.html", "staff_choices.html", "app_shell.html")
]
# Names, not words: they read the same in every language.
NAMES = re.compile(r"vcita Connect|vcita sandbox|vcita")
SHOWN_ATTRIBUTES = ("alt", "aria-label", "title", "placeholder")


def catalogue(domain: str, locale: str):
    folder = DOMAINS[domain][0]
    with open(folder / locale / "LC_MESSAGES" / "messages.po", "rb") as po:
        return read_po(po, locale=locale)


@cache
def marked_strings(domain: str) -> frozenset:
    """Return every msgid the sources mark, extracted as `make messages` does."""
    _, source, config = DOMAINS[domain]
    with open(config) as mapping:
        method_map, options_map = parse_mapping_cfg(mapping)
    return frozenset(
        message
        for _, _, message, _, _ in extract_from_dir(
            str(source), method_map, options_map, keywords=DEFAULT_KEYWORDS
        )
    )


def forms(message) -> list[str]:
    return list(message.string) if isinstance(message.string, tuple) else [message.string]


@pytest.mark.parametrize(("domain", "locale"), CATALOGUES)
def test_every_catalogue_is_complete_and_has_no_fuzzy_entry(domain, locale):
    po = catalogue(domain, locale)
    untranslated = [message.id for message in po if message.id and not all(forms(message))]
    fuzzy = [message.id for message in po if message.fuzzy]

    assert len(po) > 0
    assert untranslated == []
    assert fuzzy == []  # the header too: msgfmt and pybabel compile skip a fuzzy catalogue


@pytest.mark.parametrize(("domain", "locale"), CATALOGUES)
def test_every_plural_has_the_forms_of_its_language(domain, locale):
    po = catalogue(domain, locale)
    plurals = [message for message in po if isinstance(message.id, tuple)]

    # Babel's gettext rules from CLDR: three forms in Hebrew and Polish, one in Chinese.
    assert po.plural_forms == Catalog(locale=locale).plural_forms
    assert plurals != [] or domain == "sandbox"  # the sandbox's pages count nothing
    for message in plurals:
        assert len(forms(message)) == po.num_plurals, message.id


def test_hebrew_and_polish_have_more_than_two_plural_forms():
    assert catalogue("app", "he").num_plurals == 3
    assert catalogue("app", "pl").num_plurals == 3
    assert catalogue("app", "zh_Hans_SG").num_plurals == 1


@pytest.mark.parametrize(("domain", "locale"), CATALOGUES)
def test_every_catalogue_compiles_with_msgfmt_check(domain, locale):
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        message = "msgfmt is not installed: `make install-gettext` (as root) installs gettext"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " — CI=true, so the check may not skip")
        pytest.skip(message)
    po = DOMAINS[domain][0] / locale / "LC_MESSAGES" / "messages.po"

    checked = subprocess.run(
        [msgfmt, "--check", "--output-file", os.devnull, str(po)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert checked.returncode == 0, checked.stderr
    assert checked.stderr == ""


@pytest.mark.parametrize(("domain", "locale"), CATALOGUES)
def test_every_translation_keeps_the_placeholders_and_markup_of_its_message(domain, locale):
    po = catalogue(domain, locale)
    broken = []
    for message in po:
        if not message.id:
            continue
        source = message.id[0] if isinstance(message.id, tuple) else message.id
        for form in forms(message):
            if set(PLACEHOLDER.findall(form)) != set(PLACEHOLDER.findall(source)):
                broken.append(("placeholders", message.id, form))
            # The same elements with the same attributes: a link keeps its href, and an
            # ID its dir="ltr".
            if sorted(TAG.findall(form)) != sorted(TAG.findall(source)):
                broken.append(("markup", message.id, form))

    assert broken == []


@pytest.mark.parametrize(("domain", "locale"), CATALOGUES)
def test_every_marked_string_is_in_every_catalogue_and_no_other(domain, locale):
    marked = marked_strings(domain)
    kept = {message.id for message in catalogue(domain, locale) if message.id}

    # Missing: `make messages` adds it, then translate it. Left over: `make messages` drops it.
    assert sorted(map(str, marked - kept)) == []
    assert sorted(map(str, kept - marked)) == []


def test_the_extraction_finds_the_python_and_template_strings():
    marked = marked_strings("app")

    assert "Page not found" in marked  # app/errors.py, lazily
    assert "Disconnect" in marked  # templates/connect/dashboard.html, {{ _() }}
    assert (
        "You are sent to vcita, which asks you to sign in and, unless this app already holds "
        "a key you allowed, to choose <strong>Allow</strong>."
    ) in marked  # a {% trans %} block over several lines, trimmed
    assert "Log in to vcita" in marked_strings("sandbox")


class BareText(HTMLParser):
    """Collect what a template shows a person outside {{ _() }} and {% trans %}."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.untranslated_depth = 0  # inside translate="no", <style> or <script>
        self.open: list[bool] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name in SHOWN_ATTRIBUTES:
            self._check(attributes.get(name) or "")
        if tag in ("img", "input", "meta", "link", "br", "hr", "source"):
            return  # void elements never close
        skip = attributes.get("translate") == "no" or tag in ("style", "script")
        self.open.append(skip)
        self.untranslated_depth += skip

    def handle_endtag(self, tag):
        if self.open:
            self.untranslated_depth -= self.open.pop()

    def handle_data(self, data):
        if not self.untranslated_depth:
            self._check(data)

    def _check(self, text: str) -> None:
        words = NAMES.sub("", text)
        if re.search(r"[^\W\d_]", words):  # a letter of any script
            self.found.append(" ".join(text.split()))


def bare_text(template: str) -> list[str]:
    """Return the text of `template` that a person reads and no gettext call marks."""
    stripped = re.sub(r"\{#.*?#\}", "", template, flags=re.DOTALL)
    stripped = re.sub(r"\{%-?\s*trans\b.*?\{%-?\s*endtrans\s*-?%\}", "", stripped, flags=re.DOTALL)
    stripped = re.sub(r"\{\{.*?\}\}", "", stripped, flags=re.DOTALL)
    stripped = re.sub(r"\{%.*?%\}", "", stripped, flags=re.DOTALL)
    parser = BareText()
    parser.feed(stripped)
    parser.close()
    return parser.found


@pytest.mark.parametrize(
    "template", TEMPLATES + SANDBOX_TEMPLATES, ids=lambda path: str(path.relative_to(ROOT))
)
def test_no_template_shows_a_person_text_that_is_not_marked(template):
    assert bare_text(template.read_text()) == []


@pytest.mark.parametrize(
    ("template", "found"),
    [
        ("<p>Hello {{ name }}</p>", ["Hello"]),
        ('<img src="x.svg" alt="Our logo">', ["Our logo"]),
        ('<button aria-label="Close">&times;</button>', ["Close"]),
        ("<h1>שלום</h1>", ["שלום"]),
        ('<p>{{ _("Marked") }} and not</p>', ["and not"]),
        ("<p>{% trans %}Marked{% endtrans %}</p><p>{% if x %}Bare{% endif %}</p>", ["Bare"]),
        ('<pre translate="no">GET /path HTTP/1.1</pre><p>{{ value }} (42)</p>', []),
        ("<title>{% block title %}{% endblock %} · vcita Connect</title>", []),
        ("<style>:root { --ink: #000; }</style>", []),
    ],
)
def test_the_bare_text_check_finds_unmarked_words(template, found):
    assert bare_text(template) == found
