"""The sandbox against vcita's own OpenAPI file (sandbox/tests/data/oauth-openapi.json).

The request requirements and the example bodies of the vendor's file are the contract:
each required token field, when missing, gives 400 invalid_request; the 200/400/401 token
bodies carry exactly the example's keys with the same JSON types; userinfo carries every
key of the example, with the same types, all the way down.
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

from .conftest import CLIENT_SECRET, token_body

SPEC = json.loads((Path(__file__).parent / "data" / "oauth-openapi.json").read_text())
TOKEN = SPEC["paths"]["/token"]["post"]
USERINFO = SPEC["paths"]["/userinfo"]["get"]
TOKEN_SCHEMA = TOKEN["parameters"][0]["schema"]


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
    response = browser.get("/oauth/userinfo", headers={"Authorization": f"Bearer {new_token()}"})
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
