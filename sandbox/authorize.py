"""GET /app/oauth/authorize and its pages: log in, allow or deny (guide step 2).

Like vcita: an authorize request with an unknown client or an unregistered redirect URI
gets an error page, never a redirect (RFC 6749 §4.1.2.1). Any other problem is sent back to
the app's redirect URI as `error=...`. A valid request waits server-side, under a random id
the pages carry, while the person logs in (picks a demo staff member) and, unless the app
is Trusted or they hold a live token for it already, allows or denies access. Allow
redirects with a code and the app's `state`.
"""

from __future__ import annotations

import hmac
import re
from urllib.parse import quote, quote_from_bytes, unquote_to_bytes, urlsplit

from flask import (
    Blueprint,
    current_app,
    redirect,
    render_template,
    request,
    session,
)
from flask_babel import force_locale
from werkzeug.wrappers import Response

from .csrf import csrf_token, posted_csrf_token_is_valid
from .directory import StaffMember
from .recording import sandbox_state
from .state import PendingAuthorization

bp = Blueprint("authorize", __name__)

AUTHORIZE_PARAMETERS = (
    "client_id",
    "redirect_uri",
    "response_type",
    "state",
    "scope",
    "code_challenge",
    "code_challenge_method",
)
# RFC 7636 §4.2: BASE64URL(SHA256(code_verifier)) is always 43 characters.
S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


class AuthorizeRefusal(Exception):
    """An authorize request answered with an error page (400), not a redirect."""


@bp.get("/app/oauth/authorize")
def authorize() -> Response | str:
    """Check the request, then show the login or consent page, or approve at once."""
    check_client_and_redirect_uri()
    redirect_uri = request.args["redirect_uri"]
    state = raw_query_value("state")
    problem = request_problem()
    if problem is not None:
        error, description = problem
        return redirect_back(redirect_uri, state, error=error, error_description=description)
    pending = sandbox_state().start_authorization(
        client_id=request.args["client_id"],
        redirect_uri=redirect_uri,
        state=state,
        code_challenge=request.args.get("code_challenge"),
        scope=request.args.get("scope"),
    )
    return next_step(pending)


@bp.post("/app/oauth/authorize/login")
def log_in() -> Response | str:
    """Log the chosen demo staff member in, then go on to consent."""
    pending = posted_pending_authorization()
    member = current_app.config["SANDBOX_DIRECTORY"].staff_member(request.form.get("staff_uid"))
    if member is None:
        raise AuthorizeRefusal("Choose one of the staff members listed on the login page.")
    # A new identity gets a new session (and CSRF token), as after any login.
    session.clear()
    session["staff_uid"] = member.uid
    return next_step(pending)


@bp.post("/app/oauth/authorize/switch-account")
def switch_account() -> str:
    """Log out and show the login page again for the same request."""
    pending = posted_pending_authorization()
    session.clear()
    return render_login(pending)


@bp.post("/app/oauth/authorize/decision")
def decide() -> Response:
    """Redirect back with a code on Allow, or with access_denied on Deny."""
    posted_pending_authorization()
    member = logged_in_staff_member()
    decision = request.form.get("decision")
    if member is None or decision not in ("allow", "deny"):
        raise AuthorizeRefusal("Log in, then press Allow or Deny.")
    pending = sandbox_state().finish_authorization(request.form["request_id"])
    if pending is None:
        raise AuthorizeRefusal("This request was already answered. Start again from the app.")
    if decision == "deny":
        return redirect_back(
            pending.redirect_uri,
            pending.state,
            error="access_denied",
            error_description="The user denied access to the app.",
        )
    return approve(pending, member)


def next_step(pending: PendingAuthorization) -> Response | str:
    """Show the login page, the consent page, or approve at once when vcita asks nothing."""
    member = logged_in_staff_member()
    if member is None:
        return render_login(pending)
    if consent_is_skipped(pending, member):
        if sandbox_state().finish_authorization(pending.id) is None:
            raise AuthorizeRefusal("This request was already answered. Start again from the app.")
        return approve(pending, member)
    return render_consent(pending, member)


def consent_is_skipped(pending: PendingAuthorization, member: StaffMember) -> bool:
    """Say whether vcita approves without its permission dialog.

    It skips the dialog for an app configured as Trusted, and, as Doorkeeper does for a
    confidential client (`matching_token?`), for a staff member who holds a live token
    for this client and scope: they allowed it before. Revoking that token (uninstall)
    brings the dialog back.
    """
    if current_app.config["SANDBOX_TRUSTED"]:
        return True
    return sandbox_state().holds_live_token(member.uid, pending.client_id, pending.scope)


def approve(pending: PendingAuthorization, member: StaffMember) -> Response:
    """Issue a code for the staff member and send the browser back with it."""
    code = sandbox_state().issue_code(pending, member.uid)
    return redirect_back(pending.redirect_uri, pending.state, code=code)


