"""/_sandbox/*: control the sandbox over HTTP, for tests and load scripts.

Registered only when SANDBOX_CONTROL is true; otherwise these paths are 404 like any
unknown one. They do over HTTP what in-process tests do on `SandboxState` directly.

Even when on, they answer only this machine: a loopback peer that names a loopback host
(so a web page cannot reach them through DNS rebinding), never a cross-site request
(a page's form post or fetch), and what they return has every credential masked.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flask import Blueprint, Response, abort, current_app, jsonify, request

from .client_records import client_record
from .faults import FAULT_ENDPOINTS
from .recording import sandbox_state
from .uninstall import uninstall_app

bp = Blueprint("control", __name__, url_prefix="/_sandbox")

MASK = "********"
# Fields and headers that hold a credential or a one-time value, wherever they appear.
CREDENTIALS = {
    "client_secret",
    "code",
    "state",
    "code_verifier",
    "access_token",
    "token",  # the body of POST /platform/v1/tokens/revoke
    "refresh_token",
    "id_token",
    "client_assertion",
    "password",
    "authorization",
    "cookie",
}
# name=... or "name": "..." inside a body the sandbox could not parse.
CREDENTIAL_IN_TEXT = re.compile(
    rf"""((?:{"|".join(sorted(CREDENTIALS))})["']?\s*[:=]\s*["']?)[^&"'\s,}}]+""",
    re.IGNORECASE,
)


@bp.before_request
def only_from_this_machine() -> tuple[Response, int] | None:
    """Answer only loopback peers naming a loopback host, and never a cross-site request."""
    if not (
        _is_loopback(request.remote_addr) and _is_loopback(urlsplit(f"//{request.host}").hostname)
    ):
        abort(404)  # for anyone else, these endpoints do not exist
    fetched_from = request.headers.get("Sec-Fetch-Site", "none")
    origin = request.headers.get("Origin")
    if fetched_from not in ("none", "same-origin") or (
        origin is not None and origin != request.host_url.rstrip("/")
    ):
        return control_error("Control endpoints refuse cross-site requests.", 403)
    if request.content_length and not request.is_json:
        # A page can post a form or text/plain across sites without asking; not JSON.
        return control_error("Send control requests as application/json.", 415)
    return None


@bp.post("/faults")
def set_fault() -> tuple[Response, int]:
    """Inject a fault: {"endpoint": one of FAULT_ENDPOINTS, ...spec}."""
    spec = request.get_json(silent=True)
    if not isinstance(spec, dict):
        return control_error('Send a JSON object: {"endpoint": ..., ...spec}.')
    try:
        fault = sandbox_state().set_fault(spec.pop("endpoint", None), **spec)
    except ValueError as problem:
        return control_error(str(problem))
    return jsonify(fault=fault.describe()), 201


@bp.delete("/faults")
def clear_faults() -> tuple[str, int]:
    """Remove every fault."""
    sandbox_state().clear_faults()
    return "", 204


@bp.get("/requests")
def recorded_requests() -> Response:
    """Return what each API endpoint received, by endpoint, every credential masked."""
    state = sandbox_state()
    known = {current_app.config["SANDBOX_CLIENT_SECRET"], *state.issued_secrets()}
    return jsonify(
        {
            endpoint: [masked(record, known) for record in state.recorded_requests(endpoint)]
            for endpoint in FAULT_ENDPOINTS
        }
    )


@bp.post("/clients")
def add_client() -> tuple[Response, int]:
    """Add a client to a business: {"business_uid": ..., "client": {...vcita's fields}}.

    Tests plant what a business could type (markup, odd types) and see the app cope.
    """
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return control_error('Send a JSON object: {"business_uid": ..., "client": {...}}.')
    business = current_app.config["SANDBOX_DIRECTORY"].business(payload.get("business_uid"))
    if business is None:
        return control_error("business_uid must be one of the demo businesses.")
    try:
        record = client_record(payload.get("client"), business.uid)
        taken = (client["id"] for client in business.clients)
        sandbox_state().add_client(business.uid, record, taken_ids=taken)
    except ValueError as problem:
        return control_error(str(problem))
    return jsonify(client=record), 201


@bp.get("/webhooks")
def subscriptions() -> Response:
    """Return every webhook subscription, of every business, oldest first."""
    return jsonify(webhooks=[held.describe() for held in sandbox_state().subscriptions()])


@bp.post("/uninstall")
def uninstall() -> Response | tuple[Response, int]:
    """Uninstall the app from a business: {"business_uid": ...} (see sandbox.uninstall)."""
    payload = request.get_json(silent=True)
    business_uid = payload.get("business_uid") if isinstance(payload, dict) else None
    business = current_app.config["SANDBOX_DIRECTORY"].business(business_uid)
    if business is None:
        return control_error('Send {"business_uid": ...} naming one of the demo businesses.')
    return jsonify(uninstall_app(business).describe())


@bp.get("/deliveries")
def deliveries() -> Response:
    """Return every webhook delivery made, oldest first, with its status or error."""
    return jsonify(deliveries=sandbox_state().deliveries)


@bp.post("/revoke")
def revoke() -> Response:
    """Revoke every access token, as when the business removes the app."""
    return jsonify(revoked=sandbox_state().revoke_all_tokens())


@bp.post("/reset")
def reset() -> tuple[str, int]:
    """Forget every request, code, token, recording and fault."""
    sandbox_state().reset()
    return "", 204


def control_error(description: str, status: int = 400) -> tuple[Response, int]:
    """Return a JSON error for a control request that is malformed or refused."""
    return jsonify(error="invalid_request", error_description=description), status


def masked(value: Any, known: set[str]) -> Any:
    """Return a copy with every credential masked: by field name first, then known values.

    A credential field's value is masked whatever it holds; the query string is parsed
    and masked the same way; a body that could not be parsed has name=value pairs and
    every known secret (the client secret, issued codes and tokens) masked in its text.
    """
    if isinstance(value, dict):
        return {key: _masked_entry(key, item, known) for key, item in value.items()}
    if isinstance(value, list):
        return [masked(item, known) for item in value]
    if isinstance(value, str):
        for secret in sorted(filter(None, known), key=len, reverse=True):
            value = value.replace(secret, MASK)
        return CREDENTIAL_IN_TEXT.sub(rf"\g<1>{MASK}", value)
    return value


def _masked_entry(key: str, value: Any, known: set[str]) -> Any:
    if key.lower() in CREDENTIALS:
        if key.lower() == "authorization" and isinstance(value, str) and " " in value:
            return f"{value.split(' ', 1)[0]} {MASK}"  # the scheme says what kind it was
        return MASK
    if key == "query_string" and isinstance(value, str):
        pairs = parse_qsl(value, keep_blank_values=True)
        return "&".join(f"{k}={MASK if k.lower() in CREDENTIALS else v}" for k, v in pairs)
    return masked(value, known)


def _is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False
