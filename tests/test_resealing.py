"""Key rotation: `flask --app app vcita reseal` seals every stored secret with the newest key.

After it, the old key can leave TOKEN_ENCRYPTION_KEY and everything the app keeps still
opens: each connection's token and what vcita last said, its webhook subscription, its
flow trace and the calls vcita must still hear, read or not since the rotation.
"""

from dataclasses import replace

import sqlalchemy as sa
from cryptography.fernet import Fernet

from app.storage import tables
from app.storage.database import get_db
from app.storage.resealing import TABLES, reseal_everything, sealed_columns
from app.storage.sealer import Sealer, get_sealer
from app.token_use.pending_calls import Kind

from .conftest import finish_background_work, only_connection, stored

PUBLIC = "https://connect.example"
HARBOR = "7c6dc1589f078b66"  # Harbor Light Yoga: Maya Goldberg, Leo Martins
MAYA, LEO = "1beb795be66146bb", "41555f2fa81ceb05"


def reseal(app):
    return app.test_cli_runner().invoke(args=["vcita", "reseal"])


def sealed_values(app) -> list[str]:
    """Every sealed value the app's database holds, in every table."""
    with stored(app).database.transaction() as db:
        return [
            value
            for table in TABLES
            for column in sealed_columns(table)
            for value in db.execute(sa.select(column)).scalars()
            if value is not None
        ]


def connect_and_owe_a_call(app, browser) -> str:
    """Connect Maya (a snapshot, a trace, a subscription) and owe vcita a revocation."""
    assert browser.connect(staff="Maya Goldberg").status_code == 303
    finish_background_work(app)
    with app.app_context():
        sealer = get_sealer()
        stored(app).pending_calls.add(
            Kind.UNSUBSCRIBE,
            business_uid=HARBOR,
            staff_uid=LEO,
            sealed_token=sealer.seal("leo-old-token"),
            sealed_target_url=sealer.seal(f"{PUBLIC}/webhooks/vcita/leo-secret"),
        )
    return only_connection(app).token.access_token


def test_every_sealed_column_is_resealed():
    # A new sealed column is named encrypted_* and lives in one of the tables resealed.
    found = {f"{table.name}.{column.name}" for table in TABLES for column in sealed_columns(table)}
    declared = {
        f"{table.name}.{column.name}"
        for table in tables.metadata.tables.values()
        for column in table.c
        if column.name.startswith("encrypted_")
    }
    assert found == declared
    assert found == {
        "connections.encrypted_access_token",
        "connections.encrypted_userinfo",
        "connections.encrypted_recent_clients",
        "flow_traces.encrypted_steps",
        "webhook_subscriptions.encrypted_target_url",
        "pending_calls.encrypted_token",
        "pending_calls.encrypted_target_url",
    }


def test_after_reseal_the_old_key_can_go_and_everything_still_opens(make_app, new_browser):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings = {"PUBLIC_BASE_URL": PUBLIC, "SHOW_FLOW_TRACE": "true"}
    before = make_app(**settings, TOKEN_ENCRYPTION_KEY=old_key)
    access_token = connect_and_owe_a_call(before, new_browser(before))
    rotated = make_app(**settings, TOKEN_ENCRYPTION_KEY=f"{new_key},{old_key}")

    result = reseal(rotated)

    assert result.exit_code == 0
    assert "connections.encrypted_access_token: 1 sealed again, 0 already" in result.stdout
    assert "pending_calls.encrypted_target_url: 1 sealed again" in result.stdout
    assert "sealed with the newest: drop the older keys" in result.stdout
    assert access_token not in result.stdout + result.stderr
    after = make_app(**settings, TOKEN_ENCRYPTION_KEY=new_key)
    values = sorted(sealed_values(after))
    assert len(values) == 7  # every sealed column, none NULL here
    for value in values:
        Fernet(new_key).decrypt(value.encode())  # the newest key alone opens each one
    connection = only_connection(after)
    assert connection.token.access_token == access_token
    assert connection.snapshot is not None and connection.snapshot.recent_clients is not None
    assert stored(after).subscriptions.target_url_of(connection.id).startswith(PUBLIC)
    with stored(after).database.transaction() as db:
        trace_id = db.execute(sa.select(tables.flow_traces.c.id)).scalar_one()
    assert stored(after).flow_traces.get(trace_id, connection.id) is not None


def test_values_sealed_with_the_newest_key_are_left_as_they_are(app, browser):
    assert browser.connect().status_code == 303
    values = sorted(sealed_values(app))

    result = reseal(app)

    assert result.exit_code == 0
    assert "connections.encrypted_access_token: 0 sealed again, 1 already" in result.stdout
    assert all(": 0 sealed again" in line for line in result.stdout.splitlines()[:-1])
    assert sorted(sealed_values(app)) == values


def test_a_value_no_key_opens_is_named_by_whose_it_is_and_kept(make_app, new_browser):
    lost_key, key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = make_app(TOKEN_ENCRYPTION_KEY=lost_key)
    assert new_browser(before).connect(staff="Maya Goldberg").status_code == 303
    after = make_app(TOKEN_ENCRYPTION_KEY=key)
    values = sorted(sealed_values(after))

    result = reseal(after)

    assert result.exit_code == 1
    assert "connections.encrypted_access_token: 0 sealed again, 0 already" in result.stdout
    assert "1 no key opens" in result.stdout
    assert (
        f"no key opens connections.encrypted_access_token of business {HARBOR}, staff {MAYA}"
        in result.stderr
    )
    assert sorted(sealed_values(after)) == values  # kept as they were: the key may come back
    assert only_connection(after) is None


def test_rows_are_resealed_a_batch_at_a_time(make_app, new_browser):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = make_app(TOKEN_ENCRYPTION_KEY=old_key)
    browser = new_browser(before)
    for staff in ("Maya Goldberg", "Leo Martins"):
        assert browser.connect(staff=staff).status_code == 303
    rotated = make_app(TOKEN_ENCRYPTION_KEY=f"{new_key},{old_key}")

    with rotated.app_context():
        [tokens, *_] = reseal_everything(get_db(), get_sealer(), batch=1)

    assert (tokens.name, tokens.resealed, tokens.current) == (
        "connections.encrypted_access_token",
        2,
        0,
    )
    assert len(stored(make_app(TOKEN_ENCRYPTION_KEY=new_key)).connections.all()) == 2


def test_a_value_the_app_rewrote_meanwhile_is_left_as_the_app_wrote_it(make_app, new_browser):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = make_app(TOKEN_ENCRYPTION_KEY=old_key)
    assert new_browser(before).connect().status_code == 303
    rotated = make_app(TOKEN_ENCRYPTION_KEY=f"{new_key},{old_key}")
    connection = only_connection(before)

    class ReconnectingWhileResealing(Sealer):
        def reseal(self, sealed: str) -> str | None:
            # The person connects again between the read and the write.
            with rotated.app_context():
                stored(rotated).connections.save(
                    business_uid=connection.business_uid,
                    staff_uid=connection.staff_uid,
                    token=replace(connection.token, access_token="token-of-the-reconnect"),
                )
            return super().reseal(sealed)

    with rotated.app_context():
        sealer = ReconnectingWhileResealing([new_key, old_key])
        [tokens, *_] = reseal_everything(get_db(), sealer)
    result = reseal(rotated)

    assert (tokens.resealed, tokens.changed) == (0, 1)
    assert result.exit_code == 0  # the second run finds it sealed with the newest key
    after = make_app(TOKEN_ENCRYPTION_KEY=new_key)
    assert only_connection(after).token.access_token == "token-of-the-reconnect"
