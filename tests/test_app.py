"""The app as a whole: start-up, every page's chrome and headers, the CLI, `make run`."""

import importlib.util
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from cryptography.fernet import Fernet

from app.config import EXIT_CONFIG_ERROR
from app.storage.database import Database
from sandbox.testing import SandboxPerson, as_a_shell_starts

from .conftest import stored
from .servers import ServerProcess, free_port
from .test_private_key_jwt import EC_JWK

ROOT = Path(__file__).resolve().parent.parent


def clean_environment(**extra) -> dict:
    """The machine's environment without any vcita setting a developer may have exported."""
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VCITA_", "SANDBOX_", "SECRET_KEY", "TOKEN_", "DATABASE_URL"))
    }
    return {**keep, **extra}


def test_sandbox_mode_says_so_on_every_page(make_app):
    browser = make_app(VCITA_SANDBOX="true").test_client()
    for path in ("/", "/nowhere", "/callback?state=x&code=y"):
        assert "Sandbox — not connected to vcita.com" in browser.get(path).text


def load_run_script(root: Path):
    """Import scripts/run.py, with `root` standing for the project's folder."""
    spec = importlib.util.spec_from_file_location("run_script", ROOT / "scripts" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.ROOT = root
    return module


def test_make_run_points_the_app_at_the_sandbox_as_its_registered_client(tmp_path):
    run = load_run_script(tmp_path)

    settings = run.sandbox_settings({})

    assert settings["VCITA_CLIENT_ID"] == "vcita-connect-sandbox"
    assert settings["VCITA_TOKEN_URL"] == f"http://127.0.0.1:{run.SANDBOX_PORT}/oauth/token"
    assert settings["VCITA_REDIRECT_URI"] == settings["SANDBOX_REDIRECT_URIS"]
    assert settings["VCITA_REDIRECT_URI"] == f"http://localhost:{run.APP_PORT}/callback"
    assert len(settings["SECRET_KEY"]) >= 32


def test_make_run_makes_the_sandbox_secrets_once_and_keeps_them(tmp_path):
    run = load_run_script(tmp_path)

    first, second = run.sandbox_settings({}), run.sandbox_settings({})

    assert first["SECRET_KEY"] == second["SECRET_KEY"]
    assert first["TOKEN_ENCRYPTION_KEY"] == second["TOKEN_ENCRYPTION_KEY"]
    assert (tmp_path / "instance" / "sandbox-secrets.json").stat().st_mode & 0o077 == 0
    given = {"SECRET_KEY": "s" * 40, "TOKEN_ENCRYPTION_KEY": "k"}
    assert run.sandbox_settings(given)["SECRET_KEY"] == "s" * 40


@pytest.mark.usefixtures("usual_umask")
def test_make_run_keeps_the_sandbox_secrets_in_a_private_instance_folder(tmp_path):
    run = load_run_script(tmp_path)
    instance = tmp_path / "instance"

    run.sandbox_settings({})
    made = stat.S_IMODE(instance.stat().st_mode)
    instance.chmod(0o755)  # as make run left it before
    run.sandbox_settings({})

    assert made == 0o700
    assert stat.S_IMODE(instance.stat().st_mode) == 0o700


def test_pages_outside_the_sandbox_do_not_claim_to_be_the_sandbox(browser):
    assert "Sandbox" not in browser.get("/").text


@pytest.mark.parametrize("path", ["/", "/dashboard", "/connect", "/callback", "/missing"])
def test_every_response_carries_the_security_headers(browser, path):
    response = browser.get(path)
    policy = response.headers["Content-Security-Policy"]
    # Only the pages vcita shows in its frame may be framed, and only by vcita.
    framed = path in ("/", "/dashboard")
    ancestors = "https://app.vcita.com" if framed else "'none'"
    assert policy.endswith(f"; frame-ancestors {ancestors}")
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_unknown_page_is_a_404_page_not_a_stack_trace(browser):
    response = browser.get("/missing")
    assert response.status_code == 404
    assert "Page not found" in response.text
    assert "Traceback" not in response.text


def test_unexpected_error_is_a_500_page_without_details(app, browser, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("internal detail 1234")

    monkeypatch.setattr("app.connect.flows.start_flow", explode)
    response = browser.get("/connect")
    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert "internal detail 1234" not in response.text


def test_init_db_command_creates_the_schema(app):
    result = app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0
    assert stored(app).connections.count() == 0


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "flask", "--app", "app", "run", "--port", "0"],
        [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "app:create_app()"],
    ],
    ids=["flask", "gunicorn"],
)
def test_servers_refuse_to_start_without_credentials_or_sandbox_switch(tmp_path, command):
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env=clean_environment(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "VCITA_CLIENT_ID is not set" in output
    assert "Traceback" not in output


# Every way the app is started: `make run`'s and `make serve`'s first step, the CLI, gunicorn.
ENTRY_POINTS = {
    "flask-init-db": [sys.executable, "-m", "flask", "--app", "app", "init-db"],
    "flask-vcita": [sys.executable, "-m", "flask", "--app", "app", "vcita", "connections"],
    "gunicorn": [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "app:create_app()"],
    "make-run": [sys.executable, str(ROOT / "scripts" / "run.py")],
}


def a_malformed_key_file(tmp_path: Path) -> tuple[dict, str]:
    """A JWK whose curve joserfc does not know (a KeyError once), holding a real private key."""
    path = tmp_path / "signing.jwk.json"
    path.write_text(json.dumps({**EC_JWK, "crv": "P-999"}))
    problem = f"VCITA_CLIENT_PRIVATE_KEYS: {str(path)!r} holds no private RSA or EC P-256 key"
    return {"VCITA_CLIENT_PRIVATE_KEYS": str(path)}, problem


def a_database_at_an_unknown_revision(tmp_path: Path) -> tuple[dict, str]:
    """A database a newer version upgraded, before this version was rolled back onto it."""
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    database = Database(url)
    database.upgrade_schema()
    with database.transaction() as db:
        db.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
    database.dispose()
    return {"DATABASE_URL": url}, f"DATABASE_URL: the database at {url} is at revision '0999'"


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
@pytest.mark.parametrize("problem", [a_malformed_key_file, a_database_at_an_unknown_revision])
def test_every_entry_point_stops_with_the_settings_message_never_a_traceback(
    tmp_path, entry_point, problem
):
    changes, says = problem(tmp_path)
    environment = clean_environment(
        PYTHONPATH=str(ROOT),
        FLASK_SKIP_DOTENV="1",
        VCITA_CLIENT_ID="client",
        VCITA_CLIENT_SECRET="secret",
        VCITA_REDIRECT_URI="http://localhost:5000/callback",
        SECRET_KEY="entry-point-test-secret-key-0123456789abcdef",
        TOKEN_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        **{"DATABASE_URL": f"sqlite:///{tmp_path / 'connect.db'}", **changes},
    )

    result = subprocess.run(
        ENTRY_POINTS[entry_point],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )

    # make run says it through `flask init-db`, which stops it before any server starts.
    assert result.returncode == EXIT_CONFIG_ERROR
    assert result.stderr.count("vcita Connect cannot start. Fix these settings") == 1
    assert f"\n  - {says}" in result.stderr
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert not [value for value in EC_JWK.values() if len(value) > 16 and value in output]


def make_run_environment(tmp_path: Path) -> tuple[int, int, dict]:
    """Return free ports for the app and the sandbox, and `make run`'s environment."""
    app_port, sandbox_port = free_port(), free_port()
    env = clean_environment(
        PORT=str(app_port),
        SANDBOX_PORT=str(sandbox_port),
        DATABASE_URL=f"sqlite:///{tmp_path / 'run.db'}",
    )
    return app_port, sandbox_port, env


def test_make_run_started_in_the_background_stops_on_ctrl_c_and_stops_its_servers(tmp_path):
    # A script's `make run &` leaves SIGINT ignored; Ctrl+C (SIGINT) must still stop it,
    # and it must stop the sandbox and the app, not leave them holding their ports.
    app_port, sandbox_port, env = make_run_environment(tmp_path)
    command = as_a_shell_starts(["scripts/run.py"], in_the_background=True)
    urls = [f"http://localhost:{app_port}/", f"http://127.0.0.1:{sandbox_port}/"]
    with ServerProcess(command, env, tmp_path / "run.log", urls=urls) as served:
        served.process.send_signal(signal.SIGINT)
        try:
            served.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"make run did not stop on SIGINT:\n{served.log()}")

    assert "Stopping the vcita sandbox." in served.log()  # stopped, not killed
    for url in urls:
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=5)


