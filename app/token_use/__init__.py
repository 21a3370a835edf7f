"""Using the token, vcita's guide step 4 and after: the dashboard, webhooks, the CLI.

`snapshots` decides what the dashboard shows (live, just read, or kept for an outage),
with `recent_clients` for its panel, read in the background by `client_reads`;
`subscriptions` and `webhooks` hear when a business uninstalls the app; `cli` serves
backend jobs; every connection ends through `ending`; `calls` makes the calls vcita must
hear (revoke, unsubscribe, subscribe) until it answers, kept in `pending_calls`.
"""

from flask import Flask

from . import background, calls, cli, client_reads, pending_calls, subscriptions, webhooks


def init_app(app: Flask) -> None:
    """Start the threads that call vcita, keep subscriptions and pending calls, add the CLI."""
    background.init_app(app)
    client_reads.init_app(app)
    subscriptions.init_app(app)
    pending_calls.init_app(app)
    calls.init_app(app)
    webhooks.init_app(app)
    cli.init_app(app)
