"""vcita's OAuth 2.0 flow, client side: one module to copy into any Python web app.

The steps of vcita's guide "OAuth 2.0 authorization Flow": step 2
`authorization_url`, the callback's rules `code_from_callback`, step 3
`exchange_code`, step 4 `fetch_userinfo`, then any API call (`api_get`, `api_post`,
`api_pages`), and `revoke_token` when a connection ends. It imports only Authlib,
requests (and its urllib3) and the standard library, and every failure leaves it as one
of the `VcitaError` classes below. In your own Flask app:

    import secrets
    from flask import Flask, redirect, request, session
    import vcita  # this file, copied beside your app

    app = Flask(__name__)
    app.secret_key = "…"
    client = vcita.VcitaClient(vcita.VcitaSettings(
        client_id="…", client_secret="…", redirect_uri="https://you.example/callback"))

    @app.get("/connect")
    def connect():
        session["state"] = state = vcita.new_state()
        return redirect(client.authorization_url(state))

    @app.get("/callback")
    def callback():
        expected, sent = session.pop("state", ""), request.args.get("state", "")
        pending = expected and secrets.compare_digest(expected.encode(), sent.encode())
        code = client.code_from_callback(request.args, pending_flow=pending or None)
        token = client.exchange_code(code)  # at once: vcita's codes live 30 seconds
        return client.fetch_userinfo(token)  # keep token.access_token, encrypted

`tests/test_client_module.py` runs exactly this against the sandbox, from a copy of
this file alone.

The module reads top-down: what can go wrong, what the client is built from, the
client itself, then how it authenticates to vcita, its transport and retries, and how
it reads vcita's answers safely.
"""

import base64
import json
import math
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from types import TracebackType
from typing import Any, Protocol, Self, TypeGuard, TypeVar, runtime_checkable
from urllib.parse import quote_plus

import requests
from authlib.common.urls import url_decode
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

# --- What can go wrong, in vcita's terms --------------------------------------------------


class VcitaError(Exception):
    """The flow with vcita could not go on."""


class InvalidCallback(VcitaError):
    """The callback's state is missing, unknown, expired, reused, or the answer is malformed."""


class AccessDenied(VcitaError):
    """The person pressed Deny on vcita's consent page (`error=access_denied`)."""


class ProviderError(VcitaError):
    """vcita sent the person back with an OAuth error other than access_denied."""


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


class NotFound(VcitaRefused):
    """vcita answered 404: no such API path, or no such record of this business."""


class RevocationRefused(VcitaRefused):
    """vcita answered a revoke 422 "Unauthorized": this token may not revoke that one."""


class Revocation(Enum):
    """What vcita answered `revoke_token`: each answer means it no longer accepts the token."""

    REVOKED = "vcita revoked the token"  # 201
    UNKNOWN = "vcita knows no such token: nothing was left to revoke"  # 422 "invalid token"
    ALREADY_DEAD = "vcita no longer accepted the token"  # 401: the token, as the bearer


# vcita's "Revoke Token" (legacy_v1_platform.json); it documents no RFC 7009 endpoint for apps.
REVOKE_PATH = "/platform/v1/tokens/revoke"


# --- What the client is built from, and what it hands back --------------------------------

AUTHORIZE_URL = "https://app.vcita.com/app/oauth/authorize"
TOKEN_URL = "https://api.vcita.biz/oauth/token"  # noqa: S105 - a URL, not a secret
USERINFO_URL = "https://api.vcita.biz/oauth/userinfo"
API_URL = "https://api.vcita.biz"  # vcita's REST API: /platform/v1/…
# White-label businesses sign in on their partner's host (vcita's `brand_host`).
BRAND_AUTHORIZE_URL = "https://{brand_host}/app/oauth/authorize"
# How the token endpoint knows your app (see "Client authentication" below).
TOKEN_AUTH_METHODS = (
    "client_secret_json",
    "client_secret_post",
    "client_secret_basic",
    "private_key_jwt",  # RFC 7523: a signed assertion, no shared secret (client_auth_jwks_uri)
)
PRIVATE_KEY_JWT = TOKEN_AUTH_METHODS[3]
# (connect, read) seconds. vcita's codes live 30 seconds, so the exchange must give up
# well inside that: a late answer is useless, and the user can simply try again.
TIMEOUT = (3.05, 10)

