"""POST /oauth/token: exchange an authorization code for an access token (guide step 3).

vcita documents a JSON body carrying all five fields. A Rails server such as vcita's also
parses a form-encoded body, and RFC 6749 §2.3.1 lets a client authenticate with HTTP Basic
instead, so the sandbox accepts all three. Errors follow RFC 6749 §5.2 in vcita's shape,
`{"error", "error_description"}`, and never repeat the client secret.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any
from urllib.parse import unquote_plus

from flask import Blueprint, Response, current_app, jsonify, request

from .recording import json_body, sandbox_state, serve_observed
from .state import InvalidGrant

bp = Blueprint("tokens", __name__)

# vcita's documented request (oauth-openapi.json), in its order.
REQUIRED_FIELDS = ("grant_type", "client_id", "client_secret", "code", "redirect_uri")
OPTIONAL_FIELDS = ("code_verifier",)
# vcita's tokens last about 20 years; no refresh token is ever issued (guide step 3).
EXPIRES_IN = 631139040
INVALID_CLIENT = "Client authentication failed. The client_id or client_secret is invalid."


class TokenError(Exception):
    """A token request to refuse with an OAuth error (RFC 6749 §5.2)."""

    def __init__(self, status: int, error: str, description: str, basic: bool = False) -> None:
        super().__init__(description)
        self.status, self.error, self.description, self.basic = status, error, description, basic


@bp.post("/oauth/token")
def token() -> Response:
    """Exchange a code for an access token, recording the request."""
    return serve_observed("token", exchange_code)


def exchange_code() -> Response:
    """Check the request, client and code, then issue a token (RFC 6749 §4.1.3-4.1.4)."""
    try:
        params, used_basic = token_request_parameters()
        check_client(params, used_basic)
        issued = sandbox_state().redeem_code(
            params["code"],
            client_id=params["client_id"],
            redirect_uri=params["redirect_uri"],
            code_verifier=params.get("code_verifier"),
        )
    except TokenError as refusal:
        return token_error(refusal)
    except InvalidGrant as refusal:
        return token_error(TokenError(400, "invalid_grant", str(refusal)))
    return no_store(
        jsonify(
            access_token=issued.access_token,
            token_type="Bearer",  # noqa: S106 - a token type, not a password
            expires_in=EXPIRES_IN,
            created_at=issued.created_at,
        )
    )


def token_request_parameters() -> tuple[dict[str, str], bool]:
    """Return the request's parameters (body and Basic credentials) and whether Basic was used."""
    params = body_parameters()
    credentials = basic_credentials()
    if credentials is not None:
        if "client_secret" in params:
            # RFC 6749 §2.3: one authentication method per request.
            raise TokenError(
                400, "invalid_request", "Send client_secret in the body or HTTP Basic, not both."
            )
        if params.get("client_id", credentials[0]) != credentials[0]:
            raise TokenError(400, "invalid_request", "client_id differs from HTTP Basic.")
        params["client_id"], params["client_secret"] = credentials
    if not params.get("grant_type"):
        raise TokenError(400, "invalid_request", "Missing required parameter: grant_type.")
    if params["grant_type"] != "authorization_code":
        raise TokenError(
            400, "unsupported_grant_type", "Only grant_type=authorization_code is supported."
        )
    missing = [name for name in REQUIRED_FIELDS if not params.get(name)]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise TokenError(
            400, "invalid_request", f"Missing required parameter{plural}: {', '.join(missing)}."
        )
    return params, credentials is not None


def body_parameters() -> dict[str, str]:
    """Return the JSON or form body as text fields; refuse anything else."""
    if request.is_json:
        _, body = json_body()
        if not isinstance(body, dict):
            raise TokenError(400, "invalid_request", "The body must be a JSON object.")
        fields: dict[str, Any] = body
    elif request.mimetype == "application/x-www-form-urlencoded":
        repeated = [name for name, values in request.form.lists() if len(values) > 1]
        if repeated:
            # RFC 6749 §3.2: parameters must not be included more than once.
            raise TokenError(400, "invalid_request", f"Repeated parameter: {repeated[0]}.")
        fields = request.form.to_dict()
    else:
        raise TokenError(
            400,
            "invalid_request",
            "Send the parameters as application/json (as vcita documents)"
            " or application/x-www-form-urlencoded.",
        )
    known = {name: fields[name] for name in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS) if name in fields}
    wrong_type = [name for name, value in known.items() if not isinstance(value, str)]
    if wrong_type:
        raise TokenError(400, "invalid_request", f"{wrong_type[0]} must be a string.")
    return known


def basic_credentials() -> tuple[str, str] | None:
    """Return (client_id, client_secret) from HTTP Basic, or None if it was not used."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    client_id, colon, client_secret = decoded.partition(":")
    if not colon or not client_id:
        raise TokenError(401, "invalid_client", "Malformed HTTP Basic credentials.", basic=True)
    # RFC 6749 §2.3.1: both are form-urlencoded before being joined with a colon.
    return unquote_plus(client_id), unquote_plus(client_secret)


def check_client(params: dict[str, str], used_basic: bool) -> None:
    """Authenticate the one registered client, in constant time (RFC 6749 §2.3.1)."""
    config = current_app.config
    id_ok = hmac.compare_digest(params["client_id"].encode(), config["SANDBOX_CLIENT_ID"].encode())
    secret_ok = hmac.compare_digest(
        params["client_secret"].encode(), config["SANDBOX_CLIENT_SECRET"].encode()
    )
    if not (id_ok and secret_ok):
        raise TokenError(401, "invalid_client", INVALID_CLIENT, basic=used_basic)


def token_error(refusal: TokenError) -> Response:
    """Return an OAuth error body, with the challenge Basic clients expect on a 401."""
    response = jsonify(error=refusal.error, error_description=refusal.description)
    response.status_code = refusal.status
    if refusal.status == 401 and refusal.basic:
        # RFC 6749 §5.2: a client that tried HTTP Basic gets the matching challenge.
        response.headers["WWW-Authenticate"] = 'Basic realm="vcita"'
    return no_store(response)


def no_store(response: Response) -> Response:
    """Forbid caching of token responses (RFC 6749 §5.1)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
