"""The calls vcita must hear: made at once, and made again until vcita answers them.

A connection that ends because someone here asked owes vcita an unsubscribe (if it was
subscribed) and the revocation of its token; a new connection owes it a subscription to
the uninstall webhook. Each call is written to `pending_calls` first, then made: vcita's
answer deletes it, and a call vcita did not answer (a timeout, a 5xx, a 429) waits there,
sealed, for its next attempt. In each app instance a `Retrier` thread makes the due calls
every RETRY_EVERY seconds; `flask vcita revocations --retry` makes every pending one at
once, for a cron job. A call vcita refuses (a 4xx) is kept for an operator.
"""

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flask import Flask, current_app
from sqlalchemy.exc import SQLAlchemyError

from ..storage.connections import Connection, RemovedConnection, get_connections
from ..storage.database import StoreUnavailable
from ..storage.sealer import InvalidToken, get_sealer
from ..vcita import (
    AccessRevoked,
    AccessToken,
    VcitaError,
    VcitaRefused,
)
from ..vcita_client import get_vcita
from .background import get_background
from .pending_calls import ClaimedCall, Kind, get_pending_calls
from .subscriptions import (
    EVENT,
    SUBSCRIBE,
    UNSUBSCRIBE,
    WEBHOOKS,
    get_subscriptions,
    new_target_url,
    secret_of,
)

logger = logging.getLogger(__name__)

RETRY_EVERY = 30  # seconds between two looks for due calls; the first retry waits a minute
WHAT = {
    Kind.REVOKE: "revoke the token",
    Kind.UNSUBSCRIBE: f"unsubscribe from {EVENT}",
    Kind.SUBSCRIBE: f"subscribe to {EVENT}",
}


class Outcome(enum.Enum):
    """What became of one attempt at a call."""

    DONE = "vcita answered, or nothing is left to ask"  # the call is forgotten
    RETRY = "vcita did not answer; it will be asked again"  # the next attempt is scheduled
    REFUSED = "vcita refused; kept for an operator"  # never made again by itself


@dataclass(frozen=True)
class Made:
    """One attempt at a call, and its outcome."""

    call: ClaimedCall
    outcome: Outcome


# --- Owing and making calls --------------------------------------------------------------


def owe_goodbyes(removed: RemovedConnection, sealed_target_url: str | None) -> list[ClaimedCall]:
    """Write down what vcita must hear of a connection someone ended: unsubscribe, revoke.

    Called in the transaction that deletes the connection, with its sealed values as they
    were: the calls are claimed by this instance, which makes them next (`make`), in order.
    """
    owed = []
    if sealed_target_url is not None:
        # First: once revoked, the token could not unsubscribe any more.
        owed.append(_owe_unsubscribe(removed, removed.sealed_token, sealed_target_url))
    owed.append(
        get_pending_calls().add(
            Kind.REVOKE,
            business_uid=removed.business_uid,
            staff_uid=removed.staff_uid,
            sealed_token=removed.sealed_token,
            claimed=True,
        )
    )
    return owed


def _owe_unsubscribe(
    whose: RemovedConnection | Connection, sealed_token: str, sealed_target_url: str
) -> ClaimedCall:
    """Write down an unsubscribe of a target URL, claimed: this instance makes it next."""
    return get_pending_calls().add(
        Kind.UNSUBSCRIBE,
        business_uid=whose.business_uid,
        staff_uid=whose.staff_uid,
        sealed_token=sealed_token,
        sealed_target_url=sealed_target_url,
        claimed=True,
    )


def make(claimed: ClaimedCall) -> Outcome:
    """Make a call this instance claimed, and keep what vcita answered."""
    call = claimed.call
    try:
        outcome, error = MAKERS[call.kind](claimed)
    except InvalidToken:
        # Sealed with a key this deployment no longer lists: it may come back.
        outcome, error = Outcome.RETRY, "its token cannot be decrypted with any of the keys"
    calls = get_pending_calls()
    whose = f"business {call.business_uid}, staff {call.staff_uid}"
    if outcome is Outcome.DONE:
        calls.done(call.id)
    elif outcome is Outcome.RETRY:
        calls.retry_later(call.id, error or "")
        logger.warning(
            "Could not %s (%s): %s; it will be asked again", WHAT[call.kind], whose, error
        )
    else:
        calls.refuse(call.id, error or "")
        logger.warning(
            "Could not %s (%s): vcita refused, %s; kept for an operator (flask vcita revocations)",
            WHAT[call.kind],
            whose,
            error,
        )
    return outcome


