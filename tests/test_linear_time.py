"""No regular expression of the app or the sandbox takes more than linear time (issue 16).

A pattern that backtracks over its input (`\\?.*(?= HTTP/)` looks ahead to the end of the
line from every "?") lets one request burn seconds of a worker's CPU. Each compiled
pattern of `app/` and `sandbox/`, and each function that applies one to text a request,
a launch, a webhook or vcita's answers control, is given inputs built to make it
backtrack: the work for an input 8 times longer must stay about 8 times the work (a
quadratic one takes about 64 times). Work is this thread's CPU time, the least of
several tries over enough repetitions, so a busy machine does not change the verdict.
A module that compiles a pattern the table does not cover, or applies one in a way it
does not measure, fails the suite: the next regular expression cannot slip in unmeasured.
"""

import ast
import importlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn import glogging
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from app import config, formatting, logs, vcita
from app.app_market import launch
from sandbox import (
    access_log,
    authorize,
    client_assertion,
    client_records,
    clients,
    control,
    settings,
)

ROOT = Path(__file__).resolve().parent.parent
# The cut app/logs.py made with a regular expression until issue 16: kept as the oracle
# its linear replacement must agree with, and as proof that the growth test catches it.
OLD_QUERY_STRING = re.compile(r"\?(?:.*(?= HTTP/)|[^ ]*)")
GROWTH = 8
# Linear work grows about 8 times for an input 8 times longer, quadratic about 64 times.
# Twice the linear figure leaves room for caches and allocation, and still tells them apart.
MOST_GROWTH = 2 * GROWTH
TRIES = 5
ENOUGH_WORK = 0.002  # seconds of CPU per measurement, far above the clock's resolution
PATTERN_METHODS = {"match", "fullmatch", "search", "sub", "subn", "split", "findall", "finditer"}


@dataclass(frozen=True)
class Hostile:
    """A pattern (applied the way the code applies it) or a function, and hostile inputs."""

    name: str  # what is applied to what: the test's id
    subject: re.Pattern | Callable
    method: str  # the pattern's method the code calls; "call" for a function
    family: Callable[[int], object]  # the input of size n
    n: int = 5000  # a size at which the work is well above the call's own cost

    def apply(self, argument: object) -> object:
        if self.method == "call":
            return self.subject(argument)
        if self.method in ("sub", "subn"):
            return getattr(self.subject, self.method)("", argument)
        return getattr(self.subject, self.method)(argument)


def gunicorn_atoms(value: str) -> dict:
    """Return the atoms of one access-log line whose URL atoms and headers all hold `value`."""
    url_atoms = logs.URL_ATOMS | logs.QUERY_ATOMS
    return {**dict.fromkeys(url_atoms, value), "{user-agent}i": value, "{accept}i": value}


def filtered_by_url_secrets(atoms: dict) -> logging.LogRecord:
    # A fresh record each time: the filter cuts its atoms in place.
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(r)s", None, None)
    record.args = dict(atoms)
    logs.UrlSecretsFilter().filter(record)
    return record


def filtered_by_werkzeug_filter(message: str) -> logging.LogRecord:
    record = logging.LogRecord("werkzeug", logging.INFO, __file__, 1, message, None, None)
    logs.ControlCharacterFilter(drop=logs.WERKZEUG_COLOURS).filter(record)
    return record


def sandbox_request(query: str) -> dict:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": "/app/oauth/authorize", "QUERY_STRING": query}


def launch_query(value: str) -> MultiDict:
    return MultiDict({name: value for name in launch.NAMES})


