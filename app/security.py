"""What every response carries, and the CSRF token for the app's one form.

Headers follow OWASP ASVS V3/V14 and RFC 9700 §4.2.4: no inline script, no framing, no
sniffing, no opener across origins, and no Referer that could carry a code or state to
another site. A page may relax framing or the opener policy for itself through `g`
(`frame_ancestors`, `opener_policy`): vcita's frame does (`app_market/framing.py`).
"""

import hmac
import secrets

from flask import Flask, Response, abort, g, request, session
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.urls import iri_to_uri

from .session_keys import CSRF_TOKEN

CSRF_FORM_FIELD = "csrf_token"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def init_app(app: Flask) -> None:
    """Trust exactly the configured proxies, and add security headers to every response."""
    hops = app.config["TRUSTED_PROXY_COUNT"]
    if hops:
        # Only when the operator says how many proxies stand in front: otherwise a
        # client could claim any host or scheme with X-Forwarded-* headers. And only
        # the headers a deployment needs: a client-sent X-Forwarded-Prefix that a proxy
        # passes on unchanged ("/evil.example") would turn every redirect into
        # //evil.example/…, and the port belongs in X-Forwarded-Host.
        # Flask's documented way to wrap its WSGI app, which mypy reads as replacing a method.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops
        )
    app.before_request(refuse_undecodable_query)
    app.after_request(keep_redirects_on_this_site)
    app.after_request(add_security_headers)
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.jinja_env.globals["csp_nonce"] = csp_nonce


def refuse_undecodable_query() -> None:
    """Answer 400 to a query string of raw bytes that are not UTF-8.

    Browsers percent-encode, but any client can send raw bytes, which gunicorn passes
    on; Werkzeug decodes `request.args` strictly, so they would otherwise be a 500.
    """
    try:
        request.query_string.decode()
    except UnicodeDecodeError:
        abort(400)


def keep_redirects_on_this_site(response: Response) -> Response:
    """Never send a scheme-relative Location (`//host/…`): browsers read it as another host.

    Every redirect the app makes is to one of its own paths or to vcita; a path that
    starts with two slashes can only come from a forwarded prefix or a mangled path.
    """
    if "Location" not in response.headers:
        return response
    # Check the value Werkzeug will send, not the one set. Like browsers, it drops tabs,
    # newlines and leading spaces or control characters: "/\t/evil.example" would go
    # out as //evil.example. It quotes backslashes, so "/\\evil.example" goes out as a path.
    location = iri_to_uri(response.headers["Location"])
    if location.startswith("//"):
        location = "/" + location.lstrip("/")
    response.headers["Location"] = location
    return response


def add_security_headers(response: Response) -> Response:
    """Set the headers that keep pages, codes and tokens where they belong."""
    policy = CONTENT_SECURITY_POLICY
    if "csp_nonce" in g:
        # A page that styles itself with vcita's brand colours allows its one <style>.
        policy = policy.replace("style-src 'self'", f"style-src 'self' 'nonce-{g.csp_nonce}'")
    ancestors = g.get("frame_ancestors", "'none'")
    policy = policy.replace("frame-ancestors 'none'", f"frame-ancestors {ancestors}")
    response.headers.setdefault("Content-Security-Policy", policy)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if ancestors == "'none'":
        # Browsers that predate frame-ancestors; it cannot name the origins allowed.
        response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault(
        "Cross-Origin-Opener-Policy", g.get("opener_policy", "same-origin")
    )
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.endpoint != "static":
        # Pages show a business's data and carry one-time values: never cache them.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def csp_nonce() -> str:
    """Return this response's CSP nonce, for the one <style> element a page may carry."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def csrf_token() -> str:
    """Return this session's CSRF token, creating it on first use."""
    if CSRF_TOKEN not in session:
        session[CSRF_TOKEN] = secrets.token_urlsafe(32)
    return session[CSRF_TOKEN]


def require_csrf_token() -> None:
    """Abort with 403 unless the posted form carries this session's CSRF token."""
    expected = session.get(CSRF_TOKEN)
    sent = request.form.get(CSRF_FORM_FIELD, "")
    if not isinstance(expected, str) or not expected:
        abort(403)  # no token, or one another version of the app stored differently
    if not hmac.compare_digest(expected.encode(), sent.encode()):
        abort(403)
