"""What the security tests share: a flow's values, a session cookie, links, a secret's runs."""

from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from itsdangerous import BadSignature

EVIL = "evil.example"
RUN = 6  # the length of a run of a secret that must appear nowhere


def query_of(url: str) -> dict[str, list[str]]:
    """Return a URL's query parameters, each with every value it carries."""
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def state_of(url: str) -> str:
    return query_of(url)["state"][0]


def code_of(url: str) -> str:
    return query_of(url)["code"][0]


def path_and_query(url: str) -> str:
    """Return `/callback?code=…` from a full callback URL, to send to another host."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def runs_of(secret: str) -> set[str]:
    """Every run of RUN characters of `secret`: none of them may be shown anywhere."""
    return {secret[start : start + RUN] for start in range(len(secret) - RUN + 1)}


def decode_session(app: Flask, cookie_value: str) -> dict:
    """Read a session cookie the way the app does, with its secret key."""
    serializer = app.session_interface.get_signing_serializer(app)
    try:
        return serializer.loads(cookie_value)
    except BadSignature:
        return {}


class Links(HTMLParser):
    """Every URL a page loads or links to, and every inline script or handler it carries."""

    URL_ATTRIBUTES = ("src", "href", "action", "srcset", "poster", "data", "formaction")
    LOADING_TAGS = (
        "link",
        "img",
        "script",
        "iframe",
        "source",
        "video",
        "audio",
        "embed",
        "object",
    )

    def __init__(self, page: str):
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []  # (tag, attribute, url)
        self.inline_scripts = 0
        self.event_handlers: list[str] = []
        self.inline_styles: list[str] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in self.URL_ATTRIBUTES:
            if attrs.get(name) is not None:
                self.urls.append((tag, name, attrs[name]))
        if tag == "script" and not attrs.get("src"):
            self.inline_scripts += 1
        self.event_handlers += [name for name in attrs if name.startswith("on")]
        if "style" in attrs:
            self.inline_styles.append(attrs["style"])

    def loaded_urls(self) -> list[str]:
        """Return the URLs the browser fetches by itself: stylesheets, icons, images, scripts."""
        return [url for tag, _, url in self.urls if tag in self.LOADING_TAGS]

    def foreign_urls(self) -> list[str]:
        """Return the URLs that point anywhere but this site's own paths."""
        return [url for _, _, url in self.urls if not is_same_origin_path(url)]


def is_same_origin_path(url: str) -> bool:
    """Say whether a URL is a path on this site (or a fragment), never another origin."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return False
    return url.startswith(("/", "#")) and not url.startswith(("//", "/\\"))


# Open-redirect payloads, by name: each must fall back to a target of the app's own.
OPEN_REDIRECT_TARGETS = {
    "//evil": "//evil",
    "/\\evil": "/\\evil",
    "/%09/evil": "/\t/evil",  # what `?next=/%09/evil` decodes to; browsers drop the tab
    "https:evil": "https:evil",
    "///evil": "///evil",
    "http://trusted@evil": "http://trusted@evil",
    "javascript:": "javascript:alert(1)",
    "absolute-url": "https://evil.example/dashboard",
    "relative-path": "dashboard",
    "crlf": "/dash\r\nSet-Cookie: x=1",
}
