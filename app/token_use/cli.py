"""`flask --app app vcita …`: the stored connections, from a backend job or a terminal.

    flask --app app vcita connections
    flask --app app vcita get /platform/v1/clients --business UID [--param per_page=5]
    flask --app app vcita get /platform/v1/clients --business UID --all-pages
    flask --app app vcita forget --business UID [--staff UID] [--yes]
    flask --app app vcita revocations [--retry] [--drop ID]
    flask --app app vcita new-key [--type RSA|EC] [--out FILE]
    flask --app app vcita reseal

Every command works on the connections the app stored; none ever prints a token. A
business with no connection is exit code 2; vcita refusing or not answering, 1.
"""

import json
import os
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from ..signing_keys import new_private_key
from ..storage.connections import get_connections
from ..storage.database import get_db
from ..storage.private_files import private_folder
from ..storage.resealing import reseal_everything
from ..storage.sealer import get_sealer
from ..vcita import AccessRevoked, VcitaError
from ..vcita_client import get_vcita
from .calls import Outcome, run_pending
from .ending import Ended, Ending, end_connections, end_if_vcita_refuses
from .pending_calls import PendingCall, State, get_pending_calls

vcita_cli = AppGroup("vcita", help="Work with the vcita connections this app stored.")

NO_CONNECTION = 2  # like a usage error: nothing was asked of vcita
VCITA_FAILED = 1


@vcita_cli.command("connections")
def connections() -> None:
    """List the stored connections: business, staff member, connected, last used."""
    stored = get_connections().all()
    if not stored:
        click.echo("No connections are stored.")
    for row in stored:
        last_used = row.last_used_at.isoformat(timespec="seconds") if row.last_used_at else "never"
        click.echo(
            f"business {row.business_uid}  staff {row.staff_uid}  "
            f"connected {row.connected_at.isoformat(timespec='seconds')}  last used {last_used}"
        )


@vcita_cli.command("get")
@click.argument("path")
@click.option("--business", required=True, help="The business's vcita uid.")
@click.option("--staff", help="The staff member's uid (default: the newest connection).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A query parameter.")
@click.option("--all-pages", is_flag=True, help="Follow page and per_page to the end.")
def get(
    path: str, business: str, staff: str | None, params: tuple[str, ...], all_pages: bool
) -> None:
    """GET an API PATH (/platform/v1/clients) with a business's token; print its JSON."""
    query = {}
    for param in params:
        key, equals, value = param.partition("=")
        if not equals or not key:
            raise click.BadParameter(f"{param!r} is not KEY=VALUE", param_hint="--param")
        query[key] = value
    connections = get_connections()
    connection = connections.find(business, staff)
    if connection is None:
        who = f"business {business}" + (f", staff {staff}" if staff else "")
        click.echo(f"No connection is stored for {who}.", err=True)
        sys.exit(NO_CONNECTION)
    vcita = get_vcita()
    try:
        if all_pages:
            answer = list(vcita.api_pages(connection.token, path, query))
        else:
            answer = vcita.api_get(connection.token, path, query)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="PATH") from error
    except AccessRevoked:
        # A 401 on one path may be a permission vcita refuses there: only userinfo's 401
        # says the token itself is dead, as for the uninstall webhook.
        if end_if_vcita_refuses(connection.id, Ending.REVOKED):
            click.echo(
                f"vcita no longer accepts the token of business {business}: it was revoked "
                "there, so the connection is removed.",
                err=True,
            )
        else:
            click.echo(
                f"vcita refused {path} with 401, but not the token itself (userinfo did not "
                "answer 401): the connection is kept. The token may lack a permission that "
                "path needs.",
                err=True,
            )
        sys.exit(VCITA_FAILED)
    except VcitaError as error:
        click.echo(f"vcita did not give an answer to use: {error}", err=True)
        sys.exit(VCITA_FAILED)
    connections.touch(connection.id)
    click.echo(json.dumps(answer, indent=2, ensure_ascii=False))


