"""Serve the vcita sandbox on its own: `python -m sandbox [--host H] [--port P]`.

Integrators can point their own client at it. Settings come from the environment (and
`.env`), as described in README.md beside this file.
"""

from __future__ import annotations

import argparse
import signal
import sys

from dotenv import load_dotenv
from waitress.server import create_server

from . import create_sandbox
from .access_log import AccessLog, log_to_console
from .rtt import server_threads
from .settings import SandboxConfigError, client_auth_for_display, secret_for_display

# Threads answering requests: a few browsers and a client app's pooled connections.
THREADS = 16


def main(argv: list[str] | None = None) -> int:
    """Parse the options, then serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Serve the vcita sandbox: a local emulator of vcita's OAuth 2.0 "
        "authorize page, token and userinfo endpoints, its clients and webhook API calls, "
        "and its App Market. Configured by SANDBOX_* environment variables (see "
        "sandbox/README.md).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5001, help="port to listen on")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    options = parser.parse_args(argv)
    load_dotenv()
    try:
        sandbox = create_sandbox()
    except SandboxConfigError as error:
        print(error, file=sys.stderr)
        return 2
    if not options.quiet:
        log_to_console()
    # waitress: a well-kept WSGI server that keeps HTTP/1.1 connections alive, as vcita's do.
    server = create_server(
        AccessLog(sandbox),
        host=options.host,
        port=options.port,
        threads=server_threads(sandbox.config, THREADS),
    )
    # `make run` stops its servers with SIGINT or SIGTERM; both stop it as Ctrl+C does.
    # SIGINT too is set, as gunicorn does: a shell that starts a command in the background
    # (`cmd &` in a script) leaves SIGINT ignored, and Python would keep it so.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.default_int_handler)
    print(describe(f"http://{options.host}:{server.effective_port}", sandbox.config), flush=True)
    try:
        server.run()  # until Ctrl+C or SIGTERM, which waitress catches and returns on
    finally:
        print("Stopping the vcita sandbox.", flush=True)
        server.close()
    return 0


def describe(url: str, config: dict) -> str:
    """Say where the sandbox listens and which client it accepts."""
    redirect_uris = "\n".join(f"    {uri}" for uri in config["SANDBOX_REDIRECT_URIS"])
    lines = [
        f"vcita sandbox — a local emulator, not vcita.com — on {url}",
        f"  authorize:     {url}/app/oauth/authorize",
        f"  token:         {url}/oauth/token",
        f"  userinfo:      {url}/oauth/userinfo",
        f"  clients:       {url}/platform/v1/clients",
        f"  webhooks:      {url}/platform/v1/webhook/subscribe (unsubscribe, GET /webhooks)",
        f"  client_id:     {config['SANDBOX_CLIENT_ID']}",
        f"  client_secret: {secret_for_display(config['SANDBOX_CLIENT_SECRET'])}",
        f"  client auth:   {client_auth_for_display(config)}",
        f"  redirect URIs (exact match):\n{redirect_uris}",
        f"  trusted app (no consent page): {'yes' if config['SANDBOX_TRUSTED'] else 'no'}",
        "  connecting again: no consent page while a live token is held; "
        + ("the same token back" if config["SANDBOX_REUSE_ACCESS_TOKEN"] else "a new token"),
        f"  codes live {config['SANDBOX_CODE_LIFETIME']:g} s",
        f"  App Market:    {url}/app-market (vcita's UI opening the app)",
        f"    landing page: {config['SANDBOX_APP_URL'] or 'unset: set SANDBOX_APP_URL'}",
        f"    brand hosts:  *.{config['SANDBOX_BRAND_DOMAIN']}",
    ]
    if config["SANDBOX_RTT_MS"]:
        lines.append(
            f"  round trip:    {config['SANDBOX_RTT_MS']} ms before each API answer, two more on"
            " a new connection (TCP + TLS)"
        )
    if config["SANDBOX_ISSUER"]:
        lines.append(f"  iss (RFC 9207): {config['SANDBOX_ISSUER']}")
    if config["SANDBOX_CONTROL"]:
        lines.append(f"  control endpoints on: {url}/_sandbox/...")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
