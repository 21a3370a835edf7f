"""The pages of the connect flow: /, /connect, /callback, /dashboard, /disconnect.

Views stay thin: each step of vcita's guide is one call into `vcita`, `flows` or
`store`, and every failure is raised to `errors`, which renders its page.
"""

import json
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from . import flows, trace, vcita
from .errors import AccessDenied, InvalidCallback, ProviderError
from .security import require_csrf_token
from .store import Connection, token_store

bp = Blueprint("connect", __name__)

CONNECTION_KEY = "connection_id"  # the connection the dashboard shows: the newest
# Every connection this browser made since it last disconnected (two staff members of
# one business, say), so that Disconnect removes all of them and orphans no token.
CONNECTIONS_KEY = "connection_ids"
MAX_CONNECTIONS_PER_BROWSER = 10  # bounded, like everything in the session cookie
# Callback parameters that must appear at most once (RFC 9700 §4.4: a duplicated
# state or code is a sign of parameter pollution, never of a real answer).
SINGLE_VALUED = ("state", "code", "error", "iss")
# A return path rides in the session cookie with up to five pending flows, and browsers
# drop a cookie over 4096 bytes (RFC 6265 §6.1), losing every flow with it. Counted in
# bytes as the cookie carries it: a non-ASCII character is escaped into 6 or 12.
MAX_NEXT_URL_BYTES = 256


@bp.get("/")
def index():
    """Show the landing page, or a way to the dashboard for a connected browser."""
    return render_template("connect/index.html", connection=current_connection())


@bp.get("/connect")
def start():
    """Step 2: start a flow and send the browser to vcita's consent page."""
    flow = flows.start_flow(next_url=safe_next_url(request.args.get("next")))
    current_app.logger.info("Connect flow started; redirecting to vcita")
    return redirect(vcita.authorization_url(flow.state, flow.code_verifier), 302)


@bp.get("/callback")
def callback():
    """Step 3: check vcita's answer, exchange the code, and remember the connection."""
    args = request.args
    if any(len(args.getlist(name)) > 1 for name in SINGLE_VALUED):
        raise InvalidCallback("a callback parameter was repeated")
    if "error" in args and "code" in args:
        raise InvalidCallback("the callback carries both an error and a code")

    # Consume the state before anything else: a reload or a replayed URL then
    # finds it gone, and no code is ever exchanged twice.
    flow = flows.consume_flow(args.get("state", ""))
    if flow is None:
        raise InvalidCallback("unknown, expired or used state")
    issuer = current_app.config["VCITA_ISSUER"]
    if issuer and args.get("iss") != issuer:
        # RFC 9207 §2.4: a client that expects `iss` refuses an answer without it, or
        # with another one: it may come from another authorization server (mix-up).
        raise InvalidCallback("the callback's iss is missing or not vcita's")
    if "error" in args:
        if args["error"] == "access_denied":
            raise AccessDenied()
        raise ProviderError(f"vcita answered error={args['error'][:40]!r}")
    if not args.get("code"):
        raise InvalidCallback("the callback carries no code")

    # vcita's codes live 30 seconds: exchange before any other work.
    token = vcita.exchange_code(args["code"], flow.code_verifier)
    userinfo = vcita.fetch_userinfo(token)
    business_uid, staff_uid = userinfo.get("business_uid"), userinfo.get("sub")
    if not (_is_identifier(business_uid) and _is_identifier(staff_uid)):
        raise vcita.VcitaUnavailable("userinfo names no business_uid and sub")
    connection = token_store.save_connection(
        business_uid=business_uid,
        staff_uid=staff_uid,
        access_token=token.access_token,
        token_type=token.token_type,
        issued_at=token.issued_at,
        expires_at=token.expires_at,
    )
    current_app.logger.info("Connected business %s (staff %s)", business_uid, staff_uid)
    rotate_session(connection.id)
    if trace.enabled():
        # Step 2's URL is rebuilt from the flow, rather than kept through the redirect.
        trace.keep(vcita.authorization_url(flow.state, flow.code_verifier), connection.id)
    # 303: the browser GETs the dashboard, and the code leaves the address bar.
    return redirect(flow.next_url or url_for(".dashboard"), 303)


