"""Uninstalling the app from a business: what vcita does when the business removes it.

Three steps, in this order. Every access token issued for the business is revoked, so
userinfo and the platform API answer 401 from then on (how an app confirms a delivery).
`application/uninstalled` is delivered to every target URL subscribed for it by the
business. Then the business's subscriptions are removed. The deliveries are made before
the answer, one after another, each with a short timeout and without following redirects,
and each is recorded however it went: a receiver that fails never fails the uninstall.

vcita documents no payload shape and no signature for deliveries. The body is the
sandbox's own (`delivery_body`), sent as JSON and unsigned: a receiver can only take it
as a hint, exactly as with vcita.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from .client_records import timestamp
from .directory import Business
from .recording import sandbox_state
from .state import Subscription

EVENT = "application/uninstalled"
# Long enough for an app on this machine, short enough not to hold the uninstall up.
DELIVERY_TIMEOUT = 5.0
USER_AGENT = "vcita-sandbox-webhooks"


@dataclass(frozen=True)
class Uninstallation:
    """What uninstalling did: tokens revoked, and each delivery made."""

    business: Business
    revoked: int
    deliveries: list[dict[str, Any]]

    def describe(self) -> dict[str, Any]:
        """Return it as JSON-friendly data, for the control API."""
        return {
            "business_uid": self.business.uid,
            "revoked": self.revoked,
            "deliveries": self.deliveries,
        }


def uninstall_app(business: Business) -> Uninstallation:
    """Revoke the business's tokens, tell its subscribers, then forget its subscriptions."""
    state = sandbox_state()
    revoked = state.revoke_tokens_of(member.uid for member in business.staff)
    subscriptions = state.subscriptions(business.uid)
    deliveries = []
    with requests.Session() as http:
        # Straight to the target, as vcita's servers would: no proxy from the environment.
        http.trust_env = False
        for subscription in subscriptions:
            if subscription.event == EVENT:
                delivery = deliver(http, subscription)
                state.record_delivery(delivery)
                deliveries.append(delivery)
    state.forget_subscriptions(subscriptions)
    return Uninstallation(business, revoked, deliveries)


def delivery_body(subscription: Subscription) -> dict[str, Any]:
    """Return the sandbox's body for an event: which event, for which business and app, when."""
    return {
        "event": subscription.event,
        "business_uid": subscription.business_uid,
        "client_id": subscription.client_id,
        "created_at": timestamp(datetime.now(UTC), "created_at"),
    }


def deliver(http: requests.Session, subscription: Subscription) -> dict[str, Any]:
    """POST the event to the subscription's target URL; return what was sent and how it went."""
    body = delivery_body(subscription)
    delivery: dict[str, Any] = {
        "event": subscription.event,
        "business_uid": subscription.business_uid,
        "target_url": subscription.target_url,
        "body": body,
        "status": None,
        "error": None,
        "delivered_at": time.time(),
    }
    try:
        response = http.post(
            subscription.target_url,
            data=json.dumps(body),
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
            timeout=DELIVERY_TIMEOUT,
            allow_redirects=False,
            stream=True,  # the answer's status is all that counts; its body is never read
        )
    except requests.RequestException as error:
        delivery["error"] = type(error).__name__
    else:
        delivery["status"] = response.status_code
        response.close()
    return delivery
