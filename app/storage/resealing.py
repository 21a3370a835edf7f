"""Key rotation's second half: seal again, with the newest key, every value an older key sealed.

Reading a connection reseals its token, but nothing else is read so surely: a webhook's
target URL, a call vcita must still hear, a flow trace, what vcita last said. So before
an old key leaves TOKEN_ENCRYPTION_KEY, `flask --app app vcita reseal` runs this over
every sealed column (every column named encrypted_*, in `tables.py`), a batch of rows at
a time, while the app keeps serving: a value is written back only if it is still the one
read, so a value the app rewrote meanwhile is left as the app wrote it.
"""

from dataclasses import dataclass, field

import sqlalchemy as sa

from .database import Database
from .sealer import InvalidToken, Sealer
from .tables import connections, flow_traces, pending_calls, webhook_subscriptions

# Pending calls last: Disconnect copies a connection's and a subscription's sealed values
# into them as they are, and a call owed meanwhile is numbered after those already read.
TABLES = (connections, flow_traces, webhook_subscriptions, pending_calls)
BATCH = 500


@dataclass
class ResealedColumn:
    """What resealing did to one sealed column: counts, and whose values no key opens."""

    name: str  # table.column
    resealed: int = 0
    current: int = 0  # already sealed with the newest key
    changed: int = 0  # rewritten by the app between the read and the write: not touched
    unreadable: list[str] = field(default_factory=list)  # "business B, staff S", per row


def sealed_columns(table: sa.Table) -> list[sa.Column]:
    """Return the columns of `table` that hold a Fernet token."""
    return [column for column in table.c if column.name.startswith("encrypted_")]


def reseal_everything(
    database: Database, sealer: Sealer, batch: int = BATCH
) -> list[ResealedColumn]:
    """Seal again with the newest key every value an older key sealed; say what was done."""
    return [
        column_report
        for table in TABLES
        for column_report in _reseal_table(database, sealer, table, batch)
    ]


def _reseal_table(
    database: Database, sealer: Sealer, table: sa.Table, batch: int
) -> list[ResealedColumn]:
    [key] = table.primary_key.columns
    columns = sealed_columns(table)
    reports = [ResealedColumn(f"{table.name}.{column.name}") for column in columns]
    query = sa.select(key.label("key"), *columns, *_whose(table)).order_by(key).limit(batch)
    if "business_uid" not in table.c:  # whose it is: its connection's business and staff
        query = query.join_from(table, connections, connections.c.id == table.c.connection_id)
    last = None
    while True:
        with database.transaction() as db:
            page = query if last is None else query.where(key > last)
            rows = db.execute(page).all()
        if not rows:
            return reports
        writes = []
        for row in rows:
            for column, report in zip(columns, reports, strict=True):
                sealed = getattr(row, column.name)
                if sealed is None:
                    continue
                try:
                    resealed = sealer.reseal(sealed)
                except InvalidToken:
                    report.unreadable.append(_describe(table, row))
                    continue
                if resealed is None:
                    report.current += 1
                else:
                    writes.append((report, column, row.key, sealed, resealed))
        with database.transaction() as db:
            for report, column, row_key, sealed, resealed in writes:
                written = db.execute(
                    sa.update(table)
                    .where(key == row_key)
                    .where(column == sealed)  # unless the app rewrote it since it was read
                    .values({column.name: resealed})
                ).rowcount
                if written:
                    report.resealed += 1
                else:
                    report.changed += 1
        last = rows[-1].key


def _whose(table: sa.Table) -> tuple[sa.Column, sa.Column]:
    """Return the columns that say whose a row of `table` is."""
    owner = table if "business_uid" in table.c else connections
    return owner.c.business_uid, owner.c.staff_uid


def _describe(table: sa.Table, row: sa.Row) -> str:
    """Name a row for the operator: whose it is, never a value or a connection's id.

    A connection's id is what a browser's session holds to reach it; a call's number is
    what `flask vcita revocations` lists.
    """
    whose = f"business {row.business_uid}, staff {row.staff_uid}"
    return f"call #{row.key}, {whose}" if table is pending_calls else whose
