"""The dashboard's "Recent clients" panel: the five clients vcita updated last, in few requests.

vcita's clients list (`GET /platform/v1/clients`) pages with `page` and `per_page` (100 at
most) and documents no sort order: the first page of a long list need not hold its
newest clients. It does narrow the list to a range of `updated_at` (`search_by=updated_at`,
`updated_at[gte]`, `updated_at[lte]`, clients-openapi.json). So the panel asks for the
first page of a range at a time, and each answer says where to look next:

- a page of fewer than 100 clients is the whole range: every client in it is known;
- a full page means the range holds more: the next request asks for its later part, from
  the later of the fifth newest time the page showed (at least five clients are that
  new) and a point halfway back in time (the page may show none of the newest);
- when a later part holds fewer than five, the rest are in the part before it, from the
  time the full page showed enough of them at;
- when the range asked for first holds fewer than five, the rest are older.

The first read of a connection asks for every client: a business with fewer than 100 is
answered at once. A later read starts at the fifth newest time the last one found: one
request, unless more than 100 clients were updated since. Ranges meet at whole seconds,
as vcita writes its times. What a read costs a business of 10, 500 or 50,000 clients:
docs/using-the-token.md.
"""

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..vcita import AccessRevoked, AccessToken, VcitaError
from ..vcita_client import get_vcita

logger = logging.getLogger(__name__)

CLIENTS_PATH = "/platform/v1/clients"
SHOWN = 5
PER_PAGE = 100  # vcita's largest page
# A bound on the requests of one read, not reached in practice: a busy business takes 1
# to 4, one nobody touched for six months up to 14 (docs/using-the-token.md).
MAX_REQUESTS = 20
MAX_TEXT = 200
SECOND = timedelta(seconds=1)
EARLIEST, LATEST = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC) - SECOND

ListClients = Callable[[dict], list]  # the query's parameters -> the page's items


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


def recent_clients(token: AccessToken, since: datetime | None = None) -> list[ClientRow] | None:
    """Return the business's most recently updated clients; None if vcita did not answer.

    `since` is a time at or after which at least five clients were updated when last
    read (`fifth_newest`): the search starts there. A 401 is not the panel's to handle:
    it means the business revoked the app, and AccessRevoked goes to the dashboard,
    which forgets the connection.
    """
    vcita = get_vcita()

    def first_page(params: dict) -> list:
        return list(vcita.api_pages(token, CLIENTS_PATH, params, max_pages=1))

    try:
        items = newest_clients(first_page, datetime.now(UTC), since)
    except AccessRevoked:
        raise
    except VcitaError as error:
        logger.warning("Recent clients: vcita did not answer: %s", error)
        return None
    return [_row(item) for item in items]


def fifth_newest(rows: list[dict] | None) -> datetime | None:
    """Return the time of the fifth newest of kept rows: where the next read may start."""
    times = sorted((t for row in rows or () if (t := _time(row.get("updated_at")))), reverse=True)
    return times[SHOWN - 1] if len(times) >= SHOWN else None


@dataclass(frozen=True)
class UpdatedRange:
    """The clients updated from `start` to `end`, both included; None is no bound."""

    start: datetime | None = None
    end: datetime | None = None

    def params(self, per_page: int = PER_PAGE) -> dict:
        """Return the query that asks vcita for the range's first page."""
        params: dict = {"page": 1, "per_page": per_page}
        if self.start is not None or self.end is not None:
            params["search_by"] = "updated_at"
        if self.start is not None:
            params["updated_at[gte]"] = _vcita_time(self.start)
        if self.end is not None:
            params["updated_at[lte]"] = _vcita_time(self.end)
        return params

    def holds(self, moment: datetime) -> bool:
        return (self.start is None or self.start <= moment) and (
            self.end is None or moment <= self.end
        )


Timed = tuple[datetime, dict]  # a client and when vcita last updated it


