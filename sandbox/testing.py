"""Tools for testing a client against the sandbox: a server thread and a scripted person.

Not part of the emulated vcita. `ServerThread` serves any WSGI app (the sandbox, or a
client app) over real HTTP/1.1 with keep-alive on a background thread, using waitress;
`SandboxPerson` is a business owner who signs in on the sandbox's pages and allows or
denies, over real HTTP, without a browser:

    with ServerThread(create_sandbox()) as vcita, SandboxPerson(vcita.url) as person:
        callback_url = person.approve(authorize_url, staff="Dana Levi")

`scripts/load.py` uses both as well. `as_a_shell_starts` runs a server's command with
SIGINT as a shell would leave it, to test that Ctrl+C stops it however it was started.
For the tests that every text of a page is translated: `page_texts` reads a page's texts,
`demo_names` what vcita's demo answers hold, and `texts_to_translate` keeps the texts
that say more than names.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from waitress import wasyncore
from waitress.server import create_server

from .directory import load_directory
from .settings import DEFAULT_BUSINESSES_FILE

# Enough worker threads for a browser's parallel requests plus a client app's own calls.
THREADS = 16

# Sets SIGINT's disposition (argv[1]), then becomes the Python command that follows.
_WITH_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, getattr(signal, sys.argv[1])); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
)


def as_a_shell_starts(python_args: list[str], *, in_the_background: bool) -> list[str]:
    """Return a command running `python *python_args` with SIGINT as a shell leaves it.

    A terminal's foreground command gets SIGINT at its default; a command that a
    non-interactive shell starts in the background (`cmd &` in a script, a CI step) gets
    it ignored, and Python keeps it ignored: Ctrl+C then raises no KeyboardInterrupt.
    Given either way, so that a test does not depend on how its own runner was started.
    """
    sigint = "SIG_IGN" if in_the_background else "SIG_DFL"
    return [sys.executable, "-c", _WITH_SIGINT, sigint, *python_args]


class ServerThread:
    """Serve a WSGI app on 127.0.0.1 (a free port by default) until stopped."""

    def __init__(
        self,
        wsgi_app: Callable[..., Iterable[bytes]],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        threads: int = THREADS,
    ) -> None:
        self.wsgi_app = wsgi_app
        self.host = host
        self.requested_port = port
        self.threads = threads
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # Held while stop() wakes the loop, so the loop cannot close the trigger under it.
        self._waking = threading.Lock()

    @property
    def port(self) -> int:
        """Return the port the server listens on (picked by the OS when 0 was asked)."""
        return int(self._running_server().effective_port)

    @property
    def url(self) -> str:
        """Return the base URL, e.g. http://127.0.0.1:51234."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        """Bind the socket and start serving on a daemon thread."""
        if self._server is not None:
            raise RuntimeError("this ServerThread is already started")
        self._server = create_server(
            self.wsgi_app,
            host=self.host,
            port=self.requested_port,
            threads=self.threads,
            ident="vcita-sandbox",
        )
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, name=f"ServerThread:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def _serve(self) -> None:
        """Run waitress's loop until asked to stop, then close everything on this thread."""
        server = self._server
        while not self._stopping.is_set():
            wasyncore.loop(timeout=1.0, map=server._map, count=1)
        # The loop's sockets belong to this thread: closing them from another one races
        # with its select(). The loop may also see the stop on its own timeout while stop()
        # is still pulling the trigger: close it only once stop() is done with it.
        with self._waking:
            wasyncore.close_all(server._map)
        server.task_dispatcher.shutdown()

    def stop(self) -> None:
        """Close the listening socket and every open connection, then the worker threads."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        with self._waking:
            self._stopping.set()
            server.pull_trigger()  # wakes the loop at once, rather than at its next timeout
        thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _running_server(self) -> Any:
        if self._server is None:
            raise RuntimeError("the ServerThread is not running: call start() first")
        return self._server


MAX_PAGES = 6


class SandboxPerson:
    """One browser's worth of sandbox cookies, answering the sandbox's pages."""

    def __init__(self, sandbox_url: str, timeout: float = 10):
        self.sandbox_url = sandbox_url.rstrip("/")
        self.timeout = timeout
        self.browser = requests.Session()
        # time.perf_counter() when the person last acted: after approve(), when Allow (or
        # Deny) was pressed, or the last form sent when vcita asked no consent (or the
        # authorize URL opened, when it asked nothing). `scripts/load.py` times the rest
        # of the flow from it.
        self.answered_at: float | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self) -> None:
        self.browser.close()

    def sign_out(self) -> None:
        """Forget the sandbox's session: the next approve() signs in afresh."""
        self.browser.cookies.clear()

    def approve(self, authorize_url: str, staff: str | None = None, allow: bool = True) -> str:
        """Open `authorize_url`, sign in as `staff` (or the first one), allow or deny.

        Return the URL the sandbox sends the browser back to. A staff member who holds a
        live token for the app is sent back without a consent page, as vcita does: that
        is a code to allow, and SandboxPageError to deny, since there was nothing to deny.
        """
        self.answered_at = time.perf_counter()
        response = self.browser.get(authorize_url, allow_redirects=False, timeout=self.timeout)
        denied = False
        for _ in range(MAX_PAGES):
            if response.is_redirect:
                location = urljoin(response.url, response.headers["Location"])
                if not self._is_sandbox(location):
                    if not (allow or denied) and "code" in parse_qs(urlsplit(location).query):
                        raise SandboxPageError(
                            200, "the sandbox asked no consent, so there was nothing to deny"
                        )
                    return location
                response = self.browser.get(location, allow_redirects=False, timeout=self.timeout)
                continue
            if response.status_code != 200:
                raise SandboxPageError(response.status_code, _text_of(response.text))
            form = _form_to_answer(response.text, allow)
            fields = form.filled(staff=staff, allow=allow)
            denied = denied or (not allow and form.offers("deny"))
            self.answered_at = time.perf_counter()
            response = self.browser.post(
                urljoin(response.url, form.action or response.url),
                data=fields,
                allow_redirects=False,
                timeout=self.timeout,
            )
        raise SandboxPageError(0, "the sandbox never sent the browser back")

    def _is_sandbox(self, url: str) -> bool:
        sandbox = urlsplit(self.sandbox_url)
        target = urlsplit(url)
        return (target.scheme, target.netloc) == (sandbox.scheme, sandbox.netloc)


