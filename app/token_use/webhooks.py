"""Noticing when a business uninstalls the app: deliveries of vcita's uninstall webhook.

vcita documents no payload shape and no signature for deliveries, so a delivery is a
hint, never proof: it only makes the app ask vcita itself (userinfo with the stored
token), and only a 401 from vcita ends the connection. A delivery to an unknown secret
does nothing at all; the same delivery twice asks vcita twice, no more.
"""

import logging

from flask import Blueprint, Flask, abort, request
from flask.typing import ResponseReturnValue

from .background import get_background
from .ending import Ending, end_if_vcita_refuses
from .subscriptions import EVENT, WEBHOOK_PATH, get_subscriptions

logger = logging.getLogger(__name__)

MAX_DELIVERY_BYTES = 16 * 1024  # vcita documents no payload; a notice is small

bp = Blueprint("webhooks", __name__)


@bp.post(f"{WEBHOOK_PATH}<secret>")
def delivery(secret: str) -> ResponseReturnValue:
    """Take a delivery: find its connection by the secret, and ask vcita in the background.

    A server-to-server call: no session, no CSRF token, no cookie in the answer.
    """
    if request.content_length is not None and request.content_length > MAX_DELIVERY_BYTES:
        abort(413)
    # Read only to bound it (its content proves nothing), before anything is acted on.
    if len(read_at_most(MAX_DELIVERY_BYTES + 1)) > MAX_DELIVERY_BYTES:
        abort(413)  # a body without a length (chunked) that went past the limit
    connection_id = get_subscriptions().connection_for(secret)
    if connection_id is None:
        abort(404)
    logger.info("vcita announced %s; asking vcita to confirm", EVENT)
    get_background().run(
        ("confirm", connection_id), end_if_vcita_refuses, connection_id, Ending.UNINSTALLED
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


def init_app(app: Flask) -> None:
    """Receive vcita's deliveries."""
    app.register_blueprint(bp)
