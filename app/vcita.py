"""The three steps of vcita's OAuth 2.0 flow, and the only module that imports Authlib.

Step 2 `authorization_url`, step 3 `exchange_code`, step 4 `fetch_userinfo`, as in
vcita's guide "OAuth 2.0 authorization Flow". Every failure leaves this module as one
of the `VcitaError` classes below, so views never see a transport or Authlib error.
"""

import base64
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote_plus

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
# vcita's answers nest two levels deep; far deeper JSON is no answer of vcita's.
MAX_JSON_DEPTH = 32
# vcita's tokens live about 20 years; created_at may differ from our clock by this much.
LONGEST_TOKEN_LIFETIME = timedelta(days=365 * 100)
PLAUSIBLE_CLOCK_SKEW = timedelta(days=1)
RETRY_AFTER = re.compile(r"[0-9]{1,9}")  # delay-seconds (RFC 9110 §10.2.3), nine digits at most


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
    userinfo = _json_body(response, "userinfo")
    if response.status_code != 200 or not isinstance(userinfo, dict):
        raise VcitaUnavailable(
            f"userinfo answered HTTP {response.status_code} without the documented JSON object"
        )
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
    session.register_client_auth_method(("client_secret_basic", _client_secret_basic))
    session.register_compliance_hook("access_token_response", _check_token_response)
    session.hooks["response"].append(trace.record_exchange)
    transport = current_app.extensions["vcita_transport"]
    session.mount("https://", transport)
    session.mount("http://", transport)
    return session


def _client_secret_basic(client, method, uri, headers, body):
    """Authenticate with HTTP Basic as RFC 6749 §2.3.1 says: each part form-encoded first.

    Authlib sends the id and secret as they are, in Latin-1: a secret holding `%`, `+`
    or a space would then reach a compliant server altered, and one holding a
    character beyond Latin-1 could not be sent at all.
    """
    credentials = f"{quote_plus(client.client_id)}:{quote_plus(client.client_secret)}"
    headers["Authorization"] = f"Basic {base64.b64encode(credentials.encode()).decode()}"
    return uri, headers, body


def _client_secret_json(client, method, uri, headers, body):
    """Authenticate as vcita documents: all five fields in one JSON body (guide step 3)."""
    fields = dict(url_decode(body))
    fields["client_id"] = client.client_id
    fields["client_secret"] = client.client_secret
    headers["Content-Type"] = "application/json"
    return uri, headers, json.dumps(fields)


def _check_token_response(response: requests.Response) -> requests.Response:
    """Turn a throttled or failing token endpoint, or unreadable JSON, into VcitaUnavailable.

    Authlib parses the body next; only a body that parses safely reaches it.
    """
    _raise_for_unavailable(response, "token endpoint")
    token = _json_body(response, "token endpoint")
    for name in ("expires_in", "expires_at") if isinstance(token, dict) else ():
        # Authlib turns these into whole seconds with int(): Infinity, NaN, text or a
        # list would raise there, deep inside fetch_token, as no error of ours.
        if token.get(name) is not None and not _is_whole_seconds(token[name]):
            raise VcitaUnavailable(f"token response's {name} is no number of seconds")
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
    # ASCII digits only: "²".isdigit() is true, and int() refuses it.
    return int(value) if value and RETRY_AFTER.fullmatch(value) else None


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
    now = datetime.now(UTC)
    issued_at = _issued_at(token.get("created_at"), now)
    return AccessToken(access_token, "Bearer", issued_at, _expires_at(issued_at, token))


def _issued_at(created_at, now: datetime) -> datetime:
    """Return vcita's `created_at`, or now when it is absent or no plausible moment.

    A clock a little off is fine; a timestamp a day or more from now (the year 9999,
    1970) is no moment a token was just issued at, and would make its expiry overflow.
    """
    if not _is_number(created_at) or not math.isfinite(created_at):
        return now
    if abs(created_at - now.timestamp()) > PLAUSIBLE_CLOCK_SKEW.total_seconds():
        return now
    return datetime.fromtimestamp(created_at, UTC)


def _expires_at(issued_at: datetime, token: dict) -> datetime | None:
    """Return when the token expires, or None when vcita states no usable lifetime.

    vcita's tokens live about 20 years; a lifetime past LONGEST_TOKEN_LIFETIME (1e20 s,
    Infinity) is no lifetime a calendar can hold, so it counts as not stated.
    """
    expires_in = token.get("expires_in")
    if not _is_number(expires_in) or not math.isfinite(expires_in):
        return None
    if not 0 <= expires_in <= LONGEST_TOKEN_LIFETIME.total_seconds():
        return None
    return issued_at + timedelta(seconds=expires_in)


def _is_whole_seconds(value) -> bool:
    try:
        int(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _json_body(response: requests.Response, endpoint: str):
    """Parse an answer of vcita's as JSON, or raise VcitaUnavailable.

    Every JSON value is read safely: deep nesting (which would exhaust Python's
    recursion), numbers too long to convert, and escaped lone surrogates that no page
    or database can hold are all "something other than vcita's documented JSON".
    """
    try:
        value = json.loads(response.content)
    except (ValueError, RecursionError) as error:
        raise VcitaUnavailable(f"{endpoint} answered something other than JSON") from error
    if _depth(value) > MAX_JSON_DEPTH:
        raise VcitaUnavailable(f"{endpoint} answered JSON nested deeper than vcita's")
    if not _is_unicode(value):
        raise VcitaUnavailable(f"{endpoint} answered strings that are not valid Unicode")
    return value


def _depth(value) -> int:
    """Return how deeply a parsed JSON value nests, without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list) and depth <= MAX_JSON_DEPTH:
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
        elif isinstance(item, dict | list):
            return depth
    return deepest