# A JSON Web Key (RFC 7517) as a plain dict: "kty", "kid", and its key's members.
JWK = dict[str, Any]


@dataclass(frozen=True)
class VcitaSettings:
    """Everything the client needs to know: your app's registration with vcita."""

    client_id: str
    client_secret: str | None = field(repr=False)  # None with private_key_jwt
    redirect_uri: str  # exactly as registered with vcita, in step 2 and step 3 alike
    authorize_url: str = AUTHORIZE_URL
    token_url: str = TOKEN_URL
    userinfo_url: str = USERINFO_URL
    token_auth_method: str = TOKEN_AUTH_METHODS[0]  # vcita documents the JSON body
    scope: str | None = None
    use_pkce: bool = False  # vcita: "PKCE support may vary"
    issuer: str | None = None  # set it when vcita sends `iss` (RFC 9207)
    # Hosts a `brand_host` may name, exactly or as "*.partner.example" (one label).
    brand_hosts: tuple[str, ...] = ()
    brand_authorize_url: str = BRAND_AUTHORIZE_URL
    exchange_timeout: tuple[float, float] = TIMEOUT
    api_timeout: tuple[float, float] = TIMEOUT
    api_url: str = API_URL
    # private_key_jwt: private JWKs (each with its "kid"), newest first; the newest signs.
    private_keys: tuple[JWK, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class AccessToken:
    """An access token as vcita issued it in step 3."""

    access_token: str = field(repr=False)
    token_type: str
    issued_at: datetime
    expires_at: datetime | None


# --- The client: the guide's steps, then any API call -------------------------------------

STATE_BYTES = 32  # 256 random bits; RFC 9700 asks for enough entropy to be unguessable


def new_state() -> str:
    """Return a fresh `state`: 256 random bits, URL-safe (RFC 6749 §10.12)."""
    return secrets.token_urlsafe(STATE_BYTES)


def new_code_verifier() -> str:
    """Return a fresh PKCE verifier: 86 characters, within RFC 7636 §4.1's 43-128."""
    return secrets.token_urlsafe(64)


@runtime_checkable
class MultiValuedQuery(Protocol):
    """A query string read as Flask's `request.args` (a MultiDict) reads it."""

    def getlist(self, key: str) -> list[str]: ...


# The callback's query: `request.args`, or the dict of lists `parse_qs()` makes of it.
CallbackQuery = MultiValuedQuery | Mapping[str, list[str]]
# Whatever your app keeps for a pending flow (its state, PKCE verifier, where to go next).
Flow = TypeVar("Flow")
# A plain requests session, or Authlib's OAuth2Session (one of them).
AnySession = TypeVar("AnySession", bound=requests.Session)
# Callback parameters that must appear at most once (RFC 9700 §4.4: a duplicated
# state or code is a sign of parameter pollution, never of a real answer).
SINGLE_VALUED = ("state", "code", "error", "iss")
PER_PAGE = 100  # vcita's maximum page size
MAX_PAGES = 10  # a paged list stops after this many pages, whatever vcita sends


class VcitaClient:
    """Talks to vcita for one registered app, over one pooled keep-alive transport.

    Thread-safe: each call builds its own short-lived session on the shared transport
    (urllib3's pool is thread-safe), so TLS connections to vcita are reused across
    requests and threads instead of a handshake per call.
    """

    def __init__(
        self,
        settings: VcitaSettings,
        response_hook: Callable[[requests.Response], Any] | None = None,
    ):
        if settings.token_auth_method not in TOKEN_AUTH_METHODS:
            raise ValueError(f"token_auth_method must be one of {TOKEN_AUTH_METHODS}")
        self._signing_key: JWK | None = None
        if settings.token_auth_method == PRIVATE_KEY_JWT:
            if not settings.private_keys:
                raise ValueError("private_key_jwt needs at least one private key")
            self._signing_key = check_signing_jwk(settings.private_keys[0])
        self.settings = settings
        self.transport = _pooled_transport()
        # Called with every response from vcita, for whoever wants to watch the wire.
        self.response_hook = response_hook
        # requests reads proxies and CA bundles from the environment on every call, walking
        # all of os.environ: read here once, and used while vcita's hosts all agree.
        found = [
            requests.Session().merge_environment_settings(url, {}, None, None, None)
            for url in (settings.token_url, settings.userinfo_url, settings.api_url)
        ]
        self._environment = found[0] if all(each == found[0] for each in found) else None

    def authorization_url(
        self, state: str, code_verifier: str | None = None, brand_host: str | None = None
    ) -> str:
        """Step 2: build the URL that sends the browser to vcita's consent page.

        With a `brand_host` the settings allow (see `allowed_brand_host`), the consent
        page is the business's white-label one; any other value is not used.
        """
        authorize_url = self.settings.authorize_url
        host = allowed_brand_host(brand_host, self.settings.brand_hosts)
        if host is not None:
            # replace, not format(): the template is the operator's, the host is checked.
            authorize_url = self.settings.brand_authorize_url.replace("{brand_host}", host)
        url: str
        url, _ = self._oauth_session().create_authorization_url(
            authorize_url, state=state, code_verifier=code_verifier
        )
        return url

    def code_from_callback(self, query: CallbackQuery, pending_flow: object | None) -> str:
        """Apply the callback's rules; return the code, or raise why there is none.

        `query` is the callback's query (`request.args`, or `parse_qs()` of it);
        `pending_flow` is this browser's flow that the `state` named, already taken out
        of its session so that it cannot be used twice, or None if there was none.
        """
        code, _ = self.code_and_flow(query, pending_flow)
        return code

    def code_and_flow(self, query: CallbackQuery, pending_flow: Flow | None) -> tuple[str, Flow]:
        """Apply the callback's rules; return the code and the flow it answers, or raise.

        The rules of `code_from_callback`, for an app that goes on with its flow (its
        PKCE verifier, where to go next): the flow comes back as surely not None.
        """
        if any(len(_values(query, name)) > 1 for name in SINGLE_VALUED):
            raise InvalidCallback("a callback parameter was repeated")
        error, code, iss = (_value(query, name) for name in ("error", "code", "iss"))
        if error is not None and code is not None:
            raise InvalidCallback("the callback carries both an error and a code")
        if pending_flow is None:
            # RFC 6749 §10.12: no flow of this browser's sent the person to vcita.
            raise InvalidCallback("unknown, expired or used state")
        if self.settings.issuer and iss != self.settings.issuer:
            # RFC 9207 §2.4: a client that expects `iss` refuses an answer without it, or
            # with another one: it may come from another authorization server (mix-up).
            raise InvalidCallback("the callback's iss is missing or not vcita's")
        if error == "access_denied":
            raise AccessDenied("the person denied access")
        if error is not None:
            raise ProviderError(f"vcita answered error={error[:40]!r}")
        if not code:
            raise InvalidCallback("the callback carries no code")
        return code, pending_flow

    def exchange_code(self, code: str, code_verifier: str | None = None) -> AccessToken:
        """Step 3: trade the authorization code for an access token, once."""
        settings = self.settings
        extra = {"code_verifier": code_verifier} if code_verifier else {}
        try:
            token = self._oauth_session().fetch_token(
                settings.token_url,
                grant_type="authorization_code",
                code=code,
                redirect_uri=settings.redirect_uri,
                timeout=settings.exchange_timeout,
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
            raise VcitaUnavailable(
                f"token endpoint unreachable: {type(error).__name__}"
            ) from error
        except ValueError as error:  # Authlib: the body is not a JSON object
            raise VcitaUnavailable("token endpoint answered something other than JSON") from error
        return _access_token_from(token)

    def fetch_userinfo(self, token: AccessToken) -> dict[str, Any]:
        """Step 4: read the business and staff member behind a token from vcita."""
        session = self._oauth_session(
            token={"access_token": token.access_token, "token_type": token.token_type}
        )
        try:
            response = session.get(self.settings.userinfo_url, timeout=self.settings.api_timeout)
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

    @staticmethod
    def identify(userinfo: Mapping[str, Any]) -> tuple[str, str]:
        """Return the (business_uid, staff uid `sub`) that userinfo names, or raise."""
        business_uid, staff_uid = userinfo.get("business_uid"), userinfo.get("sub")
        if not (_is_identifier(business_uid) and _is_identifier(staff_uid)):
            raise VcitaUnavailable("userinfo names no business_uid and sub")
        return business_uid, staff_uid

    # --- Any other API call, on the business's token --------------------------------------

    def api_get(self, token: AccessToken, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET an API path (`/platform/v1/clients`) with the token; return its JSON.

        Retried on a connection error, 502/503/504, and 429 when vcita asks to wait
        at most MAX_RETRY_AFTER seconds; every other answer is mapped to an error.
        """
        return self._api(token, "GET", path, params=params)

    def api_post(self, token: AccessToken, path: str, body: dict[str, Any]) -> Any:
        """POST a JSON body to an API path with the token; return its JSON. Never retried."""
        return self._api(token, "POST", path, body=body)

    def api_pages(
        self,
        token: AccessToken,
        path: str,
        params: dict[str, Any] | None = None,
        per_page: int = PER_PAGE,
        max_pages: int = MAX_PAGES,
    ) -> Iterator[Any]:
        """Yield every item of a paged list (`page`, `per_page`), page after page.

        vcita answers `{"data": {"clients": [...]}}`: the one list in `data` holds the
        items. Stops on an empty or short page, and after `max_pages` pages at most.
        """
        for page in range(1, max_pages + 1):
            body = self.api_get(
                token, path, {**(params or {}), "page": page, "per_page": per_page}
            )
            items = _list_in(body, path)
            yield from items
            if len(items) < per_page:
                return

    def _api(
        self,
        token: AccessToken,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        """Make an API call; map vcita's answer to its JSON or to an error in vcita's terms."""
        response = self._send(token, method, path, params, body)
        if response.status_code == 401:
            raise AccessRevoked(f"{path} answered 401")
        if response.status_code == 404:
            raise NotFound(f"{path} answered 404")
        _raise_for_unavailable(response, path)
        if not 200 <= response.status_code < 300:
            # 400, 403, 409, 422: retrying the same request will not change the answer.
            raise VcitaRefused(f"{path} answered HTTP {response.status_code}")
        return _json_body(response, path)

    def _send(
        self,
        token: AccessToken,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> requests.Response:
        """Send one request to an API path with the token as the bearer; return the answer.

        Only an unreachable vcita is an error here: each caller reads the status itself.
        """
        url = self.settings.api_url.rstrip("/") + _api_path(path)
        headers = {
            "Accept": "application/json",
            "Authorization": f"Bearer {token.access_token}",
        }
        try:
            # No redirects: one could carry the Bearer token to another host.
            return self._on_shared_transport(requests.Session()).request(
                method,
                url,
                params=params,
                json=body,
                headers=headers,
                timeout=self.settings.api_timeout,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            raise VcitaUnavailable(f"{path} unreachable: {type(error).__name__}") from error

    # --- Ending the app's access: revoking the token (vcita's "Revoke Token") ------------

    def revoke_token(self, token: AccessToken) -> Revocation:
        """Ask vcita to stop accepting a token, with the token itself as the bearer.

        vcita: "Staff tokens can revoke tokens associated with the authenticated user".
        Every answer returned means vcita no longer accepts the token; RevocationRefused
        (422 "Unauthorized") needs an operator, VcitaUnavailable (a timeout, 5xx, 429)
        another try later. A POST: never retried here.
        """
        response = self._send(token, "POST", REVOKE_PATH, body={"token": token.access_token})
        if 200 <= response.status_code < 300:
            return Revocation.REVOKED
        if response.status_code == 401:
            return Revocation.ALREADY_DEAD
        _raise_for_unavailable(response, REVOKE_PATH)
        refusal = _legacy_error(response) if response.status_code == 422 else None
        if refusal == "invalid token":
            return Revocation.UNKNOWN
        if refusal == "unauthorized":
            raise RevocationRefused(f"{REVOKE_PATH} answered 422 Unauthorized")
        raise VcitaRefused(f"{REVOKE_PATH} answered HTTP {response.status_code}")

    # --- Your app's keys, and the client's own resources ----------------------------------

    def public_jwks(self) -> dict[str, list[JWK]]:
        """Return the JWK Set to publish at your `client_auth_jwks_uri`: public halves only."""
        return {"keys": [public_jwk(key) for key in self.settings.private_keys]}

    def close(self) -> None:
        """Close the pooled connections to vcita."""
        self.transport.close()

    def _oauth_session(self, token: dict[str, str] | None = None) -> OAuth2Session:
        """Return an Authlib session for one call, on the client's shared transport.

        A session per call, because an OAuth2Session holds one token and is not meant
        to be shared between threads serving different businesses.
        """
        settings = self.settings
        private_key_jwt = settings.token_auth_method == PRIVATE_KEY_JWT
        session = OAuth2Session(
            client_id=settings.client_id,
            # Authlib signs private_key_jwt with the session's "secret": the private key.
            client_secret=self._signing_key if private_key_jwt else settings.client_secret,
            redirect_uri=settings.redirect_uri,
            scope=settings.scope,
            token_endpoint_auth_method=settings.token_auth_method,
            code_challenge_method="S256",
            token=token,
        )
        session.register_client_auth_method(("client_secret_json", _client_secret_json))
        session.register_client_auth_method(("client_secret_basic", _client_secret_basic))
        if private_key_jwt:
            key = settings.private_keys[0]
            session.register_client_auth_method(
                _ShortLivedPrivateKeyJWT(
                    # aud: the issuer identifier when known (it names vcita whatever URL
                    # the request took), else the token endpoint, as RFC 7523 allows.
                    token_endpoint=settings.issuer or settings.token_url,
                    headers={"kid": key["kid"]},
                    alg=SIGNING_ALGORITHMS[key["kty"]],
                )
            )
        session.register_compliance_hook("access_token_response", _check_token_response)
        return self._on_shared_transport(session)

    def _on_shared_transport(self, session: AnySession) -> AnySession:
        """Send `session`'s requests through the shared transport, shown to the response hook.

        The one place a session meets the wire, for Authlib's sessions and plain ones alike;
        the environment's proxies and CA bundle, read once, go with it.
        """
        session.mount("https://", self.transport)
        session.mount("http://", self.transport)
        if self._environment is not None:
            session.trust_env = False
            session.proxies.update(self._environment["proxies"])
            session.verify = self._environment["verify"]
        if self.response_hook is not None:
            session.hooks["response"].append(self.response_hook)
        return session


def _values(query: CallbackQuery, name: str) -> list[str]:
    """Return every value of a query parameter, from a MultiDict or a dict of lists."""
    if isinstance(query, MultiValuedQuery):
        return query.getlist(name)
    return list(query.get(name, []))


def _value(query: CallbackQuery, name: str) -> str | None:
    values = _values(query, name)
    return values[0] if values else None


# A DNS name as a browser would send it: ASCII letters, digits and hyphens in dotted
# labels, nothing else (no port, userinfo, path, fragment, trailing dot or Unicode).
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
MAX_HOST_NAME = 253


def allowed_brand_host(value: object, patterns: tuple[str, ...]) -> str | None:
    """Return `value` as a host name if `patterns` allow it, else None.

    `brand_host` comes unsigned in the query string that opened the app, so it is
    checked before it can become a redirect target: a plain ASCII host name (DNS is
    case-insensitive, so upper case is read as lower), equal to a pattern or one label
    under a `*.` pattern's domain. Anything else (`evil.example#.partner.example`, a
    port, `user@host`, a Unicode look-alike, a trailing dot) is not a host we know.
    """
    if not isinstance(value, str) or not value.isascii() or len(value) > MAX_HOST_NAME:
        return None
    host = value.lower()
    if not HOST_NAME.fullmatch(host):
        return None
    for pattern in patterns:
        if pattern.startswith("*."):
            label, _, domain = host.partition(".")
            if domain == pattern[2:] and label:
                return host
        elif host == pattern:
            return host
    return None


def _api_path(path: str) -> str:
    """Check `path` is a path on vcita's API, so the token goes nowhere else."""
    if (
        not isinstance(path, str)
        or not path.startswith("/")
        or path.startswith("//")
        or not path.isascii()
        or not path.isprintable()
        or any(character in path for character in "?#\\ ")
        or ".." in path.split("/")
    ):
        raise ValueError(f"not an API path: {path!r}")
    return path


# --- Client authentication: how vcita's token endpoint knows your app ---------------------


def _client_secret_json(
    client: Any, method: str, uri: str, headers: dict[str, str], body: str
) -> tuple[str, dict[str, str], str]:
    """Authenticate as vcita documents: all five fields in one JSON body (guide step 3)."""
    fields = dict(url_decode(body))
    fields["client_id"] = client.client_id
    fields["client_secret"] = client.client_secret
    headers["Content-Type"] = "application/json"
    return uri, headers, json.dumps(fields)


def _client_secret_basic(
    client: Any, method: str, uri: str, headers: dict[str, str], body: str
) -> tuple[str, dict[str, str], str]:
    """Authenticate with HTTP Basic as RFC 6749 §2.3.1 says: each part form-encoded first.

    Authlib sends the id and secret as they are, in Latin-1: a secret holding `%`, `+`
    or a space would then reach a compliant server altered, and one holding a
    character beyond Latin-1 could not be sent at all.
    """
    credentials = f"{quote_plus(client.client_id)}:{quote_plus(client.client_secret)}"
    headers["Authorization"] = f"Basic {base64.b64encode(credentials.encode()).decode()}"
    return uri, headers, body


SIGNING_ALGORITHMS = {"RSA": "RS256", "EC": "ES256"}
# A private_key_jwt assertion lives this long (Authlib's default is an hour).
ASSERTION_LIFETIME = 300


# Authlib ships no type hints, so its PrivateKeyJWT is Any to mypy; subclassing it is the point.
class _ShortLivedPrivateKeyJWT(PrivateKeyJWT):  # type: ignore[misc]
    """Authlib's private_key_jwt client authentication, with a five-minute assertion.

    Authlib's own signs for an hour; a shorter one is less worth stealing. Each call
    signs afresh, with a new `jti`, so vcita can refuse a replayed assertion.
    """

    def sign(self, auth: Any, token_endpoint: str) -> bytes:
        """Return a fresh assertion for Authlib's client `auth`, signed with its private key."""
        assertion: bytes = private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=token_endpoint,
            header=dict(self.headers),
            alg=self.alg,
            expires_in=ASSERTION_LIFETIME,
        )
        return assertion


# The members of a JWK that make it public (RFC 7518 §6.2.1, §6.3.1).
PUBLIC_MEMBERS = {"RSA": ("kty", "n", "e"), "EC": ("kty", "crv", "x", "y")}


def check_signing_jwk(jwk: JWK) -> JWK:
    """Check a private JWK can sign assertions: RSA or EC P-256, with its private part and kid.

    Authlib imports it when it signs; a JWK is a plain dict, so keys come from wherever
    your app keeps them (a file, a secret manager) without another library here.
    """
    kind = jwk.get("kty") if isinstance(jwk, dict) else None
    if kind not in SIGNING_ALGORITHMS or "d" not in jwk or not jwk.get("kid"):
        raise ValueError("a signing key is a private RSA or EC JWK with a kid")
    if kind == "EC" and jwk.get("crv") != "P-256":
        raise ValueError("an EC signing key must be on P-256 (ES256)")
    if any(member not in jwk for member in PUBLIC_MEMBERS[kind]):
        raise ValueError(f"a {kind} JWK needs {', '.join(PUBLIC_MEMBERS[kind])}")
    return jwk


def public_jwk(jwk: JWK) -> JWK:
    """Return the public half of a private JWK, with its kid, use and alg."""
    kind = check_signing_jwk(jwk)["kty"]
    return {
        **{member: jwk[member] for member in PUBLIC_MEMBERS[kind]},
        "kid": jwk["kid"],
        "use": "sig",
        "alg": SIGNING_ALGORITHMS[kind],
    }


# --- Transport and retries ----------------------------------------------------------------

# Retries of idempotent calls (GET) only: a POST may have done its work before failing.
RETRIES = 2
RETRY_BACKOFF = 0.25  # seconds, doubling: 0.25, 0.5
MAX_RETRY_AFTER = 3  # seconds; a longer Retry-After is passed on to the caller instead
RETRY_STATUSES = (429, 502, 503, 504)
RETRY_AFTER = re.compile(r"[0-9]{1,9}")  # delay-seconds (RFC 9110 §10.2.3), nine digits at most


def _pooled_transport() -> HTTPAdapter:
    """Return a keep-alive transport to vcita for every thread to share, retrying GETs."""
    return HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=_IdempotentRetry())