def test_make_run_serves_a_complete_flow_on_the_sandbox(tmp_path):
    app_port, sandbox_port, env = make_run_environment(tmp_path)
    base = f"http://localhost:{app_port}"
    command = [sys.executable, "scripts/run.py"]
    with (
        ServerProcess(command, env, tmp_path / "run.log", urls=[f"{base}/"]) as served,
        requests.Session() as browser,
        SandboxPerson(f"http://127.0.0.1:{sandbox_port}") as person,
    ):
        landing = browser.get(f"{base}/")
        assert "Sandbox — not connected to vcita.com" in landing.text
        start = browser.get(f"{base}/connect", allow_redirects=False)
        callback = person.approve(start.headers["Location"])
        dashboard = browser.get(callback)
        assert dashboard.url == f"{base}/dashboard"
        assert dashboard.status_code == 200
        assert "Connected to vcita" in dashboard.text
        # The sandbox plays vcita's App Market, and vcita's page may frame the app.
        shell = browser.get(
            f"http://127.0.0.1:{sandbox_port}/app-market/open?staff=1beb795be66146bb"
        )
        assert f'src="{base}/?business_uid=7c6dc1589f078b66' in shell.text
        assert "brand_host=3e2929cf6c34632e.myclients.localhost" in shell.text
        launched = browser.get(f"{base}/", headers={"Sec-Fetch-Dest": "iframe"})
        ancestors = launched.headers["Content-Security-Policy"].rpartition("frame-ancestors ")[2]
        assert f"http://vcita.localhost:{sandbox_port}" in ancestors.split()
        branded = browser.get(
            f"{base}/connect?brand_host=3e2929cf6c34632e.myclients.localhost",
            allow_redirects=False,
        )
        assert branded.headers["Location"].startswith(
            f"http://3e2929cf6c34632e.myclients.localhost:{sandbox_port}/app/oauth/authorize?"
        )
    assert "Traceback" not in served.log()
