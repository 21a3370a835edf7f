"""GET /platform/v1/clients: the token's business's clients, a page at a time."""

from __future__ import annotations

import json
import time

import pytest
import requests

from sandbox.settings import DEFAULT_BUSINESSES_FILE

from .conftest import STAFF_UID, bearer

CLIENTS = "/platform/v1/clients"
DEMO = json.loads(DEFAULT_BUSINESSES_FILE.read_text(encoding="utf-8"))["businesses"]
HARBOR, CEDAR, SONRISA, OFEK = (business["business_uid"] for business in DEMO)
CEDAR_OWNER = "6df31cfb24107721"  # Daniel O'Brien
SONRISA_OWNER = "a383717599bf1893"  # Sofía Hernández, whose business has no clients
# Harbor Light Yoga's clients in the order they were created, as the endpoint lists them.
HARBOR_IDS = [c["id"] for c in sorted(DEMO[0]["clients"], key=lambda c: c["created_at"])]
CEDAR_IDS = [c["id"] for c in sorted(DEMO[1]["clients"], key=lambda c: c["created_at"])]
HARBOR_BY_NAME = {client["first_name"]: client["id"] for client in DEMO[0]["clients"]}


def ids(response) -> list[str]:
    return [client["id"] for client in response.get_json()["data"]["clients"]]


def plant(browser, business_uid: str, **client) -> dict:
    payload = {"business_uid": business_uid, "client": client}
    response = browser.post("/_sandbox/clients", json=payload)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["client"]


def test_the_business_clients_come_in_vcitas_envelope(browser, owner_headers):
    response = browser.get(CLIENTS, headers=owner_headers)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {"status", "data"} and body["status"] == "OK"
    assert set(body["data"]) == {"clients"}
    assert ids(response) == HARBOR_IDS
    assert {client["business_uid"] for client in body["data"]["clients"]} == {HARBOR}


def test_clients_come_in_the_order_they_were_created_not_updated(browser, owner_headers):
    clients = browser.get(CLIENTS, headers=owner_headers).get_json()["data"]["clients"]
    created = [client["created_at"] for client in clients]
    updated = [client["updated_at"] for client in clients]
    assert created == sorted(created)
    assert len(set(updated)) == len(updated) and updated != sorted(updated)


def test_the_demo_data_has_clients_for_three_businesses_and_none_for_the_third():
    assert [len(business["clients"]) for business in DEMO] == [8, 3, 0, 2]
    latest = max(DEMO[0]["clients"], key=lambda client: client["updated_at"])
    assert latest["id"] == "e5r8t2y7u1i4o6p9"  # Sakura Tanaka, updated in the middle of the list
    assert HARBOR_IDS.index(latest["id"]) == 4


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", HARBOR_IDS),
        ("?page=1&per_page=25", HARBOR_IDS),
        ("?per_page=3", HARBOR_IDS[:3]),
        ("?per_page=3&page=2", HARBOR_IDS[3:6]),
        ("?per_page=3&page=3", HARBOR_IDS[6:]),
        ("?per_page=3&page=4", []),
        ("?page=2", []),
        ("?per_page=1&page=8", HARBOR_IDS[7:]),
        ("?per_page=100", HARBOR_IDS),
        ("?page=999999999999999999", []),
        ("?page=&per_page=", HARBOR_IDS),  # empty means the default
    ],
)
def test_pages_cut_the_list_and_a_page_past_the_end_is_empty(
    browser, owner_headers, query, expected
):
    response = browser.get(CLIENTS + query, headers=owner_headers)
    assert response.status_code == 200
    assert ids(response) == expected


def test_paging_through_every_page_sees_each_client_once(browser, owner_headers):
    for number in range(120):
        plant(browser, HARBOR, first_name=f"Planted {number}")
    pages = []
    for page in range(1, 5):
        response = browser.get(f"{CLIENTS}?per_page=100&page={page}", headers=owner_headers)
        pages.append(ids(response))
    assert [len(page) for page in pages] == [100, 28, 0, 0]
    every_id = pages[0] + pages[1]
    assert len(set(every_id)) == 128 and every_id[:8] == HARBOR_IDS
    default = browser.get(CLIENTS, headers=owner_headers)
    assert len(ids(default)) == 25