class _IdempotentRetry(Retry):
    """urllib3's retries for the shared transport: GET only, and Retry-After honoured.

    A 429 asking to wait longer than MAX_RETRY_AFTER is not retried early (urllib3 would
    shorten the wait to its cap): the answer goes back to the caller, who can say when
    to try again.
    """

    def __init__(self, **kwargs: Any):
        kwargs = {
            "total": RETRIES,
            "connect": RETRIES,
            "read": False,  # a read timeout already waited long: say so, rather than wait again
            "status": RETRIES,
            "other": False,
            "allowed_methods": frozenset({"GET"}),
            "status_forcelist": RETRY_STATUSES,
            "backoff_factor": RETRY_BACKOFF,
            "respect_retry_after_header": True,
            "raise_on_status": False,
            "raise_on_redirect": False,
            **kwargs,
        }
        super().__init__(**kwargs)

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        # urllib3 hands its pool in with every response it asks about.
        if response is not None and response.status == 429 and _pool is not None:
            wait = _retry_after(response.headers.get("Retry-After"))
            if wait is not None and wait > MAX_RETRY_AFTER:
                raise MaxRetryError(_pool, url, ResponseError("Retry-After too long"))
        return super().increment(
            method, url, response=response, error=error, _pool=_pool, _stacktrace=_stacktrace
        )


