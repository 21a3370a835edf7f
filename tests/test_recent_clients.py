"""The Recent clients panel finds the five clients updated last, in few requests to vcita.

vcita documents no order for its clients list, only a range filter on `updated_at`: the
search must be right whatever order a range comes back in, and ask only what vcita
documents. Against the sandbox, over HTTP, it asks a business of hundreds of clients a
handful of pages, and a later read one.
"""

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.token_use.recent_clients import (
    MAX_REQUESTS,
    PER_PAGE,
    SHOWN,
    fifth_newest,
    newest_clients,
)
from sandbox.settings import DEFAULT_BUSINESSES_FILE

from .conftest import only_snapshot

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HARBOR = "7c6dc1589f078b66"  # Harbor Light Yoga, the first demo business
DOCUMENTED = {"page", "per_page", "search_by", "updated_at[gte]", "updated_at[lte]"}


def vcita_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class ClientsList:
    """vcita's clients list as documented: a range of updated_at, a page, in some order."""

    def __init__(self, clients: list[dict], order):
        self.clients = clients
        self.order = order  # how a range is listed: any order, since vcita states none
        self.asked: list[dict] = []

    def __call__(self, params: dict) -> list[dict]:
        self.asked.append(params)
        assert set(params) <= DOCUMENTED
        assert params.get("search_by", "updated_at") == "updated_at"
        assert params["page"] == 1 and 1 <= params["per_page"] <= PER_PAGE
        start, end = params.get("updated_at[gte]"), params.get("updated_at[lte]")
        matching = [
            client
            for client in self.clients
            if (start is None or client["updated_at"] >= start)
            and (end is None or client["updated_at"] <= end)
        ]
        return self.order(matching)[: params["per_page"]]


def business(seconds_ago: list[int]) -> list[dict]:
    """Return clients last updated that many seconds before NOW, in the order created."""
    return [
        {"id": f"c{number}", "updated_at": vcita_time(NOW - timedelta(seconds=ago))}
        for number, ago in enumerate(seconds_ago)
    ]


def newest_times(clients: list[dict]) -> list[str]:
    return sorted((client["updated_at"] for client in clients), reverse=True)[:SHOWN]


ORDERS = {
    "as created": lambda clients: clients,
    "oldest update first": lambda clients: sorted(clients, key=lambda c: c["updated_at"]),
    "newest update first": lambda clients: sorted(clients, key=lambda c: c["updated_at"])[::-1],
}
YEAR = 365 * 86400
# Times that bunch up: many clients updated in the same second (a bulk update), or just now.
bunched_times = st.sampled_from([0, 1, 2, 59, 3600, 86400, 86401, 40 * 86400, YEAR, 3 * YEAR])


@settings(max_examples=300, deadline=None)
@given(
    seconds_ago=st.lists(st.integers(0, 3 * YEAR) | bunched_times, max_size=80),
    per_page=st.integers(SHOWN, 12),
    order=st.sampled_from(sorted(ORDERS)) | st.randoms(use_true_random=False),
    since=st.none() | st.integers(0, 3 * YEAR) | bunched_times,
)
@example(seconds_ago=[YEAR] * 40 + [5, 10], per_page=10, order="as created", since=None)
@example(seconds_ago=[3 * YEAR] * 30 + [0] * 3, per_page=5, order="oldest update first", since=0)
def test_the_five_newest_are_found_whatever_order_vcita_lists_them_in(
    seconds_ago, per_page, order, since
):
    clients = business(seconds_ago)
    if isinstance(order, str):
        lists = ClientsList(clients, ORDERS[order])
    else:  # an order of its own for each request
        lists = ClientsList(clients, lambda matching: order.sample(matching, len(matching)))
    hint = None if since is None else NOW - timedelta(seconds=since)

    found = newest_clients(lists, NOW, hint, per_page=per_page)

    assert [client["updated_at"] for client in found] == newest_times(clients)
    assert len({client["id"] for client in found}) == len(found)
    assert 1 <= len(lists.asked) <= MAX_REQUESTS


