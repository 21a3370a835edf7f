"""The app's vcita client: built once from the settings, reached with `get_client()`."""

from flask import Flask, current_app

from . import trace, vcita
from .vcita import VcitaClient, VcitaSettings


def init_app(app: Flask) -> None:
    """Build the one vcita client every request shares (and its pooled connections)."""
    config = app.config
    settings = VcitaSettings(
        client_id=config["VCITA_CLIENT_ID"],
        client_secret=config["VCITA_CLIENT_SECRET"],
        redirect_uri=config["VCITA_REDIRECT_URI"],
        authorize_url=config["VCITA_AUTHORIZE_URL"],
        token_url=config["VCITA_TOKEN_URL"],
        userinfo_url=config["VCITA_USERINFO_URL"],
        api_url=config["VCITA_API_URL"],
        private_keys=config["VCITA_CLIENT_PRIVATE_KEYS"],
        token_auth_method=config["VCITA_TOKEN_AUTH_METHOD"],
        scope=config["VCITA_SCOPE"],
        use_pkce=config["VCITA_USE_PKCE"],
        issuer=config["VCITA_ISSUER"],
        brand_hosts=config["VCITA_BRAND_HOSTS"],
        brand_authorize_url=config["VCITA_BRAND_AUTHORIZE_URL"] or vcita.BRAND_AUTHORIZE_URL,
    )
    # The flow trace watches the wire through the client's response hook; the client
    # itself does not know the trace exists.
    app.extensions["vcita"] = VcitaClient(settings, response_hook=trace.record_exchange)


def get_client() -> VcitaClient:
    """Return the current app's vcita client."""
    return current_app.extensions["vcita"]
