"""/_sandbox/*: control the sandbox over HTTP, for tests and load scripts.

Registered only when SANDBOX_CONTROL is true; otherwise these paths are 404 like any
unknown one. They do over HTTP what in-process tests do on `SandboxState` directly.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from .recording import sandbox_state

bp = Blueprint("control", __name__, url_prefix="/_sandbox")

MASK = "********"
# client_secret=... or "client_secret": "..." inside a body the sandbox could not parse.
SECRET_IN_TEXT = re.compile(r"""(client_secret["']?\s*[:=]\s*["']?)[^&"'\s,}]+""")


@bp.post("/faults")
def set_fault() -> tuple[Response, int]:
    """Inject a fault: {"endpoint": "token" | "userinfo", ...spec}."""
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
    """Return what the token and userinfo endpoints received, with the secret masked."""
    secret = current_app.config["SANDBOX_CLIENT_SECRET"]
    state = sandbox_state()
    return jsonify(
        token=[masked(record, secret) for record in state.token_requests],
        userinfo=[masked(record, secret) for record in state.userinfo_requests],
    )


@bp.post("/reset")
def reset() -> tuple[str, int]:
    """Forget every request, code, token, recording and fault."""
    sandbox_state().reset()
    return "", 204


@bp.post("/revoke")
def revoke() -> Response:
    """Revoke every access token, as when the business removes the app."""
    return jsonify(revoked=sandbox_state().revoke_all_tokens())


def control_error(description: str) -> tuple[Response, int]:
    """Return a 400 JSON error for a malformed control request."""
    return jsonify(error="invalid_request", error_description=description), 400


def masked(value: Any, secret: str) -> Any:
    """Return a copy with client secrets hidden: fields, Basic credentials, the secret itself."""
    if isinstance(value, dict):
        return {
            key: MASK if key == "client_secret" else _masked_entry(key, item, secret)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [masked(item, secret) for item in value]
    if isinstance(value, str):
        return SECRET_IN_TEXT.sub(rf"\g<1>{MASK}", value.replace(secret, MASK))
    return value


def _masked_entry(key: str, value: Any, secret: str) -> Any:
    if key.lower() == "authorization" and isinstance(value, str):
        scheme, _, _ = value.partition(" ")
        if scheme.lower() == "basic":
            return f"{scheme} {MASK}"
    return masked(value, secret)
