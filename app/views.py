"""The connect flow's pages: /, /connect, /callback, /connected, /handoff, /dashboard, /disconnect,
and /language, the menu that chooses the pages' language.

Views read as vcita's guide: each step is a call into the vcita client, the connect
flow, the App Market's pieces or the stores, and every failure is raised to `errors`,
which renders its page.
"""

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext, ngettext

from . import languages
from .app_market import framing, launch
from .app_market.handoffs import binding_for_this_session, get_handoffs, is_binding
from .connect import browser, flows, trace
from .connect.used_states import get_used_states
from .security import require_csrf_token
from .storage.connections import Connection, get_connections
from .storage.database import get_db
from .token_use import calls, snapshots
from .token_use.ending import Ended, Ending, end_connections
from .vcita import AccessRevoked, allowed_brand_host
from .vcita_client import get_vcita

bp = Blueprint("connect", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    """The landing page: vcita opens it from its App Market, in its frame or a new tab.

    A launch that names a business this browser already connected goes straight to its
    dashboard; any other business's data stays hidden, whatever the query says.
    """
    launched = launch.read_launch(request.args)
    launch.remember(launched)
    if launched.business_uid:
        known = browser.connection_for(launched.business_uid, launched.staff_uid)
        if known is not None:
            browser.choose_connection(known)
            return redirect(url_for(".dashboard"))
    connection = browser.current_connection()
    other_business = bool(connection and launched.business_uid)
    return render_template(
        "connect/index.html",
        connection=None if other_business else connection,
        other_business=other_business,
        connect_url=url_for(".start", brand_host=launched.brand_host),
        popup_url=popup_url(launched.brand_host) if framing.in_frame() else None,
    )


def popup_url(brand_host: str | None) -> str:
    """Return where Connect goes from vcita's frame: a popup bound to this session.

    vcita's sign-in page refuses to be framed, so it opens in a window of its own.
    """
    return url_for(".start", brand_host=brand_host, handoff=binding_for_this_session())


@bp.get("/connect")
def start() -> ResponseReturnValue:
    """Step 2: start a flow and send the browser to vcita's consent page."""
    vcita = get_vcita()
    brand_host = allowed_brand_host(request.args.get("brand_host"), vcita.settings.brand_hosts)
    if request.args.get("brand_host") and brand_host is None:
        current_app.logger.info(
            "Ignored a brand_host that is not in VCITA_BRAND_HOSTS; using VCITA_AUTHORIZE_URL"
        )
    handoff = request.args.get("handoff")
    flow = flows.start_flow(
        use_pkce=vcita.settings.use_pkce,
        next_url=flows.safe_next_url(request.args.get("next")),
        brand_host=brand_host,
        handoff=handoff if is_binding(handoff) else None,
    )
    if flow.handoff:
        framing.keep_opener()
    current_app.logger.info("Connect flow started; redirecting to vcita")
    return redirect(vcita.authorization_url(flow.state, flow.code_verifier, brand_host), 302)


@bp.get("/callback")
def callback() -> ResponseReturnValue:
    """Step 3: check vcita's answer, exchange the code, and remember the connection."""
    vcita = get_vcita()
    # Take the flow out of the session (and mark its state used) before anything
    # else: a reload or a replayed URL then finds it gone, and no code is ever
    # exchanged twice, whatever else the callback carries.
    pending = flows.consume_flow(request.args.get("state", ""), get_used_states().mark_used)
    code, flow = vcita.code_and_flow(request.args, pending)  # the callback's rules, in order
    token = vcita.exchange_code(code, flow.code_verifier)  # at once: codes live 30 s
    reading = snapshots.read(token)  # GET /oauth/userinfo; the clients list if it is quick
    business_uid, staff_uid = vcita.identify(reading.snapshot.userinfo)
    with get_db().transaction():  # everything the callback writes, in one commit
        connection = get_connections().save(
            business_uid=business_uid, staff_uid=staff_uid, token=token, snapshot=reading.snapshot
        )
        calls.keep_the_token(connection)  # vcita may give back a token owed a revocation
        browser.start_connected_session(  # a fresh session: no session fixation
            connection,
            flow_trace=trace.keep(flow, connection.id),
            handoff_code=get_handoffs().offer(flow.handoff, connection.id),
        )
    reading.keep_late_clients(connection.id)  # a slow clients list is kept when it comes
    current_app.logger.info("Connected business %s (staff %s)", business_uid, staff_uid)
    calls.subscribe_soon(connection)  # to hear when the business uninstalls the app
    if flow.handoff:  # a popup opened by vcita's frame: its last page hands the connection back
        framing.keep_opener()
        return redirect(url_for(".connected"), 303)
    # 303: the browser GETs the dashboard, and the code leaves the address bar.
    return redirect(flow.next_url or url_for(".dashboard"), 303)


@bp.get("/connected")
def connected() -> ResponseReturnValue:
    """The popup's last page: hand the connection to vcita's frame, then close.

    Only the page that hands over a code keeps its opener, and only it spends the code.
    Every other answer is cut off from its opener like any page: a page of another site
    that opens this one reads the same `w.closed` whether or not the browser is connected,
    and a visit that finds nothing to hand over (or fails) leaves a pending code for the
    popup's own page.
    """
    if browser.current_connection() is None:
        return redirect(url_for(".index"))
    code = browser.take_handoff_code()
    if code is not None:
        framing.keep_opener()
    return render_template("connect/connected.html", handoff_code=code)


@bp.post("/handoff")
def handoff() -> ResponseReturnValue:
    """Redeem a popup's one-time code in vcita's frame: only the session that opened it can."""
    require_csrf_token()
    connection_id = get_handoffs().redeem(request.form.get("code", ""))
    connection = get_connections().get(connection_id) if connection_id else None
    if connection is None:
        current_app.logger.info("Refused a handoff: unknown, used, expired or not this session's")
        return jsonify(connected=False), 403
    # The popup's callback read vcita a moment ago: the frame's first dashboard shows that.
    browser.start_connected_session(connection, flow_trace=None, handoff_code=None)
    current_app.logger.info("Connection handed over to vcita's frame")
    return jsonify(connected=True, location=url_for(".dashboard"))


@bp.get("/.well-known/jwks.json")
def jwks() -> ResponseReturnValue:
    """The public halves of the private_key_jwt keys: the app's client_auth_jwks_uri."""
    keys = get_vcita().public_jwks()
    if not keys["keys"]:
        return jsonify(error="not_found", error_description="no signing keys configured"), 404
    response = jsonify(keys)
    # vcita may cache the set; five minutes lets a new key in soon after a rotation.
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/dashboard")
def dashboard() -> ResponseReturnValue:
    """Step 4: show what vcita says about the business: live, or kept if vcita is down."""
    connection = browser.current_connection()
    if connection is None:
        return redirect(url_for(".index"))
    try:
        shown = snapshots.for_dashboard(connection, browser.just_connected(connection))
    except AccessRevoked:
        return connection_revoked(connection)
    return render_template(
        "connect/dashboard.html",
        connection=connection,
        dashboard=shown,
        launched=launch.remembered(),
        flow_trace=trace.last_trace(connection.id),
        other_connections=browser.other_connections_kept(connection),
    )


@bp.get("/dashboard/recent-clients")
def recent_clients() -> ResponseReturnValue:
    """The Recent clients panel alone, for a dashboard whose clients were on their way.

    The dashboard's script fetches it until the clients are there; without JavaScript,
    its link opens it as a page of its own. Both name the page's business, not the
    session's: another tab may connect another business meanwhile. Only a business this
    browser connected is answered for.
    """
    known = browser.connection_for(
        request.args.get("business_uid", ""), request.args.get("staff_uid")
    )
    connection = get_connections().get(known) if known else None
    if connection is None:
        return redirect(url_for(".index"))
    try:
        panel = snapshots.clients_panel(connection)
    except AccessRevoked:
        return connection_revoked(connection)
    # A script's fetch gets the panel alone; a person following the link, a page.
    fetched = request.headers.get("Sec-Fetch-Dest") == "empty"
    template = "connect/recent_clients_panel.html" if fetched else "connect/recent_clients.html"
    response = make_response(render_template(template, clients=panel, connection=connection))
    response.vary.add("Sec-Fetch-Dest")
    return response


def connection_revoked(connection: Connection) -> ResponseReturnValue:
    """Say vcita revoked the connection, which `snapshots` ended; forget it in this browser.

    userinfo's 401 on a 20-year token means the business revoked this app in vcita.
    """
    browser.forget_in_session(connection.id)
    current_app.logger.info("vcita revoked the token; connection forgotten")
    flash(
        gettext(
            "vcita no longer accepts this connection: it was revoked there. "
            "Connect again to see your business."
        ),
        "warning",
    )
    return redirect(url_for(".index"))


@bp.post("/disconnect")
def disconnect() -> ResponseReturnValue:
    """End every connection this browser made: revoked at vcita, deleted here; say how."""
    require_csrf_token()
    # The message, and the pages after it, read in the language of the page pressed,
    # which may be the business's: read it while the connection is there.
    language = languages.page_language()
    ended = end_connections(browser.connections_in_session(), Ending.DISCONNECTED)
    session.clear()
    languages.choose(language.code)
    current_app.logger.info("Disconnected %d connection(s)", len(ended))
    flash(disconnect_message(ended), "info")
    return redirect(url_for(".index"), 303)


def disconnect_message(ended: list[Ended]) -> str:
    """Say exactly what Disconnect did: each key deleted here, and what vcita confirmed.

    "vcita no longer accepts" only for the keys vcita said so of (revoked, unknown to it,
    or refused as dead); each case one whole sentence, for translation.
    """
    count = len(ended)
    stopped = ended.count(Ended.VCITA_STOPPED)
    refused = ended.count(Ended.VCITA_REFUSED)
    if count == 0:
        return gettext(
            "Disconnected. This browser's connection was already gone: no key was kept."
        )
    if count == 1 and refused:
        return gettext(
            "Disconnected. This app deleted its key for your business, but vcita refused to "
            "revoke it: the administrator of this app must look into it."
        )
    if refused:
        return ngettext(
            "Disconnected. This app deleted the %(num)d key this browser connected, but vcita "
            "refused to revoke %(refused)d of them: the administrator of this app must look "
            "into it.",
            "Disconnected. This app deleted the %(num)d keys this browser connected, but vcita "
            "refused to revoke %(refused)d of them: the administrator of this app must look "
            "into it.",
            count,
            refused=refused,
        )
    if count == 1 and stopped:
        return gettext(
            "Disconnected. vcita no longer accepts the key this app had for your business, "
            "and this app deleted it."
        )
    if count == 1:
        return gettext(
            "Disconnected. This app deleted its key for your business; vcita did not confirm "
            "that it stopped accepting it, so it will be asked again."
        )
    if stopped == count:
        return ngettext(
            "Disconnected. vcita no longer accepts the %(num)d key this browser connected, "
            "and this app deleted it.",
            "Disconnected. vcita no longer accepts any of the %(num)d keys this browser "
            "connected (one for each vcita login that approved it), and this app deleted them.",
            count,
        )
    if not stopped:
        return ngettext(
            "Disconnected. This app deleted the %(num)d key this browser connected; vcita "
            "did not confirm that it stopped accepting it, so it will be asked again.",
            "Disconnected. This app deleted the %(num)d keys this browser connected; vcita "
            "did not confirm that it stopped accepting them, so it will be asked again.",
            count,
        )
    return ngettext(
        "Disconnected. This app deleted the %(num)d key this browser connected; vcita no "
        "longer accepts %(stopped)d of them, and will be asked again about the other "
        "%(asked_again)d.",
        "Disconnected. This app deleted the %(num)d keys this browser connected; vcita no "
        "longer accepts %(stopped)d of them, and will be asked again about the other "
        "%(asked_again)d.",
        count,
        stopped=stopped,
        asked_again=count - stopped,
    )


@bp.get("/language")
def choose_language() -> ResponseReturnValue:
    """Show the pages in the language chosen in the menu, then go back to the page.

    A GET that changes nothing but the language: vcita's launch link sets it on a GET as
    well, so a link from anywhere can do no more than that link already can.
    """
    languages.choose(request.args.get("language"))
    back = flows.safe_next_url(request.args.get("next"))
    return redirect(back or url_for(".index"), 303)
