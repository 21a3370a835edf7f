"""What the /platform/v1 endpoints share: whose token a call carries, and vcita's answers.

vcita's legacy platform API answers `{"status": "OK", "data": {...}}` and refuses with
`{"status": "Error", "error": "..."}` (clients-openapi.json). The token travels as for
userinfo, only in `Authorization: Bearer` (RFC 6750 §2.1); a missing, unknown or revoked
one gets 401 with the same challenge as userinfo (RFC 6750 §3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Response, current_app, jsonify, request

from .directory import Business, StaffMember
from .recording import sandbox_state


@dataclass(frozen=True)
class Caller:
    """Who a platform API call acts for: the token's business, staff member and app."""

    business: Business
    member: StaffMember
    client_id: str


def bearer_token() -> str | None:
    """Return the token from `Authorization: Bearer <token>`, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    # RFC 9110 §11.1: the scheme name is case-insensitive.
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def calling_app() -> Caller | None:
    """Return who the request's Bearer token acts for, or None if it has no active one."""
    access_token = bearer_token()
    grant = sandbox_state().active_token(access_token) if access_token else None
    directory = current_app.config["SANDBOX_DIRECTORY"]
    member = directory.staff_member(grant.staff_uid) if grant else None
    if grant is None or member is None:
        return None
    return Caller(directory.business_of(member), member, grant.client_id)


def ok(data: Any = None) -> Response:
    """Answer `{"status": "OK"}`, with `data` when there is some; never cached."""
    response = jsonify(status="OK") if data is None else jsonify(status="OK", data=data)
    response.headers["Cache-Control"] = "no-store"
    return response


def refusal(status: int, error: str) -> Response:
    """Answer vcita's legacy error, `{"status": "Error", "error": ...}`."""
    response = jsonify(status="Error", error=error)
    response.status_code = status
    return response


def unauthorized() -> Response:
    """Answer 401 with userinfo's Bearer challenge and vcita's legacy error body."""
    response = refusal(401, "Unauthorized")
    response.headers["WWW-Authenticate"] = 'Bearer realm="vcita", error="invalid_token"'
    return response
