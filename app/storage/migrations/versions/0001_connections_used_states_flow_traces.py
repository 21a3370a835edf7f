"""The schema when issue 12 was filed: connections, used states and flow traces.

Exactly the tables that app/database.py created at commit 09ee3c1, with their
constraint and index names. Databases made by that version (or any later one) have no
alembic_version table: `flask init-db` stamps them with this revision instead of
running it, and upgrades them from here.

Timestamps are the plain sa.DateTime(timezone=True) under the app's UTCDateTime, so
this file never imports app code that may change later.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("business_uid", sa.String(255), nullable=False),
        sa.Column("staff_uid", sa.String(255), nullable=False),
        sa.Column("encrypted_access_token", sa.Text, nullable=False),
        sa.Column("token_type", sa.String(40), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("business_uid", "staff_uid", name="uq_connections_business_staff"),
    )
    op.create_table(
        "used_states",
        sa.Column("state_hash", sa.String(64), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_used_states_expires_at", "used_states", ["expires_at"])
    op.create_table(
        "flow_traces",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "connection_id",
            sa.String(64),
            sa.ForeignKey("connections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("encrypted_steps", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_flow_traces_connection_id", "flow_traces", ["connection_id"])
    op.create_index("ix_flow_traces_expires_at", "flow_traces", ["expires_at"])


def downgrade() -> None:
    # Back to an empty database: every connection and its token is lost.
    op.drop_table("flow_traces")
    op.drop_table("used_states")
    op.drop_table("connections")