def _retry_after(value: str | None) -> int | None:
    # Only the delay-seconds form; an HTTP-date is rare from APIs and not worth parsing.
    # ASCII digits only: "²".isdigit() is true, and int() refuses it.
    return int(value) if value and RETRY_AFTER.fullmatch(value) else None


# --- Reading vcita's answers safely -------------------------------------------------------


def _raise_for_unavailable(response: requests.Response, endpoint: str) -> None:
    if response.status_code == 429:
        raise VcitaUnavailable(
            f"{endpoint} answered 429",
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )
    if response.status_code >= 500:
        raise VcitaUnavailable(f"{endpoint} answered HTTP {response.status_code}")


# vcita's answers nest two levels deep; far deeper JSON is no answer of vcita's.
MAX_JSON_DEPTH = 32


def _json_body(response: requests.Response, endpoint: str) -> Any:
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


def _legacy_error(response: requests.Response) -> str | None:
    """Return the `error` of vcita's legacy refusal `{"status": "Error", "error": …}`, lowered."""
    try:
        body = _json_body(response, "platform API")
    except VcitaUnavailable:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.strip().lower() if isinstance(error, str) else None


def _depth(value: object) -> int:
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


def _is_unicode(value: object) -> bool:
    """Say whether JSON text holds only real characters: it can then be stored and shown.

    JSON may escape a lone surrogate ("\\ud800"), which no UTF-8 page or database
    accepts (RFC 8259 §8.2).
    """
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


