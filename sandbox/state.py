"""Everything the sandbox remembers while it runs, behind one lock.

Pending authorization requests (between the authorize page and Allow/Deny), codes, access
tokens, the ids of client assertions already used, the clients tests added to businesses,
webhook subscriptions and the deliveries made to them, the requests the API endpoints
received, and injected faults.
The app keeps one `SandboxState` on `app.extensions["vcita_sandbox"]`; tests of the client
read it directly ("what did the provider receive?") when the sandbox runs in-process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .faults import FAULT_ENDPOINTS, Fault

# How long a person may take on the login and consent pages.
PENDING_LIFETIME = 600.0
# Requests kept per endpoint for tests to read; the oldest go first.
MAX_RECORDED_REQUESTS = 1000
# Used and expired codes are remembered this long, so a replay is recognised and the
# token issued for the code is revoked (RFC 6749 §4.1.2) rather than answered "unknown".
SPENT_CODE_MEMORY = 600.0
# Bounds on what tests and apps can add, so a sandbox left running stays small.
MAX_ADDED_CLIENTS = 10_000  # per business
MAX_SUBSCRIPTIONS = 100  # per business and app
# How long a token lives. vcita's example answer's expires_in, 631139040 s, is Rails'
# `20.years` (20 x 365.2425 days) to the second: Doorkeeper's answer for a token issued
# that moment, whose whole lifetime is left. (The example's created_at, 2025-08-05 06:56:55
# UTC, is 28 s after the clients in vcita's other examples were made: a fresh token.)
TOKEN_LIFETIME = 631139040
# Client assertions' jti values remembered at once. Each is kept only until its assertion
# expires (minutes), so this is reached only by thousands of token requests a minute;
# then the oldest go first.
MAX_SPENT_ASSERTIONS = 100_000


class InvalidGrant(Exception):
    """The code cannot be exchanged (RFC 6749 §5.2 `invalid_grant`)."""


@dataclass
class PendingAuthorization:
    """An authorize request waiting for the person to log in and decide."""

    id: str
    client_id: str
    redirect_uri: str
    # The raw bytes of `state`, echoed back exactly; None when the app sent none.
    state: bytes | None
    code_challenge: str | None
    scope: str | None
    started_at: float = field(default_factory=time.monotonic)


@dataclass
class AuthorizationCode:
    """A code: single use, short-lived, bound to client, redirect URI, person and PKCE."""

    code: str
    client_id: str
    redirect_uri: str
    staff_uid: str
    code_challenge: str | None
    expires_at: float
    scopes: frozenset[str] = frozenset()
    access_token: str | None = None


@dataclass
class AccessToken:
    """A bearer token for one staff member and client, live until revoked or expired."""

    access_token: str
    client_id: str
    staff_uid: str
    created_at: float  # Unix time, to the microsecond as Doorkeeper keeps it
    scopes: frozenset[str] = frozenset()
    revoked: bool = False

    def seconds_left(self, now: float) -> int:
        """Return the whole seconds it has left at `now`: the token answer's `expires_in`."""
        # Doorkeeper's expires_in_seconds: the lifetime less the whole seconds it has lived.
        return max(0, TOKEN_LIFETIME - math.floor(now - self.created_at))

    def is_live(self, now: float) -> bool:
        """Say whether the token is still accepted: not revoked, not expired."""
        return not self.revoked and self.seconds_left(now) > 0


