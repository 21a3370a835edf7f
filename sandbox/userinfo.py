"""GET /oauth/userinfo: who approved, and for which business (guide step 4).

The token travels only in the `Authorization: Bearer` header (RFC 6750 §2.1); a missing,
unknown or revoked token gets 401 with a `WWW-Authenticate` challenge (RFC 6750 §3).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from .platform_api import bearer_token
from .recording import sandbox_state, serve_observed

bp = Blueprint("userinfo", __name__)


@bp.get("/oauth/userinfo")
def userinfo() -> Response:
    """Describe the token's staff member and business, recording the request."""
    return serve_observed("userinfo", describe_token_owner)


def describe_token_owner() -> Response:
    """Return vcita's userinfo body for the staff member who approved the token."""
    access_token = bearer_token()
    if access_token is None:
        return invalid_token("The request carries no Bearer access token.")
    staff_uid = sandbox_state().token_owner(access_token)
    directory = current_app.config["SANDBOX_DIRECTORY"]
    member = directory.staff_member(staff_uid)
    if member is None:
        return invalid_token("The access token is unknown or was revoked.")
    response = jsonify(directory.userinfo(member))
    response.headers["Cache-Control"] = "no-store"
    return response


def invalid_token(description: str) -> Response:
    """Return 401 invalid_token with the Bearer challenge (RFC 6750 §3.1)."""
    response = jsonify(error="invalid_token", error_description=description)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="vcita", error="invalid_token"'
    return response
