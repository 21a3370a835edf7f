"""Noticing when a business uninstalls the app: vcita's `application/uninstalled` webhook.

After a connect, the connection subscribes to the event with a target URL under
PUBLIC_BASE_URL that ends in a random secret of its own; Disconnect unsubscribes. vcita
documents no payload shape and no signature for deliveries, so a delivery is a hint,
never proof: it only makes the app ask vcita itself (userinfo with the stored token),
and only a 401 from vcita forgets the connection. A delivery to an unknown secret does
nothing at all; the same delivery twice asks vcita twice, no more.
"""

import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from flask import Blueprint, Flask, abort, current_app, request

from .client import get_client
from .store import Connection, get_store
from .vcita import AccessRevoked, VcitaError

logger = logging.getLogger(__name__)

EVENT = "application/uninstalled"
SUBSCRIBE = "/platform/v1/webhook/subscribe"
UNSUBSCRIBE = "/platform/v1/webhook/unsubscribe"
MAX_DELIVERY_BYTES = 16 * 1024  # vcita documents no payload; a notice is small
BACKGROUND_THREADS = 2

bp = Blueprint("webhooks", __name__)


def subscribe_soon(connection: Connection) -> None:
    """Subscribe a new connection off the request: the person's dashboard does not wait."""
    if current_app.config["PUBLIC_BASE_URL"] is not None:
        current_app.extensions["webhook_work"].run(
            ("subscribe", connection.id), subscribe, connection
        )


def subscribe(connection: Connection) -> None:
    """Subscribe a new connection to the uninstall event; a failure never fails the connect."""
    base = current_app.config["PUBLIC_BASE_URL"]
    store = get_store()
    if base is None or store.subscription_of(connection.id) is not None:
        return  # vcita could not reach us; or connecting again keeps the subscription
    secret = secrets.token_urlsafe(32)
    target_url = f"{base}/webhooks/vcita/{secret}"
    try:
        get_client().api_post(
            connection.token, SUBSCRIBE, {"event": EVENT, "target_url": target_url}
        )
    except VcitaError as error:
        logger.warning("Could not subscribe to %s: %s", EVENT, error)
        return
    if not store.save_subscription(connection.id, secret, target_url):
        # Disconnected while vcita was asked: leave no subscription behind at vcita.
        _unsubscribe(connection, target_url)
        return
    logger.info("Subscribed to %s", EVENT)


def unsubscribe(connection: Connection) -> None:
    """Unsubscribe before the token is deleted; best effort: a failure is only logged."""
    target_url = get_store().subscription_of(connection.id)
    if target_url is not None:
        _unsubscribe(connection, target_url)


def _unsubscribe(connection: Connection, target_url: str) -> None:
    try:
        get_client().api_post(
            connection.token, UNSUBSCRIBE, {"event": EVENT, "target_url": target_url}
        )
    except VcitaError as error:
        logger.warning("Could not unsubscribe from %s: %s", EVENT, error)


@bp.post("/webhooks/vcita/<secret>")
def delivery(secret: str):
    """Take a delivery: find its connection by the secret, and ask vcita in the background.

    A server-to-server call: no session, no CSRF token, no cookie in the answer.
    """
    if request.content_length is not None and request.content_length > MAX_DELIVERY_BYTES:
        abort(413)
    # Read only to bound it (its content proves nothing), before anything is acted on.
    if len(read_at_most(MAX_DELIVERY_BYTES + 1)) > MAX_DELIVERY_BYTES:
        abort(413)  # a body without a length (chunked) that went past the limit
    connection_id = get_store().connection_for_webhook(secret)
    if connection_id is None:
        abort(404)
    logger.info("vcita announced %s; asking vcita to confirm", EVENT)
    current_app.extensions["webhook_work"].run(
        ("confirm", connection_id), forget_if_revoked, connection_id
    )
    return "", 200


def read_at_most(limit: int) -> bytes:
    """Read the request's body up to `limit` bytes; what comes after is left unread.

    A chunked body has no Content-Length to check first: gunicorn and Werkzeug's server
    pass it on dechunked, without a length, and end the stream themselves
    (`wsgi.input_terminated`); waitress buffers it and sets the length. Werkzeug's stream
    stops quietly at `max_content_length`, with no 413, so a caller reads one byte past
    its own limit to tell a body that is too long from one that just fits.
    """
    request.max_content_length = limit
    body = bytearray()
    while len(body) < limit and (piece := request.stream.read(limit - len(body))):
        body += piece  # a read may return less than asked: a sender's chunk, say
    return bytes(body)


class Background:
    """Talk to vcita off the request (subscribe, confirm), once at a time for each job."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.executor = ThreadPoolExecutor(BACKGROUND_THREADS, "webhooks")
        self.pending: set[tuple] = set()
        self.lock = threading.Lock()

    def run(self, job: tuple, function, *args):
        """Run `function(*args)` soon; the same job already waiting covers this one."""
        with self.lock:
            if job in self.pending:
                return None
            self.pending.add(job)
        return self.executor.submit(self._run, job, function, *args)

    def _run(self, job: tuple, function, *args) -> None:
        try:
            with self.app.app_context():
                function(*args)
        except Exception:
            logger.exception("Webhook work %r failed", job[0])
        finally:
            with self.lock:
                self.pending.discard(job)

    def wait(self, timeout: float = 10) -> None:
        """Wait until every job asked for has finished (tests, and a clean shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not self.pending:
                    return
            time.sleep(0.01)


def forget_if_revoked(connection_id: str) -> bool:
    """Ask vcita (userinfo) whether the token still works; forget it on a 401."""
    store = get_store()
    connection = store.get_connection(connection_id)
    if connection is None:
        return False
    try:
        get_client().fetch_userinfo(connection.token)
    except AccessRevoked:
        store.delete_connection(connection_id)
        logger.info("vcita confirmed the token is revoked: the connection is forgotten")
        return True
    except VcitaError as error:
        logger.info("vcita did not confirm a revocation (%s): the connection is kept", error)
        return False
    logger.info("vcita still accepts the token: the connection is kept")
    return False


def init_app(app: Flask) -> None:
    """Receive vcita's deliveries, and check them off the request."""
    app.register_blueprint(bp)
    app.extensions["webhook_work"] = Background(app)
