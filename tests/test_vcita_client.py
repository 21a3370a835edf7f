"""The client module's rules as pure functions, no request: the callback's, and reading a token.

`code_from_callback(query, pending_flow)` takes the callback's query (a MultiDict or the
dict of lists `parse_qs` returns) and the flow its `state` named, and returns the code or
raises why there is none. `_access_token_from(answer, received_at)` reads step 3's answer
as RFC 6749 §5.1 says. The views' tests prove the same rules end to end.
"""

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
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


def test_the_callback_rules_hand_back_the_flow_they_accepted_with_its_code():
    client = vcita.VcitaClient(SETTINGS)
    flow = object()

    code, accepted = client.code_and_flow(parse_qs("code=abc&state=s"), flow)

    assert code == "abc"
    assert accepted is flow


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


# --- Reading step 3's answer (RFC 6749 §5.1) ----------------------------------------------

RECEIVED_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # when vcita's answer arrived
TWENTY_YEARS = 631139040  # a new token's expires_in (vcita's example)
YEAR = 365 * 86400


def read_token(**answer) -> vcita.AccessToken:
    """Read a bearer token answer carrying `answer`'s fields, as if it arrived at RECEIVED_AT."""
    return vcita._access_token_from(
        {"access_token": "a" * 64, "token_type": "Bearer", **answer}, RECEIVED_AT
    )


def ago(seconds: float) -> float:
    return RECEIVED_AT.timestamp() - seconds


def test_a_new_token_was_issued_now_and_expires_in_twenty_years():
    token = read_token(created_at=int(ago(0)), expires_in=TWENTY_YEARS)

    assert token.issued_at == RECEIVED_AT
    assert token.expires_at == RECEIVED_AT + timedelta(seconds=TWENTY_YEARS)


@pytest.mark.parametrize("age", [12960, 3 * YEAR, 19 * YEAR])  # 3.6 hours, 3 and 19 years
def test_a_token_given_back_keeps_when_it_was_issued_and_expires_when_its_time_is_up(age):
    # Doorkeeper's reuse_access_token: the token the staff member holds, with its first
    # created_at and expires_in the time it has left.
    token = read_token(created_at=int(ago(age)), expires_in=TWENTY_YEARS - age)

    assert token.issued_at == RECEIVED_AT - timedelta(seconds=age)
    assert token.expires_at == RECEIVED_AT + timedelta(seconds=TWENTY_YEARS - age)


@pytest.mark.parametrize(
    "created_at",
    [
        ago(-1),  # a second after it arrived: vcita's clock is ahead of ours
        ago(-2 * 86400),
        253402300799,  # the year 9999
        ago(101 * YEAR),  # older than any token lives
        -(10**20),
        pytest.param(10**400, id="10**400"),  # no float holds it
        math.nan,
        math.inf,
        True,
        "1754377015",
        None,
    ],
)
def test_a_created_at_that_is_no_moment_in_the_tokens_past_reads_as_now(created_at):
    token = read_token(created_at=created_at, expires_in=600)

    assert token.issued_at == RECEIVED_AT
    assert token.expires_at == RECEIVED_AT + timedelta(seconds=600)


@pytest.mark.parametrize(
    "expires_in",
    [
        -1,
        101 * YEAR,  # longer than any token lives
        1e20,
        pytest.param(10**400, id="10**400"),
        math.nan,
        math.inf,
        True,
        "600",
        None,
    ],
)
def test_an_expires_in_that_is_no_lifetime_is_not_stated(expires_in):
    token = read_token(created_at=int(ago(60)), expires_in=expires_in)

    assert token.expires_at is None
    assert token.issued_at == RECEIVED_AT - timedelta(seconds=60)


def around_now(years_before: int, years_after: int) -> st.SearchStrategy:
    """Unix times from `years_before` before RECEIVED_AT to `years_after` after it."""
    now = RECEIVED_AT.timestamp()
    return st.integers(int(now) - years_before * YEAR, int(now) + years_after * YEAR) | st.floats(
        now - years_before * YEAR, now + years_after * YEAR
    )


odd_json_values = st.none() | st.booleans() | st.text(max_size=12) | st.floats()
any_created_at = (
    around_now(years_before=120, years_after=2)
    | st.integers(-(10**400), 10**400)
    | odd_json_values
)
any_expires_in = (
    st.integers(-YEAR, 120 * YEAR)
    | st.floats(-1e6, 120.0 * YEAR)
    | st.integers(-(10**400), 10**400)
    | odd_json_values
)


def is_number(value) -> bool:
    # Compared to a range, never converted: NaN is in no range, nor is Infinity.
    return isinstance(value, int | float) and not isinstance(value, bool)


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(created_at=any_created_at, expires_in=any_expires_in)
@example(created_at=int(ago(3 * YEAR)), expires_in=TWENTY_YEARS - 3 * YEAR)
@example(created_at=10**400, expires_in=10**400)
def test_any_created_at_and_expires_in_read_as_rfc_6749_says(created_at, expires_in):
    token = read_token(created_at=created_at, expires_in=expires_in)

    # Issued at created_at when that is a moment of the token's past, else when it arrived.
    assert RECEIVED_AT - vcita.LONGEST_TOKEN_LIFETIME <= token.issued_at <= RECEIVED_AT
    oldest = (RECEIVED_AT - vcita.LONGEST_TOKEN_LIFETIME).timestamp()
    if is_number(created_at) and oldest <= created_at <= RECEIVED_AT.timestamp():
        assert abs(token.issued_at.timestamp() - created_at) < 1e-5
    else:
        assert token.issued_at == RECEIVED_AT
    # Expires expires_in seconds after the answer arrived, whenever it was issued.
    lifetime = vcita.LONGEST_TOKEN_LIFETIME.total_seconds()
    if is_number(expires_in) and 0 <= expires_in <= lifetime:
        assert token.expires_at is not None
        assert abs((token.expires_at - RECEIVED_AT).total_seconds() - expires_in) < 1e-3
    else:
        assert token.expires_at is None
