"""Pending calls: what vcita must still hear, kept on the database until it answers.

Three calls may not be lost: revoking a token the person asked to end, unsubscribing a
connection that ended, and subscribing a new one to the uninstall webhook (else that
business's uninstall is never heard). Each is written here *before* it is made, its
token and target URL sealed like a connection's, and deleted once vcita answered it
(`calls.py` makes them). A crash mid-call therefore loses nothing: the call is still here.

Several app instances on one database run the same calls, so each attempt is first
*claimed*: a short transaction schedules the next attempt (attempts + 1, next_attempt_at
= now + backoff, in_flight_until = now + IN_FLIGHT) and succeeds only if the call was
still runnable, selecting the row `FOR UPDATE SKIP LOCKED` on PostgreSQL (another
instance skips it rather than waits) while SQLite lets one writer at a time; the call to
vcita is made after, outside any transaction. A call is in flight for longer than any
call can take, and its backoff is longer still, so no two instances ever make the same
call at once. A call vcita refuses (a 4xx) is kept as refused, for an operator.
"""

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import Flask, current_app

from ..storage.database import Database
from ..storage.tables import pending_calls

# vcita answers within the client's timeouts, 3.05 s to connect and 10 s to read: a claim
# holds a call for longer than that, so a call still in flight is never claimed again.
IN_FLIGHT = timedelta(seconds=60)
# The wait before attempt n + 1: 1, 2, 4, 8 … minutes, at most an hour, until vcita answers.
FIRST_BACKOFF = IN_FLIGHT
LONGEST_BACKOFF = timedelta(hours=1)
MAX_ERROR = 255  # characters of vcita's answer kept, as the column holds
BATCH = 100  # calls read at a time; a run reads on until none is left


class Kind(enum.StrEnum):
    """What vcita must hear."""

    REVOKE = "revoke"  # stop accepting a token (vcita's "Revoke Token")
    UNSUBSCRIBE = "unsubscribe"  # stop sending the uninstall event to an ended connection
    SUBSCRIBE = "subscribe"  # send a new connection's uninstall event to its webhook URL


class State(enum.StrEnum):
    """Whether a call is still made again, or waits for an operator."""

    PENDING = "pending"  # vcita did not answer: made again after the backoff
    REFUSED = "refused"  # vcita refused it (a 4xx): an operator must look; never made again


@dataclass(frozen=True)
class PendingCall:
    """A call to vcita, as listed: whose, how it went; never its token."""

    id: int
    kind: Kind
    business_uid: str
    staff_uid: str
    state: State
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime


@dataclass(frozen=True)
class ClaimedCall:
    """A call this instance may make now: the listing, its connection and sealed values."""

    call: PendingCall
    connection_id: str | None
    sealed_token: str | None = field(repr=False)
    sealed_target_url: str | None = field(repr=False)


