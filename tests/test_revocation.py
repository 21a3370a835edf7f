"""Disconnect revokes the token at vcita, durably; the calls vcita must hear are never lost;
the landing page says what the app reads and what Disconnect does.

Over real HTTP against the sandbox: Disconnect (and `flask vcita forget`) unsubscribe,
revoke, and delete the connection at once; what vcita does not confirm waits, sealed, in
`pending_calls` and is made again by `run_pending` (what the retrier and `flask vcita
revocations --retry` call) until vcita answers: after a restart too, and exactly once
when two app instances run the queue at the same moment.
"""

import logging
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.storage.connections import get_connections
from app.storage.database import get_db
from app.storage.sealer import get_sealer
from app.storage.tables import pending_calls
from app.token_use import calls, ending
from app.token_use import pending_calls as pending_calls_module
from app.token_use.calls import Outcome, Retrier, get_retrier, run_pending
from app.token_use.pending_calls import Kind, State, get_pending_calls
from app.token_use.subscriptions import get_subscriptions, new_target_url
from app.vcita_client import get_vcita

from .conftest import change_vcita_settings, finish_background_work, only_connection, stored

ROOT = Path(__file__).resolve().parent.parent
HARBOR = "7c6dc1589f078b66"  # Harbor Light Yoga: Maya Goldberg, Leo Martins
MAYA = "1beb795be66146bb"
PUBLIC = "https://connect.example"
STOPPED = "vcita no longer accepts the key this app had for your business, and this app deleted"
ASKED_AGAIN = "vcita did not confirm that it stopped accepting it, so it will be asked again"
REFUSED = "but vcita refused to revoke it: the administrator of this app must look into it"
# vcita not answering a revoke: each leaves the token valid there, for now.
FAULTS = [
    pytest.param({"status": 503}, id="503"),
    pytest.param({"status": 500}, id="500"),
    pytest.param({"status": 429, "headers": {"Retry-After": "120"}}, id="429"),
    # Past the browser's timeout (below); the sandbox revokes after the delay, unseen.
    pytest.param({"delay": 2.0, "times": 1}, id="timeout"),
]
QUICK_TIMEOUT = (1, 0.3)


# --- What the tests read -----------------------------------------------------------------


def run(app, **when) -> list[Outcome]:
    """Run the queue as the retrier does (or `--retry`, with due_only=False)."""
    with app.app_context():
        return [made.outcome for made in run_pending(**when)]


def later() -> datetime:
    """A moment past any backoff: every pending call is due by then."""
    return datetime.now(UTC) + timedelta(hours=2)


def revoked_tokens(vcita) -> list[str]:
    """Return the token each revoke request named, in the order vcita received them."""
    return [request["body"]["token"] for request in vcita.recorded_requests("revoke")]


def sealed_tokens_kept(app) -> list[str]:
    """Return the tokens the pending calls hold, opened with the app's keys."""
    with app.app_context(), get_db().transaction() as db:
        sealed = db.execute(sa.select(pending_calls.c.encrypted_token)).scalars().all()
        return [get_sealer().open(value) for value in sealed]


