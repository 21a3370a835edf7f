"""The three steps of vcita's OAuth 2.0 flow, and the only module that imports Authlib.

Step 2 `authorization_url`, step 3 `exchange_code`, step 4 `fetch_userinfo`, as in
vcita's guide "OAuth 2.0 authorization Flow". Every failure leaves this module as one
of the `VcitaError` classes below, so views never see a transport or Authlib error.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import requests
from authlib.common.urls import url_decode
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from flask import Flask, current_app

from . import trace

# (connect, read) seconds. vcita's codes live 30 seconds, so the exchange must give up
# well inside that: a late answer is useless, and the user can simply try again.
EXCHANGE_TIMEOUT = (3.05, 10)
API_TIMEOUT = (3.05, 10)
# RFC 6749 Appendix A.12: access-token = 1*VSCHAR. Anything else (a line break, a lone
# surrogate) could not be sent back in an Authorization header, nor stored.
ACCESS_TOKEN = re.compile(r"[\x20-\x7e]+")


class VcitaError(Exception):
    """vcita did not give us what the flow needs."""


class CodeRejected(VcitaError):
    """vcita answered `invalid_grant`: the code expired (30 s), was used, or is foreign."""


class ClientRejected(VcitaError):
    """vcita answered `invalid_client`: our client id or secret is wrong."""


class VcitaRefused(VcitaError):
    """vcita answered with an OAuth error or a 403 that retrying will not fix."""


class VcitaUnavailable(VcitaError):
    """vcita timed out, was unreachable, failed (5xx, 429) or broke its documented JSON."""

    def __init__(self, reason: str, retry_after: int | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class AccessRevoked(VcitaError):
    """vcita answered 401 to the token: the business revoked access."""


@dataclass(frozen=True)
class AccessToken:
    """An access token as vcita issued it in step 3."""

    access_token: str = field(repr=False)
    token_type: str
    issued_at: datetime
    expires_at: datetime | None


def init_app(app: Flask) -> None:
    """Create the one HTTP transport that every call to vcita shares.

    A shared adapter keeps TLS connections to vcita alive across requests and
    threads (urllib3's pool is thread-safe), instead of a new handshake for every
    token exchange and userinfo call.
    """
    app.extensions["vcita_transport"] = requests.adapters.HTTPAdapter(
        pool_connections=4, pool_maxsize=32
    )


def authorization_url(state: str, code_verifier: str | None = None) -> str:
    """Step 2: build the URL that sends the browser to vcita's consent page."""
    config = current_app.config
    url, _ = _oauth_session().create_authorization_url(
        config["VCITA_AUTHORIZE_URL"], state=state, code_verifier=code_verifier
    )
    return url


def exchange_code(code: str, code_verifier: str | None = None) -> AccessToken:
    """Step 3: trade the authorization code for an access token, once."""
    config = current_app.config
    trace.remember_secret(code, code_verifier)
    extra = {"code_verifier": code_verifier} if code_verifier else {}
    try:
        token = _oauth_session().fetch_token(
            config["VCITA_TOKEN_URL"],
            grant_type="authorization_code",
            code=code,
            redirect_uri=config["VCITA_REDIRECT_URI"],
            timeout=EXCHANGE_TIMEOUT,
            **extra,
        )
    except OAuthError as error:
        if error.error == "invalid_grant":
            raise CodeRejected(error.error) from error
        if error.error == "invalid_client":
            raise ClientRejected(error.error) from error
        raise VcitaRefused(f"token endpoint answered {error.error}") from error
    except requests.HTTPError as error:
        raise VcitaUnavailable(
            f"token endpoint answered HTTP {error.response.status_code}"
        ) from error
    except requests.RequestException as error:
        raise VcitaUnavailable(f"token endpoint unreachable: {type(error).__name__}") from error
    except ValueError as error:  # Authlib: the body is not a JSON object
        raise VcitaUnavailable("token endpoint answered something other than JSON") from error
    return _access_token_from(token)


def fetch_userinfo(token: AccessToken) -> dict:
    """Step 4: read the business and staff member behind a token from vcita."""
    session = _oauth_session(
        token={"access_token": token.access_token, "token_type": token.token_type}
    )
    try:
        response = session.get(current_app.config["VCITA_USERINFO_URL"], timeout=API_TIMEOUT)
    except requests.RequestException as error:
        raise VcitaUnavailable(f"userinfo unreachable: {type(error).__name__}") from error
    if response.status_code == 401:
        raise AccessRevoked("userinfo answered 401")
    if response.status_code == 403:
        raise VcitaRefused("userinfo answered 403")
    _raise_for_unavailable(response, "userinfo")
    try:
        userinfo = response.json()
    except ValueError as error:
        raise VcitaUnavailable("userinfo answered something other than JSON") from error
    if response.status_code != 200 or not isinstance(userinfo, dict):
        raise VcitaUnavailable(
            f"userinfo answered HTTP {response.status_code} without the documented JSON object"
        )
    if not _is_unicode(userinfo):
        raise VcitaUnavailable("userinfo answered strings that are not valid Unicode")
    return userinfo


def _oauth_session(token: dict | None = None) -> OAuth2Session:
    """Return an Authlib session for one call, on the app's shared transport.

    A session per call, because an OAuth2Session holds one token and is not meant
    to be shared between threads serving different businesses.
    """
    config = current_app.config
    session = OAuth2Session(
        client_id=config["VCITA_CLIENT_ID"],
        client_secret=config["VCITA_CLIENT_SECRET"],
        redirect_uri=config["VCITA_REDIRECT_URI"],
        scope=config["VCITA_SCOPE"],
        token_endpoint_auth_method=config["VCITA_TOKEN_AUTH_METHOD"],
        code_challenge_method="S256",
        token=token,
    )
    session.register_client_auth_method(("client_secret_json", _client_secret_json))
    session.register_compliance_hook("access_token_response", _check_token_response)
    session.hooks["response"].append(trace.record_exchange)
    transport = current_app.extensions["vcita_transport"]
    session.mount("https://", transport)
    session.mount("http://", transport)
    return session


def _client_secret_json(client, method, uri, headers, body):
    """Authenticate as vcita documents: all five fields in one JSON body (guide step 3)."""
    fields = dict(url_decode(body))
    fields["client_id"] = client.client_id
    fields["client_secret"] = client.client_secret
    headers["Content-Type"] = "application/json"
    return uri, headers, json.dumps(fields)


def _check_token_response(response: requests.Response) -> requests.Response:
    """Turn a throttled or failing token endpoint into VcitaUnavailable before parsing."""
    _raise_for_unavailable(response, "token endpoint")
    return response


def _raise_for_unavailable(response: requests.Response, endpoint: str) -> None:
    if response.status_code == 429:
        raise VcitaUnavailable(
            f"{endpoint} answered 429",
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )
    if response.status_code >= 500:
        raise VcitaUnavailable(f"{endpoint} answered HTTP {response.status_code}")


def _retry_after(value: str | None) -> int | None:
    # Only the delay-seconds form; an HTTP-date is rare from APIs and not worth parsing.
    return int(value) if value and value.isdigit() else None


def _is_unicode(value) -> bool:
    """Say whether JSON text holds only real characters: it can then be stored and shown.

    JSON may escape a lone surrogate ("\\ud800"), which no UTF-8 page or database
    accepts (RFC 8259 §8.2).
    """
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _access_token_from(token: dict) -> AccessToken:
    """Check the token response has vcita's documented shape, and read it."""
    access_token = token.get("access_token")
    token_type = token.get("token_type")
    if not isinstance(access_token, str) or not ACCESS_TOKEN.fullmatch(access_token):
        raise VcitaUnavailable("token response has no valid access_token")
    # vcita's OpenAPI says "Bearer", its guide "bearer": RFC 6749 §5.1 makes it
    # case-insensitive.
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise VcitaUnavailable("token response is not a bearer token")
    issued_at = _timestamp(token.get("created_at")) or datetime.now(UTC)
    expires_in = token.get("expires_in")
    expires_at = None
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        expires_at = issued_at + timedelta(seconds=expires_in)
    return AccessToken(access_token, "Bearer", issued_at, expires_at)


def _timestamp(value) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None
