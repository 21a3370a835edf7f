"""The app inside vcita's frame: who may frame which pages, and the frame's own cookie.

vcita shows installed apps in an iframe in its own UI. There the app is a third party:
browsers send it no `SameSite=Lax` cookie, and more and more send it no ordinary
third-party cookie at all. What a frame can still keep is a *partitioned* cookie
(CHIPS: `SameSite=None; Secure; Partitioned`), which the browser keeps apart for each
top-level site and never sends when the app is opened anywhere else. So the session
lives in one of two cookies:

- opened as a page of its own (a tab, the popup, vcita's redirect back): the usual
  `SameSite=Lax` cookie, as before;
- inside a frame: a partitioned cookie of the same name plus `_framed`.

Which one a request uses follows from what the browser says it is loading
(`Sec-Fetch-Dest`), or, for a script's request from the frame, from the one cookie
it carries. CSRF stays closed in the frame: every POST carries the session's CSRF
token, the callback its state, and no page changes anything on a GET.

Only the pages a person sees inside vcita may be framed, and only by the origins in
VCITA_FRAME_ANCESTORS; the connect flow's own pages keep `frame-ancestors 'none'`.
"""

from flask import Flask, current_app, g, request
from flask.sessions import SecureCookieSessionInterface

# The pages vcita's frame shows: the landing page, the dashboard, and what their forms,
# links and scripts call (the language menu too). /connect, /callback and /connected run
# in a popup or tab, never framed.
FRAMED_ENDPOINTS = frozenset(
    {
        "connect.index",
        "connect.dashboard",
        "connect.recent_clients",
        "connect.disconnect",
        "connect.handoff",
        "connect.choose_language",
    }
)
FRAME_DESTINATIONS = ("iframe", "frame")


def init_app(app: Flask) -> None:
    """Keep the session in the cookie that fits where the page is shown; let vcita frame it."""
    app.session_interface = FrameAwareSessionInterface()
    app.before_request(let_vcita_frame_its_pages)


def framed_cookie_name(app: Flask) -> str:
    return f"{app.config['SESSION_COOKIE_NAME']}_framed"


def in_frame() -> bool:
    """Say whether this request comes from inside a frame on another site."""
    destination = request.headers.get("Sec-Fetch-Dest", "")
    if destination in FRAME_DESTINATIONS:
        return True
    if destination == "document":
        return False
    # A script's request (fetch) is "empty": it belongs where its one cookie belongs.
    cookies = request.cookies
    app = current_app
    return framed_cookie_name(app) in cookies and app.config["SESSION_COOKIE_NAME"] not in cookies


class FrameAwareSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, in a partitioned cookie when inside a frame."""

    def get_cookie_name(self, app: Flask) -> str:
        return framed_cookie_name(app) if in_frame() else super().get_cookie_name(app)

    def get_cookie_samesite(self, app: Flask) -> str | None:
        return "None" if in_frame() else super().get_cookie_samesite(app)

    def get_cookie_secure(self, app: Flask) -> bool:
        # SameSite=None and Partitioned both require Secure; browsers allow it on
        # http://localhost, and vcita itself is served over https only.
        return True if in_frame() else super().get_cookie_secure(app)

    def get_cookie_partitioned(self, app: Flask) -> bool:
        return True if in_frame() else super().get_cookie_partitioned(app)


def let_vcita_frame_its_pages() -> None:
    """Let VCITA_FRAME_ANCESTORS frame the pages vcita shows; every other stays unframed."""
    if request.endpoint in FRAMED_ENDPOINTS:
        # The CSP frame-ancestors source list `security` sends ('none' by default).
        g.frame_ancestors = " ".join(current_app.config["VCITA_FRAME_ANCESTORS"]) or "'none'"


def keep_opener() -> None:
    """Let this page reach the window that opened it (the popup's last page).

    `Cross-Origin-Opener-Policy: same-origin` would cut the popup off from vcita's
    frame, which sits in a page of another origin: only these pages relax it.
    """
    g.opener_policy = "unsafe-none"  # `security` sends same-origin otherwise
