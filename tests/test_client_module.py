"""The vcita client is one module an integrator copies into any app, and it works there.

The test does what an integrator does: it copies `app/vcita.py` alone into an empty
folder, writes a small Flask app of its own beside it, and runs a complete connect
flow through it against the sandbox, over HTTP.
"""

import ast
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import requests

from sandbox import create_sandbox
from sandbox.testing import SandboxPerson, ServerThread

from .conftest import CLIENT_ID, CLIENT_SECRET
from .servers import free_port

CLIENT_MODULE = Path(__file__).resolve().parent.parent / "app" / "vcita.py"
# urllib3 comes with requests (its retries are requests' own `max_retries`).
ALLOWED_IMPORTS = {"authlib", "requests", "urllib3"} | set(sys.stdlib_module_names)

INTEGRATORS_APP = textwrap.dedent(
    '''
    """Someone else's Flask app, connecting to vcita with the copied module alone."""
    import secrets
    import sys

    from flask import Flask, jsonify, redirect, request, session
    from werkzeug.serving import make_server

    import vcita

    sandbox_url, port = sys.argv[1], int(sys.argv[2])
    app = Flask(__name__)
    app.secret_key = secrets.token_hex(32)
    client = vcita.VcitaClient(
        vcita.VcitaSettings(
            client_id=sys.argv[3],
            client_secret=sys.argv[4],
            redirect_uri=f"http://127.0.0.1:{port}/callback",
            authorize_url=f"{sandbox_url}/app/oauth/authorize",
            token_url=f"{sandbox_url}/oauth/token",
            userinfo_url=f"{sandbox_url}/oauth/userinfo",
        )
    )


    @app.get("/connect")
    def connect():
        session["state"] = state = vcita.new_state()
        return redirect(client.authorization_url(state))


    @app.get("/callback")
    def callback():
        expected = session.pop("state", "")
        sent = request.args.get("state", "")
        pending = expected and secrets.compare_digest(expected.encode(), sent.encode())
        try:
            code = client.code_from_callback(request.args, pending_flow=pending or None)
            token = client.exchange_code(code)
            userinfo = client.fetch_userinfo(token)
        except vcita.VcitaError as error:
            return jsonify(error=type(error).__name__), 400
        business_uid, staff_uid = client.identify(userinfo)
        return jsonify(business=userinfo["business_name"], business_uid=business_uid)


    server = make_server("127.0.0.1", port, app)
    print("serving", flush=True)
    server.serve_forever()
    '''
)


def test_the_client_module_imports_only_authlib_requests_and_the_standard_library():
    tree = ast.parse(CLIENT_MODULE.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import: the module needs its package"
            imported.add(node.module.split(".")[0])

    assert imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS
    assert "flask" not in imported


@pytest.fixture
def integrators_app(tmp_path):
    """The copied module and the integrator's app, served on a port of their own."""
    folder = tmp_path / "someone-elses-app"
    folder.mkdir()
    shutil.copy(CLIENT_MODULE, folder / "vcita.py")
    (folder / "their_app.py").write_text(INTEGRATORS_APP)
    port = free_port()
    sandbox = create_sandbox(
        {
            "SANDBOX_CLIENT_ID": CLIENT_ID,
            "SANDBOX_CLIENT_SECRET": CLIENT_SECRET,
            "SANDBOX_REDIRECT_URIS": f"http://127.0.0.1:{port}/callback",
        }
    )
    with ServerThread(sandbox) as vcita_server:
        process = subprocess.Popen(
            [
                sys.executable,
                "their_app.py",
                vcita_server.url,
                str(port),
                CLIENT_ID,
                CLIENT_SECRET,
            ],
            cwd=folder,
            # Only the copied folder: nothing of this project can be imported.
            env={"PYTHONPATH": str(folder), "PATH": "/usr/bin:/bin", "PYTHONSAFEPATH": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert process.stdout.readline().strip() == "serving", process.stdout.read()
            yield f"http://127.0.0.1:{port}", vcita_server.url
        finally:
            process.terminate()
            process.wait(timeout=10)
            process.stdout.close()


def test_the_copied_module_runs_a_complete_flow_in_someone_elses_flask_app(integrators_app):
    app_url, sandbox_url = integrators_app
    browser = requests.Session()
    started = browser.get(f"{app_url}/connect", allow_redirects=False, timeout=10)
    assert started.status_code == 302
    assert started.headers["Location"].startswith(f"{sandbox_url}/app/oauth/authorize?")

    with SandboxPerson(sandbox_url) as person:
        callback_url = person.approve(started.headers["Location"])
    answer = browser.get(callback_url, timeout=10)

    assert answer.status_code == 200, answer.text
    assert answer.json()["business"] == "Harbor Light Yoga"


def test_the_copied_module_refuses_a_callback_from_another_browser(integrators_app):
    app_url, sandbox_url = integrators_app
    victim = requests.Session()
    started = victim.get(f"{app_url}/connect", allow_redirects=False, timeout=10)
    with SandboxPerson(sandbox_url) as person:
        callback_url = person.approve(started.headers["Location"])

    attacker = requests.Session()  # no session cookie: not the browser that started it
    answer = attacker.get(callback_url, timeout=10)

    assert answer.status_code == 400
    assert answer.json() == {"error": "InvalidCallback"}