def _is_whole_seconds(value: object) -> bool:
    if not isinstance(value, str | int | float):
        return False  # a list or an object: int() refuses them too
    try:
        int(value)
    except (ValueError, OverflowError):
        return False
    return True


# RFC 6749 Appendix A.12: access-token = 1*VSCHAR. Anything else (a line break, a lone
# surrogate) could not be sent back in an Authorization header, nor stored.
ACCESS_TOKEN = re.compile(r"[\x20-\x7e]+")


def _access_token_from(token: dict[str, Any], received_at: datetime | None = None) -> AccessToken:
    """Check the token response has vcita's documented shape, and read it.

    `received_at` is when the answer arrived (now, unless given): RFC 6749 §5.1 counts
    `expires_in` from then. vcita (Doorkeeper) may answer a staff member who connects
    again with the token they already hold: its first `created_at`, possibly years ago,
    and `expires_in` the time it has left.
    """
    access_token = token.get("access_token")
    token_type = token.get("token_type")
    if not isinstance(access_token, str) or not ACCESS_TOKEN.fullmatch(access_token):
        raise VcitaUnavailable("token response has no valid access_token")
    # vcita's OpenAPI says "Bearer", its guide "bearer": RFC 6749 §5.1 makes it
    # case-insensitive.
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise VcitaUnavailable("token response is not a bearer token")
    received_at = received_at or datetime.now(UTC)
    return AccessToken(
        access_token,
        "Bearer",
        _issued_at(token.get("created_at"), received_at),
        _expires_at(token.get("expires_in"), received_at),
    )


