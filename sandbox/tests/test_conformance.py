"""The sandbox against vcita's own OpenAPI files (sandbox/tests/data/*-openapi.json).

The request requirements and the example bodies of the vendor's files are the contract:
each required token field, when missing, gives 400 invalid_request; the 200/400/401 token
bodies carry exactly the example's keys with the same JSON types; userinfo carries every
key of the example, with the same types, all the way down. GET /platform/v1/clients takes
every documented query parameter, answers the example's envelope, and each client carries
every key of the example client with its type (or null, as real data has gaps); invalid
parameters and rate limits get the statuses the file documents.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import CLIENT_SECRET, bearer, token_body

DATA = Path(__file__).parent / "data"
SPEC = json.loads((DATA / "oauth-openapi.json").read_text())
TOKEN = SPEC["paths"]["/token"]["post"]
USERINFO = SPEC["paths"]["/userinfo"]["get"]
TOKEN_SCHEMA = TOKEN["parameters"][0]["schema"]
CLIENTS_SPEC = json.loads((DATA / "clients-openapi.json").read_text())
LIST_CLIENTS = CLIENTS_SPEC["paths"]["/clients"]["get"]
CLIENTS_PATH = CLIENTS_SPEC["basePath"] + "/clients"
QUERY_PARAMETERS = [p["name"] for p in LIST_CLIENTS["parameters"] if p["in"] == "query"]


def example(operation: dict, status: str) -> dict:
    return operation["responses"][status]["examples"]["application/json"]


def json_type(value: Any) -> str:
    """Name a value's JSON type (bool before int: True is an int in Python)."""
    for python_type, name in [
        (bool, "boolean"),
        (int, "integer"),
        (float, "number"),
        (str, "string"),
        (list, "array"),
        (dict, "object"),
        (type(None), "null"),
    ]:
        if isinstance(value, python_type):
            return name
    raise TypeError(value)


def type_shape(value: Any) -> Any:
    """Replace every leaf of a JSON value with its type name."""
    if isinstance(value, dict):
        return {key: type_shape(item) for key, item in value.items()}
    return json_type(value)


def test_the_vendor_file_is_what_these_tests_read():
    assert SPEC["host"] == "api.vcita.biz" and SPEC["basePath"] == "/oauth"
    assert TOKEN_SCHEMA["required"] == [
        "grant_type",
        "client_id",
        "client_secret",
        "code",
        "redirect_uri",
    ]


@pytest.mark.parametrize("field", TOKEN_SCHEMA["required"])
def test_each_missing_required_token_field_gives_invalid_request(browser, new_code, field):
    body = token_body(new_code(), **{field: None})
    response = browser.post("/oauth/token", json=body)
    assert response.status_code == 400
    assert type_shape(response.get_json()) == type_shape(example(TOKEN, "400"))
    assert response.get_json()["error"] == example(TOKEN, "400")["error"]


def test_request_with_every_documented_field_is_accepted(browser, new_code):
    properties = TOKEN_SCHEMA["properties"]
    body = token_body(new_code(), grant_type=properties["grant_type"]["enum"][0])
    assert set(body) == set(TOKEN_SCHEMA["required"])
    response = browser.post("/oauth/token", json=body)  # consumes: application/json
    assert TOKEN["consumes"] == ["application/json"]
    assert response.status_code == 200


def test_token_200_has_exactly_the_example_keys_and_types(browser, new_code):
    response = browser.post("/oauth/token", json=token_body(new_code()))
    documented = example(TOKEN, "200")
    assert response.status_code == 200
    assert response.mimetype == TOKEN["produces"][0]
    body = response.get_json()
    assert type_shape(body) == type_shape(documented)
    assert body["token_type"] == documented["token_type"]
    assert body["expires_in"] == documented["expires_in"]
    for token in (body["access_token"], documented["access_token"]):
        assert re.fullmatch(r"[0-9a-f]{64}", token)


def test_token_401_has_exactly_the_example_keys_and_types(browser, new_code):
    response = browser.post("/oauth/token", json=token_body(new_code(), client_secret="nope"))
    documented = example(TOKEN, "401")
    assert response.status_code == 401
    assert response.get_json() == documented  # the same words, too
    assert CLIENT_SECRET not in response.get_data(as_text=True)


def test_userinfo_200_has_every_example_key_with_its_type(browser, new_token):
    response = browser.get("/oauth/userinfo", headers=bearer(new_token()))
    assert response.status_code == 200
    assert response.mimetype == USERINFO["produces"][0]
    assert type_shape(response.get_json()) == type_shape(example(USERINFO, "200"))
    assert response.get_json()["type"] == example(USERINFO, "200")["type"]


