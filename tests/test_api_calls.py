"""Any vcita API call with a stored token: retries for GET only, errors in vcita's terms, paging.

The retries happen inside urllib3, under requests, so these tests talk to a scripted
HTTP server over loopback: each request takes the next scripted answer, and the server
counts what it received.
"""

import json
import time
from datetime import UTC, datetime

import pytest

from app import vcita
from app.vcita import (
    AccessRevoked,
    AccessToken,
    NotFound,
    VcitaClient,
    VcitaRefused,
    VcitaSettings,
    VcitaUnavailable,
)

from .conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI

TOKEN = AccessToken("t0ken-" + "x" * 40, "Bearer", datetime.now(UTC), None)


@pytest.fixture
def api(scripted_api):
    return scripted_api


@pytest.fixture
def vcita_client(api):
    settings = VcitaSettings(
        client_id="c", client_secret="s", redirect_uri="http://localhost/cb", api_url=api.url
    )
    vcita_client = VcitaClient(settings)
    yield vcita_client
    vcita_client.close()


def test_a_get_sends_the_token_and_asks_for_json(api, vcita_client):
    api.script = [(200, {}, {"status": "OK", "data": {"clients": []}})]
    answer = vcita_client.api_get(TOKEN, "/platform/v1/clients", {"search_term": "ann"})
    assert answer == {"status": "OK", "data": {"clients": []}}
    (request,) = api.received
    assert request["path"] == "/platform/v1/clients"
    assert request["query"] == {"search_term": ["ann"]}
    assert request["accept"] == "application/json"
    assert request["authorization"] == f"Bearer {TOKEN.access_token}"


def test_a_post_sends_json(api, vcita_client):
    api.script = [(200, {}, {"status": "OK"})]
    vcita_client.api_post(
        TOKEN, "/platform/v1/webhook/subscribe", {"event": "e", "target_url": "u"}
    )
    (request,) = api.received
    assert request["method"] == "POST"
    assert json.loads(request["body"]) == {"event": "e", "target_url": "u"}


def test_429_then_success_on_a_get_honours_retry_after(api, vcita_client):
    api.script = [(429, {"Retry-After": "1"}, {}), (200, {}, {"ok": True})]
    started = time.monotonic()
    assert vcita_client.api_get(TOKEN, "/platform/v1/clients") == {"ok": True}
    assert len(api.received) == 2
    assert time.monotonic() - started >= 0.9  # it waited as asked


def test_a_retry_after_beyond_the_cap_is_passed_on_not_shortened(api, vcita_client):
    api.script = [(429, {"Retry-After": "120"}, {})]
    with pytest.raises(VcitaUnavailable) as raised:
        vcita_client.api_get(TOKEN, "/platform/v1/clients")
    assert raised.value.retry_after == 120
    assert len(api.received) == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_get_is_retried_with_backoff_then_gives_up(api, vcita_client, status):
    api.script = [(status, {}, {})] * 5
    with pytest.raises(VcitaUnavailable):
        vcita_client.api_get(TOKEN, "/platform/v1/clients")
    assert len(api.received) == 1 + vcita.RETRIES


def test_a_get_succeeds_after_a_503(api, vcita_client):
    api.script = [(503, {}, {}), (200, {}, {"ok": True})]
    assert vcita_client.api_get(TOKEN, "/platform/v1/clients") == {"ok": True}
    assert len(api.received) == 2


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_a_post_is_never_retried(api, vcita_client, status):
    api.script = [(status, {"Retry-After": "1"}, {}), (200, {}, {"ok": True})]
    with pytest.raises(VcitaUnavailable):
        vcita_client.api_post(TOKEN, "/platform/v1/webhook/subscribe", {"event": "e"})
    assert len(api.received) == 1


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {}, AccessRevoked),
        (403, {}, VcitaRefused),
        (404, {}, NotFound),
        (422, {"errors": ["no"]}, VcitaRefused),
        (500, {}, VcitaUnavailable),
        (200, b"<html>not json</html>", VcitaUnavailable),
        (200, b"[" * 50 + b"]" * 50, VcitaUnavailable),
        (302, {}, VcitaRefused),  # a redirect is not followed: it could carry the token away
    ],
)
def test_answers_map_to_the_flows_errors(api, vcita_client, status, body, error):
    api.script = [(status, {"Location": "http://127.0.0.1:9/steal"}, body)]
    with pytest.raises(error):
        vcita_client.api_get(TOKEN, "/platform/v1/clients")
    assert len(api.received) == 1


