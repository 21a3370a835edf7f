"""The dashboard's "Recent clients" panel: a live read of vcita's API with the stored token.

vcita's clients list (`GET /platform/v1/clients`) pages with `page` and `per_page` and
documents no sort order, so the panel reads up to MAX_PAGES pages and shows the five
most recently updated. When vcita does not answer, the panel says so and the rest of
the dashboard still renders.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from ..vcita import AccessRevoked, AccessToken, VcitaError
from ..vcita_client import get_vcita

logger = logging.getLogger(__name__)

CLIENTS_PATH = "/platform/v1/clients"
SHOWN = 5
MAX_PAGES = 5  # 500 clients at most: enough to find recent ones, bounded for the page
MAX_TEXT = 200


@dataclass(frozen=True)
class ClientRow:
    """One client as the panel shows it."""

    name: str
    email: str
    status: str
    updated_at: datetime | None

    def as_json(self) -> dict:
        """Return the row as JSON values, to keep with the connection."""
        updated_at = self.updated_at.isoformat() if self.updated_at else None
        return {
            "name": self.name,
            "email": self.email,
            "status": self.status,
            "updated_at": updated_at,
        }

    @classmethod
    def from_json(cls, value: dict) -> "ClientRow":
        """Read back a row kept with `as_json`."""
        return cls(
            name=value["name"],
            email=value["email"],
            status=value["status"],
            updated_at=_time(value["updated_at"]),
        )


def recent_clients(token: AccessToken) -> list[ClientRow] | None:
    """Return the business's most recently updated clients; None if vcita did not answer.

    A 401 is not the panel's to handle: it means the business revoked the app, and
    AccessRevoked goes to the dashboard, which forgets the connection.
    """
    try:
        items = list(get_vcita().api_pages(token, CLIENTS_PATH, max_pages=MAX_PAGES))
    except AccessRevoked:
        raise
    except VcitaError as error:
        logger.warning("Recent clients: vcita did not answer: %s", error)
        return None
    rows = [_row(item) for item in items if isinstance(item, dict)]
    oldest = datetime.min.replace(tzinfo=UTC)
    rows.sort(key=lambda row: row.updated_at or oldest, reverse=True)
    return rows[:SHOWN]


def _row(item: dict) -> ClientRow:
    names = [_text(item.get(key)) for key in ("first_name", "last_name")]
    return ClientRow(
        name=" ".join(name for name in names if name),  # empty: the page says "(no name)"
        email=_text(item.get("email")),
        status=_text(item.get("customer_status")),
        updated_at=_time(item.get("updated_at")),
    )


def _text(value: object) -> str:
    """A string vcita sent, cut to a length a table cell can show; anything else is empty."""
    return value.strip()[:MAX_TEXT] if isinstance(value, str) else ""


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
