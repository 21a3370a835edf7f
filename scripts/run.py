"""Serve vcita Connect: on the built-in sandbox unless vcita credentials are set.

`make run` serves it with Flask's development server; `make serve` (`--gunicorn`) with
gunicorn, as in production (workers and threads from WEB_CONCURRENCY, GUNICORN_THREADS).
Reads .env like the app does. With no VCITA_CLIENT_ID (or with VCITA_SANDBOX=true) it
starts the vcita sandbox as its own HTTP server on port 5001 beside the app on 5000.
"""

import json
import os
import runpy
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from cryptography.fernet import Fernet
from dotenv import dotenv_values

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.storage.private_files import PRIVATE_FILE_MODE, private_folder
from sandbox.settings import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

ROOT = Path(__file__).resolve().parent.parent
APP_PORT = os.environ.get("PORT", "5000")
SANDBOX_PORT = os.environ.get("SANDBOX_PORT", "5001")
SANDBOX_BRAND_DOMAIN = "myclients.localhost"
# The names the sandbox answers on here; vcita.localhost is another site than the app's.
SANDBOX_HOSTS = ("vcita.localhost", "127.0.0.1", "localhost")


def main() -> int:
    """Prepare the database, start the sandbox if needed, and serve the app."""
    env = {
        **{k: v for k, v in dotenv_values(ROOT / ".env").items() if v is not None},
        **os.environ,
    }
    if "--gunicorn" in sys.argv:
        # gunicorn reads WEB_CONCURRENCY with int() before any setting of ours runs: a
        # value such as "²" would stop it with a traceback. gunicorn.conf.py names the
        # problem instead, so it is read here first, with the same environment.
        os.environ.update(env)
        runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    use_sandbox = not env.get("VCITA_CLIENT_ID") or env.get("VCITA_SANDBOX", "").lower() in (
        "1",
        "true",
        "yes",
        "on",
    )
    # Stop the servers we started however we are stopped: Ctrl+C or a plain kill. SIGINT
    # is set even if we inherited it ignored (a script's `make run &`): so Ctrl+C stops
    # us, and the servers we start, which get it back at its default, stop on our SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    children = []
    if use_sandbox:
        env.update(sandbox_settings(env))
        children.append(
            subprocess.Popen(
                [sys.executable, "-m", "sandbox", "--port", SANDBOX_PORT], cwd=ROOT, env=env
            )
        )
        print(f"vcita sandbox: http://127.0.0.1:{SANDBOX_PORT}  (no vcita account needed)")
        print(f"vcita App Market (sandbox): http://vcita.localhost:{SANDBOX_PORT}/app-market")
    flask = [sys.executable, "-m", "flask", "--app", "app"]
    if "--gunicorn" in sys.argv:
        server = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"]
    else:
        server = [*flask, "run", "--port", APP_PORT]
    try:
        # Brings the schema to the newest revision, and in the sandbox makes the secrets,
        # before any worker starts: workers then all share them.
        subprocess.run([*flask, "init-db"], cwd=ROOT, env=env, check=True)
        print(f"vcita Connect: http://localhost:{APP_PORT}")
        app = subprocess.Popen(server, cwd=ROOT, env=env)
        children.append(app)
        return app.wait()
    except subprocess.CalledProcessError as error:
        return error.returncode  # init-db's: 4 when it said which settings to fix
    except KeyboardInterrupt:
        return 1
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 5
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()


def sandbox_settings(env: dict[str, str]) -> dict[str, str]:
    """Return the settings that point the app at the sandbox, as its registered client.

    The app reads them like any other settings; only what starts the sandbox knows its
    demo client and where it listens.
    """
    sandbox_url = f"http://127.0.0.1:{SANDBOX_PORT}"
    redirect_uri = env.get("VCITA_REDIRECT_URI") or f"http://localhost:{APP_PORT}/callback"
    given = {name: env[name] for name in ("SECRET_KEY", "TOKEN_ENCRYPTION_KEY") if env.get(name)}
    if len(given) < 2:
        given = {**kept_secrets(ROOT / "instance" / "sandbox-secrets.json"), **given}
    return {
        "VCITA_SANDBOX": "true",
        "VCITA_CLIENT_ID": env.get("SANDBOX_CLIENT_ID") or DEFAULT_CLIENT_ID,
        "VCITA_CLIENT_SECRET": env.get("SANDBOX_CLIENT_SECRET") or DEFAULT_CLIENT_SECRET,
        "VCITA_REDIRECT_URI": redirect_uri,
        "SANDBOX_REDIRECT_URIS": env.get("SANDBOX_REDIRECT_URIS") or redirect_uri,
        "VCITA_AUTHORIZE_URL": f"{sandbox_url}/app/oauth/authorize",
        "VCITA_TOKEN_URL": f"{sandbox_url}/oauth/token",
        "VCITA_USERINFO_URL": f"{sandbox_url}/oauth/userinfo",
        "VCITA_API_URL": sandbox_url,
        # vcita's App Market, played by the sandbox: its demo businesses live on brand
        # hosts under myclients.localhost, which browsers resolve to this machine, and
        # its shell on vcita.localhost frames the app as vcita's own page does.
        "VCITA_BRAND_HOSTS": env.get("VCITA_BRAND_HOSTS") or f"*.{SANDBOX_BRAND_DOMAIN}",
        "VCITA_BRAND_AUTHORIZE_URL": env.get("VCITA_BRAND_AUTHORIZE_URL")
        or f"http://{{brand_host}}:{SANDBOX_PORT}/app/oauth/authorize",
        "VCITA_FRAME_ANCESTORS": env.get("VCITA_FRAME_ANCESTORS")
        or " ".join(f"http://{host}:{SANDBOX_PORT}" for host in SANDBOX_HOSTS),
        "SANDBOX_APP_URL": env.get("SANDBOX_APP_URL") or f"http://localhost:{APP_PORT}/",
        "SANDBOX_BRAND_DOMAIN": env.get("SANDBOX_BRAND_DOMAIN") or SANDBOX_BRAND_DOMAIN,
        **given,
    }


def kept_secrets(path: Path) -> dict[str, str]:
    """Return the sandbox run's secrets, made once and kept, so sessions survive a restart."""
    private_folder(path.parent, tighten=True)  # instance/, the app's own folder
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        pass
    made = {
        "SECRET_KEY": secrets.token_hex(32),
        "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    # O_CREAT's mode is for a new file: one there already, that did not parse, keeps its own.
    os.fchmod(descriptor, PRIVATE_FILE_MODE)
    with os.fdopen(descriptor, "w") as file:
        json.dump(made, file)
    return made


if __name__ == "__main__":
    sys.exit(main())