@pytest.mark.parametrize("name", ["per_page", "page"])
@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", " 5", "1e2", "٣", "0x10"])
def test_a_page_parameter_that_is_not_a_positive_whole_number_is_422(
    browser, owner_headers, name, value
):
    response = browser.get(CLIENTS, query_string={name: value}, headers=owner_headers)
    assert response.status_code == 422
    body = response.get_json()
    assert set(body) == {"status", "error"} and body["status"] == "Error"
    assert body["error"].startswith(f"{name} must be a whole number from 1")


@pytest.mark.parametrize("per_page", ["101", "1000"])
def test_per_page_above_100_is_refused_rather_than_cut(browser, owner_headers, per_page):
    response = browser.get(f"{CLIENTS}?per_page={per_page}", headers=owner_headers)
    assert response.status_code == 422
    assert response.get_json()["error"].startswith("per_page must be a whole number from 1 to 100")


@pytest.mark.parametrize(
    ("term", "names"),
    [
        ("tanaka", ["Sakura"]),
        ("SAKURA", ["Sakura"]),
        ("zoë", ["Zoë"]),
        ("liam o'c", ["Liam"]),  # first and last name together
        ("olivia.chen@", ["Olivia"]),
        ("+1617555", ["Ava", "Noah", "Amir"]),
        ("a", list(HARBOR_BY_NAME)),
        ("nobody", []),
    ],
)
def test_search_term_finds_a_part_of_the_name_email_or_phone_ignoring_case(
    browser, owner_headers, term, names
):
    response = browser.get(CLIENTS, query_string={"search_term": term}, headers=owner_headers)
    assert response.status_code == 200
    assert ids(response) == [HARBOR_BY_NAME[name] for name in names]


@pytest.mark.parametrize(
    ("search_by", "term", "names"),
    [
        ("email", "OLIVIA.CHEN", ["Olivia"]),
        ("email", "tanaka", ["Sakura"]),
        ("email", "Olivia Chen", []),  # the name is not the e-mail
        ("uid", "c4d7f1g8h2j5k9l3", ["Zoë"]),
        ("uid", "c4d7f1g8", []),  # an id is matched whole
        ("phone", "+1 (617) 555-0148", ["Noah"]),
        ("phone", "Noah", []),
        ("updated_at", "2025-12", ["Amir"]),
        ("updated_at", "2026", ["Sakura"]),
        ("email", "", list(HARBOR_BY_NAME)),  # no term: no search
    ],
)
def test_search_by_looks_in_one_field(browser, owner_headers, search_by, term, names):
    query = {"search_by": search_by, "search_term": term}
    response = browser.get(CLIENTS, query_string=query, headers=owner_headers)
    assert response.status_code == 200
    assert ids(response) == [HARBOR_BY_NAME[name] for name in names]


def test_an_unknown_search_by_is_422(browser, owner_headers):
    query = {"search_by": "name", "search_term": "Ava"}
    response = browser.get(CLIENTS, query_string=query, headers=owner_headers)
    assert response.status_code == 422
    assert response.get_json()["error"] == "search_by must be one of email, uid, phone, updated_at"


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ({"updated_at[gte]": "2025-11-01"}, ["Sakura", "Mateo", "Amir"]),
        ({"updated_at[gte]": "2025-12-15T08:30:02Z"}, ["Sakura", "Amir"]),
        ({"updated_at[gte]": "2025-12-15T09:30:02+01:00"}, ["Sakura", "Amir"]),
        ({"updated_at[gte]": "2025-12-15T08:30:03Z"}, ["Sakura"]),
        ({"updated_at[lte]": "2025-02-03"}, ["Noah"]),  # a date covers its whole day
        ({"updated_at[lte]": "2025-02-03T14:29:59Z"}, []),
        (
            {"updated_at[gte]": "2025-06-01", "updated_at[lte]": "2025-09-30"},
            ["Ava", "Zoë", "Olivia"],
        ),
        ({"updated_at[gte]": "2027-01-01"}, []),
        ({"updated_at[lte]": "9999-12-31"}, list(HARBOR_BY_NAME)),  # no day after it
    ],
)
def test_updated_at_narrows_to_a_time_range(browser, owner_headers, query, names):
    response = browser.get(CLIENTS, query_string=query, headers=owner_headers)
    assert response.status_code == 200
    assert ids(response) == [HARBOR_BY_NAME[name] for name in names]


