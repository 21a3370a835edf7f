"""What finding the five newest clients costs: requests to vcita and rows they carry.

    .venv/bin/python scripts/recent_clients_cost.py

Runs the panel's search (app/token_use/recent_clients.py) against vcita's clients list as
vcita documents it (a range of updated_at, pages of at most 100), for businesses of 10,
500 and 50,000 clients, and prints the requests and rows of a first read (no clients
kept) and of a later read (the five newest kept, 20 clients updated since). vcita states
no order for the list, so each is listed in four: as created (the sandbox's), oldest
update first, newest update first, and shuffled. Clients were created over three years;
each was last updated between its creation and now, most of them soon after it; in a
quiet business, nobody was created or updated in the last six months.
"""

import random
import statistics
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.token_use.recent_clients import SHOWN, fifth_newest, newest_clients

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SIZES = (10, 500, 50_000)
UPDATED_SINCE = 20  # clients updated between a read and the next
SEEDS = range(5)
QUIET_DAYS = (0, 180)  # a busy business; one nobody touched for six months


def vcita_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def business(size: int, rng: random.Random, quiet_days: int = 0) -> list[dict]:
    """Return `size` clients, as created, each last updated some time after its creation.

    With `quiet_days`, nobody was created or updated in that many days before now.
    """
    last = NOW - timedelta(days=quiet_days)
    clients = []
    for number in range(size):
        created = last - timedelta(days=rng.uniform(0, 3 * 365))
        updated = created + (last - created) * rng.random() ** 3
        clients.append(
            {
                "id": str(number),
                "created_at": vcita_time(created),
                "updated_at": vcita_time(updated),
            }
        )
    return sorted(clients, key=lambda client: client["created_at"])


ORDERS = {
    "as created": lambda clients, rng: clients,
    "oldest update first": lambda clients, rng: sorted(clients, key=lambda c: c["updated_at"]),
    "newest update first": lambda clients, rng: sorted(
        clients, key=lambda c: c["updated_at"], reverse=True
    ),
    "shuffled": lambda clients, rng: rng.sample(clients, len(clients)),
}


class ClientsList:
    """vcita's clients list: a range of updated_at, the first page, in some order; counted."""

    def __init__(self, clients: list[dict], order, rng: random.Random):
        self.clients, self.order, self.rng = clients, order, rng
        self.requests = self.rows = 0

    def __call__(self, params: dict) -> list[dict]:
        start, end = params.get("updated_at[gte]"), params.get("updated_at[lte]")
        matching = [
            client
            for client in self.clients
            if (start is None or client["updated_at"] >= start)
            and (end is None or client["updated_at"] <= end)
        ]
        page = self.order(matching, self.rng)[: params["per_page"]]
        self.requests += 1
        self.rows += len(page)
        return page


def read(clients, order, rng, since=None) -> tuple[list[dict], ClientsList]:
    listing = ClientsList(clients, order, rng)
    found = newest_clients(listing, NOW, since)
    newest = sorted((client["updated_at"] for client in clients), reverse=True)[:SHOWN]
    if [client["updated_at"] for client in found] != newest:
        raise SystemExit(f"the search found {found}, not the five newest: {newest}")
    return found, listing


def main() -> None:
    for quiet_days in QUIET_DAYS:
        print(f"\nNobody updated in the last {quiet_days} days:" if quiet_days else "\nBusy:")
        print(f"{'clients':>8} {'order':<20} {'first read: requests, rows':>28} {'later':>10}")
        for size in SIZES:
            for name, order in ORDERS.items():
                print(f"{size:>8} {name:<20} {costs(size, order, quiet_days)}")


def costs(size: int, order, quiet_days: int) -> str:
    """Return the requests and rows of a first and a later read, over SEEDS businesses."""
    first, later = [], []
    for seed in SEEDS:
        rng = random.Random(seed)
        clients = business(size, rng, quiet_days)
        found, listing = read(clients, order, rng)
        first.append((listing.requests, listing.rows))
        for client in rng.sample(clients, min(UPDATED_SINCE, size)):
            client["updated_at"] = vcita_time(NOW - timedelta(minutes=rng.uniform(1, 60)))
        rows = [{"updated_at": client["updated_at"]} for client in found]
        _, listing = read(clients, order, rng, fifth_newest(rows))
        later.append((listing.requests, listing.rows))
    return f"{shape(first):>28} {shape(later):>10}"


def shape(counts: list[tuple[int, int]]) -> str:
    requests = [count for count, _ in counts]
    rows = statistics.mean(rows for _, rows in counts)
    most = f" (≤ {max(requests)})" if max(requests) != min(requests) else ""
    return f"{statistics.mean(requests):.1f}{most}, {rows:.0f}"


if __name__ == "__main__":
    main()
