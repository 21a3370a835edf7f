"""The copyable client's `revoke_token`: vcita's "Revoke Token", its answers in vcita's terms.

Against the sandbox over loopback for what vcita documents, and a scripted HTTP server for
answers only a broken vcita gives (a 5xx, an HTML page, a slow answer).
"""

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from app.vcita import (
    REVOKE_PATH,
    AccessToken,
    Revocation,
    RevocationRefused,
    VcitaClient,
    VcitaError,
    VcitaRefused,
    VcitaUnavailable,
)
from sandbox.testing import SandboxPerson

from .test_api_calls import TOKEN, settings_on


@pytest.fixture
def sandbox_client(vcita_server, vcita):
    vcita_client = VcitaClient(settings_on(vcita_server.url))
    yield vcita_client
    vcita_client.close()


@pytest.fixture
def scripted_client(scripted_api):
    vcita_client = VcitaClient(settings_on(scripted_api.url))
    yield vcita_client
    vcita_client.close()


def new_token(
    vcita_client: VcitaClient, vcita_server, staff: str = "Maya Goldberg"
) -> AccessToken:
    """Connect `staff` through the sandbox's pages and the exchange; return the token."""
    with SandboxPerson(vcita_server.url) as person:
        callback = person.approve(vcita_client.authorization_url("some-state"), staff=staff)
    return vcita_client.exchange_code(parse_qs(urlsplit(callback).query)["code"][0])


def test_a_revoked_token_is_refused_by_vcita_from_then_on(sandbox_client, vcita_server, vcita):
    token = new_token(sandbox_client, vcita_server)

    assert sandbox_client.revoke_token(token) is Revocation.REVOKED

    (request,) = vcita.recorded_requests("revoke")
    assert request["body"] == {"token": token.access_token}
    assert request["headers"]["Authorization"] == f"Bearer {token.access_token}"
    assert request["headers"]["Accept"] == "application/json"
    assert not vcita.is_token_active(token.access_token)


def test_revoking_a_dead_token_again_says_vcita_no_longer_accepted_it(
    sandbox_client, vcita_server, vcita
):
    token = new_token(sandbox_client, vcita_server)
    sandbox_client.revoke_token(token)

    assert sandbox_client.revoke_token(token) is Revocation.ALREADY_DEAD  # 401


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        pytest.param(
            201, {"status": "OK", "data": {"revoked_tokens": ["…"]}}, Revocation.REVOKED, id="201"
        ),
        pytest.param(
            422, {"status": "Error", "error": "invalid token"}, Revocation.UNKNOWN, id="invalid"
        ),
        pytest.param(
            401, {"status": "Error", "message": "Unauthorized"}, Revocation.ALREADY_DEAD, id="401"
        ),
    ],
)
def test_each_answer_that_ends_the_token_is_an_outcome(
    scripted_api, scripted_client, status, body, outcome
):
    scripted_api.script = [(status, {}, body)]

    assert scripted_client.revoke_token(TOKEN) is outcome

    (request,) = scripted_api.received
    assert (request["method"], request["path"]) == ("POST", REVOKE_PATH)
    assert json.loads(request["body"]) == {"token": TOKEN.access_token}


@pytest.mark.parametrize(
    ("status", "headers", "body", "error"),
    [
        pytest.param(
            422, {}, {"status": "Error", "error": "Unauthorized"}, RevocationRefused, id="refused"
        ),
        pytest.param(422, {}, {"status": "Error", "error": "other"}, VcitaRefused, id="422-other"),
        pytest.param(422, {}, b"<html>no</html>", VcitaRefused, id="422-not-json"),
        pytest.param(403, {}, {}, VcitaRefused, id="403"),
        pytest.param(404, {}, {}, VcitaRefused, id="404"),
        pytest.param(500, {}, {}, VcitaUnavailable, id="500"),
        pytest.param(503, {}, b"<html>down</html>", VcitaUnavailable, id="503"),
        pytest.param(429, {"Retry-After": "120"}, {}, VcitaUnavailable, id="429"),
    ],
)
def test_every_other_answer_is_an_error_in_vcitas_terms_and_is_never_retried(
    scripted_api, scripted_client, status, headers, body, error
):
    scripted_api.script = [(status, headers, body)] * 3

    with pytest.raises(VcitaError) as raised:
        scripted_client.revoke_token(TOKEN)

    assert type(raised.value) is error
    assert len(scripted_api.received) == 1  # a POST is never sent twice


def test_a_429_passes_retry_after_on(scripted_api, scripted_client):
    scripted_api.script = [(429, {"Retry-After": "120"}, {})]

    with pytest.raises(VcitaUnavailable) as raised:
        scripted_client.revoke_token(TOKEN)

    assert raised.value.retry_after == 120


def test_a_timeout_is_vcita_not_answering(scripted_api):
    vcita_client = VcitaClient(settings_on(scripted_api.url, api_timeout=(1, 0.2)))
    scripted_api.script = [(201, {}, 1.0)]  # answers after a second: too late
    try:
        with pytest.raises(VcitaUnavailable, match="unreachable: ReadTimeout"):
            vcita_client.revoke_token(TOKEN)
    finally:
        vcita_client.close()
    assert len(scripted_api.received) == 1


def test_a_redirect_is_not_followed_with_the_token(scripted_api, scripted_client):
    scripted_api.script = [(302, {"Location": "http://evil.example/steal"}, {})]

    with pytest.raises(VcitaRefused):
        scripted_client.revoke_token(TOKEN)

    assert len(scripted_api.received) == 1
