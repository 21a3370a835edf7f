"""The pages of the connect flow: /, /connect, /callback, /dashboard, /disconnect.

Views read as vcita's guide: each step is a call into the vcita client, the pending
flows or the token store, and every failure is raised to `errors`, which renders its
page.
"""

import json
from datetime import UTC, datetime, timedelta

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from . import flows, framing, launch, snapshots, trace, webhooks
from .client import get_client
from .database import get_db
from .handoffs import binding_for_this_session, get_handoffs, is_binding
from .security import require_csrf_token
from .sessions import (
    choose_connection,
    connection_for,
    connections_in_session,
    current_connection,
    forget_in_session,
    rotate_session,
)
from .store import get_store
from .used_states import get_used_states
from .vcita import AccessRevoked, VcitaUnavailable, allowed_brand_host

bp = Blueprint("connect", __name__)


HANDOFF_CODE_KEY = "handoff_code"  # the popup's, between /callback and /connected
# The connection whose dashboard the callback just read: the next dashboard renders it
# from that copy instead of asking vcita again, if it comes this soon.
JUST_CONNECTED_KEY = "just_connected"
JUST_CONNECTED_FOR = timedelta(seconds=30)


@bp.get("/")
def index():
    """The landing page: vcita opens it from its App Market, in its frame or a new tab.

    A launch that names a business this browser already connected goes straight to its
    dashboard; any other business's data stays hidden, whatever the query says.
    """
    launched = launch.read_launch(request.args)
    launch.remember(launched)
    connection = current_connection()
    if launched.business_uid:
        known = connection_for(launched.business_uid, launched.staff_uid)
        if known is not None:
            choose_connection(known)
            return redirect(url_for(".dashboard"))
    other_business = bool(connection and launched.business_uid)
    popup_url = None
    if framing.in_frame():
        # vcita's sign-in page refuses frames: Connect opens a popup bound to this session.
        popup_url = url_for(
            ".start", brand_host=launched.brand_host, handoff=binding_for_this_session()
        )
    return render_template(
        "connect/index.html",
        connection=None if other_business else connection,
        other_business=other_business,
        connect_url=url_for(".start", brand_host=launched.brand_host),
        popup_url=popup_url,
    )


@bp.get("/connect")
def start():
    """Step 2: start a flow and send the browser to vcita's consent page."""
    client = get_client()
    brand_host = allowed_brand_host(request.args.get("brand_host"), client.settings.brand_hosts)
    if request.args.get("brand_host") and brand_host is None:
        current_app.logger.info(
            "Ignored a brand_host that is not in VCITA_BRAND_HOSTS; using VCITA_AUTHORIZE_URL"
        )
    handoff = request.args.get("handoff")
    flow = flows.start_flow(
        use_pkce=client.settings.use_pkce,
        next_url=flows.safe_next_url(request.args.get("next")),
        brand_host=brand_host,
        handoff=handoff if is_binding(handoff) else None,
    )
    if flow.handoff:
        framing.keep_opener()
    current_app.logger.info("Connect flow started; redirecting to vcita")
    return redirect(client.authorization_url(flow.state, flow.code_verifier, brand_host), 302)


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
    # Userinfo names the business; the dashboard's other call is made beside it.
    snapshot = snapshots.read(token)
    business_uid, staff_uid = client.identify(snapshot.userinfo)
    with get_db().transaction():  # everything the callback writes, in one commit
        connection = get_store().save_connection(
            business_uid=business_uid, staff_uid=staff_uid, token=token, snapshot=snapshot
        )
        rotate_session(connection.id)
        if trace.enabled():
            # Step 2's URL is rebuilt from the flow, rather than kept through the redirect.
            trace.keep(
                client.authorization_url(flow.state, flow.code_verifier, flow.brand_host),
                connection.id,
            )
        if flow.handoff:
            # A popup opened by vcita's frame: its last page hands the connection back.
            session[HANDOFF_CODE_KEY] = get_handoffs().offer(flow.handoff, connection.id)
    current_app.logger.info("Connected business %s (staff %s)", business_uid, staff_uid)
    session[JUST_CONNECTED_KEY] = connection.id
    webhooks.subscribe_soon(connection)  # to hear when the business uninstalls the app
    if flow.handoff:
        framing.keep_opener()
        return redirect(url_for(".connected"), 303)
    # 303: the browser GETs the dashboard, and the code leaves the address bar.
    return redirect(flow.next_url or url_for(".dashboard"), 303)


