"""Connections keep what vcita last said: userinfo, recent clients, when they were read.

Three nullable columns on connections (NULL until the dashboard first reads vcita), so
existing rows and their tokens stay as they are; on SQLite, too, adding a nullable
column is a plain ALTER TABLE. A database the app created from commit 628ebe8 on,
before migrations, already has them: each is added only when it is missing.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NEW_COLUMNS = (
    # Fernet ciphertexts, like the token: userinfo names a person, clients are people.
    ("encrypted_userinfo", sa.Text),
    ("encrypted_recent_clients", sa.Text),
    ("userinfo_read_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    existing = {column["name"] for column in sa.inspect(op.get_bind()).get_columns("connections")}
    for name, type_ in NEW_COLUMNS:
        if name not in existing:
            op.add_column("connections", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    # What vcita last said is dropped; the next dashboard visit asks vcita again. SQLite
    # drops a column in place since 3.35.
    for name, _ in reversed(NEW_COLUMNS):
        op.drop_column("connections", name)