def wait_until(condition, timeout: float = 10) -> None:
    """Wait until `condition()` holds (something another thread does), or fail."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "it did not happen in time"
        time.sleep(0.02)


def cli(app, *args):
    return app.test_cli_runner().invoke(args=["vcita", *args])


# --- Disconnect revokes -------------------------------------------------------------------


def test_disconnect_revokes_the_token_and_vcita_refuses_it_after(app, browser, vcita):
    browser.connect()
    token = only_connection(app).token.access_token

    response = browser.disconnect()

    assert response.status_code == 303
    assert stored(app).connections.count() == 0
    assert revoked_tokens(vcita) == [token]
    (request,) = vcita.recorded_requests("revoke")
    assert request["status"] == 201
    assert request["headers"]["Authorization"] == f"Bearer {token}"
    assert not vcita.is_token_active(token)
    assert stored(app).pending_calls.all() == []
    assert STOPPED in browser.get("/").text


def test_disconnect_unsubscribes_then_revokes(make_app, new_browser, vcita):
    app = make_app(PUBLIC_BASE_URL=PUBLIC)
    browser = new_browser(app)
    assert browser.get(browser.approve()).status_code == 303
    finish_background_work(app)
    assert len(vcita.subscriptions()) == 1

    browser.disconnect()

    unsubscribed, revoked = (
        vcita.recorded_requests("unsubscribe"),
        vcita.recorded_requests("revoke"),
    )
    assert [request["status"] for request in unsubscribed + revoked] == [200, 201]
    assert unsubscribed[0]["received_at"] < revoked[0]["received_at"]
    assert vcita.subscriptions() == []
    assert stored(app).pending_calls.all() == []


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_leaves_no_token_here_and_a_pending_revocation_a_retry_completes(
    app, browser, vcita, fault
):
    browser.connect()
    token = only_connection(app).token.access_token
    change_vcita_settings(app, api_timeout=QUICK_TIMEOUT)
    vcita.set_fault("revoke", **fault)

    assert browser.disconnect().status_code == 303

    assert stored(app).connections.count() == 0  # the token left the connections table at once
    (call,) = stored(app).pending_calls.all()
    assert (call.kind, call.state, call.attempts) == (Kind.REVOKE, State.PENDING, 1)
    assert (call.business_uid, call.staff_uid) == (HARBOR, MAYA)
    assert call.last_error and token not in call.last_error
    assert sealed_tokens_kept(app) == [token]
    assert ASKED_AGAIN in browser.get("/").text
    assert run(app) == []  # not due yet: the retrier waits out the backoff
    vcita.clear_faults()

    assert run(app, now=later()) == [Outcome.DONE]

    assert stored(app).pending_calls.all() == []
    assert revoked_tokens(vcita)[-1] == token
    assert not vcita.is_token_active(token)


def test_a_pending_revocation_is_completed_by_a_new_app_on_the_same_database(
    app, browser, vcita, make_app
):
    (token,) = pending_revocations_of(app, browser, vcita)
    with app.app_context():
        get_db().dispose()  # this instance stops

    restarted = make_app()

    assert [call.kind for call in stored(restarted).pending_calls.all()] == [Kind.REVOKE]
    assert run(restarted, due_only=False) == [Outcome.DONE]
    assert stored(restarted).pending_calls.all() == []
    assert not vcita.is_token_active(token)


def pending_revocations_of(app, browser, vcita, staff=("Maya Goldberg",)) -> list[str]:
    """Connect these staff members in one browser, Disconnect while vcita answers 503.

    Return their tokens, each now owed a revocation; vcita answers again after.
    """
    for name in staff:
        browser.connect(staff=name)
    with app.app_context():
        connections = get_connections()
        tokens = [connections.get(row.id).token.access_token for row in connections.all()]
    vcita.set_fault("revoke", status=503)
    browser.disconnect()
    vcita.clear_faults()
    return tokens


STAFF = ["Maya Goldberg", "Leo Martins", "Daniel O'Brien", "Sofía Hernández", "Priya Raman"]


def test_two_instances_running_the_queue_at_once_revoke_each_token_once(
    app, browser, vcita, make_app
):
    tokens = pending_revocations_of(app, browser, vcita, STAFF)
    assert len(stored(app).pending_calls.all()) == len(set(tokens)) == len(STAFF)
    asked_before = len(revoked_tokens(vcita))
    vcita.set_fault("revoke", delay=0.2)  # each call takes a while: the two runs overlap
    instances = [make_app(), make_app()]
    together = threading.Barrier(len(instances))
    outcomes = []

    def run_queue(instance):
        together.wait()
        outcomes.extend(run(instance, now=later()))

    threads = [threading.Thread(target=run_queue, args=(instance,)) for instance in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Counter(revoked_tokens(vcita)[asked_before:]) == Counter(tokens)  # each once
    assert outcomes == [Outcome.DONE] * len(tokens)
    assert stored(app).pending_calls.all() == []


def test_two_processes_retrying_at_once_revoke_each_token_once(app, browser, vcita, settings):
    tokens = pending_revocations_of(app, browser, vcita, STAFF)
    assert len(stored(app).pending_calls.all()) == len(set(tokens)) == len(STAFF)
    asked_before = len(revoked_tokens(vcita))
    vcita.set_fault("revoke", delay=0.3)
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VCITA_", "DATABASE_"))},
        **settings,
        "FLASK_SKIP_DOTENV": "1",
    }
    command = [sys.executable, "-m", "flask", "--app", "app", "vcita", "revocations", "--retry"]

    processes = [
        subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = [(process.communicate(timeout=60)[0], process.returncode) for process in processes]

    assert [code for _, code in results] == [0, 0]
    assert Counter(revoked_tokens(vcita)[asked_before:]) == Counter(tokens)  # each once
    assert stored(app).pending_calls.all() == []
    for output, _ in results:
        assert all(token not in output for token in tokens)


def test_disconnect_vcita_answers_invalid_token_says_it_no_longer_accepts_the_key(
    app, browser, vcita
):
    browser.connect()
    token = only_connection(app).token.access_token
    vcita.set_fault("revoke", status=422, json={"status": "Error", "error": "invalid token"})

    assert browser.disconnect().status_code == 303

    assert revoked_tokens(vcita) == [token]
    assert vcita.recorded_requests("revoke")[0]["status"] == 422
    assert stored(app).connections.count() == 0
    assert stored(app).pending_calls.all() == []
    assert STOPPED in browser.get("/").text


@pytest.mark.parametrize(
    "meanwhile",
    [
        pytest.param(
            lambda vcita: vcita.set_fault(
                "revoke", status=422, json={"status": "Error", "error": "invalid token"}
            ),
            id="invalid-token",
        ),
        pytest.param(lambda vcita: vcita.revoke_all_tokens(), id="already-dead-401"),
    ],
)
def test_vcita_knowing_no_such_token_ends_the_retry(app, browser, vcita, meanwhile):
    pending_revocations_of(app, browser, vcita)
    meanwhile(vcita)

    assert run(app, now=later()) == [Outcome.DONE]

    assert stored(app).pending_calls.all() == []
    assert run(app, now=later() + timedelta(days=1)) == []  # nothing left to ask


def test_unauthorized_is_kept_for_an_operator_and_never_retried(app, browser, vcita):
    browser.connect()
    vcita.set_fault("revoke", status=422, json={"status": "Error", "error": "Unauthorized"})

    browser.disconnect()

    (call,) = stored(app).pending_calls.all()
    assert call.state is State.REFUSED
    assert "Unauthorized" in call.last_error
    # Never "asked again": the call waits for an operator (this assertion once said so).
    message = browser.get("/").text
    assert REFUSED in message
    assert ASKED_AGAIN not in message
    asked = len(vcita.recorded_requests("revoke"))
    assert run(app, now=later()) == []
    assert run(app, due_only=False) == []
    assert len(vcita.recorded_requests("revoke")) == asked
    listed = cli(app, "revocations")
    assert "refused: an operator must look" in listed.stdout


# --- Several connections: one sentence for each case ------------------------------------


@pytest.mark.parametrize(
    ("failures", "says"),
    [
        pytest.param(
            0, "vcita no longer accepts any of the 3 keys this browser connected", id="all"
        ),
        pytest.param(
            1,
            "This app deleted the 3 keys this browser connected; vcita no longer accepts 2 of "
            "them, and will be asked again about the other 1.",
            id="some",
        ),
        pytest.param(
            3,
            "This app deleted the 3 keys this browser connected; vcita did not confirm that it "
            "stopped accepting them, so it will be asked again.",
            id="none",
        ),
    ],
)
def test_disconnect_says_what_vcita_confirmed_for_each_key(app, browser, vcita, failures, says):
    for name in ("Maya Goldberg", "Leo Martins", "Priya Raman"):
        browser.connect(staff=name)
    if failures:
        vcita.set_fault("revoke", status=503, times=failures)

    browser.disconnect()

    assert stored(app).connections.count() == 0
    assert len(stored(app).pending_calls.all()) == failures
    assert says in browser.get("/").text


def test_disconnect_says_when_vcita_refused_some_of_the_keys(app, browser, vcita):
    for name in ("Maya Goldberg", "Leo Martins", "Priya Raman"):
        browser.connect(staff=name)
    refusal = {"status": "Error", "error": "Unauthorized"}
    vcita.set_fault("revoke", status=422, json=refusal, times=1)

    browser.disconnect()

    assert [call.state for call in stored(app).pending_calls.all()] == [State.REFUSED]
    assert (
        "This app deleted the 3 keys this browser connected, but vcita refused to revoke 1 of "
        "them: the administrator of this app must look into it."
    ) in browser.get("/").text


def test_disconnect_leaves_the_calls_it_has_no_time_for_to_the_retrier(
    app, browser, vcita, monkeypatch
):
    for name in ("Maya Goldberg", "Priya Raman"):
        browser.connect(staff=name)
    monkeypatch.setattr(ending, "TELLING_VCITA_WITHIN", 0)  # vcita took all the time there was

    browser.disconnect()

    assert stored(app).connections.count() == 0
    assert vcita.recorded_requests("revoke") == []
    assert [call.attempts for call in stored(app).pending_calls.all()] == [
        1,
        1,
    ]  # claimed, not yet made
    assert run(app) == []  # and no instance makes them before their backoff
    assert run(app, now=later()) == [Outcome.DONE, Outcome.DONE]


def test_a_call_in_flight_is_claimed_by_no_one_until_its_backoff(app, browser, vcita):
    # An instance claimed the call, then died before vcita answered: the call waits.
    pending_revocations_of(app, browser, vcita)
    with app.app_context():
        (call,) = get_pending_calls().all()
        assert get_pending_calls().claim(call.id, due_only=False) is not None  # then dies

    assert run(app, due_only=False) == []  # in flight: not even --retry takes it
    assert run(app) == []
    assert run(app, now=later()) == [Outcome.DONE]


# --- The subscription at connect, and the unsubscribe -------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"status": 503}, id="503"),
        pytest.param({"status": 500, "json": {"response": "Not Subscribed"}}, id="not-subscribed"),
        # The sandbox subscribes after the delay: the retry meets "Webhook already exists".
        pytest.param({"delay": 1.0, "times": 1}, id="timeout"),
    ],
)
def test_a_failed_subscription_at_connect_is_retried_and_completes(
    make_app, new_browser, vcita, fault
):
    app = make_app(PUBLIC_BASE_URL=PUBLIC)
    change_vcita_settings(app, api_timeout=QUICK_TIMEOUT)
    vcita.set_fault("subscribe", **fault)
    browser = new_browser(app)
    assert browser.get(browser.approve()).status_code == 303
    finish_background_work(app)
    (call,) = stored(app).pending_calls.all()
    assert (call.kind, call.state, call.attempts) == (Kind.SUBSCRIBE, State.PENDING, 1)
    vcita.clear_faults()  # wakes the delayed request: vcita subscribes, the app never knew
    if "delay" in fault:
        wait_until(lambda: vcita.subscriptions())

    assert run(app, now=later()) == [Outcome.DONE]

    (held,) = vcita.subscriptions()
    connection = only_connection(app)
    with app.app_context():
        assert get_subscriptions().target_url_of(connection.id) == held.target_url
    assert stored(app).pending_calls.all() == []


def test_a_pending_subscription_goes_with_its_connection(make_app, new_browser, vcita):
    app = make_app(PUBLIC_BASE_URL=PUBLIC)
    vcita.set_fault("subscribe", status=503)
    browser = new_browser(app)
    browser.get(browser.approve())
    finish_background_work(app)
    assert [call.kind for call in stored(app).pending_calls.all()] == [Kind.SUBSCRIBE]

    browser.disconnect()

    assert [
        call.kind for call in stored(app).pending_calls.all()
    ] == []  # nothing left to subscribe


def test_an_unsubscribe_and_revoke_vcita_missed_are_made_later_in_that_order(
    make_app, new_browser, vcita
):
    app = make_app(PUBLIC_BASE_URL=PUBLIC)
    browser = new_browser(app)
    browser.get(browser.approve())
    finish_background_work(app)
    vcita.set_fault("unsubscribe", status=503)
    vcita.set_fault("revoke", status=503)
    browser.disconnect()
    assert [call.kind for call in stored(app).pending_calls.all()] == [
        Kind.UNSUBSCRIBE,
        Kind.REVOKE,
    ]
    vcita.clear_faults()

    assert run(app, now=later()) == [Outcome.DONE, Outcome.DONE]

    assert vcita.subscriptions() == []  # unsubscribed while the token still worked
    assert [r["status"] for r in vcita.recorded_requests("unsubscribe")] == [503, 200]
    assert [r["status"] for r in vcita.recorded_requests("revoke")] == [503, 201]


def test_an_unsubscribe_whose_token_vcita_no_longer_accepts_is_done(make_app, new_browser, vcita):
    app = make_app(PUBLIC_BASE_URL=PUBLIC)
    browser = new_browser(app)
    browser.get(browser.approve())
    finish_background_work(app)
    vcita.set_fault("unsubscribe", status=503)
    browser.disconnect()  # the revoke went through
    assert [call.kind for call in stored(app).pending_calls.all()] == [Kind.UNSUBSCRIBE]
    vcita.clear_faults()

    assert run(app, now=later()) == [Outcome.DONE]  # vcita: 401

    assert vcita.recorded_requests("unsubscribe")[-1]["status"] == 401
    assert stored(app).pending_calls.all() == []


# --- Connecting again, the retrier, the CLI -----------------------------------------------


def test_connecting_again_with_the_token_owed_a_revocation_keeps_it(app, browser, vcita):
    (token,) = pending_revocations_of(app, browser, vcita)
    assert [call.kind for call in stored(app).pending_calls.all()] == [Kind.REVOKE]

    browser.connect()  # vcita asks nothing of Maya, who still holds that token, and gives it back
    finish_background_work(app)

    assert only_connection(app).token.access_token == token
    assert stored(app).pending_calls.all() == []
    assert run(app, now=later()) == []
    assert vcita.is_token_active(token)
    assert browser.get("/dashboard").status_code == 200


def test_only_a_revocation_owed_before_the_connection_was_stored_is_cancelled(app, browser, vcita):
    # The token a connect stored was owed no revocation made after it: one is the person's
    # own Disconnect since, and stands.
    browser.connect()
    connection = only_connection(app)
    vcita.set_fault("revoke", status=503)
    browser.disconnect()

    with app.app_context():
        calls.keep_the_token(connection)

    assert [call.kind for call in stored(app).pending_calls.all()] == [Kind.REVOKE]


def test_the_retrier_thread_makes_the_due_calls(app, browser, vcita):
    (token,) = pending_revocations_of(app, browser, vcita)
    assert [call.kind for call in stored(app).pending_calls.all()] == [Kind.REVOKE]
    with app.app_context(), get_db().transaction() as db:  # the backoff has passed
        db.execute(sa.update(pending_calls).values(next_attempt_at=datetime.now(UTC)))
    retrier = Retrier(app, every=0.05)

    retrier.start()
    try:
        wait_until(lambda: not stored(app).pending_calls.all())
    finally:
        retrier.stop()

    assert stored(app).pending_calls.all() == []
    assert not vcita.is_token_active(token)


def test_the_retrier_starts_with_the_first_request_served_and_never_in_a_command():
    served = Flask(__name__)  # not testing, as create_app() is under a server or `flask`
    calls.init_app(served)
    served.add_url_rule("/", "page", lambda: "a page")
    served.cli.command("job")(lambda: None)
    with served.app_context():
        retrier = get_retrier()
    try:
        command = served.test_cli_runner().invoke(args=["job"])
        started_by_the_command = retrier.thread.is_alive()
        first, second = served.test_client().get("/"), served.test_client().get("/")

        assert command.exit_code == 0, command.output
        assert not started_by_the_command
        assert (first.status_code, second.status_code) == (200, 200)  # started once
        assert retrier.thread.is_alive()
    finally:
        retrier.stop()


def test_forget_revokes_the_token(app, browser, vcita):
    browser.connect()
    token = only_connection(app).token.access_token

    result = cli(app, "forget", "--business", HARBOR, "--yes")

    assert result.exit_code == 0, result.stderr
    assert "vcita no longer accepts them" in result.stdout
    assert revoked_tokens(vcita) == [token]
    assert not vcita.is_token_active(token)
    assert stored(app).connections.count() == 0
    assert token not in result.output


def test_forget_says_when_vcita_will_be_asked_again(app, browser, vcita):
    browser.connect()
    vcita.set_fault("revoke", status=503)

    result = cli(app, "forget", "--business", HARBOR, "--yes")

    assert result.exit_code == 0
    assert "did not confirm it stopped accepting 1 of them" in result.stdout
    assert stored(app).connections.count() == 0
    assert [call.kind for call in stored(app).pending_calls.all()] == [Kind.REVOKE]


def test_forget_says_when_vcita_refused_and_an_operator_must_look(app, browser, vcita):
    browser.connect()
    vcita.set_fault("revoke", status=422, json={"status": "Error", "error": "Unauthorized"})

    result = cli(app, "forget", "--business", HARBOR, "--yes")

    assert result.exit_code == 0
    assert "vcita refused to revoke 1 of them, and will not be asked again" in result.stdout
    assert "flask --app app vcita revocations" in result.stdout
    assert "asked again (" not in result.stdout
    assert "vcita no longer accepts them" not in result.stdout
    assert stored(app).connections.count() == 0
    assert [call.state for call in stored(app).pending_calls.all()] == [State.REFUSED]


def test_revocations_lists_the_pending_calls_without_the_token_and_retry_completes_them(
    app, browser, vcita
):
    (token,) = pending_revocations_of(app, browser, vcita)
    vcita.set_fault("revoke", status=503)  # still down

    listed = cli(app, "revocations")
    failed = cli(app, "revocations", "--retry")  # vcita still down
    vcita.clear_faults()
    retried = cli(app, "revocations", "--retry")

    assert listed.exit_code == 0
    (line,) = listed.stdout.splitlines()
    for part in ("revoke", f"business {HARBOR}", f"staff {MAYA}", "attempts 1", "next attempt 20"):
        assert part in line
    assert "answered HTTP 503" in line
    assert failed.exit_code == 1
    assert "attempts 2" in failed.stdout
    assert retried.exit_code == 0, retried.output
    assert "Made 1 call(s): vcita answered 1." in retried.stdout
    assert "No calls to vcita are pending." in retried.stdout
    assert not vcita.is_token_active(token)
    for result in (listed, failed, retried):
        assert token not in result.output


def test_retry_makes_every_pending_call_past_one_batch_each_once(app, browser, vcita, monkeypatch):
    monkeypatch.setattr(pending_calls_module, "BATCH", 2)  # five calls: three batches
    tokens = pending_revocations_of(app, browser, vcita, STAFF)
    asked_before = len(revoked_tokens(vcita))
    vcita.set_fault("revoke", status=503)

    failed = cli(app, "revocations", "--retry")  # a call vcita did not answer stays runnable
    vcita.clear_faults()
    retried = cli(app, "revocations", "--retry")

    assert failed.exit_code == 1
    assert "Made 5 call(s): vcita answered 0." in failed.stdout
    assert retried.exit_code == 0, retried.output
    assert "Made 5 call(s): vcita answered 5." in retried.stdout
    assert Counter(revoked_tokens(vcita)[asked_before:]) == Counter(tokens * 2)  # once a run
    assert stored(app).pending_calls.all() == []


def test_revocations_drops_a_call_an_operator_settled(app, browser, vcita):
    browser.connect()
    vcita.set_fault("revoke", status=422, json={"status": "Error", "error": "Unauthorized"})
    browser.disconnect()
    (call,) = stored(app).pending_calls.all()

    dropped = cli(app, "revocations", "--drop", str(call.id))
    again = cli(app, "revocations", "--drop", str(call.id))

    assert dropped.exit_code == 0
    assert "No calls to vcita are pending." in dropped.stdout
    assert again.exit_code == 2


# --- Secrets --------------------------------------------------------------------------------


def test_the_token_waits_sealed_in_the_database(app, browser, vcita):
    (token,) = pending_revocations_of(app, browser, vcita)

    with app.app_context(), get_db().transaction() as db:
        (row,) = db.execute(sa.select(pending_calls)).all()
    assert all(token not in str(value) for value in row)
    assert sealed_tokens_kept(app) == [token]


@pytest.fixture
def subscribing_app_and_its_log(make_app, caplog):
    """An app that subscribes; and every line logged at DEBUG, the libraries' and the app's."""
    app = make_app(PUBLIC_BASE_URL=PUBLIC)
    caplog.set_level(logging.DEBUG)  # the root logger: urllib3's lines among them
    caplog.set_level(logging.DEBUG, logger=app.logger.name)  # create_app set INFO
    app.logger.addHandler(caplog.handler)  # create_app keeps the app's lines apart
    yield app, caplog
    app.logger.removeHandler(caplog.handler)


def test_nothing_in_a_log_line_or_page_holds_the_token(
    subscribing_app_and_its_log, new_browser, vcita
):
    app, log = subscribing_app_and_its_log
    browser = new_browser(app)
    pages = [browser.get(browser.approve())]
    finish_background_work(app)
    pages.append(browser.get("/dashboard"))
    token = only_connection(app).token.access_token
    vcita.set_fault("unsubscribe", status=503)
    vcita.set_fault("revoke", status=500, body=f"<p>revoking {token} failed</p>")
    pages.append(browser.disconnect())
    pages.append(browser.get("/"))
    vcita.clear_faults()
    outputs = [cli(app, "revocations"), cli(app, "revocations", "--retry")]

    assert "Could not revoke the token" in log.text  # the app's lines were kept
    assert "POST /platform/v1/tokens/revoke" in log.text  # and urllib3's
    assert stored(app).pending_calls.all() == []
    assert token not in log.text
    for response in pages:
        assert token not in response.get_data(as_text=True)
        assert token not in str(response.headers)
    for result in outputs:
        assert token not in result.output


# --- Whatever vcita answers ---------------------------------------------------------------


ANSWER_BODIES = {
    "empty": None,
    "invalid token": {"status": "Error", "error": "invalid token"},
    "Unauthorized": {"status": "Error", "error": "Unauthorized"},
    "other error": {"status": "Error", "error": "something else"},
    "revoked": {"status": "OK", "data": {"revoked_tokens": []}},
}


def vcita_confirmed(status: int, body) -> bool:
    """Say whether vcita's answer means it no longer accepts the token (its documentation)."""
    invalid_token = status == 422 and body == ANSWER_BODIES["invalid token"]
    return 200 <= status < 300 or status == 401 or invalid_token


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
# vcita's documented answers drawn often, beside any status; and each of them for sure.
@given(
    status=st.sampled_from([201, 401, 422, 429, 500, 503]) | st.integers(200, 599),
    body=st.sampled_from(sorted(ANSWER_BODIES)),
)
@example(status=422, body="invalid token")
@example(status=422, body="Unauthorized")
@example(status=401, body="empty")
@example(status=201, body="revoked")
@example(status=503, body="empty")
def test_whatever_vcita_answers_the_revocation_is_confirmed_or_kept(
    app, new_browser, vcita, status, body
):
    vcita.reset()
    with app.app_context(), get_db().transaction() as db:
        db.execute(sa.delete(pending_calls))
    browser = new_browser(app)
    browser.get(browser.approve())
    token = only_connection(app).token.access_token
    answer = ANSWER_BODIES[body]
    vcita.set_fault("revoke", status=status, **({} if answer is None else {"json": answer}))

    browser.disconnect()

    assert stored(app).connections.count() == 0
    message = browser.get("/").text
    if vcita_confirmed(status, answer):
        assert stored(app).pending_calls.all() == []
        assert STOPPED in message
    else:
        (call,) = stored(app).pending_calls.all()
        unavailable = status >= 500 or status == 429
        assert call.state is (State.PENDING if unavailable else State.REFUSED)
        assert sealed_tokens_kept(app) == [token]
        assert (ASKED_AGAIN if unavailable else REFUSED) in message


