"""vcita Connect: connect a business to vcita with OAuth 2.0, the way vcita documents it.

`create_app` reads like the table of contents of the app: settings, logs, storage, the
vcita client, the three features (the connect flow, the App Market, using the token),
then the pages and what every page passes through (headers, language, filters, errors).
"""

import os
import sys
from typing import NoReturn

from dotenv import load_dotenv
from flask import Flask, g

from . import (
    app_market,
    connect,
    errors,
    formatting,
    languages,
    logs,
    security,
    storage,
    token_use,
    vcita_client,
    views,
)
from .config import ConfigError, load_config
from .connect import trace
from .storage.migrations import CannotUpgrade


def create_app(test_config: dict | None = None) -> Flask:
    """Create the app from the environment, or from `test_config` alone in tests."""
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder="../templates",
        static_folder="../static",
    )
    if test_config is None:
        # `flask run` loads .env itself; gunicorn and other servers do not.
        load_dotenv()
    environ = os.environ if test_config is None else test_config
    try:
        app.config.from_mapping(load_config(environ, app.instance_path))
    except ConfigError as error:
        refuse_to_start(error)
    app.config["TESTING"] = test_config is not None

    app.before_request(start_with_a_clean_g)
    logs.init_app(app)
    for warning in app.config["SETTINGS_WARNINGS"]:
        app.logger.warning(warning)  # settings that run, but may not do what was meant
    try:
        storage.init_app(app)
    except CannotUpgrade as error:
        # A setting like any other: DATABASE_URL names a database this version cannot use.
        refuse_to_start(ConfigError([f"DATABASE_URL: {error}"]))
    # The flow trace watches the wire through the client's response hook.
    vcita_client.init_app(app, response_hook=trace.record_exchange)
    connect.init_app(app)
    app_market.init_app(app)
    token_use.init_app(app)
    security.init_app(app)
    languages.init_app(app)
    formatting.init_app(app)
    app.register_blueprint(views.bp)
    errors.init_app(app)
    if not app.testing:
        compile_templates(app)
    return app


def compile_templates(app: Flask) -> None:
    """Compile every template now: the first requests would each compile their own.

    Jinja keeps a compiled template for the worker's lifetime, but requests that arrive
    together before it has one all compile it, and a compile costs as much CPU as tens
    of pages rendered. (Tests make hundreds of apps, each rendering a few pages: they
    compile what they render.)
    """
    for name in app.jinja_env.list_templates(extensions=["html"]):
        app.jinja_env.get_template(name)


def refuse_to_start(error: ConfigError) -> NoReturn:
    """Stop with the one message naming every problem, never a traceback.

    ConfigError is a SystemExit with gunicorn's "App failed to load" code: `flask`,
    gunicorn and Python itself exit on it without a traceback, and print nothing of it.
    """
    print(error, file=sys.stderr)  # an exit code alone would say nothing
    raise error


def start_with_a_clean_g() -> None:
    """Forget whatever an earlier request left in `g`.

    `g` lives as long as the app context, and a context kept around several requests
    (a test's, a command's) would otherwise hand one request's CSP nonce, connection
    or trace to the next.
    """
    for name in list(g):
        g.pop(name)