def test_search_by_updated_at_without_a_term_narrows_by_the_range_alone(browser, owner_headers):
    # What an app that looks for the newest clients sends (app/token_use/recent_clients.py):
    # search_by names the field, the range does the narrowing, and no term is searched for.
    query = {
        "search_by": "updated_at",
        "updated_at[gte]": "2025-12-15T08:30:02Z",
        "updated_at[lte]": "2025-12-31T23:59:59Z",
    }
    response = browser.get(CLIENTS, query_string=query, headers=owner_headers)
    assert response.status_code == 200
    assert ids(response) == [HARBOR_BY_NAME["Amir"]]


def test_filters_combine_before_the_page_is_cut(browser, owner_headers):
    query = {"updated_at[gte]": "2025-06-01", "search_term": "mail.example", "per_page": "2"}
    first = browser.get(CLIENTS, query_string=query, headers=owner_headers)
    second = browser.get(CLIENTS, query_string={**query, "page": "2"}, headers=owner_headers)
    assert ids(first) == [HARBOR_BY_NAME["Ava"], HARBOR_BY_NAME["Zoë"]]
    assert ids(second) == [HARBOR_BY_NAME["Sakura"], HARBOR_BY_NAME["Mateo"]]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"updated_at[gte]": "yesterday"}, "updated_at[gte] must be an ISO 8601 date or time"),
        ({"updated_at[lte]": "2025-13-01"}, "updated_at[lte] must be an ISO 8601 date or time"),
        ({"updated_at[gt]": "2025-01-01"}, "filter updated_at with updated_at[gte] or"),
        ({"updated_at": "2025-01-01"}, "filter updated_at with updated_at[gte] or"),
    ],
)
def test_an_updated_at_filter_it_cannot_read_is_422(browser, owner_headers, query, says):
    response = browser.get(CLIENTS, query_string=query, headers=owner_headers)
    assert response.status_code == 422
    assert response.get_json()["error"].startswith(says)


def test_other_businesses_clients_are_never_visible(browser, new_token):
    planted = plant(browser, HARBOR, first_name="Only at Harbor")
    cedar = bearer(new_token(CEDAR_OWNER))
    assert ids(browser.get(CLIENTS, headers=cedar)) == CEDAR_IDS
    for query in (
        {"search_by": "uid", "search_term": HARBOR_IDS[0]},
        {"search_by": "uid", "search_term": planted["id"]},
        {"search_term": "Only at Harbor"},
        {"business_uid": HARBOR},  # a parameter cannot pick the business
    ):
        response = browser.get(CLIENTS, query_string=query, headers=cedar)
        assert response.status_code == 200
        assert set(ids(response)) <= set(CEDAR_IDS), query
    harbor = bearer(new_token(STAFF_UID))
    assert ids(browser.get(CLIENTS, headers=harbor)) == [*HARBOR_IDS, planted["id"]]