def test_guide_curl_command_for_step_3_works_against_the_sandbox(served_sandbox, new_code):
    if shutil.which("curl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("curl is required in CI for the guide's step-3 command")
        pytest.skip("curl is not installed: the guide's curl command cannot be run")
    body = json.dumps(token_body(new_code()), separators=(",", ":"))
    # The guide's command, with only the host changed.
    command = [
        "curl", "-s", "-X", "POST", f"{served_sandbox.url}/oauth/token",
        "-H", "Content-Type: application/json",
        "-d", body,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=10, check=True)
    answer = json.loads(result.stdout)
    assert type_shape(answer) == type_shape(example(TOKEN, "200"))
    assert answer["token_type"] == "Bearer"


# --- GET /platform/v1/clients (clients-openapi.json) -----------------------------------


def example_client() -> dict:
    return example(LIST_CLIENTS, "200")["data"]["clients"][0]


def test_the_clients_file_is_what_these_tests_read():
    assert CLIENTS_SPEC["host"] == "api.vcita.biz" and CLIENTS_PATH == "/platform/v1/clients"
    assert QUERY_PARAMETERS == ["search_term", "search_by", "updated_at", "page", "per_page"]
    assert set(LIST_CLIENTS["responses"]) == {"200", "422", "429"}


def test_clients_200_has_the_examples_envelope(browser, new_token):
    response = browser.get(CLIENTS_PATH, headers=bearer(new_token()))
    documented = example(LIST_CLIENTS, "200")
    assert response.status_code == 200
    assert response.mimetype == LIST_CLIENTS["produces"][0]
    body = response.get_json()
    assert type_shape(body) == type_shape(documented)  # {"data": {"clients": array}, "status"}
    assert body["status"] == documented["status"]


def test_a_complete_client_has_exactly_the_example_clients_keys_and_types(browser, new_token):
    clients = browser.get(CLIENTS_PATH, headers=bearer(new_token())).get_json()["data"]
    first = clients["clients"][0]  # Ava Thompson: every field filled in, as in the example
    assert type_shape(first) == type_shape(example_client())
    assert json_type(first["tags"]) == "array" and all(isinstance(t, str) for t in first["tags"])
    for name in ("created_at", "updated_at"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first[name])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", example_client()[name])


@pytest.mark.parametrize("staff_uid", ["1beb795be66146bb", "6df31cfb24107721"])
def test_every_client_has_every_example_key_with_its_type_or_null(browser, new_token, staff_uid):
    clients = browser.get(CLIENTS_PATH, headers=bearer(new_token(staff_uid))).get_json()
    documented = type_shape(example_client())
    for client in clients["data"]["clients"]:
        assert set(client) == set(documented), client["id"]
        for name, value in client.items():
            # The example's null (normalized_phone) stands for a text that may be missing.
            allowed = {documented[name], "null"} | (
                {"string"} if documented[name] == "null" else set()
            )
            assert json_type(value) in allowed, (client["id"], name)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("search_term", "Thompson"),
        ("search_by", "email"),
        ("updated_at", "2019-01-01"),  # the file's own example, as updated_at[gte]
        ("page", "1"),
        ("per_page", "25"),
    ],
)
def test_each_documented_query_parameter_is_accepted(browser, new_token, name, value):
    assert name in QUERY_PARAMETERS
    query = {"updated_at[gte]" if name == "updated_at" else name: value}
    response = browser.get(CLIENTS_PATH, query_string=query, headers=bearer(new_token()))
    assert response.status_code == 200
    assert response.get_json()["status"] == "OK"


@pytest.mark.parametrize(
    "query", ["per_page=101", "page=0", "search_by=colour", "updated_at[gte]=x"]
)
def test_invalid_parameters_get_the_documented_422(browser, new_token, query):
    response = browser.get(f"{CLIENTS_PATH}?{query}", headers=bearer(new_token()))
    assert str(response.status_code) in LIST_CLIENTS["responses"]
    assert response.status_code == 422
    assert type_shape(response.get_json()) == {"status": "string", "error": "string"}


def test_the_documented_429_can_be_scripted_for_a_clients_retries(browser, new_token, state):
    state.set_fault("clients", status=429, headers={"Retry-After": "1"}, times=1)
    headers = bearer(new_token())
    limited = browser.get(CLIENTS_PATH, headers=headers)
    assert str(limited.status_code) in LIST_CLIENTS["responses"]
    assert browser.get(CLIENTS_PATH, headers=headers).status_code == 200
