"""Pending calls: what vcita must still hear, kept until it answers.

Disconnect now revokes the token at vcita, and a connect subscribes to the uninstall
webhook; when vcita does not answer, the call is kept here (its token and target URL
sealed like the connection's) and made again with backoff, so a revocation is never lost
to an outage or a restart (app/token_use/pending_calls.py, app/token_use/calls.py). A
subscribe belongs to its connection and goes with it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    timestamp = sa.DateTime(timezone=True)
    op.create_table(
        "pending_calls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("business_uid", sa.String(255), nullable=False),
        sa.Column("staff_uid", sa.String(255), nullable=False),
        sa.Column(
            "connection_id",
            sa.String(64),
            sa.ForeignKey("connections.id", ondelete="CASCADE"),
            nullable=True,
        ),
        sa.Column("encrypted_token", sa.Text, nullable=True),
        sa.Column("encrypted_target_url", sa.Text, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", timestamp, nullable=False),
        sa.Column("in_flight_until", timestamp, nullable=True),
        sa.Column("last_error", sa.String(255), nullable=True),
        sa.Column("created_at", timestamp, nullable=False),
    )
    op.create_index("ix_pending_calls_connection_id", "pending_calls", ["connection_id"])
    op.create_index("ix_pending_calls_next_attempt_at", "pending_calls", ["next_attempt_at"])


def downgrade() -> None:
    # Calls still owed to vcita are lost: a token Disconnect could not revoke stays valid
    # at vcita. Run `flask vcita revocations --retry` until it lists nothing, first.
    op.drop_table("pending_calls")
