"""The sandbox's own pages: the front page, error answers and the security headers.

Errors under the API paths are small JSON bodies, like vcita's: OAuth's shape under
/oauth/* and /_sandbox/*, the legacy platform API's under /platform/*; errors elsewhere
are small pages. None ever shows a stack trace.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    render_template,
    request,
)
from flask_babel import force_locale
from werkzeug.exceptions import HTTPException

from .settings import client_auth_for_display, secret_for_display

bp = Blueprint("pages", __name__)

API_PATHS = ("/oauth/", "/_sandbox/")
PLATFORM_PATHS = ("/platform/",)


@bp.get("/")
def front_page() -> str:
    """Say what this server is and where its endpoints are."""
    config = current_app.config
    return render_template(
        "sandbox/index.html",
        secret_note=secret_for_display(config["SANDBOX_CLIENT_SECRET"]),
        client_auth_note=client_auth_for_display(config),
    )


def init_app(app: Flask) -> None:
    """Register the front page, the error answers and the security headers."""
    app.register_blueprint(bp)
    # Unhandled exceptions reach this handler too, as InternalServerError.
    app.register_error_handler(HTTPException, http_error)
    form_targets = " ".join(sorted({origin(uri) for uri in app.config["SANDBOX_REDIRECT_URIS"]}))
    app.config["SANDBOX_CSP"] = (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none';"
        # Chrome applies form-action to the redirect after Allow/Deny, so the app's
        # redirect URIs must be allowed as well as this origin.
        f" form-action 'self' {form_targets}; frame-ancestors 'none'"
    )
    app.after_request(add_security_headers)


def http_error(error: HTTPException) -> tuple[Response, int]:
    """Answer an HTTP error as JSON on API paths and as a page elsewhere."""
    code = error.code or 500
    if request.path.startswith(PLATFORM_PATHS):
        response = jsonify(status="Error", error=error.description)
    elif request.path.startswith(API_PATHS):
        response = jsonify(
            error=(error.name or "error").lower().replace(" ", "_"),
            error_description=error.description,
        )
    else:
        with force_locale("en"):  # a developer's page: its words are English
            page = render_template(
                "sandbox/error.html", message=error.description, title=error.name
            )
        response = current_app.make_response(page)
    # Keep headers the error carries, such as Allow on a 405.
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response, code


def add_security_headers(response: Response) -> Response:
    """Add the CSP and friends to every answer; keep pages with CSRF tokens out of caches."""
    headers = response.headers
    policy = current_app.config["SANDBOX_CSP"]
    if "sandbox_frame_src" in g:
        policy += f"; frame-src {g.sandbox_frame_src}"
    headers["Content-Security-Policy"] = policy
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "no-referrer"
    if response.mimetype == "text/html":
        headers.setdefault("Cache-Control", "no-store")
    return response


def allow_framing(uri: str) -> None:
    """Let this response's page frame the origin of `uri`, and no other page any origin.

    default-src 'none' refuses every frame; the App Market's shell must show the app in one.
    """
    g.sandbox_frame_src = origin(uri)


def origin(uri: str) -> str:
    """Return a CSP source for a redirect URI: scheme://host[:port], or scheme: if custom."""
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"
