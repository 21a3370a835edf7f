"""Every table the app keeps, in one metadata: what the migrations build and check against.

Each table belongs to one store (`app/storage/connections.py`, `app/connect/used_states.py`,
`app/connect/flow_traces.py`, `app/app_market/handoffs.py`, `app/token_use/subscriptions.py`,
`app/token_use/pending_calls.py`); they are declared together because the schema is
migrated as one (`app/storage/migrations/`). A change here needs a revision too. A column
that holds a value sealed with `sealer.py` is named encrypted_*: `resealing.py` finds it so.
"""

from datetime import UTC, datetime
from typing import TypedDict, Unpack

import sqlalchemy as sa


class UTCDateTime(sa.TypeDecorator):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite keeps no timezone, so values are converted to UTC on the way in and
    marked as UTC on the way out; PostgreSQL's timestamptz is normalised the same way.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = sa.MetaData()


class ColumnOptions(TypedDict, total=False):
    """What a table says of its `connection_id` column, beyond what every one shares."""

    nullable: bool
    primary_key: bool
    index: bool


def of_a_connection(**column: Unpack[ColumnOptions]) -> sa.Column:
    """Return a `connection_id` column: the row belongs to that connection, and goes with it."""
    return sa.Column(
        "connection_id",
        sa.String(64),
        sa.ForeignKey("connections.id", ondelete="CASCADE"),
        **column,
    )


connections = sa.Table(
    "connections",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("business_uid", sa.String(255), nullable=False),
    sa.Column("staff_uid", sa.String(255), nullable=False),
    # A Fernet token (ciphertext): the access token itself is never written.
    sa.Column("encrypted_access_token", sa.Text, nullable=False),
    sa.Column("token_type", sa.String(40), nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("connected_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # What vcita last said, for a dashboard that outlives an outage: Fernet, like the
    # token, since userinfo names a person and clients are people. NULL until first read.
    sa.Column("encrypted_userinfo", sa.Text, nullable=True),
    sa.Column("encrypted_recent_clients", sa.Text, nullable=True),
    sa.Column("userinfo_read_at", UTCDateTime, nullable=True),
    # The clients list has a time of its own: it may fail while userinfo answers.
    sa.Column("recent_clients_read_at", UTCDateTime, nullable=True),
    # One connection per business and staff member: connecting again replaces it.
    sa.UniqueConstraint("business_uid", "staff_uid", name="uq_connections_business_staff"),
)

used_states = sa.Table(
    "used_states",
    metadata,
    # sha256 of the state: a leaked table must not hand out states still in flight.
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
)

handoffs = sa.Table(
    "handoffs",
    metadata,
    # sha256 of a one-time code a popup hands to vcita's frame (app/app_market/handoffs.py).
    sa.Column("code_hash", sa.String(64), primary_key=True),
    # sha256 of the secret in the frame's session: only that session can redeem it.
    sa.Column("binding", sa.String(64), nullable=False),
    of_a_connection(nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
)

connection_activity = sa.Table(
    "connection_activity",
    metadata,
    # When the app last used a connection's token (a dashboard, a CLI call).
    of_a_connection(primary_key=True),
    sa.Column("last_used_at", UTCDateTime, nullable=False),
)

webhook_subscriptions = sa.Table(
    "webhook_subscriptions",
    metadata,
    # A connection's subscription to vcita's application/uninstalled event.
    of_a_connection(primary_key=True),
    # sha256 of the secret path segment of its target URL: deliveries are found by it.
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    # Fernet, like the token: the URL holds the secret, needed again to unsubscribe.
    sa.Column("encrypted_target_url", sa.Text, nullable=False),
    sa.Column("subscribed_at", UTCDateTime, nullable=False),
)

pending_calls = sa.Table(
    "pending_calls",
    metadata,
    # A call to vcita that may not be lost, until vcita answers it (app/token_use/calls.py).
    # Numbered as owed: an unsubscribe runs before the revoke of the same token.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),  # revoke | subscribe | unsubscribe
    # Whose call it is, for the operator's list (`flask vcita revocations`).
    sa.Column("business_uid", sa.String(255), nullable=False),
    sa.Column("staff_uid", sa.String(255), nullable=False),
    # A subscribe is made with its connection's token, and goes with the connection.
    of_a_connection(nullable=True, index=True),
    # Fernet, like the connection's: the token a revoke or an unsubscribe is made with,
    # and an unsubscribe's or a subscribe's target URL (it holds the webhook's secret).
    sa.Column("encrypted_token", sa.Text, nullable=True),
    sa.Column("encrypted_target_url", sa.Text, nullable=True),
    sa.Column("state", sa.String(16), nullable=False),  # pending | refused
    sa.Column("attempts", sa.Integer, nullable=False),
    # An attempt is claimed by writing both first: no two instances make it at once.
    sa.Column("next_attempt_at", UTCDateTime, nullable=False, index=True),
    sa.Column("in_flight_until", UTCDateTime, nullable=True),  # NULL once vcita answered
    sa.Column("last_error", sa.String(255), nullable=True),  # vcita's answer, never a token
    sa.Column("created_at", UTCDateTime, nullable=False),
)

flow_traces = sa.Table(
    "flow_traces",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    # Tied to the connection it describes: disconnecting deletes it too.
    of_a_connection(nullable=False, index=True),
    # Fernet, like the token: secrets are already out, but userinfo names a person.
    sa.Column("encrypted_steps", sa.Text, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
)