class SandboxPageError(Exception):
    """The sandbox showed an error page instead of a form."""

    def __init__(self, status: int, text: str):
        super().__init__(f"sandbox page {status}: {text[:300]}")
        self.status = status
        self.text = text


class _Form:
    def __init__(self, action: str | None):
        self.action = action
        self.hidden: list[tuple[str, str]] = []
        self.choices: dict[str, list[tuple[str, str]]] = {}  # name -> [(value, label)]
        self.buttons: list[tuple[str | None, str | None, str]] = []  # (name, value, text)

    def offers(self, choice: str) -> bool:
        """Say whether one of the form's buttons is `choice` ("allow", "deny")."""
        return any(choice in f"{value} {text}".lower() for _, value, text in self.buttons)

    def filled(self, staff: str | None, allow: bool) -> list[tuple[str, str]]:
        """Return the fields a person would send: their staff member, then Allow or Deny."""
        fields = list(self.hidden)
        for name, options in self.choices.items():
            chosen = options[0][0]
            if staff is not None:
                matches = [
                    value
                    for value, label in options
                    if staff == value or staff.lower() in label.lower()
                ]
                if not matches:
                    raise SandboxPageError(200, f"no staff member {staff!r} to choose")
                chosen = matches[0]
            fields.append((name, chosen))
        wanted = "allow" if allow else "deny"
        button = next(
            (b for b in self.buttons if wanted in f"{b[1]} {b[2]}".lower()),
            self.buttons[0] if self.buttons else None,
        )
        if button and button[0]:
            fields.append((button[0], button[1] or ""))
        return fields


class _FormParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms: list[_Form] = []
        self._option: tuple[str, str] | None = None
        self._select: str | None = None
        self._button: list | None = None
        self._label_for: str | None = None
        self._labels: dict[str, str] = {}
        self._radio_ids: list[tuple[str, str, str]] = []  # (name, value, id)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append(_Form(attrs.get("action")))
        if not self.forms:
            return
        form = self.forms[-1]
        if tag == "input":
            kind = (attrs.get("type") or "text").lower()
            name, value = attrs.get("name"), attrs.get("value", "")
            if name and kind == "hidden":
                form.hidden.append((name, value))
            elif name and kind == "radio":
                form.choices.setdefault(name, []).append((value, ""))
                self._radio_ids.append((name, value, attrs.get("id", "")))
            elif kind == "submit":
                form.buttons.append((name, value, value))
        elif tag == "select":
            self._select = attrs.get("name")
        elif tag == "option" and self._select:
            self._option = (attrs.get("value", ""), "")
        elif tag == "button":
            self._button = [attrs.get("name"), attrs.get("value"), ""]
        elif tag == "label":
            self._label_for = attrs.get("for")

    def handle_data(self, data):
        if self._option is not None:
            self._option = (self._option[0], self._option[1] + data)
        if self._button is not None:
            self._button[2] += data
        if self._label_for:
            self._labels[self._label_for] = self._labels.get(self._label_for, "") + data

    def handle_endtag(self, tag):
        if not self.forms:
            return
        form = self.forms[-1]
        if tag == "option" and self._option is not None and self._select:
            value, label = self._option
            form.choices.setdefault(self._select, []).append((value or label.strip(), label))
            self._option = None
        elif tag == "select":
            self._select = None
        elif tag == "button" and self._button is not None:
            form.buttons.append(tuple(self._button))
            self._button = None
        elif tag == "label":
            self._label_for = None

    def close(self):
        super().close()
        # Give radio buttons the text of their <label for=…>, so staff can be chosen by name.
        for form in self.forms:
            for name, options in form.choices.items():
                form.choices[name] = [
                    (
                        value,
                        label
                        or next(
                            (
                                self._labels.get(i, "")
                                for n, v, i in self._radio_ids
                                if n == name and v == value
                            ),
                            "",
                        ),
                    )
                    for value, label in options
                ]


