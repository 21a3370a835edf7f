"""A business's client as vcita's `GET /platform/v1/clients` shows it (clients-openapi.json).

One shape for the demo clients of the businesses file and for the clients a test adds
through the control API: every documented field, in the example's order, with null (or
`[]` for tags) where the source has nothing. Only `id` and the two timestamps are checked,
because the endpoint pages, orders and filters by them; any other field may hold any JSON
value, so that a test can plant what a real business could type (markup, odd types).
"""

from __future__ import annotations

import re
import secrets
import string
from datetime import UTC, datetime
from typing import Any

# The keys of vcita's example client, in its order.
CLIENT_FIELDS = (
    "address",
    "business_uid",
    "campaign",
    "channel",
    "created_at",
    "custom_field1",
    "custom_field2",
    "custom_field3",
    "customer_status",
    "email",
    "first_name",
    "id",
    "last_name",
    "mobile_phone",
    "normalized_phone",
    "opt_in",
    "source",
    "source_url",
    "tags",
    "updated_at",
)
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# vcita's ids look like "czpvt3f246p4cw9i": 16 lower-case letters and digits.
ID_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 16


def client_record(
    entry: object, business_uid: str, *, now: datetime | None = None
) -> dict[str, Any]:
    """Return the client in vcita's shape, or raise ValueError saying what is wrong.

    A missing `id` gets a fresh random one; missing or null timestamps get `now`
    (updated_at follows created_at), as for a client just added to the business.
    """
    if not isinstance(entry, dict):
        raise ValueError("a client must be a JSON object")
    unknown = sorted(set(entry) - set(CLIENT_FIELDS))
    if unknown:
        raise ValueError(
            f"unknown client field {unknown[0]!r}; vcita's fields are {', '.join(CLIENT_FIELDS)}"
        )
    client_id = entry["id"] if "id" in entry else new_client_id()
    if not isinstance(client_id, str) or not CLIENT_ID.fullmatch(client_id):
        raise ValueError("a client's id must be 1 to 64 letters, digits, _ or -")
    created_at = timestamp(_given(entry, "created_at", now or datetime.now(UTC)), "created_at")
    updated_at = timestamp(_given(entry, "updated_at", created_at), "updated_at")
    record: dict[str, Any] = {name: entry.get(name) for name in CLIENT_FIELDS}
    record.update(
        id=client_id,
        # The business's own uid, whatever the source says: a client belongs to one business.
        business_uid=business_uid,
        created_at=created_at,
        updated_at=updated_at,
        tags=entry.get("tags", []),
    )
    return record


def _given(entry: dict[str, Any], name: str, default: object) -> object:
    value = entry.get(name)
    return default if value is None else value


def timestamp(value: object, name: str) -> str:
    """Return a time as vcita writes it, "2025-08-05T06:56:27Z" (UTC, whole seconds).

    That form sorts as text in time order, which the endpoint relies on.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        moment = parse_time(value, name)
    else:
        raise ValueError(f"{name} must be an ISO 8601 time such as 2025-08-05T06:56:27Z")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except OverflowError:  # year 1 with a positive offset is before year 1 in UTC
        raise ValueError(f"{name} is out of range") from None


def parse_time(value: str, name: str) -> datetime:
    """Parse an ISO 8601 date or time ("2019-01-01", "2019-01-01T10:00:00Z"); naive is UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{name} must be an ISO 8601 date or time such as 2019-01-01 or"
            f" 2025-08-05T06:56:27Z, not {value[:40]!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new_client_id() -> str:
    """Return a random id shaped like vcita's."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))