def test_a_business_with_fewer_than_a_page_of_clients_is_read_in_one_request():
    lists = ClientsList(business([86400 * day for day in range(40)]), ORDERS["as created"])
    found = newest_clients(lists, NOW)
    assert [client["id"] for client in found] == ["c0", "c1", "c2", "c3", "c4"]
    assert lists.asked == [{"page": 1, "per_page": PER_PAGE}]


def test_a_later_read_starts_at_the_fifth_newest_time_kept():
    clients = business([3600 * hour for hour in range(1, 300)])
    first = newest_clients(ClientsList(clients, ORDERS["as created"]), NOW)
    clients += business([10, 20])  # two clients updated since
    clients[-2:] = [{**client, "id": f"new{n}"} for n, client in enumerate(clients[-2:])]
    lists = ClientsList(clients, ORDERS["as created"])

    found = newest_clients(lists, NOW, fifth_newest(first))

    assert [client["id"] for client in found] == ["new0", "new1", "c0", "c1", "c2"]
    assert lists.asked == [
        {
            "page": 1,
            "per_page": PER_PAGE,
            "search_by": "updated_at",
            "updated_at[gte]": first[-1]["updated_at"],
        }
    ]


def test_clients_without_a_time_come_last_and_only_from_a_read_of_all():
    clients = [{"id": "x", "updated_at": None}, *business([5, 6]), {"id": "y"}]
    found = newest_clients(ClientsList(clients, ORDERS["as created"]), NOW)
    assert [client["id"] for client in found] == ["c0", "c1", "x", "y"]


# --- Against the sandbox, over HTTP -------------------------------------------------------


def plant(vcita_server, count: int) -> list[dict]:
    """Give Harbor Light Yoga `count` more clients, one created every 26 hours till now.

    Each was last updated within six weeks of its creation, and before now.
    """
    control = vcita_server.sandbox.test_client()
    now = datetime.now(UTC)
    planted = []
    for number in range(count):
        created = now - timedelta(hours=(count - number) * 26)
        updated = created + timedelta(hours=(number * 7919) % 1000)
        answer = control.post(
            "/_sandbox/clients",
            json={
                "business_uid": HARBOR,
                "client": {
                    "first_name": f"Planted {number}",
                    "created_at": vcita_time(created),
                    "updated_at": vcita_time(updated if updated < now else created),
                },
            },
        )
        assert answer.status_code == 201
        planted.append(answer.get_json()["client"])
    return planted


def demo_clients() -> list[dict]:
    return json.loads(DEFAULT_BUSINESSES_FILE.read_text())["businesses"][0]["clients"]


def test_a_business_of_hundreds_of_clients_is_read_in_a_few_pages(
    app, browser, vcita, vcita_server
):
    everyone = demo_clients() + plant(vcita_server, 600)

    browser.connect(staff="Maya Goldberg")  # the callback reads them; the dashboard shows its copy

    asked = vcita.recorded_requests("clients")
    kept = only_snapshot(app).recent_clients
    assert [row["updated_at"] for row in kept] == [
        datetime.fromisoformat(time).isoformat() for time in newest_times(everyone)
    ]
    assert 2 <= len(asked) <= 5  # the first asks for everyone: a full page of 100
    assert "search_by=updated_at&updated_at%5Bgte%5D=" in asked[1]["query_string"]


def test_a_later_dashboard_reads_the_clients_in_one_request(app, browser, vcita):
    browser.connect(staff="Maya Goldberg")
    asked = len(vcita.recorded_requests("clients"))
    fifth = only_snapshot(app).recent_clients[-1]["updated_at"]

    assert browser.dashboard().status_code == 200

    later = vcita.recorded_requests("clients")[asked:]
    assert len(later) == 1
    since = datetime.fromisoformat(fifth).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert f"updated_at%5Bgte%5D={since.replace(':', '%3A')}" in later[0]["query_string"]


@pytest.mark.parametrize("kept", [[], [{"updated_at": "2026-01-01T00:00:00+00:00"}] * 4])
def test_fewer_than_five_kept_clients_give_no_place_to_start(kept):
    assert fifth_newest(kept) is None