@bp.get("/dashboard")
def dashboard():
    """Step 4: show the business's live userinfo from vcita."""
    connection = current_connection()
    if connection is None:
        return redirect(url_for(".index"))
    try:
        userinfo = vcita.fetch_userinfo(_access_token(connection))
    except vcita.AccessRevoked:
        # A 401 on a 20-year token means the business revoked this app in vcita.
        token_store.delete_connection(connection.id)
        forget_in_session(connection.id)
        current_app.logger.info("vcita revoked the token; connection forgotten")
        flash(
            "vcita no longer accepts this connection: it was revoked there. "
            "Connect again to see your business.",
            "warning",
        )
        return redirect(url_for(".index"))
    return render_template(
        "connect/dashboard.html",
        connection=connection,
        userinfo=userinfo,
        userinfo_json=json.dumps(userinfo, indent=2, sort_keys=True, ensure_ascii=False),
        flow_trace=trace.last_trace(connection.id),
    )


@bp.post("/disconnect")
def disconnect():
    """Forget every connection this browser made, with their tokens, and say which."""
    require_csrf_token()
    removed = [cid for cid in connections_in_session() if token_store.delete_connection(cid)]
    session.clear()
    current_app.logger.info("Disconnected %d connection(s)", len(removed))
    flash(disconnect_message(len(removed)), "info")
    return redirect(url_for(".index"), 303)


def disconnect_message(removed: int) -> str:
    """Say exactly what Disconnect deleted."""
    if removed == 0:
        return "Disconnected. This browser's connection was already gone: no token was kept."
    if removed == 1:
        return "Disconnected. vcita Connect no longer keeps a token for your business."
    return (
        f"Disconnected. vcita Connect no longer keeps any of the {removed} tokens this "
        "browser connected (one for each vcita login that approved it)."
    )


def current_connection() -> Connection | None:
    """Return this browser's connection, if it has one that still exists."""
    if "connection" not in g:
        connection_id = session.get(CONNECTION_KEY)
        # Not a string: a session written by another version of the app.
        known = isinstance(connection_id, str) and connection_id
        g.connection = token_store.get_connection(connection_id) if known else None
    return g.connection


def rotate_session(connection_id: str) -> None:
    """Start a fresh session for the connected browser (no session fixation).

    Everything is dropped except flows still pending in other tabs and the
    connections this browser made before, so a cookie captured before connecting
    never grants the dashboard, and Disconnect still finds every connection.
    """
    carried = flows.pending_flows()
    known = [known for known in connections_in_session() if known != connection_id]
    session.clear()
    if carried:
        session[flows.SESSION_KEY] = carried
    session[CONNECTIONS_KEY] = [*known, connection_id][-MAX_CONNECTIONS_PER_BROWSER:]
    session[CONNECTION_KEY] = connection_id
    flows.fit_session_cookie()


def connections_in_session() -> list[str]:
    """Return the ids of every connection this browser made, oldest first."""
    known = session.get(CONNECTIONS_KEY)
    ids = [item for item in known if isinstance(item, str)] if isinstance(known, list) else []
    current = session.get(CONNECTION_KEY)
    if isinstance(current, str) and current and current not in ids:
        ids.append(current)  # a session from before the app kept the list
    return ids


def forget_in_session(connection_id: str) -> None:
    """Drop one connection from this browser's session; the newest left becomes current."""
    remaining = [known for known in connections_in_session() if known != connection_id]
    session.pop(CONNECTION_KEY, None)
    session[CONNECTIONS_KEY] = remaining
    if remaining:
        session[CONNECTION_KEY] = remaining[-1]


def safe_next_url(target: str | None) -> str | None:
    """Return `target` if it is a path on this site, else None (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if len(json.dumps(target)) - 2 > MAX_NEXT_URL_BYTES:
        return None
    if any(character in target for character in "\\\t\r\n") or not target.isprintable():
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _is_identifier(value) -> bool:
    # Printable only: PostgreSQL cannot store a NUL, and a newline would forge log lines.
    return isinstance(value, str) and 0 < len(value) <= 255 and value.isprintable()


def _access_token(connection: Connection) -> vcita.AccessToken:
    return vcita.AccessToken(
        connection.access_token,
        connection.token_type,
        connection.issued_at,
        connection.expires_at,
    )
