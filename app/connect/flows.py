"""Pending connect flows, kept in the browser's signed Flask session.

Each click on Connect starts a flow: a random `state` (RFC 6749 §10.12) that binds
vcita's answer to this browser, plus what we must remember until vcita sends the
person back (the PKCE verifier, where to go next). The session holds a small map of
them, so two tabs can connect at once, and each expires after ten minutes.

A signed cookie cannot forget: a copy taken before the callback still holds the
state. So taking a flow out also marks its state used, through the `mark_used`
callable the caller passes (the app's ledger shared by every worker and instance),
and a second callback with it is refused (RFC 9700 §4.7).
"""

import hmac
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app, session
from flask.sessions import SecureCookieSessionInterface

from ..session_keys import PENDING_FLOWS
from ..vcita import new_code_verifier, new_state

FLOW_LIFETIME = timedelta(minutes=10)
MAX_PENDING_FLOWS = 5  # a few tabs at once; bounded so the cookie stays small
# Browsers drop a cookie over 4096 bytes, name and attributes included (RFC 6265 §6.1),
# silently and with every flow it carries. The session is kept under this many bytes as
# it is really sent (escaped, compressed, signed), whatever characters it holds, with
# room left for a flash message added later in the request.
MAX_SESSION_COOKIE_BYTES = 3000
# A return path rides in the session cookie with up to five pending flows. Counted in
# bytes as the cookie carries it: a non-ASCII character is escaped into 6 or 12.
MAX_NEXT_URL_BYTES = 256


@dataclass(frozen=True)
class PendingFlow:
    """One connect flow between the redirect to vcita and the callback."""

    state: str
    started_at: float
    code_verifier: str | None = None
    next_url: str | None = None
    brand_host: str | None = None  # the white-label consent page it was sent to
    handoff: str | None = None  # a popup's: the binding of vcita's frame (handoffs.py)

    @property
    def expired(self) -> bool:
        return time.time() - self.started_at > FLOW_LIFETIME.total_seconds()


def start_flow(
    use_pkce: bool,
    next_url: str | None = None,
    brand_host: str | None = None,
    handoff: str | None = None,
) -> PendingFlow:
    """Create a flow for this browser and remember it in the session."""
    flow = PendingFlow(
        state=new_state(),
        started_at=time.time(),
        code_verifier=new_code_verifier() if use_pkce else None,
        next_url=next_url,
        brand_host=brand_host,
        handoff=handoff,
    )
    flows = _live_flows()
    flows[flow.state] = asdict(flow)
    while len(flows) > MAX_PENDING_FLOWS:
        del flows[_oldest(flows)]
    session[PENDING_FLOWS] = flows
    fit_session_cookie()
    # The newest flow is always kept, but perhaps without its return path.
    return replace(flow, next_url=session[PENDING_FLOWS][flow.state]["next_url"])


def fit_session_cookie() -> None:
    """Drop the oldest pending flows until the session cookie fits a browser.

    The newest flow is never dropped: a page that makes a browser open many long
    /connect links must not push out the flow the person started. If even that flow
    alone does not fit, its return path goes, never the flow.
    """
    flows = session.get(PENDING_FLOWS)
    if not isinstance(flows, dict) or not flows:
        return
    while len(flows) > 1 and _session_cookie_bytes() > MAX_SESSION_COOKIE_BYTES:
        del flows[_oldest(flows)]
        session[PENDING_FLOWS] = flows
    if _session_cookie_bytes() > MAX_SESSION_COOKIE_BYTES:
        session[PENDING_FLOWS] = {
            state: {**data, "next_url": None} if isinstance(data, dict) else data
            for state, data in flows.items()
        }


def consume_flow(state: str, mark_used: Callable[[str, datetime], bool]) -> PendingFlow | None:
    """Take the flow that `state` names out of the session; None if it is not ours.

    `mark_used(state, expires_at)` records the state as used and says whether it was
    still unused. Unknown, expired and already used states all give None: the caller
    does not need to know which, and must not exchange a code for any of them.
    """
    flows = session.get(PENDING_FLOWS)
    if not state or not isinstance(flows, dict):
        return None
    match = None
    for known in list(flows):
        # Compare every entry in constant time rather than a dict lookup, so the
        # response time tells nothing about how much of a guessed state was right.
        if hmac.compare_digest(known.encode(), state.encode()):
            match = known
    if match is None:
        return None
    flow = _flow_from(flows.pop(match))
    session[PENDING_FLOWS] = flows
    if flow is None or flow.expired:
        return None
    expires_at = datetime.fromtimestamp(flow.started_at, UTC) + FLOW_LIFETIME
    if not mark_used(flow.state, expires_at):
        return None
    return flow


def _oldest(flows: dict) -> str:
    return min(flows, key=lambda state: flows[state]["started_at"])


def _session_cookie_bytes() -> int:
    """Return the size of the session cookie's value as the browser will receive it."""
    interface = current_app.session_interface
    serializer = (
        interface.get_signing_serializer(current_app)
        if isinstance(interface, SecureCookieSessionInterface)
        else None
    )
    if serializer is None:
        return 0  # no signed cookie: a session kept on the server, or none (no SECRET_KEY)
    return len(serializer.dumps(dict(session)))


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


def pending_flows() -> dict:
    """Return the session's unexpired flows, to carry over when the session rotates."""
    return _live_flows()


def _live_flows() -> dict:
    flows = session.get(PENDING_FLOWS)
    if not isinstance(flows, dict):
        return {}
    return {
        state: data
        for state, data in flows.items()
        if (flow := _flow_from(data)) is not None and not flow.expired
    }


def _flow_from(data: object) -> PendingFlow | None:
    """Read a flow back from the session, tolerating entries of an older shape.

    During a rolling deploy a session may come from another version of the app, with
    other fields or other types: such an entry is no flow, rather than a crash.
    """
    if not isinstance(data, dict):
        return None
    try:
        flow = PendingFlow(**data)
    except TypeError:
        return None
    started_at = flow.started_at
    well_formed = (
        isinstance(flow.state, str)
        and isinstance(flow.code_verifier, str | None)
        and isinstance(flow.next_url, str | None)
        and isinstance(flow.brand_host, str | None)
        and isinstance(flow.handoff, str | None)
        and isinstance(started_at, int | float)
        and not isinstance(started_at, bool)
        # Not in the future beyond any clock skew between instances (nor NaN).
        and 0 < started_at < time.time() + FLOW_LIFETIME.total_seconds()
    )
    return flow if well_formed else None
