"""The vcita sandbox: a local emulator of vcita's authorize page, token and userinfo endpoints,
the clients, webhook and token-revoking calls of its platform API, and the App Market that
opens (and uninstalls) an installed app.

A WSGI app of its own. It shares nothing with the client app in `app/`: the client reaches
it only over HTTP, as it reaches vcita. Serve it with `python -m sandbox`, or in tests
with `sandbox.testing.ServerThread(create_sandbox(...))`. See README.md beside this file.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from . import (
    app_market,
    authorize,
    client_keys,
    clients,
    control,
    faults,
    languages,
    pages,
    revocation,
    rtt,
    tokens,
    userinfo,
    webhooks,
)
from .settings import SandboxConfigError, load_settings
from .state import SandboxState

__all__ = ["SandboxConfigError", "SandboxState", "create_sandbox"]

# The sandbox's forms and JSON bodies are small; anything bigger is a mistake.
MAX_REQUEST_BYTES = 64 * 1024


def create_sandbox(test_config: dict[str, Any] | None = None) -> Flask:
    """Create the sandbox: settings → state → client keys → pages and their language → endpoints
    → control → RTT."""
    app = Flask(__name__)
    configure(app, test_config)
    app.extensions["vcita_sandbox"] = SandboxState(
        app.config["SANDBOX_CODE_LIFETIME"],
        reuse_access_token=app.config["SANDBOX_REUSE_ACCESS_TOKEN"],
    )
    client_keys.init_app(app)
    faults.init_app(app)
    pages.init_app(app)
    languages.init_app(app)
    app.register_blueprint(authorize.bp)
    app.register_blueprint(tokens.bp)
    app.register_blueprint(userinfo.bp)
    app.register_blueprint(clients.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(revocation.bp)
    app.register_blueprint(app_market.bp)
    if app.config["SANDBOX_CONTROL"]:
        app.register_blueprint(control.bp)
    rtt.init_app(app)
    return app


def configure(app: Flask, test_config: dict[str, Any] | None) -> None:
    """Load the validated settings, then the sandbox's own session and JSON style."""
    settings = load_settings(overrides=test_config)
    app.config.update(settings)
    app.config.update(
        SECRET_KEY=settings["SANDBOX_SECRET_KEY"],
        # Its own cookie: on 127.0.0.1 the client app's cookies share the host.
        SESSION_COOKIE_NAME="vcita_sandbox_session",
        SESSION_COOKIE_SAMESITE="Lax",
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
    )
    app.config.update(
        {name: value for name, value in (test_config or {}).items() if name not in settings}
    )
    # vcita (Rails) sends UTF-8 as is rather than \\u escapes; clients must decode it.
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
