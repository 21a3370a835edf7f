"""POST /platform/v1/tokens/revoke: vcita's "Revoke Token", as its platform API documents it.

Source: vcita/developers-hub `swagger/platform_administration/legacy/legacy_v1_platform.json`,
"Revoke Token" (the shared README on vcita, "Revoking a token"). The bearer token in
`Authorization: Bearer` asks; the JSON body `{"token": "…"}` names the access token to revoke.
- 201 `{"status": "OK", "data": {"revoked_tokens": ["…"]}}`: revoked; from then on it gets
  401 everywhere, and the staff member sees the consent page again on the next connect.
- 422 `{"status": "Error", "error": "invalid token"}`: no such live token (never issued,
  already revoked, expired), or no token in the body.
- 422 `{"status": "Error", "error": "Unauthorized"}`: the bearer may not revoke it. "Staff
  tokens can revoke tokens associated with the authenticated user": a token of another
  staff member is refused.
- 401 `{"status": "Error", "message": "Unauthorized"}`: the bearer token itself is not
  accepted (missing, unknown, revoked or expired), with userinfo's Bearer challenge.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from .platform_api import bearer_token, refusal
from .recording import json_body, sandbox_state, serve_observed
from .state import Revocation

bp = Blueprint("revocation", __name__, url_prefix="/platform/v1")


@bp.post("/tokens/revoke")
def revoke() -> Response:
    """Revoke the token the body names, for the bearer token, recording the request."""
    return serve_observed("revoke", revoke_token)


def revoke_token() -> Response:
    """Answer as vcita does: 201 revoked, 422 invalid token or Unauthorized, 401."""
    bearer = bearer_token()
    parsed, body = json_body()
    token = body.get("token") if parsed and isinstance(body, dict) else None
    if bearer is None:
        return bearer_not_accepted()
    # Who asks is checked first; a body naming no token names no token vcita knows.
    outcome = sandbox_state().revoke_token(bearer, token if isinstance(token, str) else "")
    if outcome is Revocation.BEARER_NOT_ACCEPTED:
        return bearer_not_accepted()
    if outcome is Revocation.UNKNOWN:
        return refusal(422, "invalid token")
    if outcome is Revocation.NOT_ALLOWED:
        return refusal(422, "Unauthorized")
    response = jsonify(status="OK", data={"revoked_tokens": [token]})
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


def bearer_not_accepted() -> Response:
    """Answer 401 `{"status": "Error", "message": "Unauthorized"}`, as vcita documents."""
    response = jsonify(status="Error", message="Unauthorized")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="vcita", error="invalid_token"'
    return response