@dataclass(frozen=True)
class Subscription:
    """A webhook subscription: one business and app, one event, one target URL."""

    business_uid: str
    client_id: str
    event: str
    target_url: str
    created_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What makes two subscriptions the same one: business, app, event, target URL."""
        return (self.business_uid, self.client_id, self.event, self.target_url)

    def describe(self) -> dict[str, Any]:
        """Return it as JSON-friendly data, for the control API."""
        return {
            "business_uid": self.business_uid,
            "client_id": self.client_id,
            "event": self.event,
            "target_url": self.target_url,
            "created_at": self.created_at,
        }


class SubscriptionRefused(Exception):
    """The business and app already hold as many subscriptions as the sandbox keeps."""


class Revocation(Enum):
    """How vcita answers a request to revoke a token (POST /platform/v1/tokens/revoke)."""

    REVOKED = "revoked"  # 201
    BEARER_NOT_ACCEPTED = "the bearer token is unknown, revoked or expired"  # 401
    UNKNOWN = "no live token has this value"  # 422 "invalid token"
    NOT_ALLOWED = "the bearer may not revoke this token"  # 422 "Unauthorized"


class SandboxState:
    """The sandbox's memory: thread-safe, one lock around every change."""

    def __init__(self, code_lifetime: float, reuse_access_token: bool = True) -> None:
        self.code_lifetime = code_lifetime
        # Doorkeeper's reuse_access_token (SANDBOX_REUSE_ACCESS_TOKEN): a code exchanged by
        # a staff member who holds a live token for the client and scopes gets that token.
        self.reuse_access_token = reuse_access_token
        self._lock = threading.Lock()
        self._pending: dict[str, PendingAuthorization] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._tokens: dict[str, AccessToken] = {}
        # jti of each client assertion used → the Unix time until which a replay is refused.
        self._spent_assertions: dict[str, float] = {}
        # The newest requests only: a sandbox left running must not grow without end.
        self._requests: dict[str, deque[dict[str, Any]]] = {
            endpoint: deque(maxlen=MAX_RECORDED_REQUESTS) for endpoint in FAULT_ENDPOINTS
        }
        self._received = dict.fromkeys(self._requests, 0)
        self._added_clients: dict[str, list[dict[str, Any]]] = {}
        self._subscriptions: list[Subscription] = []
        self._deliveries: deque[dict[str, Any]] = deque(maxlen=MAX_RECORDED_REQUESTS)
        self._faults: dict[str, Fault] = {}
        # Every fault set since the last clear, used up or not: clearing wakes their delays.
        self._faults_set: list[Fault] = []

    # --- Step 2: the authorize request, between the pages ---------------------------

    def start_authorization(self, **request: Any) -> PendingAuthorization:
        """Remember a valid authorize request under a fresh random id."""
        pending = PendingAuthorization(id=secrets.token_urlsafe(24), **request)
        with self._lock:
            self._forget_stale(time.monotonic())
            self._pending[pending.id] = pending
        return pending

    def pending_authorization(self, pending_id: object) -> PendingAuthorization | None:
        """Return the pending request with this id, if it is still waiting."""
        with self._lock:
            pending = self._pending.get(pending_id) if isinstance(pending_id, str) else None
            if pending and time.monotonic() - pending.started_at > PENDING_LIFETIME:
                return None
            return pending

    def finish_authorization(self, pending_id: str) -> PendingAuthorization | None:
        """Remove and return the pending request, so it is decided only once."""
        with self._lock:
            return self._pending.pop(pending_id, None)

    def issue_code(self, pending: PendingAuthorization, staff_uid: str) -> str:
        """Create a code for the approving staff member (guide step 2)."""
        now = time.monotonic()
        code = AuthorizationCode(
            code=secrets.token_urlsafe(32),
            client_id=pending.client_id,
            redirect_uri=pending.redirect_uri,
            staff_uid=staff_uid,
            code_challenge=pending.code_challenge,
            expires_at=now + self.code_lifetime,
            scopes=scopes_of(pending.scope),
        )
        with self._lock:
            self._forget_stale(now)
            self._codes[code.code] = code
        return code.code

    # --- Step 3: the code exchange ---------------------------------------------------

    def redeem_code(
        self, code: str, *, client_id: str, redirect_uri: str, code_verifier: str | None
    ) -> tuple[AccessToken, int]:
        """Spend the code for an access token and its seconds left, or raise InvalidGrant.

        The token is new, or, with reuse_access_token, the live one the staff member
        already holds for this client and scopes: the same token, its first created_at,
        and the seconds its lifetime has left.
        """
        now = time.time()
        with self._lock:
            grant = self._codes.get(code)
            if grant is None:
                raise InvalidGrant("The authorization code is unknown.")
            if grant.access_token is not None:
                # RFC 6749 §4.1.2: a code used twice revokes what it was exchanged for.
                first_token = self._tokens.get(grant.access_token)
                if first_token is not None:
                    first_token.revoked = True
                raise InvalidGrant("The authorization code was already used.")
            if time.monotonic() >= grant.expires_at:
                raise InvalidGrant("The authorization code has expired.")
            if not hmac.compare_digest(grant.client_id.encode(), client_id.encode()):
                raise InvalidGrant("The authorization code was issued to another client.")
            if grant.redirect_uri != redirect_uri:
                # RFC 6749 §4.1.3: identical to the redirect_uri of the authorize request.
                raise InvalidGrant("The redirect_uri does not match the authorization request.")
            _check_pkce(grant.code_challenge, code_verifier)
            token = None
            if self.reuse_access_token:
                token = self._matching_token(client_id, grant.staff_uid, grant.scopes, now)
            if token is None:
                token = AccessToken(
                    access_token=secrets.token_hex(32),
                    client_id=client_id,
                    staff_uid=grant.staff_uid,
                    created_at=now,
                    scopes=grant.scopes,
                )
                self._tokens[token.access_token] = token
            grant.access_token = token.access_token
            return token, token.seconds_left(now)

    def spend_assertion(self, jti: str, refuse_until: float) -> bool:
        """Remember a client assertion's jti until it expires; False if it was used already.

        RFC 7523 §3: the server may refuse a JWT whose jti it has seen, so a captured
        assertion cannot be replayed for the minutes it is still valid.
        """
        now = time.time()
        with self._lock:
            if self._spent_assertions.get(jti, 0.0) > now:
                return False
            if len(self._spent_assertions) >= MAX_SPENT_ASSERTIONS:
                self._spent_assertions = {
                    known: until for known, until in self._spent_assertions.items() if until > now
                }
                while len(self._spent_assertions) >= MAX_SPENT_ASSERTIONS:
                    del self._spent_assertions[next(iter(self._spent_assertions))]
            # Moved to the end, so the dict stays in the order assertions were used.
            self._spent_assertions.pop(jti, None)
            self._spent_assertions[jti] = refuse_until
            return True

    # --- Step 4: bearer tokens ---------------------------------------------------------

    def token_owner(self, access_token: str) -> str | None:
        """Return the staff uid of a live token, or None if unknown, revoked or expired."""
        token = self.active_token(access_token)
        return token.staff_uid if token else None

    def active_token(self, access_token: str) -> AccessToken | None:
        """Return the token's grant (staff member and client) if it is live, else None."""
        now = time.time()
        with self._lock:
            token = self._tokens.get(access_token)
            return token if token and token.is_live(now) else None

    def is_token_active(self, access_token: str) -> bool:
        """Say whether the token would be accepted by userinfo."""
        return self.token_owner(access_token) is not None

    def holds_live_token(self, staff_uid: str, client_id: str, scope: str | None) -> bool:
        """Say whether the staff member holds a live token for this client and scope.

        Doorkeeper then skips its consent screen (`matching_token?`), Trusted app or not:
        the staff member allowed this client these scopes already.
        """
        with self._lock:
            return (
                self._matching_token(client_id, staff_uid, scopes_of(scope), time.time())
                is not None
            )

    def age_tokens(self, seconds: float) -> int:
        """Make every token seem issued `seconds` earlier, as after years; return how many.

        For tests: time passing at vcita. Aged past its lifetime, a token has expired.
        """
        with self._lock:
            for token in self._tokens.values():
                token.created_at -= seconds
            return len(self._tokens)

    def revoke_all_tokens(self) -> int:
        """Revoke every token, as when businesses remove the app; return how many."""
        with self._lock:
            active = [token for token in self._tokens.values() if not token.revoked]
            for token in active:
                token.revoked = True
            return len(active)

    def revoke_token(self, bearer: str, access_token: str) -> Revocation:
        """Revoke `access_token` on behalf of the `bearer` token, as vcita's platform API does.

        A staff token may revoke the tokens of its own staff member, for any app ("Staff
        tokens can revoke tokens associated with the authenticated user"); a token already
        revoked or expired is one vcita no longer knows.
        """
        now = time.time()
        with self._lock:
            caller = self._tokens.get(bearer)
            if caller is None or not caller.is_live(now):
                return Revocation.BEARER_NOT_ACCEPTED
            token = self._tokens.get(access_token)
            if token is None or not token.is_live(now):
                return Revocation.UNKNOWN
            if token.staff_uid != caller.staff_uid:
                return Revocation.NOT_ALLOWED
            token.revoked = True
            return Revocation.REVOKED

    def revoke_tokens_of(self, staff_uids: Iterable[str]) -> int:
        """Revoke every token issued to these staff members (one business); return how many."""
        staff = set(staff_uids)
        with self._lock:
            active = [
                token
                for token in self._tokens.values()
                if not token.revoked and token.staff_uid in staff
            ]
            for token in active:
                token.revoked = True
            return len(active)

    # --- Clients tests added to a business -------------------------------------------

    def add_client(
        self, business_uid: str, record: dict[str, Any], taken_ids: Iterable[str] = ()
    ) -> None:
        """Add a client (in vcita's shape) to a business; ValueError if its id is taken."""
        with self._lock:
            added = self._added_clients.setdefault(business_uid, [])
            if record["id"] in {*taken_ids, *(client["id"] for client in added)}:
                raise ValueError(f"the business already has a client with id {record['id']!r}")
            if len(added) >= MAX_ADDED_CLIENTS:
                raise ValueError(f"a business keeps at most {MAX_ADDED_CLIENTS} added clients")
            added.append(record)

    def added_clients(self, business_uid: str) -> list[dict[str, Any]]:
        """Return the clients tests added to a business, oldest first."""
        with self._lock:
            return [dict(client) for client in self._added_clients.get(business_uid, [])]

    # --- Webhook subscriptions and deliveries -------------------------------------------

    def subscribe(self, subscription: Subscription) -> bool:
        """Keep a subscription; False if the same one exists (vcita: "Webhook already exists")."""
        with self._lock:
            if any(known.key == subscription.key for known in self._subscriptions):
                return False
            held = [
                known
                for known in self._subscriptions
                if (known.business_uid, known.client_id)
                == (subscription.business_uid, subscription.client_id)
            ]
            if len(held) >= MAX_SUBSCRIPTIONS:
                raise SubscriptionRefused(subscription.business_uid)
            self._subscriptions.append(subscription)
            return True

    def unsubscribe(
        self, business_uid: str, client_id: str, target_url: str, event: str | None = None
    ) -> int:
        """Remove this business and app's subscriptions to target_url (of one event, if given)."""
        with self._lock:
            kept = [
                known
                for known in self._subscriptions
                if not (
                    (known.business_uid, known.client_id, known.target_url)
                    == (business_uid, client_id, target_url)
                    and event in (None, known.event)
                )
            ]
            removed = len(self._subscriptions) - len(kept)
            self._subscriptions = kept
            return removed

    def subscriptions(
        self, business_uid: str | None = None, client_id: str | None = None
    ) -> list[Subscription]:
        """Return the subscriptions, of one business (and app) if given, oldest first."""
        with self._lock:
            return [
                known
                for known in self._subscriptions
                if business_uid in (None, known.business_uid)
                and client_id in (None, known.client_id)
            ]

    def forget_subscriptions(self, subscriptions: Iterable[Subscription]) -> None:
        """Remove these subscriptions (an uninstalled app's), leaving any made since."""
        gone = {id(subscription) for subscription in subscriptions}
        with self._lock:
            self._subscriptions = [known for known in self._subscriptions if id(known) not in gone]

    def record_delivery(self, delivery: dict[str, Any]) -> None:
        """Keep what a webhook delivery sent and how it went (the oldest kept one goes)."""
        with self._lock:
            self._deliveries.append(delivery)

    @property
    def deliveries(self) -> list[dict[str, Any]]:
        """Return a snapshot of the webhook deliveries made, oldest first."""
        with self._lock:
            return [dict(delivery) for delivery in self._deliveries]

    # --- What the endpoints received ---------------------------------------------------

    @property
    def token_requests(self) -> list[dict[str, Any]]:
        """Return a snapshot of the requests POST /oauth/token received, oldest first."""
        return self.recorded_requests("token")

    @property
    def userinfo_requests(self) -> list[dict[str, Any]]:
        """Return a snapshot of the requests GET /oauth/userinfo received, oldest first."""
        return self.recorded_requests("userinfo")

    def recorded_requests(self, endpoint: str) -> list[dict[str, Any]]:
        """Return a snapshot of the requests one endpoint received."""
        with self._lock:
            return [dict(record) for record in self._requests[endpoint]]

    def record_request(self, endpoint: str, record: dict[str, Any]) -> None:
        """Keep a request as it arrived (the oldest kept one goes); its status comes later."""
        with self._lock:
            self._requests[endpoint].append(record)
            self._received[endpoint] += 1

    def issued_secrets(self) -> set[str]:
        """Return every code and access token issued and still remembered."""
        with self._lock:
            return {*self._codes, *self._tokens}

    def requests_received(self, endpoint: str) -> int:
        """Return how many requests one endpoint received, kept in the recording or not."""
        with self._lock:
            return self._received[endpoint]

    def note_status(self, record: dict[str, Any], status: int) -> None:
        """Note the status a recorded request was answered with."""
        with self._lock:
            record["status"] = status

    # --- Faults ------------------------------------------------------------------------

    def set_fault(self, endpoint: str, **spec: Any) -> Fault:
        """Inject a fault into one endpoint of FAULT_ENDPOINTS (see sandbox.faults)."""
        fault = Fault(endpoint, **spec)
        with self._lock:
            self._faults[endpoint] = fault
            self._faults_set.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Remove every fault, waking requests that are waiting in a delay."""
        with self._lock:
            faults, self._faults_set = self._faults_set, []
            self._faults = {}
        for fault in faults:
            fault.cancelled.set()

    def take_fault(self, endpoint: str) -> Fault | None:
        """Return the fault for this request, counting it against `times`."""
        with self._lock:
            fault = self._faults.get(endpoint)
            if fault is not None and fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self._faults[endpoint]
            return fault

    def reset(self) -> None:
        """Forget everything: requests, codes, tokens, assertion ids, clients, webhooks, faults."""
        self.clear_faults()
        with self._lock:
            self._pending.clear()
            self._codes.clear()
            self._tokens.clear()
            self._spent_assertions.clear()
            self._added_clients.clear()
            self._subscriptions.clear()
            self._deliveries.clear()
            for records in self._requests.values():
                records.clear()
            self._received = dict.fromkeys(self._requests, 0)

    def _matching_token(
        self, client_id: str, staff_uid: str, scopes: frozenset[str], now: float
    ) -> AccessToken | None:
        """Return the newest live token of the staff member for client and scopes (lock held)."""
        matching = [
            token
            for token in self._tokens.values()
            if token.is_live(now)
            and (token.client_id, token.staff_uid, token.scopes) == (client_id, staff_uid, scopes)
        ]
        return max(matching, key=lambda token: token.created_at, default=None)

    def _forget_stale(self, now: float) -> None:
        """Drop abandoned authorize requests and long-dead codes (lock held)."""
        self._pending = {
            pending_id: pending
            for pending_id, pending in self._pending.items()
            if now - pending.started_at <= PENDING_LIFETIME
        }
        self._codes = {
            code: grant
            for code, grant in self._codes.items()
            if now <= grant.expires_at + SPENT_CODE_MEMORY
        }


def scopes_of(scope: str | None) -> frozenset[str]:
    """Return a scope parameter's scopes, in no order (RFC 6749 §3.3); none if absent."""
    return frozenset(scope.split(" ")) - {""} if scope else frozenset()


def s256(code_verifier: str) -> str:
    """Return BASE64URL(SHA256(verifier)) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _check_pkce(code_challenge: str | None, code_verifier: str | None) -> None:
    """Raise InvalidGrant unless the verifier matches the challenge (RFC 7636 §4.6)."""
    if code_challenge is None:
        if code_verifier is not None:
            # RFC 9700 §2.1.1: a verifier without a challenge is a PKCE downgrade attempt.
            raise InvalidGrant("A code_verifier was sent but the authorization had no PKCE.")
        return
    if code_verifier is None:
        raise InvalidGrant("The code_verifier is required: the authorization used PKCE.")
    if not _is_code_verifier(code_verifier) or not hmac.compare_digest(
        s256(code_verifier), code_challenge
    ):
        raise InvalidGrant("The code_verifier does not match the code_challenge.")


def _is_code_verifier(value: str) -> bool:
    """Check the RFC 7636 §4.1 form: 43-128 unreserved characters."""
    unreserved = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    return 43 <= len(value) <= 128 and set(value) <= unreserved