# Every pattern, and every function applying one to outside text, with inputs built to
# make it backtrack: many "?" and spaces, a long run of what a pattern accepts followed by
# one thing it refuses, labels and separators repeated, an escape never finished.
TABLE = [
    # app/logs.py: access-log lines and atoms, every line the servers log.
    Hostile("hide_url_secrets('? ' * n)", logs.hide_url_secrets, "call", lambda n: "? " * n, 500),
    Hostile(
        "hide_url_secrets('GET /?' * n)",
        logs.hide_url_secrets,
        "call",
        lambda n: "GET /?" * n,
        200,
    ),
    Hostile(
        "hide_url_secrets('?\\n ' * n)", logs.hide_url_secrets, "call", lambda n: "?\n " * n, 500
    ),
    Hostile(
        "hide_url_secrets('? HTTP/\\n' * n)",
        logs.hide_url_secrets,
        "call",
        lambda n: "? HTTP/\n" * n,
        500,
    ),
    Hostile(
        "hide_url_secrets('/webhooks/vcita/? ' * n)",
        logs.hide_url_secrets,
        "call",
        lambda n: "/webhooks/vcita/? " * n,
        100,
    ),
    Hostile(
        "WEBHOOK_SECRET.sub('/webhooks/vcita/' * n)",
        logs.WEBHOOK_SECRET,
        "sub",
        lambda n: "/webhooks/vcita/" * n,
        500,
    ),
    Hostile(
        "WEBHOOK_SECRET.sub('/webhooks/vcita/' + 'a' * n)",
        logs.WEBHOOK_SECRET,
        "sub",
        lambda n: "/webhooks/vcita/" + "a" * n,
    ),
    Hostile(
        "WERKZEUG_COLOURS.sub('\\x1b[' + '1;' * n)",
        logs.WERKZEUG_COLOURS,
        "sub",
        lambda n: "\x1b[" + "1;" * n,
    ),
    Hostile(
        "WERKZEUG_COLOURS.sub('\\x1b[1' * n)", logs.WERKZEUG_COLOURS, "sub", lambda n: "\x1b[1" * n
    ),
    Hostile("escape_controls('\\x1b[' * n)", logs.escape_controls, "call", lambda n: "\x1b[" * n),
    Hostile(
        "escape_controls('\\u2028?' * n)", logs.escape_controls, "call", lambda n: "\u2028?" * n
    ),
    Hostile(
        "UrlSecretsFilter(gunicorn's atoms, each '? ' * n)",
        filtered_by_url_secrets,
        "call",
        lambda n: gunicorn_atoms("? " * n),
        150,
    ),
    Hostile(
        "ControlCharacterFilter(WERKZEUG_COLOURS)('\\x1b[' + '1' * n)",
        filtered_by_werkzeug_filter,
        "call",
        lambda n: "\x1b[" + "1" * n + "\n",
    ),
    # app/vcita.py: vcita's answers, and the brand_host of a launch.
    Hostile(
        "ACCESS_TOKEN.fullmatch('a' * n + '\\n')",
        vcita.ACCESS_TOKEN,
        "fullmatch",
        lambda n: "a" * n + "\n",
    ),
    Hostile(
        "HOST_NAME.fullmatch('a.' * n + '-')",
        vcita.HOST_NAME,
        "fullmatch",
        lambda n: "a." * n + "-",
    ),
    Hostile("HOST_NAME.fullmatch('a-' * n)", vcita.HOST_NAME, "fullmatch", lambda n: "a-" * n),
    Hostile(
        "RETRY_AFTER.fullmatch('1' * n + 'x')",
        vcita.RETRY_AFTER,
        "fullmatch",
        lambda n: "1" * n + "x",
    ),
    Hostile(
        "allowed_brand_host('a.' * n + '-')",
        lambda host: vcita.allowed_brand_host(host, ("*.partner.example",)),
        "call",
        lambda n: "a." * n + "-",
    ),
    # app/config.py: settings, read once at startup.
    Hostile(
        "ORIGIN.fullmatch('http://' + 'a.' * n + '!')",
        config.ORIGIN,
        "fullmatch",
        lambda n: "http://" + "a." * n + "!",
    ),
    Hostile(
        "ORIGIN.fullmatch('http://' + 'a-' * n + ':')",
        config.ORIGIN,
        "fullmatch",
        lambda n: "http://" + "a-" * n + ":",
    ),
    # app/formatting.py and app/app_market/launch.py: vcita's brand colours, a launch's parameters.
    Hostile(
        "HEX_COLOUR.fullmatch('#' + 'a' * n)",
        formatting.HEX_COLOUR,
        "fullmatch",
        lambda n: "#" + "a" * n,
    ),
    Hostile("UID.fullmatch('a' * n + '!')", launch.UID, "fullmatch", lambda n: "a" * n + "!"),
    Hostile("WORD.fullmatch('a.' * n + '!')", launch.WORD, "fullmatch", lambda n: "a." * n + "!"),
    Hostile("HOST.fullmatch('a.' * n + '!')", launch.HOST, "fullmatch", lambda n: "a." * n + "!"),
    Hostile(
        "read_launch(each parameter 'a.' * n + '!')",
        launch.read_launch,
        "call",
        lambda n: launch_query("a." * n + "!"),
    ),
    # sandbox/: what an app sends to the emulated vcita.
    Hostile(
        "WHOLE_NUMBER.fullmatch('1' * n + 'x')",
        clients.WHOLE_NUMBER,
        "fullmatch",
        lambda n: "1" * n + "x",
    ),
    Hostile("DATE_ONLY.fullmatch('1' * n)", clients.DATE_ONLY, "fullmatch", lambda n: "1" * n),
    Hostile(
        "CLIENT_ID.fullmatch('a' * n + '!')",
        client_records.CLIENT_ID,
        "fullmatch",
        lambda n: "a" * n + "!",
    ),
    Hostile(
        "COMPACT_JWS.fullmatch(three runs of 'a' * n + '!')",
        client_assertion.COMPACT_JWS,
        "fullmatch",
        lambda n: "a" * n + "." + "a" * n + "." + "a" * n + "!",
    ),
    Hostile(
        "COMPACT_JWS.fullmatch('a.' * n)",
        client_assertion.COMPACT_JWS,
        "fullmatch",
        lambda n: "a." * n,
    ),
    Hostile(
        "S256_CHALLENGE.fullmatch('a' * n)",
        authorize.S256_CHALLENGE,
        "fullmatch",
        lambda n: "a" * n,
    ),
    Hostile(
        "BRAND_DOMAIN.fullmatch('a.' * n + '!')",
        settings.BRAND_DOMAIN,
        "fullmatch",
        lambda n: "a." * n + "!",
    ),
    Hostile(
        "URL_HOST.fullmatch('0.' * n + 'g:')",
        settings.URL_HOST,
        "fullmatch",
        lambda n: "0." * n + "g:",
    ),
    Hostile(
        "CREDENTIAL_IN_TEXT.sub('state' + ' ' * n)",
        control.CREDENTIAL_IN_TEXT,
        "sub",
        lambda n: "state" + " " * n,
    ),
    Hostile(
        "CREDENTIAL_IN_TEXT.sub('code=' + ' ' * n + '&')",
        control.CREDENTIAL_IN_TEXT,
        "sub",
        lambda n: "code=" + " " * n + "&",
    ),
    Hostile(
        "CREDENTIAL_IN_TEXT.sub('code ' * n)",
        control.CREDENTIAL_IN_TEXT,
        "sub",
        lambda n: "code " * n,
        500,
    ),
    Hostile(
        "masked('password: ' * n)",
        lambda text: control.masked(text, {"a-known-secret"}),
        "call",
        lambda n: "password: " * n,
        500,
    ),
    Hostile(
        "request_line(query 'state=' + '?&' * n)",
        access_log.request_line,
        "call",
        lambda n: sandbox_request("state=" + "?&" * n),
        500,
    ),
]


