"""Noticing when a business uninstalls the app: deliveries of vcita's uninstall webhook.

vcita documents no payload shape and no signature for deliveries, so a delivery is a
hint, never proof: it only makes the app ask vcita itself (userinfo with the stored
token), and only a 401 from vcita ends the connection. A delivery to an unknown secret
does nothing at all; the same delivery twice asks vcita twice, no more.
"""

import logging

from flask import Blueprint, Flask, abort, request

from ..storage.connections import get_connections
from ..vcita import AccessRevoked, VcitaError
from ..vcita_client import get_vcita
from .background import get_background
from .ending import Ending, end_connection
from .subscriptions import EVENT, WEBHOOK_PATH, get_subscriptions

logger = logging.getLogger(__name__)

MAX_DELIVERY_BYTES = 16 * 1024  # vcita documents no payload; a notice is small

bp = Blueprint("webhooks", __name__)


@bp.post(f"{WEBHOOK_PATH}<secret>")
def delivery(secret: str):
    """Take a delivery: find its connection by the secret, and ask vcita in the background.

    A server-to-server call: no session, no CSRF token, no cookie in the answer.
    """
    if request.content_length is not None and request.content_length > MAX_DELIVERY_BYTES:
        abort(413)
    request.max_content_length = MAX_DELIVERY_BYTES  # a body without a length, too
    request.get_data(cache=False)  # read (and bound) it; its content proves nothing
    connection_id = get_subscriptions().connection_for(secret)
    if connection_id is None:
        abort(404)
    logger.info("vcita announced %s; asking vcita to confirm", EVENT)
    get_background().run(("confirm", connection_id), confirm_uninstall, connection_id)
    return "", 200


def confirm_uninstall(connection_id: str) -> bool:
    """Ask vcita (userinfo) whether the token still works; end the connection on a 401."""
    connection = get_connections().get(connection_id)
    if connection is None:
        return False
    try:
        get_vcita().fetch_userinfo(connection.token)
    except AccessRevoked:
        logger.info("vcita confirmed the uninstall: the connection is forgotten")
        return end_connection(connection_id, Ending.UNINSTALLED)
    except VcitaError as error:
        logger.info("vcita did not confirm the uninstall (%s): the connection is kept", error)
        return False
    logger.info("vcita still accepts the token: the delivery changed nothing")
    return False


def init_app(app: Flask) -> None:
    """Receive vcita's deliveries."""
    app.register_blueprint(bp)
