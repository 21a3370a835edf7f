"""The pages of the connect flow: /, /connect, /callback, /dashboard, /disconnect.

Views read as vcita's guide: each step is a call into the vcita client, the pending
flows or the token store, and every failure is raised to `errors`, which renders its
page.
"""

import json

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from . import flows, trace
from .client import get_client
from .security import require_csrf_token
from .sessions import (
    connections_in_session,
    current_connection,
    forget_in_session,
    rotate_session,
)
from .store import get_store
from .used_states import get_used_states
from .vcita import AccessRevoked

bp = Blueprint("connect", __name__)


@bp.get("/")
def index():
    """Show the landing page, or a way to the dashboard for a connected browser."""
    return render_template("connect/index.html", connection=current_connection())


@bp.get("/connect")
def start():
    """Step 2: start a flow and send the browser to vcita's consent page."""
    client = get_client()
    flow = flows.start_flow(
        use_pkce=client.settings.use_pkce, next_url=flows.safe_next_url(request.args.get("next"))
    )
    current_app.logger.info("Connect flow started; redirecting to vcita")
    return redirect(client.authorization_url(flow.state, flow.code_verifier), 302)


@bp.get("/callback")
def callback():
    """Step 3: check vcita's answer, exchange the code, and remember the connection."""
    client = get_client()
    # Take the flow out of the session (and mark its state used) before anything
    # else: a reload or a replayed URL then finds it gone, and no code is ever
    # exchanged twice, whatever else the callback carries.
    flow = flows.consume_flow(request.args.get("state", ""), get_used_states().mark_used)
    code = client.code_from_callback(request.args, flow)

    # vcita's codes live 30 seconds: exchange before any other work.
    token = client.exchange_code(code, flow.code_verifier)
    userinfo = client.fetch_userinfo(token)
    business_uid, staff_uid = client.identify(userinfo)
    connection = get_store().save_connection(
        business_uid=business_uid, staff_uid=staff_uid, token=token
    )
    current_app.logger.info("Connected business %s (staff %s)", business_uid, staff_uid)
    rotate_session(connection.id)
    if trace.enabled():
        # Step 2's URL is rebuilt from the flow, rather than kept through the redirect.
        trace.keep(client.authorization_url(flow.state, flow.code_verifier), connection.id)
    # 303: the browser GETs the dashboard, and the code leaves the address bar.
    return redirect(flow.next_url or url_for(".dashboard"), 303)


@bp.get("/dashboard")
def dashboard():
    """Step 4: show the business's live userinfo from vcita."""
    connection = current_connection()
    if connection is None:
        return redirect(url_for(".index"))
    try:
        userinfo = get_client().fetch_userinfo(connection.token)
    except AccessRevoked:
        # A 401 on a 20-year token means the business revoked this app in vcita.
        get_store().delete_connection(connection.id)
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
        # Disconnect removes them too: the page says so before the person presses it.
        other_connections=get_store().count_existing(
            [known for known in connections_in_session() if known != connection.id]
        ),
    )


@bp.post("/disconnect")
def disconnect():
    """Forget every connection this browser made, with their tokens, and say which."""
    require_csrf_token()
    store = get_store()
    removed = [known for known in connections_in_session() if store.delete_connection(known)]
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
