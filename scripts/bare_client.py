"""A bare vcita client, as a naive integrator writes it: the baseline of `make load --compare`.

    gunicorn -c gunicorn.conf.py scripts.bare_client:app

Not an example to follow. It does the same flow as the app (Connect, vcita's consent, the
callback's state check, the code exchanged for a token, userinfo, a dashboard) the short
way: a new Authlib session, and so a new connection to vcita, for every page; the access
token kept in Flask's session cookie, which is signed but not encrypted, so the browser
holds a readable token; no database, no timeouts, no error pages. Settings: the app's own
VCITA_CLIENT_ID, VCITA_CLIENT_SECRET, VCITA_AUTHORIZE_URL, VCITA_TOKEN_URL,
VCITA_USERINFO_URL, VCITA_REDIRECT_URI and SECRET_KEY, all required.
"""

import json
import os

from authlib.common.urls import url_decode
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask, abort, redirect, render_template_string, request, session, url_for

app = Flask(__name__)
app.secret_key = os.environ["SECRET_KEY"]

PAGE = """<!doctype html><title>Bare vcita client</title>
{% if userinfo %}<h1>{{ userinfo.business_name }}</h1>
<p>Business {{ userinfo.business_uid }}, staff member {{ userinfo.sub }}</p>
{% else %}<a href="{{ url_for('connect') }}">Connect vcita</a>{% endif %}"""


def client_secret_json(client, method, uri, headers, body):
    """Send all five token fields in one JSON body, as vcita's guide shows (step 3)."""
    fields = {**dict(url_decode(body)), "client_id": client.client_id}
    fields["client_secret"] = client.client_secret
    headers["Content-Type"] = "application/json"
    return uri, headers, json.dumps(fields)


def vcita(token=None):
    """Return a new session to vcita: a new connection, every time."""
    client = OAuth2Session(
        os.environ["VCITA_CLIENT_ID"],
        os.environ["VCITA_CLIENT_SECRET"],
        redirect_uri=os.environ["VCITA_REDIRECT_URI"],
        token_endpoint_auth_method="client_secret_json",  # noqa: S106 - a method, not a secret
        token=token,
    )
    client.register_client_auth_method(("client_secret_json", client_secret_json))
    return client


@app.get("/")
def index():
    return render_template_string(PAGE, userinfo=None)


@app.get("/connect")
def connect():
    with vcita() as client:
        url, state = client.create_authorization_url(os.environ["VCITA_AUTHORIZE_URL"])
    session["state"] = state
    return redirect(url)


@app.get("/callback")
def callback():
    state = session.pop("state", None)
    if not state or request.args.get("state") != state or "code" not in request.args:
        abort(400)
    with vcita() as client:
        token = client.fetch_token(os.environ["VCITA_TOKEN_URL"], code=request.args["code"])
        client.get(os.environ["VCITA_USERINFO_URL"]).raise_for_status()
    session["token"] = dict(token)
    return redirect(url_for("dashboard"))


@app.get("/dashboard")
def dashboard():
    if "token" not in session:
        return redirect(url_for("index"))
    with vcita(token=session["token"]) as client:
        response = client.get(os.environ["VCITA_USERINFO_URL"])
    response.raise_for_status()
    return render_template_string(PAGE, userinfo=response.json())
