"""The demo businesses, their staff and clients: who can log in, what userinfo says about
them, and whom GET /platform/v1/clients lists.

vcita's userinfo describes the staff member who approved (`sub`) and their business
(`business_uid`) — guide step 4. The sandbox reads both, and each business's optional
`clients` list, from a JSON file (`SANDBOX_BUSINESSES_FILE`, by default
`demo_businesses.json` beside this module).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .client_records import client_record

BUSINESS_FIELDS = ("business_uid", "business_name", "directory_uid", "brand_host")
STAFF_FIELDS = ("uid", "name", "email", "role")


@dataclass(frozen=True)
class StaffMember:
    """A person who can log in to the sandbox and approve an app."""

    uid: str
    name: str
    email: str
    role: str
    business_uid: str


@dataclass(frozen=True)
class Business:
    """A demo vcita business, with its brand, its staff and its clients."""

    uid: str
    name: str
    directory_uid: str
    brand_host: str
    brand_theme: dict[str, Any]
    staff: tuple[StaffMember, ...]
    # In vcita's shape (client_records.py); the clients a test adds live in the state.
    clients: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class Directory:
    """Every demo business, looked up by staff member."""

    businesses: tuple[Business, ...]

    def staff_member(self, uid: object) -> StaffMember | None:
        """Return the staff member with this uid, or None."""
        for business in self.businesses:
            for member in business.staff:
                if member.uid == uid:
                    return member
        return None

    def business_of(self, member: StaffMember) -> Business:
        """Return the business a staff member works for."""
        return next(b for b in self.businesses if b.uid == member.business_uid)

    def business(self, uid: object) -> Business | None:
        """Return the business with this uid, or None."""
        return next((b for b in self.businesses if b.uid == uid), None)

    def userinfo(self, member: StaffMember) -> dict[str, Any]:
        """Return the userinfo body for a staff member, shaped like vcita's example."""
        business = self.business_of(member)
        return {
            "brand_host": business.brand_host,
            "brand_theme": copy.deepcopy(business.brand_theme),
            # vcita's example shows business_id and business_uid with the same value.
            "business_id": business.uid,
            "business_name": business.name,
            "business_uid": business.uid,
            "directory_uid": business.directory_uid,
            "email": member.email,
            "role": member.role,
            "sub": member.uid,
            "type": "staff",
        }


def load_directory(path: Path) -> Directory:
    """Read and check the businesses file; raise ValueError saying what is wrong."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read it as JSON ({error})") from None
    entries = document.get("businesses") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError('it needs a non-empty "businesses" list')
    directory = Directory(tuple(_business(entry, index) for index, entry in enumerate(entries)))
    _check_unique(directory)
    return directory


def _business(entry: object, index: int) -> Business:
    where = f"businesses[{index}]"
    _require_text_fields(entry, BUSINESS_FIELDS, where)
    assert isinstance(entry, dict)  # noqa: S101 - checked just above, for the type checker
    if not isinstance(entry.get("brand_theme"), dict):
        raise ValueError(f'{where} needs a "brand_theme" object')
    staff = entry.get("staff")
    if not isinstance(staff, list) or not staff:
        raise ValueError(f'{where} needs a non-empty "staff" list')
    clients = entry.get("clients", [])
    if not isinstance(clients, list):
        raise ValueError(f"{where}.clients must be a list")
    return Business(
        uid=entry["business_uid"],
        name=entry["business_name"],
        directory_uid=entry["directory_uid"],
        brand_host=entry["brand_host"],
        brand_theme=entry["brand_theme"],
        staff=tuple(
            _staff_member(member, f"{where}.staff[{n}]", entry["business_uid"])
            for n, member in enumerate(staff)
        ),
        clients=tuple(
            _client(client, f"{where}.clients[{n}]", entry["business_uid"])
            for n, client in enumerate(clients)
        ),
    )


def _client(entry: object, where: str, business_uid: str) -> dict[str, Any]:
    if not isinstance(entry, dict) or not {"id", "created_at"} <= set(entry):
        # Demo clients keep their ids and times from one start to the next.
        raise ValueError(f'{where} needs an "id" and a "created_at"')
    try:
        return client_record(entry, business_uid)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def _staff_member(entry: object, where: str, business_uid: str) -> StaffMember:
    _require_text_fields(entry, STAFF_FIELDS, where)
    assert isinstance(entry, dict)  # noqa: S101 - checked just above, for the type checker
    return StaffMember(
        uid=entry["uid"],
        name=entry["name"],
        email=entry["email"],
        role=entry["role"],
        business_uid=business_uid,
    )


def _require_text_fields(entry: object, fields: tuple[str, ...], where: str) -> None:
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be an object")
    missing = [name for name in fields if not isinstance(entry.get(name), str) or not entry[name]]
    if missing:
        raise ValueError(f"{where} needs text fields: {', '.join(missing)}")


def _check_unique(directory: Directory) -> None:
    business_uids = [business.uid for business in directory.businesses]
    staff_uids = [member.uid for business in directory.businesses for member in business.staff]
    client_ids = [client["id"] for business in directory.businesses for client in business.clients]
    for kind, uids in (
        ("business_uid", business_uids),
        ("staff uid", staff_uids),
        ("client id", client_ids),
    ):
        duplicates = sorted({uid for uid in uids if uids.count(uid) > 1})
        if duplicates:
            raise ValueError(f"each {kind} must be unique; repeated: {', '.join(duplicates)}")