def _form_to_answer(page: str, allow: bool) -> _Form:
    """Return the page's form with an Allow (or Deny) button, else its only form."""
    parser = _FormParser()
    parser.feed(page)
    parser.close()
    forms = [form for form in parser.forms if form.buttons]
    if not forms:
        raise SandboxPageError(200, "the page has no form to answer: " + _text_of(page))
    wanted = "allow" if allow else "deny"
    for form in forms:
        if any(wanted in f"{value} {text}".lower() for _, value, text in form.buttons):
            return form
    return forms[-1]


def _text_of(page: str) -> str:
    class Text(HTMLParser):
        def __init__(self):
            super().__init__()
            self.parts = []

        def handle_data(self, data):
            self.parts.append(data.strip())

    text = Text()
    text.feed(page)
    return " ".join(part for part in text.parts if part)


# --- Is every text of a page translated? --------------------------------------------------


def _has_letters(text: str, in_a_row: int) -> bool:
    """Whether `text` holds `in_a_row` letters, in any script, one after another.

    Plain string methods, not a pattern: the sandbox's patterns are all measured for linear
    time (tests/test_linear_time.py), and these helpers need none.
    """
    run = 0
    for character in text:
        run = run + 1 if character.isalpha() else 0
        if run >= in_a_row:
            return True
    return False


def _without(text: str, name: str) -> str:
    """Return `text` with every whole-word `name` in it blanked out."""
    kept, start = [], 0
    while (found := text.find(name, start)) >= 0:
        end = found + len(name)
        before, after = text[found - 1 : found], text[end : end + 1]
        if not (before.isalnum() or before == "_" or after.isalnum() or after == "_"):
            kept.append(text[start:found] + " ")
            start = end
        else:
            kept.append(text[start : found + 1])
            start = found + 1
    return "".join(kept) + text[start:]


class _PageTexts(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: set[str] = set()
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hidden += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self.hidden -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if _has_letters(text, 1) and not self.hidden:  # words, not "." or "(2046)"
            self.texts.add(text)


def page_texts(html: str) -> set[str]:
    """Return the texts a person reads on a page, whitespace folded; scripts and styles aside."""
    parser = _PageTexts()
    parser.feed(html)
    return parser.texts


def demo_names(businesses_file: Path = DEFAULT_BUSINESSES_FILE) -> set[str]:
    """Return every key and text of the demo businesses and of the userinfo vcita answers for
    them: names, IDs, e-mails, hosts, roles, statuses and tags, the same in every language."""
    directory = load_directory(businesses_file)
    userinfo = [directory.userinfo(member) for b in directory.businesses for member in b.staff]
    return _keys_and_texts([json.loads(businesses_file.read_text(encoding="utf-8")), userinfo])


def _keys_and_texts(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set(value) | _keys_and_texts(list(value.values()))
    if isinstance(value, list):
        return set().union(*map(_keys_and_texts, value))
    return set()  # a number, true or null


def texts_to_translate(texts: Iterable[str], names: Iterable[str]) -> set[str]:
    """Return the texts that hold a word once every name is taken out of them.

    A text made only of names ("Harbor Light Yoga · vcita Connect") or one that is JSON (the
    userinfo vcita returned) is data; any other must read differently in another language.
    """
    longest_first = sorted(names, key=len, reverse=True)
    return {text for text in texts if _has_words(text, longest_first) and not _is_json(text)}


def _has_words(text: str, names: list[str]) -> bool:
    """Whether a word is left in `text` once every name is taken out ("H" is no word)."""
    for name in names:
        text = _without(text, name)
    return _has_letters(text, 2)


def _is_json(text: str) -> bool:
    try:
        return isinstance(json.loads(text), (dict, list))
    except ValueError:
        return False
