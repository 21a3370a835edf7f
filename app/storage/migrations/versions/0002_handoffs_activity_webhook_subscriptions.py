"""Handoffs, connection activity and webhook subscriptions, where they are missing.

The tables the App Market handoff and the uninstall webhook added (app/database.py at
commit ffb1f5c). That version created missing tables itself at startup, so a database
it ran on already has some or all of them, with this very shape: each is created only
when it is not there yet.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "handoffs" not in existing:
        op.create_table(
            "handoffs",
            sa.Column("code_hash", sa.String(64), primary_key=True),
            sa.Column("binding", sa.String(64), nullable=False),
            sa.Column(
                "connection_id",
                sa.String(64),
                sa.ForeignKey("connections.id", ondelete="CASCADE"),
                nullable=False,
            ),
            sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        )
        op.create_index("ix_handoffs_expires_at", "handoffs", ["expires_at"])
    if "connection_activity" not in existing:
        op.create_table(
            "connection_activity",
            sa.Column(
                "connection_id",
                sa.String(64),
                sa.ForeignKey("connections.id", ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        )
    if "webhook_subscriptions" not in existing:
        op.create_table(
            "webhook_subscriptions",
            sa.Column(
                "connection_id",
                sa.String(64),
                sa.ForeignKey("connections.id", ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
            sa.Column("encrypted_target_url", sa.Text, nullable=False),
            sa.Column("subscribed_at", sa.DateTime(timezone=True), nullable=False),
        )


def downgrade() -> None:
    # Pending handoffs, activity times and webhook subscriptions are lost; connections
    # stay. Subscriptions stay on vcita's side too: unsubscribe before downgrading.
    op.drop_table("webhook_subscriptions")
    op.drop_table("connection_activity")
    op.drop_table("handoffs")