class PendingCalls:
    """The calls vcita must still hear, on the app's database, claimed before each attempt."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def add(
        self,
        kind: Kind,
        *,
        business_uid: str,
        staff_uid: str,
        connection_id: str | None = None,
        sealed_token: str | None = None,
        sealed_target_url: str | None = None,
        claimed: bool = False,
    ) -> ClaimedCall:
        """Write down a call owed to vcita; `claimed`, this instance makes its first attempt.

        Unclaimed, the call is due at once, for whichever instance runs it first.
        """
        now = datetime.now(UTC)
        values = {
            "kind": kind.value,
            "business_uid": business_uid,
            "staff_uid": staff_uid,
            "connection_id": connection_id,
            "encrypted_token": sealed_token,
            "encrypted_target_url": sealed_target_url,
            "state": State.PENDING.value,
            "attempts": 1 if claimed else 0,
            "next_attempt_at": now + backoff(1) if claimed else now,
            "in_flight_until": now + IN_FLIGHT if claimed else None,
            "last_error": None,
            "created_at": now,
        }
        with self.database.transaction() as db:
            row = db.execute(sa.insert(pending_calls).values(values).returning(*pending_calls.c))
            return _claimed_call(row.one())

    def runnable(
        self, *, now: datetime | None = None, due_only: bool = True, after: int = 0
    ) -> list[int]:
        """Return the ids of up to BATCH pending calls to make now, in the order owed.

        `due_only`: those whose next attempt has come (the retrier); else every pending
        call not in flight, whose last attempt vcita answered or that was claimed longer
        ago than any call takes (`flask vcita revocations --retry`). `after`: only calls
        owed after that one, for the next batch.
        """
        now = now or datetime.now(UTC)
        with self.database.transaction() as db:
            return list(
                db.execute(
                    sa.select(pending_calls.c.id)
                    .where(_runnable(now, due_only), pending_calls.c.id > after)
                    .order_by(pending_calls.c.id)
                    .limit(BATCH)
                ).scalars()
            )

    def claim(
        self, call_id: int, *, now: datetime | None = None, due_only: bool = True
    ) -> ClaimedCall | None:
        """Claim the next attempt at a call; None if it is not runnable or another has it.

        The next attempt is scheduled before this one is made: a crash mid-call leaves the
        call for later, and until then no instance, this one included, claims it again.
        """
        now = now or datetime.now(UTC)
        with self.database.transaction() as db:
            row = db.execute(
                sa.select(pending_calls)
                .where(pending_calls.c.id == call_id, _runnable(now, due_only))
                .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer
            ).one_or_none()
            if row is None:
                return None
            claimed = db.execute(
                sa.update(pending_calls)
                # Still runnable: on SQLite another instance may have claimed it since.
                .where(pending_calls.c.id == call_id, _runnable(now, due_only))
                .values(
                    attempts=pending_calls.c.attempts + 1,
                    next_attempt_at=now + backoff(row.attempts + 1),
                    in_flight_until=now + IN_FLIGHT,
                )
                .returning(*pending_calls.c)
            ).one_or_none()
        return None if claimed is None else _claimed_call(claimed)

    def done(self, call_id: int) -> None:
        """Forget a call vcita answered, or that has nothing left to do."""
        self.drop(call_id)

    def retry_later(self, call_id: int, error: str) -> None:
        """Note why the attempt failed; the next one is already scheduled."""
        with self.database.transaction() as db:
            db.execute(
                sa.update(pending_calls)
                .where(pending_calls.c.id == call_id)
                .values(last_error=error[:MAX_ERROR], in_flight_until=None)
            )

    def refuse(self, call_id: int, error: str) -> None:
        """Keep a call vcita refused for an operator: it is never made again by itself."""
        with self.database.transaction() as db:
            db.execute(
                sa.update(pending_calls)
                .where(pending_calls.c.id == call_id)
                .values(
                    state=State.REFUSED.value, last_error=error[:MAX_ERROR], in_flight_until=None
                )
            )

    def drop(self, call_id: int) -> bool:
        """Forget a call an operator settled with vcita; return whether there was one."""
        with self.database.transaction() as db:
            deleted = db.execute(sa.delete(pending_calls).where(pending_calls.c.id == call_id))
        return deleted.rowcount == 1

    def all(self) -> list[PendingCall]:
        """Return every call owed to vcita, pending or refused, oldest first; no token."""
        with self.database.transaction() as db:
            rows = db.execute(sa.select(pending_calls).order_by(pending_calls.c.id)).all()
        return [_pending_call(row) for row in rows]

    def sealed_revocations(
        self, business_uid: str, staff_uid: str, owed_before: datetime
    ) -> dict[int, str]:
        """Return the sealed tokens of the revocations owed for a staff member, by call id.

        Only those owed before `owed_before`: a Disconnect since owes one of its own.
        """
        with self.database.transaction() as db:
            rows = db.execute(
                sa.select(pending_calls.c.id, pending_calls.c.encrypted_token).where(
                    pending_calls.c.kind == Kind.REVOKE.value,
                    pending_calls.c.business_uid == business_uid,
                    pending_calls.c.staff_uid == staff_uid,
                    pending_calls.c.encrypted_token.is_not(None),
                    pending_calls.c.created_at < owed_before,
                )
            ).all()
        return {row.id: row.encrypted_token for row in rows}

    def subscribe_owed(self, connection_id: str) -> int | None:
        """Return the id of the first subscribe owed for a connection, if one is."""
        with self.database.transaction() as db:
            return db.execute(
                sa.select(sa.func.min(pending_calls.c.id)).where(
                    pending_calls.c.kind == Kind.SUBSCRIBE.value,
                    pending_calls.c.connection_id == connection_id,
                )
            ).scalar()


def backoff(attempts: int) -> timedelta:
    """Return how long after attempt number `attempts` the next one comes."""
    return min(FIRST_BACKOFF * 2 ** min(attempts - 1, 16), LONGEST_BACKOFF)


def _runnable(now: datetime, due_only: bool) -> sa.ColumnElement[bool]:
    """Say, in SQL, which calls may be claimed now."""
    pending = pending_calls.c.state == State.PENDING.value
    if due_only:
        return sa.and_(pending, pending_calls.c.next_attempt_at <= now)
    not_in_flight = sa.or_(
        pending_calls.c.in_flight_until.is_(None), pending_calls.c.in_flight_until <= now
    )
    return sa.and_(pending, not_in_flight)


def _pending_call(row: sa.Row) -> PendingCall:
    return PendingCall(
        id=row.id,
        kind=Kind(row.kind),
        business_uid=row.business_uid,
        staff_uid=row.staff_uid,
        state=State(row.state),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        created_at=row.created_at,
    )


def _claimed_call(row: sa.Row) -> ClaimedCall:
    return ClaimedCall(
        _pending_call(row), row.connection_id, row.encrypted_token, row.encrypted_target_url
    )


def init_app(app: Flask) -> None:
    """Keep the pending calls on the app's database."""
    app.extensions["pending_calls"] = PendingCalls(app.extensions["database"])


def get_pending_calls() -> PendingCalls:
    """Return the current app's pending calls."""
    return current_app.extensions["pending_calls"]