def make_now(call_id: int) -> Outcome | None:
    """Claim a pending call, due or not, and make it; None if it is in flight elsewhere."""
    claimed = get_pending_calls().claim(call_id, due_only=False)
    return None if claimed is None else make(claimed)


def run_pending(*, now: datetime | None = None, due_only: bool = True) -> list[Made]:
    """Make the pending calls due `now` (the retrier), or every one not in flight.

    What the retrier and `flask vcita revocations --retry` call, and tests with them: each
    call is claimed first, so instances running this at the same moment make it once. Read
    a batch at a time, in the order owed, until none is left: each call at most once a run.
    """
    calls = get_pending_calls()
    made = []
    after = 0
    # A call vcita did not answer is runnable again at once for --retry: read on past it.
    while batch := calls.runnable(now=now, due_only=due_only, after=after):
        for call_id in batch:
            claimed = calls.claim(call_id, now=now, due_only=due_only)
            if claimed is not None:
                made.append(Made(claimed, make(claimed)))
        after = batch[-1]
    return made


def keep_the_token(connection: Connection) -> None:
    """Cancel a revocation still owed for the token vcita just gave back.

    vcita gives a staff member who connects again the token they hold (Doorkeeper's
    reuse_access_token); after a Disconnect vcita did not confirm, that is the token
    still owed a revocation, which would end the new connection. Called where the
    connection is stored, in the same transaction.
    """
    calls, sealer = get_pending_calls(), get_sealer()
    # Only those owed before the token was stored: a Disconnect since owes its own.
    owed = calls.sealed_revocations(
        connection.business_uid, connection.staff_uid, owed_before=connection.updated_at
    )
    for call_id, sealed in owed.items():
        try:
            given_back = sealer.open(sealed) == connection.token.access_token
        except InvalidToken:
            continue
        if given_back:
            calls.done(call_id)
            logger.info("vcita gave back a token owed a revocation: connected again, kept")


def subscribe_soon(connection: Connection) -> None:
    """Subscribe a new connection off the request: the person's dashboard does not wait."""
    if current_app.config["PUBLIC_BASE_URL"] is not None:
        get_background().run(("subscribe", connection.id), subscribe, connection)


def subscribe(connection: Connection) -> None:
    """Subscribe a connection to the uninstall event, once; never lost if vcita is down."""
    base = current_app.config["PUBLIC_BASE_URL"]
    if base is None:
        return  # vcita could not reach us
    calls = get_pending_calls()
    call_id = calls.subscribe_owed(connection.id)
    if call_id is None:
        call_id = calls.add(
            Kind.SUBSCRIBE,
            business_uid=connection.business_uid,
            staff_uid=connection.staff_uid,
            connection_id=connection.id,
            # Kept for every attempt: one that timed out may have subscribed this very URL.
            sealed_target_url=get_sealer().seal(new_target_url(base)),
        ).call.id
    make_now(call_id)


# --- What each call does with vcita's answer ---------------------------------------------


def _revoke(claimed: ClaimedCall) -> tuple[Outcome, str | None]:
    """Revoke the token: vcita's answer, whichever, means it no longer accepts it."""
    token = _bearer(get_sealer().open(claimed.sealed_token or ""), claimed)
    try:
        revocation = get_vcita().revoke_token(token)
    except VcitaRefused as error:  # 422 "Unauthorized" among them
        return Outcome.REFUSED, str(error)
    except VcitaError as error:
        return Outcome.RETRY, str(error)
    logger.info("%s (business %s)", revocation.value, claimed.call.business_uid)
    return Outcome.DONE, None


def _unsubscribe(claimed: ClaimedCall) -> tuple[Outcome, str | None]:
    """Unsubscribe an ended connection's target URL; a dead token has nothing to unsubscribe."""
    sealer = get_sealer()
    token = _bearer(sealer.open(claimed.sealed_token or ""), claimed)
    target_url = sealer.open(claimed.sealed_target_url or "")
    try:
        get_vcita().api_post(token, UNSUBSCRIBE, {"event": EVENT, "target_url": target_url})
    except AccessRevoked:
        # Revoked before it could unsubscribe: what vcita still sends there finds no
        # secret here, a 404 that changes nothing.
        return Outcome.DONE, None
    except VcitaRefused as error:
        return Outcome.REFUSED, str(error)
    except VcitaError as error:
        return Outcome.RETRY, str(error)
    return Outcome.DONE, None