def redirect_back(redirect_uri: str, state: bytes | None, **params: str) -> Response:
    """Redirect to the app with params, the state echoed exactly, and `iss` if configured."""
    pairs = [f"{name}={quote(value, safe='')}" for name, value in params.items()]
    if state is not None:
        pairs.append(f"state={quote_from_bytes(state, safe='')}")
    issuer = current_app.config["SANDBOX_ISSUER"]
    if issuer:
        # RFC 9207 §2: identify the issuer in every authorization response.
        pairs.append(f"iss={quote(issuer, safe='')}")
    query = "&".join(pairs)
    # Keep the registered URI's own query string: append to it (RFC 6749 §3.1.2).
    if "?" not in redirect_uri:
        location = f"{redirect_uri}?{query}"
    elif redirect_uri.endswith(("?", "&")):
        location = f"{redirect_uri}{query}"
    else:
        location = f"{redirect_uri}&{query}"
    return redirect(location, 302)


def check_client_and_redirect_uri() -> None:
    """Refuse with an error page unless client_id and redirect_uri are the registered ones."""
    config = current_app.config
    client_ids = request.args.getlist("client_id")
    redirect_uris = request.args.getlist("redirect_uri")
    if len(client_ids) != 1 or not client_ids[0]:
        raise AuthorizeRefusal("The request needs exactly one client_id.")
    if not hmac.compare_digest(client_ids[0].encode(), config["SANDBOX_CLIENT_ID"].encode()):
        raise AuthorizeRefusal(f"No app is registered with client_id {client_ids[0]!r}.")
    if len(redirect_uris) != 1 or not redirect_uris[0]:
        raise AuthorizeRefusal("The request needs exactly one redirect_uri.")
    # Exact string comparison (RFC 9700 §4.1.3): no prefix, no normalisation.
    if redirect_uris[0] not in config["SANDBOX_REDIRECT_URIS"]:
        raise AuthorizeRefusal(
            f"The redirect_uri {redirect_uris[0]!r} is not registered for this app."
            f" Registered: {', '.join(config['SANDBOX_REDIRECT_URIS'])}."
        )


def request_problem() -> tuple[str, str] | None:
    """Return (error, description) for a problem the app should hear about, else None."""
    args = request.args
    repeated = [name for name in AUTHORIZE_PARAMETERS if len(args.getlist(name)) > 1]
    if repeated:
        # RFC 6749 §3.1: parameters must not be included more than once.
        return "invalid_request", f"Repeated parameter: {repeated[0]}."
    if "response_type" in args and args["response_type"] != "code":
        return "unsupported_response_type", "Only response_type=code is supported."
    challenge, method = args.get("code_challenge"), args.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            return "invalid_request", "code_challenge_method was sent without code_challenge."
        return None
    if method != "S256":
        # RFC 9700 §2.1.1: S256; "plain" (the default when no method is sent) is refused.
        return "invalid_request", "Only code_challenge_method=S256 is supported."
    if not S256_CHALLENGE.fullmatch(challenge):
        return "invalid_request", "code_challenge must be 43 base64url characters (S256)."
    return None


def raw_query_value(name: str) -> bytes | None:
    """Return a query parameter's bytes exactly as sent, undecoded, or None if absent."""
    for pair in request.query_string.split(b"&"):
        key, _, value = pair.partition(b"=")
        if unquote_to_bytes(key.replace(b"+", b" ")) == name.encode():
            return unquote_to_bytes(value.replace(b"+", b" "))
    return None


def posted_pending_authorization() -> PendingAuthorization:
    """Check the form's CSRF token and return the pending request it names."""
    if not posted_csrf_token_is_valid():
        raise AuthorizeRefusal(
            "This form was not sent from this sandbox page, or the session ended."
            " Start again from the app."
        )
    pending = sandbox_state().pending_authorization(request.form.get("request_id"))
    if pending is None:
        raise AuthorizeRefusal("This request expired or was already answered. Start again.")
    return pending


def logged_in_staff_member() -> StaffMember | None:
    """Return the staff member logged in to the sandbox, if any."""
    return current_app.config["SANDBOX_DIRECTORY"].staff_member(session.get("staff_uid"))


def render_login(pending: PendingAuthorization) -> str:
    """Render the login page: pick a demo staff member."""
    return render_template(
        "sandbox/login.html",
        pending=pending,
        businesses=current_app.config["SANDBOX_DIRECTORY"].businesses,
    )


def render_consent(pending: PendingAuthorization, member: StaffMember) -> str:
    """Render the consent page: '<App> wants to access your vcita account'."""
    directory = current_app.config["SANDBOX_DIRECTORY"]
    return render_template(
        "sandbox/consent.html",
        pending=pending,
        member=member,
        business=directory.business_of(member),
        return_host=urlsplit(pending.redirect_uri).netloc or pending.redirect_uri,
    )


@bp.app_errorhandler(AuthorizeRefusal)
def refusal_page(refusal: AuthorizeRefusal) -> tuple[str, int]:
    """Show why the request was refused, on a page: nothing is sent to the app.

    In English, whatever the browser's language: the page speaks to the app's developer.
    """
    with force_locale("en"):
        page = render_template(
            "sandbox/error.html",
            title="This app can't connect to vcita",
            message=str(refusal),
            hint="Nothing was sent back to the app. Its developer can compare the client_id and"
            " redirect_uri it sends with the ones the sandbox was started with.",
        )
    return page, 400


@bp.app_context_processor
def form_helpers() -> dict[str, object]:
    """Give templates the CSRF token and the app's name."""
    return {"csrf_token": csrf_token, "app_name": current_app.config["SANDBOX_APP_NAME"]}