def cpu_work(apply: Callable, argument: object, repetitions: int, tries: int = TRIES) -> float:
    """Return the least CPU time this thread spent applying `argument` `repetitions` times."""
    least = float("inf")
    for _ in range(tries):
        started = time.thread_time()
        for _ in range(repetitions):
            apply(argument)
        least = min(least, time.thread_time() - started)
    return least


def growth_of_work(apply: Callable, family: Callable[[int], object], n: int) -> float:
    """Return how many times the work grows when the input grows from size n to 8n."""
    small, large = family(n), family(GROWTH * n)
    repetitions = 1
    while cpu_work(apply, small, repetitions, tries=1) < ENOUGH_WORK:
        repetitions *= 2
    small_work = cpu_work(apply, small, repetitions)
    large_work = float("inf")
    for _ in range(TRIES):
        large_work = min(large_work, cpu_work(apply, large, repetitions, tries=1))
        if large_work <= MOST_GROWTH * small_work:
            break  # linear already: more tries could only make it less
    return large_work / small_work


@pytest.mark.parametrize("hostile", TABLE, ids=lambda hostile: hostile.name)
def test_the_work_grows_linearly_with_a_hostile_input(hostile):
    growth = growth_of_work(hostile.apply, hostile.family, hostile.n)

    assert growth <= MOST_GROWTH, f"{GROWTH}x the input took {growth:.0f}x the work"