def _subscribe(claimed: ClaimedCall) -> tuple[Outcome, str | None]:
    """Subscribe with the connection's token, as it is now; keep the subscription here."""
    connection = get_connections().get(claimed.connection_id or "")
    subscriptions = get_subscriptions()
    if connection is None or subscriptions.target_url_of(connection.id) is not None:
        return Outcome.DONE, None  # ended since; or subscribed already, kept on connecting again
    if get_pending_calls().subscribe_owed(connection.id) != claimed.call.id:
        # Two callbacks of one staff member, on two workers, each wrote one down: only the
        # first owed is made, else both could reach vcita before either is kept here.
        return Outcome.DONE, None
    target_url = get_sealer().open(claimed.sealed_target_url or "")
    vcita = get_vcita()
    try:
        vcita.api_post(connection.token, SUBSCRIBE, {"event": EVENT, "target_url": target_url})
    except AccessRevoked:
        return Outcome.DONE, None  # vcita no longer accepts the token: nothing to hear
    except VcitaRefused as error:
        # "Webhook already exists": an attempt that timed out subscribed this URL after all.
        if not _subscribed_at_vcita(connection, target_url):
            return Outcome.REFUSED, str(error)
    except VcitaError as error:
        return Outcome.RETRY, str(error)
    if not subscriptions.save(connection.id, secret_of(target_url), target_url):
        # Disconnected while vcita was asked: leave no subscription behind at vcita.
        sealed_token = get_sealer().seal(connection.token.access_token)
        make(_owe_unsubscribe(connection, sealed_token, claimed.sealed_target_url or ""))
        return Outcome.DONE, None
    logger.info("Subscribed to %s", EVENT)
    return Outcome.DONE, None


def _subscribed_at_vcita(connection: Connection, target_url: str) -> bool:
    """Say whether vcita lists a subscription of the connection's business to `target_url`."""
    try:
        answer = get_vcita().api_get(connection.token, WEBHOOKS)
    except VcitaError:
        return False
    data = answer.get("data") if isinstance(answer, dict) else None
    listed = data.get("webhooks") if isinstance(data, dict) else None
    return isinstance(listed, list) and any(
        isinstance(held, dict) and held.get("target_url") == target_url for held in listed
    )


def _bearer(access_token: str, claimed: ClaimedCall) -> AccessToken:
    """Return the token of a pending call, as the client takes it.

    A pending call keeps the token's text only: vcita needs no more, and when it was
    issued or expires does not matter to a revoke or an unsubscribe.
    """
    return AccessToken(access_token, "Bearer", claimed.call.created_at, None)


MAKERS: dict[Kind, Callable[[ClaimedCall], tuple[Outcome, str | None]]] = {
    Kind.REVOKE: _revoke,
    Kind.UNSUBSCRIBE: _unsubscribe,
    Kind.SUBSCRIBE: _subscribe,
}


# --- The retrier -------------------------------------------------------------------------


class Retrier:
    """A thread in each app instance: every RETRY_EVERY seconds, make the calls now due."""

    def __init__(self, app: Flask, every: float = RETRY_EVERY) -> None:
        self.app = app
        self.every = every
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="vcita-retrier", daemon=True)
        self.started = False
        self.starting = threading.Lock()

    def start(self) -> None:
        """Start looking for due calls, once: a retrier already started stays as it is."""
        if self.started:  # every request asks: the usual answer costs no lock
            return
        with self.starting:
            if not self.started:
                self.thread.start()
                self.started = True

    def stop(self) -> None:
        """Stop after the call in flight, if any."""
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join()

    def _run(self) -> None:
        while not self.stopping.wait(self.every):
            try:
                with self.app.app_context():
                    run_pending()
            except (StoreUnavailable, SQLAlchemyError) as error:
                logger.warning("The pending calls cannot be read just now: %s", error)
            except Exception:
                logger.exception("Making the pending calls failed")


def init_app(app: Flask) -> None:
    """Keep a retrier for the app, started by the first request it serves; not in tests.

    Where the app serves (make run, make serve, any WSGI server, in each worker), never in
    a `flask` command, which has calls of its own to make (`revocations --retry`) and ends.
    Tests make the same calls deterministically, with `run_pending`.
    """
    app.extensions["retrier"] = Retrier(app)
    if not app.testing:
        app.before_request(start_the_retrier)


def get_retrier() -> Retrier:
    """Return the current app's retrier."""
    return current_app.extensions["retrier"]


def start_the_retrier() -> None:
    """Start the app's retrier, if this is the first request it serves."""
    get_retrier().start()
