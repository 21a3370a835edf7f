"""POST /oauth/token: exchange an authorization code for an access token (guide step 3).

vcita documents a JSON body carrying all five fields. A Rails server such as vcita's also
parses a form-encoded body, and RFC 6749 §2.3.1 lets a client authenticate with HTTP Basic
instead, so the sandbox accepts all three. A client registered with a JWK Set URL
(SANDBOX_CLIENT_JWKS_URI, vcita's `client_auth_jwks_uri`) has no secret: it sends a signed
client_assertion instead (private_key_jwt, RFC 7523 §2.2), in either body. Errors follow
RFC 6749 §5.2 in vcita's shape, `{"error", "error_description"}`, and never repeat the
client secret or the assertion.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any
from urllib.parse import unquote_plus

from flask import Blueprint, Response, current_app, jsonify, request

from .client_assertion import ASSERTION_TYPE, AssertionRefused, verify_client_assertion
from .client_keys import ClientKeys, client_keys
from .recording import json_body, sandbox_state, serve_observed
from .state import InvalidGrant

bp = Blueprint("tokens", __name__)

# vcita's documented request (oauth-openapi.json), in its order.
REQUIRED_FIELDS = ("grant_type", "client_id", "client_secret", "code", "redirect_uri")
# With private_key_jwt the assertion stands in for the secret and names the client itself,
# so client_id may be left out (RFC 7523 §2.2).
ASSERTION_FIELDS = ("client_assertion_type", "client_assertion")
ASSERTION_REQUIRED_FIELDS = ("grant_type", *ASSERTION_FIELDS, "code", "redirect_uri")
OPTIONAL_FIELDS = ("code_verifier", *ASSERTION_FIELDS)
# The client authentication methods, by their registered names (RFC 7591 §2).
CLIENT_SECRET_POST = "client_secret_post"  # noqa: S105 - a method's name, not a secret
CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105 - a method's name, not a secret
PRIVATE_KEY_JWT = "private_key_jwt"
INVALID_CLIENT = "Client authentication failed. The client_id or client_secret is invalid."
SECRET_NOT_REGISTERED = (
    "Client authentication failed. This client is registered with a client_auth_jwks_uri"
    " (SANDBOX_CLIENT_JWKS_URI), so it has no client_secret to send: authenticate with"
    f" client_assertion_type={ASSERTION_TYPE} and a signed client_assertion (private_key_jwt)."
)
ASSERTION_NOT_REGISTERED = (
    "Client authentication failed. This client has no client_auth_jwks_uri registered"
    " (SANDBOX_CLIENT_JWKS_URI is unset): authenticate with its client_secret, not a"
    " client_assertion."
)


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
        params, method = token_request_parameters()
        client_id = authenticate_client(params, method)
        issued, seconds_left = sandbox_state().redeem_code(
            params["code"],
            client_id=client_id,
            redirect_uri=params["redirect_uri"],
            code_verifier=params.get("code_verifier"),
        )
    except TokenError as refusal:
        return token_error(refusal)
    except InvalidGrant as refusal:
        return token_error(TokenError(400, "invalid_grant", str(refusal)))
    # Doorkeeper's answer: expires_in is the time the token has left (20 years when new;
    # less when a reconnect gets a token back), created_at when it was first issued. No
    # refresh token is ever issued (guide step 3).
    return no_store(
        jsonify(
            access_token=issued.access_token,
            token_type="Bearer",  # noqa: S106 - a token type, not a password
            expires_in=seconds_left,
            created_at=int(issued.created_at),
        )
    )


def token_request_parameters() -> tuple[dict[str, str], str]:
    """Return the request's parameters (body and Basic credentials) and its client auth method."""
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
    if "client_secret" in params and any(name in params for name in ASSERTION_FIELDS):
        raise TokenError(
            400,
            "invalid_request",
            "Authenticate with a client_secret (in the body or HTTP Basic) or a"
            " client_assertion, not both.",
        )
    method = client_auth_method(params, used_basic=credentials is not None)
    if not params.get("grant_type"):
        raise TokenError(400, "invalid_request", "Missing required parameter: grant_type.")
    if params["grant_type"] != "authorization_code":
        raise TokenError(
            400, "unsupported_grant_type", "Only grant_type=authorization_code is supported."
        )
    required = ASSERTION_REQUIRED_FIELDS if method == PRIVATE_KEY_JWT else REQUIRED_FIELDS
    missing = [name for name in required if not params.get(name)]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise TokenError(
            400, "invalid_request", f"Missing required parameter{plural}: {', '.join(missing)}."
        )
    return params, method


def client_auth_method(params: dict[str, str], used_basic: bool) -> str:
    """Name the client authentication method the request uses; with none, the registered one."""
    if used_basic:
        return CLIENT_SECRET_BASIC
    if "client_secret" in params:
        return CLIENT_SECRET_POST
    if any(name in params for name in ASSERTION_FIELDS) or client_keys() is not None:
        return PRIVATE_KEY_JWT
    return CLIENT_SECRET_POST


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


def authenticate_client(params: dict[str, str], method: str) -> str:
    """Authenticate the one registered client by the method it registered; return its id.

    A client registered with a JWK Set URL has no secret-based method, and one without
    has no key to check an assertion with: either mismatch is invalid_client.
    """
    keys = client_keys()
    if method == PRIVATE_KEY_JWT:
        if keys is None:
            raise TokenError(401, "invalid_client", ASSERTION_NOT_REGISTERED)
        return check_client_assertion(params, keys)
    if keys is not None:
        raise TokenError(
            401, "invalid_client", SECRET_NOT_REGISTERED, basic=method == CLIENT_SECRET_BASIC
        )
    check_client_secret(params, used_basic=method == CLIENT_SECRET_BASIC)
    return params["client_id"]


def check_client_assertion(params: dict[str, str], keys: ClientKeys) -> str:
    """Verify a private_key_jwt assertion (RFC 7523 §3); return the client id it names."""
    config = current_app.config
    client_id = config["SANDBOX_CLIENT_ID"]
    if params["client_assertion_type"] != ASSERTION_TYPE:
        raise TokenError(
            401,
            "invalid_client",
            f"Client authentication failed. client_assertion_type must be {ASSERTION_TYPE}.",
        )
    if "client_id" in params and params["client_id"] != client_id:
        # RFC 7521 §4.2: a client_id sent beside an assertion must name the same client.
        raise TokenError(
            401,
            "invalid_client",
            "Client authentication failed. client_id must be the client_assertion's sub, the"
            " registered client; it may be left out.",
        )
    # aud: the issuer identifier, which names the server whatever URL a request took, or
    # this token endpoint's URL as the request reached it (RFC 7523 §3, item 3).
    audiences = [request.base_url, *filter(None, [config["SANDBOX_ISSUER"]])]
    try:
        verify_client_assertion(
            params["client_assertion"],
            client_id=client_id,
            audiences=audiences,
            keys=keys,
            spend_jti=sandbox_state().spend_assertion,
        )
    except AssertionRefused as refusal:
        raise TokenError(
            401, "invalid_client", f"Client authentication failed. {refusal}"
        ) from None
    return client_id


def check_client_secret(params: dict[str, str], used_basic: bool) -> None:
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
