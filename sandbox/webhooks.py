"""vcita's webhook subscriptions: subscribe, unsubscribe and list, on a business's token.

From vcita's legacy platform API (`legacy_v1_platform.json`, summarised in the shared
README): `POST /platform/v1/webhook/subscribe` `{"event", "target_url"}`, 422 "Webhook
already exists" for a duplicate and 500 `{"response": "Not Subscribed"}` on failure;
`POST /platform/v1/webhook/unsubscribe` `{"event"?, "target_url"}`; `GET
/platform/v1/webhooks`. A subscription belongs to the token's business and app: another
business's token neither sees nor removes it. Where vcita documents no answer, the
sandbox gives `{"status": "OK"}` and refuses in vcita's legacy shape (platform_api.py).
Deliveries happen when vcita acts: see uninstall.py.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from .platform_api import calling_app, ok, refusal, unauthorized
from .recording import json_body, sandbox_state, serve_observed
from .settings import is_plain_http_url
from .state import Subscription, SubscriptionRefused

bp = Blueprint("webhooks", __name__, url_prefix="/platform/v1")

# The events vcita's README names, the app's own first; the full enum is in vcita's file.
EVENTS = (
    "application/uninstalled",
    "app_subscription/uninstalled",
    "client/created",
    "client/updated",
    "appointment/scheduled",
    "payment/paid",
)
MAX_TARGET_URL = 2048
# vcita's documented failure body; a fault can send it: {"status": 500, "json": NOT_SUBSCRIBED}.
NOT_SUBSCRIBED = {"response": "Not Subscribed"}


class BadSubscription(ValueError):
    """A subscribe or unsubscribe body the endpoint cannot use (422)."""


@bp.post("/webhook/subscribe")
def subscribe() -> Response:
    """Subscribe the token's business and app to an event, recording the request."""
    return serve_observed("subscribe", add_subscription)


@bp.post("/webhook/unsubscribe")
def unsubscribe() -> Response:
    """Remove the token's business and app's subscriptions to a target URL."""
    return serve_observed("unsubscribe", remove_subscriptions)


@bp.get("/webhooks")
def webhooks() -> Response:
    """List the token's business and app's subscriptions."""
    return serve_observed("webhooks", list_subscriptions)


def add_subscription() -> Response:
    """Keep the subscription; 422 for a duplicate or a bad body, 500 when it cannot be kept."""
    caller = calling_app()
    if caller is None:
        return unauthorized()
    try:
        fields = subscription_fields(require_event=True)
        added = sandbox_state().subscribe(
            Subscription(
                business_uid=caller.business.uid,
                client_id=caller.client_id,
                event=fields["event"],
                target_url=fields["target_url"],
            )
        )
    except BadSubscription as problem:
        return refusal(422, str(problem))
    except SubscriptionRefused:
        return not_subscribed()
    if not added:
        return refusal(422, "Webhook already exists")
    return ok()


def remove_subscriptions() -> Response:
    """Remove the caller's subscriptions to target_url (to one event if it names one)."""
    caller = calling_app()
    if caller is None:
        return unauthorized()
    try:
        fields = subscription_fields(require_event=False)
    except BadSubscription as problem:
        return refusal(422, str(problem))
    sandbox_state().unsubscribe(
        caller.business.uid, caller.client_id, fields["target_url"], fields.get("event")
    )
    return ok()


def list_subscriptions() -> Response:
    """Answer `{"status": "OK", "data": {"webhooks": [{"event", "target_url"}, ...]}}`."""
    caller = calling_app()
    if caller is None:
        return unauthorized()
    held = sandbox_state().subscriptions(caller.business.uid, caller.client_id)
    return ok({"webhooks": [describe(subscription) for subscription in held]})


def describe(subscription: Subscription) -> dict[str, Any]:
    """Return a subscription as the list shows it."""
    return {"event": subscription.event, "target_url": subscription.target_url}


def subscription_fields(*, require_event: bool) -> dict[str, str]:
    """Return the body's event and target_url, checked; raise BadSubscription saying why."""
    parsed, body = json_body()
    if not parsed or not isinstance(body, dict):
        raise BadSubscription('Send a JSON object: {"event": ..., "target_url": ...}')
    fields: dict[str, str] = {}
    event = body.get("event")
    if event is not None or require_event:
        if event not in EVENTS:
            raise BadSubscription(f"event must be one of {', '.join(EVENTS)}")
        fields["event"] = event
    target_url = body.get("target_url")
    if not isinstance(target_url, str) or not is_target_url(target_url):
        raise BadSubscription("target_url must be an absolute http(s) URL")
    fields["target_url"] = target_url
    return fields


def is_target_url(url: str) -> bool:
    """Say whether vcita could deliver to the URL: absolute http(s), with a host, no user.

    Plain printable ASCII only, as the sandbox's other URL settings: it posts to it as is.
    """
    return len(url) <= MAX_TARGET_URL and is_plain_http_url(url)


def not_subscribed() -> Response:
    """Answer vcita's documented failure: 500 `{"response": "Not Subscribed"}`."""
    response = jsonify(NOT_SUBSCRIBED)
    response.status_code = 500
    return response
