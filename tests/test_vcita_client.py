"""The callback's rules, as the client module applies them: a pure function, no request.

`code_from_callback(query, pending_flow)` takes the callback's query (a MultiDict or the
dict of lists `parse_qs` returns) and the flow its `state` named, and returns the code or
raises why there is none. The views' tests prove the same rules end to end.
"""

from dataclasses import replace
from urllib.parse import parse_qs

import pytest
from werkzeug.datastructures import MultiDict

from app import vcita

SETTINGS = vcita.VcitaSettings(
    client_id="client", client_secret="secret", redirect_uri="https://app.example/callback"
)
FLOW = object()  # whatever the caller keeps for a pending flow


def code_of(query: str, pending_flow=FLOW, **settings) -> str:
    client = vcita.VcitaClient(replace(SETTINGS, **settings) if settings else SETTINGS)
    return client.code_from_callback(parse_qs(query, keep_blank_values=True), pending_flow)


def test_a_pending_flow_and_a_code_give_the_code():
    assert code_of("code=abc&state=s") == "abc"


def test_a_multidict_is_read_like_a_dict_of_lists():
    client = vcita.VcitaClient(SETTINGS)
    query = MultiDict([("code", "abc"), ("state", "s")])

    assert client.code_from_callback(query, FLOW) == "abc"


@pytest.mark.parametrize(
    ("query", "pending_flow", "refusal"),
    [
        ("code=abc&state=s", None, vcita.InvalidCallback),  # no flow of this browser's
        ("code=a&code=b&state=s", FLOW, vcita.InvalidCallback),  # parameter pollution
        ("code=abc&state=s&state=t", FLOW, vcita.InvalidCallback),
        ("code=abc&error=access_denied&state=s", FLOW, vcita.InvalidCallback),
        ("state=s", FLOW, vcita.InvalidCallback),  # no code at all
        ("code=&state=s", FLOW, vcita.InvalidCallback),
        ("error=access_denied&state=s", FLOW, vcita.AccessDenied),
        ("error=server_error&state=s", FLOW, vcita.ProviderError),
    ],
)
def test_the_callback_rules(query, pending_flow, refusal):
    with pytest.raises(refusal):
        code_of(query, pending_flow)


@pytest.mark.parametrize(
    ("query", "accepted"),
    [
        ("code=abc&state=s&iss=https://vcita.example", True),
        ("code=abc&state=s", False),  # RFC 9207 §2.4: expected, so required
        ("code=abc&state=s&iss=", False),
        ("code=abc&state=s&iss=https://evil.example", False),  # a mix-up
    ],
)
def test_with_an_issuer_set_the_callback_must_carry_it(query, accepted):
    if accepted:
        assert code_of(query, issuer="https://vcita.example") == "abc"
    else:
        with pytest.raises(vcita.InvalidCallback):
            code_of(query, issuer="https://vcita.example")


def test_an_unknown_client_auth_method_is_refused_when_the_client_is_built():
    with pytest.raises(ValueError, match="token_auth_method"):
        vcita.VcitaClient(replace(SETTINGS, token_auth_method="client_secret_jwt"))


def test_private_key_jwt_without_a_key_is_refused_when_the_client_is_built():
    with pytest.raises(ValueError, match="private key"):
        vcita.VcitaClient(replace(SETTINGS, token_auth_method="private_key_jwt"))