def test_the_growth_test_catches_the_quadratic_cut_this_module_replaced():
    old_cut = Hostile(
        "OLD_QUERY_STRING.sub('? ' * n)", OLD_QUERY_STRING, "sub", lambda n: "? " * n, 500
    )

    growth = growth_of_work(old_cut.apply, old_cut.family, old_cut.n)

    assert growth > MOST_GROWTH


def source_files() -> list[Path]:
    """Return the app's and the sandbox's modules, not their tests."""
    return sorted(
        path
        for folder in ("app", "sandbox")
        for path in (ROOT / folder).rglob("*.py")
        if "tests" not in path.relative_to(ROOT).parts
    )


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@dataclass
class RegexUses:
    """What the sources do with `re`: their named patterns, and anything else."""

    patterns: dict[str, list[str]]  # module → names it binds to re.compile(...) at its top
    others: list[str]  # where re is used otherwise: a pattern nobody can measure by name


def regex_uses() -> RegexUses:
    """Read every module's source for its uses of `re`."""
    uses = RegexUses({}, [])
    for path in source_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(ROOT)
        aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                aliases |= {
                    alias.asname or alias.name for alias in node.names if alias.name == "re"
                }
            elif isinstance(node, ast.ImportFrom) and node.module == "re":
                uses.others.append(f"{where}:{node.lineno}: from re import …")
        named = {
            id(node.value): node.targets[0].id
            for node in tree.body
            if isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        }
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in aliases
            ):
                continue
            if node.func.attr == "compile" and id(node) in named:
                uses.patterns.setdefault(module_name(path), []).append(named[id(node)])
            else:
                uses.others.append(f"{where}:{node.lineno}: re.{node.func.attr}(…)")
    return uses


def compiled_patterns(uses: RegexUses) -> dict[str, re.Pattern]:
    """Return each named pattern the sources compile, by its qualified name."""
    return {
        f"{module}.{name}": getattr(importlib.import_module(module), name)
        for module, names in uses.patterns.items()
        for name in names
    }


def pattern_calls(pattern_names: set[str]) -> set[tuple[int, str]]:
    """Return (pattern id, method) for each `PATTERN.method(…)` the sources call by name.

    A name is resolved in the module that uses it (`HOST_NAME`, `vcita.HOST_NAME`); a
    pattern reached otherwise (`FORMS[name]`, `self.drop`) is measured through the
    function that applies it (`read_launch`, the log filters).
    """
    calls = set()
    for path in source_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in PATTERN_METHODS
                and last_name(node.func.value) in pattern_names
            ):
                module = importlib.import_module(module_name(path))
                subject = resolved(module, node.func.value)
                if isinstance(subject, re.Pattern):
                    calls.add((id(subject), node.func.attr))
    return calls


def last_name(expression: ast.expr) -> str | None:
    if isinstance(expression, ast.Name):
        return expression.id
    return expression.attr if isinstance(expression, ast.Attribute) else None