# vcita's tokens live 20 years (expires_in 631139040 s when new). No token is older than
# its lifetime, so a created_at older than this bound is no moment a live token was issued
# at; a century leaves room for a longer lifetime and keeps every date within a calendar.
LONGEST_TOKEN_LIFETIME = timedelta(days=365 * 100)


def _issued_at(created_at: object, received_at: datetime) -> datetime:
    """Return vcita's `created_at` if it is a moment in the token's past, else `received_at`.

    Any age up to LONGEST_TOKEN_LIFETIME is believed: a token vcita gives back is as old
    as it is. A moment after the answer arrived (a clock ahead of ours) means "just now";
    one older than any token can live (the year 1900), or no number at all, is not
    believed either.
    """
    if not _is_finite_number(created_at):
        return received_at
    # Compared, never subtracted: an integer like 10**400 has no float to subtract.
    oldest = received_at - LONGEST_TOKEN_LIFETIME
    if not oldest.timestamp() <= created_at <= received_at.timestamp():
        return received_at
    return datetime.fromtimestamp(created_at, UTC)


def _expires_at(expires_in: object, received_at: datetime) -> datetime | None:
    """Return when the token expires, or None when vcita states no usable lifetime.

    RFC 6749 §5.1: `expires_in` seconds from when the answer arrived, whenever the token
    was issued. A lifetime past LONGEST_TOKEN_LIFETIME (1e20 s, Infinity) is no lifetime
    a calendar can hold, so it counts as not stated.
    """
    if not _is_finite_number(expires_in):
        return None
    if not 0 <= expires_in <= LONGEST_TOKEN_LIFETIME.total_seconds():
        return None
    return received_at + timedelta(seconds=expires_in)


def _is_finite_number(value: object) -> TypeGuard[int | float]:
    """Say whether a JSON value is a number a date can be reckoned from.

    Never a bool, NaN or Infinity; any int, without asking math.isfinite, which cannot
    turn one of 400 digits into a float.
    """
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _is_identifier(value: object) -> TypeGuard[str]:
    # Printable only: PostgreSQL cannot store a NUL, and a newline would forge log lines.
    return isinstance(value, str) and 0 < len(value) <= 255 and value.isprintable()


def _list_in(body: object, path: str) -> list[Any]:
    """Return the one list in a paged answer's `data`, or raise VcitaUnavailable."""
    data = body.get("data") if isinstance(body, dict) else None
    lists = (
        [value for value in data.values() if isinstance(value, list)]
        if isinstance(data, dict)
        else []
    )
    if len(lists) != 1:
        raise VcitaUnavailable(f"{path} answered without one list in data")
    return lists[0]