def test_a_business_without_clients_gets_an_empty_list(browser, new_token):
    response = browser.get(CLIENTS, headers=bearer(new_token(SONRISA_OWNER)))
    assert response.status_code == 200
    assert response.get_json() == {"status": "OK", "data": {"clients": []}}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer " + "0" * 64},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["none", "empty", "unknown", "basic"],
)
def test_a_missing_or_unknown_token_gets_401(browser, state, headers):
    response = browser.get(CLIENTS, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="vcita", error="invalid_token"'
    assert response.get_json() == {"status": "Error", "error": "Unauthorized"}
    assert state.recorded_requests("clients")[-1]["status"] == 401


def test_a_revoked_token_gets_401(browser, state, owner_headers):
    assert browser.get(CLIENTS, headers=owner_headers).status_code == 200
    state.revoke_all_tokens()
    assert browser.get(CLIENTS, headers=owner_headers).status_code == 401


def test_every_request_is_recorded_with_its_query_and_peer(browser, state, owner_headers):
    browser.get(f"{CLIENTS}?page=2&per_page=3", headers=owner_headers)
    browser.get(f"{CLIENTS}?per_page=0", headers=owner_headers)
    first, second = state.recorded_requests("clients")
    assert (first["method"], first["path"], first["query_string"]) == (
        "GET",
        CLIENTS,
        "page=2&per_page=3",
    )
    assert first["peer"].startswith("127.0.0.1:") and first["status"] == 200
    assert second["status"] == 422
    recorded = browser.get("/_sandbox/requests").get_json()["clients"]
    assert [r["query_string"] for r in recorded] == ["page=2&per_page=3", "per_page=0"]
    assert recorded[0]["headers"]["Authorization"] == "Bearer ********"


def test_a_planted_client_comes_back_exactly_as_planted(browser, owner_headers):
    hostile = {
        "first_name": "<script>alert(1)</script>",
        "last_name": "\u202eevil\u0000",
        "email": None,
        "mobile_phone": 16175550123,
        "tags": "<b>not a list</b>",
        "address": "x" * 5000,
    }
    planted = plant(browser, HARBOR, **hostile)
    response = browser.get(CLIENTS, headers=owner_headers)
    clients = response.get_json()["data"]["clients"]
    assert clients[-1] == planted and clients[-1]["id"] == planted["id"]
    for name, value in hostile.items():
        assert planted[name] == value
    assert response.mimetype == "application/json"
    assert "<script>alert(1)</script>" in response.get_data(as_text=True)


def test_a_planted_client_gets_an_id_and_the_time_it_was_added(browser, owner_headers):
    before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    planted = plant(browser, HARBOR, first_name="New")
    assert len(planted["id"]) == 16 and planted["id"].isalnum()
    assert planted["created_at"] == planted["updated_at"] >= before
    assert planted["business_uid"] == HARBOR and planted["tags"] == []


def test_a_planted_client_with_an_early_created_at_is_listed_in_its_place(browser, owner_headers):
    planted = plant(browser, HARBOR, first_name="Early", created_at="2025-01-01T00:00:00+02:00")
    assert planted["created_at"] == "2024-12-31T22:00:00Z"
    assert ids(browser.get(CLIENTS, headers=owner_headers))[0] == planted["id"]


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({"business_uid": "nope", "client": {}}, "business_uid must be one of"),
        ({"client": {}}, "business_uid must be one of"),
        ({"business_uid": HARBOR, "client": "Ava"}, "a client must be a JSON object"),
        ({"business_uid": HARBOR, "client": {"frist_name": "A"}}, "unknown client field"),
        ({"business_uid": HARBOR, "client": {"id": HARBOR_IDS[0]}}, "the business already has"),
        ({"business_uid": HARBOR, "client": {"id": "a b"}}, "a client's id must be"),
        ({"business_uid": HARBOR, "client": {"created_at": "soon"}}, "created_at must be"),
        ({"business_uid": HARBOR, "client": {"updated_at": 5}}, "updated_at must be"),
        (["not", "an", "object"], "Send a JSON object"),
    ],
)
def test_a_client_the_sandbox_cannot_plant_is_refused(browser, owner_headers, payload, says):
    response = browser.post("/_sandbox/clients", json=payload)
    assert response.status_code == 400
    assert response.get_json()["error_description"].startswith(says)
    assert ids(browser.get(CLIENTS, headers=owner_headers)) == HARBOR_IDS