@vcita_cli.command("forget")
@click.option("--business", required=True, help="The business's vcita uid.")
@click.option("--staff", help="Only this staff member's connection.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def forget(business: str, staff: str | None, yes: bool) -> None:
    """Delete a business's stored connection(s) and their tokens."""
    chosen = [
        row
        for row in get_connections().all()
        if row.business_uid == business and (staff is None or row.staff_uid == staff)
    ]
    if not chosen:
        who = f"business {business}" + (f", staff {staff}" if staff else "")
        click.echo(f"No connection is stored for {who}.", err=True)
        sys.exit(NO_CONNECTION)
    staff_list = ", ".join(row.staff_uid for row in chosen)
    if not yes:
        click.confirm(
            f"Forget {len(chosen)} connection(s) of business {business} (staff {staff_list})? "
            "Their tokens are revoked at vcita and deleted here",
            abort=True,
        )
    ended = end_connections([row.id for row in chosen], Ending.FORGOTTEN)
    asked_again = ended.count(Ended.VCITA_ASKED_AGAIN)
    refused = ended.count(Ended.VCITA_REFUSED)
    click.echo(
        f"Forgot {len(ended)} connection(s) of business {business}: their tokens are deleted."
    )
    if asked_again:
        click.echo(
            f"vcita did not confirm it stopped accepting {asked_again} of them: it will be "
            "asked again (`flask --app app vcita revocations` lists what is pending)."
        )
    if refused:
        click.echo(
            f"vcita refused to revoke {refused} of them, and will not be asked again: an "
            "operator must look (`flask --app app vcita revocations` lists the refused calls)."
        )
    if not asked_again and not refused:
        click.echo("vcita no longer accepts them.")


@vcita_cli.command("revocations")
@click.option("--retry", is_flag=True, help="Make every pending call now (for a cron job).")
@click.option(
    "--drop", "drop_id", type=int, metavar="ID", help="Forget a call settled with vcita by hand."
)
def revocations(retry: bool, drop_id: int | None) -> None:
    """List the calls vcita must still hear: revocations, webhook (un)subscriptions.

    Kind, business, staff, attempts, the next attempt and vcita's last answer; never a
    token. With --retry, each pending call not in flight elsewhere is made first: exit
    code 1 if vcita did not answer one of them, or refused it.
    """
    calls = get_pending_calls()
    if drop_id is not None:
        if not calls.drop(drop_id):
            click.echo(f"No call #{drop_id} is pending.", err=True)
            sys.exit(NO_CONNECTION)
        click.echo(f"Dropped call #{drop_id}: vcita will not be asked it again.")
    made = run_pending(due_only=False) if retry else []
    if retry:
        done = sum(1 for attempt in made if attempt.outcome is Outcome.DONE)
        click.echo(f"Made {len(made)} call(s): vcita answered {done}.")
    listed = calls.all()
    if not listed:
        click.echo("No calls to vcita are pending.")
    for call in listed:
        click.echo(describe_call(call))
    if any(attempt.outcome is not Outcome.DONE for attempt in made):
        sys.exit(VCITA_FAILED)


def describe_call(call: PendingCall) -> str:
    """Return one pending call as a line of the list: whose, how it went; never its token."""
    if call.state is State.REFUSED:
        when = "refused: an operator must look"
    else:
        when = f"next attempt {call.next_attempt_at.isoformat(timespec='seconds')}"
    return (
        f"#{call.id}  {call.kind.value}  business {call.business_uid}  staff {call.staff_uid}  "
        f"attempts {call.attempts}  {when}  last error: {call.last_error or 'none'}"
    )


@vcita_cli.command("new-key")
@click.option("--type", "kind", type=click.Choice(["RSA", "EC"]), default="RSA", show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write it (default: instance/vcita-signing-key-<kid>.jwk.json).",
)
def new_key(kind: str, out: Path | None) -> None:
    """Make a private key for private_key_jwt, readable only by you; say what to set."""
    jwk = new_private_key(kind)
    instance = Path(current_app.instance_path)
    out = out or instance / f"vcita-signing-key-{jwk['kid'][:12]}.jwk.json"
    # A folder made for the key is 0700; of existing ones, only the app's own is changed.
    private_folder(out.parent, tighten=out.parent.absolute() == instance.absolute())
    try:
        # 0600 from the first byte, and never over an existing file.
        descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as error:
        raise click.BadParameter(
            f"{out} exists: choose another file", param_hint="--out"
        ) from error
    with os.fdopen(descriptor, "w") as file:
        json.dump(jwk, file)
    current = os.environ.get("VCITA_CLIENT_PRIVATE_KEYS", "").strip()
    base = current_app.config["PUBLIC_BASE_URL"] or "https://<this app>"
    click.echo(
        f"Wrote a new {kind} signing key (kid {jwk['kid']}) to {out}, readable only by you."
    )
    click.echo("Set (the newest key first signs; keep older ones until vcita has the new set):")
    click.echo("  VCITA_TOKEN_AUTH_METHOD=private_key_jwt")
    click.echo(f"  VCITA_CLIENT_PRIVATE_KEYS={out}{',' + current if current else ''}")
    click.echo(f"Register in vcita as client_auth_jwks_uri: {base}/.well-known/jwks.json")


RESEAL_UNFINISHED = 1


@vcita_cli.command("reseal")
def reseal() -> None:
    """Seal every stored secret with the newest TOKEN_ENCRYPTION_KEY, before dropping one.

    Counts per sealed column, and whose values no key opens; never a value. Exit code 1
    if a value was rewritten meanwhile (run it again) or no key opens one.
    """
    columns = reseal_everything(get_db(), get_sealer())
    for column in columns:
        click.echo(
            f"{column.name}: {column.resealed} sealed again, {column.current} already "
            f"with the newest key, {len(column.unreadable)} no key opens"
            + (f", {column.changed} rewritten meanwhile" if column.changed else "")
        )
        for whose in column.unreadable:
            click.echo(f"  no key opens {column.name} of {whose}", err=True)
    if any(column.changed for column in columns):
        click.echo("The app rewrote some values meanwhile: run this again.", err=True)
        sys.exit(RESEAL_UNFINISHED)
    click.echo("Every value a key opens is sealed with the newest: drop the older keys.")
    if any(column.unreadable for column in columns):
        click.echo(
            "No key in TOKEN_ENCRYPTION_KEY opens the values listed: if the key that sealed "
            "them is found, add it and run this again.",
            err=True,
        )
        sys.exit(RESEAL_UNFINISHED)


def init_app(app: Flask) -> None:
    app.cli.add_command(vcita_cli)