# --- The landing page says what the app reads, and what Disconnect does -------------------

# Where the landing page names each field of what vcita answers the app: userinfo, and
# each record of the clients list the Recent clients panel reads.
NAMED_ON_THE_LANDING_PAGE = {
    "brand_host": "web address",
    "brand_theme": "brand colors",
    "business_id": "vcita IDs",
    "business_name": "business's name",
    "business_uid": "vcita IDs",
    "directory_uid": "vcita IDs",
    "email": "e-mail address",
    "role": "role",
    "sub": "staff ID",
    "type": "account type",
    # A browser of the business.
    "address": "postal addresses",
    "campaign": "how and when each was added",
    "channel": "how and when each was added",
    "created_at": "how and when each was added",
    "custom_field1": "custom fields",
    "custom_field2": "custom fields",
    "custom_field3": "custom fields",
    "customer_status": "statuses",
    "first_name": "names",
    "id": "clients",
    "last_name": "names",
    "mobile_phone": "phone numbers",
    "normalized_phone": "phone numbers",
    "opt_in": "marketing opt-in",
    "source": "how and when each was added",
    "source_url": "how and when each was added",
    "tags": "tags",
    "updated_at": "five most recently updated",
}


def test_the_landing_page_names_everything_the_app_reads_from_vcita(app, browser):
    browser.connect()
    connection = only_connection(app)
    with app.app_context():
        vcita = get_vcita()
        userinfo = vcita.fetch_userinfo(connection.token)
        clients = vcita.api_get(connection.token, "/platform/v1/clients")["data"]["clients"]
    read = set(userinfo) | {field for record in clients for field in record}
    browser.disconnect()

    landing = " ".join(browser.get("/").text.split())

    assert read <= set(NAMED_ON_THE_LANDING_PAGE)  # a field vcita added must be named too
    for field in read:
        assert NAMED_ON_THE_LANDING_PAGE[field] in landing, field
    assert "Disconnect at any time: vcita stops accepting the key, and this app deletes it." in (
        landing
    )


def test_two_subscribes_owed_for_one_connection_subscribe_it_once(make_app, new_browser, vcita):
    # One staff member's two callbacks, on two workers, may each write a subscribe down
    # before either is made; two instances then make them at the same moment.
    app = make_app(PUBLIC_BASE_URL=PUBLIC)
    vcita.set_fault("subscribe", status=503)
    browser = new_browser(app)
    assert browser.get(browser.approve()).status_code == 303
    finish_background_work(app)
    connection = only_connection(app)
    with app.app_context():
        get_pending_calls().add(
            Kind.SUBSCRIBE,
            business_uid=connection.business_uid,
            staff_uid=connection.staff_uid,
            connection_id=connection.id,
            sealed_target_url=get_sealer().seal(new_target_url(PUBLIC)),
        )
    vcita.clear_faults()
    vcita.set_fault("subscribe", delay=0.5)  # each in flight long enough to meet the other

    instances = [threading.Thread(target=run, args=(app,), kwargs={"now": later()}) for _ in "ab"]
    for instance in instances:
        instance.start()
    for instance in instances:
        instance.join()

    assert len(vcita.subscriptions()) == 1
    assert stored(app).pending_calls.all() == []