@bp.get("/connected")
def connected():
    """The popup's last page: hand the connection to vcita's frame, then close.

    Only the page that hands over a code keeps its opener, and only it spends the code.
    Every other answer is cut off from its opener like any page: a page of another site
    that opens this one reads the same `w.closed` whether or not the browser is connected,
    and a visit that finds nothing to hand over (or fails) leaves a pending code for the
    popup's own page.
    """
    connection = current_connection()
    if connection is None:
        return redirect(url_for(".index"))
    code = session.get(HANDOFF_CODE_KEY)
    if not isinstance(code, str):
        return render_template("connect/connected.html", handoff_code=None)
    session.pop(HANDOFF_CODE_KEY)
    framing.keep_opener()
    return render_template("connect/connected.html", handoff_code=code)


@bp.post("/handoff")
def handoff():
    """Redeem a popup's one-time code in vcita's frame: only the session that opened it can."""
    require_csrf_token()
    connection_id = get_handoffs().redeem(request.form.get("code", ""))
    connection = get_store().get_connection(connection_id) if connection_id else None
    if connection is None:
        current_app.logger.info("Refused a handoff: unknown, used, expired or not this session's")
        return jsonify(connected=False), 403
    rotate_session(connection.id)
    current_app.logger.info("Connection handed over to vcita's frame")
    return jsonify(connected=True, location=url_for(".dashboard"))


@bp.get("/.well-known/jwks.json")
def jwks():
    """The public halves of the private_key_jwt keys: the app's client_auth_jwks_uri."""
    keys = get_client().public_jwks()
    if not keys["keys"]:
        return jsonify(error="not_found", error_description="no signing keys configured"), 404
    response = jsonify(keys)
    # vcita may cache the set; five minutes lets a new key in soon after a rotation.
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/dashboard")
def dashboard():
    """Step 4: show what vcita says about the business: live, or kept if vcita is down."""
    connection = current_connection()
    if connection is None:
        return redirect(url_for(".index"))
    kept = connection.snapshot
    unanswered = None  # why vcita's answer is not live, when it is not
    if just_connected(connection):
        snapshot = kept  # the callback read it a moment ago
    else:
        try:
            # If vcita did not answer for the clients this time: the last it listed.
            snapshot = snapshots.with_last_clients(snapshots.read(connection.token), kept)
        except AccessRevoked:
            return forget_revoked(connection)
        except VcitaUnavailable as error:
            if kept is None:
                raise  # nothing kept to show: the error page says vcita did not answer
            current_app.logger.warning("vcita did not answer (%s); showing the kept copy", error)
            snapshot, unanswered = kept, error
        else:
            get_store().keep_snapshot(connection.id, snapshot)
    userinfo = snapshot.userinfo
    launched = launch.remembered()
    return render_template(
        "connect/dashboard.html",
        connection=connection,
        userinfo=userinfo,
        userinfo_json=json.dumps(userinfo, indent=2, sort_keys=True, ensure_ascii=False),
        read_at=snapshot.read_at,
        unanswered=unanswered,
        launched=launched,
        # vcita opened the app for one business; the person approved with another.
        launched_for_another=bool(
            launched.business_uid and launched.business_uid != connection.business_uid
        ),
        recent_clients=snapshots.client_rows(snapshot),
        clients_read_at=snapshot.clients_read_at,
        flow_trace=trace.last_trace(connection.id),
        # Disconnect removes them too: the page says so before the person presses it.
        other_connections=get_store().count_existing(
            [known for known in connections_in_session() if known != connection.id]
        ),
    )


def just_connected(connection) -> bool:
    """Say whether the callback just read this connection's dashboard (once per connect)."""
    kept = connection.snapshot
    return (
        session.pop(JUST_CONNECTED_KEY, None) == connection.id
        and kept is not None
        and datetime.now(UTC) - kept.read_at < JUST_CONNECTED_FOR
    )


def forget_revoked(connection):
    """A 401 on a 20-year token means the business revoked this app in vcita."""
    get_store().delete_connection(connection.id)
    forget_in_session(connection.id)
    current_app.logger.info("vcita revoked the token; connection forgotten")
    flash(
        "vcita no longer accepts this connection: it was revoked there. "
        "Connect again to see your business.",
        "warning",
    )
    return redirect(url_for(".index"))


@bp.post("/disconnect")
def disconnect():
    """Forget every connection this browser made, with their tokens, and say which."""
    require_csrf_token()
    store = get_store()
    for known in connections_in_session():
        if (connection := store.get_connection(known)) is not None:
            webhooks.unsubscribe(connection)  # while the token still works
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
