"""The app's one vcita client: built from the settings at start-up, reached with `get_vcita()`."""

from collections.abc import Callable
from typing import Any

import requests
from flask import Flask, current_app

from .vcita import VcitaClient


def init_app(app: Flask, response_hook: Callable[[requests.Response], Any]) -> None:
    """Build the one vcita client every request shares (and its pooled connections).

    `response_hook` watches the wire (the flow trace): the client does not know who listens.
    """
    app.extensions["vcita"] = VcitaClient(app.config["VCITA"], response_hook=response_hook)


def get_vcita() -> VcitaClient:
    """Return the current app's vcita client."""
    return current_app.extensions["vcita"]