def test_a_planted_id_is_taken_for_the_next_one(browser):
    plant(browser, CEDAR, id="same-id-twice", first_name="One")
    response = browser.post(
        "/_sandbox/clients", json={"business_uid": CEDAR, "client": {"id": "same-id-twice"}}
    )
    assert response.status_code == 400


def test_reset_forgets_planted_clients(browser, state, new_token):
    plant(browser, HARBOR, first_name="Gone after reset")
    state.reset()
    assert ids(browser.get(CLIENTS, headers=bearer(new_token()))) == HARBOR_IDS


def test_utf8_is_sent_as_is(browser, owner_headers):
    text = browser.get(CLIENTS, headers=owner_headers).get_data(as_text=True)
    assert "Zoë" in text and "García" in text


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_get_405_in_vcitas_error_shape(browser, method):
    response = browser.open(CLIENTS, method=method)
    assert response.status_code == 405
    assert response.get_json()["status"] == "Error"
    assert "GET" in response.headers["Allow"]


def test_an_unknown_platform_path_is_404_in_vcitas_error_shape(browser):
    response = browser.get("/platform/v1/nothing")
    assert response.status_code == 404
    assert set(response.get_json()) == {"status", "error"}


# --- Faults, as the app's retries meet them -------------------------------------------


def test_a_429_with_retry_after_then_success(browser, state, owner_headers):
    state.set_fault("clients", status=429, headers={"Retry-After": "1"}, times=1)
    limited = browser.get(CLIENTS, headers=owner_headers)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    answered = browser.get(CLIENTS, headers=owner_headers)
    assert answered.status_code == 200 and ids(answered) == HARBOR_IDS
    assert [r["status"] for r in state.recorded_requests("clients")] == [429, 200]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_gateway_error_fault_replaces_the_answer(browser, state, owner_headers, status):
    state.set_fault("clients", status=status, times=2)
    statuses = [browser.get(CLIENTS, headers=owner_headers).status_code for _ in range(3)]
    assert statuses == [status, status, 200]


def test_a_non_json_fault_replaces_the_body(browser, state, owner_headers):
    state.set_fault("clients", body="<html>Bad gateway</html>", content_type="text/html")
    response = browser.get(CLIENTS, headers=owner_headers)
    assert (response.status_code, response.mimetype) == (200, "text/html")
    assert response.get_data(as_text=True) == "<html>Bad gateway</html>"


def test_a_json_merge_fault_alters_the_real_answer(browser, state, owner_headers):
    state.set_fault("clients", json_merge={"data": {"clients": "not a list"}})
    assert browser.get(CLIENTS, headers=owner_headers).get_json()["data"] == {
        "clients": "not a list"
    }


def test_a_fault_is_set_over_the_control_api_by_endpoint_name(browser, owner_headers):
    response = browser.post(
        "/_sandbox/faults",
        json={"endpoint": "clients", "status": 429, "headers": {"Retry-After": "2"}, "times": 1},
    )
    assert response.status_code == 201
    assert browser.get(CLIENTS, headers=owner_headers).status_code == 429
    assert browser.get(CLIENTS, headers=owner_headers).status_code == 200


def test_a_slow_answer_over_real_http_times_a_client_out(served_sandbox, state, new_token):
    token = new_token()
    state.set_fault("clients", delay=30, times=1)
    url = f"{served_sandbox.url}{CLIENTS}"
    with requests.Session() as http:
        with pytest.raises(requests.Timeout):
            http.get(url, headers=bearer(token), timeout=0.2)
        state.clear_faults()  # wakes the waiting request
        answered = http.get(url, headers=bearer(token), timeout=5)
    assert answered.status_code == 200
    assert [c["id"] for c in answered.json()["data"]["clients"]] == HARBOR_IDS
