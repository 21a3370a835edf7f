"""GET /platform/v1/clients: the business's clients, a page at a time (clients-openapi.json).

The token decides the business; no parameter can reach another business's clients. The
list is in the order clients were created (created_at, then the order they were added),
never by updated_at: a client that pages through it sees each client once even while
clients are edited. `search_term` (with `search_by`) and `updated_at[gte|lte]` narrow
it first; `page` and `per_page` cut the page. A parameter vcita documents but with a value
it cannot mean is refused with 422, the status the file gives for invalid parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, request

from .client_records import parse_time, timestamp
from .platform_api import calling_app, ok, refusal, unauthorized
from .recording import sandbox_state, serve_observed

bp = Blueprint("clients", __name__)

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100
SEARCH_BY = ("email", "uid", "phone", "updated_at")
UPDATED_AT_OPERATORS = ("gte", "lte")
WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")
DATE_ONLY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class InvalidParameter(ValueError):
    """A query parameter the endpoint cannot use (422)."""


@bp.get("/platform/v1/clients")
def clients() -> Response:
    """List a page of the token's business's clients, recording the request."""
    return serve_observed("clients", list_clients)


def list_clients() -> Response:
    """Answer `{"status": "OK", "data": {"clients": [...]}}` for the caller's business."""
    caller = calling_app()
    if caller is None:
        return unauthorized()
    try:
        query = ClientQuery.from_args(request.args)
    except InvalidParameter as problem:
        return refusal(422, str(problem))
    everyone = [*caller.business.clients, *sandbox_state().added_clients(caller.business.uid)]
    return ok({"clients": query.page_of(everyone)})


@dataclass(frozen=True)
class ClientQuery:
    """What a request asks for: a page, a search and a time range of updated_at."""

    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    search_term: str = ""
    search_by: str | None = None
    updated_from: str | None = None  # inclusive, as "2025-08-05T06:56:27Z"
    updated_before: str | None = None  # exclusive
    updated_until: str | None = None  # inclusive

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> ClientQuery:
        """Read the query parameters; raise InvalidParameter naming the first bad one."""
        search_by = args.get("search_by") or None
        if search_by is not None and search_by not in SEARCH_BY:
            raise InvalidParameter(f"search_by must be one of {', '.join(SEARCH_BY)}")
        updated_from, updated_before, updated_until = _updated_at_range(args)
        return cls(
            page=_whole_number(args, "page", 1, None),
            per_page=_whole_number(args, "per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE),
            search_term=args.get("search_term", ""),
            search_by=search_by,
            updated_from=updated_from,
            updated_before=updated_before,
            updated_until=updated_until,
        )

    def page_of(self, clients: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Return the requested page of the matching clients, in the order they were created.

        A page past the end is empty, as a client paging through expects.
        """
        matching = [client for client in clients if self.matches(client)]
        # sorted() is stable: clients created in the same second keep the order they came in.
        matching.sort(key=lambda client: client["created_at"])
        start = (self.page - 1) * self.per_page
        return matching[start : start + self.per_page]

    def matches(self, client: dict[str, Any]) -> bool:
        """Say whether a client passes the search and the updated_at range."""
        updated = client["updated_at"]
        if self.updated_from is not None and updated < self.updated_from:
            return False
        if self.updated_before is not None and updated >= self.updated_before:
            return False
        if self.updated_until is not None and updated > self.updated_until:
            return False
        return not self.search_term or SEARCHES[self.search_by](client, self.search_term)


def _whole_number(args: Mapping[str, str], name: str, default: int, most: int | None) -> int:
    value = args.get(name)
    if value is None or value == "":
        return default
    number = int(value) if WHOLE_NUMBER.fullmatch(value) else 0
    if number < 1 or (most is not None and number > most):
        limit = f"from 1 to {most}" if most is not None else "from 1"
        # vcita documents the maximum; refusing more (rather than quietly sending fewer)
        # keeps an app from mistaking a short page for the last one.
        raise InvalidParameter(f"{name} must be a whole number {limit}, not {value[:20]!r}")
    return number


def _updated_at_range(args: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    """Return (from, before, until) for `updated_at[gte]` and `updated_at[lte]`.

    A date alone covers its whole day: `updated_at[lte]=2025-08-05` includes that day.
    """
    operators = [name[len("updated_at") :] for name in args if name.startswith("updated_at")]
    unknown = [op for op in operators if op not in (f"[{o}]" for o in UPDATED_AT_OPERATORS)]
    if unknown:
        raise InvalidParameter(
            "filter updated_at with updated_at[gte] or updated_at[lte],"
            f" such as updated_at[gte]=2019-01-01; not updated_at{unknown[0][:20]}"
        )
    updated_from = updated_before = updated_until = None
    try:
        if "updated_at[gte]" in args:
            updated_from = timestamp(args["updated_at[gte]"], "updated_at[gte]")
        if "updated_at[lte]" in args:
            value = args["updated_at[lte]"]
            if DATE_ONLY.fullmatch(value):
                updated_before = _day_after(parse_time(value, "updated_at[lte]"))
            else:
                updated_until = timestamp(value, "updated_at[lte]")
    except ValueError as problem:
        raise InvalidParameter(str(problem)) from None
    return updated_from, updated_before, updated_until


def _day_after(day: datetime) -> str | None:
    """Return the start of the next day, or None (no bound) after the last one, 9999-12-31."""
    try:
        return timestamp(day + timedelta(days=1), "updated_at[lte]")
    except OverflowError:
        return None


def _text(value: object) -> str:
    """Return a field as lower-case text to search in; a field that is not text has none."""
    return value.casefold() if isinstance(value, str) else ""


def _digits(value: object) -> str:
    return "".join(c for c in value if c.isdigit()) if isinstance(value, str) else ""


def _anywhere(client: dict[str, Any], term: str) -> bool:
    """Match the name (first, last or both), e-mail or phone, ignoring case."""
    full_name = f"{_text(client['first_name'])} {_text(client['last_name'])}"
    fields = (full_name, _text(client["email"]), _text(client["mobile_phone"]))
    return any(term.casefold() in field for field in fields)


def _by_phone(client: dict[str, Any], term: str) -> bool:
    """Match the digits of the term within the phone's: "+1 617-555" finds +16175550123."""
    digits = _digits(term)
    return bool(digits) and digits in _digits(client["mobile_phone"])


SEARCHES: dict[str | None, Callable[[dict[str, Any], str], bool]] = {
    None: _anywhere,
    "email": lambda client, term: term.casefold() in _text(client["email"]),
    # An id is matched whole: a client looked up by uid is that client or none.
    "uid": lambda client, term: client["id"] == term,
    "phone": _by_phone,
    # A prefix of the time: "2025-08" finds the clients last updated in August 2025.
    "updated_at": lambda client, term: client["updated_at"].startswith(term),
}