def test_a_timeout_is_vcita_not_answering(api):
    settings = VcitaSettings(
        client_id="c",
        client_secret="s",
        redirect_uri="http://localhost/cb",
        api_url=api.url,
        api_timeout=(1, 0.2),
    )
    vcita_client = VcitaClient(settings)
    api.script = [(200, {}, 1.0)]
    with pytest.raises(VcitaUnavailable, match="ReadTimeout"):
        vcita_client.api_get(TOKEN, "/platform/v1/clients")
    assert len(api.received) == 1  # a read timeout is not retried: it already waited
    vcita_client.close()


@pytest.mark.parametrize(
    "path",
    ["https://evil.example/x", "//evil.example/x", "platform/v1", "/a/../b", "/x?y=1", "/x#y"],
)
def test_only_a_path_on_vcitas_api_can_be_called(api, vcita_client, path):
    with pytest.raises(ValueError, match="not an API path"):
        vcita_client.api_get(TOKEN, path)
    assert api.received == []


def page(count: int) -> tuple:
    return (200, {}, {"status": "OK", "data": {"clients": [{"id": n} for n in range(count)]}})


def test_paging_stops_on_a_short_page(api, vcita_client):
    api.script = [page(3), page(3), page(1)]
    items = list(vcita_client.api_pages(TOKEN, "/platform/v1/clients", per_page=3))
    assert len(items) == 7
    assert [r["query"]["page"] for r in api.received] == [["1"], ["2"], ["3"]]
    assert {r["query"]["per_page"][0] for r in api.received} == {"3"}


def test_paging_stops_on_an_empty_page(api, vcita_client):
    api.script = [page(2), page(0)]
    assert len(list(vcita_client.api_pages(TOKEN, "/platform/v1/clients", per_page=2))) == 2
    assert len(api.received) == 2


def test_paging_stops_at_its_hard_limit(api, vcita_client):
    api.script = [page(2)] * 10
    items = list(vcita_client.api_pages(TOKEN, "/platform/v1/clients", per_page=2, max_pages=3))
    assert len(items) == 6
    assert len(api.received) == 3


def test_a_page_without_one_list_is_not_vcitas_answer(api, vcita_client):
    api.script = [(200, {}, {"data": {"a": [], "b": []}})]
    with pytest.raises(VcitaUnavailable):
        list(vcita_client.api_pages(TOKEN, "/platform/v1/clients"))


# --- The environment (proxies, CA bundles), read once ------------------------------------

VCITA_ELSEWHERE = "http://vcita.invalid"  # a name no resolver knows: only a proxy reaches it


def settings_on(api_url: str, userinfo_url: str | None = None, **settings) -> VcitaSettings:
    """Return the sandbox's demo app's settings, with every endpoint of vcita at `api_url`."""
    return VcitaSettings(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uri=REDIRECT_URI,
        authorize_url=f"{api_url}/app/oauth/authorize",
        api_url=api_url,
        token_url=f"{api_url}/oauth/token",
        userinfo_url=userinfo_url or f"{api_url}/oauth/userinfo",
        **settings,
    )


def test_a_proxy_the_environment_names_carries_every_call_read_once(api, monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", api.url)
    vcita_client = VcitaClient(settings_on(VCITA_ELSEWHERE))
    # requests would read this again on every call; the client read it when it was built.
    monkeypatch.delenv("HTTP_PROXY")
    api.script = [(200, {}, {"sub": "s"}), (200, {}, {"status": "OK", "data": {"c": []}})]

    assert vcita_client.fetch_userinfo(TOKEN) == {"sub": "s"}
    assert vcita_client.api_get(TOKEN, "/platform/v1/clients") == {
        "status": "OK",
        "data": {"c": []},
    }

    assert [request["path"] for request in api.received] == [
        "/oauth/userinfo",
        "/platform/v1/clients",
    ]
    vcita_client.close()


def test_hosts_the_environment_treats_apart_are_each_sent_as_it_says(api, monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", api.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the API's own host, not userinfo's
    vcita_client = VcitaClient(
        settings_on(api.url, userinfo_url=f"{VCITA_ELSEWHERE}/oauth/userinfo")
    )
    api.script = [(200, {}, {"sub": "s"}), (200, {}, {"status": "OK", "data": {"c": []}})]

    vcita_client.fetch_userinfo(TOKEN)  # through the proxy
    vcita_client.api_get(TOKEN, "/platform/v1/clients")  # straight to the API

    assert [request["path"] for request in api.received] == [
        "/oauth/userinfo",
        "/platform/v1/clients",
    ]
    vcita_client.close()
