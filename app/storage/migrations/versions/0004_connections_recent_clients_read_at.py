"""The recent clients a connection keeps get a read time of their own.

vcita may list the clients on one view and fail to on the next, while userinfo answers
both times: the panel then shows the clients last listed, and must say when that was,
which userinfo_read_at no longer tells. Clients kept before this revision were read
with userinfo, so they take its time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "connections",
        sa.Column("recent_clients_read_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.execute(
        "UPDATE connections SET recent_clients_read_at = userinfo_read_at"
        " WHERE encrypted_recent_clients IS NOT NULL"
    )


def downgrade() -> None:
    # The clients' own read time is dropped; the panel then dates them with userinfo's.
    op.drop_column("connections", "recent_clients_read_at")