def newest_clients(
    list_clients: ListClients,
    now: datetime,
    since: datetime | None = None,
    per_page: int = PER_PAGE,
) -> list[dict]:
    """Return the SHOWN clients updated last, newest first, asking as few pages as it takes.

    Right whatever order vcita lists a range in (see the module's docstring): each range is
    either answered whole or narrowed by what its full page showed. Clients without a
    readable `updated_at` come last, and only from a read of every client.
    """
    found: dict[object, Timed] = {}  # every client of the ranges answered whole
    undated: list[dict] = []
    asked = UpdatedRange(start=_whole_second(since) if since else None)
    full: tuple[UpdatedRange, list[Timed]] | None = None  # the last range that filled a page
    for _ in range(MAX_REQUESTS):
        page = [item for item in list_clients(asked.params(per_page)) if isinstance(item, dict)]
        timed = [(t, item) for item in page if (t := _time(item.get("updated_at")))]
        timed = [entry for entry in timed if asked.holds(entry[0])]
        if len(page) >= per_page:  # the range holds more than this page
            full = (asked, timed)
            narrower = _later_part(asked, timed, SHOWN - len(found), now)
        else:  # the whole range
            _add(found, timed)
            start = asked.start
            if start is None:
                undated = [item for item in page if not _time(item.get("updated_at"))]
                break
            if len(found) >= SHOWN or start <= EARLIEST:
                break
            if full is None:  # fewer than five since `since`: the rest are older
                asked = UpdatedRange(end=start - SECOND)
                continue
            # The later part of a full range held too few: the rest lie in its earlier
            # part, and the full page showed where at least that many are.
            earlier = UpdatedRange(full[0].start, start - SECOND)
            full = (earlier, [entry for entry in full[1] if earlier.holds(entry[0])])
            narrower = _later_part(*full, SHOWN - len(found), now)
        if narrower is None:  # one second's clients, all as new: any of them will do
            _add(found, _newest_first(full[1])[: SHOWN - len(found)])
            break
        asked = narrower
    else:
        logger.warning("Recent clients: %d requests did not narrow the list enough", MAX_REQUESTS)
    newest = [item for _, item in _newest_first(list(found.values()))]
    return (newest + undated)[:SHOWN]


def _later_part(
    asked: UpdatedRange, timed: list[Timed], needed: int, now: datetime
) -> UpdatedRange | None:
    """Return a later part of a range that holds more than a page; None if it is one second.

    It starts at the `needed`-th newest time the page showed, at or after which at least
    that many clients were updated; or at a point halfway back in time, when that is
    later: a page need not show the range's newest clients at all. Not when the page
    shows them all as old as the range's start (a bulk update): one second later then.
    """
    times = sorted((moment for moment, _ in timed), reverse=True)
    oldest = asked.start or (times[-1] if times else None)
    if oldest is None:
        return None  # the page showed no time inside the range: nothing to narrow by
    start = times[needed - 1] if len(times) >= needed else oldest
    if start > oldest:
        start = max(start, _halfway_back(oldest, asked.end, now))
    if asked.start is not None and asked.start < LATEST:
        start = max(start, asked.start + SECOND)  # at least one second later
    start = _whole_second(start)
    if (asked.end is not None and start > asked.end) or (asked.start and start <= asked.start):
        return None  # the range is one second: its clients are all as new as each other
    return UpdatedRange(start, asked.end)


def _halfway_back(oldest: datetime, end: datetime | None, now: datetime) -> datetime:
    """Return the time halfway between `oldest` and `end` (or now), in how long ago they are.

    Geometrically while one is many times further back than the other, so that a range
    reaching years back is cut to weeks, then days, rather than to a year and a half: the
    newest clients are what the panel wants. A range that reaches now ends a second ago.
    """
    farthest = (now - oldest).total_seconds()
    nearest = max((now - end).total_seconds() if end else 0.0, 1.0)
    geometric = farthest > 4 * nearest
    ago = math.sqrt(farthest * nearest) if geometric else (farthest + nearest) / 2
    return now - timedelta(seconds=ago)


def _add(found: dict[object, Timed], timed: list[Timed]) -> None:
    for moment, item in timed:
        # Ranges share their end second; a client in both is one client.
        found[item.get("id") or id(item)] = (moment, item)


def _newest_first(timed: list[Timed]) -> list[Timed]:
    return sorted(timed, key=lambda entry: entry[0], reverse=True)


def _whole_second(moment: datetime) -> datetime:
    """vcita writes its times in whole seconds ("2025-08-05T06:56:27Z")."""
    return moment.replace(microsecond=0)


def _vcita_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        # In UTC, whatever offset vcita wrote: times compare and print alike.
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # not a time; or one past year 9999 in UTC
        return None
