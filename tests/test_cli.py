"""`flask --app app vcita …`: the stored connections from a terminal or a backend job.

Each command runs against the sandbox through Flask's CLI runner; none ever prints a
token, whatever it does.
"""

import json

import pytest

from .conftest import stored

HARBOR = "7c6dc1589f078b66"  # Harbor Light Yoga: Maya Goldberg, Leo Martins
MAYA, LEO = "1beb795be66146bb", "41555f2fa81ceb05"


@pytest.fixture
def connected(app, browser):
    """The app with Harbor Light Yoga connected by Maya Goldberg."""
    assert browser.get(browser.approve(staff="Maya Goldberg")).status_code == 303
    return app


def stored_tokens(app) -> list[str]:
    store = stored(app).connections
    return [store.get(row.id).token.access_token for row in store.all()]


def run(app, *args, **kwargs):
    return app.test_cli_runner().invoke(args=["vcita", *args], **kwargs)


def assert_no_token_in(result, tokens) -> None:
    for token in tokens:
        assert token not in result.stdout
        assert token not in result.stderr


def test_connections_lists_business_staff_and_times_never_a_token(connected):
    tokens = stored_tokens(connected)
    result = run(connected, "connections")
    assert result.exit_code == 0
    (line,) = result.stdout.splitlines()
    assert f"business {HARBOR}" in line and f"staff {MAYA}" in line
    assert "connected 20" in line and "last used" in line
    assert_no_token_in(result, tokens)


def test_a_new_connection_is_listed_as_used_by_its_connect(connected):
    # The callback read userinfo and the clients list with the token: that is its first use.
    assert "last used never" not in run(connected, "connections").stdout


def test_connections_says_when_there_are_none(app):
    result = run(app, "connections")
    assert result.exit_code == 0
    assert result.stdout == "No connections are stored.\n"


def test_a_business_with_no_connection_is_a_clear_error(app):
    result = run(app, "get", "/platform/v1/clients", "--business", "nobody")
    assert result.exit_code == 2
    assert "No connection is stored for business nobody" in result.stderr


def test_a_malformed_param_is_a_usage_error(connected):
    result = run(
        connected, "get", "/platform/v1/clients", "--business", HARBOR, "--param", "novalue"
    )
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.stderr


def test_a_path_off_vcitas_api_is_a_usage_error(connected, vcita):
    asked_before = len(vcita.recorded_requests("clients"))
    result = run(connected, "get", "https://evil.example/x", "--business", HARBOR)
    assert result.exit_code == 2
    assert "not an API path" in result.stderr
    assert len(vcita.recorded_requests("clients")) == asked_before  # vcita got no request


def test_get_prints_the_apis_json_and_records_the_use(connected):
    tokens = stored_tokens(connected)
    result = run(
        connected,
        "get",
        "/platform/v1/clients",
        "--business",
        HARBOR,
        "--param",
        "per_page=2",
    )
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["status"] == "OK"
    assert len(answer["data"]["clients"]) == 2
    assert_no_token_in(result, tokens)
    assert "last used never" not in run(connected, "connections").stdout


def test_get_all_pages_follows_the_pages_to_the_end(connected):
    one_page = json.loads(
        run(connected, "get", "/platform/v1/clients", "--business", HARBOR).stdout
    )["data"]["clients"]
    result = run(connected, "get", "/platform/v1/clients", "--business", HARBOR, "--all-pages")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == one_page  # fewer than a page: the same clients


def test_a_revoked_token_removes_the_connection_and_says_so(connected, vcita_server, vcita):
    tokens = stored_tokens(connected)
    vcita_server.sandbox.test_client().post("/_sandbox/revoke", json={})
    asked = len(vcita.userinfo_requests)
    result = run(connected, "get", "/platform/v1/clients", "--business", HARBOR)
    assert result.exit_code == 1
    assert "revoked" in result.stderr and "removed" in result.stderr
    assert len(vcita.userinfo_requests) == asked + 1  # userinfo's 401 confirmed it
    assert stored_tokens(connected) == []
    assert_no_token_in(result, tokens)


# A 401 that names no error on one path, as vcita's revoked-token answer does, and one
# that says why (Doorkeeper's insufficient_scope): neither alone says the token is dead.
REFUSALS = [
    {"status": 401},
    {
        "status": 401,
        "json": {"error": "insufficient_scope"},
        "headers": {"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
    },
]


@pytest.mark.parametrize(
    ("endpoint", "path"),
    [("clients", "/platform/v1/clients"), ("webhooks", "/platform/v1/webhooks")],
)
@pytest.mark.parametrize("refusal", REFUSALS)
def test_a_401_on_one_path_keeps_a_connection_whose_token_still_works(
    connected, vcita, endpoint, path, refusal
):
    tokens = stored_tokens(connected)
    asked = len(vcita.userinfo_requests)
    vcita.set_fault(endpoint, **refusal)
    result = run(connected, "get", path, "--business", HARBOR)
    assert result.exit_code == 1
    assert f"vcita refused {path} with 401" in result.stderr
    assert "the connection is kept" in result.stderr
    assert "removed" not in result.stderr
    assert len(vcita.userinfo_requests) == asked + 1  # vcita was asked about the token
    assert stored_tokens(connected) == tokens
    assert_no_token_in(result, tokens)


def test_a_401_while_userinfo_does_not_answer_keeps_the_connection(connected, vcita):
    tokens = stored_tokens(connected)
    vcita.set_fault("clients", status=401)
    vcita.set_fault("userinfo", status=503)
    result = run(connected, "get", "/platform/v1/clients", "--business", HARBOR)
    assert result.exit_code == 1
    assert "the connection is kept" in result.stderr
    assert stored_tokens(connected) == tokens


def test_forget_asks_first_and_keeps_the_connection_on_no(connected):
    result = run(connected, "forget", "--business", HARBOR, input="n\n")
    assert result.exit_code == 1  # aborted
    assert f"staff {MAYA}" in result.stdout
    assert len(stored_tokens(connected)) == 1


def test_forget_deletes_on_yes(connected):
    result = run(connected, "forget", "--business", HARBOR, input="y\n")
    assert result.exit_code == 0
    assert "Forgot 1 connection(s)" in result.stdout
    assert stored_tokens(connected) == []


def test_forget_with_yes_asks_nothing_and_only_that_staff_members(connected, browser):
    assert browser.get(browser.approve(staff="Leo Martins")).status_code == 303
    result = run(connected, "forget", "--business", HARBOR, "--staff", LEO, "--yes")
    assert result.exit_code == 0
    remaining = run(connected, "connections").stdout
    assert f"staff {MAYA}" in remaining and f"staff {LEO}" not in remaining


def test_forget_of_an_unknown_business_is_a_clear_error(app):
    result = run(app, "forget", "--business", "nobody", "--yes")
    assert result.exit_code == 2
    assert "No connection is stored" in result.stderr