def resolved(module, expression: ast.expr) -> object:
    """Return what a name or dotted name in `module` refers to, None if not a global."""
    if isinstance(expression, ast.Name):
        return vars(module).get(expression.id)
    if isinstance(expression, ast.Attribute):
        return getattr(resolved(module, expression.value), expression.attr, None)
    return None


def test_every_pattern_of_the_app_and_the_sandbox_is_measured():
    uses = regex_uses()
    measured = {id(hostile.subject) for hostile in TABLE}

    compiled = compiled_patterns(uses)

    assert uses.others == [], "compile a pattern at a module's top, by name, and measure it"
    assert len(compiled) >= 18  # the scan finds what is there (18 patterns at issue 16)
    assert [name for name, pattern in compiled.items() if id(pattern) not in measured] == []


def test_every_way_a_pattern_is_applied_is_measured():
    compiled = compiled_patterns(regex_uses())
    names = {id(pattern): name for name, pattern in compiled.items()}
    measured = {(id(hostile.subject), hostile.method) for hostile in TABLE}

    calls = pattern_calls({name.rsplit(".", 1)[1] for name in compiled})

    assert len(calls) >= 14  # the scan finds the calls (14 at issue 16: HOST_NAME.fullmatch…)
    assert sorted(f"{names[pattern]}.{method}" for pattern, method in calls - measured) == []


# The cut of query strings, exactly as the regular expression it replaced made it.
URL_PIECES = st.sampled_from(["?", " ", "\n", " HTTP/", "HTTP/", "\r", "a", "=", "/", "%0A"])


@given(text=st.one_of(st.lists(URL_PIECES | st.text(max_size=3)).map("".join), st.text()))
def test_the_linear_cut_is_the_old_regular_expressions_cut(text):
    assert logs.cut_query_strings(text) == OLD_QUERY_STRING.sub("?…", text)


def gunicorn_access_record(headers: dict[str, str], location: str) -> logging.LogRecord:
    """Return the access-log record gunicorn writes for a GET /callback, with its atoms.

    The atoms are gunicorn's own (glogging.Logger.atoms, wrapped as gunicorn wraps them),
    built without the handlers gunicorn's Logger would install on this process's loggers.
    """
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/callback?code=c0de&state=5tate",
        "PATH_INFO": "/callback",
        "QUERY_STRING": "code=c0de&state=5tate",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()},
    }
    request = SimpleNamespace(headers=[(name.upper(), value) for name, value in headers.items()])
    response = SimpleNamespace(status="302 FOUND", headers=[("Location", location)], sent=0)
    gunicorn_logger = object.__new__(glogging.Logger)
    atoms = glogging.Logger.atoms(gunicorn_logger, response, request, environ, timedelta())
    return logging.LogRecord(
        "gunicorn.access", logging.INFO, __file__, 1, "-", (glogging.SafeAtoms(atoms),), None
    )


def test_gunicorn_cuts_every_url_atom_and_leaves_other_headers_as_they_are():
    record = gunicorn_access_record(
        {"Referer": "https://partner.example/page?token=s3cret", "User-Agent": "probe?x=1"},
        location="https://app.vcita.com/app/oauth/authorize?client_id=c&state=5tate",
    )

    assert logs.UrlSecretsFilter().filter(record) is True

    atoms = record.args
    assert atoms["r"] == "GET /callback?… HTTP/1.1"
    assert atoms["U"] == "/callback"
    assert atoms["q"] == atoms["{query_string}e"] == "…"
    assert atoms["{raw_uri}e"] == "/callback?…"
    assert atoms["f"] == atoms["{referer}i"] == atoms["{http_referer}e"]
    assert atoms["f"] == "https://partner.example/page?…"
    assert atoms["{location}o"] == "https://app.vcita.com/app/oauth/authorize?…"
    assert atoms["a"] == atoms["{user-agent}i"] == atoms["{http_user_agent}e"] == "probe?x=1"
    rendered = "|".join(str(value) for value in atoms.values())
    assert "5tate" not in rendered and "c0de" not in rendered and "s3cret" not in rendered
